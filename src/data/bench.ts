import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Modalities } from '../spec/trial.ts';

/**
 * Data-layer benchmark in the bench/ convention (`run(args)`): seconds to read MNIST, to generate the colored
 * splits, to load them back from the cache, and to assemble one 60,000-sample training epoch of batches.
 * Register as `data` in bench/main.ts: `load: () => import('../src/data/bench.ts')`. `--json` prints one line.
 */
export async function run(args: string[]): Promise<void> {
  const json = args.includes('--json');
  const repeats = 3;
  const { loadMnist } = await import('./mnist.ts');
  const { loadColoredSplit } = await import('./cmnist.ts');
  const { createDataset } = await import('./index.ts');
  const cacheDir = mkdtempSync(join(tmpdir(), 'mmsweep-bench-data-'));
  const quiet = () => {};
  const coloring = { sigma2: 0.02, palette: 'hue-wheel', paletteSeed: 0 } as const;
  try {
    const figures: Record<string, number> = {};
    figures.mnistReadSeconds = seconds(() => {
      loadMnist('train');
      loadMnist('test');
    });
    figures.generateTrainSeconds = seconds(() => loadColoredSplit('train', coloring, 0, { cacheDir, log: quiet }));
    figures.generateValSeconds = seconds(() => loadColoredSplit('val', coloring, 0, { cacheDir, log: quiet }));
    figures.cacheLoadTrainSeconds = median(repeat(repeats, () => seconds(() => loadColoredSplit('train', coloring, 0, { cacheDir, log: quiet }))));
    for (const modalities of ['distinct', 'duplicate-m1', 'duplicate-m0'] as Modalities[]) {
      const ds = await createDataset({ name: 'cmnist', ...coloring, dataSeed: 0 }, { modalities, cacheDir, log: quiet });
      const epochs = repeat(repeats + 1, (epoch) =>
        seconds(() => {
          for (const batch of ds.batches('train', { batchSize: 128, shuffle: true, augment: false, seed: 0, epoch: epoch + 1 })) void batch;
        }),
      ).slice(1); // the first epoch warms up the JIT
      figures[`epochSeconds_${modalities}`] = median(epochs);
    }
    if (json) {
      process.stdout.write(`${JSON.stringify({ benchmark: 'data', ...figures })}\n`);
    } else {
      process.stdout.write('CMNIST data layer (σ²=0.02; epoch = 60,000 samples in batches of 128, shuffled; medians of 3)\n');
      for (const [name, value] of Object.entries(figures)) process.stdout.write(`  ${name.padEnd(28)} ${value.toFixed(3)} s\n`);
    }
  } finally {
    rmSync(cacheDir, { recursive: true, force: true });
  }
}

function seconds(work: () => unknown): number {
  const start = performance.now();
  work();
  return (performance.now() - start) / 1000;
}

function repeat<T>(n: number, f: (i: number) => T): T[] {
  return Array.from({ length: n }, (_, i) => f(i));
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}
