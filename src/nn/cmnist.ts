import * as tf from '@tensorflow/tfjs';
import type { FidelitySwitches } from '../spec/fidelity.ts';
import {
  BatchNorm,
  Conv2d,
  disposeParameters,
  globalAvgPool,
  Linear,
  maxPool2d,
  readState,
  writeState,
  type Init,
  type NamedVariable,
  type StateEntry,
} from './layers.ts';
import { Mmtm, SeBlock, type FusionContext, type MmtmFidelity } from './mmtm.ts';
import type { ForwardOptions, ForwardOutput, MultimodalNet, ParameterGroups } from './types.ts';

/**
 * The Colored-and-gray MNIST network of paper-spec §4.1: per branch the 4-conv net of Kim et al.
 * (input BatchNorm, conv1 5×5/32 + ReLU, maxpool 3/2/1, conv2 3×3/32, conv3 3×3 stride 2/64, conv4 3×3/64, each
 * + ReLU, global average pool, Linear 64→K), two branches joined by MMTMs.
 *
 * Fusion positions are indices over {1, 2, 3, 4}: position p is the output of conv p's ReLU — for p = 1 after
 * the max-pool, which is the "after conv1 (post-pool)" alternative of paper-spec §4.1 (A2). Default [2, 3, 4].
 * The gated maps feed the next layer of each branch.
 */

export const DEFAULT_MMTM_POSITIONS: readonly number[] = [2, 3, 4];

/** Output channels of conv1…conv4 for a width multiplier (1 = the paper's 32, 32, 64, 64). */
export function cmnistStageChannels(width: number): [number, number, number, number] {
  if (!(width > 0) || !Number.isFinite(width)) throw new Error(`width multiplier must be > 0, got ${width}`);
  const scale = (c: number) => Math.max(1, Math.round(c * width));
  return [scale(32), scale(32), scale(64), scale(64)];
}

function validatePositions(positions: readonly number[], what: string): number[] {
  const sorted = [...positions].sort((a, b) => a - b);
  for (let i = 0; i < sorted.length; i++) {
    const p = sorted[i]!;
    if (!Number.isInteger(p) || p < 1 || p > 4) {
      throw new Error(`${what}: positions must be conv indices in {1, 2, 3, 4}, got ${JSON.stringify(positions)}`);
    }
    if (i > 0 && sorted[i - 1] === p) throw new Error(`${what}: position ${p} is listed twice`);
  }
  return sorted;
}

/** One 4-conv branch, run stage by stage so that fusion modules can act between stages. */
export class CmnistBranch {
  readonly inputNorm: BatchNorm;
  readonly convs: [Conv2d, Conv2d, Conv2d, Conv2d];
  readonly head: Linear;
  readonly stageChannels: [number, number, number, number];

  constructor(init: Init, inChannels: number, numClasses: number, width: number) {
    if (!Number.isInteger(inChannels) || inChannels < 1) {
      throw new Error(`input channels must be a positive integer, got ${inChannels}`);
    }
    const [c1, c2, c3, c4] = (this.stageChannels = cmnistStageChannels(width));
    const at = (name: string): Init => ({ seed: init.seed, prefix: `${init.prefix}.${name}` });
    this.inputNorm = new BatchNorm(at('bn0'), inChannels);
    this.convs = [
      new Conv2d(at('conv1'), inChannels, c1, 5, 1, 2),
      new Conv2d(at('conv2'), c1, c2, 3, 1, 1),
      new Conv2d(at('conv3'), c2, c3, 3, 2, 1),
      new Conv2d(at('conv4'), c3, c4, 3, 1, 1),
    ];
    this.head = new Linear(at('head'), c4, numClasses);
  }

