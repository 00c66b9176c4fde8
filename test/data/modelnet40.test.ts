import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { flipHorizontal, readPngRgb, resizeBilinear } from '../../src/data/image.ts';
import {
  IMAGENET_MEAN,
  IMAGENET_STD,
  MODELNET40_CLASSES,
  Modelnet40Dataset,
  modelnet40ValidationSplit,
  modelnet40ViewFile,
  type Modelnet40Options,
} from '../../src/data/modelnet40.ts';
import { createDataset } from '../../src/data/index.ts';
import { specFromFlags } from '../../src/cli/commands/train.ts';
import { PythonRandom } from '../../src/data/python-random.ts';
import type { HostBatch } from '../../src/data/types.ts';
import {
  encodePng,
  FIXTURE_MARKER_CLASS,
  FIXTURE_MARKER_OBJECT,
  FIXTURE_MARKER_VIEW,
  fixtureImage,
  fixtureObjectName,
  writeModelnet40Fixture,
} from '../fixtures/modelnet40.ts';

let workDir: string;
let root: string;
let cacheDir: string;
const SIZE = 16;

beforeAll(() => {
  workDir = mkdtempSync(join(tmpdir(), 'mmsweep-mn40-'));
  root = join(workDir, 'modelnet40_images_new_12x');
  cacheDir = join(workDir, 'cache');
  // 3 classes × 5 training objects → 15 in the training folder: val = 3, train = 12; test = 3 × 2.
  writeModelnet40Fixture(root, { classes: 3, trainPerClass: 5, testPerClass: 2, size: SIZE });
});

afterAll(() => rmSync(workDir, { recursive: true, force: true }));

function open(options: Partial<Modelnet40Options> = {}): Modelnet40Dataset {
  return new Modelnet40Dataset({ root, cacheDir, imageSize: SIZE, log: () => {}, ...options });
}

/** Back from normalised floats to the bytes of pixel (y, x), channel c, of sample k. */
function byteAt(x: Float32Array, k: number, size: number, y: number, col: number, c = 0): number {
  const v = x[((k * size + y) * size + col) * 3 + c]!;
  return Math.round((v * IMAGENET_STD[c]! + IMAGENET_MEAN[c]!) * 255);
}

function collect(batches: Iterable<HostBatch>): HostBatch[] {
  return [...batches];
}

/** `src` (SIZE×SIZE×3 floats) mirrored left-right. */
function mirrored(src: Float32Array): Float32Array {
  const out = new Float32Array(src.length);
  for (let y = 0; y < SIZE; y++) for (let x = 0; x < SIZE; x++) for (let c = 0; c < 3; c++) out[(y * SIZE + SIZE - 1 - x) * 3 + c] = src[(y * SIZE + x) * 3 + c]!;
  return out;
}

/**
 * Over epochs 1…4 of the 12 training samples: branch b of an augmented batch is the unaugmented image flipped
 * exactly when flipDraws says so for view b, for batches of 12 and of 1. Returns the flip combinations seen.
 */
function expectFlipsPerView(ds: Modelnet40Dataset, branches: number): Set<string> {
  const plain = collect(ds.batches('train', { batchSize: 12, shuffle: false, augment: false, seed: 5, epoch: 1 }))[0]!;
  expect(plain.inputs.length).toBe(branches);
  const sampleSize = SIZE * SIZE * 3;
  const combos = new Set<string>();
  for (let epoch = 1; epoch <= 4; epoch++) {
    const aug = collect(ds.batches('train', { batchSize: 12, shuffle: false, augment: true, seed: 5, epoch }))[0]!;
    const single = collect(ds.batches('train', { batchSize: 1, shuffle: false, augment: true, seed: 5, epoch }));
    for (let k = 0; k < 12; k++) {
      const draws = ds.flipDraws('train', 5, epoch, k);
      expect(draws.length).toBe(branches);
      combos.add(draws.join(','));
      for (let b = 0; b < branches; b++) {
        const got = aug.inputs[b]!.subarray(k * sampleSize, (k + 1) * sampleSize);
        const base = plain.inputs[b]!.subarray(k * sampleSize, (k + 1) * sampleSize);
        expect(Array.from(got)).toEqual(Array.from(draws[b] ? mirrored(base) : base));
        expect(Array.from(single[k]!.inputs[b]!)).toEqual(Array.from(got));
      }
    }
  }
  return combos;
}

