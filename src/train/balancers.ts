import { rebalanceMode, type ForwardMode } from '../nn/types.ts';
import type { Algorithm } from '../spec/trial.ts';
import { Rng, type RngState } from '../util/rng.ts';

/** What the trainer tells a balancer after each training step's backward pass. */
export interface StepReport {
  /** The mode the step's forward ran in. */
  mode: ForwardMode;
  /** Cumulative d_speed after this step's accumulation (null while undefined). */
  d: number | null;
  /** The modality the speed tracker says is learned slowest (largest conditional speed); null while undefined. */
  slowest: number | null;
}

/**
 * A balancing algorithm as a pure state machine (paper-spec §8). `mode` is the forward mode of the NEXT
 * training step; the decision taken in `afterStep` governs that next forward (§8.2 point 4).
 */
export interface Balancer {
  readonly algorithm: Algorithm;
  readonly mode: ForwardMode;
  onEpochBegin(epoch: number): void;
  afterStep(report: StepReport): void;
  getState(): BalancerState;
  setState(state: BalancerState): void;
}

/** JSON-serialisable (it goes into the checkpoint header). */
export type BalancerState = Record<string, unknown>;

/** Vanilla: always regular. */
export class VanillaBalancer implements Balancer {
  readonly algorithm: Algorithm = 'vanilla';
  readonly mode: ForwardMode = 'regular';
  onEpochBegin(): void {}
  afterStep(_report?: StepReport): void {}
  getState(): BalancerState {
    return {};
  }
  setState(): void {}
}

export interface GuidedOptions {
  alpha: number;
  q: number;
  startEpoch: number;
}

/**
 * Guided balancing as the released code implements it (paper-spec §8.2): unlocked at the start of the first
 * epoch ≥ startEpoch; after a regular step with |d| > α come exactly Q re-balancing steps accelerating
 * k = (d > 0 ? m0 : m1), direction frozen for the window; then a regular step re-tests |d|. The state carries
 * across epochs. A non-finite/undefined d never triggers. With more than two modalities d ≥ 0 is the gap between the
two most different conditional speeds and the window accelerates the slowest modality (paper-spec §8.6); for two
that is the same rule.
 */
export class GuidedBalancer implements Balancer {
  readonly algorithm: Algorithm = 'guided';
  private unlocked = false;
  private rebalancing = false;
  private k = 0;
  private count = 0;

  constructor(private readonly options: GuidedOptions) {}

  get mode(): ForwardMode {
    return this.rebalancing ? rebalanceMode(this.k) : 'regular';
  }

  onEpochBegin(epoch: number): void {
    if (epoch >= this.options.startEpoch) this.unlocked = true;
  }

  afterStep(report: StepReport): void {
    if (!this.unlocked) return;
    if (!this.rebalancing) {
      if (report.d !== null && report.slowest !== null && Math.abs(report.d) > this.options.alpha) {
        this.rebalancing = true;
        this.count = 0;
        this.k = report.slowest;
      }
    } else {
      this.count += 1;
      if (this.count === this.options.q) this.rebalancing = false;
    }
  }

  getState(): BalancerState {
    return { unlocked: this.unlocked, rebalancing: this.rebalancing, k: this.k, count: this.count };
  }

  setState(state: BalancerState): void {
    this.unlocked = Boolean(state.unlocked);
    this.rebalancing = Boolean(state.rebalancing);
    this.k = Number(state.k ?? 0);
    this.count = Number(state.count);
  }
}

/**
 * The code's choice list order: regular, accelerate m1, accelerate m0 (paper-spec §8.4); for M modalities
 * regular, accelerate m_{M−1}, …, accelerate m0.
 */
export function randomModes(modalityCount: number): ForwardMode[] {
  return ['regular', ...Array.from({ length: modalityCount }, (_, i) => rebalanceMode(modalityCount - 1 - i))];
}

/**
 * Random balancing (paper-spec §8.4): from the start epoch on, after every step the next step's mode is drawn
 * uniformly from {regular, accelerate m1, accelerate m0} (one per modality when M > 2) with a seeded PRNG (its
 * state is checkpointed).
 */
export class RandomBalancer implements Balancer {
  readonly algorithm: Algorithm = 'random';
  private unlocked = false;
  private current: ForwardMode = 'regular';
  private readonly rng: Rng;
  private readonly modes: ForwardMode[];

  constructor(
    private readonly options: { startEpoch: number; seed: number; modalityCount?: number },
  ) {
    this.rng = Rng.from('random-balancer', options.seed);
    this.modes = randomModes(options.modalityCount ?? 2);
  }

  get mode(): ForwardMode {
    return this.current;
  }

  onEpochBegin(epoch: number): void {
    if (epoch >= this.options.startEpoch) this.unlocked = true;
  }

  afterStep(_report?: StepReport): void {
    if (this.unlocked) this.current = this.modes[this.rng.int(this.modes.length)]!;
  }

  getState(): BalancerState {
    return { unlocked: this.unlocked, mode: this.current, rng: this.rng.getState() };
  }

  setState(state: BalancerState): void {
    this.unlocked = Boolean(state.unlocked);
    this.current = state.mode as ForwardMode;
    this.rng.setState(state.rng as RngState);
  }
}
