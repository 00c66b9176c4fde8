import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/backend/index.ts';
import { createCmnistNet } from '../../src/nn/cmnist.ts';
import { FIDELITY_PROFILES } from '../../src/spec/fidelity.ts';
await initBackend((process.argv[2] ?? 'wasm') as any);
const net = createCmnistNet({ channels: [3, 1], numClasses: 10, seed: 1, fidelity: FIDELITY_PROFILES.code });
const B = 128;
const x0 = tf.randomUniform([B, 28, 28, 3]) as tf.Tensor4D, x1 = tf.randomUniform([B, 28, 28, 1]) as tf.Tensor4D;
const y = tf.oneHot(tf.randomUniform([B], 0, 10, 'int32') as tf.Tensor1D, 10);
const opt = tf.train.momentum(0.01, 0.9);
const step = () => opt.minimize(() => {
    const o = net.forward(x0, x1, { mode: 'regular', training: true, regularTrainingStep: true });
    return tf.add(tf.losses.softmaxCrossEntropy(y, o.logits0), tf.losses.softmaxCrossEntropy(y, o.logits1)) as tf.Scalar;
  }, false, net.trainableVariables as tf.Variable[]);
step(); 
const t0 = performance.now();
const prof = await tf.profile(step);
console.log('step ms', (performance.now() - t0).toFixed(0));
const agg = new Map<string, number>();
let total = 0;
for (const k of prof.kernels) { const ms = await k.kernelTimeMs as number; const key = k.name + ' ' + JSON.stringify(k.inputShapes); agg.set(k.name, (agg.get(k.name) ?? 0) + ms); total += ms; if (ms > 15) console.log(ms.toFixed(1), key); }
console.log('total kernel ms', total.toFixed(0));
console.log([...agg].sort((a, b) => b[1] - a[1]).slice(0, 15).map(([n, t]) => `${n} ${t.toFixed(0)} (${(100 * t / total).toFixed(0)}%)`).join('\n'));
