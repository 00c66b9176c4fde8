import * as tf from '@tensorflow/tfjs';
import type { ForwardOutput } from '../nn/types.ts';
import { gradientBlendingSchema, ogmGeSchema, type GradientBlendingSpec, type OgmGeSpec } from '../spec/methods.ts';
import type { TrainTrialSpec } from '../spec/trial.ts';
import { hashSeedParts } from '../util/rng.ts';
import type { BalancerState } from './balancers.ts';
import { crossEntropy } from './loss.ts';

/**
 * The balancing methods that came after the paper, as loss / gradient modifiers of a late-fusion net's training
 * step (src/nn/late-fusion.ts). The trainer calls, per step: `loss` and `observe` inside the gradient tape, then
 * `modifyGradients` on the raw gradients before anything else reads them — so the L1 subgradient, the optimizer
 * and the learning-speed µ (d_speed) all see the gradient the method hands on; and `onEpochBegin`/`onEpochEnd`
 * around every epoch. State that must survive a resume goes through getState/setState (checkpoint header).
 */
export interface TrainingMethod {
  loss(out: ForwardOutput, oneHot: tf.Tensor2D): tf.Scalar;
  /** What the method needs from this step's forward, computed on the tape (the caller keeps and disposes them). */
  observe(out: ForwardOutput, oneHot: tf.Tensor2D): tf.Tensor[];
  /** Replace entries of `grads` (keyed by tfjs variable name) in place, disposing what it replaces. */
  modifyGradients(grads: tf.NamedTensorMap, observed: readonly tf.Tensor[], step: StepInfo): void;
  onEpochBegin(epoch: number, probe: HeadLossProbe): void;
  onEpochEnd(epoch: number, probe: HeadLossProbe): void;
  getState(): BalancerState;
  setState(state: BalancerState): void;
}

export interface StepInfo {
  epoch: number;
  /** Global step number of this step (1-based), the same after a resume. */
  step: number;
}

/** Mean CE of ŷ and of every per-branch head over a split (metrics/evaluate.ts `headLosses`). */
export type HeadLossProbe = (split: 'train' | 'val') => number[];

/** What a method is built from: the trial's spec and which variables form each encoder θk. */
export interface MethodContext {
  spec: TrainTrialSpec;
  /** θk per modality, as the net groups them. */
  encoders: readonly (readonly tf.Variable[])[];
}

/** Vanilla training of whatever net: its default loss, gradients untouched. */
export class PlainMethod implements TrainingMethod {
  constructor(readonly loss: (out: ForwardOutput, oneHot: tf.Tensor2D) => tf.Scalar) {}
  observe(): tf.Tensor[] {
    return [];
  }
  modifyGradients(): void {}
  onEpochBegin(): void {}
  onEpochEnd(): void {}
  getState(): BalancerState {
    return {};
  }
  setState(): void {}
}

// ---------------------------------------------------------------------------------------------------------------
// OGM-GE (Peng et al., "Balanced Multimodal Learning via On-the-fly Gradient Modulation", CVPR 2022)

/**
 * Eq. 9–10 of Peng et al.: with s_u = Σ_i softmax(terms_u(x_i))[y_i] the batch's summed true-class score of
 * modality u (Eq. 8, from u's share of the fused logits), ρ_u = s_u / s_v for the other modality v, and
 *   k_u = 1 − tanh(α·ρ_u) if ρ_u > 1, else 1.
 * Only the dominant modality (ρ > 1) is slowed down. This is the published form (the official code computes
 * 1 − tanh(α·relu(ρ)), the same for ρ > 1); some later re-implementations use tanh(α·(ρ − 1)), which we do not.
 */
export function ogmCoefficients(scores: readonly number[], alpha: number): { ratios: number[]; coefficients: number[] } {
  if (scores.length !== 2) throw new Error(`OGM-GE is defined for two modalities (Peng et al. Eq. 9), got ${scores.length}`);
  const [s0, s1] = scores as [number, number];
  const ratios = [s0 / s1, s1 / s0];
  const coefficients = ratios.map((rho) => (rho > 1 ? 1 - Math.tanh(alpha * rho) : 1));
  return { ratios, coefficients };
}