describe('CPython random (validation split seed)', () => {
  it('reproduces random.Random(seed) bit streams and shuffles printed by CPython 3.11', () => {
    const r = new PythonRandom(10);
    expect([r.getrandbits(32), r.getrandbits(32), r.getrandbits(32)]).toEqual([2454155475, 139951793, 1842064464]);
    const big = new PythonRandom(2 ** 40 + 5); // two-word seed
    expect([big.getrandbits(32), big.getrandbits(32)]).toEqual([2166296868, 2220160828]);
    expect(new PythonRandom(10).shuffle([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])).toEqual([5, 2, 7, 1, 8, 4, 3, 6, 0, 9]);
    const hundred = new PythonRandom(3).shuffle(Array.from({ length: 100 }, (_, i) => i));
    expect(hundred.slice(0, 10)).toEqual([35, 41, 45, 4, 76, 12, 0, 64, 42, 11]);
  });

  it('splits the real 9,843 training objects into 1,968 validation / 7,875 training as the code does', () => {
    const { val, train } = modelnet40ValidationSplit(9843, 10);
    expect(val.length).toBe(1968);
    expect(train.length).toBe(7875);
    expect(Array.from(val.slice(0, 5))).toEqual([6397, 347, 4145, 8623, 7479]);
    expect(Array.from(val.slice(1966))).toEqual([1791, 1460]);
    expect(Array.from(train.slice(0, 2))).toEqual([2330, 8251]);
    expect(Array.from(train.slice(-2))).toEqual([533, 9361]);
  });
});

describe('image helpers', () => {
  it('resizes with the triangle filter (hand-computed values)', () => {
    // Rows [0, 70, 140, 210] → 2 wide: taps 3/7, 3/7, 1/7 and 1/7, 3/7, 3/7.
    const row = [0, 70, 140, 210];
    const data = new Uint8Array(4 * 4 * 3);
    for (let y = 0; y < 4; y++) for (let x = 0; x < 4; x++) data.fill(row[x]!, (y * 4 + x) * 3, (y * 4 + x) * 3 + 3);
    const small = resizeBilinear({ width: 4, height: 4, data }, 2, 2);
    expect(Array.from(small.data.filter((_, i) => i % 3 === 0))).toEqual([50, 160, 50, 160]);
    // Enlarging 2 → 4 is linear interpolation with edge clamping: a, .75a+.25b, .25a+.75b, b.
    const two = new Uint8Array([0, 0, 0, 100, 100, 100]);
    const wide = resizeBilinear({ width: 2, height: 1, data: two }, 4, 1);
    expect(Array.from(wide.data.filter((_, i) => i % 3 === 0))).toEqual([0, 25, 75, 100]);
  });

  it('mirrors rows left-right', () => {
    const src = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]); // 2×2×3
    const out = new Uint8Array(12);
    flipHorizontal(src, out, 2, 2, 3);
    expect(Array.from(out)).toEqual([4, 5, 6, 1, 2, 3, 10, 11, 12, 7, 8, 9]);
  });

  it('decodes gray and RGB PNGs into three channels', () => {
    const rgb = fixtureImage(2, 3, 4, 8, 'rgb');
    const gray = fixtureImage(2, 3, 4, 8, 'gray');
    writeFileSync(join(workDir, 'rgb.png'), encodePng(rgb, 8, 'rgb'));
    writeFileSync(join(workDir, 'gray.png'), encodePng(gray, 8, 'gray'));
    expect(Array.from(readPngRgb(join(workDir, 'rgb.png')).data)).toEqual(Array.from(rgb));
    const decodedGray = readPngRgb(join(workDir, 'gray.png'));
    expect(decodedGray.width).toBe(8);
    expect(Array.from(decodedGray.data)).toEqual(Array.from(gray));
  });
});

