import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Modalities } from '../spec/trial.ts';
import { Rng } from '../util/rng.ts';
import { logSpectrogram, readWavHeader, readWavMono, resample, stftFrames, tileTo } from './audio.ts';
import { branchSources, channelLookupTables, epochOrder, heldOutSplit, normaliseBytes, positiveInteger, seededSubset, SubsetTooLargeError, validateBatchOptions } from './batching.ts';
import { readCacheFile, resolveCacheDir, writeCacheFile } from './cache.ts';
import { DataFileError } from './idx.ts';
import { cropRgb, flipHorizontal, readJpegRgb, resizeBilinear, type RgbImage } from './image.ts';
import { IMAGENET_MEAN, IMAGENET_STD } from './modelnet40.ts';
import type { BatchOptions, Dataset, HostBatch, ModalityInfo, SplitName } from './types.ts';

/**
 * CREMA-D (Cao et al., IEEE TAC 2014): 7,442 clips of 91 actors speaking 12 sentences in six emotions, as the
 * balancing-method papers use it (OGM-GE, PMR, AGM, MMPareto): m0 = audio (a log spectrogram), m1 = video frames.
 *
 * Layout under the root (OGM-GE's, built from the original data set by the user; README "CREMA-D"):
 *   AudioWAV/<clip>.wav            the original 16-bit PCM WAV files (16 kHz mono), e.g. 1001_DFA_ANG_XX.wav
 *   Image-01-FPS/<clip>/*.jpg       frames of VideoFlash/<clip>.flv extracted at 1 frame per second
 *   train.csv, test.csv            one `<clip>,<EMOTION>` line per clip (OGM-GE's split: 6,698 / 744 clips)
 * Labels: NEU 0, HAP 1, SAD 2, FEA 3, DIS 4, ANG 5 (OGM-GE's class order).
 *
 * - Splits: test = test.csv; train.csv → a seeded `valFraction` (10 %) validation split (stream
 *   ('cremad-val-split', splitSeed)) and the training rest, both in list order (the published setups validate on the
 *   test split; a held-out split keeps checkpoint selection and Gradient-Blending's weights off the test clips).
 *   `subset` then keeps the first n of a seeded shuffle of each split.
 * - Audio (OGM-GE's CramedDataset): the WAV resampled to 22,050 Hz, tiled to 3 s (66,150 samples; the code tiles
 *   three times, enough for every clip of at least 1 s), clipped to [−1, 1], log(|STFT| + 1e−7) with n_fft 512,
 *   hop 353, centred periodic-Hann frames → 257 × 188 × 1, fed unnormalised. No audio augmentation.
 * - Frames (BalanceBenchmark's CREMA-D loader, the benchmark of these methods): the clip's JPEGs sorted by name,
 *   split into `frames` equal segments of ⌊N/frames⌋; evaluation takes each segment's middle frame, training a
 *   uniformly random frame of each segment (seeded: stream ('cremad-augment', split, seed, epoch, position), first
 *   the frame choices, then per frame the crop and the flip). Folders with fewer JPEGs than `frames` repeat frames
 *   (frame i = ⌊i·N/frames⌋) in both modes. Training frames: torchvision's RandomResizedCrop (area 8–100 %, aspect
 *   3/4–4/3, ten tries, else the centre crop) to imageSize² and a horizontal flip with p ½, drawn per frame;
 *   evaluation frames: resized to imageSize² (aspect not kept). Then ImageNet mean/std per channel.
 * - A WAV whose data chunk holds no samples cannot give a spectrogram: the clip is left out of its split and a warning
 *   names it (CREMA-D's 1076_MTI_SAD_XX.wav is known to be empty in some copies). Every other defect (missing WAV,
 *   frame folder or JPEG; a WAV that is not 16-bit PCM; a list line that does not parse) is a DataFileError naming
 *   the file.
 * - Spectrograms and decoded frames are cached on disk under `<cacheDir>/cremad/` (keyed by the source file's path,
 *   size and mtime; ≈ 193 KB per spectrogram, ≈ 518 KB per 480×360 frame: ≈ 1.4 GB + ≈ 10 GB for the whole set at 1
 *   fps), so only a trial's first pass over a clip reads its WAV or decodes its JPEGs, and kept in memory up to their
 *   budgets.
 */

