import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Modalities } from '../spec/trial.ts';
import { channelLookupTables, epochOrder, normaliseBytes, seededSubset, SubsetTooLargeError, validateBatchOptions, type ByteModality } from './batching.ts';
import { resolveCacheDir } from './cache.ts';
import { DataFileError } from './idx.ts';
import { flipHorizontal, readPngRgb, resizeBilinear } from './image.ts';
import { PythonRandom } from './python-random.ts';
import { Rng } from '../util/rng.ts';
import type { BatchOptions, Dataset, HostBatch, ModalityInfo, SplitName } from './types.ts';

/**
 * ModelNet40 as the MVCNN 12-view shaded renders (paper-spec §3.2), read from the published layout
 * `<root>/<class>/<train|test>/<object>.obj.shaded_v001.png … _v012.png`.
 *
 * - Classes: the 40 of MODELNET40_CLASSES, label = index in that list. A class folder absent on disk is an error
 *   naming it, unless `allowMissingClasses` (then its label stays unused; `numClasses` stays 40).
 * - Objects: sorted by name (code-point order) within a class; dataset order = classes in order, then objects.
 * - Inputs: `views` are two or three distinct 0-based view indices (0 = `_v001`); branch k reads views[k], and a
 *   batch's `inputs[k]` holds it. Default [0, 6] = front (v001) and rear (v007) → two modalities. Three views give
 *   three modalities, for the paper's three-view experiment (§6.4 last paragraph, paper-spec §8.6); the paper does
 *   not say which three views — paper-spec's best reading is [0, 4, 8] (v001, v005, v009, 120° apart).
 *   `duplicate-m0` / `duplicate-m1` (two views only) feed views[0] / views[1] to both branches as identical inputs
 *   (one flip draw); with three views they are rejected, as is a repeated view index.
 * - Splits: test = the test folders. The training folders (N objects) are split as the code does:
 *   `random.Random(splitSeed).shuffle(list(range(N)))` reproduced exactly (src/data/python-random.ts);
 *   val = the first floor(0.2·N) shuffled indices, train = the rest, each in that shuffled order (9,843 → 7,875 /
 *   1,968 with the real data and seed 10). `subset` then keeps the first n of a seeded shuffle of each split.
 * - Augmentation (`augment: true` in `batches`): a horizontal flip with probability ½ drawn independently for each
 *   view, as the code's per-view RandomHorizontalFlip. Draws come from the stream ('modelnet40-flip', split, seed,
 *   epoch, position), one uniform per view in views order (so views[0] and views[1] flip the same way with two or
 *   three views); they depend neither on the batch size nor on resuming mid-epoch. Whether validation
 *   batches are augmented (D10, `augmentValidation`) is the caller's choice through `augment`.
 * - Pixels: PNG → RGB bytes (gray renders → three equal channels), resized with the triangle ("bilinear") filter
 *   when the file is not `imageSize`² (the code never resizes: the renders are 224×224), then
 *   (x/255 − ImageNet mean) / ImageNet std per channel.
 * - The folder index is built once and cached as JSON in the data cache directory (src/data/cache.ts); it is
 *   rebuilt when a class/split folder's modification time changes. Decoded (resized) images are kept in memory up
 *   to `memoryBudgetBytes`; beyond it they are decoded again on every use.
 */

export const MODELNET40_CLASSES = [
  'airplane', 'bathtub', 'bed', 'bench', 'bookshelf', 'bottle', 'bowl', 'car', 'chair', 'cone',
  'cup', 'curtain', 'desk', 'door', 'dresser', 'flower_pot', 'glass_box', 'guitar', 'keyboard', 'lamp',
  'laptop', 'mantel', 'monitor', 'night_stand', 'person', 'piano', 'plant', 'radio', 'range_hood', 'sink',
  'sofa', 'stairs', 'stool', 'table', 'tent', 'toilet', 'tv_stand', 'vase', 'wardrobe', 'xbox',
] as const;

export const MODELNET40_VIEW_COUNT = 12;
export const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const;
export const IMAGENET_STD = [0.229, 0.224, 0.225] as const;
/** Fraction of the training folder held out for validation (paper-spec §3.2). */
export const MODELNET40_VAL_FRACTION = 0.2;
export const MODELNET40_ENV_VAR = 'MMSWEEP_MODELNET40_DIR';

