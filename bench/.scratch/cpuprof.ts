import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/backend/index.ts';
import { registerWasmTrainingKernels } from '../../src/backend/wasm-kernels.ts';
import { createCmnistNet } from '../../src/nn/cmnist.ts';
import { FIDELITY_PROFILES } from '../../src/spec/fidelity.ts';
await initBackend('wasm');
if (process.argv[2] === 'stock') registerWasmTrainingKernels({ fast: false });
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
// Per-kernel CPU time: wrap engine.runKernelFunc? Simpler: time kernels via monkeypatching getKernel results.
const cpuMs = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
const agg = new Map<string, number>();
const eng = tf.engine() as any;
const orig = eng.runKernelFunc.bind(eng);
eng.runKernelFunc = (kernelParams: any) => { const name = (kernelParams.kernelName ?? 'custom') + (/Conv|Pool|Sum|Slice/.test(kernelParams.kernelName) ? ' ' + Object.values(kernelParams.inputs).map((t: any) => t.shape.join('x')).join(',') : ''); const t0 = cpuMs(); const r = orig(kernelParams); agg.set(name, (agg.get(name) ?? 0) + cpuMs() - t0); return r; };
const steps = 3;
const t0 = cpuMs(), w0 = performance.now();
for (let i = 0; i < steps; i++) step();
const total = (cpuMs() - t0) / steps;
console.log(`step cpu ms ${total.toFixed(0)}  wall ms ${((performance.now() - w0) / steps).toFixed(0)}`);
console.log([...agg].sort((a, b) => b[1] - a[1]).slice(0, 30).map(([n, t]) => `${n.padEnd(28)} ${(t / steps).toFixed(0).padStart(5)} (${(100 * t / steps / total).toFixed(0)}%)`).join('\n'));
