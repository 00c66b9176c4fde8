import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.ts';
import { Modelnet40Dataset } from '../../src/data/modelnet40.ts';
import { createNet } from '../../src/nn/index.ts';
import { readState } from '../../src/nn/layers.ts';
import { Mmtm, type MmtmFidelity } from '../../src/nn/mmtm.ts';
import { createResnet18MmtmNet } from '../../src/nn/resnet18.ts';
import type { ForwardMode, MultimodalNet } from '../../src/nn/types.ts';
import type { EpochMetrics, TrialResult } from '../../src/spec/contracts.ts';
import { EVENT_LINE_PREFIX, type RunnerEvent } from '../../src/runner/protocol.ts';
import { trainTrialSpecSchema, type TrainTrialSpec } from '../../src/spec/trial.ts';
import { HaltedForTest, trainTrial } from '../../src/train/trainer.ts';
import { writeModelnet40Fixture } from '../fixtures/modelnet40.ts';

/*
 * The paper's three-view ModelNet40 experiment (§6.4 last paragraph; paper-spec §8.6): one MMTM joins all three
 * branches, d_speed is the gap between the two most different conditional speeds, one modality is accelerated at a
 * time, and f_k′ replaces every other modality's squeezed input by its training mean.
 */

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));
const relu = (v: number) => Math.max(0, v);
const affine = (x: number[], w: number[][], b: number[]) => b.map((bias, j) => x.reduce((a, xi, i) => a + xi * w[i]![j]!, bias));

// C = (1, 2, 1) → ΣC = 4, Z = floor(2·4/4) = 2. Weights in×out.
const CHANNELS = [1, 2, 1];
const SQUEEZE_W = [
  [0.5, -0.25],
  [0.1, 0.3],
  [-0.2, 0.4],
  [0.3, 0.2],
];
const SQUEEZE_B = [0.1, -0.1];
const EXCITE_W = [[[1], [-0.5]], [[0.25, 0.75], [-0.3, 0.6]], [[0.8], [-0.1]]];
const EXCITE_B = [[0.2], [0, 0.1], [-0.3]];
// Two samples; each branch map is B×1×2×C_k (two spatial positions).
const MAPS = [
  [[[1], [3]], [[-2], [4]]],
  [[[0.5, 1], [1.5, -3]], [[-1, 2], [2, 0]]],
  [[[2], [0]], [[1], [1]]],
];

function threeWayMmtm(fidelity: MmtmFidelity): Mmtm {
  const m = new Mmtm({ seed: 1, prefix: 'mmtm' }, CHANNELS, fidelity);
  m.squeeze.weight.variable.assign(tf.tensor2d(SQUEEZE_W));
  m.squeeze.bias.variable.assign(tf.tensor1d(SQUEEZE_B));
  m.excites.forEach((e, k) => {
    e.weight.variable.assign(tf.tensor2d(EXCITE_W[k]!));
    e.bias.variable.assign(tf.tensor1d(EXCITE_B[k]!));
  });
  return m;
}

const spatialMean = (sample: number[][]) => sample[0]!.map((_, c) => sample.reduce((a, pos) => a + pos[c]!, 0) / sample.length);
/** Reference h_k per sample, and the excitations w_k for a given squeeze input. */
const squeezed = (b: number) => MAPS.map((map) => spatialMean(map[b]!));
const excitations = (h: number[][]) => {
  const z = affine(h.flat(), SQUEEZE_W, SQUEEZE_B).map(relu);
  return EXCITE_W.map((w, k) => affine(z, w, EXCITE_B[k]!));
};

function forward(m: Mmtm, mode: ForwardMode, regularTrainingStep = false): number[][] {
  return tf.tidy(() => {
    const inputs = MAPS.map((map, k) => tf.tensor4d(map.flat(2), [2, 1, 2, CHANNELS[k]!]));
    return m.forward(inputs, { mode, regularTrainingStep, collectSqueezed: false }).outputs.map((t) => Array.from(t.dataSync()));
  });
}

function expected(gates: (b: number) => number[][]): number[][] {
  return MAPS.map((map, k) => map.flatMap((sample, b) => sample.flatMap((pos) => pos.map((v, c) => v * gates(b)[k]![c]!))));
}

