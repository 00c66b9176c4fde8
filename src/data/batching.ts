import type { BatchOptions, Dataset, HostBatch, ModalityInfo, SplitName } from './types.ts';
import { Rng, seededPermutation } from '../util/rng.ts';
import type { Modalities } from '../spec/trial.ts';

/**
 * Batching shared by every in-memory dataset: seeded per-epoch order, exact resume, and fast normalisation of
 * uint8 samples into the float batches of the Dataset contract (typed-array loops through per-channel lookup
 * tables; no per-pixel objects).
 */

/** A modality stored as bytes and normalised per channel: value = (byte/255 − mean[c]) / std[c]. */
export interface ByteModality extends ModalityInfo {
  mean: readonly number[];
  std: readonly number[];
}

export interface ByteSplit {
  /**
   * Source bytes of each branch, in branch order (one per modality): `sourceCount × prod(shape)` each. Branches fed
   * the same modality may share one array.
   */
  inputs: Uint8Array[];
  /** Labels of the source samples. */
  labels: ArrayLike<number>;
  /** Position k of this split → index of its source sample (a subset); the identity when absent. */
  sourceIndex?: Int32Array;
  /** Number of source samples (when `sourceIndex` is absent, the split's size). */
  sourceCount: number;
}

/**
 * Order of a split's positions in one epoch: identity without shuffle, else a permutation drawn from the stream
 * named by (split, seed, epoch) — independent of the batch size, so changing it keeps the visiting order.
 */
export function epochOrder(split: SplitName, size: number, shuffle: boolean, seed: number, epoch: number): Int32Array {
  if (!shuffle) {
    const order = new Int32Array(size);
    for (let i = 0; i < size; i++) order[i] = i;
    return order;
  }
  return seededPermutation(size, Rng.from('epoch-order', split, seed, epoch));
}

/** A `subset` asks for more examples than its split has: invalid input (the runner names the flag). */
export class SubsetTooLargeError extends Error {
  override name = 'SubsetTooLargeError';
  constructor(
    readonly dataset: string,
    readonly split: 'train' | 'val' | 'test',
    readonly requested: number,
    readonly available: number,
    readonly unit = 'examples',
  ) {
    super(`subset.${split} = ${requested} exceeds the ${available} ${unit} of the ${dataset} ${split} split; lower it or drop it`);
  }
}

/** The first `n` of a seeded shuffle of 0…count−1, sorted ascending (so a subset keeps the source order). */
export function seededSubset(count: number, n: number, rng: Rng): Int32Array {
  const chosen = seededPermutation(count, rng).slice(0, n);
  return chosen.sort();
}

/**
 * A held-out validation split of a training list: round(fraction·n) entries chosen by the first positions of a
 * permutation drawn from `rng` go to `val`, the rest to `train`; both keep list order.
 */
export function heldOutSplit<T>(entries: readonly T[], fraction: number, rng: Rng, dataset: string): { train: T[]; val: T[] } {
  if (!(fraction >= 0 && fraction < 1)) throw new Error(`${dataset}: valFraction must be in [0, 1), got ${fraction}`);
  const valCount = Math.round(entries.length * fraction);
  const permutation = seededPermutation(entries.length, rng);
  const isVal = new Uint8Array(entries.length);
  for (let i = 0; i < valCount; i++) isVal[permutation[i]!] = 1;
  return { train: entries.filter((_, i) => !isVal[i]), val: entries.filter((_, i) => isVal[i]) };
}

export function channelLookupTables(modality: ByteModality): Float32Array[] {
  const channels = modality.shape[modality.shape.length - 1];
  if (modality.mean.length !== channels || modality.std.length !== channels) {
    throw new Error(`modality ${modality.name}: ${channels} channels but ${modality.mean.length} means / ${modality.std.length} stds`);
  }
  return modality.mean.map((mean, c) => {
    const lut = new Float32Array(256);
    for (let v = 0; v < 256; v++) lut[v] = (v / 255 - mean) / modality.std[c];
    return lut;
  });
}

/** Normalise `count` channels-last bytes from `src[srcOffset…]` into `out[outOffset…]`. */
export function normaliseBytes(out: Float32Array, outOffset: number, src: Uint8Array, srcOffset: number, count: number, luts: Float32Array[]): void {
  if (luts.length === 1) {
    const l0 = luts[0];
    for (let i = 0; i < count; i++) out[outOffset + i] = l0[src[srcOffset + i]];
  } else if (luts.length === 3) {
    const l0 = luts[0];
    const l1 = luts[1];
    const l2 = luts[2];
    for (let i = 0; i < count; i += 3) {
      out[outOffset + i] = l0[src[srcOffset + i]];
      out[outOffset + i + 1] = l1[src[srcOffset + i + 1]];
      out[outOffset + i + 2] = l2[src[srcOffset + i + 2]];
    }
  } else {
    const channels = luts.length;
    for (let i = 0; i < count; i++) out[outOffset + i] = luts[i % channels][src[srcOffset + i]];
  }
}

export function validateBatchOptions(options: BatchOptions): void {
  if (!Number.isInteger(options.batchSize) || options.batchSize <= 0) throw new Error(`batchSize must be a positive integer, got ${options.batchSize}`);
  if (!Number.isSafeInteger(options.seed)) throw new Error(`seed must be an integer, got ${options.seed}`);
  if (!Number.isSafeInteger(options.epoch)) throw new Error(`epoch must be an integer, got ${options.epoch}`);
  const start = options.startBatch ?? 0;
  if (!Number.isInteger(start) || start < 0) throw new Error(`startBatch must be a non-negative integer, got ${start}`);
}

/**
 * A Dataset whose splits live in memory as bytes (CMNIST; synthetic fixtures), with any number ≥ 2 of branches.
 * CMNIST-like data has no augmentation.
 */