  /** Stage p ∈ {1..4}: conv p + ReLU (stage 1 starts with the input BatchNorm and ends with the max-pool). */
  stage(p: number, x: tf.Tensor4D, training: boolean): tf.Tensor4D {
    if (p === 1) {
      const normalised = this.inputNorm.apply(x, training) as tf.Tensor4D;
      return maxPool2d(this.convs[0].apply(normalised, 'relu'), 3, 2, 1);
    }
    return this.convs[p - 1]!.apply(x, 'relu');
  }

  /** Global average pool → features (B×C4), and the head's logits (B×K). */
  finish(x: tf.Tensor4D): { features: tf.Tensor2D; logits: tf.Tensor2D } {
    const features = globalAvgPool(x);
    return { features, logits: this.head.apply(features) };
  }

  /** Input BN γ, β; conv1…conv4 weight, bias; head weight, bias (12 tensors). */
  get parameters(): NamedVariable[] {
    return [...this.inputNorm.parameters, ...this.convs.flatMap((c) => c.parameters), ...this.head.parameters];
  }

  get state(): StateEntry[] {
    return this.inputNorm.state;
  }

  dispose(): void {
    disposeParameters(this.parameters);
    this.inputNorm.dispose();
  }
}

function checkInput(x: tf.Tensor, channels: number, what: string): tf.Tensor4D {
  if (x.rank !== 4 || x.shape[3] !== channels) {
    throw new Error(`${what}: expected a B×H×W×${channels} (channels-last) input, got shape [${x.shape.join(', ')}]`);
  }
  return x as tf.Tensor4D;
}

export interface CmnistNetOptions {
  /** Input channels of m0 and m1 (colored 3, gray 1). */
  channels: [number, number];
  numClasses: number;
  /** Seed of the weight initialisation. */
  seed: number;
  fidelity: MmtmFidelity | FidelitySwitches;
  /** Channel width multiplier (1 = the paper's network). */
  width?: number;
  /** Conv indices after which an MMTM sits (default [2, 3, 4]). */
  mmtmPositions?: number[];
}

/** The two-branch MMTM network, with a few extras beyond `MultimodalNet` for checkpoints and tests. */
export interface CmnistMultimodalNet extends MultimodalNet {
  /** Trainable variables with stable names, in the order of `trainableVariables`. */
  readonly namedParameters: readonly NamedVariable[];
  readonly branches: readonly [CmnistBranch, CmnistBranch];
  readonly mmtms: readonly Mmtm[];
  /** Sorted fusion positions (conv indices). */
  readonly mmtmPositions: readonly number[];
}

class CmnistNet implements CmnistMultimodalNet {
  readonly branches: readonly [CmnistBranch, CmnistBranch];
  readonly mmtms: readonly Mmtm[];
  readonly mmtmPositions: readonly number[];
  readonly namedParameters: readonly NamedVariable[];
  readonly trainableVariables: readonly tf.Variable[];
  readonly groups: ParameterGroups;
  private readonly channels: [number, number];
  private readonly stateEntries: StateEntry[];

  constructor(options: CmnistNetOptions) {
    const width = options.width ?? 1;
    this.channels = options.channels;
    this.mmtmPositions = validatePositions(options.mmtmPositions ?? DEFAULT_MMTM_POSITIONS, 'mmtmPositions');
    const fidelity: MmtmFidelity = {
      gateScale: options.fidelity.gateScale,
      rebalanceAverage: options.fidelity.rebalanceAverage,
      replicateSkeletonAvgBug: options.fidelity.replicateSkeletonAvgBug,
    };
    this.branches = [
      new CmnistBranch({ seed: options.seed, prefix: 'branch0' }, options.channels[0], options.numClasses, width),
      new CmnistBranch({ seed: options.seed, prefix: 'branch1' }, options.channels[1], options.numClasses, width),
    ];
    const stageChannels = this.branches[0].stageChannels;
    this.mmtms = this.mmtmPositions.map((p) => {
      const c = stageChannels[p - 1]!;
      return new Mmtm({ seed: options.seed, prefix: `mmtm${p}` }, c, c, fidelity);
    });

    // Stable order: branch 0, branch 1, then per MMTM (ascending position) squeeze, excite0, excite1.
    this.namedParameters = [
      ...this.branches[0].parameters,
      ...this.branches[1].parameters,
      ...this.mmtms.flatMap((m) => m.parameters),
    ];
    this.trainableVariables = this.namedParameters.map((p) => p.variable);
    const vars = (ps: NamedVariable[]) => ps.map((p) => p.variable);
    // Groups by role (paper-spec §7.2): the squeeze layer of every MMTM is in both θ0′ and θ1′.
    this.groups = {
      theta0: vars(this.branches[0].parameters),
      theta1: vars(this.branches[1].parameters),
      theta0Prime: this.mmtms.flatMap((m) => vars([...m.squeeze.parameters, ...m.excite0.parameters])),
      theta1Prime: this.mmtms.flatMap((m) => vars([...m.squeeze.parameters, ...m.excite1.parameters])),
    };
    this.stateEntries = [...this.branches[0].state, ...this.branches[1].state, ...this.mmtms.flatMap((m) => m.state)];
  }

