import * as tf from '@tensorflow/tfjs';
import type { Dataset, SplitName } from '../data/types.ts';
import type { ForwardMode, MultimodalNet } from '../nn/types.ts';
import { conditionalUtilization, type ConditionalUtilization } from './utilization.ts';

/** Exact accuracies (percent) of ŷ, ŷ0, ŷ1 over a split, plus the counts they come from. */
export interface SplitAccuracy {
  acc: number;
  acc0: number;
  acc1: number;
  correct: [number, number, number];
  total: number;
}

export function toTensors(dataset: Dataset, batch: { x0: Float32Array; x1: Float32Array; size: number }) {
  const [m0, m1] = dataset.modalities;
  return {
    x0: tf.tensor(batch.x0, [batch.size, ...m0.shape], 'float32'),
    x1: tf.tensor(batch.x1, [batch.size, ...m1.shape], 'float32'),
  };
}

/** Number of correct predictions of each logits tensor, as one int tensor [3]. */
export function correctCounts(logits: tf.Tensor2D[], y: tf.Tensor1D): tf.Tensor1D {
  return tf.tidy(() => tf.stack(logits.map((l) => tf.sum(tf.cast(tf.equal(tf.argMax(l, 1), y), 'int32')))) as tf.Tensor1D);
}

export function evaluateSplit(
  net: MultimodalNet,
  dataset: Dataset,
  split: SplitName,
  options: { mode: ForwardMode; batchSize: number; augment?: boolean; seed?: number; epoch?: number },
): SplitAccuracy {
  const correct: [number, number, number] = [0, 0, 0];
  let total = 0;
  for (const batch of dataset.batches(split, {
    batchSize: options.batchSize,
    shuffle: false,
    augment: options.augment ?? false,
    seed: options.seed ?? 0,
    epoch: options.epoch ?? 1,
  })) {
    const counts = tf.tidy(() => {
      const { x0, x1 } = toTensors(dataset, batch);
      const out = net.forward(x0, x1, { mode: options.mode, training: false });
      return correctCounts([out.logits, out.logits0, out.logits1], tf.tensor1d(batch.y, 'int32'));
    });
    const c = counts.dataSync();
    counts.dispose();
    for (let i = 0; i < 3; i++) correct[i] += c[i];
    total += batch.size;
  }
  const pct = (n: number) => (total > 0 ? (100 * n) / total : 0);
  return { acc: pct(correct[0]), acc0: pct(correct[1]), acc1: pct(correct[2]), correct, total };
}

/**
 * h̄0^j, h̄1^j of every MMTM position j: the per-channel spatial means of its inputs, averaged with equal weight
 * over every sample of the training split (regular mode, inference BatchNorm; paper-spec §6.2).
 */
export function squeezeMeans(
  net: MultimodalNet,
  dataset: Dataset,
  options: { batchSize: number; augment: boolean; seed: number },
): { h0: Float32Array; h1: Float32Array }[] {
  let sums: { h0: Float64Array; h1: Float64Array }[] | null = null;
  let total = 0;
  for (const batch of dataset.batches('train', {
    batchSize: options.batchSize,
    shuffle: false,
    augment: options.augment,
    seed: options.seed,
    epoch: 1,
  })) {
    const squeezed = tf.tidy(() => {
      const { x0, x1 } = toTensors(dataset, batch);
      const out = net.forward(x0, x1, { mode: 'regular', training: false, collectSqueezed: true });
      if (!out.squeezed) throw new Error('net.forward did not return squeezed features despite collectSqueezed');
      // Sum over the batch on the device; the host accumulates in float64.
      return out.squeezed.flatMap((s) => [tf.sum(s.h0, 0), tf.sum(s.h1, 0)]);
    });
    const host = squeezed.map((t) => t.dataSync() as Float32Array);
    squeezed.forEach((t) => t.dispose());
    if (!sums) {
      sums = [];
      for (let j = 0; j < host.length / 2; j++) {
        sums.push({ h0: new Float64Array(host[2 * j].length), h1: new Float64Array(host[2 * j + 1].length) });
      }
    }
    sums.forEach((s, j) => {
      host[2 * j].forEach((v, c) => (s.h0[c] += v));
      host[2 * j + 1].forEach((v, c) => (s.h1[c] += v));
    });
    total += batch.size;
  }
  if (!sums || total === 0) throw new Error('squeezeMeans: the training split is empty');
  return sums.map((s) => ({ h0: Float32Array.from(s.h0, (v) => v / total), h1: Float32Array.from(s.h1, (v) => v / total) }));
}

export interface UtilizationReport extends ConditionalUtilization {
  accF: number;
  accF0: number;
  accF1: number;
  accF0Prime: number;
  accF1Prime: number;
}

/**
 * The conditional-utilization evaluation of paper-spec §6 on the net as it stands (call it on the best-val
 * model): h̄ over the training split, then A(f), A(f0), A(f1) in regular mode and A(f0′), A(f1′) with the
 * unimodal-means forward, all on the test split.
 */
export function utilizationReport(
  net: MultimodalNet,
  dataset: Dataset,
  options: { batchSize: number; augmentMeans: boolean; seed: number },
): UtilizationReport {
  net.setSqueezeMeans(squeezeMeans(net, dataset, { batchSize: options.batchSize, augment: options.augmentMeans, seed: options.seed }));
  const regular = evaluateSplit(net, dataset, 'test', { mode: 'regular', batchSize: options.batchSize });
  const prime = evaluateSplit(net, dataset, 'test', { mode: 'unimodalMeans', batchSize: options.batchSize });
  const accs = { accF0: regular.acc0, accF1: regular.acc1, accF0Prime: prime.acc0, accF1Prime: prime.acc1 };
  return { accF: regular.acc, ...accs, ...conditionalUtilization(accs) };
}
