import * as tf from '@tensorflow/tfjs';
import {
  BatchNorm,
  BiaslessConv2d,
  childInit,
  disposeParameters,
  globalAvgPool,
  Linear,
  maxPool2d,
  type Init,
  type NamedVariable,
  type StateEntry,
} from './layers.ts';
import { LateFusionNet } from './late-fusion.ts';
import { MultiBranchMmtmNet, StagedSeNet, type MmtmNetOptions, type SeNetOptions, type StagedBranch } from './multi-branch.ts';

/**
 * The ModelNet40 network of paper-spec §4.2: two torchvision-layout ResNet18 branches trained from scratch, joined
 * by MMTMs on the outputs of layer2, layer3 and layer4 (dims 128/256/512, Z = C).
 *
 * Branch: conv1 7×7/2 pad 3 (no bias) → BN → ReLU → max-pool 3×3/2 pad 1 → layer1…layer4 (two BasicBlocks each,
 * 64/128/256/512 channels, the first block of layer2–4 with stride 2 and a 1×1/2 conv + BN shortcut) → global
 * average pool → fc (C4 → K). Convolutions are initialised Kaiming-normal (fan_out, ReLU), BN γ = 1, β = 0
 * (eps 1e-5, momentum 0.1), fc with the PyTorch Linear default; no zero-init of the residual BNs.
 *
 * Stages for fusion: stage p ∈ 1…4 ends after layer p (stage 1 includes the stem). Default MMTM positions [2, 3, 4].
 * Knobs for CPUs: `width` scales every channel count (0.125 → 8/16/32/64); the input size is free (the global
 * pool adapts; at 32×32 layer4 is 1×1).
 *
 * Parameter names follow torchvision (`branch0.layer2.0.downsample.0.weight`, `branch0.bn1.weight`, `branch0.fc.bias`).
 */

export const RESNET18_MMTM_POSITIONS: readonly number[] = [2, 3, 4];

/** Output channels of layer1…layer4 for a width multiplier (1 = 64, 128, 256, 512). */
export function resnet18StageChannels(width: number): [number, number, number, number] {
  if (!(width > 0) || !Number.isFinite(width)) throw new Error(`width multiplier must be > 0, got ${width}`);
  const scale = (c: number) => Math.max(1, Math.round(c * width));
  return [scale(64), scale(128), scale(256), scale(512)];
}

/** torchvision's BasicBlock: conv3×3(stride) → BN → ReLU → conv3×3 → BN, + shortcut, → ReLU. */
class BasicBlock {
  readonly conv1: BiaslessConv2d;
  readonly bn1: BatchNorm;
  readonly conv2: BiaslessConv2d;
  readonly bn2: BatchNorm;
  readonly downsample: { conv: BiaslessConv2d; bn: BatchNorm } | null;

  constructor(init: Init, inChannels: number, outChannels: number, stride: number) {
    this.conv1 = new BiaslessConv2d(childInit(init, 'conv1'), inChannels, outChannels, 3, stride, 1);
    this.bn1 = new BatchNorm(childInit(init, 'bn1'), outChannels);
    this.conv2 = new BiaslessConv2d(childInit(init, 'conv2'), outChannels, outChannels, 3, 1, 1);
    this.bn2 = new BatchNorm(childInit(init, 'bn2'), outChannels);
    this.downsample =
      stride !== 1 || inChannels !== outChannels
        ? {
            conv: new BiaslessConv2d(childInit(init, 'downsample.0'), inChannels, outChannels, 1, stride, 0),
            bn: new BatchNorm(childInit(init, 'downsample.1'), outChannels),
          }
        : null;
  }

  apply(x: tf.Tensor4D, training: boolean): tf.Tensor4D {
    const h = tf.relu(this.bn1.apply(this.conv1.apply(x), training)) as tf.Tensor4D;
    const out = this.bn2.apply(this.conv2.apply(h), training);
    const shortcut = this.downsample ? this.downsample.bn.apply(this.downsample.conv.apply(x), training) : x;
    return tf.relu(tf.add(out, shortcut)) as tf.Tensor4D;
  }

  private get norms(): BatchNorm[] {
    return [this.bn1, this.bn2, ...(this.downsample ? [this.downsample.bn] : [])];
  }

  get parameters(): NamedVariable[] {
    return [
      ...this.conv1.parameters,
      ...this.bn1.parameters,
      ...this.conv2.parameters,
      ...this.bn2.parameters,
      ...(this.downsample ? [...this.downsample.conv.parameters, ...this.downsample.bn.parameters] : []),
    ];
  }

  get state(): StateEntry[] {
    return this.norms.flatMap((n) => n.state);
  }

