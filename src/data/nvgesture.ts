import { join } from 'node:path';
import type { Modalities, TrainTrialSpec } from '../spec/trial.ts';
import { branchSources, epochOrder, heldOutSplit, positiveInteger, seededSubset, SubsetTooLargeError, validateBatchOptions } from './batching.ts';
import { resolveCacheDir } from './cache.ts';
import {
  NVGESTURE_CLASSES,
  NVGESTURE_TEST_LIST,
  NVGESTURE_TRAIN_LIST,
  readNvgestureList,
  type NvgestureEntry,
} from './nvgesture-list.ts';
import {
  checkFfmpeg,
  decodeAndCache,
  readCachedClip,
  resolveFfmpeg,
  VideoDecodeError,
  type DecodedClip,
  type DecodeRequest,
} from './nvgesture-video.ts';
import { Rng } from '../util/rng.ts';
import type { BatchOptions, Dataset, HostBatch, ModalityInfo, SplitName } from './types.ts';

/**
 * NVGesture (paper-spec §3.3): RGB (m0) and depth (m1) clips of 25 hand gestures.
 *
 * - Splits: `train`/`val` from the training list (a random `valFraction` = 20 % of it is validation, drawn from the
 *   stream ('nvgesture-val-split', splitSeed); 1,050 → 840 + 210), `test` = the test list (482).
 * - Frames: START…END−1 of the color sensor's range, for both sensors (paper-spec App. A: three clips list a
 *   different depth START; the RGB one is used). A video with fewer frames than END gives the frames it has (a
 *   warning names it).
 * - Temporal window of `frames` (64) consecutive frames: with augmentation (training) at a uniformly random start,
 *   without (evaluation) the centred window ⌊(L − T)/2⌋ (paper-spec A4). Clips shorter than the window are padded
 *   on both sides, ⌊(T − L)/2⌋ frames before — with 0 in the network's input scale (`padding: 'zeros'`, the
 *   default; mid-gray) or with black (−1, `padding: 'black'`): "zero-pad" names no scale (AMBIGUOUS). The real
 *   clips have 80 frames, so with T = 64 no padding happens.
 * - Space: every frame resized to resizeSize² (256², aspect ratio not kept; done by ffmpeg while decoding), then a
 *   static imageSize² (224²) crop shared by all frames and both modalities: random in training, centred in
 *   evaluation; in training a horizontal flip with probability ½ — `flip: 'shared'` (default; paper-spec best
 *   reading) draws one decision per clip for both modalities, `'independent'` one per modality, `'none'` disables
 *   it (left/right gestures exist in NVGesture).
 * - Values: v/127.5 − 1 ∈ [−1, 1] (the I3D convention, paper-spec A4); RGB 3 channels, depth 1 channel. A batch's
 *   `inputs` are [branch 0, branch 1] = [rgb, depth] (`distinct`), [rgb, rgb] or [depth, depth] (duplicate controls).
 * - Augmentation draws come from the stream ('nvgesture-augment', split, seed, epoch, position): deterministic and
 *   independent of the batch size; order: temporal start, crop y, crop x, flip(s).
 *
 * Decoded frames (after the resize, before crop) are cached on disk under `<cacheDir>/nvgesture/`; creating the
 * dataset decodes every clip of the used splits that is not cached yet (ffmpeg is only needed then), and batches
 * read the cache files, keeping the most recently used clips in memory up to `memoryBudgetBytes`.
 */

export type NvgestureFlip = 'shared' | 'independent' | 'none';
export type NvgesturePadding = 'zeros' | 'black';

