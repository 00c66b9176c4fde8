import * as tf from '@tensorflow/tfjs';
import { counterState, type Init, type NamedVariable, type StateEntry } from './layers.ts';
import { maxPool3dSame, sameOutputSize, Unit3d, type Triple, type Unit3dSpec } from './layers3d.ts';
import { labelledStream } from './random.ts';
import { MultiBranchMmtmNet, StagedSeNet, type MmtmNetOptions, type SeNetOptions, type StagedBranch } from './multi-branch.ts';

/**
 * The NVGesture network of paper-spec §4.3: two I3D (Inception-v1 inflated to 3-D) branches joined by MMTMs after
 * the six final inception modules (Mixed_4c, 4d, 4e, 4f, 5b, 5c), and the matching uni-modal SE baseline (§11).
 *
 * A branch is a sequence of 16 stages, named as in the public PyTorch port (so checkpoints map by name, see
 * weights.ts): Conv3d_1a_7x7 (7×7×7 /2, 64) → MaxPool3d_2a_3x3 (1×3×3 /1,2,2) → Conv3d_2b_1x1 (64) →
 * Conv3d_2c_3x3 (192) → MaxPool3d_3a_3x3 (1×3×3 /1,2,2) → Mixed_3b → Mixed_3c → MaxPool3d_4a_3x3 (3×3×3 /2) →
 * Mixed_4b…Mixed_4f → MaxPool3d_5a_2x2 (2×2×2 /2) → Mixed_5b → Mixed_5c; then the head: average pool over a window
 * of (2, H, W) with stride 1 (the port's AvgPool3d((2,7,7)) — H×W = 7×7 for 224² inputs; for other input sizes the
 * window spans the whole final map, so the head stays a global spatial pool), dropout, a 1×1×1 conv with bias to
 * the classes, and the mean over the remaining time steps (paper-spec A4: "mean of the temporal logits").
 * An inception module has four branches concatenated on channels: b0 1×1×1; b1a 1×1×1 → b1b 3×3×3; b2a 1×1×1 →
 * b2b 3×3×3; 3×3×3 max-pool (stride 1) → b3b 1×1×1.
 *
 * Knobs for small machines: `width` scales every channel count (round(c·width), at least 1); the input's frames and
 * size are free (the head adapts). Width 1 at 64×224² is the paper's network.
 *
 * Features (for RUBi) are the temporal mean of the pooled 1024-d vectors, the linear head's input: mean over time
 * of the per-step logits = head(features) without dropout.
 */

export type InceptionWidths = [b0: number, b1a: number, b1b: number, b2a: number, b2b: number, b3b: number];

/** Branch widths of the inception modules (paper-spec §4.3). */
export const I3D_MIXED_WIDTHS: Readonly<Record<string, InceptionWidths>> = {
  Mixed_3b: [64, 96, 128, 16, 32, 32],
  Mixed_3c: [128, 128, 192, 32, 96, 64],
  Mixed_4b: [192, 96, 208, 16, 48, 64],
  Mixed_4c: [160, 112, 224, 24, 64, 64],
  Mixed_4d: [128, 128, 256, 24, 64, 64],
  Mixed_4e: [112, 144, 288, 32, 64, 64],
  Mixed_4f: [256, 160, 320, 32, 128, 128],
  Mixed_5b: [256, 160, 320, 32, 128, 128],
  Mixed_5c: [384, 192, 384, 48, 128, 128],
};

export const I3D_STAGE_NAMES = [
  'Conv3d_1a_7x7',
  'MaxPool3d_2a_3x3',
  'Conv3d_2b_1x1',
  'Conv3d_2c_3x3',
  'MaxPool3d_3a_3x3',
  'Mixed_3b',
  'Mixed_3c',
  'MaxPool3d_4a_3x3',
  'Mixed_4b',
  'Mixed_4c',
  'Mixed_4d',
  'Mixed_4e',
  'Mixed_4f',
  'MaxPool3d_5a_2x2',
  'Mixed_5b',
  'Mixed_5c',
] as const;
export type I3dStageName = (typeof I3D_STAGE_NAMES)[number];