  dispose(): void {
    disposeParameters(this.parameters);
    for (const n of this.norms) n.dispose();
  }
}

export interface Resnet18BranchOptions {
  inChannels: number;
  numClasses: number;
  width?: number;
}

/** One ResNet18 branch, run stage by stage (StagedBranch). */
export class Resnet18Branch implements StagedBranch {
  readonly stageCount = 4;
  readonly inputRank = 4;
  readonly inputChannels: number;
  readonly stageChannels: [number, number, number, number];
  readonly conv1: BiaslessConv2d;
  readonly bn1: BatchNorm;
  /** layer1…layer4, two blocks each. */
  readonly layers: [BasicBlock, BasicBlock][];
  readonly fc: Linear;

  constructor(init: Init, options: Resnet18BranchOptions) {
    if (!Number.isInteger(options.inChannels) || options.inChannels < 1) {
      throw new Error(`input channels must be a positive integer, got ${options.inChannels}`);
    }
    this.inputChannels = options.inChannels;
    this.stageChannels = resnet18StageChannels(options.width ?? 1);
    const c = this.stageChannels;
    this.conv1 = new BiaslessConv2d(childInit(init, 'conv1'), options.inChannels, c[0], 7, 2, 3);
    this.bn1 = new BatchNorm(childInit(init, 'bn1'), c[0]);
    this.layers = c.map((out, i) => {
      const inChannels = i === 0 ? c[0] : c[i - 1]!;
      const stride = i === 0 ? 1 : 2;
      const layer = childInit(init, `layer${i + 1}`);
      return [new BasicBlock(childInit(layer, '0'), inChannels, out, stride), new BasicBlock(childInit(layer, '1'), out, out, 1)] as [BasicBlock, BasicBlock];
    });
    this.fc = new Linear(childInit(init, 'fc'), c[3], options.numClasses);
  }

  stage(p: number, x: tf.Tensor, training: boolean): tf.Tensor4D {
    let a = x as tf.Tensor4D;
    if (p === 1) {
      a = tf.relu(this.bn1.apply(this.conv1.apply(a), training)) as tf.Tensor4D;
      a = maxPool2d(a, 3, 2, 1);
    }
    const [first, second] = this.layers[p - 1]!;
    return second.apply(first.apply(a, training), training);
  }

  finish(x: tf.Tensor): { features: tf.Tensor2D; logits: tf.Tensor2D } {
    const features = globalAvgPool(x);
    return { features, logits: this.fc.apply(features) };
  }

  /** conv1, bn1, layer1…layer4 blocks, fc (62 tensors). */
  get parameters(): NamedVariable[] {
    return [
      ...this.conv1.parameters,
      ...this.bn1.parameters,
      ...this.layers.flatMap(([a, b]) => [...a.parameters, ...b.parameters]),
      ...this.fc.parameters,
    ];
  }

  get state(): StateEntry[] {
    return [...this.bn1.state, ...this.layers.flatMap(([a, b]) => [...a.state, ...b.state])];
  }

  dispose(): void {
    disposeParameters([...this.conv1.parameters, ...this.bn1.parameters, ...this.fc.parameters]);
    this.bn1.dispose();
    for (const [a, b] of this.layers) {
      a.dispose();
      b.dispose();
    }
  }
}

/** `channels`: 3 per view (the renders are read as RGB); two views, or three for the three-view experiment. */
export interface Resnet18MmtmNetOptions extends MmtmNetOptions {
  /** Stages (layers) after which an MMTM sits (default [2, 3, 4]). */
  mmtmPositions?: number[];
}

export function createResnet18MmtmNet(options: Resnet18MmtmNetOptions): MultiBranchMmtmNet<Resnet18Branch> {
  const branch = (channels: number, k: number) =>
    new Resnet18Branch({ seed: options.seed, prefix: `branch${k}` }, { inChannels: channels, numClasses: options.numClasses, width: options.width });
  return new MultiBranchMmtmNet({
    name: 'Resnet18MmtmNet',
    branches: options.channels.map(branch),
    positions: options.mmtmPositions ?? RESNET18_MMTM_POSITIONS,
    seed: options.seed,
    fidelity: options.fidelity,
  });
}

export interface Resnet18UnimodalSeNetOptions extends SeNetOptions {
  /** Stages after which an SE block sits (default [2, 3, 4], the MMTM positions). */
  sePositions?: number[];
}