export const CREMAD_EMOTIONS = ['NEU', 'HAP', 'SAD', 'FEA', 'DIS', 'ANG'] as const;
export const CREMAD_EMOTION_NAMES = ['neutral', 'happy', 'sad', 'fear', 'disgust', 'anger'] as const;
export const CREMAD_ENV_VAR = 'MMSWEEP_CREMAD_DIR';
export const CREMAD_AUDIO_DIR = 'AudioWAV';
export const CREMAD_FRAMES_DIR = 'Image-01-FPS';
export const CREMAD_TRAIN_LIST = 'train.csv';
export const CREMAD_TEST_LIST = 'test.csv';

/** OGM-GE's audio front end (dataset/CramedDataset.py): librosa at 22,050 Hz, 3 s, STFT 512 / 353, log(|X| + 1e−7). */
export const CREMAD_AUDIO = { sampleRate: 22_050, seconds: 3, nFft: 512, hop: 353, floor: 1e-7 } as const;
export const CREMAD_SPECTROGRAM_BINS = CREMAD_AUDIO.nFft / 2 + 1;
export const CREMAD_SPECTROGRAM_FRAMES = stftFrames(CREMAD_AUDIO.sampleRate * CREMAD_AUDIO.seconds, CREMAD_AUDIO.hop);

export const CREMAD_DATA_HINT =
  'Get CREMA-D from https://github.com/CheyneyComputerScience/CREMA-D (git lfs: AudioWAV/ and VideoFlash/), extract ' +
  'the frames at 1 fps into Image-01-FPS/<clip>/ (README "CREMA-D" gives the ffmpeg command), put the split lists ' +
  'train.csv and test.csv (<clip>,<EMOTION> per line; OGM-GE\'s data/CREMAD/) in the root, and pass the root with ' +
  `--data, the TrialSpec's dataset.root, or $${CREMAD_ENV_VAR}`;

export interface CremadEntry {
  clip: string;
  label: number;
  /** Where the clip is listed (`file:line`), for error messages. */
  listedAt: string;
}

/** Parse a split list: `<clip>,<EMOTION>` per line (a UTF-8 BOM, CR line ends and blank lines tolerated). */
export function readCremadList(file: string): CremadEntry[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new DataFileError(file, `cannot read the split list (${(err as NodeJS.ErrnoException).code ?? String(err)})`, CREMAD_DATA_HINT);
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const entries: CremadEntry[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\r$/, '').trim();
    if (line === '') return;
    const where = `${file}:${i + 1}`;
    const fields = line.split(',').map((f) => f.trim());
    const label = CREMAD_EMOTIONS.indexOf(fields[1] as (typeof CREMAD_EMOTIONS)[number]);
    if (fields.length !== 2 || fields[0] === '' || label < 0) {
      throw new DataFileError(where, `"${line}" is not "<clip>,<EMOTION>" with EMOTION one of ${CREMAD_EMOTIONS.join(', ')}`, 'Use the split lists of the OGM-GE repository (data/CREMAD/train.csv, test.csv)');
    }
    if (/[/\\]/.test(fields[0]!) || fields[0] === '.' || fields[0] === '..') {
      throw new DataFileError(where, `clip name "${fields[0]}" is not a file name`, 'Clip names look like 1001_DFA_ANG_XX');
    }
    entries.push({ clip: fields[0]!, label, listedAt: where });
  });
  return entries;
}

export interface CremadOptions {
  root: string;
  modalities?: Modalities;
  /** Frames per clip fed to the visual encoder (BalanceBenchmark: 2; OGM-GE: 1). */
  frames?: number;
  /** Side of the square frames (224 in the published setups). */
  imageSize?: number;
  splitSeed?: number;
  /** Share of train.csv held out for validation (default 0.1). */
  valFraction?: number;
  subset?: { train?: number; val?: number; test?: number };
  /** Bytes of spectrograms kept in memory (default 1.5 GiB: all 7,442 clips need 1.44 GB). */
  spectrogramBudgetBytes?: number;
  /** Bytes of decoded frames kept in memory (default 1 GiB). */
  frameBudgetBytes?: number;
  /** Data cache directory (src/data/cache.ts): decoded frames and spectrograms are kept there. */
  cacheDir?: string;
  log?: (line: string) => void;
}

interface CremadClip extends CremadEntry {
  /** JPEG file names of the clip's frame folder, sorted. */
  frameFiles: string[];
  id: number;
}