/** The six final inception modules (paper-spec §4.3: MMTM placement). */
export const DEFAULT_I3D_FUSION_AFTER: readonly I3dStageName[] = ['Mixed_4c', 'Mixed_4d', 'Mixed_4e', 'Mixed_4f', 'Mixed_5b', 'Mixed_5c'];

export const I3D_DROPOUT = 0.5;

export type I3dStageSpec =
  | { name: I3dStageName; kind: 'unit'; unit: Unit3dSpec; outChannels: number }
  | { name: I3dStageName; kind: 'pool'; kernel: Triple; stride: Triple; outChannels: number }
  | { name: I3dStageName; kind: 'mixed'; inChannels: number; widths: InceptionWidths; outChannels: number };

export interface I3dLayout {
  stages: I3dStageSpec[];
  /** Output channels of the final stage (1024 at width 1): the head's input. */
  featureChannels: number;
  /** The logits layer (1×1×1 conv with bias). */
  logits: Unit3dSpec;
}

export function scaleChannels(channels: number, width: number): number {
  if (!(width > 0) || !Number.isFinite(width)) throw new Error(`width multiplier must be > 0, got ${width}`);
  return Math.max(1, Math.round(channels * width));
}

/** The stage list of one branch (no tensors): what the branch builds and what tests and the weight loader check. */
export function i3dLayout(options: { inChannels: number; numClasses: number; width?: number }): I3dLayout {
  const width = options.width ?? 1;
  const c = (n: number) => scaleChannels(n, width);
  const stages: I3dStageSpec[] = [];
  let channels = options.inChannels;
  const unit = (name: I3dStageName, out: number, kernel: Triple, stride: Triple = [1, 1, 1]) => {
    stages.push({ name, kind: 'unit', unit: { inChannels: channels, outChannels: out, kernel, stride, batchNorm: true }, outChannels: out });
    channels = out;
  };
  const pool = (name: I3dStageName, kernel: Triple, stride: Triple) => stages.push({ name, kind: 'pool', kernel, stride, outChannels: channels });
  const mixed = (name: I3dStageName) => {
    const widths = I3D_MIXED_WIDTHS[name]!.map(c) as InceptionWidths;
    const out = widths[0] + widths[2] + widths[4] + widths[5];
    stages.push({ name, kind: 'mixed', inChannels: channels, widths, outChannels: out });
    channels = out;
  };
  unit('Conv3d_1a_7x7', c(64), [7, 7, 7], [2, 2, 2]);
  pool('MaxPool3d_2a_3x3', [1, 3, 3], [1, 2, 2]);
  unit('Conv3d_2b_1x1', c(64), [1, 1, 1]);
  unit('Conv3d_2c_3x3', c(192), [3, 3, 3]);
  pool('MaxPool3d_3a_3x3', [1, 3, 3], [1, 2, 2]);
  mixed('Mixed_3b');
  mixed('Mixed_3c');
  pool('MaxPool3d_4a_3x3', [3, 3, 3], [2, 2, 2]);
  for (const name of ['Mixed_4b', 'Mixed_4c', 'Mixed_4d', 'Mixed_4e', 'Mixed_4f'] as const) mixed(name);
  pool('MaxPool3d_5a_2x2', [2, 2, 2], [2, 2, 2]);
  mixed('Mixed_5b');
  mixed('Mixed_5c');
  return {
    stages,
    featureChannels: channels,
    logits: { inChannels: channels, outChannels: options.numClasses, kernel: [1, 1, 1], stride: [1, 1, 1], batchNorm: false },
  };
}

/**
 * Output shape [T, H, W, C] of every stage for an input of [T, H, W] (TF 'same' arithmetic: ⌈n/s⌉ per strided
 * axis), then the head's number of time steps (T_final − 1 with the 2-step temporal window, or 1 when T_final = 1).
 * For 64×224² the paper's shapes: 16×14×14 after Mixed_4c…4f, 8×7×7 after Mixed_5b/5c, 7 logit time steps.
 */
