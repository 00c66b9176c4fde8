import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/backend/index.ts';
import { createDataset } from '../../src/data/index.ts';
import { createCmnistUnimodalSeNet } from '../../src/nn/cmnist.ts';
await initBackend('wasm');
const ds = await createDataset({ name: 'cmnist', sigma2: 0.02, paletteSeed: 0, dataSeed: 0 }, { modalities: 'distinct', subset: { train: 20000, val: 500, test: 500 }, cacheDir: '/tmp/mmsweep-nn-cache', log: () => {} });
const configs = JSON.parse(process.argv[2]!) as { se: number[]; lr: number; mom: number; opt?: string; steps?: number; bs?: number }[];
for (const c of configs) {
  const net = createCmnistUnimodalSeNet({ channels: 1, numClasses: 10, seed: 1, fidelity: { gateScale: 1 }, modality: 1, sePositions: c.se });
  const opt = c.opt === 'adam' ? tf.train.adam(c.lr) : tf.train.momentum(c.lr, c.mom);
  const losses: string[] = []; let step = 0; const t0 = Date.now();
  for (let epoch = 1; step < (c.steps ?? 60); epoch++) for (const b of ds.batches('train', { batchSize: c.bs ?? 64, shuffle: true, augment: false, seed: 1, epoch })) {
    if (step >= (c.steps ?? 60)) break;
    const x = tf.tensor4d(b.x1, [b.size, 28, 28, 1]); const y = tf.oneHot(tf.tensor1d(b.y, 'int32'), 10);
    const l = opt.minimize(() => tf.losses.softmaxCrossEntropy(y, net.forward(x, { training: true }).logits) as tf.Scalar, true)!;
    if (step % 10 === 0) losses.push(l.dataSync()[0]!.toFixed(3));
    l.dispose(); x.dispose(); y.dispose(); step++;
  }
  console.log(JSON.stringify(c), ((Date.now() - t0) / 1000).toFixed(0) + 's', losses.join(' '));
  net.dispose(); opt.dispose();
}
