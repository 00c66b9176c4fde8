import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { createCmnistNet } from '../../src/nn/cmnist.ts';
import { FIDELITY_PROFILES } from '../../src/spec/fidelity.ts';
await tf.setBackend('cpu');
const net = createCmnistNet({ channels: [3, 1], numClasses: 10, seed: 1, fidelity: FIDELITY_PROFILES.code });
const x0 = tf.randomNormal([8, 28, 28, 3]) as tf.Tensor4D, x1 = tf.randomNormal([8, 28, 28, 1]) as tf.Tensor4D;
const y = tf.oneHot(tf.tensor1d([1,2,3,4,5,6,7,8], 'int32'), 10);
const opt = tf.train.sgd(0.01);
const prof = await tf.profile(() => {
  opt.minimize(() => {
    const o = net.forward(x0, x1, { mode: 'regular', training: true, regularTrainingStep: true });
    return tf.add(tf.losses.softmaxCrossEntropy(y, o.logits0), tf.losses.softmaxCrossEntropy(y, o.logits1)) as tf.Scalar;
  }, false, net.trainableVariables as tf.Variable[]);
});
const names = [...new Set(prof.kernelNames)].sort();
console.log(names.join(' '));
console.log('missing on wasm:', names.filter((n) => !tf.getKernel(n, 'wasm')));