export function i3dStageShapes(layout: I3dLayout, input: Triple): { stages: { name: I3dStageName; shape: [number, number, number, number] }[]; logitSteps: number } {
  let [t, h, w] = input;
  const stages = layout.stages.map((stage) => {
    const stride = stage.kind === 'unit' ? stage.unit.stride : stage.kind === 'pool' ? stage.stride : ([1, 1, 1] as Triple);
    t = sameOutputSize(t, stride[0]);
    h = sameOutputSize(h, stride[1]);
    w = sameOutputSize(w, stride[2]);
    return { name: stage.name, shape: [t, h, w, stage.outChannels] as [number, number, number, number] };
  });
  return { stages, logitSteps: t >= 2 ? t - 1 : 1 };
}

/** The unit specs of an inception module by sub-branch name. */
export function inceptionUnits(inChannels: number, widths: InceptionWidths): Record<'b0' | 'b1a' | 'b1b' | 'b2a' | 'b2b' | 'b3b', Unit3dSpec> {
  const [b0, b1a, b1b, b2a, b2b, b3b] = widths;
  const u = (i: number, o: number, k: number): Unit3dSpec => ({ inChannels: i, outChannels: o, kernel: [k, k, k], stride: [1, 1, 1], batchNorm: true });
  return { b0: u(inChannels, b0, 1), b1a: u(inChannels, b1a, 1), b1b: u(b1a, b1b, 3), b2a: u(inChannels, b2a, 1), b2b: u(b2a, b2b, 3), b3b: u(inChannels, b3b, 1) };
}

export interface I3dTensorSpec {
  /** Name without the branch prefix, e.g. `Mixed_4c.b1b.conv3d.weight`. */
  name: string;
  shape: number[];
  /** `parameter` (trainable) or `state` (BatchNorm running statistics). */
  kind: 'parameter' | 'state';
}

/** Every tensor of a branch (parameters in branch order, then BN statistics), without building it. */
export function i3dTensorSpecs(layout: I3dLayout): I3dTensorSpec[] {
  const params: I3dTensorSpec[] = [];
  const state: I3dTensorSpec[] = [];
  const unitTensors = (prefix: string, u: Unit3dSpec) => {
    params.push({ name: `${prefix}.conv3d.weight`, shape: [...u.kernel, u.inChannels, u.outChannels], kind: 'parameter' });
    if (u.batchNorm) {
      params.push({ name: `${prefix}.bn.weight`, shape: [u.outChannels], kind: 'parameter' });
      params.push({ name: `${prefix}.bn.bias`, shape: [u.outChannels], kind: 'parameter' });
      state.push({ name: `${prefix}.bn.runningMean`, shape: [u.outChannels], kind: 'state' });
      state.push({ name: `${prefix}.bn.runningVar`, shape: [u.outChannels], kind: 'state' });
    } else {
      params.push({ name: `${prefix}.conv3d.bias`, shape: [u.outChannels], kind: 'parameter' });
    }
  };
  for (const stage of layout.stages) {
    if (stage.kind === 'unit') unitTensors(stage.name, stage.unit);
    if (stage.kind === 'mixed') for (const [sub, u] of Object.entries(inceptionUnits(stage.inChannels, stage.widths))) unitTensors(`${stage.name}.${sub}`, u);
  }
  unitTensors('logits', layout.logits);
  return [...params, ...state];
}

class InceptionModule {
  readonly units: Record<'b0' | 'b1a' | 'b1b' | 'b2a' | 'b2b' | 'b3b', Unit3d>;

  constructor(init: Init, inChannels: number, widths: InceptionWidths) {
    const specs = inceptionUnits(inChannels, widths);
    const make = (name: keyof typeof specs) => new Unit3d({ seed: init.seed, prefix: `${init.prefix}.${name}` }, specs[name]);
    this.units = { b0: make('b0'), b1a: make('b1a'), b1b: make('b1b'), b2a: make('b2a'), b2b: make('b2b'), b3b: make('b3b') };
  }

  apply(x: tf.Tensor5D, training: boolean): tf.Tensor5D {
    const u = this.units;
    const y0 = u.b0.apply(x, training);
    const y1 = u.b1b.apply(u.b1a.apply(x, training), training);
    const y2 = u.b2b.apply(u.b2a.apply(x, training), training);
    const y3 = u.b3b.apply(maxPool3dSame(x, [3, 3, 3], [1, 1, 1]), training);
    return tf.concat([y0, y1, y2, y3], 4);
  }

