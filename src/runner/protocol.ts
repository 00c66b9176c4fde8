/**
 * The trial runner's wire protocol: what `mmsweep train` prints with `--events` (one JSON object per line on
 * stdout) and the exit codes it ends with. The orchestration activity spawns the runner and relies on exactly
 * this, so both sides import it from here.
 */

/** Per-epoch learning-curve row (accuracies in percent, 0–100). */
export interface EpochMetrics {
  epoch: number;
  trainAcc: number;
  trainAcc0: number;
  trainAcc1: number;
  valAcc: number;
  valAcc0: number;
  valAcc1: number;
  testAcc: number;
  testAcc0: number;
  testAcc1: number;
  /** Mean training loss of the epoch. */
  loss: number;
  /** Learning rate used during the epoch. */
  lr: number;
  /** Cumulative d_speed at the end of the epoch (null before it can be computed). */
  dSpeed: number | null;
  regularSteps: number;
  rebalanceSteps: number;
  wallSeconds: number;
}

/** The final result of a trial (accuracies in percent). */
export interface TrialResult {
  /** Test accuracy of ŷ at the best-validation epoch (clean evaluation). */
  testAcc: number;
  /** A(f): test accuracy of ŷ of the best-validation model, regular mode. */
  accF: number;
  accF0: number;
  accF1: number;
  accF0Prime: number;
  accF1Prime: number;
  uM1GivenM0: number | null;
  uM0GivenM1: number | null;
  dUtil: number | null;
  dSpeed: number | null;
  rF: number;
  bestEpoch: number;
  /** Steps T until the best validation accuracy. */
  stepsT: number;
  diverged: boolean;
  backend: string;
  device: string;
  /** Epochs actually trained. */
  epochs: number;
  profile: 'code' | 'paper';
  wallSeconds: number;
}

export interface CheckpointRef {
  /** Absolute path of the checkpoint file the runner wrote (atomically). */
  path: string;
  epoch: number;
  sha256: string;
  bytes: number;
}

export type RunnerEvent =
  | { type: 'start'; backend: string; device: string; resumedFromEpoch: number | null; totalEpochs: number }
  | { type: 'progress'; epoch: number; step: number; stepsInEpoch: number }
  | { type: 'epoch'; metrics: EpochMetrics; checkpoint: CheckpointRef }
  | { type: 'result'; result: TrialResult };

export const EXIT_CODES = {
  success: 0,
  crash: 1,
  invalidSpec: 2,
  diverged: 3,
  missingData: 4,
} as const;
export type ExitCodeName = keyof typeof EXIT_CODES;

/** Exit codes the orchestrator must not retry. */
export const NON_RETRYABLE_EXIT_CODES: readonly number[] = [EXIT_CODES.invalidSpec, EXIT_CODES.missingData];

/** Prefix of event lines on stdout, so they stay distinguishable from any stray library output. */
export const EVENT_LINE_PREFIX = '@mmsweep ';
