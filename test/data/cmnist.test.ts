import { mkdtempSync, openSync, readFileSync, rmSync, writeSync, closeSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  classColors,
  CMNIST_GENERATOR_VERSION,
  CMNIST_PALETTES,
  CmnistDataset,
  COLORED_MEAN,
  COLORED_STD,
  createDataset,
  generateColoredSplit,
  GRAY_MEAN,
  GRAY_STD,
  HUE_WHEEL_SATURATION,
  hsvToRgb,
  loadMnist,
  type CreateDatasetOptions,
} from '../../src/data/index.ts';
import { coloredCachePath, loadColoredSplit } from '../../src/data/cmnist.ts';
import type { CmnistPaletteName, DatasetSpec, Modalities } from '../../src/spec/trial.ts';

const cacheDir = mkdtempSync(join(tmpdir(), 'mmsweep-cmnist-'));
afterAll(() => rmSync(cacheDir, { recursive: true, force: true }));
const logs: string[] = [];
const spec = (o: Partial<{ sigma2: number; palette: CmnistPaletteName; paletteSeed: number; dataSeed: number; heldOutValidation: number }> = {}): DatasetSpec => ({
  name: 'cmnist',
  sigma2: 0.02,
  palette: 'hue-wheel',
  paletteSeed: 0,
  dataSeed: 0,
  ...o,
});
/**
 * Nearest-mean agreement of jittered hue-wheel colors with their class at σ² = 0.02, S = 0.6: NumPy Monte Carlo,
 * 10⁶ draws of clip(mean_k + N(0, 0.02·I₃), 0, 1) with k uniform, means from Python's colorsys.hsv_to_rgb.
 */
const AGREEMENT_BY_MONTE_CARLO = 0.735;
/** sha256 of the hue-wheel val split (images, then mean-color classes) at σ² 0.02, seed 0: a regression pin. */
const HUE_WHEEL_DIGEST = '0e7b996dc67568178b3e53a385ebb0ebc6564f5bb63c158d9f38c97aace8228f';
/** The default coloring of these tests (σ² 0.02, hue-wheel, identity permutation). */
const HUE = { sigma2: 0.02, palette: 'hue-wheel', paletteSeed: 0 } as const;
const CORNERS = { sigma2: 0.02, palette: 'rgb-corners', paletteSeed: 0 } as const;
const make = async (modalities: Modalities, o: Partial<CreateDatasetOptions> = {}, s = spec()) =>
  (await createDataset(s, { modalities, cacheDir, log: (l) => logs.push(l), ...o })) as CmnistDataset;

/** Byte equality of two typed arrays (vitest's deep equality is far too slow on arrays of millions of elements). */
function sameBytes(a: ArrayBufferView, b: ArrayBufferView): boolean {
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
}

const paletteOf = (name: CmnistPaletteName) => CMNIST_PALETTES[name].map((p) => p.rgb);
const palette = paletteOf('rgb-corners');

/**
 * The hue-wheel palette computed by hand, independently of src/data: the fully saturated colors of the hues
 * 0°, 36°, …, 324° on the hexcone (each 60° sector moves one channel linearly between 0 and 1), then
 * RGB = 1 − S·(1 − c) for value 1 and saturation S.
 */
const SATURATED_HUES: [number, number, number][] = [
  [1, 0, 0], [1, 0.6, 0], [0.8, 1, 0], [0.2, 1, 0], [0, 1, 0.4], [0, 1, 1], [0, 0.4, 1], [0.2, 0, 1], [0.8, 0, 1], [1, 0, 0.6],
];
const hueWheelByHand = (s: number) => SATURATED_HUES.map((c) => c.map((v) => 1 - s * (1 - v)));

function nearestPaletteEntry(r: number, g: number, b: number, palette: readonly (readonly number[])[]): number {
  let best = -1;
  let bestDistance = Infinity;
  palette.forEach((p, k) => {
    const d = (p[0] - r) ** 2 + (p[1] - g) ** 2 + (p[2] - b) ** 2;
    if (d < bestDistance) [best, bestDistance] = [k, d];
  });
  return best;
}

