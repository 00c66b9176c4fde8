// One-off experiment (not part of the suite): uni-modal SE baselines trained briefly on CMNIST.
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/backend/index.ts';
import { createDataset } from '../../src/data/index.ts';
import { createCmnistUnimodalSeNet } from '../../src/nn/cmnist.ts';
const backend = await initBackend('wasm');
console.log(backend.name, backend.device);
const trainN = Number(process.argv[2] ?? 6000), steps = Number(process.argv[3] ?? 100), lr = Number(process.argv[4] ?? 0.1);
const ds = await createDataset({ name: 'cmnist', sigma2: 0.02, paletteSeed: 0, dataSeed: 0 }, { modalities: 'distinct', subset: { train: trainN, val: 2000, test: 2000 }, cacheDir: '/tmp/mmsweep-nn-cache' });
const mods = JSON.parse(process.argv[5] ?? '[1,0]') as (0 | 1)[];
for (const modality of mods) {
  const channels = modality === 0 ? 3 : 1;
  const net = createCmnistUnimodalSeNet({ channels, numClasses: 10, seed: 1, fidelity: { gateScale: 1 }, modality });
  const opt = tf.train.momentum(lr, 0.9);
  const t0 = Date.now();
  let step = 0;
  for (let epoch = 1; step < steps; epoch++) {
    let correct = 0, seen = 0;
    for (const b of ds.batches('train', { batchSize: 128, shuffle: true, augment: false, seed: 1, epoch })) {
      if (step++ >= steps) break;
      const x = tf.tensor4d(modality === 0 ? b.x0 : b.x1, [b.size, 28, 28, channels]);
      const y = tf.oneHot(tf.tensor1d(b.y, 'int32'), 10);
      opt.minimize(() => { const out = net.forward(x, { training: true });
        correct += tf.tidy(() => tf.sum(tf.equal(tf.argMax(out.logits, 1), tf.tensor1d(b.y, 'int32'))).dataSync()[0]!); seen += b.size;
        const l = tf.losses.softmaxCrossEntropy(y, out.logits) as tf.Scalar; if (step % 25 === 0) console.log('step', step, 'loss', l.dataSync()[0]); return l; });
      x.dispose(); y.dispose();
    }
    console.log(`modality ${modality} epoch ${epoch} (step ${step}): train acc ${(100 * correct / seen).toFixed(2)} (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  }
  for (const split of ['val', 'test'] as const) {
    let correct = 0, n = 0;
    for (const b of ds.batches(split, { batchSize: 500, shuffle: false, augment: false, seed: 1, epoch: 1 })) {
      correct += tf.tidy(() => { const x = tf.tensor4d(modality === 0 ? b.x0 : b.x1, [b.size, 28, 28, channels]);
        return tf.sum(tf.equal(tf.argMax(net.forward(x, { training: false }).logits, 1), tf.tensor1d(b.y, 'int32'))).dataSync()[0]!; });
      n += b.size;
    }
    console.log(`modality ${modality} (${modality === 0 ? 'colored' : 'gray'}) ${split} acc ${(100 * correct / n).toFixed(2)} on ${n}`);
  }
  net.dispose(); opt.dispose();
}