function expectClose(actual: number[][], wanted: number[][]): void {
  expect(actual.length).toBe(wanted.length);
  actual.forEach((row, k) => row.forEach((v, i) => expect(v).toBeCloseTo(wanted[k]![i]!, 6)));
}

const PAPER: MmtmFidelity = { gateScale: 2, rebalanceAverage: 'paperRegularPreSigmoid', replicateSkeletonAvgBug: false };
const CODE: MmtmFidelity = { gateScale: 1, rebalanceAverage: 'codeRunningSigmoid', replicateSkeletonAvgBug: false };

describe('three-way MMTM (paper-spec §8.6) against a hand computation', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it('regular: one squeeze over [h0, h1, h2], one excitation and gate per branch', () => {
    const m = threeWayMmtm(PAPER);
    expect(m.bottleneck).toBe(2);
    // Anchor the JS reference on one value worked by hand. Sample 0: h = (2), (1, −1), (1);
    // [2, 1, −1, 1]·W_sq + b = (1 + 0.1 + 0.2 + 0.3 + 0.1, −0.5 + 0.3 − 0.4 + 0.2 − 0.1) = (1.7, −0.5) → z = (1.7, 0);
    // w0 = 1.7·1 + 0·(−0.5) + 0.2 = 1.9.
    expect(excitations(squeezed(0))[0]![0]).toBeCloseTo(1.9, 12);
    const out = forward(m, 'regular');
    expectClose(out, expected((b) => excitations(squeezed(b)).map((w) => w.map((v) => 2 * sigmoid(v)))));
    m.dispose();
  });

  it('rebalance2 replaces only branch 2’s gate by 2σ(mean pre-sigmoid w2 of regular training steps)', () => {
    const m = threeWayMmtm(PAPER);
    forward(m, 'regular', true);
    const w = [0, 1].map((b) => excitations(squeezed(b)));
    const meanW2 = (w[0]![2]![0]! + w[1]![2]![0]!) / 2;
    expect(readState(m.state)['mmtm.paperMeanW2']![0]).toBeCloseTo(meanW2, 6);
    const out = forward(m, 'rebalance2');
    expectClose(
      out,
      expected((b) => excitations(squeezed(b)).map((wk, k) => (k === 2 ? [2 * sigmoid(meanW2)] : wk.map((v) => 2 * sigmoid(v))))),
    );
    m.dispose();
  });

  it('code profile: rebalance1 uses the running mean of branch 1’s post-sigmoid gates over calls', () => {
    const m = threeWayMmtm(CODE);
    forward(m, 'regular');
    const gates1 = [0, 1].map((b) => excitations(squeezed(b))[1]!.map(sigmoid));
    const average1 = gates1[0]!.map((g, c) => (g + gates1[1]![c]!) / 2);
    const out = forward(m, 'rebalance1');
    expectClose(out, expected((b) => excitations(squeezed(b)).map((wk, k) => (k === 1 ? average1 : wk.map(sigmoid)))));
    expect(() => forward(m, 'rebalance3')).toThrow(/modality 3/);
    m.dispose();
  });

  it('unimodalMeans: branch k sees its own h_k and the training means of both other modalities', () => {
    const m = threeWayMmtm(PAPER);
    const means = [[0.7], [-0.2, 0.4], [1.5]];
    m.setSqueezeMeans(means.map((v) => Float32Array.from(v)));
    const out = forward(m, 'unimodalMeans');
    const gates = (b: number) =>
      [0, 1, 2].map((k) => {
        const h = means.map((mean, j) => (j === k ? squeezed(b)[k]! : mean));
        return excitations(h)[k]!.map((v) => 2 * sigmoid(v));
      });
    expectClose(out, expected(gates));
    expect(() => m.setSqueezeMeans([Float32Array.of(0), Float32Array.of(0, 0)])).toThrow(/expected means of \[1,2,1\]/);
    m.dispose();
  });
});

