import type * as tf from '@tensorflow/tfjs';
import type { NamedVariable } from './layers.ts';

/** A re-balancing step accelerating modality k: `rebalance0`, `rebalance1`, … (one per modality). */
export type RebalanceMode = `rebalance${number}`;

/**
 * Forward modes of the multi-branch network (paper-spec §2.1, §6, §8); M = number of modalities (2, or 3 for
 * three-view ModelNet40):
 * - `regular`: normal MMTM fusion.
 * - `rebalance<k>`: re-balancing step accelerating m_k — in every MMTM the gate of branch k is replaced by the
 *   constant running average (paper-spec §8.1, §8.3).
 * - `unimodalMeans`: every MMTM feeds branch k with its own squeezed input h_k(x) and the training means h̄_j of
 *   all other modalities, so ŷk is f_k′ (paper-spec §6.3; §8.6 for M > 2). Requires `setSqueezeMeans` first.
 */
export type ForwardMode = 'regular' | RebalanceMode | 'unimodalMeans';

export function rebalanceMode(k: number): RebalanceMode {
  if (!Number.isInteger(k) || k < 0) throw new Error(`rebalanceMode: modality index must be a non-negative integer, got ${k}`);
  return `rebalance${k}`;
}

/** The modality a re-balancing mode accelerates; null for `regular` and `unimodalMeans`. */
export function acceleratedModality(mode: ForwardMode): number | null {
  if (mode === 'regular' || mode === 'unimodalMeans') return null;
  const k = Number(mode.slice('rebalance'.length));
  if (!Number.isInteger(k) || k < 0) throw new Error(`unknown forward mode '${mode}'`);
  return k;
}

export interface ForwardOptions {
  mode: ForwardMode;
  /** Training mode: BatchNorm uses batch statistics and updates its running statistics. */
  training: boolean;
  /**
   * Whether this forward is a regular *training* step: in the `paper` profile only those feed the
   * pre-sigmoid gate averages (paper-spec §8.3). The `code` profile updates its running averages on every call.
   */
  regularTrainingStep?: boolean;
  /** Return the squeezed inputs h_k of every MMTM (for h̄ over the training split). */
  collectSqueezed?: boolean;
}

export interface ForwardOutput {
  /** Branch logits ŷ0, ŷ1, … (B×K each), one per modality. */
  branchLogits: tf.Tensor2D[];
  /** ŷ = mean of the branch logits (ŷ0 + ŷ1)/2 for two modalities. */
  logits: tf.Tensor2D;
  /** Final pooled features of each branch (B×F), input of the heads; RUBi's bias branch reads them. */
  branchFeatures: tf.Tensor2D[];
  /** squeezed[j][k]: the squeezed input h_k (B×C_k) of MMTM position j (only with `collectSqueezed`). */
  squeezed?: tf.Tensor2D[][];
  /** Only from a late-fusion net (src/nn/late-fusion.ts). */
  lateFusion?: LateFusionOutput;
}

/**
 * What a late-fusion net adds to its forward output: ŷ = Σ_k e_k·W_k + b split into per-modality shares, and the
 * per-branch heads when the net has them.
 */
export interface LateFusionOutput {
  /** terms[k] = e_k·W_k + b/M (B×K): modality k's share of ŷ, the bias split equally (Σ_k terms[k] = ŷ). */
  terms: tf.Tensor2D[];
  /** The per-branch heads' logits (B×K each), one per modality; absent when the net was built without them. */
  unimodalLogits?: tf.Tensor2D[];
}

/**
 * Parameter groups of paper-spec §7.2 (§8.6 for M > 2), defined by role and indexed by modality: theta[k] = θk
 * (branch k), thetaPrime[k] = θk′ (the fusion parameters that reach ŷk: every MMTM's shared squeeze layer and
 * its excitation k). The shared squeeze layers are in every θk′.
 */
export interface ParameterGroups {
  theta: tf.Variable[][];
  thetaPrime: tf.Variable[][];
}

export interface MultimodalNet {
  /** Number of modalities M = number of branches (2, or 3 for three-view ModelNet40). */
  readonly modalityCount: number;
  /** `inputs[k]` is branch k's input batch; exactly `modalityCount` of them. */
  forward(inputs: readonly tf.Tensor[], options: ForwardOptions): ForwardOutput;
  /** All trainable variables in a stable order (checkpoints and optimizer slots rely on it). */
  readonly trainableVariables: readonly tf.Variable[];
  readonly groups: ParameterGroups;
  /** Number of MMTM (or SE) positions. */
  readonly fusionCount: number;
  /** means[j][k] = training-split mean h̄_k of MMTM position j, used by `unimodalMeans`. */
  setSqueezeMeans(means: Float32Array[][]): void;
  /**
   * Everything that is not a trainable variable but is model state: BatchNorm running statistics,
   * the MMTM running gate averages and their counters. Named, for checkpoints.
   */
  getState(): Record<string, Float32Array>;
  setState(state: Record<string, Float32Array>): void;
  dispose(): void;
}

export interface UnimodalForwardOutput {
  logits: tf.Tensor2D;
  /** Final pooled features (B×F), input of the head. */
  features: tf.Tensor2D;
}

/**
 * One branch with SE blocks at the MMTM positions, trained alone with CE on its modality (paper-spec §11). There
 * is no fusion, so no forward modes, parameter groups or squeeze means: the trainer runs it with a single
 * CE(logits) loss (using it through `MultimodalNet` would double-count the loss as CE(ŷ0) + CE(ŷ1)).
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
