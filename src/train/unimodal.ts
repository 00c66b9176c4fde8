import * as tf from '@tensorflow/tfjs';
import type { ForwardOutput } from '../nn/types.ts';
import { crossEntropy } from './loss.ts';

/** The loss of a uni-modal SE baseline (`UnimodalAsMultimodal`, src/nn/unimodal.ts): CE(ŷ) alone. */
export function unimodalLoss(out: ForwardOutput, oneHot: tf.Tensor2D): tf.Scalar {
  return crossEntropy(out.logits, oneHot);
}
