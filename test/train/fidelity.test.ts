/**
 * Guards of the formulas behind u, d_util and d_speed and of the fidelity switches that change them (issue 13):
 * h̄ over the training split, re-balancing steps outside the speed sums, the L1 subgradient in or out of G, the
 * plateau's loss, u(m1|m0) on branch 0, NVGesture inference unaugmented, `branchOnly` re-balancing. Every expected
 * value is computed here from the fixture's raw arrays and weights (plain JS, or tfjs autodiff of a cross-entropy
 * written here), never read from the trainer.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BatchOptions, Dataset, HostBatch, SplitName } from '../../src/data/types.ts';
import type { ForwardMode } from '../../src/nn/types.ts';
import type { EpochMetrics } from '../../src/spec/contracts.ts';
import type { RunnerEvent } from '../../src/runner/protocol.ts';
import { trainTrialSpecSchema, type TrainTrialSpec } from '../../src/spec/trial.ts';
import { checkpointPath, readCheckpointFile } from '../../src/train/checkpoint.ts';
import { trainTrial } from '../../src/train/trainer.ts';
import { SyntheticDataset, TinyNet } from './fixtures.ts';

const dirs: string[] = [];
beforeAll(async () => {
  await tf.setBackend('cpu');
});
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

const D0 = 4;
const D1 = 6;
const K = 3;
const dataset = new SyntheticDataset({ sizes: { train: 96, val: 48, test: 300 } });
const backend = { name: 'cpu', device: 'test' };
/** Small enough that θ − lr·g rounds back to θ in float32: every step sees the initial weights. */
const FROZEN_LR = 1e-30;

function spec(overrides: Record<string, unknown> = {}): TrainTrialSpec {
  return trainTrialSpecSchema.parse({ dataset: { name: 'cmnist' }, lr: 0.1, seed: 3, batchSize: 16, evalBatchSize: 32, maxEpochs: 2, ...overrides });
}
const newNet = (seed: number) => new TinyNet({ d0: D0, d1: D1, numClasses: K, seed });

async function run(s: TrainTrialSpec, options: { net?: TinyNet; data?: Dataset; checkpointDir?: string } = {}) {
  const events: RunnerEvent[] = [];
  const net = options.net ?? newNet(s.seed);
  const result = await trainTrial({ spec: s, dataset: options.data ?? dataset, net, backend, onEvent: (e) => events.push(e), checkpointDir: options.checkpointDir });
  const epochs = events.flatMap((e) => (e.type === 'epoch' ? [e.metrics] : [])) as EpochMetrics[];
  return { result, epochs, net };
}

/** Every sample of a split as raw arrays, in index order. */
function rawSplit(split: SplitName) {
  const [batch] = dataset.batches(split, { batchSize: 1_000_000, shuffle: false, augment: false, seed: 0, epoch: 1 });
  return batch!;
}

/** Rows of a [n, d] array. */
const row = (x: Float32Array, d: number, i: number) => x.subarray(i * d, (i + 1) * d);

/** h = relu(x·W + b) for one sample, plain JS (TinyNet's squeezed input of branch k). */
function squeezed(x: Float32Array, W: Float32Array, b: Float32Array, H: number): number[] {
  const d = x.length;
  return Array.from({ length: H }, (_, j) => {
    let s = b[j]!;
    for (let i = 0; i < d; i++) s += x[i]! * W[i * H + j]!;
    return Math.max(0, s);
  });
}

/** h̄_k over a split, plain JS over the raw arrays and the net's current weights. */
function squeezeMeanByHand(net: TinyNet, split: SplitName): [number[], number[]] {
  const data = rawSplit(split);
  const [w0, b0] = net.groups.theta[0]!.map((v) => v.dataSync() as Float32Array);
  const [w1, b1] = net.groups.theta[1]!.map((v) => v.dataSync() as Float32Array);
  const H = b0!.length;
  const sums: [number[], number[]] = [new Array(H).fill(0), new Array(H).fill(0)];
  for (let i = 0; i < data.size; i++) {
    squeezed(row(data.inputs[0]!, D0, i), w0!, b0!, H).forEach((v, j) => (sums[0][j]! += v));
    squeezed(row(data.inputs[1]!, D1, i), w1!, b1!, H).forEach((v, j) => (sums[1][j]! += v));
  }
  return [sums[0].map((s) => s / data.size), sums[1].map((s) => s / data.size)];
}

