import type { BatchOptions, Dataset, HostBatch, ModalityInfo, SplitName } from './types.ts';
import { Rng, seededPermutation } from './rng.ts';

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
  /** Source bytes for branch 0 and branch 1: `sourceCount × prod(shape)` each (may be the same array). */
  x0: Uint8Array;
  x1: Uint8Array;
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

/** The first `n` of a seeded shuffle of 0…count−1, sorted ascending (so a subset keeps the source order). */
export function seededSubset(count: number, n: number, rng: Rng): Int32Array {
  const chosen = seededPermutation(count, rng).slice(0, n);
  return chosen.sort();
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

/** A Dataset whose splits live in memory as bytes (CMNIST; synthetic fixtures). CMNIST-like data has no augmentation. */
export class ByteArrayDataset implements Dataset {
  readonly modalities: readonly [ModalityInfo, ModalityInfo];
  private readonly luts: [Float32Array[], Float32Array[]];
  private readonly sampleSizes: [number, number];

  constructor(
    readonly name: string,
    modalities: readonly [ByteModality, ByteModality],
    readonly numClasses: number,
    readonly classNames: readonly string[],
    private readonly splits: Readonly<Record<SplitName, ByteSplit>>,
  ) {
    this.modalities = [
      { name: modalities[0].name, shape: [...modalities[0].shape] },
      { name: modalities[1].name, shape: [...modalities[1].shape] },
    ];
    // Duplicated inputs pass the same modality object twice: share its tables so batches normalise once.
    const luts0 = channelLookupTables(modalities[0]);
    this.luts = [luts0, modalities[1] === modalities[0] ? luts0 : channelLookupTables(modalities[1])];
    this.sampleSizes = [product(modalities[0].shape), product(modalities[1].shape)];
    for (const [splitName, split] of Object.entries(splits)) {
      for (const [b, x] of [split.x0, split.x1].entries()) {
        if (x.length !== split.sourceCount * this.sampleSizes[b]) {
          throw new Error(`${name}/${splitName}: branch ${b} holds ${x.length} bytes, expected ${split.sourceCount} × ${this.sampleSizes[b]}`);
        }
      }
    }
  }

  size(split: SplitName): number {
    const s = this.splits[split];
    return s.sourceIndex ? s.sourceIndex.length : s.sourceCount;
  }

  /** Index of the source sample behind position `index` of a split. */
  sourceIndexOf(split: SplitName, index: number): number {
    const s = this.splits[split];
    return s.sourceIndex ? s.sourceIndex[index] : index;
  }

  labels(split: SplitName): Int32Array {
    const n = this.size(split);
    const s = this.splits[split];
    const out = new Int32Array(n);
    for (let i = 0; i < n; i++) out[i] = s.labels[s.sourceIndex ? s.sourceIndex[i] : i];
    return out;
  }

  /** The raw bytes of one sample for one branch (a view: do not mutate). */
  sampleBytes(split: SplitName, index: number, branch: 0 | 1): Uint8Array {
    const s = this.splits[split];
    const size = this.sampleSizes[branch];
    const src = this.sourceIndexOf(split, index);
    return (branch === 0 ? s.x0 : s.x1).subarray(src * size, (src + 1) * size);
  }

  *batches(split: SplitName, options: BatchOptions): Iterable<HostBatch> {
    validateBatchOptions(options);
    const n = this.size(split);
    const order = epochOrder(split, n, options.shuffle, options.seed, options.epoch);
    const s = this.splits[split];
    // Both branches read the same bytes with the same normalisation: normalise once, copy the floats.
    const sameInputs = s.x0 === s.x1 && this.luts[0] === this.luts[1];
    for (let start = (options.startBatch ?? 0) * options.batchSize; start < n; start += options.batchSize) {
      const size = Math.min(options.batchSize, n - start);
      yield this.assemble(s, order.subarray(start, start + size), sameInputs);
    }
  }

  /** A batch of the given split positions, in that order (used by the batch iterator and by evaluation code). */
  batchOf(split: SplitName, positions: Int32Array): HostBatch {
    const s = this.splits[split];
    return this.assemble(s, positions, s.x0 === s.x1 && this.luts[0] === this.luts[1]);
  }

  private assemble(s: ByteSplit, positions: Int32Array, sameInputs: boolean): HostBatch {
    const size = positions.length;
    const [size0, size1] = this.sampleSizes;
    const x0 = new Float32Array(size * size0);
    const x1 = new Float32Array(size * size1);
    const y = new Int32Array(size);
    const indices = new Int32Array(size);
    for (let k = 0; k < size; k++) {
      const position = positions[k];
      const src = s.sourceIndex ? s.sourceIndex[position] : position;
      indices[k] = position;
      y[k] = s.labels[src];
      normaliseBytes(x0, k * size0, s.x0, src * size0, size0, this.luts[0]);
      if (!sameInputs) normaliseBytes(x1, k * size1, s.x1, src * size1, size1, this.luts[1]);
    }
    if (sameInputs) x1.set(x0);
    return { x0, x1, y, indices, size };
  }
}

function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}
