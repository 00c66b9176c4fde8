import * as tf from '@tensorflow/tfjs';
import type { ForwardOutput } from '../nn/types.ts';
import {
  agmSchema,
  gradientBlendingSchema,
  mmParetoSchema,
  ogmGeSchema,
  pmrSchema,
  type AgmSpec,
  type GradientBlendingSpec,
  type MmParetoSpec,
  type OgmGeSpec,
  type PmrSpec,
} from '../spec/methods.ts';
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
  /** `masked` runs the step's batch again with some modalities zeroed (on the tape), for methods that need it (AGM). */
  loss(out: ForwardOutput, oneHot: tf.Tensor2D, masked: MaskedForward): tf.Scalar;
  /** What the method needs from this step's forward, computed on the tape (the caller keeps and disposes them). */
  observe(out: ForwardOutput, oneHot: tf.Tensor2D): tf.Tensor[];
  /**
   * Replace entries of `grads` (keyed by tfjs variable name) in place, disposing what it replaces. `auxiliary[i]`
   * holds the gradients of `auxiliaryLosses()[i]` on the same batch (a variable the loss does not reach: absent).
   */
  modifyGradients(grads: tf.NamedTensorMap, observed: readonly tf.Tensor[], step: StepInfo, auxiliary: readonly tf.NamedTensorMap[]): void;
  /** Further losses whose gradients the method needs separately (the trainer runs one more pass for each). */
  auxiliaryLosses?(): ((out: ForwardOutput, oneHot: tf.Tensor2D) => tf.Scalar)[];
  onEpochBegin(epoch: number, probe: EpochProbe): void;
  onEpochEnd(epoch: number, probe: EpochProbe): void;
  getState(): BalancerState;
  setState(state: BalancerState): void;
}

/**
 * ŷ of this step's batch with the inputs of the `zeroed` modalities replaced by zeros, the net in inference mode
 * (BatchNorm on its running statistics, nothing updated) — as AGM's official code runs its padded passes under
 * eval() — recorded on the step's gradient tape.
 */
export type MaskedForward = (zeroed: readonly number[]) => tf.Tensor2D;

export interface StepInfo {
  epoch: number;
  /** Global step number of this step (1-based), the same after a resume. */
  step: number;
}

/** Whole-split measurements a method may take between epochs (src/metrics/evaluate.ts). */
export interface EpochProbe {
  /** Mean CE of ŷ and of every per-branch head over a split (`headLosses`). */
  headLosses(split: 'train' | 'val'): number[];
  /** Class means [modality][class] of the final features over a fraction of the training split (`classFeatureMeans`). */
  classFeatureMeans(fraction: number): { means: Float32Array[][]; counts: number[] };
}

/** What a method is built from: the trial's spec and which variables form each encoder θk. */
export interface MethodContext {
  spec: TrainTrialSpec;
  /** The fused head's weights W_k of a late-fusion net (empty for other nets). */
  fusionWeights: readonly tf.Variable[];
  /** θk per modality, as the net groups them (with the per-branch head, when the net has one). */
  encoders: readonly (readonly tf.Variable[])[];
  /** The per-branch heads' variables per modality (empty without heads). */
  heads: readonly (readonly tf.Variable[])[];
  numClasses: number;
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
 * 1 − tanh(α·relu(ρ)), the same for ρ > 1); `shifted` gives 1 − tanh(α·(ρ − 1)) of some later re-implementations.
 */
