import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fft, logSpectrogram, parseWavHeader, readWavMono, resample } from '../../src/data/audio.ts';
import {
  CREMAD_AUDIO,
  CREMAD_EMOTIONS,
  CREMAD_SPECTROGRAM_BINS,
  CREMAD_SPECTROGRAM_FRAMES,
  CremadDataset,
  cremadFrameIndices,
  type CremadOptions,
} from '../../src/data/cremad.ts';
import { DataFileError } from '../../src/data/idx.ts';
import { IMAGENET_MEAN, IMAGENET_STD } from '../../src/data/modelnet40.ts';
import { Rng } from '../../src/util/rng.ts';
import { encodeWav, FIXTURE_FRAME_GRAY, FIXTURE_SAMPLE_RATE, FIXTURE_TONE_HZ, writeCremadFixture, type FixtureClip } from '../fixtures/cremad.ts';

let workDir: string;
let root: string;
let lists: { train: FixtureClip[]; test: FixtureClip[] };

beforeAll(() => {
  workDir = mkdtempSync(join(tmpdir(), 'mmsweep-cremad-'));
  root = join(workDir, 'CREMA-D');
  // Clip n has 5 frames, except every seventh clip with 1 (fewer than the 2 fed frames: they repeat).
  lists = writeCremadFixture(root, { trainPerClass: 3, testPerClass: 1, frames: (n) => (n % 7 === 0 ? 1 : 5) });
});
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

function open(options: Partial<CremadOptions> = {}): CremadDataset {
  return new CremadDataset({ root, imageSize: 8, frames: 2, valFraction: 0.25, cacheDir: join(workDir, 'cache'), log: () => {}, ...options });
}

/** A copy of the fixture to damage. */
function copyRoot(name: string): string {
  const copy = join(workDir, name);
  cpSync(root, copy, { recursive: true });
  return copy;
}