describe('three-branch ResNet18-MMTM', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it('keeps 11,197,032 parameters per branch; three-way MMTMs have Z = floor(2·3C/4) and groups by role', () => {
    const net = createResnet18MmtmNet({ channels: [3, 3, 3], numClasses: 40, seed: 0, fidelity: { gateScale: 1, rebalanceAverage: 'codeRunningSigmoid', replicateSkeletonAvgBug: false } });
    const count = (vs: readonly tf.Variable[]) => vs.reduce((a, v) => a + v.size, 0);
    expect(net.modalityCount).toBe(3);
    expect(net.groups.theta.map(count)).toEqual([11_197_032, 11_197_032, 11_197_032]);
    expect(net.mmtms.map((m) => m.bottleneck)).toEqual([192, 384, 768]);
    // Per MMTM: squeeze 3C·Z + Z and three excitations Z·C + C, for C = 128, 256, 512:
    // (73,920 + 74,112) + (295,296 + 295,680) + (1,180,416 + 1,181,184) = 3,100,608.
    expect(count(net.mmtms.flatMap((m) => m.parameters.map((p) => p.variable)))).toBe(3_100_608);
    const names = (vs: tf.Variable[]) => {
      const byVariable = new Map(net.namedParameters.map((p) => [p.variable, p.name]));
      return vs.map((v) => byVariable.get(v)!);
    };
    expect(names(net.groups.thetaPrime[2]!)).toEqual(
      [2, 3, 4].flatMap((p) => ['squeeze.weight', 'squeeze.bias', 'excite2.weight', 'excite2.bias'].map((n) => `mmtm${p}.${n}`)),
    );
    net.dispose();
  });
});

