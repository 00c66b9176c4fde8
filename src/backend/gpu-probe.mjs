// Child process of src/backend/gpu.ts: loads a tfjs-node-gpu build, runs one convolution and says whether
// TensorFlow ran it on a GPU. Kept out of the parent so a build that cannot use a GPU never enters it (two native
// TensorFlow packages in one process would register every kernel twice). stdout: one JSON line; stderr: TF's log.
import { createRequire } from 'node:module';

const packageDir = process.argv[2];
if (!packageDir) {
  process.stderr.write('usage: node gpu-probe.mjs <package directory of @tensorflow/tfjs-node-gpu>\n');
  process.exit(2);
}
const require = createRequire(import.meta.url);
const tf = require(packageDir);
await tf.setBackend('tensorflow');
const x = tf.tensor4d([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 3, 3, 1]);
const w = tf.tensor4d([1, 0, 0, -1], [2, 2, 1, 1]);
const conv = Array.from(tf.conv2d(x, w, 1, 'valid').dataSync());
const backend = tf.backend();
process.stdout.write(
  `${JSON.stringify({ usingGpu: backend.isUsingGpuDevice === true, conv, tfVersion: backend.binding.TF_Version })}\n`,
);
