/**
 * ReduceLROnPlateau on the epoch training loss, PyTorch semantics with mode `min` and relative threshold
 * (paper-spec §5.2): an epoch improves iff loss < best·(1 − threshold); when the count of bad epochs exceeds
 * `patience` the LR becomes max(lr·factor, minLr) — unless that changes it by no more than `eps` — and the
 * count resets (cooldown 0).
 */
export interface PlateauOptions {
  factor: number;
  patience: number;
  threshold: number;
  minLr: number;
  eps: number;
}

export interface PlateauState {
  best: number | null; // null = +∞ (JSON has no Infinity)
  badEpochs: number;
}

export class ReduceLROnPlateau {
  private best = Number.POSITIVE_INFINITY;
  private badEpochs = 0;

  constructor(private readonly options: PlateauOptions) {}

  /** Feed one epoch's loss; returns the learning rate to use next. */
  step(loss: number, lr: number): number {
    if (loss < this.best * (1 - this.options.threshold)) {
      this.best = loss;
      this.badEpochs = 0;
    } else {
      this.badEpochs += 1;
    }
    if (this.badEpochs > this.options.patience) {
      this.badEpochs = 0;
      const reduced = Math.max(lr * this.options.factor, this.options.minLr);
      if (lr - reduced > this.options.eps) return reduced;
    }
    return lr;
  }

  getState(): PlateauState {
    return { best: Number.isFinite(this.best) ? this.best : null, badEpochs: this.badEpochs };
  }

  setState(state: PlateauState): void {
    this.best = state.best ?? Number.POSITIVE_INFINITY;
    this.badEpochs = state.badEpochs;
  }
}

/**
 * The code's CompletedStopping (paper-spec §5.3): count epochs whose running training accuracy of ŷ is exactly
 * 100 % (never reset, not necessarily consecutive) and stop after the epoch at which the count reaches
 * `completedEpochsToStop`; otherwise stop after `maxEpochs`.
 */
export interface StoppingState {
  completedEpochs: number;
}

export class CompletedStopping {
  private completedEpochs = 0;

  constructor(
    private readonly completedEpochsToStop: number,
    private readonly maxEpochs: number,
  ) {}

  /** `correct`/`total` are the epoch's running training counts (exact, not a rounded percentage). */
  shouldStop(epoch: number, correct: number, total: number): boolean {
    if (total > 0 && correct === total) this.completedEpochs += 1;
    return this.completedEpochs >= this.completedEpochsToStop || epoch >= this.maxEpochs;
  }

  getState(): StoppingState {
    return { completedEpochs: this.completedEpochs };
  }

  setState(state: StoppingState): void {
    this.completedEpochs = state.completedEpochs;
  }
}
