import * as tf from '@tensorflow/tfjs';

/** Batch-mean softmax cross-entropy on logits (PyTorch `F.cross_entropy`, mean reduction). */
export function crossEntropy(logits: tf.Tensor2D, oneHot: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => tf.neg(tf.mean(tf.sum(tf.mul(oneHot, tf.logSoftmax(logits)), 1))) as tf.Scalar);
}

/** The paper's training loss L = CE(ŷ0, y) + CE(ŷ1, y) (paper-spec §2.2), summed over all branches when M > 2. */
export function branchLoss(branchLogits: readonly tf.Tensor2D[], oneHot: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => branchLogits.map((l) => crossEntropy(l, oneHot)).reduce((a, b) => a.add(b)) as tf.Scalar);
}
