import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.ts';
import { Modelnet40Dataset } from '../../src/data/modelnet40.ts';
import { createNet } from '../../src/nn/index.ts';
import { uniformValues } from '../../src/nn/random.ts';
import { createResnet18MmtmNet } from '../../src/nn/resnet18.ts';
import type { EpochMetrics, TrialEvent } from '../../src/spec/contracts.ts';
import { FIDELITY_PROFILES } from '../../src/spec/fidelity.ts';
import { trainTrialSpecSchema } from '../../src/spec/trial.ts';
import { trainTrial } from '../../src/train/trainer.ts';
import { unimodalLoss } from '../../src/train/unimodal.ts';
import { writeModelnet40Fixture } from '../fixtures/modelnet40.ts';

let workDir: string;
let root: string;

beforeAll(() => {
  workDir = mkdtempSync(join(tmpdir(), 'mmsweep-rn18-'));
  root = join(workDir, 'modelnet40');
  // 3 classes × 10 training objects → 24 train / 6 val; 3 × 2 test; 32×32 renders.
  writeModelnet40Fixture(root, { classes: 3, trainPerClass: 10, testPerClass: 2, size: 32 });
});
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

/** Loss and gradients of one training forward of a small seeded ResNet18-MMTM on the active backend. */
function lossAndGrads(): { loss: number; grads: Float32Array[] } {
  const net = createResnet18MmtmNet({ channels: [3, 3], numClasses: 5, seed: 8, fidelity: FIDELITY_PROFILES.code, width: 1 / 16 });
  const x0 = tf.tensor4d(uniformValues(2, 'x0', 3 * 33 * 33 * 3, 1), [3, 33, 33, 3]);
  const x1 = tf.tensor4d(uniformValues(2, 'x1', 3 * 33 * 33 * 3, 1), [3, 33, 33, 3]);
  const labels = tf.oneHot(tf.tensor1d([1, 4, 0], 'int32'), 5);
  const { value, grads } = tf.variableGrads(() => {
    const out = net.forward([x0, x1], { mode: 'regular', training: true, regularTrainingStep: true });
    return tf.add(tf.losses.softmaxCrossEntropy(labels, out.branchLogits[0]), tf.losses.softmaxCrossEntropy(labels, out.branchLogits[1])) as tf.Scalar;
  });
  const result = { loss: value.dataSync()[0]!, grads: net.trainableVariables.map((v) => grads[v.name]!.dataSync() as Float32Array) };
  tf.dispose([value, ...Object.values(grads), x0, x1, labels]);
  net.dispose();
  return result;
}

describe('ResNet18-MMTM on the wasm backend', () => {
  it('computes the same gradients as the cpu backend (stride-2 and 1×1 shortcut convolutions, odd input size)', async () => {
    await initBackend('cpu');
    const reference = lossAndGrads();
    await initBackend('wasm');
    const wasm = lossAndGrads();
    expect(wasm.loss).toBeCloseTo(reference.loss, 4);
    expect(wasm.grads.length).toBe(reference.grads.length);
    for (let i = 0; i < reference.grads.length; i++) {
      const r = reference.grads[i]!;
      const w = wasm.grads[i]!;
      let diff = 0;
      let norm = 0;
      for (let j = 0; j < r.length; j++) {
        diff += (r[j]! - w[j]!) ** 2;
        norm += r[j]! ** 2;
      }
      expect(Math.sqrt(diff)).toBeLessThanOrEqual(1e-3 * Math.sqrt(norm) + 1e-6);
    }
  });

  it('a small variant learns the fixture: training loss goes down and the trial result is complete', async () => {
    await initBackend('wasm');
    const spec = trainTrialSpecSchema.parse({
      dataset: { name: 'modelnet40', root, imageSize: 32 },
      lr: 0.01,
      momentum: 0.9,
      batchSize: 8,
      evalBatchSize: 32,
      seed: 1,
      width: 0.125,
      maxEpochs: 8,
      backend: 'wasm',
    });
    const dataset = new Modelnet40Dataset({
      root,
      imageSize: 32,
      cacheDir: join(workDir, 'cache'),
      log: () => {},
    });
    const net = createNet(spec, dataset);
    const events: TrialEvent[] = [];
    const result = await trainTrial({ spec, dataset, net, backend: { name: 'wasm', device: 'test' }, onEvent: (e) => events.push(e) });
    net.dispose();
    const history = events.flatMap((e) => (e.type === 'epoch' ? [e.metrics as EpochMetrics] : []));
    expect(history.length).toBeGreaterThanOrEqual(6);
    // From ≈ 2·ln 40 (two 40-way heads) to well below; chance is 33 % on the 3 populated classes.
    expect(history[0]!.loss).toBeGreaterThan(6);
    expect(Math.min(...history.slice(-3).map((h) => h.loss))).toBeLessThan(0.3 * history[0]!.loss);
    expect(Math.max(...history.map((h) => h.trainAcc))).toBeGreaterThanOrEqual(90);
    expect(Math.max(...history.map((h) => h.valAcc))).toBeGreaterThanOrEqual(80);
    expect(result.testAcc).not.toBeNull();
    expect(result.accF0Prime).not.toBeNull();
    expect(Number.isFinite(result.dUtil!)).toBe(true);
    expect(Number.isFinite(result.dSpeed!)).toBe(true);
  });

  it('the uni-modal SE baseline (rear view) learns the fixture too', async () => {
    await initBackend('wasm');
    const spec = trainTrialSpecSchema.parse({
      dataset: { name: 'modelnet40', root, imageSize: 32 },
      architecture: 'unimodal-se',
      unimodalModality: 1,
      lr: 0.01,
      momentum: 0.9,
      batchSize: 8,
      evalBatchSize: 32,
      seed: 2,
      width: 0.125,
      maxEpochs: 6,
      backend: 'wasm',
    });
    const dataset = new Modelnet40Dataset({ root, imageSize: 32, cacheDir: join(workDir, 'cache'), log: () => {} });
    const net = createNet(spec, dataset);
    const events: TrialEvent[] = [];
    await trainTrial({ spec, dataset, net, backend: { name: 'wasm', device: 'test' }, onEvent: (e) => events.push(e), lossFn: unimodalLoss, skipUtilization: true });
    net.dispose();
    const history = events.flatMap((e) => (e.type === 'epoch' ? [e.metrics as EpochMetrics] : []));
    // One 40-way head: from ≈ ln 40.
    expect(history[0]!.loss).toBeGreaterThan(3);
    expect(Math.min(...history.slice(-3).map((h) => h.loss))).toBeLessThan(0.4 * history[0]!.loss);
    expect(Math.max(...history.map((h) => h.trainAcc))).toBeGreaterThanOrEqual(90);
  });
});