export interface NvgestureDatasetOptions {
  /** The nvGesture_v1 folder holding the two lists and Video_data/. */
  root: string;
  modalities: Modalities;
  /** Temporal window T (paper: 64). */
  frames?: number;
  /** Crop size (paper: 224). */
  imageSize?: number;
  /** Resize before the crop (paper: 256); default round(imageSize · 256/224). */
  resizeSize?: number;
  /** Seed of the validation split (recorded in the TrialSpec as dataset.splitSeed). */
  splitSeed?: number;
  /** Share of the training list held out for validation (paper: 0.2). */
  valFraction?: number;
  flip?: NvgestureFlip;
  padding?: NvgesturePadding;
  subset?: TrainTrialSpec['subset'];
  cacheDir?: string;
  /** ffmpeg binary (default `$MMSWEEP_FFMPEG`, else `ffmpeg` on PATH). */
  ffmpegPath?: string;
  /** Parallel ffmpeg processes while decoding (default 2). */
  decodeConcurrency?: number;
  /** In-memory clip cache (default 1 GiB). */
  memoryBudgetBytes?: number;
  trainList?: string;
  testList?: string;
  log?: (line: string) => void;
}

export interface NvgestureClip {
  entry: NvgestureEntry;
  /** The decode requests of the two sensors (color range for both). */
  color: DecodeRequest;
  depth: DecodeRequest;
  /** Decoded frames (≤ END − START) of the sensors the dataset uses. */
  frames: { color?: number; depth?: number };
}

/** What the augmentation (or the evaluation rule) chose for one sample. */
export interface NvgestureWindow {
  /** Source frame of the window's first frame; negative = that many padding frames before the clip. */
  frameStart: number;
  cropY: number;
  cropX: number;
  flip0: boolean;
  flip1: boolean;
}

const defaultLog = (line: string) => process.stderr.write(`${line}\n`);

export function defaultResizeSize(imageSize: number): number {
  return Math.round((imageSize * 256) / 224);
}

/** Byte-to-input table: v/127.5 − 1. */
const UNIT_RANGE = (() => {
  const lut = new Float32Array(256);
  for (let v = 0; v < 256; v++) lut[v] = v / 127.5 - 1;
  return lut;
})();

export class NvgestureDataset implements Dataset {
  readonly name = 'nvgesture';
  readonly numClasses = NVGESTURE_CLASSES;
  readonly classNames: readonly string[] = Array.from({ length: NVGESTURE_CLASSES }, (_, i) => `class_${String(i + 1).padStart(2, '0')}`);
  readonly modalities: readonly [ModalityInfo, ModalityInfo];
  readonly frames: number;
  readonly imageSize: number;
  readonly resizeSize: number;
  readonly flip: NvgestureFlip;
  readonly padding: NvgesturePadding;
  readonly sensors: ['color' | 'depth', 'color' | 'depth'];
  private readonly memory = new Map<string, Uint8Array>();
  private memoryBytes = 0;
  private readonly memoryBudget: number;

  constructor(
    private readonly splits: Readonly<Record<SplitName, NvgestureClip[]>>,
    private readonly cacheDir: string,
    options: Required<Pick<NvgestureDatasetOptions, 'frames' | 'imageSize' | 'resizeSize' | 'flip' | 'padding' | 'memoryBudgetBytes'>> & { modalities: Modalities },
  ) {
    this.frames = options.frames;
    this.imageSize = options.imageSize;
    this.resizeSize = options.resizeSize;
    this.flip = options.flip;
    this.padding = options.padding;
    this.memoryBudget = options.memoryBudgetBytes;
    this.sensors = branchSources<'color' | 'depth'>(options.modalities, ['color', 'depth']);
    const shape = (sensor: 'color' | 'depth') => [this.frames, this.imageSize, this.imageSize, sensor === 'color' ? 3 : 1];
    const nameOf = (sensor: 'color' | 'depth') => (sensor === 'color' ? 'rgb' : 'depth');
    this.modalities = [
      { name: nameOf(this.sensors[0]), shape: shape(this.sensors[0]) },
      { name: nameOf(this.sensors[1]), shape: shape(this.sensors[1]) },
    ];
  }

  size(split: SplitName): number {
    return this.splits[split].length;
  }

  labels(split: SplitName): Int32Array {
    return Int32Array.from(this.splits[split], (c) => c.entry.label);
  }

  /** The clip behind position `index` of a split. */
  clip(split: SplitName, index: number): NvgestureClip {
    const clip = this.splits[split][index];
    if (!clip) throw new Error(`nvgesture: ${split} has ${this.size(split)} clips, no index ${index}`);
    return clip;
  }

