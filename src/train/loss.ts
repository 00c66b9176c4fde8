import * as tf from '@tensorflow/tfjs';
import { softmaxCrossEntropy } from '../backend/native-ops.ts';
import type { ForwardOutput } from '../nn/types.ts';

/** Batch-mean softmax cross-entropy on logits (PyTorch `F.cross_entropy`, mean reduction). */
export function crossEntropy(logits: tf.Tensor2D, oneHot: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => softmaxCrossEntropy(logits, oneHot));
}

/** The paper's training loss L = CE(ŷ0, y) + CE(ŷ1, y) (paper-spec §2.2), summed over all branches when M > 2. */
export function branchLoss(branchLogits: readonly tf.Tensor2D[], oneHot: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => branchLogits.map((l) => crossEntropy(l, oneHot)).reduce((a, b) => a.add(b)) as tf.Scalar);
}

/**
 * The default loss of a net: CE(ŷ0)+CE(ŷ1) for the MMTM net (paper-spec §2.2), CE(ŷ) of the fused head for a
 * late-fusion net (its ŷk are ŷ itself; per-branch heads, when present, are trained only by methods that weigh them).
 */
export function defaultLoss(out: ForwardOutput, oneHot: tf.Tensor2D): tf.Scalar {
  return out.lateFusion ? crossEntropy(out.logits, oneHot) : branchLoss(out.branchLogits, oneHot);
}
