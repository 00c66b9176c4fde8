import type * as tf from '@tensorflow/tfjs';

/**
 * Forward modes of the two-branch network (paper-spec §2.1, §6, §8):
 * - `regular`: normal MMTM fusion.
 * - `rebalance0` / `rebalance1`: re-balancing step accelerating m0 / m1 — in every MMTM the gate of branch k
 *   is replaced by the constant running average (paper-spec §8.1, §8.3).
 * - `unimodalMeans`: every MMTM feeds branch 0 with [h0(x), h̄1] and branch 1 with [h̄0, h1(x)], so ŷ0 is f0′ and
 *   ŷ1 is f1′ (paper-spec §6.3). Requires `setSqueezeMeans` first.
 */
export type ForwardMode = 'regular' | 'rebalance0' | 'rebalance1' | 'unimodalMeans';

export interface ForwardOptions {
  mode: ForwardMode;
  /** Training mode: BatchNorm uses batch statistics and updates its running statistics. */
  training: boolean;
  /**
   * Whether this forward is a regular *training* step: in the `paper` profile only those feed the
   * pre-sigmoid gate averages (paper-spec §8.3). The `code` profile updates its running averages on every call.
   */
  regularTrainingStep?: boolean;
  /** Return the squeezed inputs h0, h1 of every MMTM (for h̄ over the training split). */
  collectSqueezed?: boolean;
}

export interface ForwardOutput {
  /** Branch logits ŷ0, ŷ1 (B×K) and ŷ = (ŷ0 + ŷ1)/2 on the logits. */
  logits0: tf.Tensor2D;
  logits1: tf.Tensor2D;
  logits: tf.Tensor2D;
  /** Final pooled features of each branch (B×F), input of the heads; RUBi's bias branch reads them. */
  features0: tf.Tensor2D;
  features1: tf.Tensor2D;
  /** Per MMTM position, the squeezed vectors of its inputs (only with `collectSqueezed`). */
  squeezed?: { h0: tf.Tensor2D; h1: tf.Tensor2D }[];
}

/** Parameter groups of paper-spec §7.2, defined by role. The shared squeeze layers are in both θ0′ and θ1′. */
export interface ParameterGroups {
  theta0: tf.Variable[];
  theta1: tf.Variable[];
  theta0Prime: tf.Variable[];
  theta1Prime: tf.Variable[];
}

export interface MultimodalNet {
  forward(x0: tf.Tensor, x1: tf.Tensor, options: ForwardOptions): ForwardOutput;
  /** All trainable variables in a stable order (checkpoints and optimizer slots rely on it). */
  readonly trainableVariables: readonly tf.Variable[];
  readonly groups: ParameterGroups;
  /** Number of MMTM (or SE) positions. */
  readonly fusionCount: number;
  /** Training-split means h̄0, h̄1 per MMTM position, used by `unimodalMeans`. */
  setSqueezeMeans(means: { h0: Float32Array; h1: Float32Array }[]): void;
  /**
   * Everything that is not a trainable variable but is model state: BatchNorm running statistics,
   * the MMTM running gate averages and their counters. Named, for checkpoints.
   */
  getState(): Record<string, Float32Array>;
  setState(state: Record<string, Float32Array>): void;
  dispose(): void;
}