export function ogmCoefficients(
  scores: readonly number[],
  alpha: number,
  form: OgmGeSpec['coefficient'] = 'published',
): { ratios: number[]; coefficients: number[] } {
  if (scores.length !== 2) throw new Error(`OGM-GE is defined for two modalities (Peng et al. Eq. 9), got ${scores.length}`);
  const [s0, s1] = scores as [number, number];
  const ratios = [s0 / s1, s1 / s0];
  const offset = form === 'shifted' ? 1 : 0;
  const coefficients = ratios.map((rho) => (rho > 1 ? 1 - Math.tanh(alpha * (rho - offset)) : 1));
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
    const { ratios, coefficients } = ogmCoefficients(scores, this.options.alpha, this.options.coefficient);
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

  onEpochBegin(_epoch: number, probe: EpochProbe): void {
    this.reference ??= { train: probe.headLosses('train'), val: probe.headLosses('val') };
  }

  onEpochEnd(epoch: number, probe: EpochProbe): void {
    if (epoch % this.options.superEpoch !== 0) return;
    const now = { train: probe.headLosses('train'), val: probe.headLosses('val') };
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

// ---------------------------------------------------------------------------------------------------------------
// PMR (Fan, Xu, Wu, Zheng & Tao, "PMR: Prototypical Modal Rebalance for Multimodal Learning", CVPR 2023)

/**
 * Prototype-based class probabilities of features e (B×F) against prototypes c (K×F), as PMR's non-parametric
 * classifier (§3.2): logits −‖e_i − c_k‖₂ (the official code's negative Euclidean distance, no temperature).
 */
export function prototypeLogits(e: tf.Tensor2D, c: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const squared = tf.add(tf.sub(tf.sum(tf.square(e), 1, true), tf.mul(2, tf.matMul(e, c, false, true))), tf.sum(tf.square(c), 1).reshape([1, -1]));
    // Clamped away from 0: √ has an infinite slope there (a sample exactly on its prototype).
    return tf.neg(tf.sqrt(tf.maximum(squared, 1e-12))) as tf.Tensor2D;
  });
}

/**
 * PMR as its official code trains a two-modality net: per step, with p_k = softmax(−‖e_k − c_k‖) the prototype
 * classifier of modality k and s_k = Σ_i p_k(y_i | x_i) its summed true-class score, ρ = s_0 / s_1 (the
 * prototype-based imbalance ratio, §3.3); the loss is CE(ŷ) + α·PCE of the slower modality (PCE = CE of the
 * prototype logits, §3.3): modality 1 when ρ > 1, modality 0 when ρ < 1, neither when ρ = 1 (the code's constant
 * coefficients, not a function of ρ). Outside epochs startEpoch…endEpoch the loss is CE(ŷ).
 * Prototypes c_k = class means of e_k over a fraction of the training split: computed before epoch 1 and after
 * every epoch, mixed with the previous ones, c ← (1 − μ)·c_new + μ·c_old (the code's momentum update). A class
 * absent from that fraction keeps its previous prototype (the code would divide by zero). The official script
 * computes CMNIST prototypes on its test loader; we use the training split.
 */
export class PmrMethod implements TrainingMethod {
  /** prototypes[k] = K×F_k, row-major; null before the first computation. */
  prototypes: Float32Array[] | null = null;
  private widths: number[] = [];
  lastRatio = 1;
  /** Coefficients of PCE_0, PCE_1 in the last step's loss. */
  lastCoefficients: number[] = [0, 0];
  private epoch = 0;

  constructor(
    readonly options: PmrSpec,
    private readonly numClasses: number,
  ) {}

  loss(out: ForwardOutput, oneHot: tf.Tensor2D): tf.Scalar {
    const ce = crossEntropy(out.logits, oneHot);
    this.lastCoefficients = [0, 0];
    if (this.epoch < this.options.startEpoch || this.epoch > this.options.endEpoch) return ce;
    if (!this.prototypes) throw new Error('PMR: no prototypes yet (onEpochBegin computes them before the first step)');
    if (out.branchFeatures.length !== 2) throw new Error(`PMR is defined for two modalities, got ${out.branchFeatures.length}`);
    const logits = out.branchFeatures.map((e, k) => prototypeLogits(e, tf.tensor2d(this.prototypes![k]!, [this.numClasses, this.widths[k]!])));
    // s_k on the host: the branch taken is a constant of the step, as in the code.
    const scores = tf.tidy(() => tf.stack(logits.map((l) => tf.sum(tf.mul(tf.softmax(l), oneHot))))).dataSync();
    this.lastRatio = scores[0]! / scores[1]!;
    const slower = this.lastRatio > 1 ? 1 : this.lastRatio < 1 ? 0 : null;
    if (slower === null || this.options.alpha === 0) return ce;
    this.lastCoefficients[slower] = this.options.alpha;
    return tf.add(ce, tf.mul(crossEntropy(logits[slower]!, oneHot), this.options.alpha)) as tf.Scalar;
  }