/** The frame choice, crops and flips of one sample. */
export interface CremadFrameDraw {
  /** Index into the clip's sorted JPEGs, per fed frame. */
  frames: number[];
  /** Per fed frame: the crop (in source pixels) and flip; null = the whole frame, unflipped (evaluation). */
  crops: ({ top: number; left: number; height: number; width: number; flip: boolean } | null)[];
}

type Sensor = 'audio' | 'visual';

/** torchvision's RandomResizedCrop parameters (scale 0.08–1, ratio 3/4–4/3, ten tries, then the centre crop). */
function randomResizedCrop(rng: Rng, width: number, height: number): { top: number; left: number; height: number; width: number } {
  const area = width * height;
  const logLow = Math.log(3 / 4);
  const logHigh = Math.log(4 / 3);
  for (let attempt = 0; attempt < 10; attempt++) {
    const target = area * (0.08 + rng.uniform() * (1 - 0.08));
    const ratio = Math.exp(logLow + rng.uniform() * (logHigh - logLow));
    const w = Math.round(Math.sqrt(target * ratio));
    const h = Math.round(Math.sqrt(target / ratio));
    if (w > 0 && h > 0 && w <= width && h <= height) {
      const top = rng.int(height - h + 1);
      const left = rng.int(width - w + 1);
      return { top, left, height: h, width: w };
    }
  }
  // Fallback: the largest centre crop whose aspect ratio is within the range.
  const inRatio = width / height;
  let w = width;
  let h = height;
  if (inRatio < 3 / 4) h = Math.round(w / (3 / 4));
  else if (inRatio > 4 / 3) w = Math.round(h * (4 / 3));
  return { top: Math.floor((height - h) / 2), left: Math.floor((width - w) / 2), height: h, width: w };
}

/** Positions (into N sorted frames) of the `count` fed frames: segment middles, or a seeded frame per segment. */
export function cremadFrameIndices(available: number, count: number, rng: Rng | null): number[] {
  if (available < 1) throw new Error('cremadFrameIndices: a clip needs at least one frame');
  if (available < count) return Array.from({ length: count }, (_, i) => Math.floor((i * available) / count));
  const segment = Math.floor(available / count);
  return Array.from({ length: count }, (_, i) => i * segment + (rng ? rng.int(segment) : Math.floor(segment / 2)));
}

export class CremadDataset implements Dataset {
  readonly name = 'cremad';
  readonly numClasses = CREMAD_EMOTIONS.length;
  readonly classNames: readonly string[] = CREMAD_EMOTION_NAMES;
  readonly modalities: readonly ModalityInfo[];
  readonly root: string;
  readonly frames: number;
  readonly imageSize: number;
  readonly sensors: [Sensor, Sensor];
  private readonly splits: Record<SplitName, CremadClip[]>;
  private readonly luts: Float32Array[];
  private readonly spectrograms = new Map<number, Float32Array>();
  private spectrogramBytes = 0;
  private readonly spectrogramBudget: number;
  private readonly decodedFrames = new Map<string, RgbImage>();
  private frameBytes = 0;
  private readonly frameBudget: number;
  private readonly cacheDir: string;
  private readonly log: (line: string) => void;

