import * as tf from '@tensorflow/tfjs';
import type { FidelitySwitches } from '../spec/fidelity.ts';
import { readState, writeState, type NamedVariable, type StateEntry } from './layers.ts';
import { Mmtm, SeBlock, type FusionContext, type MmtmFidelity } from './mmtm.ts';
import type { UnimodalForwardOutput, UnimodalNet } from './cmnist.ts';
import type { ForwardOptions, ForwardOutput, MultimodalNet, ParameterGroups } from './types.ts';

/**
 * A backbone that runs stage by stage, so that fusion (MMTM) or SE modules can act on the output of any stage:
 * the shape shared by the ResNet18 branches of ModelNet40 and usable by any other backbone.
 */
export interface StagedBranch {
  /** Stages are numbered 1…stageCount. */
  readonly stageCount: number;
  /** Output channels of stage p at index p − 1. */
  readonly stageChannels: readonly number[];
  /** Channels and rank (4 = B×H×W×C, 5 = B×T×H×W×C) of the input. */
  readonly inputChannels: number;
  readonly inputRank: number;
  stage(p: number, x: tf.Tensor, training: boolean): tf.Tensor;
  /** Pooling and head: final features (B×F) and logits (B×K). */
  finish(x: tf.Tensor): { features: tf.Tensor2D; logits: tf.Tensor2D };
  /** Trainable parameters with stable names. */
  readonly parameters: NamedVariable[];
  /** Non-trainable state (BatchNorm running statistics). */
  readonly state: StateEntry[];
  dispose(): void;
}

export function validateStagePositions(positions: readonly number[], stageCount: number, what: string): number[] {
  const sorted = [...positions].sort((a, b) => a - b);
  for (let i = 0; i < sorted.length; i++) {
    const p = sorted[i]!;
    if (!Number.isInteger(p) || p < 1 || p > stageCount) {
      throw new Error(`${what}: positions must be stage indices in 1…${stageCount}, got ${JSON.stringify(positions)}`);
    }
    if (i > 0 && sorted[i - 1] === p) throw new Error(`${what}: position ${p} is listed twice`);
  }
  return sorted;
}

function checkInput(x: tf.Tensor, branch: StagedBranch, what: string): tf.Tensor {
  if (x.rank !== branch.inputRank || x.shape[x.rank - 1] !== branch.inputChannels) {
    throw new Error(
      `${what}: expected a rank-${branch.inputRank} channels-last input with ${branch.inputChannels} channels, got shape [${x.shape.join(', ')}]`,
    );
  }
  return x;
}

export interface TwoBranchMmtmNetOptions<B extends StagedBranch = StagedBranch> {
  /** Name used in error messages, e.g. `Resnet18MmtmNet`. */
  name: string;
  /** Branch 0 (m0) and branch 1 (m1), with parameter names prefixed `branch0.` / `branch1.`. */
  branches: [B, B];
  /** Stages after which an MMTM sits. */
  positions: readonly number[];
  seed: number;
  fidelity: MmtmFidelity | FidelitySwitches;
}

/** The two-branch MMTM network of paper-spec §2 over two staged backbones, with extras for checkpoints and tests. */
export class TwoBranchMmtmNet<B extends StagedBranch = StagedBranch> implements MultimodalNet {
  readonly branches: readonly [B, B];
  readonly mmtms: readonly Mmtm[];
  readonly mmtmPositions: readonly number[];
  /** Trainable variables with stable names, in the order of `trainableVariables`. */
  readonly namedParameters: readonly NamedVariable[];
  readonly trainableVariables: readonly tf.Variable[];
  readonly groups: ParameterGroups;
  private readonly stateEntries: StateEntry[];
  private readonly name: string;

