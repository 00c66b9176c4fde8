import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/backend/index.ts';
import { registerWasmTrainingKernels } from '../../src/backend/wasm-kernels.ts';
await initBackend('wasm');
const stockMPG = (tf as any).getKernel('MaxPoolGrad', 'wasm');
function time(label: string, f: () => tf.Tensor | tf.Tensor[]) {
  const ts: number[] = [];
  for (let i = 0; i < 7; i++) { const t0 = performance.now(); const r = f(); (Array.isArray(r) ? r[0] : r).dataSync(); tf.dispose(r); ts.push(performance.now() - t0); }
  ts.sort((a, b) => a - b); console.log(label.padEnd(50), ts[3].toFixed(1), 'ms (min', ts[0].toFixed(1) + ')');
}
const shapes: [number[], number[], number, number][] = [[[128,28,28,1],[5,5,1,32],1,2],[[128,28,28,3],[5,5,3,32],1,2],[[128,14,14,32],[3,3,32,32],1,1],[[128,14,14,32],[3,3,32,64],2,1],[[128,7,7,64],[3,3,64,64],1,1]];
for (const fast of [false, true]) {
  registerWasmTrainingKernels({ fast });
  for (const [xs, ws, s, p] of shapes) {
    const x = tf.randomNormal(xs) as tf.Tensor4D, w = tf.randomNormal(ws) as tf.Tensor4D;
    const y = tf.conv2d(x, w, s, p);
    time(`${fast ? 'fast' : 'stock'} dx ${xs} ${ws} s${s}`, () => tf.conv2dTranspose(y, w, xs as any, s, p));
    if (fast) time(`dW ${xs} ${ws} s${s}`, () => tf.conv2d(x, w, s, p) && tf.engine().runKernel('Conv2DBackpropFilter', { x, dy: y }, { strides: s, pad: p, dataFormat: 'NHWC', filterShape: ws } as any) as tf.Tensor);
    if (fast) time(`fwd ${xs} ${ws} s${s}`, () => tf.conv2d(x, w, s, p));
    tf.dispose([x, w, y]);
  }
}
const xp = tf.randomNormal([128, 30, 30, 32]) as tf.Tensor4D;
const mp = tf.maxPool(xp, 3, 2, 'valid');
time('ours MaxPoolGrad valid', () => tf.engine().runKernel('MaxPoolGrad', { dy: mp, input: xp, output: mp }, { filterSize: 3, strides: 2, pad: 'valid' } as any) as tf.Tensor);
tf.unregisterKernel('MaxPoolGrad', 'wasm'); tf.registerKernel(stockMPG ?? (tf as any).getKernel('MaxPoolGrad','wasm'));
time('stock MaxPoolGrad valid', () => tf.engine().runKernel('MaxPoolGrad', { dy: mp, input: xp, output: mp }, { filterSize: 3, strides: 2, pad: 'valid' } as any) as tf.Tensor);
time('Slice', () => tf.slice(xp, [0, 1, 1, 0], [128, 28, 28, 32]));
time('Pad', () => tf.pad(xp, [[0,0],[1,1],[1,1],[0,0]]));
time('Sum 012', () => tf.sum(xp, [0, 1, 2]));
time('Sum 12', () => tf.sum(xp, [1, 2]));
time('Mean 12', () => tf.mean(xp, [1, 2]));
time('relu', () => tf.relu(xp));
time('mul', () => tf.mul(xp, xp));
