import * as tf from '@tensorflow/tfjs';
import type { Dataset, SplitName } from '../data/types.ts';
import type { ForwardMode, MultimodalNet } from '../nn/types.ts';
import type { ModalityResult } from '../spec/contracts.ts';
import { modalityUtilization } from './utilization.ts';

/** Exact accuracies (percent) of ŷ and of every branch's ŷk over a split, plus the counts they come from. */
export interface SplitAccuracy {
  acc: number;
  /** Accuracy of ŷk, index = modality. */
  branchAcc: number[];
  /** Correct predictions of ŷ, ŷ0, ŷ1, …. */
  correct: number[];
  total: number;
}

/** The batch's per-modality host arrays as tensors of the dataset's shapes. */
export function toTensors(dataset: Dataset, batch: { inputs: readonly Float32Array[]; size: number }): tf.Tensor[] {
  if (batch.inputs.length !== dataset.modalities.length) {
    throw new Error(`${dataset.name}: a batch with ${batch.inputs.length} inputs for ${dataset.modalities.length} modalities`);
  }
  return dataset.modalities.map((m, k) => tf.tensor(batch.inputs[k]!, [batch.size, ...m.shape], 'float32'));
}

/** Number of correct predictions of each logits tensor, as one int tensor [n]. */
export function correctCounts(logits: tf.Tensor2D[], y: tf.Tensor1D): tf.Tensor1D {
  return tf.tidy(() => tf.stack(logits.map((l) => tf.sum(tf.cast(tf.equal(tf.argMax(l, 1), y), 'int32')))) as tf.Tensor1D);
}

export function evaluateSplit(
  net: MultimodalNet,
  dataset: Dataset,
  split: SplitName,
  options: { mode: ForwardMode; batchSize: number; augment?: boolean; seed?: number; epoch?: number },
): SplitAccuracy {
  const correct: number[] = new Array(1 + net.modalityCount).fill(0);
  let total = 0;
  for (const batch of dataset.batches(split, {
    batchSize: options.batchSize,
    shuffle: false,
    augment: options.augment ?? false,
    seed: options.seed ?? 0,
    epoch: options.epoch ?? 1,
  })) {
    const counts = tf.tidy(() => {
      const out = net.forward(toTensors(dataset, batch), { mode: options.mode, training: false });
      return correctCounts([out.logits, ...out.branchLogits], tf.tensor1d(batch.y, 'int32'));
    });
    const c = counts.dataSync();
    counts.dispose();
    for (let i = 0; i < correct.length; i++) correct[i]! += c[i]!;
    total += batch.size;
  }
  const pct = (n: number) => (total > 0 ? (100 * n) / total : 0);
  return { acc: pct(correct[0]!), branchAcc: correct.slice(1).map(pct), correct, total };
}

/**
 * Mean softmax cross-entropy over a split of ŷ (index 0) and of every per-branch head of a late-fusion net
 * (indices 1…M), regular mode, inference BatchNorm, no augmentation: the training and held-out losses
 * Gradient-Blending reads (Wang et al. 2020, §3.2). Sums per batch on the device, float64 on the host.
 */
export function headLosses(net: MultimodalNet, dataset: Dataset, split: SplitName, options: { batchSize: number }): number[] {
  let sums: Float64Array | null = null;
  let total = 0;
  for (const batch of dataset.batches(split, { batchSize: options.batchSize, shuffle: false, augment: false, seed: 0, epoch: 1 })) {
    const summed = tf.tidy(() => {
      const out = net.forward(toTensors(dataset, batch), { mode: 'regular', training: false });
      const heads = out.lateFusion?.unimodalLogits;
      if (!heads) throw new Error('headLosses: the net has no per-branch heads (a late-fusion net built with unimodalHeads)');
      const oneHot = tf.oneHot(tf.tensor1d(batch.y, 'int32'), dataset.numClasses).toFloat();
      // −Σ_i log softmax(l_i)[y_i] of every head, stacked.
      return tf.stack([out.logits, ...heads].map((l) => tf.neg(tf.sum(tf.mul(oneHot, tf.logSoftmax(l))))));
    });
    const host = summed.dataSync();
    summed.dispose();
    sums ??= new Float64Array(host.length);
    host.forEach((v, i) => (sums![i]! += v));
    total += batch.size;
  }
  if (!sums || total === 0) throw new Error(`headLosses: the ${split} split is empty`);
  return Array.from(sums, (v) => v / total);
}