  observe(): tf.Tensor[] {
    return [];
  }

  modifyGradients(): void {}

  onEpochBegin(epoch: number, probe: EpochProbe): void {
    this.epoch = epoch;
    if (!this.prototypes) this.update(probe, 0);
  }

  onEpochEnd(_epoch: number, probe: EpochProbe): void {
    this.update(probe, this.options.momentum);
  }

  /** c ← (1 − μ)·c_new + μ·c_old per class present in the probed data; absent classes keep c_old (or 0). */
  private update(probe: EpochProbe, momentum: number): void {
    const { means, counts } = probe.classFeatureMeans(this.options.prototypeFraction);
    this.widths = means.map((perClass) => perClass[0]!.length);
    const old = this.prototypes;
    this.prototypes = means.map((perClass, k) => {
      const F = this.widths[k]!;
      const next = new Float32Array(this.numClasses * F);
      perClass.forEach((row, c) => {
        for (let j = 0; j < F; j++) {
          const previous = old ? old[k]![c * F + j]! : 0;
          next[c * F + j] = counts[c]! > 0 ? (old ? (1 - momentum) * row[j]! + momentum * previous : row[j]!) : previous;
        }
      });
      return next;
    });
  }

  getState(): BalancerState {
    return { prototypes: this.prototypes?.map((p) => Array.from(p)) ?? null, widths: this.widths };
  }

  setState(state: BalancerState): void {
    const prototypes = state.prototypes as number[][] | null | undefined;
    this.prototypes = prototypes ? prototypes.map((p) => Float32Array.from(p)) : null;
    this.widths = (state.widths as number[] | undefined) ?? [];
  }
}

// ---------------------------------------------------------------------------------------------------------------
// MMPareto (Wei & Hu, "MMPareto: Boosting Multimodal Learning with Innocent Unimodal Assistance", ICML 2024)

/**
 * Weights (w_m, w_u) of the multimodal and the uni-modal gradient of one encoder (§4, and the official code):
 * equal (½, ½) when the two agree (cosine > 0), otherwise the min-norm point of their convex hull (MGDA; the
 * two-vector closed form the code's MinNormSolver uses, with its 0.999 / 0.001 guards).
 * Inputs are the dot products mm = g_m·g_m, mu = g_m·g_u, uu = g_u·g_u.
 */
export function paretoWeights(mm: number, mu: number, uu: number): { cosine: number; weights: [number, number] } {
  const cosine = mu / Math.max(Math.sqrt(mm) * Math.sqrt(uu), 1e-8);
  if (cosine > 0) return { cosine, weights: [0.5, 0.5] };
  let gamma: number;
  if (mu >= mm) gamma = 0.999;
  else if (mu >= uu) gamma = 0.001;
  else gamma = (uu - mu) / (mm + uu - 2 * mu);
  return { cosine, weights: [gamma, 1 - gamma] };
}

/**
 * MMPareto as its official code trains a late-fusion net with per-branch heads: loss L = CE(ŷ) + Σ_k CE(head_k);
 * for the encoder of modality k (heads and the fused head keep their plain gradient of L) with g_m = ∇CE(ŷ) and
 * g_u = ∇CE(head_k) over all its tensors, weights (w_m, w_u) = `paretoWeights`, then per tensor
 *   g_new = 2·w_m·g_m + 2·w_u·g_u;  g = γ·max(1, ‖∇L‖ / ‖g_new‖)·g_new
 * (the code keeps at least the magnitude of the plain gradient ∇L of that tensor, and scales by γ = 1.5).
 * g_m comes from one more forward/backward of CE(ŷ) alone; g_u = ∇L − g_m on encoder k (no other loss reaches it).
 */
