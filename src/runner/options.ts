import type { TrialEvent } from '../spec/contracts.ts';

/** How to run one trial; its own file so that each kind of trial (run.ts, noop.ts) reads it without a circle. */
export interface RunTrialOptions {
  checkpointDir?: string;
  resume?: boolean;
  /** Mid-epoch checkpoints this often (seconds) besides the epoch ones; default 600 with a checkpoint directory. */
  midEpochCheckpointSeconds?: number;
  onEvent?: (event: TrialEvent) => void;
  /** Dataset cache directory (default: the data module's). */
  cacheDir?: string;
}