/** Cross-entropy written here (batch mean of −log softmax at the label), summed over the branches. */
function lossByHand(branchLogits: tf.Tensor2D[], y: Int32Array): tf.Scalar {
  const oneHot = tf.oneHot(tf.tensor1d(y, 'int32'), K).toFloat();
  return branchLogits.map((l) => tf.neg(tf.mean(tf.sum(tf.mul(oneHot, tf.logSoftmax(l)), 1)))).reduce((a, b) => a.add(b)) as tf.Scalar;
}

/** Per-group µ of one batch at the net's weights: Σ‖G‖²/Σ‖θ‖², G from `lossByHand` (+ λ·sign θ when asked). */
function musByHand(net: TinyNet, batch: HostBatch, l1InG = 0): { theta: number[]; thetaPrime: number[] } {
  const x0 = tf.tensor2d(batch.inputs[0]!, [batch.size, D0]);
  const x1 = tf.tensor2d(batch.inputs[1]!, [batch.size, D1]);
  const { grads } = tf.variableGrads(() => lossByHand(net.forward([x0, x1], { mode: 'regular', training: true }).branchLogits, batch.y), net.trainableVariables);
  const sq = (values: ArrayLike<number>) => Array.from(values).reduce((a, v) => a + v * v, 0);
  const g = (v: tf.Variable) => {
    const raw = grads[v.name]!.dataSync();
    const theta = v.dataSync();
    return Array.from(raw, (gi, i) => gi + l1InG * Math.sign(theta[i]!));
  };
  const mu = (vars: tf.Variable[]) => vars.reduce((a, v) => a + sq(g(v)), 0) / vars.reduce((a, v) => a + sq(v.dataSync()), 0);
  return { theta: net.groups.theta.map(mu), thetaPrime: net.groups.thetaPrime.map(mu) };
}

const dFromSums = (sums: { theta: number[]; thetaPrime: number[] }) =>
  Math.log10(sums.thetaPrime[0]! / sums.theta[0]!) - Math.log10(sums.thetaPrime[1]! / sums.theta[1]!);

/** Accuracy (%) of one branch's logits over the test split, plain JS argmax. */
function branchAccuracy(net: TinyNet, mode: ForwardMode, branch: number): number {
  const data = rawSplit('test');
  const out = net.forward([tf.tensor2d(data.inputs[0]!, [data.size, D0]), tf.tensor2d(data.inputs[1]!, [data.size, D1])], { mode, training: false });
  const logits = out.branchLogits[branch]!.dataSync();
  let correct = 0;
  for (let i = 0; i < data.size; i++) {
    const r = Array.from(logits.subarray(i * K, (i + 1) * K));
    if (r.indexOf(Math.max(...r)) === data.y[i]) correct++;
  }
  return (100 * correct) / data.size;
}

describe('utilization (paper-spec §6) through the trainer', () => {
  it('h̄ is the mean over the training split of each MMTM input; u(m1|m0) is u of branch 0, u(m0|m1) of branch 1', async () => {
    const net = newNet(5);
    // Branch 0's gate made a steep function of [h0, h1] (branch 1's left as initialised), so that replacing m1 by its
    // mean changes ŷ0 far more than replacing m0 changes ŷ1; frozen weights keep it so.
    const named = (suffix: string) => net.trainableVariables.find((v) => v.name.endsWith(`.${suffix}`))!;
    named('sq').assign(named('sq').mul(6));
    named('e0').assign(named('e0').mul(30));
    const captured: Float32Array[][][] = [];
    const set = net.setSqueezeMeans.bind(net);
    net.setSqueezeMeans = (means) => {
      captured.push(means.map((p) => p.map((h) => h.slice())));
      set(means);
    };
    const { result } = await run(spec({ seed: 5, maxEpochs: 1, lr: FROZEN_LR, momentum: 0 }), { net });
    // The net now holds the best-validation weights the utilization was measured on.
    const [h0, h1] = squeezeMeanByHand(net, 'train');
    expect(captured).toHaveLength(1);
    captured[0]![0]![0]!.forEach((v, j) => expect(v).toBeCloseTo(h0[j]!, 5));
    captured[0]![0]![1]!.forEach((v, j) => expect(v).toBeCloseTo(h1[j]!, 5));
    // The guard can tell the splits apart: the colored input's mean differs off the training split.
    const [v0] = squeezeMeanByHand(net, 'val');
    const [t0] = squeezeMeanByHand(net, 'test');
    expect(Math.max(...h0.map((h, j) => Math.abs(h - v0[j]!)))).toBeGreaterThan(1e-3);
    expect(Math.max(...h0.map((h, j) => Math.abs(h - t0[j]!)))).toBeGreaterThan(1e-3);

    // f0′ (branch 0 with h̄1 for m1) and f1′, from the hand means; u = (A − A′)/A.
    net.setSqueezeMeans([[Float32Array.from(h0), Float32Array.from(h1)]]);
    const a0 = branchAccuracy(net, 'regular', 0);
    const a1 = branchAccuracy(net, 'regular', 1);
    const a0p = branchAccuracy(net, 'unimodalMeans', 0);
    const a1p = branchAccuracy(net, 'unimodalMeans', 1);
    const u0 = (a0 - a0p) / a0;
    const u1 = (a1 - a1p) / a1;
    expect(Math.abs(u0 - u1)).toBeGreaterThan(0.02); // a swap of the two would show
    expect([result.accF0, result.accF0Prime, result.accF1, result.accF1Prime]).toEqual([a0, a0p, a1, a1p]);
    expect(result.uM1GivenM0).toBeCloseTo(u0, 12);
    expect(result.uM0GivenM1).toBeCloseTo(u1, 12);
    expect(result.dUtil).toBeCloseTo(u0 - u1, 12);
    expect(result.perModality!.map((m) => [m.name, m.u])).toEqual([
      ['color', result.uM1GivenM0],
      ['shape', result.uM0GivenM1],
    ]);
  });
});