function expectDataError(make: () => unknown, file: RegExp, problem: RegExp): void {
  let caught: unknown;
  try {
    make();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(DataFileError);
  expect((caught as DataFileError).file).toMatch(file);
  expect((caught as Error).message).toMatch(problem);
}

/** X[k] = Σ x[n]·e^{−2πi kn/N}, directly (O(N²)). */
function directDft(re: number[], im: number[]): { re: number[]; im: number[] } {
  const N = re.length;
  const outRe: number[] = [];
  const outIm: number[] = [];
  for (let k = 0; k < N; k++) {
    let sr = 0;
    let si = 0;
    for (let n = 0; n < N; n++) {
      const a = (-2 * Math.PI * k * n) / N;
      sr += re[n]! * Math.cos(a) - im[n]! * Math.sin(a);
      si += re[n]! * Math.sin(a) + im[n]! * Math.cos(a);
    }
    outRe.push(sr);
    outIm.push(si);
  }
  return { re: outRe, im: outIm };
}

describe('FFT and spectrogram', () => {
  it('the FFT equals a direct DFT (lengths 1 … 512)', () => {
    const rng = new Rng(3);
    for (const n of [1, 2, 8, 64, 512]) {
      const re = Array.from({ length: n }, () => rng.uniform() - 0.5);
      const im = Array.from({ length: n }, () => rng.uniform() - 0.5);
      const expected = directDft(re, im);
      const r = Float64Array.from(re);
      const i = Float64Array.from(im);
      fft(r, i);
      for (let k = 0; k < n; k++) {
        expect(r[k]).toBeCloseTo(expected.re[k]!, 9);
        expect(i[k]).toBeCloseTo(expected.im[k]!, 9);
      }
    }
    expect(() => fft(new Float64Array(12), new Float64Array(12))).toThrow(/power of two/);
  });

  it('log(|STFT| + 1e-7) equals a direct computation: reflect padding, periodic Hann, centred frames', () => {
    const rng = new Rng(4);
    const x = Float32Array.from({ length: 1000 }, () => rng.uniform() * 2 - 1);
    const nFft = 64;
    const hop = 17;
    const { data, bins, frames } = logSpectrogram(x, { nFft, hop, floor: 1e-7 });
    expect(bins).toBe(33);
    expect(frames).toBe(1 + Math.floor(1000 / 17));
    // numpy.pad(x, 32, mode='reflect'), written out by index.
    const padded = [...Array.from({ length: 32 }, (_, i) => x[32 - i]!), ...x, ...Array.from({ length: 32 }, (_, i) => x[998 - i]!)];
    for (const t of [0, 1, 30, frames - 1]) {
      const segment = Array.from({ length: nFft }, (_, n) => padded[t * hop + n]! * (0.5 - 0.5 * Math.cos((2 * Math.PI * n) / nFft)));
      const X = directDft(segment, new Array(nFft).fill(0));
      for (let f = 0; f < bins; f++) expect(data[f * frames + t]).toBeCloseTo(Math.log(Math.hypot(X.re[f]!, X.im[f]!) + 1e-7), 4);
    }
  });

  it('resampling 16 kHz → 22.05 kHz reproduces a band-limited tone (away from the ends)', () => {
    const f = 1000;
    const x = Float32Array.from({ length: 8000 }, (_, i) => Math.sin((2 * Math.PI * f * i) / 16_000));
    const y = resample(x, 16_000, 22_050);
    expect(y.length).toBe(Math.ceil((8000 * 22_050) / 16_000));
    let worst = 0;
    for (let j = 200; j < y.length - 200; j++) worst = Math.max(worst, Math.abs(y[j]! - Math.sin((2 * Math.PI * f * j) / 22_050)));
    expect(worst).toBeLessThan(1e-3);
    // Downsampling removes what the new rate cannot hold: a 7 kHz tone resampled to 8 kHz (Nyquist 4 kHz) vanishes.
    const high = Float32Array.from({ length: 8000 }, (_, i) => Math.sin((2 * Math.PI * 7000 * i) / 16_000));
    const low = resample(high, 16_000, 8000);
    let energy = 0;
    for (let j = 200; j < low.length - 200; j++) energy = Math.max(energy, Math.abs(low[j]!));
    expect(energy).toBeLessThan(0.01);
  });
});

const python = process.env.MMSWEEP_PYTHON ?? 'python3';
const probe = spawnSync(python, ['-c', 'import torch'], { encoding: 'utf8' });
const torchMissing = probe.status === 0 ? null : `${python} cannot import torch (${(probe.stderr || String(probe.error)).trim().split('\n').at(-1)})`;
if (torchMissing) console.log(`[test/data/cremad] torch.stft comparison skipped: ${torchMissing}; pip install torch==2.13.0`);

describe.skipIf(torchMissing !== null)('the spectrogram against PyTorch', () => {
  it('equals log(|torch.stft| + 1e-7) at OGM-GE\'s size (n_fft 512, hop 353, reflect, periodic Hann: 257×188)', () => {
    const rng = new Rng(11);
    const x = Float32Array.from({ length: 66_150 }, () => rng.uniform() * 2 - 1);
    const script = [
      'import json, sys, torch',
      'x = torch.tensor(json.load(sys.stdin), dtype=torch.float64)',
      "X = torch.stft(x, n_fft=512, hop_length=353, window=torch.hann_window(512, periodic=True, dtype=torch.float64), center=True, pad_mode='reflect', return_complex=True)",
      'print(json.dumps(torch.log(X.abs() + 1e-7).flatten().tolist()))',
    ].join('\n');
    const run = spawnSync(python, ['-c', script], { input: JSON.stringify(Array.from(x)), encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    expect(run.status, run.stderr).toBe(0);
    const reference = JSON.parse(run.stdout) as number[];
    const { data, bins, frames } = logSpectrogram(x, CREMAD_AUDIO);
    expect([bins, frames]).toEqual([257, 188]);
    expect(reference.length).toBe(data.length);
    let worst = 0;
    for (let i = 0; i < data.length; i++) worst = Math.max(worst, Math.abs(data[i]! - reference[i]!));
    expect(worst).toBeLessThan(1e-4);
  }, 60_000);
});

describe('WAV files', () => {
  it('reads 16-bit PCM samples as x/32768, averaging stereo to mono', () => {
    const file = join(workDir, 'stereo.wav');
    const samples = Float32Array.from([0.5, -0.5, 0.25, 0.25, -1, 1]);
    writeFileSync(file, encodeWav(samples, 8000, 2));
    const { samples: mono, sampleRate } = readWavMono(file);
    expect(sampleRate).toBe(8000);
    const ints = [0.5, -0.5, 0.25, 0.25, -1, 1].map((v) => Math.round(v * 32767));
    expect(Array.from(mono)).toEqual([(ints[0]! + ints[1]!) / 2 / 32768, (ints[2]! + ints[3]!) / 2 / 32768, (ints[4]! + ints[5]!) / 2 / 32768].map(Math.fround));
  });

  it('refuses other formats, naming the format', () => {
    const wav = encodeWav(new Float32Array(10), 16_000);
    const float = Buffer.from(wav);
    float.writeUInt16LE(3, 20);
    float.writeUInt16LE(32, 34);
    expect(() => parseWavHeader(float, 'f.wav')).toThrow(/f\.wav: IEEE float audio; only 16-bit PCM/);
    const eight = Buffer.from(wav);
    eight.writeUInt16LE(8, 34);
    expect(() => parseWavHeader(eight, 'e.wav')).toThrow(/8-bit PCM; only 16-bit PCM/);
    expect(() => parseWavHeader(Buffer.from('not a wav file at all'), 'n.wav')).toThrow(/not a RIFF\/WAVE file/);
    // A chunk before fmt (LIST) is skipped.
    const list = Buffer.concat([wav.subarray(0, 12), Buffer.from('LIST\x04\x00\x00\x00abcd', 'latin1'), wav.subarray(12)]);
    expect(parseWavHeader(list, 'l.wav').frames).toBe(10);
  });
});

describe('CREMA-D loader on a generated fixture', () => {
  it('reads the lists: labels in OGM-GE order, a seeded held-out validation split, test = test.csv', () => {
    const ds = open();
    expect(ds.numClasses).toBe(6);
    expect(CREMAD_EMOTIONS).toEqual(['NEU', 'HAP', 'SAD', 'FEA', 'DIS', 'ANG']);
    const listed = new Map([...lists.train, ...lists.test].map((c) => [c.clip, c.label]));
    // Round(18 × 0.25) = 5 held out (the split is seeded; 18 = 3 per class × 6).
    expect(ds.size('val')).toBe(5);
    expect(ds.size('train')).toBe(13);
    expect(ds.size('test')).toBe(6);
    for (const split of ['train', 'val', 'test'] as const) {
      const labels = ds.labels(split);
      ds.clips(split).forEach((clip, i) => {
        // The fixture's clip names carry the emotion code as CREMA-D's do.
        expect(labels[i]).toBe(listed.get(clip));
        expect(clip.split('_')[2]).toBe(CREMAD_EMOTIONS[labels[i]!]);
      });
    }
    expect(new Set([...ds.clips('train'), ...ds.clips('val')])).toEqual(new Set(lists.train.map((c) => c.clip)));
    expect(ds.clips('test')).toEqual(lists.test.map((c) => c.clip));
    expect(open({ splitSeed: 1 }).clips('val')).not.toEqual(ds.clips('val'));
    expect(open().clips('val')).toEqual(ds.clips('val'));
  });

  it('the audio input is the 257×188 log spectrogram of the tiled, resampled clip, peaking at its tone', () => {
    const ds = open();
    expect(ds.modalities.map((m) => m.shape)).toEqual([[257, 188, 1], [2, 8, 8, 3]]);
    expect([CREMAD_SPECTROGRAM_BINS, CREMAD_SPECTROGRAM_FRAMES]).toEqual([257, 188]);
    const batch = [...ds.batches('test', { batchSize: 6, shuffle: false, augment: false, seed: 0, epoch: 1 })][0]!;
    const size = 257 * 188;
    for (let k = 0; k < 6; k++) {
      const spectrogram = batch.inputs[0]!.subarray(k * size, (k + 1) * size);
      // Composition of the steps, each tested above: read, resample, tile to 3 s, clip, STFT.
      const { samples } = readWavMono(ds.wavFile(ds.clips('test')[k]!));
      const up = resample(samples, FIXTURE_SAMPLE_RATE, 22_050);
      const tiled = Float32Array.from({ length: 66_150 }, (_, i) => Math.min(1, Math.max(-1, up[i % up.length]!)));
      expect(Array.from(spectrogram)).toEqual(Array.from(logSpectrogram(tiled, CREMAD_AUDIO).data));
      // Frame 40 (≈ 0.64 s, inside the first copy of the 1.2 s clip): the peak is the tone's bin f·512/22050.
      let peak = 0;
      for (let f = 1; f < 257; f++) if (spectrogram[f * 188 + 40]! > spectrogram[peak * 188 + 40]!) peak = f;
      expect(peak).toBe(Math.round((FIXTURE_TONE_HZ(batch.y[k]!) * 512) / 22_050));
    }
  });

  it('evaluation feeds the middle frame of each segment, resized and ImageNet-normalised', () => {
    const ds = open();
    expect(cremadFrameIndices(5, 2, null)).toEqual([1, 3]); // segments {0,1}, {2,3}
    expect(cremadFrameIndices(1, 2, null)).toEqual([0, 0]);
    expect(cremadFrameIndices(3, 3, null)).toEqual([0, 1, 2]);
    const batch = [...ds.batches('test', { batchSize: 6, shuffle: false, augment: false, seed: 0, epoch: 1 })][0]!;
    const frame = 8 * 8 * 3;
    for (let k = 0; k < 6; k++) {
      const clip = lists.test.find((c) => c.clip === ds.clips('test')[k])!;
      const expected = clip.frames === 5 ? [1, 3] : [0, 0];
      for (let t = 0; t < 2; t++) {
        for (const c of [0, 1, 2]) {
          const v = batch.inputs[1]![(k * 2 + t) * frame + 27 + c]!;
          const byte = (v * IMAGENET_STD[c]! + IMAGENET_MEAN[c]!) * 255;
          expect(Math.abs(byte - FIXTURE_FRAME_GRAY(clip.label, expected[t]!))).toBeLessThan(3);
        }
      }
    }
  });

  it('training draws one seeded frame per segment and a crop and flip per frame: deterministic, batch-size independent', () => {
    const ds = open();
    const epochBatches = (batchSize: number, epoch: number, seed = 7) => {
      const out = [...ds.batches('train', { batchSize, shuffle: true, augment: true, seed, epoch })];
      return { inputs: out.flatMap((b) => [Array.from(b.inputs[1]!)]).flat(), indices: out.flatMap((b) => Array.from(b.indices)) };
    };
    const a = epochBatches(13, 1);
    expect(epochBatches(13, 1)).toEqual(a);
    expect(epochBatches(4, 1)).toEqual(a);
    expect(epochBatches(13, 2)).not.toEqual(a);
    const seen = new Set<string>();
    for (let epoch = 1; epoch <= 6; epoch++) {
      for (let i = 0; i < ds.size('train'); i++) {
        const draw = ds.frameDraw('train', i, true, 7, epoch);
        expect(draw).toEqual(ds.frameDraw('train', i, true, 7, epoch));
        const n = ds.frameFiles('train', i).length;
        if (n === 5) {
          expect(draw.frames[0]).toBeGreaterThanOrEqual(0);
          expect(draw.frames[0]).toBeLessThanOrEqual(1);
          expect(draw.frames[1]).toBeGreaterThanOrEqual(2);
          expect(draw.frames[1]).toBeLessThanOrEqual(3);
          seen.add(draw.frames.join(','));
        } else {
          expect(draw.frames).toEqual([0, 0]);
        }
        for (const crop of draw.crops) {
          expect(crop).not.toBeNull();
          const { top, left, width, height } = crop!;
          expect(top + height).toBeLessThanOrEqual(30);
          expect(left + width).toBeLessThanOrEqual(40);
          expect(width * height).toBeGreaterThanOrEqual(Math.floor(0.08 * 1200) - 40);
        }
      }
    }
    expect(seen).toEqual(new Set(['0,2', '0,3', '1,2', '1,3']));
    // The fed pixels are the drawn frame's gray (flat frames: crops, resizes and flips keep it).
    const batch = [...ds.batches('train', { batchSize: 13, shuffle: false, augment: true, seed: 7, epoch: 3 })][0]!;
    const frame = 8 * 8 * 3;
    for (let k = 0; k < 13; k++) {
      const draw = ds.frameDraw('train', k, true, 7, 3);
      for (let t = 0; t < 2; t++) {
        const byte = (batch.inputs[1]![(k * 2 + t) * frame + 100]! * IMAGENET_STD[1]! + IMAGENET_MEAN[1]!) * 255;
        expect(Math.abs(byte - FIXTURE_FRAME_GRAY(batch.y[k]!, draw.frames[t]!))).toBeLessThan(3);
      }
    }
  });

  it('duplicated controls feed identical inputs; subsets are seeded and checked', () => {
    const audio = open({ modalities: 'duplicate-m0' });
    const b = [...audio.batches('val', { batchSize: 5, shuffle: false, augment: true, seed: 1, epoch: 1 })][0]!;
    expect(audio.modalities.map((m) => m.name)).toEqual(['audio', 'audio']);
    expect(Array.from(b.inputs[1]!)).toEqual(Array.from(b.inputs[0]!));
    const visual = open({ modalities: 'duplicate-m1' });
    const v = [...visual.batches('train', { batchSize: 13, shuffle: false, augment: true, seed: 1, epoch: 1 })][0]!;
    expect(Array.from(v.inputs[1]!)).toEqual(Array.from(v.inputs[0]!));
    const sub = open({ subset: { train: 4, test: 3 } });
    expect([sub.size('train'), sub.size('val'), sub.size('test')]).toEqual([4, 5, 3]);
    expect(open({ subset: { train: 4, test: 3 } }).clips('train')).toEqual(sub.clips('train'));
    expect(() => open({ subset: { test: 7 } })).toThrow(/subset.test = 7 exceeds the 6 clips of the cremad test split/);
  });
});

describe('CREMA-D layout errors name the file and the layout', () => {
  it('a missing root, audio or frame directory', () => {
    expectDataError(() => open({ root: join(workDir, 'nowhere') }), /nowhere$/, /no such directory \(CREMA-D root\).*AudioWAV/);
    const noFrames = copyRoot('no-frames');
    rmSync(join(noFrames, 'Image-01-FPS'), { recursive: true });
    expectDataError(() => open({ root: noFrames }), /Image-01-FPS$/, /no such directory.*ffmpeg/);
  });

  it('a listed clip without its WAV, frame folder or frames', () => {
    const clip = lists.test[2]!.clip;
    const noWav = copyRoot('no-wav');
    unlinkSync(join(noWav, 'AudioWAV', `${clip}.wav`));
    expectDataError(() => open({ root: noWav }), new RegExp(`AudioWAV/${clip}\\.wav$`), /audio file missing \(clip listed at .*test\.csv:3\)/);
    const noDir = copyRoot('no-dir');
    rmSync(join(noDir, 'Image-01-FPS', clip), { recursive: true });
    expectDataError(() => open({ root: noDir }), new RegExp(`Image-01-FPS/${clip}$`), /frame folder missing/);
    const empty = copyRoot('empty-dir');
    rmSync(join(empty, 'Image-01-FPS', clip), { recursive: true });
    mkdirSync(join(empty, 'Image-01-FPS', clip));
    expectDataError(() => open({ root: empty }), new RegExp(`Image-01-FPS/${clip}$`), /no \.jpg frames/);
    // Audio-only controls do not need frames.
    expect(open({ root: noDir, modalities: 'duplicate-m0' }).size('test')).toBe(6);
  });

  it('a split list that is missing or does not parse, a WAV of another format; an empty WAV is left out with a warning', () => {
    const noList = copyRoot('no-list');
    unlinkSync(join(noList, 'train.csv'));
    expectDataError(() => open({ root: noList }), /train\.csv$/, /cannot read the split list \(ENOENT\)/);
    const badLine = copyRoot('bad-line');
    writeFileSync(join(badLine, 'test.csv'), `\ufeff${readFileSync(join(root, 'test.csv'), 'utf8').replace(/,HAP\n/, ',HAPPY\n')}`);
    expectDataError(() => open({ root: badLine }), /test\.csv:2$/, /"1020_DFA_HAP_XX,HAPPY" is not "<clip>,<EMOTION>"/);
    const clip = lists.train[0]!.clip;
    const float = copyRoot('float');
    const wav = readFileSync(join(float, 'AudioWAV', `${clip}.wav`));
    wav.writeUInt16LE(3, 20);
    writeFileSync(join(float, 'AudioWAV', `${clip}.wav`), wav);
    expectDataError(() => open({ root: float }), new RegExp(`${clip}\\.wav$`), /IEEE float audio; only 16-bit PCM WAV/);
    const emptyWav = copyRoot('empty-wav');
    writeFileSync(join(emptyWav, 'AudioWAV', `${clip}.wav`), encodeWav(new Float32Array(0), 16_000));
    const lines: string[] = [];
    const ds = open({ root: emptyWav, log: (l) => lines.push(l) });
    expect(ds.size('train') + ds.size('val')).toBe(17);
    expect([...ds.clips('train'), ...ds.clips('val')]).not.toContain(clip);
    expect(lines.join('\n')).toMatch(new RegExp(`1 clip\\(s\\) left out, their WAV holds no samples: ${clip}`));
  });
});

describe('the CREMA-D disk cache', () => {
  it('keeps decoded frames and spectrograms keyed by the source file: a changed file is read again', () => {
    const copy = copyRoot('cached');
    const cacheDir = join(workDir, 'cache-test');
    const first = open({ root: copy, cacheDir });
    const evalBatch = (ds: CremadDataset) => [...ds.batches('test', { batchSize: 6, shuffle: false, augment: false, seed: 0, epoch: 1 })][0]!;
    const reference = evalBatch(first);
    expect(readdirSync(join(cacheDir, 'cremad', 'frame')).length).toBeGreaterThan(0);
    expect(readdirSync(join(cacheDir, 'cremad', 'spectrogram')).length).toBeGreaterThan(0);
    // Change every source file of the test split, keeping size and mtime (JPEGs garbled, WAVs silenced with their
    // header intact): a new dataset still reads the cache.
    const keepStat = (file: string, bytes: Buffer) => {
      const { size, atimeMs, mtimeMs } = statSync(file);
      expect(bytes.length).toBe(size);
      writeFileSync(file, bytes);
      // Seconds as a number keep the sub-millisecond part (a Date would round it to the nearest millisecond).
      utimesSync(file, atimeMs / 1000, mtimeMs / 1000);
    };
    first.clips('test').forEach((clip, i) => {
      const wav = readFileSync(first.wavFile(clip));
      keepStat(first.wavFile(clip), Buffer.concat([wav.subarray(0, 44), Buffer.alloc(wav.length - 44)]));
      for (const file of first.frameFiles('test', i)) keepStat(file, Buffer.alloc(statSync(file).size, 7));
    });
    const again = evalBatch(open({ root: copy, cacheDir }));
    expect(Array.from(again.inputs[0]!)).toEqual(Array.from(reference.inputs[0]!));
    expect(Array.from(again.inputs[1]!)).toEqual(Array.from(reference.inputs[1]!));
    // A newer mtime is another file: decoded again, so the garbled JPEG is refused naming it.
    const jpeg = first.frameFiles('test', 0)[1]!;
    utimesSync(jpeg, new Date(), new Date(Date.now() + 5000));
    expectDataError(() => evalBatch(open({ root: copy, cacheDir, modalities: 'duplicate-m1' })), new RegExp(`${jpeg.split('/').pop()}$`), /not a valid JPEG/);
    expect(existsSync(cacheDir)).toBe(true);
  });
});