  constructor(options: TwoBranchMmtmNetOptions<B>) {
    this.name = options.name;
    this.branches = options.branches;
    const [b0, b1] = options.branches;
    if (b0.stageCount !== b1.stageCount) throw new Error(`${this.name}: the branches have ${b0.stageCount} and ${b1.stageCount} stages`);
    this.mmtmPositions = validateStagePositions(options.positions, b0.stageCount, 'mmtmPositions');
    const fidelity: MmtmFidelity = {
      gateScale: options.fidelity.gateScale,
      rebalanceAverage: options.fidelity.rebalanceAverage,
      replicateSkeletonAvgBug: options.fidelity.replicateSkeletonAvgBug,
    };
    this.mmtms = this.mmtmPositions.map(
      (p) => new Mmtm({ seed: options.seed, prefix: `mmtm${p}` }, b0.stageChannels[p - 1]!, b1.stageChannels[p - 1]!, fidelity),
    );
    // Stable order: branch 0, branch 1, then per MMTM (ascending position) squeeze, excite0, excite1.
    this.namedParameters = [...b0.parameters, ...b1.parameters, ...this.mmtms.flatMap((m) => m.parameters)];
    this.trainableVariables = this.namedParameters.map((p) => p.variable);
    const vars = (ps: NamedVariable[]) => ps.map((p) => p.variable);
    // Groups by role (paper-spec §7.2): the squeeze layer of every MMTM is in both θ0′ and θ1′.
    this.groups = {
      theta0: vars(b0.parameters),
      theta1: vars(b1.parameters),
      theta0Prime: this.mmtms.flatMap((m) => vars([...m.squeeze.parameters, ...m.excite0.parameters])),
      theta1Prime: this.mmtms.flatMap((m) => vars([...m.squeeze.parameters, ...m.excite1.parameters])),
    };
    this.stateEntries = [...b0.state, ...b1.state, ...this.mmtms.flatMap((m) => m.state)];
  }

  get fusionCount(): number {
    return this.mmtms.length;
  }

  forward(x0: tf.Tensor, x1: tf.Tensor, options: ForwardOptions): ForwardOutput {
    const [branch0, branch1] = this.branches;
    let a0 = checkInput(x0, branch0, `${this.name}.forward x0`);
    let a1 = checkInput(x1, branch1, `${this.name}.forward x1`);
    const ctx: FusionContext = {
      mode: options.mode,
      regularTrainingStep: options.regularTrainingStep ?? false,
      collectSqueezed: options.collectSqueezed ?? false,
    };
    const squeezed: { h0: tf.Tensor2D; h1: tf.Tensor2D }[] = [];
    for (let p = 1; p <= branch0.stageCount; p++) {
      a0 = branch0.stage(p, a0, options.training);
      a1 = branch1.stage(p, a1, options.training);
      const index = this.mmtmPositions.indexOf(p);
      if (index >= 0) {
        const fused = this.mmtms[index]!.forward(a0, a1, ctx);
        a0 = fused.out0;
        a1 = fused.out1;
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
    writeState(this.stateEntries, state, this.name);
  }

  dispose(): void {
    for (const b of this.branches) b.dispose();
    for (const m of this.mmtms) m.dispose();
  }
}

export interface StagedSeNetOptions<B extends StagedBranch = StagedBranch> {
  name: string;
  branch: B;
  /** Stages after which an SE block sits (the MMTM positions of the two-branch net). */
  positions: readonly number[];
  seed: number;
  /** D1 applies to SE gates as to MMTM gates. */
  fidelity: Pick<FidelitySwitches, 'gateScale'>;
}

/** The uni-modal SE baseline of paper-spec §11 over one staged backbone. */
export class StagedSeNet<B extends StagedBranch = StagedBranch> implements UnimodalNet {
  readonly branch: B;
  readonly seBlocks: readonly SeBlock[];
  readonly sePositions: readonly number[];
  readonly namedParameters: readonly NamedVariable[];
  readonly trainableVariables: readonly tf.Variable[];
  private readonly name: string;

  constructor(options: StagedSeNetOptions<B>) {
    this.name = options.name;
    this.branch = options.branch;
    this.sePositions = validateStagePositions(options.positions, options.branch.stageCount, 'sePositions');
    this.seBlocks = this.sePositions.map(
      (p) => new SeBlock({ seed: options.seed, prefix: `se${p}` }, options.branch.stageChannels[p - 1]!, options.fidelity.gateScale),
    );
    this.namedParameters = [...this.branch.parameters, ...this.seBlocks.flatMap((s) => s.parameters)];
    this.trainableVariables = this.namedParameters.map((p) => p.variable);
  }

  get fusionCount(): number {
    return this.seBlocks.length;
  }

  forward(x: tf.Tensor, options: { training: boolean }): UnimodalForwardOutput {
    let a = checkInput(x, this.branch, `${this.name}.forward x`);
    for (let p = 1; p <= this.branch.stageCount; p++) {
      a = this.branch.stage(p, a, options.training);
      const index = this.sePositions.indexOf(p);
      if (index >= 0) a = this.seBlocks[index]!.forward(a);
    }
    return this.branch.finish(a);
  }

  getState(): Record<string, Float32Array> {
    return readState(this.branch.state);
  }

  setState(state: Record<string, Float32Array>): void {
    writeState(this.branch.state, state, this.name);
  }

  dispose(): void {
    this.branch.dispose();
    for (const s of this.seBlocks) s.dispose();
  }
}