describe('conditional learning speed (paper-spec §7.3) with frozen weights', () => {
  /** The training batches of epoch 1, as the trainer draws them. */
  const trainBatches = (s: TrainTrialSpec) => [...dataset.batches('train', { batchSize: s.batchSize, shuffle: true, augment: true, seed: s.seed, epoch: 1 })];

  it('re-balancing steps do not feed the speed sums (guided: R A A R A A)', async () => {
    const s = spec({ algorithm: 'guided', alpha: 0, q: 2, balancingStartEpoch: 1, maxEpochs: 1, lr: FROZEN_LR, momentum: 0 });
    const net = newNet(s.seed);
    const modes: ForwardMode[] = [];
    const forward = net.forward.bind(net);
    net.forward = (inputs, o) => {
      if (o.training) modes.push(o.mode);
      return forward(inputs, o);
    };
    const { epochs } = await run(s, { net });
    expect(modes.map((m) => (m === 'regular' ? 'R' : 'A')).join('')).toBe('RAARAA');

    const reference = newNet(s.seed);
    const perStep = trainBatches(s).map((b) => musByHand(reference, b));
    const sum = (steps: number[]) => ({
      theta: [0, 1].map((k) => steps.reduce((a, i) => a + perStep[i]!.theta[k]!, 0)),
      thetaPrime: [0, 1].map((k) => steps.reduce((a, i) => a + perStep[i]!.thetaPrime[k]!, 0)),
    });
    const regularSteps = modes.flatMap((m, i) => (m === 'regular' ? [i] : []));
    const expected = dFromSums(sum(regularSteps));
    const everyStep = dFromSums(sum(modes.map((_, i) => i)));
    expect(Math.abs(expected - everyStep)).toBeGreaterThan(1e-3);
    expect(epochs[0]!.dSpeed).toBeCloseTo(expected, 5);
  });

  it.each([true, false])('the L1 subgradient λ·sign(θ) is part of G in µ exactly when muGradientIncludesL1 = %s', async (included) => {
    const lambda = 0.05;
    const s = spec({ maxEpochs: 1, batchSize: 96, lr: FROZEN_LR, momentum: 0, l1: lambda, fidelity: { muGradientIncludesL1: included } });
    const [batch] = trainBatches(s);
    const reference = newNet(s.seed);
    const withL1 = dFromSums(musByHand(reference, batch!, lambda));
    const without = dFromSums(musByHand(reference, batch!, 0));
    expect(Math.abs(withL1 - without)).toBeGreaterThan(1e-3);
    const { epochs, result } = await run(s);
    expect(epochs[0]!.dSpeed).toBeCloseTo(included ? withL1 : without, 5);
    expect(result.fidelity!.muGradientIncludesL1).toBe(included);
  });

  it.each(['loss', 'lossPlusL1'] as const)('the LR plateau schedule watches %s', async (plateauLoss) => {
    const lambda = 0.05;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mmsweep-fidelity-'));
    dirs.push(dir);
    const s = spec({ maxEpochs: 1, lr: FROZEN_LR, momentum: 0, l1: lambda, fidelity: { plateauLoss } });
    // By hand at the (frozen) initial weights: the epoch's sample-weighted mean loss, and λ‖θ‖₁ over the net.
    const reference = newNet(s.seed);
    let lossSum = 0;
    let seen = 0;
    for (const b of trainBatches(s)) {
      const x = [tf.tensor2d(b.inputs[0]!, [b.size, D0]), tf.tensor2d(b.inputs[1]!, [b.size, D1])];
      lossSum += lossByHand(reference.forward(x, { mode: 'regular', training: true }).branchLogits, b.y).dataSync()[0]! * b.size;
      seen += b.size;
    }
    const penalty = lambda * reference.trainableVariables.reduce((a, v) => a + Array.from(v.dataSync()).reduce((t, x) => t + Math.abs(x), 0), 0);
    expect(penalty).toBeGreaterThan(0.1);
    await run(s, { checkpointDir: dir });
    const { payload } = readCheckpointFile<{ plateau: { best: number } }>(checkpointPath(dir, 1));
    const expected = lossSum / seen + (plateauLoss === 'lossPlusL1' ? penalty : 0);
    expect(payload.plateau.best).toBeCloseTo(expected, 4);
  });
});

