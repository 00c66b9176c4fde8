import type { GpuInfo } from './gpu.ts';

/**
 * The contract every layer shares about one trial's outcome: the per-epoch learning-curve row, the per-modality
 * utilization figures, the final TrialResult, the checkpoint reference and the events of a run. It sits in
 * src/spec, below the trainer (which produces it), the metrics (which fill part of it), the runner (which prints
 * it on its stdout protocol) and the activities and db (which store it), so none of them depends on another for it.
 */
import type { FidelitySwitches } from './fidelity.ts';

import type { CmnistPaletteName } from './trial.ts';

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
  /**
   * Accuracy of every branch's ŷk (index = modality), present only for nets with more than two modalities
   * (three-view ModelNet40), whose third branch the fixed *Acc0/*Acc1 fields cannot hold.
   */
  branchAcc?: { train: number[]; val: number[]; test: number[] };
}

/** Per-modality utilization figures of a trial (paper-spec §6, §8.6 for M > 2). */
export interface ModalityResult {
  /** The dataset's name of the modality (e.g. `colored`, `view-1`). */
  name: string;
  /** A(f_k): test accuracy of ŷk, regular mode. */
  accF: number;
  /** A(f_k′): test accuracy of ŷk with every other modality's squeezed input replaced by its training mean. */
  accFPrime: number;
  /** u(rest|m_k) = (A(f_k) − A(f_k′))/A(f_k); null when A(f_k) = 0. */
  u: number | null;
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
  /** The GPU that trained it (model, driver, CUDA, cuDNN, TF32): null on CPU backends; absent in older results. */
  gpu?: GpuInfo | null;
  /** Epochs actually trained. */
  epochs: number;
  /** The resolved profile (a spec without one resolves per dataset: src/spec/fidelity.ts defaultProfileFor). */
  profile: 'code' | 'paper';
  /** Every fidelity switch as the trial ran it: profile, overrides and dataset scoping applied (absent for noop trials). */
  fidelity?: FidelitySwitches;
  /** CMNIST: the palette of class mean colors the data were painted with (absent for other datasets). */
  palette?: CmnistPaletteName;
  wallSeconds: number;
  /**
   * Every modality's A(f_k), A(f_k′), u(rest|m_k), in branch order: the general form of accF0…uM0GivenM1 (which
   * are its first two entries' values). Absent for uni-modal baselines and for runs that never evaluated a model.
   * With more than two modalities, dUtil = max_k u − min_k u and dSpeed is taken between the two most different
   * conditional learning speeds (paper-spec §8.6; both ≥ 0 there).
   */
  perModality?: ModalityResult[];
}

export interface CheckpointRef {
  /** Absolute path of the checkpoint file the runner wrote (atomically). */
  path: string;
  epoch: number;
  sha256: string;
  bytes: number;
}

/**
 * What one trial run reports as it goes, in order: `start`, then `progress` and one `epoch` per epoch, then `result`.
 * The trainer (and the runner's no-op trial) emits these; the runner prints them as its stdout protocol (`RunnerEvent`, src/runner/protocol.ts).
 */
export type TrialEvent =
  | {
      type: 'start';
      backend: string;
      device: string;
      /** Completed epochs restored from a checkpoint (null: a fresh start). */
      resumedFromEpoch: number | null;
      totalEpochs: number;
      /** Set when the run continues an interrupted epoch from a mid-epoch checkpoint: steps of it already done. */
      resumedAtStep?: number;
    }
  | { type: 'progress'; epoch: number; step: number; stepsInEpoch: number }
  | { type: 'epoch'; metrics: EpochMetrics; checkpoint: CheckpointRef }
  | { type: 'result'; result: TrialResult };
