import type { ResultsStore } from './store.ts';
import { defaultActivityConfig, type ActivityConfig } from './common.ts';
import { createControlActivities } from './control.ts';
import { createTrainActivities } from './train-trial.ts';

/**
 * The activities of a worker, closed over its store and configuration. Thin: they expand specs (src/spec),
 * write through the store (db/) and run the trial runner (src/runner) as a child process. The training activity
 * lives in ./train-trial.ts, the light control activities in ./control.ts.
 */

export type { ResultsStore, StudyCounts, TrialState, RegisteredTrial, StoredCheckpoint, PendingTrial } from './store.ts';
export { SupersededAttemptError } from './store.ts';
export { defaultActivityConfig, FAILURE_TYPES, type ActivityConfig } from './common.ts';
export type { TrainTrialInput, TrainTrialOutput, TrainHeartbeat, CheckpointSource } from './train-trial.ts';
export type { RegisterStudyInput, RegisterStudyOutput, ExtendStudyInput, NextPendingInput, RegisterTrialsInput, RegisterTrialsOutput } from './control.ts';

export function createActivities(store: ResultsStore, configInput: Partial<ActivityConfig> = {}) {
  const config = defaultActivityConfig(configInput);
  return { ...createControlActivities(store, config), ...createTrainActivities(store, config) };
}

export type StudyActivities = ReturnType<typeof createActivities>;

/** The activities served on the control queue (all but trainTrial). */
export function controlActivities(activities: StudyActivities): Omit<StudyActivities, 'trainTrial'> {
  const { trainTrial: _train, ...control } = activities;
  return control;
}
