import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { registerWasmTrainingKernels } from '../../src/backend/wasm-kernels.ts';
registerWasmTrainingKernels();
async function on<T>(b: string, f: () => T): Promise<T> { await tf.setBackend(b); return f(); }
function rnd(shape: number[], seed: number) { let s = seed; const n = shape.reduce((a, b) => a * b, 1); const a = new Float32Array(n); for (let i = 0; i < n; i++) { s = (s * 1103515245 + 12345) % 2147483648; a[i] = s / 2147483648 * 2 - 1; } return a; }
const cases: [number[], number[], number, any][] = [
  [[2, 7, 7, 3], [3, 3, 3, 4], 1, 'same'], [[2, 7, 7, 3], [3, 3, 3, 4], 2, 'same'], [[2, 8, 8, 3], [3, 3, 3, 4], 2, 'valid'],
  [[2, 9, 9, 2], [5, 5, 2, 3], 1, [[0, 0], [2, 2], [2, 2], [0, 0]]], [[2, 9, 9, 2], [3, 3, 2, 3], 2, [[0, 0], [1, 1], [1, 1], [0, 0]]],
  [[1, 10, 9, 2], [3, 2, 2, 3], [2, 3], [[0, 0], [1, 0], [0, 2], [0, 0]]],
];
for (const [xs, ws, s, p] of cases) {
  const run = () => tf.tidy(() => {
    const x = tf.tensor(rnd(xs, 1), xs) as tf.Tensor4D, w = tf.tensor(rnd(ws, 2), ws) as tf.Tensor4D;
    const y = tf.conv2d(x, w, s as any, p);
    const r = tf.tensor(rnd(y.shape, 3), y.shape);
    const g = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, s as any, p), r)));
    const [dx, dw] = g([x, w]);
    const mp = tf.grad((a: tf.Tensor) => { const m = tf.maxPool(a as tf.Tensor4D, 3, 2, p === 'valid' ? 'valid' : 'same'); return tf.sum(tf.mul(m, tf.onesLike(m).mul(tf.range(0, m.size).reshape(m.shape).mul(0.01)))); })(tf.sub(x, 0.5));
    return [dx.dataSync(), dw.dataSync(), mp.dataSync()];
  });
  const c = await on('cpu', run), wv = await on('wasm', run);
  const md = (a: any, b: any) => { let m = 0; for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i])); return m; };
  console.log(JSON.stringify([xs, ws, s, p]), 'dx', md(c[0], wv[0]).toExponential(2), 'dw', md(c[1], wv[1]).toExponential(2), 'mp', md(c[2], wv[2]).toExponential(2));
}
