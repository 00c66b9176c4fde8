import * as tf from '@tensorflow/tfjs';
import type { FidelitySwitches } from '../spec/fidelity.ts';
import { readState, writeState, type NamedVariable, type StateEntry } from './layers.ts';
import { Mmtm, SeBlock, type FusionContext, type MmtmFidelity } from './mmtm.ts';
import type { ForwardOptions, ForwardOutput, MultimodalNet, ParameterGroups, UnimodalForwardOutput, UnimodalNet } from './types.ts';

/**
 * A backbone that runs stage by stage, so that fusion (MMTM) or SE modules can act on the output of any stage:
 * the shape shared by the CMNIST 4-conv, ResNet18 and I3D branches, and usable by any other backbone.
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

/** What every backbone's MMTM-net factory takes (CMNIST, ResNet18, I3D), besides its own fusion positions. */
export interface MmtmNetOptions {
  /** Input channels per modality, in branch order (e.g. CMNIST colored 3, gray 1; NVGesture RGB 3, depth 1). */
  channels: readonly number[];
  numClasses: number;
  /** Seed of the weight initialisation. */
  seed: number;
  fidelity: MmtmFidelity | FidelitySwitches;
  /** Channel width multiplier (1 = the paper's network). */
  width?: number;
}

/** What every backbone's uni-modal SE-net factory takes (paper-spec §11), besides its own SE positions. */
export interface SeNetOptions {
  /** Input channels of the modality. */
  channels: number;
  numClasses: number;
  seed: number;
  /** Only `gateScale` is used (D1 applies to SE gates as to MMTM gates). */
  fidelity: Pick<FidelitySwitches, 'gateScale'>;
  width?: number;
  /** Names the parameters `branch<k>.…` so that, with the same seed, the backbone starts as branch k of the MMTM net (default 0). */
  modality?: 0 | 1;
}

export interface MultiBranchMmtmNetOptions<B extends StagedBranch = StagedBranch> {
  /** Name used in error messages, e.g. `Resnet18MmtmNet`. */
  name: string;
  /** Branch k reads modality k; parameter names prefixed `branch<k>.`. Two, or three for three-view ModelNet40. */
  branches: readonly B[];
  /** Stages after which an MMTM sits. */
  positions: readonly number[];
  seed: number;
  fidelity: MmtmFidelity | FidelitySwitches;
}

/**
 * The MMTM network of paper-spec §2 over M ≥ 2 staged backbones (two in the paper's main experiments, three in
 * its three-view ModelNet40 one, §8.6), with extras for checkpoints and tests. The CMNIST, ResNet18 and I3D nets
 * are all this class with different branches.
 */
export class MultiBranchMmtmNet<B extends StagedBranch = StagedBranch> implements MultimodalNet {
  readonly branches: readonly B[];
  readonly mmtms: readonly Mmtm[];
  readonly mmtmPositions: readonly number[];
  /** Trainable variables with stable names, in the order of `trainableVariables`. */
  readonly namedParameters: readonly NamedVariable[];
  readonly trainableVariables: readonly tf.Variable[];
  readonly groups: ParameterGroups;
  private readonly stateEntries: StateEntry[];
  private readonly name: string;

  constructor(options: MultiBranchMmtmNetOptions<B>) {
    this.name = options.name;
    this.branches = [...options.branches];
    const branches = this.branches;
    if (branches.length < 2) throw new Error(`${this.name}: a multi-modal net needs at least two branches, got ${branches.length}`);
    const stageCount = branches[0]!.stageCount;
    if (branches.some((b) => b.stageCount !== stageCount)) {
      throw new Error(`${this.name}: the branches have ${branches.map((b) => b.stageCount).join(', ')} stages; they must agree`);
    }
    this.mmtmPositions = validateStagePositions(options.positions, stageCount, 'mmtmPositions');
    const fidelity: MmtmFidelity = {
      gateScale: options.fidelity.gateScale,
      rebalanceAverage: options.fidelity.rebalanceAverage,
      replicateSkeletonAvgBug: options.fidelity.replicateSkeletonAvgBug,
    };
    this.mmtms = this.mmtmPositions.map(
      (p) => new Mmtm({ seed: options.seed, prefix: `mmtm${p}` }, branches.map((b) => b.stageChannels[p - 1]!), fidelity),
    );
    // Stable order: branch 0, branch 1, …, then per MMTM (ascending position) squeeze, excite0, excite1, ….
    this.namedParameters = [...branches.flatMap((b) => b.parameters), ...this.mmtms.flatMap((m) => m.parameters)];
    this.trainableVariables = this.namedParameters.map((p) => p.variable);
    const vars = (ps: NamedVariable[]) => ps.map((p) => p.variable);
    // Groups by role (paper-spec §7.2, §8.6): the squeeze layer of every MMTM is in every θk′.
    this.groups = {
      theta: branches.map((b) => vars(b.parameters)),
      thetaPrime: branches.map((_, k) => this.mmtms.flatMap((m) => vars([...m.squeeze.parameters, ...m.excites[k]!.parameters]))),
    };
    this.stateEntries = [...branches.flatMap((b) => b.state), ...this.mmtms.flatMap((m) => m.state)];
  }

  get modalityCount(): number {
    return this.branches.length;
  }

  get fusionCount(): number {
    return this.mmtms.length;
  }

  forward(inputs: readonly tf.Tensor[], options: ForwardOptions): ForwardOutput {
    if (inputs.length !== this.branches.length) {
      throw new Error(`${this.name}.forward: expected ${this.branches.length} inputs (one per modality), got ${inputs.length}`);
    }
    let maps = inputs.map((x, k) => checkInput(x, this.branches[k]!, `${this.name}.forward input ${k}`));
    const ctx: FusionContext = {
      mode: options.mode,
      regularTrainingStep: options.regularTrainingStep ?? false,
      collectSqueezed: options.collectSqueezed ?? false,
    };
    const squeezed: tf.Tensor2D[][] = [];
    for (let p = 1; p <= this.branches[0]!.stageCount; p++) {
      maps = maps.map((a, k) => this.branches[k]!.stage(p, a, options.training));
      const index = this.mmtmPositions.indexOf(p);
      if (index >= 0) {
        const fused = this.mmtms[index]!.forward(maps, ctx);
        maps = fused.outputs;
        if (fused.squeezed) squeezed.push(fused.squeezed);
      }
    }
    const finished = maps.map((a, k) => this.branches[k]!.finish(a));
    const branchLogits = finished.map((f) => f.logits);
    const output: ForwardOutput = {
      branchLogits,
      logits: meanLogits(branchLogits),
      branchFeatures: finished.map((f) => f.features),
    };
    if (ctx.collectSqueezed) output.squeezed = squeezed;
    return output;
  }

  setSqueezeMeans(means: Float32Array[][]): void {
    if (means.length !== this.mmtms.length) {
      throw new Error(`setSqueezeMeans: got means for ${means.length} MMTMs, the network has ${this.mmtms.length}`);
    }
    means.forEach((m, i) => this.mmtms[i]!.setSqueezeMeans(m));
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

/** ŷ = the mean of the branch logits, (ŷ0 + ŷ1)/2 for two branches. */
function meanLogits(branchLogits: readonly tf.Tensor2D[]): tf.Tensor2D {
  return tf.div(tf.addN(branchLogits as tf.Tensor2D[]), branchLogits.length);
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