  constructor(options: CremadOptions) {
    const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
    this.log = log;
    this.cacheDir = join(resolveCacheDir(options.cacheDir), 'cremad');
    this.frames = positiveInteger('cremad', options.frames ?? 2, 'frames');
    this.imageSize = positiveInteger('cremad', options.imageSize ?? 224, 'imageSize');
    this.spectrogramBudget = options.spectrogramBudgetBytes ?? 1.5 * 1024 ** 3;
    this.frameBudget = options.frameBudgetBytes ?? 1024 ** 3;
    this.sensors = branchSources<Sensor>(options.modalities ?? 'distinct', ['audio', 'visual']);
    const shapeOf = (s: Sensor) => (s === 'audio' ? [CREMAD_SPECTROGRAM_BINS, CREMAD_SPECTROGRAM_FRAMES, 1] : [this.frames, this.imageSize, this.imageSize, 3]);
    this.modalities = this.sensors.map((s) => ({ name: s, shape: shapeOf(s) }));
    this.luts = channelLookupTables({ name: 'frame', shape: [3], mean: IMAGENET_MEAN, std: IMAGENET_STD });

    this.root = resolve(options.root);
    if (!existsSync(this.root) || !statSync(this.root).isDirectory()) throw new DataFileError(this.root, 'no such directory (CREMA-D root)', CREMAD_DATA_HINT);
    for (const dir of [CREMAD_AUDIO_DIR, CREMAD_FRAMES_DIR]) {
      const path = join(this.root, dir);
      if (!existsSync(path) || !statSync(path).isDirectory()) throw new DataFileError(path, 'no such directory', CREMAD_DATA_HINT);
    }
    const trainList = readCremadList(join(this.root, CREMAD_TRAIN_LIST));
    const testList = readCremadList(join(this.root, CREMAD_TEST_LIST));
    const splitSeed = options.splitSeed ?? 0;
    const { train, val } = heldOutSplit(trainList, options.valFraction ?? 0.1, Rng.from('cremad-val-split', splitSeed), 'cremad');
    const bySplit: Record<SplitName, CremadEntry[]> = { train, val, test: testList };
    for (const split of ['train', 'val', 'test'] as const) {
      const n = options.subset?.[split];
      if (n === undefined) continue;
      positiveInteger('cremad', n, `subset.${split}`);
      if (n > bySplit[split].length) throw new SubsetTooLargeError('cremad', split, n, bySplit[split].length, 'clips');
      const keep = seededSubset(bySplit[split].length, n, Rng.from('cremad-subset', split, splitSeed));
      bySplit[split] = Array.from(keep, (i) => bySplit[split][i]!);
    }

    // Check every used clip now: a missing file is found before training, not hours into it.
    const usesAudio = this.sensors.includes('audio');
    const usesVisual = this.sensors.includes('visual');
    const empty: string[] = [];
    let id = 0;
    const check = (entry: CremadEntry): CremadClip | null => {
      const wav = this.wavFile(entry.clip);
      if (usesAudio) {
        if (!existsSync(wav)) throw new DataFileError(wav, `audio file missing (clip listed at ${entry.listedAt})`, CREMAD_DATA_HINT);
        if (readWavHeader(wav).frames === 0) {
          empty.push(entry.clip);
          return null;
        }
      }
      let frameFiles: string[] = [];
      if (usesVisual) {
        const dir = join(this.root, CREMAD_FRAMES_DIR, entry.clip);
        if (!existsSync(dir)) throw new DataFileError(dir, `frame folder missing (clip listed at ${entry.listedAt})`, CREMAD_DATA_HINT);
        frameFiles = readdirSync(dir).filter((f) => /\.jpe?g$/i.test(f)).sort();
        if (frameFiles.length === 0) throw new DataFileError(dir, `no .jpg frames in the folder (clip listed at ${entry.listedAt})`, CREMAD_DATA_HINT);
      }
      return { ...entry, frameFiles, id: id++ };
    };
    this.splits = {
      train: bySplit.train.map(check).filter((c): c is CremadClip => c !== null),
      val: bySplit.val.map(check).filter((c): c is CremadClip => c !== null),
      test: bySplit.test.map(check).filter((c): c is CremadClip => c !== null),
    };
    if (empty.length > 0) log(`cremad: warning: ${empty.length} clip(s) left out, their WAV holds no samples: ${empty.slice(0, 5).join(', ')}${empty.length > 5 ? ', …' : ''}`);
    for (const split of ['train', 'val', 'test'] as const) {
      if (this.splits[split].length === 0) throw new DataFileError(join(this.root, split === 'test' ? CREMAD_TEST_LIST : CREMAD_TRAIN_LIST), `the ${split} split has no clips`, CREMAD_DATA_HINT);
    }
    if (usesVisual) {
      const short = Object.values(this.splits).flat().filter((c) => c.frameFiles.length < this.frames).length;
      if (short > 0) log(`cremad: ${short} clip(s) have fewer than ${this.frames} frames; their frames repeat`);
    }
  }

  size(split: SplitName): number {
    return this.splits[split].length;
  }

  labels(split: SplitName): Int32Array {
    return Int32Array.from(this.splits[split], (c) => c.label);
  }

  /** Clip names of a split, in index order. */
  clips(split: SplitName): readonly string[] {
    return this.splits[split].map((c) => c.clip);
  }

