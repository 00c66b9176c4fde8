import * as tf from '@tensorflow/tfjs';
import { BatchNorm, Conv2d, disposeParameters, globalAvgPool, Linear, maxPool2d, normThenConv, relu, type Init, type NamedVariable, type StateEntry } from './layers.ts';
import { LateFusionNet } from './late-fusion.ts';
import { nativeConvPoolReluInference } from '../backend/native-ops.ts';
import { MultiBranchMmtmNet, StagedSeNet, type MmtmNetOptions, type SeNetOptions, type StagedBranch } from './multi-branch.ts';

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

/** One 4-conv branch, run stage by stage so that fusion modules can act between stages. */
export class CmnistBranch implements StagedBranch {
  readonly stageCount = 4;
  readonly inputRank = 4;
  readonly inputNorm: BatchNorm;
  readonly convs: [Conv2d, Conv2d, Conv2d, Conv2d];
  readonly head: Linear;
  readonly stageChannels: [number, number, number, number];

  constructor(init: Init, readonly inputChannels: number, numClasses: number, width: number) {
    const inChannels = inputChannels;
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
  stage(p: number, x: tf.Tensor, training: boolean): tf.Tensor4D {
    if (p === 1) {
      const conv1 = this.convs[0];
      if (!training) {
        // Natively the bias after the pool, on a quarter of the elements: the same values (native-ops.ts).
        const normalised = this.inputNorm.apply(x, false) as tf.Tensor4D;
        const w = conv1.weight.variable as tf.Tensor4D;
        const fused = nativeConvPoolReluInference(normalised, w, conv1.bias.variable, conv1.stride, conv1.padding, 3, 2, 1);
        if (fused) return fused;
        return relu(maxPool2d(conv1.apply(normalised), 3, 2, 1));
      }
      // The input x is data: natively in training, the input norm and conv1 as one op without conv1's input gradient.
      const c1 = normThenConv(this.inputNorm, conv1, x as tf.Tensor4D, training);
      // pool(relu(c)) computed as relu(pool(c)): the same values (max and ReLU commute), and the same gradient —
      // a window whose maximum is positive has the same first maximum either way, one whose maximum is ≤ 0 passes
      // no gradient either way — with the ReLU and its gradient on a quarter of the elements (issue 14).
      return relu(maxPool2d(c1, 3, 2, 1));
    }
    return this.convs[p - 1]!.apply(x as tf.Tensor4D, 'relu');
  }

  /** Global average pool → features (B×C4), and the head's logits (B×K). */
  finish(x: tf.Tensor): { features: tf.Tensor2D; logits: tf.Tensor2D } {
    const features = globalAvgPool(x as tf.Tensor4D);
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

export interface CmnistNetOptions extends MmtmNetOptions {
  /** Conv indices after which an MMTM sits (default [2, 3, 4]). */
  mmtmPositions?: number[];
}

/** The CMNIST MMTM network: the generic multi-branch net over two 4-conv branches. */
export type CmnistMultimodalNet = MultiBranchMmtmNet<CmnistBranch>;

/**
 * The two-branch CMNIST MMTM network (paper-spec §2, §4.1). ŷ0 is branch 0's head (m0, colored), ŷ1 branch 1's
 * (m1, gray), ŷ = (ŷ0 + ŷ1)/2 on the logits. Inputs are channels-last B×28×28×C. Parameter order: branch 0,
 * branch 1, then per MMTM (ascending position) squeeze, excite0, excite1; the MMTM at conv p joins C_p channels.
 */
export function createCmnistNet(options: CmnistNetOptions): CmnistMultimodalNet {
  const width = options.width ?? 1;
  return new MultiBranchMmtmNet({
    name: 'CmnistNet',
    branches: options.channels.map((c, k) => new CmnistBranch({ seed: options.seed, prefix: `branch${k}` }, c, options.numClasses, width)),
    positions: options.mmtmPositions ?? DEFAULT_MMTM_POSITIONS,
    seed: options.seed,
    fidelity: options.fidelity,
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Uni-modal SE baseline (paper-spec §11)

export interface CmnistUnimodalSeNetOptions extends SeNetOptions {
  /** Conv indices after which an SE block sits (default [2, 3, 4], the MMTM positions). */
  sePositions?: number[];
}

/** The CMNIST uni-modal SE baseline: the generic staged SE net over one 4-conv branch. */
export function createCmnistUnimodalSeNet(options: CmnistUnimodalSeNetOptions): StagedSeNet<CmnistBranch> {
  const modality = options.modality ?? 0;
  return new StagedSeNet({
    name: 'CmnistUnimodalSeNet',
    branch: new CmnistBranch({ seed: options.seed, prefix: `branch${modality}` }, options.channels, options.numClasses, options.width ?? 1),
    positions: options.sePositions ?? DEFAULT_MMTM_POSITIONS,
    seed: options.seed,
    fidelity: options.fidelity,
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Late fusion (src/nn/late-fusion.ts): the same 4-conv branches as encoders, one linear head on their features

export interface CmnistLateFusionNetOptions {
  channels: readonly number[];
  numClasses: number;
  seed: number;
  width?: number;
  /** Keep each branch's own head as a per-branch classifier (Gradient-Blending). */
  unimodalHeads?: boolean;
}

/**
 * The CMNIST late-fusion network: branch k is the 4-conv branch of the MMTM net (same names `branch<k>.…`, so the
 * same seed starts the encoders identically), its pooled 64-d features (at width 1) concatenated into one
 * Linear(Σ F_k → K).
 */
export function createCmnistLateFusionNet(options: CmnistLateFusionNetOptions): LateFusionNet<CmnistBranch> {
  const width = options.width ?? 1;
  return new LateFusionNet({
    name: 'CmnistLateFusionNet',
    encoders: options.channels.map((c, k) => {
      const branch = new CmnistBranch({ seed: options.seed, prefix: `branch${k}` }, c, options.numClasses, width);
      return { branch, head: branch.head.parameters };
    }),
    numClasses: options.numClasses,
    seed: options.seed,
    unimodalHeads: options.unimodalHeads ?? false,
  });
}
