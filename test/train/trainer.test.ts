import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TrialEvent, TrialResult } from '../../src/spec/contracts.ts';
import { trainTrialSpecSchema, type TrainTrialSpec } from '../../src/spec/trial.ts';
import { HaltedForTest, ResumeMismatchError, trainTrial } from '../../src/train/trainer.ts';
import { branchLoss } from '../../src/train/loss.ts';
import { SyntheticDataset, TinyNet } from './fixtures.ts';

const dirs: string[] = [];
const tmp = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'mmsweep-trainer-'));
  dirs.push(d);
  return d;
};

beforeAll(async () => {
  await tf.setBackend('cpu');
});
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

const dataset = new SyntheticDataset();
const backend = { name: 'cpu', device: 'test' };

function spec(overrides: Partial<TrainTrialSpec> & Record<string, unknown> = {}): TrainTrialSpec {
  return trainTrialSpecSchema.parse({
    dataset: { name: 'cmnist' },
    lr: 0.1,
    seed: 3,
    batchSize: 16,
    evalBatchSize: 32,
    maxEpochs: 4,
    ...overrides,
  });
}

const net = (seed = 3) => new TinyNet({ d0: 4, d1: 6, numClasses: 3, seed });

async function run(
  s: TrainTrialSpec,
  extra: { checkpointDir?: string; resume?: boolean; haltAfterEpoch?: number; midEpochCheckpointSeconds?: number; haltAfterStep?: number } = {},
) {
  const events: TrialEvent[] = [];
  const n = net(s.seed);
  const result = await trainTrial({ spec: s, dataset, net: n, backend, onEvent: (e) => events.push(e), ...extra });
  const weights = n.trainableVariables.map((v) => Array.from(v.dataSync()));
  return { result, events, weights };
}

const epochs = (events: TrialEvent[]) => events.flatMap((e) => (e.type === 'epoch' ? [e.metrics] : []));

