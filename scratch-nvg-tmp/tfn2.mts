import * as tf from '@tensorflow/tfjs';
import { initBackend } from '/work/main/src/backend/index.ts';
await initBackend(process.argv[2] as any);
const [d, h, w, cin, cout, k] = process.argv.slice(3).map(Number);
const x = tf.variable(tf.randomUniform([1, d, h, w, cin], -1, 1));
const f = tf.variable(tf.randomUniform([k, k, k, cin, cout], -1, 1));
for (let i = 0; i < 3; i++) {
const { value, grads } = tf.variableGrads(() => {
  const y = tf.conv3d(x as any, f as any, [2, 2, 2], 'same');
  return tf.sum(y) as tf.Scalar;
}, [x, f]);
console.log(value.dataSync(), grads[x.name]!.shape, grads[f.name]!.shape);
}
