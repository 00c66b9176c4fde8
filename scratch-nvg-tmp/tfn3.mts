import * as tf from '@tensorflow/tfjs';
import { initBackend } from '/work/main/src/backend/index.ts';
await initBackend('tensorflow');
const [d, h, w, cin, cout, k, s] = process.argv.slice(3).map(Number);
const mode = process.argv[2];
const x = tf.randomUniform([1, d, h, w, cin], -1, 1) as tf.Tensor5D;
const f = tf.randomUniform([k, k, k, cin, cout], -1, 1) as tf.Tensor5D;
const st: [number,number,number] = [s, s, s];
for (let i = 0; i < 5; i++) {
  if (mode === 'fwd') console.log(tf.conv3d(x, f, st, 'same').shape);
  const y = tf.conv3d(x, f, st, 'same');
  if (mode === 'dx') console.log(tf.conv3dTranspose ? (tf as any).engine().runKernel('Conv3DBackpropInputV2', { dy: tf.onesLike(y), filter: f }, { strides: st, pad: 'same', inputShape: x.shape }).shape : 0);
  if (mode === 'dw') console.log((tf as any).engine().runKernel('Conv3DBackpropFilterV2', { x, dy: tf.onesLike(y) }, { strides: st, pad: 'same', filterShape: f.shape }).shape);
}
