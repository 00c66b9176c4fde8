/**
 * Conditional learning speed (paper-spec §7): per step µ(group) = Σ‖G‖² / Σ‖θ‖² over the group's tensors
 * (a ratio of sums), cumulative sums over regular steps only, and
 *   d_speed = log(Σµ(θ0′)/Σµ(θ0)) − log(Σµ(θ1′)/Σµ(θ1))   (log10 in both profiles by default, §13 D6).
 */
export type GroupName = 'theta0' | 'theta1' | 'theta0Prime' | 'theta1Prime';
export const GROUP_NAMES: readonly GroupName[] = ['theta0', 'theta1', 'theta0Prime', 'theta1Prime'];
export type GroupValues = Record<GroupName, number>;

/** Indices (into the optimizer's variable list) of each group's tensors. A tensor may be in two groups. */
export type GroupIndices = Record<GroupName, number[]>;

/** µ per group from per-tensor squared norms of gradients and parameters. */
export function groupMus(gradSq: ArrayLike<number>, thetaSq: ArrayLike<number>, groups: GroupIndices): GroupValues {
  const out = {} as GroupValues;
  for (const name of GROUP_NAMES) {
    let g = 0;
    let t = 0;
    for (const i of groups[name]) {
      g += gradSq[i];
      t += thetaSq[i];
    }
    out[name] = t > 0 ? g / t : 0;
  }
  return out;
}

export interface SpeedState {
  sums: GroupValues;
}

export class SpeedTracker {
  private sums: GroupValues = { theta0: 0, theta1: 0, theta0Prime: 0, theta1Prime: 0 };
  private readonly log: (x: number) => number;

  constructor(logBase: '10' | 'e') {
    this.log = logBase === '10' ? Math.log10 : Math.log;
  }

  accumulate(mu: GroupValues): void {
    for (const name of GROUP_NAMES) this.sums[name] += mu[name];
  }

  /** s(m1|m0) = log(Σµ(θ0′)/Σµ(θ0)); null while a sum is still 0. */
  sM1GivenM0(): number | null {
    return this.ratioLog(this.sums.theta0Prime, this.sums.theta0);
  }

  /** s(m0|m1) = log(Σµ(θ1′)/Σµ(θ1)). */
  sM0GivenM1(): number | null {
    return this.ratioLog(this.sums.theta1Prime, this.sums.theta1);
  }

  /** Cumulative d_speed; null before it is defined (no regular step yet, or a group without gradient). */
  d(): number | null {
    const a = this.sM1GivenM0();
    const b = this.sM0GivenM1();
    return a === null || b === null ? null : a - b;
  }

  getState(): SpeedState {
    return { sums: { ...this.sums } };
  }

  setState(state: SpeedState): void {
    this.sums = { ...state.sums };
  }

  private ratioLog(num: number, den: number): number | null {
    if (!(num > 0) || !(den > 0)) return null;
    const v = this.log(num / den);
    return Number.isFinite(v) ? v : null;
  }
}
