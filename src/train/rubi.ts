import * as tf from '@tensorflow/tfjs';
import { crossEntropy } from './loss.ts';

/**
 * RUBi adapted to two-branch fusion (paper-spec §9.2, best reading): the bias branch reads the stop-gradient of
 * branch b's final pooled features (F values), an MLP c1 (F→F→F→K, ReLU between) gives q, mask = σ(q),
 * and the loss is CE(ŷ0⊙mask) + CE(ŷ1⊙mask) + CE(c2(q)) with c2: K→K. Evaluation uses the unmasked logits.
 * Its layers are trained by the same optimizer but are not part of the model f (not in R(f), not in µ groups).
 */
/** Identity whose gradient is zero (tfjs 4.22 has no stopGradient op). */
export const stopGradient = tf.customGrad(((x: tf.Tensor) => ({
  value: x.clone(),
  gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy),
})) as never) as unknown as (x: tf.Tensor2D) => tf.Tensor2D;

export class RubiHead {
  readonly variables: tf.Variable[];

  constructor(
    readonly biasModality: 0 | 1,
    featureWidth: number,
    numClasses: number,
    seed: number,
  ) {
    const dims: [number, number, string][] = [
      [featureWidth, featureWidth, 'c1.fc1'],
      [featureWidth, featureWidth, 'c1.fc2'],
      [featureWidth, numClasses, 'c1.fc3'],
      [numClasses, numClasses, 'c2'],
    ];
    // PyTorch's default Linear init: weight and bias uniform in ±1/√fan_in.
    this.variables = dims.flatMap(([fanIn, fanOut, name], i) => {
      const bound = 1 / Math.sqrt(fanIn);
      // In a tidy: a variable shares its initial value's data, and the initial tensor itself must be freed.
      return tf.tidy(() => [
        tf.variable(tf.randomUniform([fanIn, fanOut], -bound, bound, 'float32', seed * 16 + 2 * i + 1), true),
        tf.variable(tf.randomUniform([fanOut], -bound, bound, 'float32', seed * 16 + 2 * i + 2), true),
      ]);
    });
  }

  /** q = c1(stopgrad(features)), the bias-only logits before the sigmoid. */
  biasLogits(features: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => {
      const v = this.variables;
      let h: tf.Tensor2D = stopGradient(features);
      h = tf.relu(tf.matMul(h, v[0]).add(v[1])) as tf.Tensor2D;
      h = tf.relu(tf.matMul(h, v[2]).add(v[3])) as tf.Tensor2D;
      return tf.matMul(h, v[4]).add(v[5]) as tf.Tensor2D;
    });
  }

  /** The RUBi training loss; returns the mask too (for tests). */
  loss(out: { branchLogits: tf.Tensor2D[]; branchFeatures: tf.Tensor2D[] }, oneHot: tf.Tensor2D): tf.Scalar {
    if (out.branchLogits.length !== 2) {
      throw new Error(`RUBi is adapted to two modalities (paper-spec §9.2); this net has ${out.branchLogits.length}`);
    }
    return tf.tidy(() => {
      const q = this.biasLogits(out.branchFeatures[this.biasModality]!);
      const mask = tf.sigmoid(q);
      const qLogits = tf.matMul(q, this.variables[6]).add(this.variables[7]) as tf.Tensor2D;
      return crossEntropy(out.branchLogits[0]!.mul(mask), oneHot)
        .add(crossEntropy(out.branchLogits[1]!.mul(mask), oneHot))
        .add(crossEntropy(qLogits, oneHot)) as tf.Scalar;
    });
  }

  dispose(): void {
    this.variables.forEach((v) => v.dispose());
  }
}