  get fusionCount(): number {
    return this.mmtms.length;
  }

  forward(x0: tf.Tensor, x1: tf.Tensor, options: ForwardOptions): ForwardOutput {
    let a0 = checkInput(x0, this.channels[0], 'forward x0');
    let a1 = checkInput(x1, this.channels[1], 'forward x1');
    const ctx: FusionContext = {
      mode: options.mode,
      regularTrainingStep: options.regularTrainingStep ?? false,
      collectSqueezed: options.collectSqueezed ?? false,
    };
    const squeezed: { h0: tf.Tensor2D; h1: tf.Tensor2D }[] = [];
    const [branch0, branch1] = this.branches;
    for (let p = 1; p <= 4; p++) {
      a0 = branch0.stage(p, a0, options.training);
      a1 = branch1.stage(p, a1, options.training);
      const index = this.mmtmPositions.indexOf(p);
      if (index >= 0) {
        const fused = this.mmtms[index]!.forward(a0, a1, ctx);
        a0 = fused.out0 as tf.Tensor4D;
        a1 = fused.out1 as tf.Tensor4D;
        if (fused.squeezed) squeezed.push(fused.squeezed);
      }
    }
    const out0 = branch0.finish(a0);
    const out1 = branch1.finish(a1);
    const output: ForwardOutput = {
      logits0: out0.logits,
      logits1: out1.logits,
      logits: tf.div(tf.add(out0.logits, out1.logits), 2),
      features0: out0.features,
      features1: out1.features,
    };
    if (ctx.collectSqueezed) output.squeezed = squeezed;
    return output;
  }

  setSqueezeMeans(means: { h0: Float32Array; h1: Float32Array }[]): void {
    if (means.length !== this.mmtms.length) {
      throw new Error(`setSqueezeMeans: got means for ${means.length} MMTMs, the network has ${this.mmtms.length}`);
    }
    means.forEach((m, i) => this.mmtms[i]!.setSqueezeMeans(m.h0, m.h1));
  }

  getState(): Record<string, Float32Array> {
    return readState(this.stateEntries);
  }

  setState(state: Record<string, Float32Array>): void {
    writeState(this.stateEntries, state, 'CmnistNet');
  }

  dispose(): void {
    for (const b of this.branches) b.dispose();
    for (const m of this.mmtms) m.dispose();
  }
}

/**
 * The two-branch CMNIST MMTM network (paper-spec §2, §4.1). ŷ0 is branch 0's head (m0, colored), ŷ1 branch 1's
 * (m1, gray), ŷ = (ŷ0 + ŷ1)/2 on the logits. Inputs are channels-last B×28×28×C.
 */
export function createCmnistNet(options: CmnistNetOptions): CmnistMultimodalNet {
  return new CmnistNet(options);
}

// ---------------------------------------------------------------------------------------------------------------
// Uni-modal SE baseline (paper-spec §11)