  /** The temporal window, crop and flips of one sample (augmented: the seeded random draws; else the centre). */
  window(split: SplitName, index: number, augment: boolean, seed: number, epoch: number): NvgestureWindow {
    const clip = this.clip(split, index);
    const length = Math.min(...this.sensors.map((s) => clip.frames[s]!));
    const T = this.frames;
    const slack = this.resizeSize - this.imageSize;
    const centreStart = length >= T ? Math.floor((length - T) / 2) : -Math.floor((T - length) / 2);
    if (!augment) {
      return { frameStart: centreStart, cropY: Math.floor(slack / 2), cropX: Math.floor(slack / 2), flip0: false, flip1: false };
    }
    const rng = Rng.from('nvgesture-augment', split, seed, epoch, index);
    const frameStart = length >= T ? rng.int(length - T + 1) : centreStart;
    const cropY = rng.int(slack + 1);
    const cropX = rng.int(slack + 1);
    const first = rng.uniform() < 0.5;
    const second = rng.uniform() < 0.5;
    switch (this.flip) {
      case 'shared':
        return { frameStart, cropY, cropX, flip0: first, flip1: first };
      case 'independent':
        return { frameStart, cropY, cropX, flip0: first, flip1: second };
      case 'none':
        return { frameStart, cropY, cropX, flip0: false, flip1: false };
    }
  }

  *batches(split: SplitName, options: BatchOptions): Iterable<HostBatch> {
    validateBatchOptions(options);
    const n = this.size(split);
    const order = epochOrder(split, n, options.shuffle, options.seed, options.epoch);
    for (let start = (options.startBatch ?? 0) * options.batchSize; start < n; start += options.batchSize) {
      const size = Math.min(options.batchSize, n - start);
      yield this.batchOf(split, order.subarray(start, start + size), options.augment, options.seed, options.epoch);
    }
  }

  /** A batch of the given split positions, in that order. */
  batchOf(split: SplitName, positions: Int32Array, augment: boolean, seed: number, epoch: number): HostBatch {
    const size = positions.length;
    const sampleSizes = this.modalities.map((m) => m.shape.reduce((a, b) => a * b, 1));
    const x0 = new Float32Array(size * sampleSizes[0]!);
    const x1 = new Float32Array(size * sampleSizes[1]!);
    const y = new Int32Array(size);
    const indices = new Int32Array(size);
    for (let k = 0; k < size; k++) {
      const position = positions[k]!;
      const clip = this.clip(split, position);
      const window = this.window(split, position, augment, seed, epoch);
      indices[k] = position;
      y[k] = clip.entry.label;
      this.writeSample(x0, k * sampleSizes[0]!, clip, this.sensors[0], window, window.flip0);
      if (this.sensors[1] === this.sensors[0] && window.flip1 === window.flip0) {
        x1.set(x0.subarray(k * sampleSizes[0]!, (k + 1) * sampleSizes[0]!), k * sampleSizes[1]!);
      } else {
        this.writeSample(x1, k * sampleSizes[1]!, clip, this.sensors[1], window, window.flip1);
      }
    }
    return { inputs: [x0, x1], y, indices, size };
  }

  private writeSample(out: Float32Array, offset: number, clip: NvgestureClip, sensor: 'color' | 'depth', w: NvgestureWindow, flip: boolean): void {
    const request = clip[sensor];
    const bytes = this.clipBytes(request);
    const C = request.channels;
    const R = this.resizeSize;
    const S = this.imageSize;
    const length = clip.frames[sensor]!;
    const frameOut = S * S * C;
    const rowOut = S * C;
    const pad = this.padding === 'zeros' ? 0 : -1;
    for (let t = 0; t < this.frames; t++) {
      const f = w.frameStart + t;
      const frameOffset = offset + t * frameOut;
      if (f < 0 || f >= length) {
        out.fill(pad, frameOffset, frameOffset + frameOut);
        continue;
      }
      for (let yy = 0; yy < S; yy++) {
        const srcRow = ((f * R + w.cropY + yy) * R + w.cropX) * C;
        const dstRow = frameOffset + yy * rowOut;
        if (!flip) {
          for (let i = 0; i < rowOut; i++) out[dstRow + i] = UNIT_RANGE[bytes[srcRow + i]!]!;
        } else {
          for (let xx = 0; xx < S; xx++) {
            const src = srcRow + (S - 1 - xx) * C;
            const dst = dstRow + xx * C;
            for (let c = 0; c < C; c++) out[dst + c] = UNIT_RANGE[bytes[src + c]!]!;
          }
        }
      }
    }
  }