describe('ModelNet40 loader on the generated fixture', () => {
  it('has the 40 classes in the published order', () => {
    expect(MODELNET40_CLASSES.length).toBe(40);
    expect(MODELNET40_CLASSES.slice(0, 3)).toEqual(['airplane', 'bathtub', 'bed']);
    expect(MODELNET40_CLASSES[23]).toBe('night_stand');
    expect(MODELNET40_CLASSES[39]).toBe('xbox');
  });

  it('splits the training folder with random.Random(10) and keeps the test folder', () => {
    const ds = open();
    expect(ds.numClasses).toBe(40);
    expect([ds.size('train'), ds.size('val'), ds.size('test')]).toEqual([12, 3, 6]);
    // Dataset order of the training folder: class order, then objects sorted; CPython's shuffle of range(15):
    const shuffled = [4, 5, 10, 1, 2, 8, 12, 11, 3, 13, 14, 7, 6, 0, 9];
    const folderOrder = [0, 1, 2].flatMap((c) => [1, 2, 3, 4, 5].map((n) => fixtureObjectName(c, n)));
    expect(ds.samples('val').map((s) => s.object)).toEqual(shuffled.slice(0, 3).map((i) => folderOrder[i]));
    expect(ds.samples('train').map((s) => s.object)).toEqual(shuffled.slice(3).map((i) => folderOrder[i]));
    expect(ds.samples('test').map((s) => s.object)).toEqual([0, 1, 2].flatMap((c) => [6, 7].map((n) => fixtureObjectName(c, n))));
    expect(Array.from(ds.labels('val'))).toEqual(shuffled.slice(0, 3).map((i) => Math.floor(i / 5)));
    expect(Array.from(ds.labels('test'))).toEqual([0, 0, 1, 1, 2, 2]);
  });

  it('feeds view v001 to branch 0 and v007 to branch 1, with the right labels and objects', () => {
    const ds = open();
    expect(ds.modalities.map((m) => m.name)).toEqual(['front', 'rear']);
    expect(ds.modalities[0].shape).toEqual([SIZE, SIZE, 3]);
    const [batch] = collect(ds.batches('test', { batchSize: 6, shuffle: false, augment: false, seed: 1, epoch: 1 }));
    const samples = ds.samples('test');
    for (let k = 0; k < 6; k++) {
      const objectNumber = Number(samples[k]!.object.slice(-4));
      expect(byteAt(batch!.inputs[0], k, SIZE, 0, 0)).toBe(FIXTURE_MARKER_CLASS(batch!.y[k]!));
      expect(byteAt(batch!.inputs[0], k, SIZE, 0, 1)).toBe(FIXTURE_MARKER_OBJECT(objectNumber));
      expect(byteAt(batch!.inputs[0], k, SIZE, 0, 2)).toBe(FIXTURE_MARKER_VIEW(0));
      expect(byteAt(batch!.inputs[1], k, SIZE, 0, 2)).toBe(FIXTURE_MARKER_VIEW(6));
      expect(byteAt(batch!.inputs[1], k, SIZE, 0, 1)).toBe(FIXTURE_MARKER_OBJECT(objectNumber));
    }
    // ImageNet normalisation of the marker 255 in each channel.
    for (let c = 0; c < 3; c++) expect(batch!.inputs[0][3 * 3 + c]).toBeCloseTo((1 - IMAGENET_MEAN[c]!) / IMAGENET_STD[c]!, 5);
  });

  it('takes any pair of views and the duplicated-view controls', () => {
    const pair = open({ views: [2, 9] });
    const [b] = collect(pair.batches('val', { batchSize: 3, shuffle: false, augment: false, seed: 1, epoch: 1 }));
    expect(byteAt(b!.inputs[0], 0, SIZE, 0, 2)).toBe(FIXTURE_MARKER_VIEW(2));
    expect(byteAt(b!.inputs[1], 0, SIZE, 0, 2)).toBe(FIXTURE_MARKER_VIEW(9));
    expect(pair.modalities.map((m) => m.name)).toEqual(['v003', 'v010']);
    const dup = open({ modalities: 'duplicate-m1' });
    const [d] = collect(dup.batches('train', { batchSize: 12, shuffle: true, augment: true, seed: 3, epoch: 2 }));
    expect(Array.from(d!.inputs[0])).toEqual(Array.from(d!.inputs[1]));
    expect(byteAt(d!.inputs[0], 0, SIZE, 0, 2) === FIXTURE_MARKER_VIEW(6) || byteAt(d!.inputs[0], 0, SIZE, 0, SIZE - 3) === FIXTURE_MARKER_VIEW(6)).toBe(true);
  });

  it('rejects repeated views, wrong view counts and view indices out of range clearly', () => {
    expect(() => open({ views: [3, 3] })).toThrow(/duplicate-m0/);
    expect(() => open({ views: [0, 12] })).toThrow(/12 is not a view index/);
    expect(() => open({ views: [0] })).toThrow(/two or three view indices.*\[0\]/);
    expect(() => open({ views: [0, 3, 6, 9] })).toThrow(/two or three view indices.*\[0,3,6,9\]/);
  });

  it('is deterministic under a seed and reshuffles per epoch', () => {
    const a = collect(open().batches('train', { batchSize: 5, shuffle: true, augment: true, seed: 7, epoch: 3 }));
    const b = collect(open().batches('train', { batchSize: 5, shuffle: true, augment: true, seed: 7, epoch: 3 }));
    expect(a.map((x) => Array.from(x.indices))).toEqual(b.map((x) => Array.from(x.indices)));
    expect(a.map((x) => Array.from(x.inputs[0]))).toEqual(b.map((x) => Array.from(x.inputs[0])));
    expect(a.map((x) => Array.from(x.inputs[1]))).toEqual(b.map((x) => Array.from(x.inputs[1])));
    const c = collect(open().batches('train', { batchSize: 5, shuffle: true, augment: true, seed: 7, epoch: 4 }));
    expect(c.flatMap((x) => Array.from(x.indices))).not.toEqual(a.flatMap((x) => Array.from(x.indices)));
    expect(a.map((x) => x.size)).toEqual([5, 5, 2]);
  });

  it('flips each view independently, only when augmenting, the same way for any batch size', () => {
    const combos = expectFlipsPerView(open({ subset: {} }), 2);
    // 48 sample-epochs: every combination of (flip front, flip rear) occurs, so the draws are per view.
    expect([...combos].sort()).toEqual(['false,false', 'false,true', 'true,false', 'true,true']);
  });

  it('resizes files of another size to imageSize', () => {
    const ds = open({ imageSize: 8 });
    const [b] = collect(ds.batches('test', { batchSize: 1, shuffle: false, augment: false, seed: 1, epoch: 1 }));
    expect(b!.inputs[0].length).toBe(8 * 8 * 3);
    const src = readPngRgb(modelnet40ViewFile(root, 'airplane', 'test', fixtureObjectName(0, 6), 0));
    const expected = resizeBilinear(src, 8, 8);
    for (let i = 0; i < 8 * 8; i++) expect(byteAt(b!.inputs[0], 0, 8, Math.floor(i / 8), i % 8)).toBe(expected.data[i * 3]);
  });

  it('subsets each split with a seeded choice kept in split order', () => {
    const ds = open({ subset: { train: 5, test: 4 } });
    expect([ds.size('train'), ds.size('val'), ds.size('test')]).toEqual([5, 3, 4]);
    const full = open().samples('train').map((s) => s.object);
    const positions = ds.samples('train').map((s) => full.indexOf(s.object));
    expect(positions).toEqual([...positions].sort((a, b) => a - b));
    expect(open({ subset: { train: 5, test: 4 } }).samples('train')).toEqual(ds.samples('train'));
  });

  it('a subset larger than its split is an error naming the split and its size (it was silently ignored)', () => {
    const sizes = [open().size('train'), open().size('val'), open().size('test')];
    expect(() => open({ subset: { test: sizes[2]! + 1 } })).toThrow(`subset.test = ${sizes[2]! + 1} exceeds the ${sizes[2]} objects of the modelnet40 test split`);
    expect(() => open({ subset: { val: sizes[1]! + 1 } })).toThrow(`subset.val = ${sizes[1]! + 1} exceeds the ${sizes[1]} objects of the modelnet40 val split`);
    expect(open({ subset: { train: sizes[0] } }).size('train')).toBe(sizes[0]); // all of it is fine
  });

  it('caches the folder index as JSON and rebuilds it when the folders change', () => {
    const dir = mkdtempSync(join(workDir, 'idx-'));
    const r = join(dir, 'data');
    writeModelnet40Fixture(r, { classes: 1, trainPerClass: 5, testPerClass: 1, size: 8 });
    const lines: string[] = [];
    const log = (l: string) => lines.push(l);
    new Modelnet40Dataset({ root: r, cacheDir: join(dir, 'cache'), imageSize: 8, log });
    new Modelnet40Dataset({ root: r, cacheDir: join(dir, 'cache'), imageSize: 8, log });
    expect(lines[0]).toMatch(/indexed 6 objects/);
    expect(lines[1]).toMatch(/folder index from .*modelnet40.*\.json/);
    writeModelnet40Fixture(r, { classes: 1, trainPerClass: 10, testPerClass: 1, size: 8 });
    const grown = new Modelnet40Dataset({ root: r, cacheDir: join(dir, 'cache'), imageSize: 8, log });
    expect(lines[2]).toMatch(/indexed 12 objects/); // 10 train + the old and the new test object
    expect(grown.size('train') + grown.size('val')).toBe(10);
  });

  it('names the missing root, class folder or view file and says where to get the data', async () => {
    const missing = join(workDir, 'nowhere');
    expect(() => open({ root: missing })).toThrow(new RegExp(`${missing}: no such directory.*mvcnn-data`, 's'));
    await expect(createDataset({ name: 'modelnet40', views: [0, 6], splitSeed: 10, imageSize: 32 }, { modalities: 'distinct', cacheDir })).rejects.toThrow(
      /no ModelNet40 root given.*--data/s,
    );
    const partial = join(workDir, 'partial');
    writeModelnet40Fixture(partial, { classes: 2, trainPerClass: 5, testPerClass: 1, size: 8, emptyFoldersForOtherClasses: false });
    expect(() => open({ root: partial })).toThrow(/partial\/bed: class folders missing: bed, bench/);
    const subsetOk = open({ root: partial, allowMissingClasses: true, imageSize: 8 });
    expect(subsetOk.numClasses).toBe(40);
    expect(new Set(subsetOk.labels('test'))).toEqual(new Set([0, 1]));
    rmSync(modelnet40ViewFile(partial, 'bathtub', 'test', fixtureObjectName(1, 6), 6));
    expect(() => open({ root: partial, allowMissingClasses: true })).toThrow(/bathtub_0006\.obj\.shaded_v007\.png: view file missing/);
    expect(() => open({ root: partial, allowMissingClasses: true, views: [0, 5] })).not.toThrow();
  });

  it('plugs into createDataset through the TrialSpec root', async () => {
    const ds = await createDataset({ name: 'modelnet40', root, views: [0, 6], splitSeed: 10, imageSize: SIZE }, { modalities: 'duplicate-m0', cacheDir, log: () => {} });
    expect(ds.name).toBe('modelnet40');
    expect(ds.modalities.map((m) => m.name)).toEqual(['front', 'front']);
    expect(ds.size('val')).toBe(3);
  });

  it('takes the root from `mmsweep train --data`', () => {
    expect(specFromFlags({ dataset: 'modelnet40', data: '/data/mn40' }).dataset).toEqual({ name: 'modelnet40', root: '/data/mn40' });
    expect(() => specFromFlags({ dataset: 'cmnist', data: '/data/mn40' })).toThrow(/--data is for modelnet40, nvgesture and cremad/);
  });
});