/**
 * On-the-fly gradient modulation with generalisation enhancement. Loss: CE(ŷ) of the fused head (as the official
 * code trains). Per step within epochs startEpoch…endEpoch: the gradients of encoder u's convolution kernels are
 * multiplied by k_u (§3.2, Eq. 10; like the official code, only the kernels — rank ≥ 4 — of the encoder, not its
 * biases or BatchNorm parameters, and never the fusion head), then, with `noise` (GE, §3.3), Gaussian noise
 * N(0, σ²) is added to every such kernel gradient of both modalities, σ = the (unbiased) standard deviation of
 * the modulated gradient tensor + 1e-8 (the official code's order: scale, then noise from the scaled gradient).
 * The noise is drawn from a stream fixed by (trial seed, global step, tensor), so a resumed trial draws the same.
 */
export class OgmGeMethod implements TrainingMethod {
  /** The coefficients of the last step (for tests and logs). */
  lastCoefficients: number[] = [1, 1];
  lastRatios: number[] = [1, 1];
  private readonly kernels: (readonly tf.Variable[])[];

  constructor(
    readonly options: OgmGeSpec,
    encoders: readonly (readonly tf.Variable[])[],
    private readonly seed: number,
  ) {
    if (encoders.length !== 2) throw new Error(`OGM-GE is defined for two modalities, the net has ${encoders.length}`);
    this.kernels = encoders.map((vs) => vs.filter((v) => v.rank >= 4));
  }

  loss(out: ForwardOutput, oneHot: tf.Tensor2D): tf.Scalar {
    return crossEntropy(out.logits, oneHot);
  }

  /** s_u for every modality: the summed true-class softmax score of its share of ŷ (Peng et al. Eq. 8). */
  observe(out: ForwardOutput, oneHot: tf.Tensor2D): tf.Tensor[] {
    if (!out.lateFusion) throw new Error('OGM-GE needs a late-fusion net (per-modality shares of the fused logits)');
    return [tf.stack(out.lateFusion.terms.map((t) => tf.sum(tf.mul(tf.softmax(t), oneHot))))];
  }

  modifyGradients(grads: tf.NamedTensorMap, observed: readonly tf.Tensor[], step: StepInfo): void {
    const scores = Array.from(observed[0]!.dataSync());
    const { ratios, coefficients } = ogmCoefficients(scores, this.options.alpha);
    this.lastRatios = ratios;
    this.lastCoefficients = coefficients;
    if (step.epoch < this.options.startEpoch || step.epoch > this.options.endEpoch) {
      this.lastCoefficients = [1, 1];
      return;
    }
    this.kernels.forEach((kernels, u) => {
      const k = coefficients[u]!;
      kernels.forEach((v, i) => {
        const g = grads[v.name];
        if (!g) return;
        const modulated = tf.tidy(() => {
          const scaled = k === 1 ? g.clone() : tf.mul(g, k);
          if (!this.options.noise) return scaled;
          const n = scaled.size;
          // Unbiased std (torch.Tensor.std), as a device scalar: no host round trip per tensor.
          const { mean, variance } = tf.moments(scaled);
          void mean;
          const std = tf.add(tf.sqrt(tf.mul(variance, n / Math.max(1, n - 1))), 1e-8);
          const seed = hashSeedParts(['ogm-ge-noise', this.seed, step.step, u, i]);
          return tf.add(scaled, tf.mul(tf.randomNormal(scaled.shape, 0, 1, 'float32', seed), std));
        });
        g.dispose();
        grads[v.name] = modulated;
      });
    });
  }

  onEpochBegin(): void {}
  onEpochEnd(): void {}
  getState(): BalancerState {
    return {};
  }
  setState(): void {}
}

// ---------------------------------------------------------------------------------------------------------------
// Gradient-Blending (Wang, Tran & Feiszli, "What Makes Training Multi-modal Classification Networks Hard?", CVPR 2020)

/** Losses of ŷ and every per-branch head (index 0 = fused) on the training and the held-out split at one time. */
export interface HeadLossSnapshot {
  train: number[];
  val: number[];
}