/**
 * Class means of every modality's final features e_k over the first ⌈fraction·batches⌉ batches of the training
 * split (in dataset order, no augmentation, inference BatchNorm): PMR's prototypes (Fan et al. 2023, §3.2).
 * Returns means[k][c] (F_k values each) and counts[c]; a class absent from those batches has count 0 and zeros.
 */
export function classFeatureMeans(
  net: MultimodalNet,
  dataset: Dataset,
  options: { batchSize: number; fraction: number },
): { means: Float32Array[][]; counts: number[] } {
  const K = dataset.numClasses;
  const batches = Math.max(1, Math.ceil((options.fraction * dataset.size('train')) / options.batchSize));
  let sums: Float64Array[][] | null = null;
  const counts = new Array<number>(K).fill(0);
  let seen = 0;
  for (const batch of dataset.batches('train', { batchSize: options.batchSize, shuffle: false, augment: false, seed: 0, epoch: 1 })) {
    if (seen++ >= batches) break;
    const perClass = tf.tidy(() => {
      const out = net.forward(toTensors(dataset, batch), { mode: 'regular', training: false });
      const oneHot = tf.oneHot(tf.tensor1d(batch.y, 'int32'), K).toFloat();
      // oneHotᵀ·e_k: the per-class feature sums (K×F_k) on the device.
      return out.branchFeatures.map((e) => tf.matMul(oneHot, e, true, false));
    });
    const host = perClass.map((t) => t.dataSync() as Float32Array);
    const widths = perClass.map((t) => t.shape[1]!);
    perClass.forEach((t) => t.dispose());
    sums ??= widths.map((f) => Array.from({ length: K }, () => new Float64Array(f)));
    sums.forEach((perModality, k) => perModality.forEach((row, c) => row.forEach((_, j) => (row[j]! += host[k]![c * widths[k]! + j]!))));
    for (const y of batch.y) counts[y]! += 1;
  }
  if (!sums) throw new Error('classFeatureMeans: the training split is empty');
  return { means: sums.map((perModality) => perModality.map((row, c) => Float32Array.from(row, (v) => (counts[c]! > 0 ? v / counts[c]! : 0)))), counts };
}

/**
 * h̄_k^j of every MMTM position j and modality k: the per-channel spatial means of its inputs, averaged with equal
 * weight over every sample of the training split (regular mode, inference BatchNorm; paper-spec §6.2).
 * Returns means[j][k].
 */
export function squeezeMeans(
  net: MultimodalNet,
  dataset: Dataset,
  options: { batchSize: number; augment: boolean; seed: number },
): Float32Array[][] {
  let sums: Float64Array[][] | null = null;
  let total = 0;
  for (const batch of dataset.batches('train', {
    batchSize: options.batchSize,
    shuffle: false,
    augment: options.augment,
    seed: options.seed,
    epoch: 1,
  })) {
    const squeezed = tf.tidy(() => {
      const out = net.forward(toTensors(dataset, batch), { mode: 'regular', training: false, collectSqueezed: true });
      if (!out.squeezed) throw new Error('net.forward did not return squeezed features despite collectSqueezed');
      // Sum over the batch on the device; the host accumulates in float64.
      return out.squeezed.map((position) => position.map((h) => tf.sum(h, 0)));
    });
    const host = squeezed.map((position) => position.map((t) => t.dataSync() as Float32Array));
    squeezed.flat().forEach((t) => t.dispose());
    sums ??= host.map((position) => position.map((h) => new Float64Array(h.length)));
    sums.forEach((position, j) => position.forEach((s, k) => host[j]![k]!.forEach((v, c) => (s[c]! += v))));
    total += batch.size;
  }
  if (!sums || total === 0) throw new Error('squeezeMeans: the training split is empty');
  return sums.map((position) => position.map((s) => Float32Array.from(s, (v) => v / total)));
}

export interface UtilizationReport {
  /** A(f): test accuracy of ŷ, regular mode. */
  accF: number;
  /** Every modality's A(f_k), A(f_k′), u(rest|m_k). */
  perModality: ModalityResult[];
  dUtil: number | null;
}

/**
 * The conditional-utilization evaluation of paper-spec §6 (§8.6 for M > 2) on the net as it stands (call it on
 * the best-val model): h̄ over the training split, then A(f), A(f_k) in regular mode and A(f_k′) with the
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
  const { u, dUtil } = modalityUtilization(regular.branchAcc, prime.branchAcc);
  const perModality = dataset.modalities.map((m, k) => ({ name: m.name, accF: regular.branchAcc[k]!, accFPrime: prime.branchAcc[k]!, u: u[k]! }));
  return { accF: regular.acc, perModality, dUtil };
}