/** The uni-modal SE baseline (paper-spec §11): one ResNet18 with SE blocks (Z = C) after layer2/3/4. */
export function createResnet18UnimodalSeNet(options: Resnet18UnimodalSeNetOptions): StagedSeNet<Resnet18Branch> {
  const branch = new Resnet18Branch(
    { seed: options.seed, prefix: `branch${options.modality ?? 0}` },
    { inChannels: options.channels, numClasses: options.numClasses, width: options.width },
  );
  return new StagedSeNet({
    name: 'Resnet18UnimodalSeNet',
    branch,
    positions: options.sePositions ?? RESNET18_MMTM_POSITIONS,
    seed: options.seed,
    fidelity: options.fidelity,
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Late fusion (src/nn/late-fusion.ts) on audio spectrograms and video frames: CREMA-D's encoders

/**
 * A ResNet18 over the frames of a clip (the OGM-GE / BalanceBenchmark visual encoder): the B×T×H×W×C input is run
 * as B·T images through the 2D ResNet18, and the final features are averaged over time and space together
 * (`adaptive_avg_pool3d` over T×h×w in their code) into B×C4. Parameters and state are the inner branch's, with the
 * same names, so a frame branch starts as the image branch of the same seed and prefix.
 */
export class FrameResnet18Branch implements StagedBranch {
  readonly stageCount = 4;
  readonly inputRank = 5;
  readonly inputChannels: number;
  readonly stageChannels: readonly number[];

  constructor(
    readonly inner: Resnet18Branch,
    readonly frames: number,
  ) {
    if (!Number.isInteger(frames) || frames < 1) throw new Error(`frames must be a positive integer, got ${frames}`);
    this.inputChannels = inner.inputChannels;
    this.stageChannels = inner.stageChannels;
  }

  stage(p: number, x: tf.Tensor, training: boolean): tf.Tensor4D {
    if (p !== 1) return this.inner.stage(p, x, training);
    const [b, t, h, w, c] = x.shape as [number, number, number, number, number];
    if (t !== this.frames) throw new Error(`FrameResnet18Branch: built for ${this.frames} frames, got an input of ${t}`);
    return this.inner.stage(1, tf.reshape(x, [b * t, h, w, c]), training);
  }

  finish(x: tf.Tensor): { features: tf.Tensor2D; logits: tf.Tensor2D } {
    const [bt, h, w, c] = x.shape as [number, number, number, number];
    const features = tf.mean(tf.reshape(x, [bt / this.frames, this.frames * h * w, c]), 1) as tf.Tensor2D;
    return { features, logits: this.inner.fc.apply(features) };
  }

  get parameters(): NamedVariable[] {
    return this.inner.parameters;
  }

  get state(): StateEntry[] {
    return this.inner.state;
  }

  dispose(): void {
    this.inner.dispose();
  }
}

export interface Resnet18LateFusionNetOptions {
  /**
   * Per modality, its per-sample channels-last shape: [H, W, C] for an image or spectrogram (a ResNet18 with C input
   * channels: 1 for CREMA-D's spectrogram), [T, H, W, C] for T frames (FrameResnet18Branch).
   */
  shapes: readonly (readonly number[])[];
  numClasses: number;
  seed: number;
  width?: number;
  /** Keep each encoder's fc as a per-branch classifier (Gradient-Blending, MMPareto). */
  unimodalHeads?: boolean;
}

/**
 * The late-fusion net of the balancing-method papers on CREMA-D (OGM-GE's AVClassifier with ConcatFusion): one
 * ResNet18 per modality trained from scratch (audio: one input channel; visual: frames through a 2D ResNet18, pooled
 * over time), their 512-d pooled features (at width 1) concatenated into one Linear(ΣF → K). Initialisation is this
 * file's (BatchNorm γ = 1); OGM-GE's code draws γ from N(1, 0.02²), a difference we keep for one ResNet18 in mmsweep.
 */
export function createResnet18LateFusionNet(options: Resnet18LateFusionNetOptions): LateFusionNet<StagedBranch> {
  return new LateFusionNet<StagedBranch>({
    name: 'Resnet18LateFusionNet',
    encoders: options.shapes.map((shape, k) => {
      if (shape.length !== 3 && shape.length !== 4) throw new Error(`Resnet18LateFusionNet: modality ${k} has shape [${shape.join(', ')}]; give [H, W, C] or [T, H, W, C]`);
      const inner = new Resnet18Branch({ seed: options.seed, prefix: `branch${k}` }, { inChannels: shape[shape.length - 1]!, numClasses: options.numClasses, width: options.width });
      const branch = shape.length === 4 ? new FrameResnet18Branch(inner, shape[0]!) : inner;
      return { branch, head: inner.fc.parameters };
    }),
    numClasses: options.numClasses,
    seed: options.seed,
    unimodalHeads: options.unimodalHeads ?? false,
  });
}