export const MODELNET40_DATA_HINT =
  'Download the MVCNN 12-view shaded renders of ModelNet40 (modelnet40_images_new_12x, from the MVCNN project, ' +
  'http://maxwell.cs.umass.edu/mvcnn-data/), unpack them so that <root>/airplane/train/airplane_0001.obj.shaded_v001.png ' +
  `exists, and pass the root with --data, the TrialSpec's dataset.root, or $${MODELNET40_ENV_VAR}`;

/** Bump when the index format or its content rules change: old cache files are then rebuilt. */
const INDEX_VERSION = 1;
const FOLDER_SPLITS = ['train', 'test'] as const;
type FolderSplit = (typeof FOLDER_SPLITS)[number];
const VIEW_FILE = /^(.+)\.obj\.shaded_v(\d{3})\.png$/;

/** File of view `view` (0-based) of an object. */
export function modelnet40ViewFile(root: string, className: string, folder: FolderSplit, object: string, view: number): string {
  return join(root, className, folder, `${object}.obj.shaded_v${String(view + 1).padStart(3, '0')}.png`);
}

/** Human name of a view: front (v001), rear (v007), else `v0xx`. */
export function viewName(view: number): string {
  if (view === 0) return 'front';
  if (view === 6) return 'rear';
  return `v${String(view + 1).padStart(3, '0')}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Folder index

export interface Modelnet40IndexClass {
  name: string;
  present: boolean;
  /** Per folder split: object names (sorted) and the bit mask of the views found on disk (bit v = view v). */
  train: { objects: string[]; viewMasks: number[] };
  test: { objects: string[]; viewMasks: number[] };
}

export interface Modelnet40Index {
  version: number;
  root: string;
  /** Modification times of every class/split folder, in class order: the cache key of the content. */
  fingerprint: string;
  classes: Modelnet40IndexClass[];
}

function compareCodePoints(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function folderFingerprint(root: string): string {
  const parts: string[] = [];
  for (const name of MODELNET40_CLASSES) {
    for (const folder of FOLDER_SPLITS) {
      const dir = join(root, name, folder);
      let mtime = 'absent';
      try {
        mtime = String(statSync(dir).mtimeMs);
      } catch {
        // absent folders are part of the fingerprint (and reported by the index check)
      }
      parts.push(`${name}/${folder}:${mtime}`);
    }
  }
  return createHash('sha256').update(parts.join('\n')).digest('hex');
}

/** Scan the folders (no caching). Absent class or split folders are recorded as absent, not thrown. */
export function scanModelnet40(root: string): Modelnet40Index {
  const classes = MODELNET40_CLASSES.map((name): Modelnet40IndexClass => {
    const present = existsSync(join(root, name));
    const scan = (folder: FolderSplit) => {
      const dir = join(root, name, folder);
      if (!present || !existsSync(dir)) return { objects: [], viewMasks: [] };
      const masks = new Map<string, number>();
      for (const file of readdirSync(dir)) {
        const match = VIEW_FILE.exec(file);
        if (!match) continue; // e.g. the code's cached `<object>.obj.npy`
        const view = Number(match[2]) - 1;
        if (view < 0 || view >= MODELNET40_VIEW_COUNT) continue;
        masks.set(match[1]!, (masks.get(match[1]!) ?? 0) | (1 << view));
      }
      const objects = [...masks.keys()].sort(compareCodePoints);
      return { objects, viewMasks: objects.map((o) => masks.get(o)!) };
    };
    return { name, present, train: scan('train'), test: scan('test') };
  });
  return { version: INDEX_VERSION, root, fingerprint: folderFingerprint(root), classes };
}

/**
 * The folder index, from the JSON cache when its fingerprint still matches the folders, else scanned and cached.
 * `log` hears whether it was built or reused.
 */
export function loadModelnet40Index(root: string, cacheDir?: string, log?: (line: string) => void): Modelnet40Index {
  const absolute = resolve(root);
  const dir = join(resolveCacheDir(cacheDir), 'modelnet40');
  const file = join(dir, `index-${createHash('sha256').update(absolute).digest('hex').slice(0, 16)}.json`);
  const fingerprint = folderFingerprint(absolute);
  try {
    const cached = JSON.parse(readFileSync(file, 'utf8')) as Modelnet40Index;
    if (cached.version === INDEX_VERSION && cached.root === absolute && cached.fingerprint === fingerprint) {
      log?.(`modelnet40: folder index from ${file}`);
      return cached;
    }
  } catch {
    // missing or unreadable cache: rebuild below
  }
  const started = Date.now();
  const index = scanModelnet40(absolute);
  mkdirSync(dir, { recursive: true });
  const temp = `${file}.tmp-${process.pid}`;
  writeFileSync(temp, JSON.stringify(index));
  renameSync(temp, file);
  const objects = index.classes.reduce((a, c) => a + c.train.objects.length + c.test.objects.length, 0);
  log?.(`modelnet40: indexed ${objects} objects under ${absolute} in ${Date.now() - started} ms (cached in ${file})`);
  return index;
}

// ---------------------------------------------------------------------------------------------------------------
// Splits

/**
 * The code's validation split of a training folder of `n` objects: positions (in dataset order) of the
 * validation and training subsets, each in the shuffled order.
 */
export function modelnet40ValidationSplit(n: number, splitSeed: number): { val: Int32Array; train: Int32Array } {
  const order = new PythonRandom(splitSeed).shuffle(Array.from({ length: n }, (_, i) => i));
  const valCount = Math.floor(MODELNET40_VAL_FRACTION * n);
  return { val: Int32Array.from(order.slice(0, valCount)), train: Int32Array.from(order.slice(valCount)) };
}

interface SampleRef {
  classIndex: number;
  folder: FolderSplit;
  object: string;
  /** Unique id of the object across both folders (for the decoded-image cache). */
  id: number;
}

export interface Modelnet40Options {
  /** Root folder; see MODELNET40_DATA_HINT. */
  root: string;
  /** 0-based view indices read by branch 0, 1 (, 2): two or three distinct ones (default [0, 6]). */
  views?: readonly number[];
  /** Seed of the validation split (the code's random.Random(10)). */
  splitSeed?: number;
  /** Side of the square input images; files of another size are resized. */
  imageSize?: number;
  modalities?: Modalities;
  subset?: { train?: number; val?: number; test?: number };
  cacheDir?: string;
  /** Accept class folders absent on disk (fixtures, partial downloads); labels keep their published index. */
  allowMissingClasses?: boolean;
  /** Bytes of decoded images kept in memory (default 1 GiB). */
  memoryBudgetBytes?: number;
  log?: (line: string) => void;
}

export class Modelnet40Dataset implements Dataset {
  readonly name = 'modelnet40';
  readonly numClasses = MODELNET40_CLASSES.length;
  readonly classNames: readonly string[] = MODELNET40_CLASSES;
  readonly modalities: readonly ModalityInfo[];
  readonly root: string;
  readonly views: readonly number[];
  readonly imageSize: number;
  /** View slot (index into `views`) read by each branch. */
  private readonly inputSlots: readonly number[];
  private readonly splits: Record<SplitName, SampleRef[]>;
  private readonly luts: Float32Array[];
  private readonly imageCache = new Map<number, Uint8Array>();
  private cachedBytes = 0;
  private readonly memoryBudgetBytes: number;

  constructor(options: Modelnet40Options) {
    const views = options.views ?? [0, 6];
    if (views.length !== 2 && views.length !== 3) {
      throw new Error(`modelnet40 views must list two or three view indices (one per branch), got ${JSON.stringify(views)}`);
    }
    for (const v of views) {
      if (!Number.isInteger(v) || v < 0 || v >= MODELNET40_VIEW_COUNT) {
        throw new Error(`modelnet40 views: ${v} is not a view index 0…11 (0 = file _v001)`);
      }
    }
    if (views.length === 2 && views[0] === views[1]) {
      throw new Error(`modelnet40 views: both inputs are view ${views[0]}; use modalities 'duplicate-m0' for the same-view control`);
    }
    const repeated = views.find((v, i) => views.indexOf(v) !== i);
    if (repeated !== undefined) {
      throw new Error(`modelnet40 views ${JSON.stringify(views)}: view ${repeated} is listed twice; the three views must be distinct (e.g. [0, 4, 8])`);
    }
    const modalities = options.modalities ?? 'distinct';
    if (views.length === 3 && modalities !== 'distinct') {
      throw new Error(
        `modelnet40 modalities '${modalities}' is a two-view control (the same view fed to both branches) and cannot be ` +
          `combined with the three views ${JSON.stringify(views)}; use modalities 'distinct' with three views, or give two views`,
      );
    }
    this.views = [...views];
    this.imageSize = options.imageSize ?? 224;
    if (!Number.isInteger(this.imageSize) || this.imageSize < 1) throw new Error(`modelnet40 imageSize must be a positive integer, got ${this.imageSize}`);
    this.memoryBudgetBytes = options.memoryBudgetBytes ?? 2 ** 30;
    this.inputSlots = modalities === 'distinct' ? this.views.map((_, k) => k) : modalities === 'duplicate-m0' ? [0, 0] : [1, 1];
    const shape = [this.imageSize, this.imageSize, 3];
    this.modalities = this.inputSlots.map((slot) => ({ name: viewName(this.views[slot]!), shape: [...shape] }));
    const byteModality: ByteModality = { name: 'view', shape, mean: IMAGENET_MEAN, std: IMAGENET_STD };
    this.luts = channelLookupTables(byteModality);

    this.root = resolve(options.root);
    if (!existsSync(this.root) || !statSync(this.root).isDirectory()) {
      throw new DataFileError(this.root, 'no such directory (ModelNet40 root)', MODELNET40_DATA_HINT);
    }
    const index = loadModelnet40Index(this.root, options.cacheDir, options.log);
    const missing = index.classes.filter((c) => !c.present).map((c) => c.name);
    if (missing.length > 0 && !options.allowMissingClasses) {
      throw new DataFileError(
        join(this.root, missing[0]!),
        `class folder${missing.length > 1 ? 's' : ''} missing: ${missing.join(', ')}`,
        `The root must hold all 40 ModelNet40 classes. ${MODELNET40_DATA_HINT}`,
      );
    }
    const folders: Record<FolderSplit, SampleRef[]> = { train: [], test: [] };
    let id = 0;
    for (const [classIndex, cls] of index.classes.entries()) {
      if (!cls.present) continue;
      for (const folder of FOLDER_SPLITS) {
        if (!existsSync(join(this.root, cls.name, folder))) {
          throw new DataFileError(join(this.root, cls.name, folder), 'no such directory', MODELNET40_DATA_HINT);
        }
        const { objects, viewMasks } = cls[folder];
        objects.forEach((object, k) => {
          for (const view of this.views) {
            if (!(viewMasks[k]! & (1 << view))) {
              throw new DataFileError(modelnet40ViewFile(this.root, cls.name, folder, object, view), 'view file missing', 'Each object needs the selected views; re-extract the data set');
            }
          }
          folders[folder].push({ classIndex, folder, object, id: id++ });
        });
      }
    }
    if (folders.train.length === 0) throw new DataFileError(this.root, 'no training objects found', MODELNET40_DATA_HINT);
    const split = modelnet40ValidationSplit(folders.train.length, options.splitSeed ?? 10);
    const splits: Record<SplitName, SampleRef[]> = {
      train: Array.from(split.train, (i) => folders.train[i]!),
      val: Array.from(split.val, (i) => folders.train[i]!),
      test: folders.test,
    };
    const subset = options.subset ?? {};
    for (const name of ['train', 'val', 'test'] as const) {
      const n = subset[name];
      if (n !== undefined && n > splits[name].length) throw new SubsetTooLargeError('modelnet40', name, n, splits[name].length, 'objects');
      if (n === undefined || n === splits[name].length) continue;
      const keep = seededSubset(splits[name].length, n, Rng.from('modelnet40-subset', name, options.splitSeed ?? 10));
      splits[name] = Array.from(keep, (i) => splits[name][i]!);
    }
    this.splits = splits;
  }

  size(split: SplitName): number {
    return this.splits[split].length;
  }

  labels(split: SplitName): Int32Array {
    return Int32Array.from(this.splits[split], (s) => s.classIndex);
  }

  /** Class folder, folder split and object name of every sample of a split, in index order. */
  samples(split: SplitName): readonly { className: string; folder: FolderSplit; object: string }[] {
    return this.splits[split].map((s) => ({ className: MODELNET40_CLASSES[s.classIndex]!, folder: s.folder, object: s.object }));
  }

  /**
   * Flip draws of one sample in one epoch: [flip of views[0], flip of views[1] (, flip of views[2])], one uniform
   * each from the sample's stream in that order — a third view leaves the first two draws unchanged.
   */
  flipDraws(split: SplitName, seed: number, epoch: number, position: number): boolean[] {
    const rng = Rng.from('modelnet40-flip', split, seed, epoch, position);
    return this.views.map(() => rng.uniform() < 0.5);
  }

  *batches(split: SplitName, options: BatchOptions): Iterable<HostBatch> {
    validateBatchOptions(options);
    const n = this.size(split);
    const order = epochOrder(split, n, options.shuffle, options.seed, options.epoch);
    for (let start = (options.startBatch ?? 0) * options.batchSize; start < n; start += options.batchSize) {
      const positions = order.subarray(start, Math.min(n, start + options.batchSize));
      yield this.batchOf(split, positions, options.augment ? { seed: options.seed, epoch: options.epoch } : null);
    }
  }

  /** A batch of the given split positions, in that order; `augment` null = no flips. */
  batchOf(split: SplitName, positions: Int32Array, augment: { seed: number; epoch: number } | null): HostBatch {
    const size = positions.length;
    const sampleSize = this.imageSize * this.imageSize * 3;
    const inputs = this.inputSlots.map(() => new Float32Array(size * sampleSize));
    const y = new Int32Array(size);
    const indices = new Int32Array(size);
    const flipped = new Uint8Array(sampleSize);
    const noFlips = this.views.map(() => false);
    for (let k = 0; k < size; k++) {
      const position = positions[k]!;
      const sample = this.splits[split][position]!;
      indices[k] = position;
      y[k] = sample.classIndex;
      const flips = augment ? this.flipDraws(split, augment.seed, augment.epoch, position) : noFlips;
      for (const [b, out] of inputs.entries()) {
        const slot = this.inputSlots[b]!;
        let bytes = this.image(sample, this.views[slot]!);
        if (flips[slot]) {
          flipHorizontal(bytes, flipped, this.imageSize, this.imageSize, 3);
          bytes = flipped;
        }
        normaliseBytes(out, k * sampleSize, bytes, 0, sampleSize, this.luts);
      }
    }
    return { inputs, y, indices, size };
  }

  /** The imageSize²×3 bytes of one view of a sample (decoded once while the memory budget lasts). */
  private image(sample: SampleRef, view: number): Uint8Array {
    const key = sample.id * MODELNET40_VIEW_COUNT + view;
    const cached = this.imageCache.get(key);
    if (cached) return cached;
    const file = modelnet40ViewFile(this.root, MODELNET40_CLASSES[sample.classIndex]!, sample.folder, sample.object, view);
    let image = readPngRgb(file);
    if (image.width !== this.imageSize || image.height !== this.imageSize) image = resizeBilinear(image, this.imageSize, this.imageSize);
    if (this.cachedBytes + image.data.byteLength <= this.memoryBudgetBytes) {
      this.imageCache.set(key, image.data);
      this.cachedBytes += image.data.byteLength;
    }
    return image.data;
  }
}

/** Resolve the root (option, spec, environment) and build the dataset. */
export function createModelnet40Dataset(options: Omit<Modelnet40Options, 'root'> & { root?: string }): Modelnet40Dataset {
  const root = options.root ?? process.env[MODELNET40_ENV_VAR];
  if (!root) {
    throw new DataFileError('(no ModelNet40 root given)', 'the data set location is unknown', MODELNET40_DATA_HINT);
  }
  return new Modelnet40Dataset({ ...options, root });
}