  private clipBytes(request: DecodeRequest): Uint8Array {
    const key = `${request.file}|${request.channels}`;
    const held = this.memory.get(key);
    if (held) {
      // Map order is insertion order: re-insert to mark as most recently used.
      this.memory.delete(key);
      this.memory.set(key, held);
      return held;
    }
    const clip = readCachedClip(this.cacheDir, request, (reason, path) => {
      throw new Error(`nvgesture: the decoded frames of ${request.file} in ${path} became unusable (${reason}); create the dataset again to re-decode`);
    });
    if (!clip) throw new Error(`nvgesture: the decoded frames of ${request.file} disappeared from the cache ${this.cacheDir}; create the dataset again to re-decode`);
    this.memory.set(key, clip.bytes);
    this.memoryBytes += clip.bytes.byteLength;
    for (const [k, v] of this.memory) {
      if (this.memoryBytes <= this.memoryBudget || k === key) break;
      this.memory.delete(k);
      this.memoryBytes -= v.byteLength;
    }
    return clip.bytes;
  }
}

/** Splits of the training list into train/val by the seeded permutation; both keep list order. */
export function splitTrainList<T>(entries: readonly T[], valFraction: number, splitSeed: number): { train: T[]; val: T[] } {
  return heldOutSplit(entries, valFraction, Rng.from('nvgesture-val-split', splitSeed), 'nvgesture');
}

