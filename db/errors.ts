// Errors of the results store that callers tell apart by name (the activities make them non-retryable).

/** A study id or name the user gave that the store does not hold: invalid input, so the CLI exits with 2. */
export class UnknownStudyError extends Error {
  readonly exitCode = 2;
  readonly missing: string[];
  constructor(missing: string | string[], known?: string[]) {
    const names = typeof missing === 'string' ? [missing] : missing;
    const hint =
      known === undefined
        ? '(list them with: mmsweep sql "select id, name, status from studies")'
        : known.length > 0
          ? `Studies in this database: ${known.join(', ')}.`
          : 'This database has no studies yet: start one with `mmsweep study start` or `mmsweep run`.';
    super(`no stud${names.length > 1 ? 'ies' : 'y'} ${names.map((n) => `"${n}"`).join(', ')} in the results store. ${hint}`);
    this.missing = names;
    this.name = 'UnknownStudyError';
  }
}

export class UnknownTrialError extends Error {
  constructor(readonly trialKey: string) {
    super(`no trial with key ${trialKey} in the results store: register it with registerTrials first`);
    this.name = 'UnknownTrialError';
  }
}