export class ByteArrayDataset implements Dataset {
  readonly modalities: readonly ModalityInfo[];
  /** Per branch: the per-channel tables (the same array object for branches given the same modality object). */
  private readonly luts: Float32Array[][];
  private readonly sampleSizes: number[];
  /**
   * Per split and branch: an earlier branch whose floats this branch copies (same bytes, same tables), or −1 to
   * normalise its own bytes. Duplicated inputs are thus normalised once per batch.
   */
  private readonly copyFrom: Record<string, number[]> = {};

  constructor(
    readonly name: string,
    modalities: readonly ByteModality[],
    readonly numClasses: number,
    readonly classNames: readonly string[],
    private readonly splits: Readonly<Record<SplitName, ByteSplit>>,
  ) {
    if (modalities.length < 2) throw new Error(`${name}: a multi-modal dataset needs at least two modalities, got ${modalities.length}`);
    this.modalities = modalities.map((m) => ({ name: m.name, shape: [...m.shape] }));
    // Duplicated inputs pass the same modality object twice: share its tables.
    this.luts = [];
    modalities.forEach((m, b) => {
      const earlier = modalities.indexOf(m);
      this.luts.push(earlier < b ? this.luts[earlier]! : channelLookupTables(m));
    });
    this.sampleSizes = modalities.map((m) => product(m.shape));
    for (const [splitName, split] of Object.entries(splits)) {
      if (split.inputs.length !== modalities.length) {
        throw new Error(`${name}/${splitName}: ${split.inputs.length} input arrays for ${modalities.length} modalities; give one per modality, in branch order`);
      }
      for (const [b, x] of split.inputs.entries()) {
        if (x.length !== split.sourceCount * this.sampleSizes[b]!) {
          throw new Error(`${name}/${splitName}: branch ${b} holds ${x.length} bytes, expected ${split.sourceCount} × ${this.sampleSizes[b]}`);
        }
      }
      this.copyFrom[splitName] = split.inputs.map((x, b) => {
        for (let a = 0; a < b; a++) if (split.inputs[a] === x && this.luts[a] === this.luts[b]) return a;
        return -1;
      });
    }
  }

  size(split: SplitName): number {
    const s = this.splits[split];
    return s.sourceIndex ? s.sourceIndex.length : s.sourceCount;
  }

  /** Index of the source sample behind position `index` of a split. */
  sourceIndexOf(split: SplitName, index: number): number {
    const s = this.splits[split];
    return s.sourceIndex ? s.sourceIndex[index]! : index;
  }

  labels(split: SplitName): Int32Array {
    const n = this.size(split);
    const s = this.splits[split];
    const out = new Int32Array(n);
    for (let i = 0; i < n; i++) out[i] = s.labels[s.sourceIndex ? s.sourceIndex[i]! : i]!;
    return out;
  }

  /** The raw bytes of one sample for one branch (a view: do not mutate). */
  sampleBytes(split: SplitName, index: number, branch: number): Uint8Array {
    const s = this.splits[split];
    if (!Number.isInteger(branch) || branch < 0 || branch >= s.inputs.length) {
      throw new Error(`${this.name}: no branch ${branch} (the dataset has branches 0…${s.inputs.length - 1})`);
    }
    const size = this.sampleSizes[branch]!;
    const src = this.sourceIndexOf(split, index);
    return s.inputs[branch]!.subarray(src * size, (src + 1) * size);
  }

  *batches(split: SplitName, options: BatchOptions): Iterable<HostBatch> {
    validateBatchOptions(options);
    const n = this.size(split);
    const order = epochOrder(split, n, options.shuffle, options.seed, options.epoch);
    for (let start = (options.startBatch ?? 0) * options.batchSize; start < n; start += options.batchSize) {
      const size = Math.min(options.batchSize, n - start);
      yield this.batchOf(split, order.subarray(start, start + size));
    }
  }

  /** A batch of the given split positions, in that order (used by the batch iterator and by evaluation code). */
  batchOf(split: SplitName, positions: Int32Array): HostBatch {
    const s = this.splits[split];
    const copyFrom = this.copyFrom[split]!;
    const size = positions.length;
    const inputs = this.sampleSizes.map((n) => new Float32Array(size * n));
    const y = new Int32Array(size);
    const indices = new Int32Array(size);
    for (let k = 0; k < size; k++) {
      const position = positions[k]!;
      const src = s.sourceIndex ? s.sourceIndex[position]! : position;
      indices[k] = position;
      y[k] = s.labels[src]!;
      for (let b = 0; b < inputs.length; b++) {
        const n = this.sampleSizes[b]!;
        if (copyFrom[b] === -1) normaliseBytes(inputs[b]!, k * n, s.inputs[b]!, src * n, n, this.luts[b]!);
      }
    }
    // Branches reading the same bytes with the same tables get a copy of the earlier branch's floats.
    copyFrom.forEach((a, b) => {
      if (a !== -1) inputs[b]!.set(inputs[a]!);
    });
    return { inputs, y, indices, size };
  }
}

function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * Which of a two-sensor data set's sources feeds branch 0 and branch 1: both for `distinct`, the first (second)
 * twice for the duplicated-modality controls.
 */
export function branchSources<S>(modalities: Modalities, sources: readonly [S, S]): [S, S] {
  switch (modalities) {
    case 'distinct':
      return [sources[0], sources[1]];
    case 'duplicate-m0':
      return [sources[0], sources[0]];
    case 'duplicate-m1':
      return [sources[1], sources[1]];
  }
}

/** A loader option that must be a positive integer, or an error naming the data set and the option. */
export function positiveInteger(dataset: string, value: number, what: string): number {
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${dataset}: ${what} must be a positive integer, got ${value}`);
  return value;
}