describe('trainTrial on a tiny two-branch net', () => {
  it('vanilla learns; history, best-val selection and utilization are consistent', async () => {
    const { result, events } = await run(spec({ maxEpochs: 6 }));
    const hist = epochs(events);
    expect(hist.map((h) => h.epoch)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(hist.at(-1)!.trainAcc).toBeGreaterThan(80);
    expect(hist.every((h) => h.rebalanceSteps === 0 && h.regularSteps === 6)).toBe(true);
    // Best epoch = first epoch with the strictly highest val accuracy.
    const bestVal = Math.max(...hist.map((h) => h.valAcc));
    const bestEpoch = hist.find((h) => h.valAcc === bestVal)!.epoch;
    expect(result.bestEpoch).toBe(bestEpoch);
    expect(result.testAcc).toBe(hist[bestEpoch - 1].testAcc);
    expect(result.stepsT).toBe(bestEpoch * 6);
    expect(result.dSpeed).toBe(hist[bestEpoch - 1].dSpeed);
    expect(typeof result.dSpeed).toBe('number');
    // The code profile evaluates vanilla in regular mode anyway: the clean re-evaluation agrees.
    expect(result.accF).toBeCloseTo(result.testAcc, 10);
    expect(result.diverged).toBe(false);
    expect(result.rF).toBe(0);
    expect(events[0]).toMatchObject({ type: 'start', resumedFromEpoch: null });
    expect(events.at(-1)).toMatchObject({ type: 'result' });
  });

  it.each([
    ['code', true],
    ['paper', false],
  ] as const)('µ of the first step equals a hand computation from independent gradients (%s profile, θ before update: %s)', async (profile, before) => {
    // One step per epoch (batch = whole split): d after epoch 1 is log10(µ(θ0′)/µ(θ0)) − log10(µ(θ1′)/µ(θ1)).
    const s = spec({ maxEpochs: 1, batchSize: 96, profile });
    const ref = net(s.seed);
    const batch = [...dataset.batches('train', { batchSize: 96, shuffle: true, augment: true, seed: s.seed, epoch: 1 })][0];
    const x0 = tf.tensor2d(batch.inputs[0], [96, 4]);
    const x1 = tf.tensor2d(batch.inputs[1], [96, 6]);
    const oneHot = tf.oneHot(tf.tensor1d(batch.y, 'int32'), 3).toFloat() as tf.Tensor2D;
    const { grads } = tf.variableGrads(() => {
      const out = ref.forward([x0, x1], { mode: 'regular', training: true });
      return branchLoss([out.branchLogits[0], out.branchLogits[1]], oneHot);
    }, ref.trainableVariables);
    const sq = (t: tf.Tensor) => t.square().sum().dataSync()[0];
    // The first SGD step moves θ by −lr·g (momentum buffer = g, no weight decay).
    const theta = (v: tf.Variable) => (before ? v : v.sub(grads[v.name].mul(s.lr)));
    const mu = (vars: tf.Variable[]) => vars.reduce((a, v) => a + sq(grads[v.name]), 0) / vars.reduce((a, v) => a + sq(theta(v)), 0);
    const g = ref.groups;
    const expected = Math.log10(mu(g.thetaPrime[0]) / mu(g.theta[0])) - Math.log10(mu(g.thetaPrime[1]) / mu(g.theta[1]));
    const { events } = await run(s);
    expect(epochs(events)[0].dSpeed).toBeCloseTo(expected, 5);
  });

  it('guided runs re-balancing windows of exactly Q steps after the warm-up epoch', async () => {
    const { events } = await run(spec({ algorithm: 'guided', alpha: 0, q: 2, maxEpochs: 3 }));
    const hist = epochs(events);
    expect(hist[0].rebalanceSteps).toBe(0);
    // With α = 0 every regular step after warm-up triggers: pattern R A A R A A … over the 12 steps of epochs 2–3.
    expect(hist[1].regularSteps + hist[2].regularSteps).toBe(4);
    expect(hist[1].rebalanceSteps + hist[2].rebalanceSteps).toBe(8);
  });

  it('a NaN/∞ loss ends the trial as diverged (a result, not an exception)', async () => {
    const { result, events } = await run(spec({ lr: 1e30, maxEpochs: 5 }));
    expect(result.diverged).toBe(true);
    expect(result.epochs).toBeLessThan(5);
    expect(events.at(-1)).toMatchObject({ type: 'result' });
  });

  for (const algorithm of ['vanilla', 'guided', 'random', 'rubi'] as const) {
    it(`resume from an epoch checkpoint is bit-exact (${algorithm})`, async () => {
      const s = spec({ algorithm, alpha: 0.01, q: 2, maxEpochs: 4, l1: 1e-4, weightDecay: 1e-3 });
      const whole = await run(s, { checkpointDir: tmp() });
      const dir = tmp();
      await expect(run(s, { checkpointDir: dir, haltAfterEpoch: 2 })).rejects.toBeInstanceOf(HaltedForTest);
      expect(fs.readdirSync(dir).sort()).toEqual(['epoch-0001.ckpt', 'epoch-0002.ckpt']);
      const resumed = await run(s, { checkpointDir: dir, resume: true });
      expect(resumed.events[0]).toMatchObject({ type: 'start', resumedFromEpoch: 2 });
      expect(resumed.weights).toEqual(whole.weights);
      const strip = (r: TrialResult) => ({ ...r, wallSeconds: 0 });
      expect(strip(resumed.result)).toEqual(strip(whole.result));
      const noWall = (h: ReturnType<typeof epochs>) => h.map((m) => ({ ...m, wallSeconds: 0 }));
      expect(noWall(epochs(resumed.events))).toEqual(noWall(epochs(whole.events).slice(2)));
    });
  }

  for (const algorithm of ['guided', 'random'] as const) {
    it(`resume from a mid-epoch checkpoint is bit-exact (${algorithm})`, async () => {
      const s = spec({ algorithm, alpha: 0.01, q: 2, maxEpochs: 3, l1: 1e-4 });
      const whole = await run(s);
      const dir = tmp();
      // 6 steps per epoch: global step 9 is step 3 of epoch 2, in the middle of a guided window.
      await expect(run(s, { checkpointDir: dir, midEpochCheckpointSeconds: 0, haltAfterStep: 9 })).rejects.toMatchObject({ epoch: 2, step: 9 });
      expect(fs.readdirSync(dir).sort()).toEqual(['epoch-0001.ckpt', 'mid-epoch.ckpt']);
      const resumed = await run(s, { checkpointDir: dir, resume: true, midEpochCheckpointSeconds: 0 });
      expect(resumed.events[0]).toMatchObject({ type: 'start', resumedFromEpoch: 1, resumedAtStep: 3 });
      expect(resumed.weights).toEqual(whole.weights);
      const strip = (r: TrialResult) => ({ ...r, wallSeconds: 0 });
      expect(strip(resumed.result)).toEqual(strip(whole.result));
      // Epoch 2's row is the uninterrupted one: the sums of its first three steps came from the checkpoint.
      const noWall = (h: ReturnType<typeof epochs>) => h.map((m) => ({ ...m, wallSeconds: 0 }));
      expect(noWall(epochs(resumed.events))).toEqual(noWall(epochs(whole.events).slice(1)));
      // Each epoch checkpoint supersedes the mid-epoch one.
      expect(fs.readdirSync(dir).sort()).toEqual(['epoch-0002.ckpt', 'epoch-0003.ckpt']);
    });
  }

  it('a mid-epoch checkpoint that does not continue the newest epoch checkpoint is discarded, not used', async () => {
    const s = spec({ algorithm: 'guided', alpha: 0.01, q: 2, maxEpochs: 2 });
    const whole = await run(s);
    const dir = tmp();
    await expect(run(s, { checkpointDir: dir, midEpochCheckpointSeconds: 0, haltAfterStep: 9 })).rejects.toBeInstanceOf(HaltedForTest);
    // As when the orchestrator drops an epoch checkpoint it never recorded: the mid-epoch state built on it is stale.
    fs.rmSync(path.join(dir, 'epoch-0001.ckpt'));
    const resumed = await run(s, { checkpointDir: dir, resume: true });
    expect(resumed.events[0]).toMatchObject({ type: 'start', resumedFromEpoch: null });
    expect(resumed.events[0]).not.toHaveProperty('resumedAtStep');
    expect(resumed.weights).toEqual(whole.weights);
    expect(fs.existsSync(path.join(dir, 'mid-epoch.ckpt'))).toBe(false);
  });

  it('refuses to resume a checkpoint of another spec', async () => {
    const dir = tmp();
    await run(spec({ maxEpochs: 1 }), { checkpointDir: dir });
    await expect(run(spec({ maxEpochs: 1, lr: 0.2 }), { checkpointDir: dir, resume: true })).rejects.toBeInstanceOf(ResumeMismatchError);
  });

  it('branchAndFusion re-balancing leaves the other branch untouched', async () => {
    const s = spec({ algorithm: 'guided', alpha: 0, q: 100, maxEpochs: 2, balancingStartEpoch: 1, fidelity: { rebalanceUpdates: 'branchAndFusion' } });
    const n = net(s.seed);
    const events: TrialEvent[] = [];
    // The first step is regular and triggers; every later step re-balances one fixed direction k.
    let k: 0 | 1 | null = null;
    const origForward = n.forward.bind(n);
    let snapshot: number[][] | null = null;
    let step = 0;
    n.forward = (inputs, o) => {
      if (o.training) {
        step += 1;
        if (step === 2) {
          k = o.mode === 'rebalance0' ? 0 : 1;
          snapshot = n.groups.theta[1 - k]!.map((v) => Array.from(v.dataSync()));
        }
      }
      return origForward(inputs, o);
    };
    await trainTrial({ spec: s, dataset, net: n, backend, onEvent: (e) => events.push(e) });
    expect(k).not.toBeNull();
    const other = n.groups.theta[1 - k!]!;
    expect(other.map((v) => Array.from(v.dataSync()))).toEqual(snapshot);
  });
});
