import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/backend/index.ts';
await initBackend('wasm');
function time(label: string, f: () => tf.Tensor | tf.Tensor[] | void, reps = 9) {
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) { const t0 = performance.now(); const r = f(); if (r) { (Array.isArray(r) ? r[0] : r).dataSync(); tf.dispose(r); } ts.push(performance.now() - t0); }
  ts.sort((a, b) => a - b); console.log(label.padEnd(60), 'median', ts[reps >> 1].toFixed(1), 'min', ts[0].toFixed(1));
}
const B = 128;
for (const [H, Cin, Cout, K, s] of [[28, 1, 32, 5, 1], [28, 3, 32, 5, 1], [14, 32, 32, 3, 1], [14, 32, 64, 3, 2], [7, 64, 64, 3, 1]]) {
  const x = tf.randomNormal([B, H, H, Cin]) as tf.Tensor4D, w = tf.randomNormal([K, K, Cin, Cout]) as tf.Tensor4D;
  const pad = (K - 1) / 2;
  const y = tf.conv2d(x, w, s, pad);
  const OH = y.shape[1];
  const M = B * OH * OH, KK = K * K * Cin;
  time(`fwd conv ${H} ${Cin}->${Cout} k${K} s${s}`, () => tf.conv2d(x, w, s, pad));
  time(`  dW kernel`, () => tf.engine().runKernel('Conv2DBackpropFilter', { x, dy: y }, { strides: s, pad, dataFormat: 'NHWC', filterShape: [K, K, Cin, Cout] } as any) as tf.Tensor);
  time(`  dx kernel`, () => tf.engine().runKernel('Conv2DBackpropInput', { dy: y, filter: w }, { strides: s, pad, dataFormat: 'NHWC', inputShape: [B, H, H, Cin] } as any) as tf.Tensor);
  const a = tf.randomNormal([KK, M]), bm = tf.reshape(y, [M, Cout]);
  time(`  matmul [${KK},${M}]x[${M},${Cout}]`, () => tf.matMul(a, bm));
  const a2 = tf.randomNormal([Cout, M]), b2 = tf.randomNormal([M, KK]);
  time(`  matmul [${Cout},${M}]x[${M},${KK}]`, () => tf.matMul(a2, b2));
  const g = tf.randomNormal([M, Cout]), wt = tf.randomNormal([Cout, KK]);
  time(`  matmul [${M},${Cout}]x[${Cout},${KK}] (col2im gemm)`, () => tf.matMul(g, wt));
  tf.dispose([x, w, y, a, bm, a2, b2, g, wt]);
}