export class MmParetoMethod implements TrainingMethod {
  /** The last step's cosine and weights per modality (for tests and logs). */
  last: { cosine: number; weights: [number, number] }[] = [];
  private readonly bodies: (readonly tf.Variable[])[];

  constructor(
    readonly options: MmParetoSpec,
    encoders: readonly (readonly tf.Variable[])[],
    heads: readonly (readonly tf.Variable[])[],
  ) {
    if (heads.length !== encoders.length) throw new Error('MMPareto needs a late-fusion net with per-branch heads');
    this.bodies = encoders.map((vs, k) => vs.filter((v) => !heads[k]!.includes(v)));
  }

  loss(out: ForwardOutput, oneHot: tf.Tensor2D): tf.Scalar {
    const heads = out.lateFusion?.unimodalLogits;
    if (!heads) throw new Error('MMPareto needs a late-fusion net with per-branch heads');
    return tf.tidy(() => [out.logits, ...heads].map((l) => crossEntropy(l, oneHot)).reduce((a, b) => tf.add(a, b)) as tf.Scalar);
  }

  auxiliaryLosses(): ((out: ForwardOutput, oneHot: tf.Tensor2D) => tf.Scalar)[] {
    return [(out, oneHot) => crossEntropy(out.logits, oneHot)];
  }

  observe(): tf.Tensor[] {
    return [];
  }