describe('three-view ModelNet40 end to end (fixture)', () => {
  let workDir: string;
  let root: string;
  beforeAll(async () => {
    workDir = mkdtempSync(join(tmpdir(), 'mmsweep-3view-'));
    root = join(workDir, 'modelnet40');
    writeModelnet40Fixture(root, { classes: 3, trainPerClass: 10, testPerClass: 2, size: 32 });
    await initBackend('wasm');
  });
  afterAll(() => rmSync(workDir, { recursive: true, force: true }));

  const spec = (overrides: Record<string, unknown> = {}): TrainTrialSpec =>
    trainTrialSpecSchema.parse({
      dataset: { name: 'modelnet40', root, imageSize: 32, views: [0, 4, 8] },
      algorithm: 'guided',
      // A small α so that re-balancing windows happen within a few epochs of a tiny run.
      alpha: 0.001,
      q: 2,
      lr: 0.01,
      momentum: 0.9,
      batchSize: 8,
      evalBatchSize: 32,
      seed: 1,
      width: 0.125,
      maxEpochs: 6,
      backend: 'wasm',
      ...overrides,
    });

  async function train(s: TrainTrialSpec, extra: { checkpointDir?: string; resume?: boolean; haltAfterEpoch?: number } = {}) {
    const dataset = new Modelnet40Dataset({ root, imageSize: 32, views: s.dataset.name === 'modelnet40' ? s.dataset.views : [], cacheDir: join(workDir, 'cache'), log: () => {} });
    const net = createNet(s, dataset);
    const modes = new Set<ForwardMode>();
    const original = net.forward.bind(net);
    (net as MultimodalNet).forward = (inputs, options) => {
      if (options.training) modes.add(options.mode);
      return original(inputs, options);
    };
    const events: RunnerEvent[] = [];
    try {
      const result = await trainTrial({ spec: s, dataset, net, backend: { name: 'wasm', device: 'test' }, onEvent: (e) => events.push(e), ...extra });
      return { result, events, modes, weights: net.trainableVariables.map((v) => Array.from(v.dataSync())) };
    } finally {
      net.dispose();
    }
  }
  const history = (events: RunnerEvent[]) => events.flatMap((e) => (e.type === 'epoch' ? [e.metrics as EpochMetrics] : []));

  it('guided learns all three views, accelerates each modality in turn, and reports per-modality utilization', async () => {
    const { result, events, modes } = await train(spec());
    const h = history(events);
    // Three 40-way heads: from ≈ 3·ln 40 ≈ 11 down.
    expect(h[0]!.loss).toBeGreaterThan(9);
    expect(Math.min(...h.slice(-3).map((e) => e.loss))).toBeLessThan(0.5 * h[0]!.loss);
    expect(h.reduce((a, e) => a + e.rebalanceSteps, 0)).toBeGreaterThan(0);
    expect([...modes].every((m) => ['regular', 'rebalance0', 'rebalance1', 'rebalance2'].includes(m))).toBe(true);
    // Every epoch reports all three branches; the fixed fields are branches 0 and 1.
    for (const e of h) {
      expect(e.branchAcc!.train.length).toBe(3);
      expect(e.branchAcc!.val.slice(0, 2)).toEqual([e.valAcc0, e.valAcc1]);
      expect(e.branchAcc!.test.slice(0, 2)).toEqual([e.testAcc0, e.testAcc1]);
    }
    expect(Math.max(...h.map((e) => Math.min(...e.branchAcc!.train)))).toBeGreaterThanOrEqual(60);
    // u(rest|m_k) = (A(f_k) − A(f_k′))/A(f_k); d_util = max u − min u; d_speed ≥ 0 (gap of the extremes).
    const per = result.perModality!;
    expect(per.map((p) => p.name)).toEqual(['front', 'v005', 'v009']);
    for (const p of per) expect(p.u).toBeCloseTo((p.accF - p.accFPrime) / p.accF, 12);
    const u = per.map((p) => p.u!);
    expect(result.dUtil).toBeCloseTo(Math.max(...u) - Math.min(...u), 12);
    expect([result.accF0, result.accF1, result.accF0Prime, result.accF1Prime]).toEqual([per[0]!.accF, per[1]!.accF, per[0]!.accFPrime, per[1]!.accFPrime]);
    expect(result.dSpeed!).toBeGreaterThanOrEqual(0);
  }, 300_000);

  it('resumes a three-view guided run bit-exactly from an epoch checkpoint', async () => {
    const s = spec({ maxEpochs: 3 });
    const full = await train(s);
    const dir = join(workDir, 'ckpt');
    await expect(train(s, { checkpointDir: dir, haltAfterEpoch: 2 })).rejects.toBeInstanceOf(HaltedForTest);
    const resumed = await train(s, { checkpointDir: dir, resume: true });
    expect(resumed.events[0]).toMatchObject({ type: 'start', resumedFromEpoch: 2 });
    expect(resumed.weights).toEqual(full.weights);
    expect(resumed.result.perModality).toEqual(full.result.perModality);
    expect(history(resumed.events).at(-1)).toEqual({ ...history(full.events).at(-1)!, wallSeconds: history(resumed.events).at(-1)!.wallSeconds });
  }, 300_000);

  it('`mmsweep train --views 0,4,8` prints a full TrialResult with three modalities', async () => {
    const repo = resolve(import.meta.dirname, '../..');
    const args = ['bin/mmsweep.js', 'train', '--dataset', 'modelnet40', '--data', root, '--views', '0,4,8', '--algorithm', 'random', '--lr', '0.01',
      '--seed', '2', '--width', '0.125', '--max-epochs', '2', '--batch-size', '8', '--eval-batch-size', '32', '--backend', 'wasm',
      '--cache-dir', join(workDir, 'cli-cache'), '--json', '--events'];
    // imageSize has no flag: a spec file gives 32 px and the flags fill in the rest.
    const specFile = join(workDir, 'spec.json');
    writeFileSync(specFile, JSON.stringify({ dataset: { name: 'modelnet40', imageSize: 32 } }));
    const child = spawn(process.execPath, [...args, '--spec', specFile], { cwd: repo, env: { ...process.env, MMSWEEP_BACKEND: '' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const code = await new Promise<number | null>((done) => child.on('close', done));
    expect(code, stderr).toBe(0);
    const lines = stdout.trim().split('\n');
    const epochs = lines.filter((l) => l.startsWith(EVENT_LINE_PREFIX)).map((l) => JSON.parse(l.slice(EVENT_LINE_PREFIX.length)) as RunnerEvent);
    expect(epochs.filter((e) => e.type === 'epoch').length).toBe(2);
    const result = JSON.parse(lines.at(-1)!) as TrialResult;
    expect(result.perModality!.length).toBe(3);
    for (const key of ['testAcc', 'accF', 'accF0', 'accF1', 'accF0Prime', 'accF1Prime', 'rF', 'bestEpoch', 'stepsT'] as const) {
      expect(Number.isFinite(result[key]), key).toBe(true);
    }
    expect(result.epochs).toBe(2);
  }, 300_000);
});
