import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/backend/index.ts';
await initBackend('wasm');
const cpuMs = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
function time(label: string, f: () => tf.Tensor | void, reps = 15) {
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) { const t0 = cpuMs(); const r = f(); if (r) { r.dataSync(); tf.dispose(r); } ts.push(cpuMs() - t0); }
  ts.sort((a, b) => a - b); console.log(label.padEnd(50), 'median', ts[reps >> 1].toFixed(1), 'min', ts[0].toFixed(1));
}
const backend = tf.backend() as any;
// Option B: col [M,K] contiguous, dyT [Cout,M] via wasm transpose, matmul [Cout,M]x[M,K], JS transpose to [K,Cout]
function dWB(x: tf.Tensor4D, dy: tf.Tensor4D, K: number, s: number, p: number) {
  const [N, H, W, C] = x.shape; const [, OH, OW, Cout] = dy.shape;
  const M = N * OH * OW, KK = K * K * C;
  const col = backend.makeOutput([1, M, KK], 'float32');
  const xs = backend.typedArrayFromHeap(x) as Float32Array; const cs = backend.typedArrayFromHeap(col) as Float32Array;
  let m = 0;
  for (let n = 0; n < N; n++) for (let oh = 0; oh < OH; oh++) for (let ow = 0; ow < OW; ow++, m++) {
    let dst = m * KK;
    for (let kh = 0; kh < K; kh++) {
      const ih = oh * s - p + kh;
      for (let kw = 0; kw < K; kw++, dst += C) {
        const iw = ow * s - p + kw;
        if (ih < 0 || ih >= H || iw < 0 || iw >= W) { cs.fill(0, dst, dst + C); continue; }
        const src = ((n * H + ih) * W + iw) * C;
        cs.set(xs.subarray(src, src + C), dst);
      }
    }
  }
  const dyT = tf.engine().runKernel('Transpose', { x: tf.reshape(dy, [M, Cout]) }, { perm: [1, 0] }) as tf.Tensor;
  const colT = tf.engine().makeTensorFromTensorInfo(col) as tf.Tensor;
  const prod = tf.matMul(dyT.reshape([Cout, M]) as tf.Tensor2D, colT.reshape([M, KK]) as tf.Tensor2D);
  const r = tf.transpose(prod);
  tf.dispose([dyT, colT, prod]);
  return r;
}
const B = 128;
for (const [H, Cin, Cout, K, s] of [[28, 3, 32, 5, 1], [14, 32, 32, 3, 1], [14, 32, 64, 3, 2], [7, 64, 64, 3, 1]]) {
  const x = tf.randomNormal([B, H, H, Cin]) as tf.Tensor4D, w = tf.randomNormal([K, K, Cin, Cout]) as tf.Tensor4D;
  const pad = (K - 1) / 2;
  const y = tf.conv2d(x, w, s, pad);
  time(`fwd conv ${H} ${Cin}->${Cout} k${K} s${s}`, () => tf.conv2d(x, w, s, pad));
  time(`  dW kernel`, () => tf.engine().runKernel('Conv2DBackpropFilter', { x, dy: y }, { strides: s, pad, dataFormat: 'NHWC', filterShape: [K, K, Cin, Cout] } as any) as tf.Tensor);
  time(`  dW option B`, () => dWB(x, y as tf.Tensor4D, K, s, pad));
  time(`  dx kernel`, () => tf.engine().runKernel('Conv2DBackpropInput', { dy: y, filter: w }, { strides: s, pad, dataFormat: 'NHWC', inputShape: [B, H, H, Cin] } as any) as tf.Tensor);
  const a = tf.engine().runKernel('Conv2DBackpropFilter', { x, dy: y }, { strides: s, pad, dataFormat: 'NHWC', filterShape: [K, K, Cin, Cout] } as any) as tf.Tensor;
  const b = dWB(x, y as tf.Tensor4D, K, s, pad);
  console.log('   rel diff', tf.max(tf.abs(tf.sub(a, b.reshape(a.shape)))).dataSync()[0] / tf.max(tf.abs(a)).dataSync()[0]);
  tf.dispose([x, w, y, a, b]);
}