/** Records how the trainer asks for batches (which split, shuffled or not, augmented or not). */
class SpyDataset implements Dataset {
  readonly calls: { split: SplitName; shuffle: boolean; augment: boolean }[] = [];
  readonly name = dataset.name;
  readonly modalities = dataset.modalities;
  readonly numClasses = dataset.numClasses;
  readonly classNames = dataset.classNames;
  size(split: SplitName) {
    return dataset.size(split);
  }
  labels(split: SplitName) {
    return dataset.labels(split);
  }
  batches(split: SplitName, options: BatchOptions) {
    this.calls.push({ split, shuffle: options.shuffle, augment: options.augment });
    return dataset.batches(split, options);
  }
}

describe('inference augmentation (D10/D11 are ModelNet40 loader quirks)', () => {
  const augmentedBy = async (datasetSpec: Record<string, unknown>, profile: 'code' | 'paper') => {
    const spy = new SpyDataset();
    const { result } = await run(spec({ dataset: datasetSpec, profile, maxEpochs: 1 }), { data: spy });
    const of = (split: SplitName, shuffle: boolean) => [...new Set(spy.calls.filter((c) => c.split === split && c.shuffle === shuffle).map((c) => c.augment))];
    return { training: of('train', true), squeezeMeans: of('train', false), val: of('val', false), test: of('test', false), result };
  };

  it.each(['code', 'paper'] as const)('NVGesture validation, test and h̄ are centre-cropped and unflipped (%s profile)', async (profile) => {
    const seen = await augmentedBy({ name: 'nvgesture' }, profile);
    expect(seen).toMatchObject({ training: [true], squeezeMeans: [false], val: [false], test: [false] });
    expect(seen.result.fidelity).toMatchObject({ augmentValidation: false, augmentUtilizationMeans: false });
  });

  it('ModelNet40 in the code profile keeps the released loader: augmented validation and h̄', async () => {
    const seen = await augmentedBy({ name: 'modelnet40' }, 'code');
    expect(seen).toMatchObject({ training: [true], squeezeMeans: [true], val: [true], test: [false] });
    expect((await augmentedBy({ name: 'modelnet40' }, 'paper')).val).toEqual([false]);
  });
});

describe('rebalanceUpdates (D4)', () => {
  it("'branchOnly' updates θk alone in a re-balancing step: the other branch and the fusion layers stay put", async () => {
    const s = spec({ algorithm: 'guided', alpha: 0, q: 100, maxEpochs: 2, balancingStartEpoch: 1, fidelity: { rebalanceUpdates: 'branchOnly' } });
    const net = newNet(s.seed);
    let k: number | null = null;
    let frozen: tf.Variable[] = [];
    let snapshot: number[][] = [];
    let before: number[][] = [];
    let step = 0;
    const forward = net.forward.bind(net);
    net.forward = (inputs, o) => {
      if (o.training && ++step === 2) {
        k = o.mode === 'rebalance0' ? 0 : 1;
        // Everything outside θk: the other branch, and every fusion tensor (θ0′ ∪ θ1′).
        const own = new Set(net.groups.theta[k]);
        frozen = net.trainableVariables.filter((v) => !own.has(v));
        snapshot = frozen.map((v) => Array.from(v.dataSync()));
        before = net.groups.theta[k]!.map((v) => Array.from(v.dataSync()));
      }
      return forward(inputs, o);
    };
    await trainTrial({ spec: s, dataset, net, backend });
    expect(k).not.toBeNull();
    expect(frozen.length).toBeGreaterThan(net.groups.theta[k!]!.length);
    expect(frozen.map((v) => Array.from(v.dataSync()))).toEqual(snapshot);
    expect(net.groups.theta[k!]!.map((v) => Array.from(v.dataSync()))).not.toEqual(before);
  });
});