  wavFile(clip: string): string {
    return join(this.root, CREMAD_AUDIO_DIR, `${clip}.wav`);
  }

  /** Sorted JPEG paths of a sample's frame folder. */
  frameFiles(split: SplitName, index: number): string[] {
    const clip = this.clip(split, index);
    return clip.frameFiles.map((f) => join(this.root, CREMAD_FRAMES_DIR, clip.clip, f));
  }

  private clip(split: SplitName, index: number): CremadClip {
    const clip = this.splits[split][index];
    if (!clip) throw new Error(`cremad: ${split} has ${this.size(split)} clips, no index ${index}`);
    return clip;
  }

  /** The frames, crops and flips of one sample: evaluation picks segment middles and whole frames. */
  frameDraw(split: SplitName, index: number, augment: boolean, seed: number, epoch: number): CremadFrameDraw {
    return this.drawFrames(this.clip(split, index), split, index, augment, seed, epoch).draw;
  }

  /** The draw and the decoded source frames it reads (decoded once, whether or not they fit the memory budget). */
  private drawFrames(clip: CremadClip, split: SplitName, index: number, augment: boolean, seed: number, epoch: number): { draw: CremadFrameDraw; images: RgbImage[] } {
    if (!augment) {
      const frames = cremadFrameIndices(clip.frameFiles.length, this.frames, null);
      return { draw: { frames, crops: frames.map(() => null) }, images: frames.map((f) => this.decodedFrame(clip, f)) };
    }
    const rng = Rng.from('cremad-augment', split, seed, epoch, index);
    const frames = cremadFrameIndices(clip.frameFiles.length, this.frames, rng);
    const images = frames.map((f) => this.decodedFrame(clip, f));
    const crops = images.map((image) => ({ ...randomResizedCrop(rng, image.width, image.height), flip: rng.uniform() < 0.5 }));
    return { draw: { frames, crops }, images };
  }

  /** The 257×188 log spectrogram of a clip (OGM-GE's audio input), frequency-major. */
  spectrogram(split: SplitName, index: number): Float32Array {
    return this.spectrogramOf(this.clip(split, index));
  }

  private spectrogramOf(clip: CremadClip): Float32Array {
    const held = this.spectrograms.get(clip.id);
    if (held) return held;
    const wav = this.wavFile(clip.clip);
    const bytes = this.diskCached('spectrogram', wav, ['log'], () => {
      const { samples, sampleRate } = readWavMono(wav);
      if (samples.length === 0) throw new DataFileError(wav, 'the WAV holds no samples (it had some when the dataset was opened)', 'Restore the file');
      const resampled = resample(samples, sampleRate, CREMAD_AUDIO.sampleRate);
      const signal = tileTo(resampled, CREMAD_AUDIO.sampleRate * CREMAD_AUDIO.seconds);
      for (let i = 0; i < signal.length; i++) signal[i] = Math.min(1, Math.max(-1, signal[i]!));
      const { data } = logSpectrogram(signal, CREMAD_AUDIO);
      return [new Uint8Array(data.buffer, data.byteOffset, data.byteLength)];
    })[0]!;
    const data = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    if (this.spectrogramBytes + data.byteLength <= this.spectrogramBudget) {
      this.spectrograms.set(clip.id, data);
      this.spectrogramBytes += data.byteLength;
    }
    return data;
  }

  private decodedFrame(clip: CremadClip, frame: number): RgbImage {
    const file = join(this.root, CREMAD_FRAMES_DIR, clip.clip, clip.frameFiles[frame]!);
    const held = this.decodedFrames.get(file);
    if (held) return held;
    const [shape, rgb] = this.diskCached('frame', file, ['shape', 'rgb'], () => {
      const decoded = readJpegRgb(file);
      return [new Uint8Array(Uint32Array.from([decoded.width, decoded.height]).buffer), decoded.data];
    });
    const [width, height] = new Uint32Array(shape!.slice().buffer);
    const image: RgbImage = { width: width!, height: height!, data: rgb! };
    if (this.frameBytes + image.data.byteLength <= this.frameBudget) {
      this.decodedFrames.set(file, image);
      this.frameBytes += image.data.byteLength;
    }
    return image;
  }