  get all(): Unit3d[] {
    const u = this.units;
    return [u.b0, u.b1a, u.b1b, u.b2a, u.b2b, u.b3b];
  }
}

export interface I3dBranchOptions {
  inChannels: number;
  numClasses: number;
  width?: number;
  /** Dropout rate before the logits (paper-spec §4.3: 0.5). */
  dropout?: number;
}

/**
 * One I3D branch as a `StagedBranch` (multi-branch.ts), parameters named `<prefix>.<stage>[.<sub>].conv3d.weight`, ….
 *
 * Dropout masks are drawn in JavaScript from the stream (seed, `<prefix>.dropout.<n>`) for the n-th training
 * forward, so runs are reproducible on every backend; n is model state (`<prefix>.dropoutCalls`) so a resumed run
 * continues the sequence. `finish` has no training argument in the StagedBranch contract: it applies dropout when
 * the last `stage` call of the same forward pass was a training one.
 */
export class I3dBranch implements StagedBranch {
  readonly stageCount = I3D_STAGE_NAMES.length;
  readonly stageChannels: readonly number[];
  readonly inputChannels: number;
  readonly inputRank = 5;
  readonly layout: I3dLayout;
  readonly dropout: number;
  /** Unit3D layers by stage name (`Conv3d_1a_7x7`, `Mixed_4c.b1b`, …, `logits`). */
  readonly units = new Map<string, Unit3d>();
  private readonly modules: (Unit3d | InceptionModule | null)[];
  private readonly logits: Unit3d;
  private readonly seed: number;
  private readonly prefix: string;
  private dropoutCalls = 0;
  private lastTraining = false;

  constructor(init: Init, options: I3dBranchOptions) {
    this.layout = i3dLayout({ inChannels: options.inChannels, numClasses: options.numClasses, width: options.width });
    this.inputChannels = options.inChannels;
    this.dropout = options.dropout ?? I3D_DROPOUT;
    if (!(this.dropout >= 0 && this.dropout < 1)) throw new Error(`dropout must be in [0, 1), got ${this.dropout}`);
    this.seed = init.seed;
    this.prefix = init.prefix;
    const at = (name: string): Init => ({ seed: init.seed, prefix: `${init.prefix}.${name}` });
    this.modules = this.layout.stages.map((stage) => {
      if (stage.kind === 'pool') return null;
      if (stage.kind === 'unit') {
        const unit = new Unit3d(at(stage.name), stage.unit);
        this.units.set(stage.name, unit);
        return unit;
      }
      const module = new InceptionModule(at(stage.name), stage.inChannels, stage.widths);
      for (const [sub, unit] of Object.entries(module.units)) this.units.set(`${stage.name}.${sub}`, unit);
      return module;
    });
    this.logits = new Unit3d(at('logits'), this.layout.logits);
    this.units.set('logits', this.logits);
    this.stageChannels = this.layout.stages.map((s) => s.outChannels);
  }

  stage(p: number, x: tf.Tensor, training: boolean): tf.Tensor {
    const spec = this.layout.stages[p - 1];
    if (!spec) throw new Error(`I3D has stages 1…${this.stageCount}, not ${p}`);
    this.lastTraining = training;
    const module = this.modules[p - 1]!;
    if (spec.kind === 'pool') return maxPool3dSame(x as tf.Tensor5D, spec.kernel, spec.stride);
    return module!.apply(x as tf.Tensor5D, training);
  }