  modifyGradients(grads: tf.NamedTensorMap, _observed: readonly tf.Tensor[], _step: StepInfo, auxiliary: readonly tf.NamedTensorMap[]): void {
    const multimodal = auxiliary[0];
    if (!multimodal) throw new Error('MMPareto: the trainer did not compute the multimodal gradient');
    this.last = this.bodies.map((body) => {
      const present = body.filter((v) => grads[v.name]);
      const gm = present.map((v) => multimodal[v.name] ?? tf.zerosLike(v));
      const gu = present.map((v, i) => tf.sub(grads[v.name]!, gm[i]!));
      const dot = (a: tf.Tensor[], b: tf.Tensor[]) => tf.addN(a.map((t, i) => tf.sum(tf.mul(t, b[i]!))));
      const [mm, mu, uu] = tf.tidy(() => tf.stack([dot(gm, gm), dot(gm, gu), dot(gu, gu)]).dataSync());
      const result = paretoWeights(mm!, mu!, uu!);
      const [wm, wu] = result.weights;
      present.forEach((v, i) => {
        const total = grads[v.name]!;
        const combined = tf.tidy(() => {
          const next = tf.add(tf.mul(gm[i]!, 2 * wm), tf.mul(gu[i]!, 2 * wu));
          // γ·max(1, ‖∇L‖/‖g_new‖)·g_new, the ratio as a device scalar (a zero g_new stays zero).
          const ratio = tf.div(tf.norm(total), tf.maximum(tf.norm(next), 1e-30));
          return tf.mul(next, tf.mul(tf.maximum(ratio, 1), this.options.gamma));
        });
        total.dispose();
        grads[v.name] = combined;
      });
      tf.dispose(gu);
      tf.dispose(gm.filter((t, i) => t !== multimodal[present[i]!.name]));
      return result;
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
// AGM (Li, Li, Hu, Lei, Li & Zhou, "Boosting Multi-modal Model Performance with Adaptive Gradient Modulation",
// ICCV 2023). The paper's text was not within reach of this project's tools; the equations below are those of the
// official code (github.com/lihong2303/AGM_ICCV2023: model/AVMNIST_net.py GradMod, run/AVMNIST_main.py train()),
// which every training script shares, and the authors' answers in that repository's issues.

/** One step's AGM quantities for two modalities (all plain numbers, computed on the host as the code's .item()). */
export interface AgmCoefficients {
  /** r_k = exp(s_j − s_k), j the other modality: this batch's relative strength of modality k. */
  ratios: number[];
  /** r̃_k = exp(s̄_j − s̄_k) from the running averages before this step: the strength it should return to. */
  targets: number[];
  /** c_k = exp(α·min(r̃_k − r_k, cap)), no cap when `exponentCap` is null. */
  coefficients: number[];
}

/**
 * The modulation coefficients of one step from the mono-modal scores s_k (batch-mean cross-entropy of the Shapley
 * response φ_k, lower = stronger) and their running averages s̄_k. A modality that is stronger on this batch than
 * on average relative to the other (r_k > r̃_k) gets c_k < 1, a weaker one c_k > 1. The paper states the strength
 * with log-likelihoods, the code with cross-entropies and the difference reversed: the same number (issue 11).
 */
export function agmCoefficients(scores: readonly number[], averages: readonly number[], alpha: number, exponentCap: number | null = null): AgmCoefficients {
  if (scores.length !== 2 || averages.length !== 2) throw new Error(`AGM is implemented for two modalities, got ${scores.length}`);
  const ratios = scores.map((s, k) => Math.exp(scores[1 - k]! - s));
  const targets = averages.map((a, k) => Math.exp(averages[1 - k]! - a));
  const coefficients = ratios.map((r, k) => Math.exp(alpha * Math.min(targets[k]! - r, exponentCap ?? Infinity)));
  return { ratios, targets, coefficients };
}

/**
 * Adaptive gradient modulation on a two-modality net. Per step:
 * 1. Mono-modal responses by Shapley value over the two modalities (the code's Modality_Audio/Modality_Visual):
 *      φ_0 = ½·[f(x0, x1) − f(0, x1) + f(x0, 0)],   φ_1 = ½·[f(x0, x1) − f(x0, 0) + f(0, x1)],
 *    f(x0, x1) the training-mode forward, the zero-input forwards in inference mode; φ_0 + φ_1 = f(x0, x1).
 * 2. s_k = mean_i −log max(softmax(φ_k(x_i))[y_i], 1e-8); coefficients from s and the running averages s̄ as
 *    `agmCoefficients`; then s̄_k ← s̄_k·(t − 1)/t + s_k/t over all t steps so far (a cumulative mean across epochs,
 *    no momentum coefficient; s̄ = 0 before the first step, so r̃ = 1 there) — updated in every step, inside the modulation window or not.
 * 3. Loss CE(φ_0 + φ_1); its gradient reaches φ_k multiplied by c_k (the code's backward hooks on φ_k), and from
 *    there everything φ_k depends on: both encoders and the fused head, through all three forwards.
 * 4. With `gradientClip`: if an entry of the fused head's weight gradient lies outside [−1, 1], every gradient is
 *    scaled by 1/(‖g‖ + 1e-6), ‖g‖ the global norm (torch.nn.utils.clip_grad_norm_ with max_norm 1), in every step.
 * Outside epochs startEpoch…endEpoch c = 1 (the code would keep applying the last step's coefficients, which
 * cannot happen with its authors' window covering the whole run).
 */
export class AgmMethod implements TrainingMethod {
  /** The last step's quantities (for tests and logs); coefficients are 1 outside the window. */
  last: AgmCoefficients & { scores: number[]; clipped: boolean } = { ratios: [1, 1], targets: [1, 1], coefficients: [1, 1], scores: [0, 0], clipped: false };
  /** s̄_k and the number of steps they average. */
  private averages = [0, 0];
  private steps = 0;
  private epoch = 0;

  constructor(
    readonly options: AgmSpec,
    /** The fused head's weights (W_0, W_1): the clip guard watches their gradient. */
    private readonly headWeights: readonly tf.Variable[],
    modalityCount: number,
  ) {
    if (modalityCount !== 2) throw new Error(`AGM is implemented for two modalities (the Shapley responses of the official code), the net has ${modalityCount}`);
  }

  loss(out: ForwardOutput, oneHot: tf.Tensor2D, masked: MaskedForward): tf.Scalar {
    const total = out.logits;
    const without1 = masked([1]); // f(x0, 0)
    const without0 = masked([0]); // f(0, x1)
    const responses = [
      tf.mul(tf.add(tf.sub(total, without0), without1), 0.5) as tf.Tensor2D,
      tf.mul(tf.add(tf.sub(total, without1), without0), 0.5) as tf.Tensor2D,
    ];
    const stackedScores = tf.tidy(() => tf.stack(responses.map((phi) => tf.mean(tf.neg(tf.log(tf.maximum(tf.sum(tf.mul(tf.softmax(phi), oneHot), 1), 1e-8)))))));
    const scores = Array.from(stackedScores.dataSync());
    stackedScores.dispose();
    const computed = agmCoefficients(scores, this.averages, this.options.alpha, this.options.exponentCap);
    const inWindow = this.epoch >= this.options.startEpoch && this.epoch <= this.options.endEpoch;
    const coefficients = inWindow ? computed.coefficients : [1, 1];
    this.steps += 1;
    this.averages = this.averages.map((a, k) => (a * (this.steps - 1)) / this.steps + scores[k]! / this.steps);
    this.last = { ...computed, coefficients, scores, clipped: false };
    const [c0, c1] = coefficients as [number, number];
    // ŷ = φ_0 + φ_1 forward; backward, the gradient reaching φ_k is scaled by c_k.
    const modulatedSum = tf.customGrad((a, b) => ({
      value: tf.add(a as tf.Tensor, b as tf.Tensor),
      gradFunc: (dy: tf.Tensor) => [tf.mul(dy, c0), tf.mul(dy, c1)],
    }));
    return crossEntropy(modulatedSum(responses[0]!, responses[1]!) as tf.Tensor2D, oneHot);
  }

  observe(): tf.Tensor[] {
    return [];
  }

  modifyGradients(grads: tf.NamedTensorMap): void {
    if (!this.options.gradientClip) return;
    const head = this.headWeights.map((w) => grads[w.name]).filter((g): g is tf.Tensor => g !== undefined);
    const largestTensor = tf.tidy(() => tf.max(tf.stack(head.map((g) => tf.max(tf.abs(g))))));
    const [largest] = largestTensor.dataSync();
    largestTensor.dispose(); // outside the step's tape: nothing else frees it
    if (!(largest! > 1)) return;
    this.last.clipped = true;
    const names = Object.keys(grads);
    const scale = tf.tidy(() => tf.div(1, tf.add(tf.sqrt(tf.addN(names.map((n) => tf.sum(tf.square(grads[n]!))))), 1e-6)));
    for (const n of names) {
      const scaled = tf.mul(grads[n]!, scale);
      grads[n]!.dispose();
      grads[n] = scaled;
    }
    scale.dispose();
  }

  onEpochBegin(epoch: number): void {
    this.epoch = epoch;
  }

  onEpochEnd(): void {}

  getState(): BalancerState {
    return { averages: [...this.averages], steps: this.steps };
  }

  setState(state: BalancerState): void {
    this.averages = Array.isArray(state.averages) ? [...(state.averages as number[])] : [0, 0];
    this.steps = typeof state.steps === 'number' ? state.steps : 0;
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
    case 'pmr':
      return new PmrMethod(pmrSchema.parse(spec.pmr ?? {}), ctx.numClasses);
    case 'mmpareto':
      return new MmParetoMethod(mmParetoSchema.parse(spec.mmPareto ?? {}), ctx.encoders, ctx.heads);
    case 'agm':
      return new AgmMethod(agmSchema.parse(spec.agm ?? {}), ctx.fusionWeights, ctx.encoders.length);
    default:
      return new PlainMethod(fallbackLoss);
  }
}