  /**
   * The sections derived from a source file, from the disk cache when it holds them for the file's current path,
   * size and mtime, else made and stored. A cache that cannot be written is reported once and skipped.
   */
  private diskCached(kind: 'spectrogram' | 'frame', source: string, sections: string[], make: () => Uint8Array[]): Uint8Array[] {
    const stat = statSync(source);
    // Bump the version when what is derived from the source changes (audio front end, JPEG decoding).
    const meta = { kind: `cremad-${kind}`, version: 1, source, size: stat.size, mtimeMs: Math.floor(stat.mtimeMs) };
    const key = createHash('sha256').update(JSON.stringify(meta)).digest('hex');
    const file = join(this.cacheDir, kind, key.slice(0, 2), `${key}.bin`);
    const cached = readCacheFile(file, meta, sections);
    if (cached.status === 'ok') return sections.map((name) => cached.sections.get(name)!);
    if (cached.status === 'invalid') this.log(`cremad: cache file ${file} is invalid (${cached.reason}); making it again`);
    const made = make();
    if (!this.cacheWriteFailed) {
      try {
        writeCacheFile(file, meta, made.map((bytes, i) => ({ name: sections[i]!, bytes })));
      } catch (error) {
        this.cacheWriteFailed = true;
        this.log(`cremad: cannot write the data cache under ${this.cacheDir} (${(error as Error).message}); going on without it`);
      }
    }
    return made;
  }

  private cacheWriteFailed = false;

  *batches(split: SplitName, options: BatchOptions): Iterable<HostBatch> {
    validateBatchOptions(options);
    const n = this.size(split);
    const order = epochOrder(split, n, options.shuffle, options.seed, options.epoch);
    for (let start = (options.startBatch ?? 0) * options.batchSize; start < n; start += options.batchSize) {
      const positions = order.subarray(start, Math.min(n, start + options.batchSize));
      yield this.batchOf(split, positions, options.augment, options.seed, options.epoch);
    }
  }

  /** A batch of the given split positions, in that order. */
  batchOf(split: SplitName, positions: Int32Array, augment: boolean, seed: number, epoch: number): HostBatch {
    const size = positions.length;
    const sampleSizes = this.modalities.map((m) => m.shape.reduce((a, b) => a * b, 1));
    const inputs = sampleSizes.map((s) => new Float32Array(size * s));
    const y = new Int32Array(size);
    const indices = new Int32Array(size);
    for (let k = 0; k < size; k++) {
      const position = positions[k]!;
      const clip = this.clip(split, position);
      indices[k] = position;
      y[k] = clip.label;
      // One draw per sample, shared by both branches of a duplicated-visual control (identical inputs).
      const frames = this.sensors.includes('visual') ? this.drawFrames(clip, split, position, augment, seed, epoch) : null;
      this.sensors.forEach((sensor, b) => {
        const out = inputs[b]!;
        const offset = k * sampleSizes[b]!;
        if (b === 1 && this.sensors[0] === sensor) {
          out.set(inputs[0]!.subarray(k * sampleSizes[0]!, (k + 1) * sampleSizes[0]!), offset);
        } else if (sensor === 'audio') {
          out.set(this.spectrogramOf(clip), offset);
        } else {
          this.writeFrames(out, offset, frames!.draw, frames!.images);
        }
      });
    }
    return { inputs, y, indices, size };
  }

  private writeFrames(out: Float32Array, offset: number, draw: CremadFrameDraw, images: readonly RgbImage[]): void {
    const S = this.imageSize;
    const frameSize = S * S * 3;
    const flipped = new Uint8Array(frameSize);
    images.forEach((source, t) => {
      const crop = draw.crops[t];
      const region = crop ? cropRgb(source, crop.top, crop.left, crop.height, crop.width) : source;
      let bytes = resizeBilinear(region, S, S).data;
      if (crop?.flip) {
        flipHorizontal(bytes, flipped, S, S, 3);
        bytes = flipped;
      }
      normaliseBytes(out, offset + t * frameSize, bytes, 0, frameSize, this.luts);
    });
  }
}

/** Resolve the root (option, spec, environment) and open the dataset. */
export function createCremadDataset(options: Omit<CremadOptions, 'root'> & { root?: string }): CremadDataset {
  const root = options.root ?? process.env[CREMAD_ENV_VAR];
  if (!root) throw new DataFileError('(no CREMA-D root given)', 'the data set location is unknown', CREMAD_DATA_HINT);
  return new CremadDataset({ ...options, root });
}
