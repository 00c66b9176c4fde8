import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.ts';
import { createDataset } from '../../src/data/index.ts';
import type { Dataset } from '../../src/data/types.ts';
import { createCmnistNet } from '../../src/nn/cmnist.ts';
import type { TrialEvent } from '../../src/spec/contracts.ts';
import { resolveFidelity } from '../../src/spec/fidelity.ts';
import { trainTrialSpecSchema } from '../../src/spec/trial.ts';
import { HaltedForTest, trainTrial } from '../../src/train/trainer.ts';

/**
 * Bit-exact resume on the real Colored-and-gray MNIST net and data (wasm backend, tiny subset and width):
 * stop after epoch 1, resume, and compare everything with the uninterrupted run.
 */
let dataset: Dataset;
const dirs: string[] = [];
let backendName = '';

beforeAll(async () => {
  backendName = (await initBackend('wasm')).name;
  const spec = trainTrialSpecSchema.parse({ dataset: { name: 'cmnist' }, lr: 0.01, seed: 0 });
  dataset = await createDataset(spec.dataset, { modalities: 'distinct', subset: { train: 96, val: 64, test: 64 }, log: () => {} });
});
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

describe('trainTrial on CMNIST (real net, wasm)', () => {
  // `paper` is the CMNIST default (re-balancing updates θk only, D4); `code` the released code's behaviour.
  it.each(['code', 'paper'] as const)('resumes bit-for-bit from an epoch checkpoint (guided, %s profile)', async (profile) => {
    const spec = trainTrialSpecSchema.parse({
      dataset: { name: 'cmnist' },
      profile,
      algorithm: 'guided',
      alpha: 0.001,
      q: 2,
      lr: 0.05,
      seed: 4,
      batchSize: 32,
      evalBatchSize: 64,
      maxEpochs: 3,
      width: 0.25,
      subset: { train: 96, val: 64, test: 64 },
    });
    const fidelity = resolveFidelity(spec.profile, spec.fidelity);
    const go = async (dir: string, extra: { resume?: boolean; haltAfterEpoch?: number }) => {
      const net = createCmnistNet({ channels: [3, 1], numClasses: 10, seed: spec.seed, fidelity, width: spec.width });
      const events: TrialEvent[] = [];
      try {
        const result = await trainTrial({ spec, dataset, net, backend: { name: backendName, device: '' }, checkpointDir: dir, onEvent: (e) => events.push(e), ...extra });
        return { result, events, weights: net.trainableVariables.map((v) => Array.from(v.dataSync())), state: net.getState() };
      } finally {
        net.dispose();
      }
    };
    const mk = () => {
      const d = fs.mkdtempSync(path.join(os.tmpdir(), 'mmsweep-cmnist-'));
      dirs.push(d);
      return d;
    };
    const whole = await go(mk(), {});
    const dir = mk();
    await expect(go(dir, { haltAfterEpoch: 1 })).rejects.toBeInstanceOf(HaltedForTest);
    const resumed = await go(dir, { resume: true });
    expect(resumed.weights).toEqual(whole.weights);
    expect(resumed.state).toEqual(whole.state);
    expect({ ...resumed.result, wallSeconds: 0 }).toEqual({ ...whole.result, wallSeconds: 0 });
    const hist = (ev: TrialEvent[]) => ev.flatMap((e) => (e.type === 'epoch' ? [{ ...e.metrics, wallSeconds: 0 }] : []));
    expect(hist(resumed.events)).toEqual(hist(whole.events).slice(1));
    // The guided run did re-balance, so the resume covered balancer state and running gate averages.
    expect(hist(whole.events).reduce((s, m) => s + m.rebalanceSteps, 0)).toBeGreaterThan(0);
    expect(tf.memory().numTensors).toBeLessThan(2000);
  });
});
