import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.ts';
import { createDataset } from '../../src/data/index.ts';
import type { Dataset } from '../../src/data/types.ts';
import { createNet } from '../../src/nn/index.ts';
import type { TrialEvent } from '../../src/spec/contracts.ts';
import { trainTrialSpecSchema, type TrainTrialSpecInput } from '../../src/spec/trial.ts';
import { HaltedForTest, trainTrial } from '../../src/train/trainer.ts';
import * as tf from '@tensorflow/tfjs';
import { classFeatureMeans, toTensors } from '../../src/metrics/evaluate.ts';

/**
 * The later balancing methods through the real trainer on the real CMNIST late-fusion net (wasm, tiny subset and
 * width): every method trains, gets d_util and d_speed, and resumes bit-for-bit from an epoch checkpoint (OGM-GE's
 * noise, Gradient-Blending's weights and AGM's running averages included).
 */
let dataset: Dataset;
let backendName = '';
const dirs: string[] = [];
const subset = { train: 96, val: 64, test: 64 };

beforeAll(async () => {
  backendName = (await initBackend('wasm')).name;
  const spec = trainTrialSpecSchema.parse({ dataset: { name: 'cmnist', heldOutValidation: 500 }, lr: 0.01 });
  dataset = await createDataset(spec.dataset, { modalities: 'distinct', subset, log: () => {} });
});
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

const specOf = (overrides: Partial<TrainTrialSpecInput>) =>
  trainTrialSpecSchema.parse({
    dataset: { name: 'cmnist', heldOutValidation: 500 },
    architecture: 'late-fusion',
    lr: 0.05,
    seed: 2,
    batchSize: 32,
    evalBatchSize: 64,
    maxEpochs: 2,
    width: 0.25,
    subset,
    ...overrides,
  });

async function go(spec: ReturnType<typeof specOf>, dir: string, extra: { resume?: boolean; haltAfterEpoch?: number } = {}) {
  const net = createNet(spec, dataset);
  const events: TrialEvent[] = [];
  try {
    const result = await trainTrial({ spec, dataset, net, backend: { name: backendName, device: '' }, checkpointDir: dir, onEvent: (e) => events.push(e), ...extra });
    return { result, events, weights: net.trainableVariables.map((v) => Array.from(v.dataSync())) };
  } finally {
    net.dispose();
  }
}

const mk = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'mmsweep-late-'));
  dirs.push(d);
  return d;
};

describe('late fusion + methods through trainTrial (CMNIST, wasm)', () => {
  it.each(['vanilla', 'ogm-ge', 'gradient-blending', 'pmr', 'mmpareto', 'agm'] as const)('%s trains, measures d_util and d_speed, and resumes bit-for-bit', async (algorithm) => {
    const spec = specOf({ algorithm });
    const full = await go(spec, mk());
    const r = full.result;
    expect(r.diverged).toBe(false);
    expect(r.dSpeed).not.toBeNull();
    expect(r.dUtil).not.toBeNull();
    // f_k = ŷ for late fusion: A(f_k) is A(f); f_k′ differs.
    expect(r.accF0).toBe(r.accF);
    expect(r.accF1).toBe(r.accF);
    expect(r.perModality!.map((m) => m.u)).toEqual([(r.accF - r.accF0Prime) / r.accF, (r.accF - r.accF1Prime) / r.accF]);
    const history = full.events.flatMap((e) => (e.type === 'epoch' ? [e.metrics] : []));
    expect(history.map((h) => h.regularSteps)).toEqual([3, 3]);

    const dir = mk();
    await expect(go(spec, dir, { haltAfterEpoch: 1 })).rejects.toBeInstanceOf(HaltedForTest);
    const resumed = await go(spec, dir, { resume: true });
    // The net ends at its best-val weights, which may be epoch 1's: compare epoch 2's training too.
    expect(resumed.weights).toEqual(full.weights);
    const epoch2 = (events: TrialEvent[]) => events.flatMap((e) => (e.type === 'epoch' && e.metrics.epoch === 2 ? [e.metrics] : []))[0]!;
    const { wallSeconds: _a, ...fullEpoch2 } = epoch2(full.events);
    const { wallSeconds: _b, ...resumedEpoch2 } = epoch2(resumed.events);
    expect(resumedEpoch2).toEqual(fullEpoch2);
    expect(resumed.result.dSpeed).toBe(r.dSpeed);
    expect(resumed.result.dUtil).toBe(r.dUtil);
  }, 240_000);
});

describe('classFeatureMeans (PMR prototypes)', () => {
  it('equals the class means of the features of the first batches, computed by hand', () => {
    const spec = specOf({ algorithm: 'pmr' });
    const net = createNet(spec, dataset);
    try {
      const { means, counts } = classFeatureMeans(net, dataset, { batchSize: 32, fraction: 0.5 }); // 2 of 3 batches
      const sums = [0, 1].map(() => new Map<number, number[]>());
      const seen = new Array(10).fill(0);
      let b = 0;
      for (const batch of dataset.batches('train', { batchSize: 32, shuffle: false, augment: false, seed: 0, epoch: 1 })) {
        if (b++ >= 2) break;
        const features = tf.tidy(() => net.forward(toTensors(dataset, batch), { mode: 'regular', training: false }).branchFeatures.map((e) => e.arraySync() as number[][]));
        batch.y.forEach((c, i) => {
          seen[c] += 1;
          features.forEach((rows, k) => {
            const acc = sums[k]!.get(c) ?? new Array(rows[i]!.length).fill(0);
            rows[i]!.forEach((v, j) => (acc[j] += v));
            sums[k]!.set(c, acc);
          });
        });
      }
      expect(counts).toEqual(seen);
      means.forEach((perClass, k) =>
        perClass.forEach((row, c) => row.forEach((v, j) => expect(v).toBeCloseTo(seen[c] ? sums[k]!.get(c)![j]! / seen[c] : 0, 4))),
      );
    } finally {
      net.dispose();
    }
  });
});
