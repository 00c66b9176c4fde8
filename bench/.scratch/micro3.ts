import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/backend/index.ts';
await initBackend('wasm');
function time(label: string, f: () => tf.Tensor | tf.Tensor[] | void, reps = 15) {
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) { const t0 = performance.now(); const r = f(); if (r) { (Array.isArray(r) ? r[0] : r).dataSync(); tf.dispose(r); } ts.push(performance.now() - t0); }
  ts.sort((a, b) => a - b); console.log(label.padEnd(50), 'median', ts[reps >> 1].toFixed(1), 'min', ts[0].toFixed(1));
}
// dW via dilated conv: batch=Cin, channels=N
function dWconv(x: tf.Tensor4D, dy: tf.Tensor4D, K: number, s: number, p: number) {
  return tf.tidy(() => {
    const [N, H, W, Cin] = x.shape; const [, OH, OW, Cout] = dy.shape;
    const xT = tf.transpose(x, [3, 1, 2, 0]) as tf.Tensor4D;
    const f = tf.transpose(dy, [1, 2, 0, 3]) as tf.Tensor4D;
    const pb = K + (OH - 1) * s - H - p, pr = K + (OW - 1) * s - W - p;
    const out = tf.conv2d(xT, f, 1, [[0, 0], [p, pb], [p, pr], [0, 0]], 'NHWC', s);
    return tf.transpose(out, [1, 2, 0, 3]);
  });
}
const B = 128;
for (const [H, Cin, Cout, K, s] of [[28, 1, 32, 5, 1], [28, 3, 32, 5, 1], [14, 32, 32, 3, 1], [14, 32, 64, 3, 2], [7, 64, 64, 3, 1]]) {
  const x = tf.randomNormal([B, H, H, Cin]) as tf.Tensor4D, w = tf.randomNormal([K, K, Cin, Cout]) as tf.Tensor4D;
  const pad = (K - 1) / 2;
  const y = tf.conv2d(x, w, s, pad);
  time(`fwd conv ${H} ${Cin}->${Cout} k${K} s${s}`, () => tf.conv2d(x, w, s, pad));
  time(`  dW kernel (colT+matmul)`, () => tf.engine().runKernel('Conv2DBackpropFilter', { x, dy: y }, { strides: s, pad, dataFormat: 'NHWC', filterShape: [K, K, Cin, Cout] } as any) as tf.Tensor);
  time(`  dW dilated conv`, () => dWconv(x, y, K, s, pad));
  const a = tf.engine().runKernel('Conv2DBackpropFilter', { x, dy: y }, { strides: s, pad, dataFormat: 'NHWC', filterShape: [K, K, Cin, Cout] } as any) as tf.Tensor;
  const b = dWconv(x, y, K, s, pad);
  console.log('   max diff', tf.max(tf.abs(tf.sub(a, b))).dataSync()[0], 'scale', tf.max(tf.abs(a)).dataSync()[0]);
  time(`  transpose x`, () => tf.transpose(x, [3, 1, 2, 0]));
  time(`  transpose dy`, () => tf.transpose(y, [1, 2, 0, 3]));
  tf.dispose([x, w, y, a, b]);
}
