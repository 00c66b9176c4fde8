import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNvgestureDataset, splitTrainList, type NvgestureDataset, type NvgestureDatasetOptions } from '../../src/data/nvgesture.ts';
import { NvgestureListError, parseNvgestureList } from '../../src/data/nvgesture-list.ts';
import { FfmpegNotFoundError, VideoDecodeError } from '../../src/data/nvgesture-video.ts';
import type { SplitName } from '../../src/data/types.ts';
import { depthPixel, rgbPixel, writeNvgestureFixture, type FixtureClip, type NvgestureFixture } from '../fixtures/nvgesture.ts';

const REAL_LINE =
  'path:./Video_data/class_01/subject13_r0 depth:sk_depth:12:92 color:sk_color:10:90 duo_left:duo_left:20:100 label:1';

describe('NVGesture split lists', () => {
  it('parses the published line format (0-based labels, per-sensor ranges)', () => {
    const entries = parseNvgestureList(`${REAL_LINE}\r\n\npath:./Video_data/class_25/subject3_r2 depth:sk_depth:0:80 color:sk_color:0:80 duo_left:duo_left:5:85 label:25\n`, 'x.lst');
    expect(entries).toHaveLength(2);
    expect(entries[0]).toMatchObject({
      path: './Video_data/class_01/subject13_r0',
      label: 0,
      color: { file: 'sk_color', start: 10, end: 90 },
      depth: { file: 'sk_depth', start: 12, end: 92 },
      listFile: 'x.lst',
      line: 1,
    });
    expect(entries[1]!.label).toBe(24);
    expect(entries[1]!.line).toBe(3);
  });

  it.each([
    ['a label out of range', REAL_LINE.replace('label:1', 'label:26'), /label/],
    ['a missing color field', REAL_LINE.replace(' color:sk_color:10:90', ''), /no color field/],
    ['a non-numeric frame', REAL_LINE.replace('sk_depth:12:92', 'sk_depth:12:x'), /bad sensor field/],
    ['END before START', REAL_LINE.replace('sk_color:10:90', 'sk_color:90:10'), /END ≤ START/],
    ['an unknown field', `${REAL_LINE} extra:1`, /unknown field/],
  ])('names the file and line of %s', (_what, bad, reason) => {
    const text = `${REAL_LINE}\n${bad}\n`;
    let error: unknown;
    try {
      parseNvgestureList(text, '/data/train.lst');
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(NvgestureListError);
    expect((error as Error).name).toBe('DataFileError');
    expect((error as Error).message).toMatch(/^\/data\/train\.lst:2: /);
    expect((error as Error).message).toMatch(reason);
  });

  it('holds out a seeded 20 % of the training list (840/210 of 1,050), deterministically', () => {
    const entries = Array.from({ length: 1050 }, (_, i) => i);
    const a = splitTrainList(entries, 0.2, 7);
    expect(a.train).toHaveLength(840);
    expect(a.val).toHaveLength(210);
    expect([...a.train, ...a.val].sort((x, y) => x - y)).toEqual(entries);
    expect(splitTrainList(entries, 0.2, 7)).toEqual(a);
    expect(splitTrainList(entries, 0.2, 8).val).not.toEqual(a.val);
    // Both parts keep list order.
    expect(a.val).toEqual([...a.val].sort((x, y) => x - y));
  });
});

let dir: string;
let square: NvgestureFixture;
let wide: NvgestureFixture;
const logs: string[] = [];
const log = (line: string) => logs.push(line);

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mmsweep-nvgesture-'));
  // 24×24 frames resized to 24×24: ffmpeg's scaler leaves them untouched, so pixels can be checked exactly.
  square = writeNvgestureFixture(join(dir, 'square'), { width: 24, height: 24 });
  wide = writeNvgestureFixture(join(dir, 'wide'), { width: 32, height: 24, classes: 2, trainPerClass: 2 });
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function squareOptions(extra: Partial<NvgestureDatasetOptions> = {}): NvgestureDatasetOptions {
  return { root: square.root, modalities: 'distinct', frames: 16, imageSize: 16, resizeSize: 24, splitSeed: 3, cacheDir: join(dir, 'cache'), log, ...extra };
}

const unit = (v: number) => Math.fround(v / 127.5 - 1);

/** Expected input values of one sample, from the fixture's pixel formulas and the window the dataset reports. */
function expectSample(ds: NvgestureDataset, split: SplitName, index: number, x0: Float32Array, x1: Float32Array, augment: boolean, seed: number, epoch: number, fixture: NvgestureFixture): void {
  const clip = ds.clip(split, index);
  const fx = [...fixture.train, ...fixture.test].find((c) => c.path === clip.entry.path)!;
  const w = ds.window(split, index, augment, seed, epoch);
  const length = fx.colorEnd - fx.colorStart;
  const S = ds.imageSize;
  let mismatches = 0;
  for (let t = 0; t < ds.frames; t++) {
    const f = w.frameStart + t;
    for (let y = 0; y < S; y++) {
      for (let x = 0; x < S; x++) {
        const i = (t * S + y) * S + x;
        if (f < 0 || f >= length) {
          if (x0[i * 3] !== 0 || x0[i * 3 + 1] !== 0 || x0[i * 3 + 2] !== 0 || x1[i] !== 0) mismatches++;
          continue;
        }
        const sx0 = w.cropX + (w.flip0 ? S - 1 - x : x);
        const sx1 = w.cropX + (w.flip1 ? S - 1 - x : x);
        // Both sensors read the color range: frame colorStart + f of each video.
        const rgb = rgbPixel(fx.clip, fx.label, fx.colorStart + f, sx0, w.cropY + y);
        for (let c = 0; c < 3; c++) if (x0[i * 3 + c] !== unit(rgb[c]!)) mismatches++;
        if (x1[i] !== unit(depthPixel(fx.clip, fx.label, fx.colorStart + f, sx1))) mismatches++;
      }
    }
  }
  expect(mismatches, `${split}[${index}] (${fx.path}, window ${JSON.stringify(w)})`).toBe(0);
}

describe('NVGesture dataset on a generated fixture', () => {
  let ds: NvgestureDataset;

  beforeAll(async () => {
    ds = await createNvgestureDataset(squareOptions());
  });

  it('has the splits, shapes and labels of the lists', () => {
    expect(ds.size('train') + ds.size('val')).toBe(square.train.length);
    expect(ds.size('val')).toBe(Math.round(square.train.length * 0.2));
    expect(ds.size('test')).toBe(square.test.length);
    expect(ds.modalities).toEqual([
      { name: 'rgb', shape: [16, 16, 16, 3] },
      { name: 'depth', shape: [16, 16, 16, 1] },
    ]);
    expect(ds.numClasses).toBe(25);
    const byPath = new Map<string, FixtureClip>([...square.train, ...square.test].map((c) => [c.path, c]));
    for (const split of ['train', 'val', 'test'] as const) {
      const labels = ds.labels(split);
      labels.forEach((label, i) => expect(label).toBe(byPath.get(ds.clip(split, i).entry.path)!.label));
    }
    const trainPaths = [...Array(ds.size('train')).keys()].map((i) => ds.clip('train', i).entry.path);
    const valPaths = [...Array(ds.size('val')).keys()].map((i) => ds.clip('val', i).entry.path);
    expect([...trainPaths, ...valPaths].sort()).toEqual(square.train.map((c) => c.path).sort());
  });

  it('evaluation batches are the centred window and crop, exact pixels, depth on the RGB range', () => {
    for (const split of ['train', 'val', 'test'] as const) {
      const batches = [...ds.batches(split, { batchSize: 2, shuffle: false, augment: false, seed: 1, epoch: 1 })];
      let index = 0;
      for (const b of batches) {
        for (let k = 0; k < b.size; k++, index++) {
          expect(b.indices[k]).toBe(index);
          const w = ds.window(split, index, false, 1, 1);
          expect([w.cropY, w.cropX, w.flip0, w.flip1]).toEqual([4, 4, false, false]);
          const n0 = 16 * 16 * 16 * 3;
          const n1 = 16 * 16 * 16;
          expectSample(ds, split, index, b.inputs[0].subarray(k * n0, (k + 1) * n0), b.inputs[1].subarray(k * n1, (k + 1) * n1), false, 1, 1, square);
        }
      }
      expect(index).toBe(ds.size(split));
    }
  });

  it('centres long clips and zero-pads short ones on both sides', () => {
    const all = (['train', 'val', 'test'] as const).flatMap((split) => [...Array(ds.size(split)).keys()].map((i) => ({ split, i })));
    const lengths = all.map(({ split, i }) => ds.clip(split, i).frames.color!);
    expect(Math.min(...lengths)).toBeLessThan(16);
    expect(Math.max(...lengths)).toBeGreaterThan(16);
    for (const { split, i } of all) {
      const L = ds.clip(split, i).frames.color!;
      const w = ds.window(split, i, false, 0, 1);
      expect(w.frameStart).toBe(L >= 16 ? Math.floor((L - 16) / 2) : -Math.floor((16 - L) / 2));
    }
    // The clip with depth START ≠ RGB START (fixture clip 1) decodes the RGB range for depth too.
    const special = square.train.find((c) => c.depthStart !== c.colorStart)!;
    expect(special).toBeDefined();
  });

  it('training augmentation: one crop for all frames and both modalities, one flip per clip, seeded', () => {
    const windows = new Set<string>();
    let flips = 0;
    let samples = 0;
    for (let epoch = 1; epoch <= 4; epoch++) {
      const batches = [...ds.batches('train', { batchSize: 3, shuffle: true, augment: true, seed: 11, epoch })];
      for (const b of batches) {
        for (let k = 0; k < b.size; k++) {
          const index = b.indices[k]!;
          const w = ds.window('train', index, true, 11, epoch);
          expect(w.flip1).toBe(w.flip0);
          windows.add(`${w.frameStart},${w.cropY},${w.cropX}`);
          flips += w.flip0 ? 1 : 0;
          samples++;
          const n0 = 16 * 16 * 16 * 3;
          const n1 = 16 * 16 * 16;
          expectSample(ds, 'train', index, b.inputs[0].subarray(k * n0, (k + 1) * n0), b.inputs[1].subarray(k * n1, (k + 1) * n1), true, 11, epoch, square);
        }
      }
    }
    expect(windows.size).toBeGreaterThan(samples / 2);
    expect(flips).toBeGreaterThan(0);
    expect(flips).toBeLessThan(samples);
    const again = [...ds.batches('train', { batchSize: 3, shuffle: true, augment: true, seed: 11, epoch: 2 })];
    const twice = [...ds.batches('train', { batchSize: 3, shuffle: true, augment: true, seed: 11, epoch: 2 })];
    expect(again.map((b) => Array.from(b.inputs[0].subarray(0, 64)))).toEqual(twice.map((b) => Array.from(b.inputs[0].subarray(0, 64))));
    expect(again.map((b) => Array.from(b.indices))).toEqual(twice.map((b) => Array.from(b.indices)));
  });

  it("flip 'independent' draws one flip per modality; 'none' never flips", async () => {
    const independent = await createNvgestureDataset(squareOptions({ flip: 'independent' }));
    const none = await createNvgestureDataset(squareOptions({ flip: 'none' }));
    let differ = 0;
    for (let epoch = 1; epoch <= 6; epoch++) {
      for (let i = 0; i < independent.size('train'); i++) {
        const w = independent.window('train', i, true, 5, epoch);
        if (w.flip0 !== w.flip1) differ++;
        const n = none.window('train', i, true, 5, epoch);
        expect([n.flip0, n.flip1]).toEqual([false, false]);
      }
    }
    expect(differ).toBeGreaterThan(0);
    const [b] = [...independent.batches('train', { batchSize: 4, shuffle: false, augment: true, seed: 5, epoch: 3 })];
    for (let k = 0; k < b!.size; k++) {
      const n0 = 16 ** 3 * 3;
      const n1 = 16 ** 3;
      expectSample(independent, 'train', k, b!.inputs[0].subarray(k * n0, (k + 1) * n0), b!.inputs[1].subarray(k * n1, (k + 1) * n1), true, 5, 3, square);
    }
  });

  it("padding 'black' pads with −1", async () => {
    const black = await createNvgestureDataset(squareOptions({ padding: 'black' }));
    const i = [...Array(black.size('train')).keys()].find((j) => black.clip('train', j).frames.color! < 16)!;
    const [b] = [...black.batches('train', { batchSize: black.size('train'), shuffle: false, augment: false, seed: 0, epoch: 1 })];
    const n1 = 16 ** 3;
    expect(b!.inputs[1][i * n1]).toBe(-1);
    expect(black.window('train', i, false, 0, 1).frameStart).toBeLessThan(0);
  });

  it('duplicated modalities and subsets', async () => {
    const depthTwice = await createNvgestureDataset(squareOptions({ modalities: 'duplicate-m1', subset: { train: 3, test: 2 } }));
    expect(depthTwice.modalities.map((m) => m.name)).toEqual(['depth', 'depth']);
    expect(depthTwice.size('train')).toBe(3);
    expect(depthTwice.size('test')).toBe(2);
    const [b] = [...depthTwice.batches('train', { batchSize: 3, shuffle: false, augment: true, seed: 2, epoch: 1 })];
    expect(Array.from(b!.inputs[1])).toEqual(Array.from(b!.inputs[0]));
    const rgbTwice = await createNvgestureDataset(squareOptions({ modalities: 'duplicate-m0' }));
    expect(rgbTwice.modalities.map((m) => m.shape[3])).toEqual([3, 3]);
  });

  it('decodes once: a second dataset reads the frame cache without ffmpeg', async () => {
    const cached = await createNvgestureDataset(squareOptions({ ffmpegPath: join(dir, 'no-such-ffmpeg') }));
    const a = [...ds.batches('test', { batchSize: 3, shuffle: false, augment: false, seed: 0, epoch: 1 })][0]!;
    const b = [...cached.batches('test', { batchSize: 3, shuffle: false, augment: false, seed: 0, epoch: 1 })][0]!;
    expect(Array.from(b.inputs[0])).toEqual(Array.from(a.inputs[0]));
    expect(Array.from(b.inputs[1])).toEqual(Array.from(a.inputs[1]));
  });

  it('a missing ffmpeg is a clear error when decoding is needed', async () => {
    const missing = join(dir, 'no-such-ffmpeg');
    const attempt = createNvgestureDataset(squareOptions({ cacheDir: join(dir, 'cache-empty'), ffmpegPath: missing }));
    await expect(attempt).rejects.toThrow(FfmpegNotFoundError);
    // A DataFileError by name: the CLI exits with `missingData`, which orchestration does not retry.
    await expect(attempt).rejects.toMatchObject({ name: 'DataFileError' });
    await expect(attempt).rejects.toThrow(new RegExp(`'${missing}' could not be run.*apt-get install ffmpeg.*MMSWEEP_FFMPEG`));
  });

  it('an unreadable or missing clip is an error naming the file and its list line', async () => {
    const broken = join(dir, 'broken');
    cpSync(square.root, broken, { recursive: true });
    const victim = square.test[1]!;
    const file = join(broken, victim.path, 'sk_color.avi');
    writeFileSync(file, 'this is not a video');
    const attempt = createNvgestureDataset(squareOptions({ root: broken, cacheDir: join(dir, 'cache-broken') }));
    await expect(attempt).rejects.toThrow(VideoDecodeError);
    await expect(attempt).rejects.toThrow(file);
    await expect(attempt).rejects.toThrow(/nvgesture_test_correct_cvpr2016_v2\.lst:2/);
    rmSync(file);
    await expect(createNvgestureDataset(squareOptions({ root: broken, cacheDir: join(dir, 'cache-broken') }))).rejects.toThrow(/does not exist.*\.lst:2/);
  });

  it('a missing list names the file and what the root must hold', async () => {
    await expect(createNvgestureDataset(squareOptions({ root: join(dir, 'nowhere') }))).rejects.toThrow(/nvgesture_train_correct_cvpr2016_v2\.lst.*nvGesture_v1/);
  });
});

describe('NVGesture resize of non-square videos', () => {
  it('resizes 32×24 frames to resizeSize² (aspect not kept), crops imageSize², values in [−1, 1]', async () => {
    const ds = await createNvgestureDataset({ root: wide.root, modalities: 'distinct', frames: 8, imageSize: 16, splitSeed: 0, cacheDir: join(dir, 'cache'), log });
    expect(ds.resizeSize).toBe(18); // round(16 · 256/224)
    const [b] = [...ds.batches('test', { batchSize: 2, shuffle: false, augment: false, seed: 0, epoch: 1 })];
    expect(b!.inputs[0].length).toBe(2 * 8 * 16 * 16 * 3);
    expect(b!.inputs[1].length).toBe(2 * 8 * 16 * 16);
    expect(Math.min(...b!.inputs[0])).toBeGreaterThanOrEqual(-1);
    expect(Math.max(...b!.inputs[0])).toBeLessThanOrEqual(1);
    // R is constant within a frame (the frame code), so any interpolation keeps it (±1 level of rounding).
    const clip = ds.clip('test', 0);
    const fx = wide.test.find((c) => c.path === clip.entry.path)!;
    const w = ds.window('test', 0, false, 0, 1);
    for (let t = 0; t < 8; t++) {
      const f = w.frameStart + t;
      if (f < 0 || f >= clip.frames.color!) continue;
      const expected = unit(rgbPixel(fx.clip, fx.label, fx.colorStart + f, 0, 0)[0]);
      const got = b!.inputs[0][((t * 16 + 5) * 16 + 7) * 3]!;
      expect(Math.abs(got - expected)).toBeLessThanOrEqual(1 / 127.5 + 1e-6);
    }
    // B grows with y (20 + 6y): after the vertical resize 24 → 18 rows, B still increases down the crop.
    const column = Array.from({ length: 16 }, (_, y) => b!.inputs[0][((0 * 16 + y) * 16 + 3) * 3 + 2]!);
    for (let y = 1; y < 16; y++) expect(column[y]!).toBeGreaterThan(column[y - 1]!);
  });
});
