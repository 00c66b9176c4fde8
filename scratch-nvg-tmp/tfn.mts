import * as tf from '@tensorflow/tfjs';
import { initBackend } from '/work/main/src/backend/index.ts';
await initBackend(process.argv[2] as any);
const which = process.argv[3];
const x = tf.randomUniform([1, 7, 9, 9, 2], 0, 2) as tf.Tensor5D;
const w = tf.randomUniform([7, 7, 7, 2, 3]) as tf.Tensor5D;
if (which === 'conv') {
  const g = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.conv3d(a as tf.Tensor5D, b as tf.Tensor5D, [2, 2, 2], 'same')))([x, w]);
  console.log(g.map(t => t.shape));
} else if (which === 'pool') {
  for (const [k, s, shape] of [[[1,3,3],[1,2,2],[1,4,7,7,2]], [[3,3,3],[2,2,2],[1,5,5,6,2]], [[2,2,2],[2,2,2],[1,4,4,4,2]], [[3,3,3],[1,1,1],[1,3,4,4,2]]] as any) {
    const xx = tf.randomUniform(shape, 0, 2);
    const g = tf.grad((a: tf.Tensor) => tf.sum(tf.maxPool3d(a as tf.Tensor5D, k, s, 'same')))(xx);
    console.log(k, s, g.shape, g.sum().dataSync());
  }
}