/**
 * Fraction of a split's images whose digit color — recovered from the stored bytes alone, by least squares
 * colored ≈ gray × c over the 784 pixels — is nearest to the palette color of the image's own label.
 */
function labelColorAgreement(ds: CmnistDataset, split: 'train' | 'val' | 'test'): number {
  const labels = ds.labels(split);
  const palette = paletteOf(ds.params.palette);
  let agree = 0;
  for (let i = 0; i < labels.length; i++) {
    const colored = ds.sampleBytes(split, i, 0);
    const gray = ds.sampleBytes(split, i, 1);
    let gg = 0, r = 0, g = 0, b = 0;
    for (let p = 0; p < 784; p++) {
      const v = gray[p];
      gg += v * v;
      r += v * colored[3 * p];
      g += v * colored[3 * p + 1];
      b += v * colored[3 * p + 2];
    }
    if (nearestPaletteEntry(r / gg, g / gg, b / gg, palette) === labels[i]) agree++;
  }
  return agree / labels.length;
}

describe('colored-and-gray MNIST', () => {
  let ds: CmnistDataset;
  let corners: CmnistDataset;
  beforeAll(async () => {
    ds = await make('distinct');
    corners = await make('distinct', {}, spec({ palette: 'rgb-corners' }));
  });

  it('has the paper-spec shapes, splits and palette', () => {
    expect(ds.name).toBe('cmnist');
    expect(ds.modalities).toEqual([
      { name: 'colored', shape: [28, 28, 3] },
      { name: 'gray', shape: [28, 28, 1] },
    ]);
    expect(ds.numClasses).toBe(10);
    expect([ds.size('train'), ds.size('val'), ds.size('test')]).toEqual([60_000, 10_000, 10_000]);
    expect(sameBytes(ds.labels('train'), Int32Array.from(loadMnist('train').labels))).toBe(true);
    expect(sameBytes(ds.labels('test'), ds.labels('val'))).toBe(true);
    // The default palette is the hue wheel (saturation 0.6, the calibrated value), equal to the hand computation.
    expect(ds.params.palette).toBe('hue-wheel');
    expect(HUE_WHEEL_SATURATION).toBe(0.6);
    const byHand = hueWheelByHand(HUE_WHEEL_SATURATION);
    ds.classColors.forEach((rgb, k) => rgb.forEach((v, c) => expect(v).toBeCloseTo(byHand[k][c], 12)));
    // rgb-corners (generator version 1's palette): pairwise distance ≥ 1/√2, every entry visible on black.
    expect(palette).toEqual([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1], [1, 1, 1], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]);
    for (let a = 0; a < 10; a++) {
      expect(Math.max(...palette[a])).toBeGreaterThanOrEqual(0.5);
      for (let b = a + 1; b < 10; b++) expect(Math.hypot(...palette[a].map((v, c) => v - palette[b][c]))).toBeGreaterThanOrEqual(Math.SQRT1_2 - 1e-12);
    }
    expect(corners.classColors).toEqual(palette);
    expect(classColors('rgb-corners', 0)).toEqual(palette);
    const permuted = classColors('rgb-corners', 5);
    expect(permuted).not.toEqual(palette);
    expect([...permuted].sort()).toEqual([...palette].sort());
    // The same seed permutes both palettes alike.
    const hues = paletteOf('hue-wheel');
    const permutedHues = classColors('hue-wheel', 5);
    permuted.forEach((rgb, k) => expect(permutedHues[k]).toEqual(hues[palette.findIndex((p) => p.every((v, c) => v === rgb[c]))]));
  });

  it('computes HSV hues as colorsys does', () => {
    // Python 3.11: [colorsys.hsv_to_rgb(h, s, v) for (h, s, v) in the cases below], rounded to 12 digits.
    const cases: [number, number, number, [number, number, number]][] = [
      [0.1, 0.5, 1, [1, 0.8, 0.5]],
      [0.7, 0.3, 0.9, [0.684, 0.63, 0.9]],
      [0.95, 1, 0.6, [0.6, 0, 0.18]],
    ];
    for (const [h, s, v, rgb] of cases) hsvToRgb(360 * h, s, v).forEach((x, c) => expect(x).toBeCloseTo(rgb[c], 10));
  });

  it('paints each digit as round(gray × color) and normalises both modalities per §3.1', () => {
    const colors = ds.colors('train');
    const i = 123;
    const gray = ds.sampleBytes('train', i, 1);
    const colored = ds.sampleBytes('train', i, 0);
    for (let p = 0; p < 784; p++) for (let c = 0; c < 3; c++) expect(colored[3 * p + c]).toBe(Math.round(gray[p] * colors[3 * i + c]));
    const [batch] = ds.batches('train', { batchSize: 4, shuffle: false, augment: false, seed: 0, epoch: 1, startBatch: 30 }); // positions 120…123
    expect(Array.from(batch.indices)).toEqual([120, 121, 122, 123]);
    const k = 3;
    for (const p of [0, 300, 406, 783]) {
      expect(batch.inputs[1][k * 784 + p]).toBeCloseTo((gray[p] / 255 - GRAY_MEAN) / GRAY_STD, 5);
      for (let c = 0; c < 3; c++) expect(batch.inputs[0][k * 2352 + 3 * p + c]).toBeCloseTo((colored[3 * p + c] / 255 - COLORED_MEAN[c]) / COLORED_STD[c], 5);
    }
    // Background pixel (0,0) of every MNIST digit is 0: (0 − 0.1307)/0.3081 = −0.424213.
    expect(batch.inputs[1][0]).toBeCloseTo(-0.424213, 5);
  });

  it('ties color to label in train as σ² implies, and not in test (rgb-corners)', () => {
    const ds = corners;
    // σ = √0.02 ≈ 0.141; neighbouring palette entries are ≥ 1/√2 apart, so a color is misassigned only when its
    // jitter crosses a bisecting plane d/2 ≈ 0.354 ≈ 2.5σ away: Φ(−2.5) ≈ 0.6 % per neighbour at that distance
    // (2 for the primaries, 5 for olive/purple/teal; clipping at the cube's faces helps the corner colors).
    // A Monte Carlo of this model gives 98.6 % averaged over classes, and the agreement falls with σ²
    // (86.9 % at σ² = 0.05). Test colors are drawn independently of the label: ≈ 1/10 × 0.986 + 9/10 × ~0.5 %.
    const train = labelColorAgreement(ds, 'train');
    const test = labelColorAgreement(ds, 'test');
    expect(train).toBeGreaterThan(0.97);
    expect(train).toBeLessThan(0.995);
    expect(test).toBeGreaterThan(0.07);
    expect(test).toBeLessThan(0.13);
    // Test mean-color classes are uniform and independent of the label.
    const meanClass = ds.meanColorClass('test');
    const labels = ds.labels('test');
    let same = 0;
    const counts = new Array(10).fill(0);
    meanClass.forEach((k, i) => {
      counts[k]++;
      if (k === labels[i]) same++;
    });
    for (const c of counts) expect(Math.abs(c - 1000)).toBeLessThan(150); // sd ≈ 30
    expect(Math.abs(same / 10_000 - 0.1)).toBeLessThan(0.015);
    expect(sameBytes(ds.meanColorClass('train'), loadMnist('train').labels)).toBe(true);
  });

  it('ties color to label in train as σ² implies (hue-wheel)', () => {
    // Nearest-mean color agreement by Monte Carlo (NumPy, 10⁶ draws of clip(mean + N(0, σ²I₃), 0, 1), label
    // uniform): AGREEMENT_BY_MONTE_CARLO at σ² = 0.02 for this palette. Test colors are drawn independently of
    // the label, so there the agreement is ≈ 1/10 whatever the palette.
    const train = labelColorAgreement(ds, 'train');
    expect(train).toBeGreaterThan(AGREEMENT_BY_MONTE_CARLO - 0.01);
    expect(train).toBeLessThan(AGREEMENT_BY_MONTE_CARLO + 0.01);
    const test = labelColorAgreement(ds, 'test');
    expect(test).toBeGreaterThan(0.085);
    expect(test).toBeLessThan(0.115);
  });

  it('jitters each channel with variance σ² around the class mean', () => {
    // Olive (0.5, 0.5, 0) sits 3.5σ from the faces in R and G: clipping is negligible there.
    const colors = corners.colors('train');
    const labels = corners.labels('train');
    let n = 0, sum = 0, sumSq = 0;
    for (let i = 0; i < labels.length; i++) {
      if (labels[i] !== 7) continue;
      for (const c of [0, 1]) {
        const d = colors[3 * i + c] - 0.5;
        sum += d;
        sumSq += d * d;
        n++;
      }
    }
    expect(Math.abs(sum / n)).toBeLessThan(0.005);
    expect(sumSq / n).toBeGreaterThan(0.02 * 0.95);
    expect(sumSq / n).toBeLessThan(0.02 * 1.05);
  });

  it('is deterministic in its seeds and caches byte-identical arrays', () => {
    const gray = loadMnist('test');
    const fresh = generateColoredSplit(gray, 'val', HUE, 0);
    const cached = ds.sampleBytes('val', 0, 0);
    expect(sameBytes(fresh.images.subarray(0, 2352), cached)).toBe(true);
    expect(sameBytes(loadColoredSplit('val', HUE, 0, { cacheDir, log: (l) => logs.push(l) }).images, fresh.images)).toBe(true);
    const otherSeed = generateColoredSplit(gray, 'val', HUE, 1);
    expect(sameBytes(otherSeed.meanColorClass, fresh.meanColorClass)).toBe(false);
    let differentColors = 0;
    for (let i = 0; i < fresh.colors.length; i++) if (fresh.colors[i] !== otherSeed.colors[i]) differentColors++;
    expect(differentColors).toBeGreaterThan(0.9 * fresh.colors.length);
    // σ² scales the same jitter directions: a different σ² changes the colors but not the class draws.
    const wider = generateColoredSplit(gray, 'val', { ...HUE, sigma2: 0.05 }, 0);
    expect(sameBytes(wider.meanColorClass, fresh.meanColorClass)).toBe(true);
    expect(sameBytes(wider.images, fresh.images)).toBe(false);
    // So does the palette: same class draws, other colors, another cache file.
    const cornersSplit = generateColoredSplit(gray, 'val', CORNERS, 0);
    expect(sameBytes(cornersSplit.meanColorClass, fresh.meanColorClass)).toBe(true);
    expect(sameBytes(cornersSplit.images, fresh.images)).toBe(false);
    expect(coloredCachePath(cacheDir, 'val', CORNERS, 0)).not.toBe(coloredCachePath(cacheDir, 'val', HUE, 0));
    expect(() => generateColoredSplit(gray, 'val', { ...HUE, palette: 'sepia' as CmnistPaletteName }, 0)).toThrow(
      "unknown cmnist palette 'sepia'; known palettes: hue-wheel, rgb-corners",
    );
  });

  it('keeps generating the pinned bytes of this generator version', () => {
    // Cached files are keyed by the generator version: a change to the generated bytes must bump it. If this
    // digest changes on purpose, bump CMNIST_GENERATOR_VERSION and pin the new digest.
    expect(CMNIST_GENERATOR_VERSION).toBe(2);
    const digestOf = (coloring: typeof HUE | typeof CORNERS) => {
      const split = generateColoredSplit(loadMnist('test'), 'val', coloring, 0);
      return createHash('sha256').update(split.images).update(split.meanColorClass).digest('hex');
    };
    expect(digestOf(HUE)).toBe(HUE_WHEEL_DIGEST);
    // rgb-corners reproduces generator version 1's bytes exactly (the digest pinned under version 1).
    expect(digestOf(CORNERS)).toBe('1b0c3220533233be08a639f4866d2a3913e7f2c58202fade661d48758d03913f');
  });

  it('regenerates a corrupt cache file and says so', () => {
    const file = coloredCachePath(cacheDir, 'val', HUE, 0);
    const before = readFileSync(file);
    const fd = openSync(file, 'r+');
    writeSync(fd, Buffer.from([before[before.length - 5000] ^ 0xff]), 0, 1, before.length - 5000);
    closeSync(fd);
    logs.length = 0;
    const again = loadColoredSplit('val', HUE, 0, { cacheDir, log: (l) => logs.push(l) });
    expect(logs.join('\n')).toContain(`cache file ${file} is invalid (checksum mismatch); regenerating it`);
    expect(logs.join('\n')).toMatch(/generated val colors/);
    expect(readFileSync(file).equals(before)).toBe(true);
    expect(sameBytes(again.images, generateColoredSplit(loadMnist('test'), 'val', HUE, 0).images)).toBe(true);
    // A healthy file loads silently.
    logs.length = 0;
    loadColoredSplit('val', HUE, 0, { cacheDir, log: (l) => logs.push(l) });
    expect(logs).toEqual([]);
  });

  it('recolors the test split from a separate seed when asked', async () => {
    const separate = await make('distinct', { testColorSeed: 9 });
    expect(sameBytes(separate.labels('test'), separate.labels('val'))).toBe(true);
    expect(sameBytes(separate.meanColorClass('test'), separate.meanColorClass('val'))).toBe(false);
    expect(existsSync(coloredCachePath(cacheDir, 'test', HUE, 9))).toBe(true);
    expect(labelColorAgreement(separate, 'test')).toBeLessThan(0.13);
  });
});

