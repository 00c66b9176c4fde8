/**
 * Conditional learning speed (paper-spec §7; §8.6 for more than two modalities): per step
 * µ(group) = Σ‖G‖² / Σ‖θ‖² over the group's tensors (a ratio of sums), cumulative sums over regular steps only, the
 * conditional speed of modality k s_k = log(Σµ(θk′)/Σµ(θk)) (s(m1|m0) for k = 0, s(m0|m1) for k = 1), and
 *   d_speed = s_0 − s_1   (two modalities; log10 in both profiles by default, §13 D6)
 *   d_speed = max_k s_k − min_k s_k   (more than two: "the two most different conditional learning speeds").
 * The modality to accelerate is the one with the largest s_k: its branch learns slowest relative to the fusion
 * (for two modalities: m0 when d_speed > 0, else m1, as the released code does).
 */

/** Indices (into the optimizer's variable list) of each group's tensors, per modality. A tensor may be in several groups. */
export interface GroupIndices {
  theta: number[][];
  thetaPrime: number[][];
}

/** µ (or its cumulative sum) of every group, per modality. */
export interface GroupMus {
  theta: number[];
  thetaPrime: number[];
}

/** µ per group from per-tensor squared norms of gradients and parameters. */
export function groupMus(gradSq: ArrayLike<number>, thetaSq: ArrayLike<number>, groups: GroupIndices): GroupMus {
  const mu = (indices: number[]) => {
    let g = 0;
    let t = 0;
    for (const i of indices) {
      g += gradSq[i]!;
      t += thetaSq[i]!;
    }
    return t > 0 ? g / t : 0;
  };
  return { theta: groups.theta.map(mu), thetaPrime: groups.thetaPrime.map(mu) };
}

export interface SpeedState {
  sums: GroupMus;
}

export class SpeedTracker {
  private sums: GroupMus;
  private readonly log: (x: number) => number;

  constructor(
    logBase: '10' | 'e',
    readonly modalityCount = 2,
  ) {
    if (!Number.isInteger(modalityCount) || modalityCount < 2) throw new Error(`SpeedTracker needs two or more modalities, got ${modalityCount}`);
    this.log = logBase === '10' ? Math.log10 : Math.log;
    this.sums = { theta: new Array(modalityCount).fill(0), thetaPrime: new Array(modalityCount).fill(0) };
  }

  accumulate(mu: GroupMus): void {
    if (mu.theta.length !== this.modalityCount || mu.thetaPrime.length !== this.modalityCount) {
      throw new Error(`SpeedTracker.accumulate: expected µ of ${this.modalityCount} modalities, got ${mu.theta.length}/${mu.thetaPrime.length}`);
    }
    for (let k = 0; k < this.modalityCount; k++) {
      this.sums.theta[k]! += mu.theta[k]!;
      this.sums.thetaPrime[k]! += mu.thetaPrime[k]!;
    }
  }

  /** s_k = log(Σµ(θk′)/Σµ(θk)); null while a sum is still 0. s_0 = s(m1|m0), s_1 = s(m0|m1). */
  conditionalSpeed(k: number): number | null {
    return this.ratioLog(this.sums.thetaPrime[k]!, this.sums.theta[k]!);
  }

  /** Cumulative d_speed; null before it is defined (no regular step yet, or a group without gradient). */
  d(): number | null {
    const s = this.speeds();
    if (s === null) return null;
    if (s.length === 2) return s[0]! - s[1]!;
    return Math.max(...s) - Math.min(...s);
  }

  /** The modality a re-balancing window should accelerate now (largest s_k); null while d_speed is undefined. */
  slowestModality(): number | null {
    const s = this.speeds();
    if (s === null) return null;
    let best = 0;
    for (let k = 1; k < s.length; k++) if (s[k]! > s[best]!) best = k;
    return best;
  }

  getState(): SpeedState {
    return { sums: { theta: [...this.sums.theta], thetaPrime: [...this.sums.thetaPrime] } };
  }

  setState(state: SpeedState): void {
    const sums = state.sums as GroupMus | Record<'theta0' | 'theta1' | 'theta0Prime' | 'theta1Prime', number>;
    // Checkpoints written before the multi-modality change keep the two-modality sums by name.
    this.sums =
      'theta0' in sums
        ? { theta: [sums.theta0, sums.theta1], thetaPrime: [sums.theta0Prime, sums.theta1Prime] }
        : { theta: [...sums.theta], thetaPrime: [...sums.thetaPrime] };
    if (this.sums.theta.length !== this.modalityCount) {
      throw new Error(`speed state holds ${this.sums.theta.length} modalities, this trial has ${this.modalityCount}`);
    }
  }

  private speeds(): number[] | null {
    const s: number[] = [];
    for (let k = 0; k < this.modalityCount; k++) {
      const v = this.conditionalSpeed(k);
      if (v === null) return null;
      s.push(v);
    }
    return s;
  }

  private ratioLog(num: number, den: number): number | null {
    if (!(num > 0) || !(den > 0)) return null;
    const v = this.log(num / den);
    return Number.isFinite(v) ? v : null;
  }
}