  finish(x: tf.Tensor): { features: tf.Tensor2D; logits: tf.Tensor2D } {
    const [batch, time, , , channels] = x.shape as [number, number, number, number, number];
    const spatial = tf.mean(x, [2, 3]) as tf.Tensor3D; // B×T×C
    // AvgPool over (2, H, W) with stride 1: a moving average of two time steps (one step if T = 1).
    const pooled = time >= 2 ? tf.div(tf.add(tf.slice(spatial, [0, 0, 0], [-1, time - 1, -1]), tf.slice(spatial, [0, 1, 0], [-1, time - 1, -1])), 2) : spatial;
    const steps = pooled.shape[1]!;
    const features = tf.mean(pooled, 1) as tf.Tensor2D;
    let dropped: tf.Tensor = pooled;
    if (this.lastTraining && this.dropout > 0) {
      dropped = tf.mul(pooled, tf.tensor3d(this.dropoutMask(batch * steps * channels), [batch, steps, channels]));
    }
    const perStep = this.logits.apply(tf.reshape(dropped, [batch, steps, 1, 1, channels]) as tf.Tensor5D, false);
    const logits = tf.mean(tf.reshape(perStep, [batch, steps, this.layout.logits.outChannels]), 1) as tf.Tensor2D;
    return { features, logits };
  }

  private dropoutMask(size: number): Float32Array {
    const random = labelledStream(this.seed, `${this.prefix}.dropout.${this.dropoutCalls++}`);
    const keep = 1 / (1 - this.dropout);
    const mask = new Float32Array(size);
    for (let i = 0; i < size; i++) mask[i] = random.uniform() < this.dropout ? 0 : keep;
    return mask;
  }

  get parameters(): NamedVariable[] {
    return [...this.units.values()].flatMap((u) => u.parameters);
  }

  get state(): StateEntry[] {
    return [
      ...[...this.units.values()].flatMap((u) => u.state),
      counterState(
        `${this.prefix}.dropoutCalls`,
        () => this.dropoutCalls,
        (v) => (this.dropoutCalls = v),
      ),
    ];
  }

  dispose(): void {
    for (const u of this.units.values()) u.dispose();
  }
}

/** Stage indices (1-based) of stage names; rejects unknown names. */
export function i3dStagePositions(names: readonly string[], what: string): number[] {
  return names.map((name) => {
    const index = (I3D_STAGE_NAMES as readonly string[]).indexOf(name);
    if (index < 0) throw new Error(`${what}: unknown I3D stage '${name}' (stages: ${I3D_STAGE_NAMES.join(', ')})`);
    return index + 1;
  });
}

export interface I3dNetOptions extends MmtmNetOptions {
  dropout?: number;
  /** Stages after which an MMTM sits (default the six final inception modules). */
  mmtmAfter?: readonly string[];
}

/**
 * The two-branch I3D-MMTM network. Parameter names `branch0.…`, `branch1.…`, `mmtm<stage index>.…` (Mixed_4c is
 * stage 10, …, Mixed_5c stage 16). Groups θ0, θ1, θ0′, θ1′ by role as for every MultiBranchMmtmNet.
 */
export function createI3dNet(options: I3dNetOptions): MultiBranchMmtmNet<I3dBranch> {
  const branch = (channels: number, k: number) =>
    new I3dBranch({ seed: options.seed, prefix: `branch${k}` }, { inChannels: channels, numClasses: options.numClasses, width: options.width, dropout: options.dropout });
  return new MultiBranchMmtmNet({
    name: 'I3dMmtmNet',
    branches: options.channels.map(branch),
    positions: i3dStagePositions(options.mmtmAfter ?? DEFAULT_I3D_FUSION_AFTER, 'mmtmAfter'),
    seed: options.seed,
    fidelity: options.fidelity,
  });
}

export interface I3dUnimodalSeNetOptions extends SeNetOptions {
  dropout?: number;
  /** Stages after which an SE block sits (default: the MMTM positions). */
  seAfter?: readonly string[];
}

/** The uni-modal SE baseline (paper-spec §11): one I3D branch with SE blocks (Z = C) at the MMTM positions. */
export function createI3dUnimodalSeNet(options: I3dUnimodalSeNetOptions): StagedSeNet<I3dBranch> {
  const k = options.modality ?? 0;
  return new StagedSeNet({
    name: 'I3dSeNet',
    branch: new I3dBranch({ seed: options.seed, prefix: `branch${k}` }, { inChannels: options.channels, numClasses: options.numClasses, width: options.width, dropout: options.dropout }),
    positions: i3dStagePositions(options.seAfter ?? DEFAULT_I3D_FUSION_AFTER, 'seAfter'),
    seed: options.seed,
    fidelity: options.fidelity,
  });
}