export async function createNvgestureDataset(options: NvgestureDatasetOptions): Promise<NvgestureDataset> {
  const log = options.log ?? defaultLog;
  const frames = positiveInteger('nvgesture', options.frames ?? 64, 'frames');
  const imageSize = positiveInteger('nvgesture', options.imageSize ?? 224, 'imageSize');
  const resizeSize = positiveInteger('nvgesture', options.resizeSize ?? defaultResizeSize(imageSize), 'resizeSize');
  if (resizeSize < imageSize) throw new Error(`nvgesture: resizeSize ${resizeSize} is smaller than the crop imageSize ${imageSize}`);
  const splitSeed = options.splitSeed ?? 0;
  const cacheDir = resolveCacheDir(options.cacheDir);
  const sensors = branchSources<'color' | 'depth'>(options.modalities, ['color', 'depth']);
  const used = new Set(sensors);

  const trainEntries = readNvgestureList(join(options.root, options.trainList ?? NVGESTURE_TRAIN_LIST));
  const testEntries = readNvgestureList(join(options.root, options.testList ?? NVGESTURE_TEST_LIST));
  const { train, val } = splitTrainList(trainEntries, options.valFraction ?? 0.2, splitSeed);
  const bySplit: Record<SplitName, NvgestureEntry[]> = { train, val, test: testEntries };
  for (const split of ['train', 'val', 'test'] as const) {
    const n = options.subset?.[split];
    if (n === undefined) continue;
    positiveInteger('nvgesture', n, `subset.${split}`);
    if (n > bySplit[split].length) {
      throw new SubsetTooLargeError('nvgesture', split, n, bySplit[split].length, 'clips');
    }
    const keep = seededSubset(bySplit[split].length, n, Rng.from('nvgesture-subset', split, splitSeed));
    bySplit[split] = Array.from(keep, (i) => bySplit[split][i]!);
  }

  const request = (entry: NvgestureEntry, sensor: 'color' | 'depth'): DecodeRequest => ({
    file: join(options.root, entry.path, `${entry[sensor].file}.avi`),
    // The color range for both sensors (paper-spec §3.3, App. A).
    start: entry.color.start,
    end: entry.color.end,
    size: resizeSize,
    channels: sensor === 'color' ? 3 : 1,
  });
  const splits = Object.fromEntries(
    (['train', 'val', 'test'] as const).map((split) => [
      split,
      bySplit[split].map((entry): NvgestureClip => ({ entry, color: request(entry, 'color'), depth: request(entry, 'depth'), frames: {} })),
    ]),
  ) as Record<SplitName, NvgestureClip[]>;

  // Every (clip, sensor) once, even when a clip is in several splits' subsets.
  type DecodeJob = { clip: NvgestureClip[]; sensor: 'color' | 'depth'; request: DecodeRequest };
  const jobs = new Map<string, DecodeJob>();
  for (const clips of Object.values(splits)) {
    for (const clip of clips) {
      for (const sensor of used) {
        const key = `${clip[sensor].file}|${sensor}`;
        const job = jobs.get(key);
        if (job) job.clip.push(clip);
        else jobs.set(key, { clip: [clip], sensor, request: clip[sensor] });
      }
    }
  }
  const where = (clip: NvgestureClip) => `${clip.entry.listFile}:${clip.entry.line}`;
  const pending: DecodeJob[] = [];
  for (const job of jobs.values()) {
    let cached: DecodedClip | null;
    try {
      cached = readCachedClip(cacheDir, job.request, (reason, path) => log(`nvgesture: cache file ${path} is invalid (${reason}); decoding again`));
    } catch (err) {
      if (err instanceof VideoDecodeError) throw new VideoDecodeError(err.file, `${err.reason} (listed at ${where(job.clip[0]!)})`);
      throw err;
    }
    if (cached) for (const clip of job.clip) clip.frames[job.sensor] = cached.frames;
    else pending.push(job);
  }
  if (pending.length > 0) {
    const ffmpeg = resolveFfmpeg(options.ffmpegPath);
    const version = checkFfmpeg(ffmpeg);
    log(`nvgesture: decoding ${pending.length} of ${jobs.size} videos with ${version} (cache: ${join(cacheDir, 'nvgesture')})`);
    const started = performance.now();
    let done = 0;
    let lastReport = started;
    let next = 0;
    let failed = false;
    const worker = async () => {
      while (!failed && next < pending.length) {
        const job = pending[next++]!;
        let decoded: DecodedClip;
        try {
          decoded = await decodeAndCache({ cacheDir, ffmpeg }, job.request);
        } catch (err) {
          failed = true; // the other workers stop after their current video
          if (err instanceof VideoDecodeError) {
            throw new VideoDecodeError(err.file, `${err.reason} (listed at ${where(job.clip[0]!)})`);
          }
          throw err;
        }
        for (const clip of job.clip) clip.frames[job.sensor] = decoded.frames;
        done++;
        const now = performance.now();
        if (now - lastReport > 5000 || done === pending.length) {
          lastReport = now;
          log(`nvgesture: decoded ${done}/${pending.length} videos (${((now - started) / 1000).toFixed(1)} s)`);
        }
      }
    };
    const concurrency = Math.max(1, Math.min(options.decodeConcurrency ?? 2, pending.length));
    await Promise.all(Array.from({ length: concurrency }, worker));
  }
  const short = new Set<string>();
  for (const job of jobs.values()) {
    const listed = job.request.end - job.request.start;
    const got = job.clip[0]!.frames[job.sensor]!;
    if (got < listed) short.add(`${job.request.file} (${got} of ${listed} frames)`);
  }
  if (short.size > 0) {
    const shown = [...short].slice(0, 5).join('; ');
    log(`nvgesture: warning: ${short.size} video(s) end before their listed END; using the frames they have: ${shown}${short.size > 5 ? '; …' : ''}`);
  }
  return new NvgestureDataset(splits, cacheDir, {
    frames,
    imageSize,
    resizeSize,
    flip: options.flip ?? 'shared',
    padding: options.padding ?? 'zeros',
    memoryBudgetBytes: options.memoryBudgetBytes ?? 1024 ** 3,
    modalities: options.modalities,
  });
}