describe('ModelNet40 with three views (three modalities)', () => {
  const three = (options: Partial<Modelnet40Options> = {}) => open({ views: [0, 4, 8], ...options });

  it('feeds views[k] to branch k: every pixel of every branch is the fixture image of that view', () => {
    const ds = three();
    expect(ds.modalities.map((m) => m.name)).toEqual(['front', 'v005', 'v009']);
    expect(ds.modalities.map((m) => m.shape)).toEqual([[SIZE, SIZE, 3], [SIZE, SIZE, 3], [SIZE, SIZE, 3]]);
    for (const split of ['train', 'val', 'test'] as const) {
      const n = ds.size(split);
      const [batch] = collect(ds.batches(split, { batchSize: n, shuffle: false, augment: false, seed: 1, epoch: 1 }));
      expect(batch!.inputs.length).toBe(3);
      for (const x of batch!.inputs) expect(x.length).toBe(n * SIZE * SIZE * 3);
      const samples = ds.samples(split);
      for (let k = 0; k < n; k++) {
        const classIndex = MODELNET40_CLASSES.indexOf(samples[k]!.className as (typeof MODELNET40_CLASSES)[number]);
        const objectNumber = Number(samples[k]!.object.slice(-4));
        expect(batch!.y[k]).toBe(classIndex);
        for (const [b, view] of [0, 4, 8].entries()) {
          const expected = fixtureImage(classIndex, objectNumber, view, SIZE, 'gray');
          let mismatches = 0;
          for (let y = 0; y < SIZE; y++) {
            for (let x = 0; x < SIZE; x++) {
              for (let c = 0; c < 3; c++) if (byteAt(batch!.inputs[b]!, k, SIZE, y, x, c) !== expected[(y * SIZE + x) * 3 + c]) mismatches++;
            }
          }
          expect(mismatches, `${split} sample ${k} branch ${b}`).toBe(0);
        }
      }
    }
    // The view markers (20·view + 5) read back directly: 5, 85, 165.
    const [b] = collect(ds.batches('test', { batchSize: 1, shuffle: false, augment: false, seed: 1, epoch: 1 }));
    expect(b!.inputs.map((x) => byteAt(x, 0, SIZE, 0, 2))).toEqual([5, 85, 165]);
  });

  it('keeps the labels and splits of the two-view dataset (the split does not depend on the views)', () => {
    const ds = three();
    const pair = open();
    expect([ds.size('train'), ds.size('val'), ds.size('test')]).toEqual([12, 3, 6]);
    for (const split of ['train', 'val', 'test'] as const) {
      expect(ds.samples(split)).toEqual(pair.samples(split));
      expect(Array.from(ds.labels(split))).toEqual(Array.from(pair.labels(split)));
    }
    expect(Array.from(ds.labels('test'))).toEqual([0, 0, 1, 1, 2, 2]);
    const sub = three({ subset: { train: 5, test: 4 } });
    expect(sub.samples('train')).toEqual(open({ subset: { train: 5, test: 4 } }).samples('train'));
  });

  it('is deterministic under a seed, reshuffles per epoch and resumes exactly', () => {
    const opts = { batchSize: 5, shuffle: true, augment: true, seed: 7, epoch: 3 };
    const a = collect(three().batches('train', opts));
    const b = collect(three().batches('train', opts));
    expect(a.map((x) => x.size)).toEqual([5, 5, 2]);
    expect(a.map((x) => Array.from(x.indices))).toEqual(b.map((x) => Array.from(x.indices)));
    for (let m = 0; m < 3; m++) expect(a.map((x) => Array.from(x.inputs[m]!))).toEqual(b.map((x) => Array.from(x.inputs[m]!)));
    expect(collect(three().batches('train', { ...opts, startBatch: 1 }))).toEqual(a.slice(1));
    const c = collect(three().batches('train', { ...opts, epoch: 4 }));
    expect(c.flatMap((x) => Array.from(x.indices))).not.toEqual(a.flatMap((x) => Array.from(x.indices)));
  });

  it('flips each of the three views independently, only when augmenting, for any batch size', () => {
    const combos = expectFlipsPerView(three({ subset: {} }), 3);
    // All 8 (front, v005, v009) combinations occur among the 48 sample-epochs: one draw per view, none shared.
    expect(combos.size).toBe(8);
  });

  it('draws the first two flips exactly as the two-view dataset does, so views[0] and views[1] get the same batches', () => {
    const ds = three({ views: [0, 6, 8] });
    const pair = open();
    for (let position = 0; position < 12; position++) {
      expect(ds.flipDraws('train', 9, 2, position).slice(0, 2)).toEqual(pair.flipDraws('train', 9, 2, position));
    }
    const opts = { batchSize: 4, shuffle: true, augment: true, seed: 9, epoch: 2 };
    const a = collect(ds.batches('train', opts));
    const b = collect(pair.batches('train', opts));
    expect(a.map((x) => Array.from(x.indices))).toEqual(b.map((x) => Array.from(x.indices)));
    for (let m = 0; m < 2; m++) expect(a.map((x) => Array.from(x.inputs[m]!))).toEqual(b.map((x) => Array.from(x.inputs[m]!)));
    expect(ds.modalities.map((m) => m.name)).toEqual(['front', 'rear', 'v009']);
  });

  it('rejects a repeated view and the two-view duplicate controls, naming the input and the fix', () => {
    expect(() => three({ views: [0, 4, 4] })).toThrow(/views \[0,4,4\]: view 4 is listed twice; the three views must be distinct/);
    expect(() => three({ views: [8, 0, 8] })).toThrow(/view 8 is listed twice/);
    expect(() => three({ modalities: 'duplicate-m0' })).toThrow(/modalities 'duplicate-m0' is a two-view control.*\[0,4,8\].*use modalities 'distinct'/);
    expect(() => three({ modalities: 'duplicate-m1' })).toThrow(/modalities 'duplicate-m1' is a two-view control/);
    expect(() => three({ modalities: 'distinct' })).not.toThrow();
  });

  it('needs the third view file on disk, naming it', () => {
    const dir = mkdtempSync(join(workDir, 'three-'));
    const r = join(dir, 'data');
    writeModelnet40Fixture(r, { classes: 1, trainPerClass: 5, testPerClass: 1, size: 8 });
    rmSync(modelnet40ViewFile(r, 'airplane', 'train', fixtureObjectName(0, 3), 8));
    const make = (views: number[]) => new Modelnet40Dataset({ root: r, cacheDir: join(dir, 'cache'), imageSize: 8, allowMissingClasses: true, views, log: () => {} });
    expect(() => make([0, 4])).not.toThrow();
    expect(() => make([0, 4, 8])).toThrow(/airplane_0003\.obj\.shaded_v009\.png: view file missing/);
  });

  it('plugs into createDataset from a TrialSpec with three views', async () => {
    const ds = await createDataset({ name: 'modelnet40', root, views: [0, 4, 8], splitSeed: 10, imageSize: SIZE }, { modalities: 'distinct', cacheDir, log: () => {} });
    expect(ds.modalities.map((m) => m.name)).toEqual(['front', 'v005', 'v009']);
    const [b] = collect(ds.batches('val', { batchSize: 3, shuffle: false, augment: false, seed: 1, epoch: 1 }));
    expect(b!.inputs.map((x) => byteAt(x, 2, SIZE, 0, 2))).toEqual([FIXTURE_MARKER_VIEW(0), FIXTURE_MARKER_VIEW(4), FIXTURE_MARKER_VIEW(8)]);
  });
});
