import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.ts';
import { createDataset } from '../../src/data/index.ts';
import type { Dataset } from '../../src/data/types.ts';
import { createNet } from '../../src/nn/index.ts';
import { LateFusionNet } from '../../src/nn/late-fusion.ts';
import { FrameResnet18Branch, Resnet18Branch } from '../../src/nn/resnet18.ts';
import type { TrialEvent } from '../../src/spec/contracts.ts';
import { LATE_FUSION_METHODS } from '../../src/spec/methods.ts';
import { trainTrialSpecSchema, type TrainTrialSpecInput } from '../../src/spec/trial.ts';
import { trainTrial } from '../../src/train/trainer.ts';
import { runMmsweep } from '../cli/run-cli.ts';
import { writeCremadFixture } from '../fixtures/cremad.ts';

/**
 * The CREMA-D late-fusion net (ResNet18 on the spectrogram, ResNet18 over the frames) through the real trainer on a
 * generated fixture: one epoch gives a complete TrialResult, with d_util and d_speed.
 */
let workDir: string;
let root: string;
let backendName = '';

beforeAll(async () => {
  workDir = mkdtempSync(join(tmpdir(), 'mmsweep-cremad-train-'));
  root = join(workDir, 'CREMA-D');
  writeCremadFixture(root, { trainPerClass: 2, testPerClass: 1, frames: 3 });
  backendName = (await initBackend('wasm')).name;
});
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

const specOf = (overrides: Partial<TrainTrialSpecInput> = {}) =>
  trainTrialSpecSchema.parse({
    dataset: { name: 'cremad', root, frames: 2, imageSize: 16, valFraction: 0.25 },
    lr: 0.01,
    seed: 3,
    batchSize: 4,
    evalBatchSize: 6,
    maxEpochs: 1,
    width: 0.125,
    backend: 'wasm',
    ...overrides,
  });

async function open(spec: ReturnType<typeof specOf>): Promise<Dataset> {
  return createDataset(spec.dataset, { modalities: spec.modalities, subset: spec.subset, cacheDir: join(workDir, 'cache'), log: () => {} });
}

describe('CREMA-D late fusion', () => {
  it('builds a ResNet18 with one input channel for the spectrogram and a frame ResNet18 pooled over time', async () => {
    const spec = specOf();
    expect(spec.architecture).toBe('late-fusion');
    const dataset = await open(spec);
    const net = createNet(spec, dataset) as LateFusionNet;
    try {
      expect(net).toBeInstanceOf(LateFusionNet);
      const [audio, visual] = net.encoders.map((e) => e.branch);
      expect(audio).toBeInstanceOf(Resnet18Branch);
      expect(audio!.inputChannels).toBe(1);
      expect(visual).toBeInstanceOf(FrameResnet18Branch);
      expect((visual as FrameResnet18Branch).frames).toBe(2);
      // θk = encoder k without its fc (62 tensors − weight, bias) unless the method trains per-branch heads.
      expect(net.groups.theta.map((t) => t.length)).toEqual([60, 60]);
      expect(net.groups.thetaPrime.map((t) => t.length)).toEqual([1, 1]);
      const withHeads = createNet(specOf({ algorithm: 'mmpareto' }), dataset);
      expect(withHeads.groups.theta.map((t) => t.length)).toEqual([62, 62]);
      withHeads.dispose();
      // Pooling over time and space together: the features of a clip [x, z] are the mean of the features the image
      // branch gives x and z alone (every frame's final map has the same h×w).
      const inner = (visual as FrameResnet18Branch).inner;
      const x = tf.randomUniform([1, 16, 16, 3], -1, 1, 'float32', 5);
      const z = tf.randomUniform([1, 16, 16, 3], -1, 1, 'float32', 6);
      const alone = (image: tf.Tensor) => {
        let a: tf.Tensor = image;
        for (let p = 1; p <= 4; p++) a = inner.stage(p, a, false);
        return inner.finish(a).features.arraySync()[0]!;
      };
      let c: tf.Tensor = tf.stack([x.squeeze([0]), z.squeeze([0])]).expandDims(0);
      for (let p = 1; p <= 4; p++) c = visual!.stage(p, c, false);
      const clip = visual!.finish(c).features.arraySync()[0]!;
      const [fx, fz] = [alone(x), alone(z)];
      expect(fx).not.toEqual(fz);
      clip.forEach((v, j) => expect(v).toBeCloseTo((fx[j]! + fz[j]!) / 2, 5));
    } finally {
      net.dispose();
    }
  });

  it.each(['vanilla', ...LATE_FUSION_METHODS] as const)('%s trains one epoch on the fixture and reports d_util and d_speed', async (algorithm) => {
    const spec = specOf({ algorithm, ...(algorithm === 'ogm-ge' ? { ogmGe: { alpha: 0.8 } } : {}) });
    const dataset = await open(spec);
    const net = createNet(spec, dataset);
    const events: TrialEvent[] = [];
    try {
      const r = await trainTrial({ spec, dataset, net, backend: { name: backendName, device: '' }, onEvent: (e) => events.push(e) });
      expect(r.diverged).toBe(false);
      expect(r.bestEpoch).toBe(1);
      expect(Number.isFinite(r.dUtil!)).toBe(true);
      expect(Number.isFinite(r.dSpeed!)).toBe(true);
      expect(r.testAcc).not.toBeNull();
      // Late fusion: f_k = ŷ, so A(f_k) = A(f).
      expect(r.accF0).toBe(r.accF);
      expect(r.accF1).toBe(r.accF);
      const epochs = events.flatMap((e) => (e.type === 'epoch' ? [e.metrics] : []));
      // 9 training clips (12 listed, round(12 × 0.25) = 3 held out) in batches of 4: 3 steps.
      expect(epochs.map((m) => m.regularSteps)).toEqual([3]);
    } finally {
      net.dispose();
    }
  }, 120_000);
});

describe('mmsweep train --dataset cremad', () => {
  it('trains the fixture end to end and prints a TrialResult; a bad root exits 4 naming it and the layout', async () => {
    const specFile = join(workDir, 'spec.json');
    writeFileSync(specFile, JSON.stringify({ dataset: { name: 'cremad', frames: 1, imageSize: 16, valFraction: 0.25 }, width: 0.125, batchSize: 4, evalBatchSize: 6 }));
    const env = { MMSWEEP_HOME: join(workDir, 'home') };
    const ok = await runMmsweep(['train', '--spec', specFile, '--data', root, '--lr', '0.01', '--max-epochs', '1', '--backend', 'wasm', '--json'], env);
    expect(ok.exitCode, ok.stderr).toBe(0);
    const result = JSON.parse(ok.stdout.trim().split('\n').pop()!) as { dUtil: number; dSpeed: number; accF: number };
    expect(Number.isFinite(result.dUtil)).toBe(true);
    expect(Number.isFinite(result.dSpeed)).toBe(true);
    const missing = join(workDir, 'not-there');
    const bad = await runMmsweep(['train', '--spec', specFile, '--data', missing, '--lr', '0.01', '--backend', 'wasm'], env);
    expect(bad.exitCode).toBe(4);
    expect(bad.stderr).toContain(`${missing}: no such directory (CREMA-D root)`);
    expect(bad.stderr).toMatch(/AudioWAV.*Image-01-FPS.*train\.csv and test\.csv/s);
  }, 120_000);
});