export interface UnimodalForwardOutput {
  logits: tf.Tensor2D;
  /** Final pooled features (B×C4), input of the head. */
  features: tf.Tensor2D;
}

/**
 * One branch with SE blocks at the MMTM positions, trained alone with CE on its modality. There is no fusion, so
 * no forward modes, parameter groups or squeeze means: the trainer runs it with a single CE(logits) loss (using it
 * through `MultimodalNet` would double-count the loss as CE(ŷ0) + CE(ŷ1)).
 */
export interface UnimodalNet {
  forward(x: tf.Tensor, options: { training: boolean }): UnimodalForwardOutput;
  readonly trainableVariables: readonly tf.Variable[];
  readonly namedParameters: readonly NamedVariable[];
  /** Number of SE blocks. */
  readonly fusionCount: number;
  /** BatchNorm running statistics (SE blocks keep none). */
  getState(): Record<string, Float32Array>;
  setState(state: Record<string, Float32Array>): void;
  dispose(): void;
}

export interface CmnistUnimodalSeNetOptions {
  /** Input channels of the modality (colored 3, gray 1). */
  channels: number;
  numClasses: number;
  seed: number;
  /** Only `gateScale` is used (D1 applies to SE gates as to MMTM gates). */
  fidelity: Pick<FidelitySwitches, 'gateScale'>;
  width?: number;
  /** Conv indices after which an SE block sits (default [2, 3, 4], the MMTM positions). */
  sePositions?: number[];
  /**
   * Which modality the branch models; it only names the parameters (`branch<k>.…`), so that with the same seed
   * the backbone starts from the same weights as branch k of the two-branch net. Default 0.
   */
  modality?: 0 | 1;
}

class CmnistUnimodalSeNet implements UnimodalNet {
  readonly branch: CmnistBranch;
  readonly seBlocks: readonly SeBlock[];
  readonly sePositions: readonly number[];
  readonly namedParameters: readonly NamedVariable[];
  readonly trainableVariables: readonly tf.Variable[];
  private readonly channels: number;

  constructor(options: CmnistUnimodalSeNetOptions) {
    const modality = options.modality ?? 0;
    this.channels = options.channels;
    this.sePositions = validatePositions(options.sePositions ?? DEFAULT_MMTM_POSITIONS, 'sePositions');
    this.branch = new CmnistBranch(
      { seed: options.seed, prefix: `branch${modality}` },
      options.channels,
      options.numClasses,
      options.width ?? 1,
    );
    this.seBlocks = this.sePositions.map(
      (p) =>
        new SeBlock(
          { seed: options.seed, prefix: `se${p}` },
          this.branch.stageChannels[p - 1]!,
          options.fidelity.gateScale,
        ),
    );
    this.namedParameters = [...this.branch.parameters, ...this.seBlocks.flatMap((s) => s.parameters)];
    this.trainableVariables = this.namedParameters.map((p) => p.variable);
  }

  get fusionCount(): number {
    return this.seBlocks.length;
  }

  forward(x: tf.Tensor, options: { training: boolean }): UnimodalForwardOutput {
    let a = checkInput(x, this.channels, 'forward x');
    for (let p = 1; p <= 4; p++) {
      a = this.branch.stage(p, a, options.training);
      const index = this.sePositions.indexOf(p);
      if (index >= 0) a = this.seBlocks[index]!.forward(a) as tf.Tensor4D;
    }
    return this.branch.finish(a);
  }

  getState(): Record<string, Float32Array> {
    return readState(this.branch.state);
  }

  setState(state: Record<string, Float32Array>): void {
    writeState(this.branch.state, state, 'CmnistUnimodalSeNet');
  }

  dispose(): void {
    this.branch.dispose();
    for (const s of this.seBlocks) s.dispose();
  }
}

export function createCmnistUnimodalSeNet(options: CmnistUnimodalSeNetOptions): UnimodalNet {
  return new CmnistUnimodalSeNet(options);
}
