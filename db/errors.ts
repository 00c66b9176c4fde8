// Errors of the results store that callers tell apart by name (the activities make them non-retryable).

export class UnknownStudyError extends Error {
  constructor(readonly studyId: string) {
    super(`no study "${studyId}" in the results store (list them with: mmsweep sql "select id, name, status from studies")`);
    this.name = 'UnknownStudyError';
  }
}

export class UnknownTrialError extends Error {
  constructor(readonly trialKey: string) {
    super(`no trial with key ${trialKey} in the results store: register it with registerTrials first`);
    this.name = 'UnknownTrialError';
  }
}