/**
 * Blending weights from two loss snapshots N and N + n (Wang et al. §3.2 and Proposition 1 / Eq. 6):
 * O = L^V − L^T (overfitting), ΔO_k = O_k(N+n) − O_k(N), ΔG_k = L^V_k(N) − L^V_k(N+n) (generalisation gain), and
 * w_k ∝ ΔG_k / ΔO_k², normalised to Σ w_k = 1 (the paper's constraint). Our guards, where the paper is silent: a
 * head whose held-out loss did not fall (ΔG ≤ 0) gets weight 0; ΔO² is floored at 1e-12; if every weight is 0
 * the previous weights are kept (null is returned).
 */
export function blendingWeights(before: HeadLossSnapshot, after: HeadLossSnapshot): number[] | null {
  const raw = before.val.map((valBefore, k) => {
    const gain = valBefore - after.val[k]!;
    const overfit = after.val[k]! - after.train[k]! - (valBefore - before.train[k]!);
    return gain > 0 ? gain / Math.max(overfit * overfit, 1e-12) : 0;
  });
  const z = raw.reduce((a, b) => a + b, 0);
  if (!(z > 0) || !Number.isFinite(z)) return null;
  return raw.map((w) => w / z);
}

/**
 * Online Gradient-Blending (Wang et al. §4, Algorithm 2): the loss is w_0·CE(ŷ) + Σ_k w_{k+1}·CE(head_k), the
 * per-branch heads reading encoder k's features; the weights start equal and are re-estimated at the end of every
 * super-epoch from the losses measured then and at its start (`blendingWeights`), the held-out losses on the
 * validation split (the schema demands a held-out one for CMNIST). Measured once before epoch 1 and after every
 * super-epoch — offline, between epochs, not per step.
 */
export class GradientBlendingMethod implements TrainingMethod {
  weights: number[];
  private reference: HeadLossSnapshot | null = null;
  /** Every estimate so far (epoch, weights), for logs and tests. */
  history: { epoch: number; weights: number[] }[] = [];

  constructor(
    readonly options: GradientBlendingSpec,
    modalityCount: number,
  ) {
    this.weights = new Array(modalityCount + 1).fill(1 / (modalityCount + 1));
  }

  loss(out: ForwardOutput, oneHot: tf.Tensor2D): tf.Scalar {
    const heads = out.lateFusion?.unimodalLogits;
    if (!heads) throw new Error('Gradient-Blending needs a late-fusion net with per-branch heads');
    return tf.tidy(
      () =>
        [out.logits, ...heads]
          .map((l, i) => tf.mul(crossEntropy(l, oneHot), this.weights[i]!))
          .reduce((a, b) => tf.add(a, b)) as tf.Scalar,
    );
  }

  observe(): tf.Tensor[] {
    return [];
  }

  modifyGradients(): void {}

  onEpochBegin(_epoch: number, probe: HeadLossProbe): void {
    this.reference ??= { train: probe('train'), val: probe('val') };
  }

  onEpochEnd(epoch: number, probe: HeadLossProbe): void {
    if (epoch % this.options.superEpoch !== 0) return;
    const now = { train: probe('train'), val: probe('val') };
    const weights = blendingWeights(this.reference!, now);
    if (weights) this.weights = weights;
    this.history.push({ epoch, weights: [...this.weights] });
    this.reference = now;
  }

  getState(): BalancerState {
    return { weights: [...this.weights], reference: this.reference, history: this.history };
  }

  setState(state: BalancerState): void {
    if (Array.isArray(state.weights)) this.weights = [...(state.weights as number[])];
    this.reference = (state.reference as HeadLossSnapshot | null | undefined) ?? null;
    this.history = (state.history as GradientBlendingMethod['history'] | undefined) ?? [];
  }
}

/** The method of a spec's algorithm; vanilla and the paper's algorithms train with `fallbackLoss`. */
export function createMethod(ctx: MethodContext, fallbackLoss: (out: ForwardOutput, oneHot: tf.Tensor2D) => tf.Scalar): TrainingMethod {
  const { spec } = ctx;
  switch (spec.algorithm) {
    case 'ogm-ge':
      // The parsed spec holds the filled-in block already; parsing it again only fixes its type.
      return new OgmGeMethod(ogmGeSchema.parse(spec.ogmGe ?? {}), ctx.encoders, spec.seed);
    case 'gradient-blending':
      return new GradientBlendingMethod(gradientBlendingSchema.parse(spec.gradientBlending ?? {}), ctx.encoders.length);
    default:
      return new PlainMethod(fallbackLoss);
  }
}
