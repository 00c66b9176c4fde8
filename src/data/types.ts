/**
 * The dataset contract shared by CMNIST, ModelNet40 and NVGesture. Batches are host arrays (not tensors) so
 * the data layer is independent of the tfjs backend; the trainer turns them into tensors.
 * Layout is channels-last (NHWC, or NTHWC for video), the only layout every tfjs backend supports.
 */

export type SplitName = 'train' | 'val' | 'test';

export interface ModalityInfo {
  /** Human name, e.g. `colored`, `gray`, `front`, `rgb`. */
  name: string;
  /** Per-sample shape, channels last: [H, W, C] or [T, H, W, C]. */
  shape: number[];
}

export interface HostBatch {
  /**
   * One array per modality m (the input of branch m): `size × prod(modalities[m].shape)` floats, already
   * normalised. Two for CMNIST, NVGesture and front/rear ModelNet40; three for three-view ModelNet40.
   */
  inputs: Float32Array[];
  /** Class labels 0…K−1. */
  y: Int32Array;
  /** Indices of the samples within their split (stable across epochs and runs). */
  indices: Int32Array;
  size: number;
}

export interface BatchOptions {
  batchSize: number;
  /** Shuffle the split's order with a seed derived from (seed, epoch). */
  shuffle: boolean;
  /** Apply the split's training augmentation (flips, random crops…); CMNIST has none. */
  augment: boolean;
  seed: number;
  /** Epoch number (1-based); together with `seed` it fixes order and augmentation draws. */
  epoch: number;
  /** Skip this many batches (exact resume within an epoch). */
  startBatch?: number;
}

export interface Dataset {
  readonly name: string;
  /** The inputs as fed to branch 0, 1, … (after any duplication); at least two. */
  readonly modalities: readonly ModalityInfo[];
  readonly numClasses: number;
  readonly classNames: readonly string[];
  size(split: SplitName): number;
  /** Deterministic for equal options. */
  batches(split: SplitName, options: BatchOptions): Iterable<HostBatch>;
  /** Labels of a whole split, in index order. */
  labels(split: SplitName): Int32Array;
}