describe('duplicated controls, subsets and other datasets', () => {
  it('duplicate-m1 feeds gray to both branches without generating colors', async () => {
    const dup = await make('duplicate-m1', {}, spec({ dataSeed: 77 }));
    expect(dup.modalities).toEqual([
      { name: 'gray', shape: [28, 28, 1] },
      { name: 'gray', shape: [28, 28, 1] },
    ]);
    expect(existsSync(coloredCachePath(cacheDir, 'train', HUE, 77))).toBe(false);
    expect(() => dup.colors('train')).toThrow(/no colored images/);
    const [b] = dup.batches('val', { batchSize: 3, shuffle: true, augment: false, seed: 1, epoch: 1 });
    expect(sameBytes(b.inputs[0], b.inputs[1])).toBe(true);
    expect(b.inputs[0][0]).toBeCloseTo((loadMnist('test').images[b.indices[0] * 784] / 255 - GRAY_MEAN) / GRAY_STD, 5);
  });

  it('duplicate-m0 feeds the colored digit to both branches', async () => {
    const dup = await make('duplicate-m0');
    expect(dup.modalities.map((m) => m.name)).toEqual(['colored', 'colored']);
    expect(dup.modalities[1].shape).toEqual([28, 28, 3]);
    const [b] = dup.batches('train', { batchSize: 2, shuffle: true, augment: false, seed: 1, epoch: 1 });
    expect(sameBytes(b.inputs[0], b.inputs[1])).toBe(true);
    expect(b.inputs[0].length).toBe(2 * 2352);
    expect(sameBytes(dup.sampleBytes('train', 5, 1), dup.sampleBytes('train', 5, 0))).toBe(true);
  });

  it('subsets: the first n of a seeded shuffle, val and test alike', async () => {
    const sub = await make('distinct', { subset: { train: 4000, val: 500, test: 500 } });
    const full = await make('distinct');
    expect([sub.size('train'), sub.size('val'), sub.size('test')]).toEqual([4000, 500, 500]);
    const sources = Array.from({ length: 4000 }, (_, i) => sub.sourceIndexOf('train', i));
    expect(new Set(sources).size).toBe(4000);
    expect(sources[3999]).toBeGreaterThan(50_000); // spread over the whole split, not its head
    expect(sameBytes(sub.sampleBytes('train', 10, 0), full.sampleBytes('train', sources[10], 0))).toBe(true);
    expect(sub.labels('train')[10]).toBe(full.labels('train')[sources[10]]);
    expect(sameBytes(sub.labels('val'), sub.labels('test'))).toBe(true);
    // Class balance survives the shuffle (≈ 400 per class, sd ≈ 19).
    const counts = sub.labels('train').reduce((c, l) => (c[l]++, c), new Array(10).fill(0));
    for (const c of counts) expect(Math.abs(c - 400)).toBeLessThan(100);
    const again = await make('distinct', { subset: { train: 4000 } });
    expect(sameBytes(again.labels('train'), sub.labels('train'))).toBe(true);
    expect(again.size('val')).toBe(10_000);
    const otherSeed = await make('duplicate-m1', { subset: { train: 4000 } }, spec({ dataSeed: 3 }));
    expect(sameBytes(otherSeed.labels('train'), sub.labels('train'))).toBe(false);
    // Every index once per epoch on the subset, too.
    const seen = new Int32Array(4000);
    for (const b of sub.batches('train', { batchSize: 128, shuffle: true, augment: false, seed: 0, epoch: 2 })) for (const i of b.indices) seen[i]++;
    expect(seen.every((v) => v === 1)).toBe(true);
    await expect(make('distinct', { subset: { train: 60_001 } })).rejects.toThrow(/subset.train = 60001 exceeds the 60000 examples/);
  });
});

describe('held-out validation (option; the default stays val = test, paper-spec A1)', () => {
  it('validates on MNIST training digits held out of training, painted with random colors; test is unchanged', async () => {
    const held = await make('distinct', {}, spec({ heldOutValidation: 5000 }));
    const full = await make('distinct');
    expect([held.size('train'), held.size('val'), held.size('test')]).toEqual([55_000, 5000, 10_000]);
    // Checked against the raw MNIST arrays: every val digit is a training digit that train no longer holds.
    const mnistTrain = loadMnist('train');
    const trainSources = new Set(Array.from({ length: 55_000 }, (_, i) => held.sourceIndexOf('train', i)));
    const valGray = Array.from({ length: 5000 }, (_, i) => held.sampleBytes('val', i, 1));
    const bytesOf = (src: number) => mnistTrain.images.subarray(src * 784, (src + 1) * 784);
    const valSources: number[] = [];
    for (let src = 0; src < 60_000; src++) if (!trainSources.has(src)) valSources.push(src);
    expect(valSources.length).toBe(5000);
    valSources.forEach((src, i) => {
      if (i % 97 === 0) expect(sameBytes(valGray[i]!, bytesOf(src))).toBe(true);
    });
    expect(Array.from(held.labels('val'))).toEqual(valSources.map((src) => mnistTrain.labels[src]));
    // The colored val digit is its own gray digit painted (same strokes), with a color unrelated to the label.
    expect(sameBytes(held.sampleBytes('val', 0, 1), bytesOf(valSources[0]!))).toBe(true);
    expect(labelColorAgreement(held, 'val')).toBeLessThan(0.13);
    // Training colors still follow their class: the palette's Monte Carlo agreement (hue-wheel, σ² 0.02).
    const trainAgreement = labelColorAgreement(held, 'train');
    expect(trainAgreement).toBeGreaterThan(AGREEMENT_BY_MONTE_CARLO - 0.01);
    expect(trainAgreement).toBeLessThan(AGREEMENT_BY_MONTE_CARLO + 0.01);
    // Test: the default's test digits and colors, byte for byte.
    expect(sameBytes(held.labels('test'), full.labels('test'))).toBe(true);
    expect(sameBytes(held.sampleBytes('test', 123, 0), full.sampleBytes('test', 123, 0))).toBe(true);
    // Selection and test now differ; by default they coincide.
    expect(sameBytes(full.labels('val'), full.labels('test'))).toBe(true);
    expect(sameBytes(held.labels('val').subarray(0, 5000), full.labels('test').subarray(0, 5000))).toBe(false);
    // A train subset is drawn from the digits left for training only.
    const sub = await make('distinct', { subset: { train: 3000, val: 400 } }, spec({ heldOutValidation: 5000 }));
    for (let i = 0; i < 3000; i++) expect(trainSources.has(sub.sourceIndexOf('train', i))).toBe(true);
    expect(sub.size('val')).toBe(400);
    await expect(make('distinct', { subset: { train: 55_001 } }, spec({ heldOutValidation: 5000 }))).rejects.toThrow(/subset.train = 55001 exceeds the 55000 examples/);
  });
});
