import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { readState } from '../../src/nn/layers.ts';
import { Mmtm, type FusionContext, type MmtmFidelity } from '../../src/nn/mmtm.ts';
import type { ForwardMode } from '../../src/nn/types.ts';

// A small MMTM (C0 = C1 = 2 → Z = 2) with explicit weights, checked against a plain-JS computation of
// paper-spec §2.1. Weights are stored in×out (y = x·W + b).
const SQUEEZE_W = [
  [0.5, -0.25],
  [0.1, 0.3],
  [-0.2, 0.4],
  [0.3, 0.2],
];
const SQUEEZE_B = [0.1, -0.1];
const EXCITE0_W = [
  [1, -0.5],
  [0.25, 0.75],
];
const EXCITE0_B = [0, 0.2];
const EXCITE1_W = [
  [-0.3, 0.6],
  [0.8, -0.1],
];
const EXCITE1_B = [0.1, 0];

/** A map B×S×C as nested arrays [sample][position][channel]; the tensors are B×1×S×C (A0) or B×S×1×C (A1). */
type Map3 = number[][][];

// Branch maps with different spatial shapes (A0: 1×2, A1: 2×1).
const A0: Map3 = [
  [
    [1, 2],
    [3, -1],
  ],
  [
    [0, -2],
    [4, 1],
  ],
];
const A1: Map3 = [
  [
    [0.5, 1],
    [1.5, -3],
  ],
  [
    [-1, 2],
    [2, 0],
  ],
];

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));
const relu = (v: number) => Math.max(0, v);
function affine(x: number[], w: number[][], b: number[]): number[] {
  return b.map((bias, j) => x.reduce((acc, xi, i) => acc + xi * w[i]![j]!, bias));
}
function spatialMean(sample: number[][]): number[] {
  const channels = sample[0]!.length;
  return Array.from({ length: channels }, (_, c) => sample.reduce((a, pos) => a + pos[c]!, 0) / sample.length);
}
/** Pre-sigmoid excitations of one sample for a squeeze input s. */
function excitations(s: number[]): { w0: number[]; w1: number[] } {
  const z = affine(s, SQUEEZE_W, SQUEEZE_B).map(relu);
  return { w0: affine(z, EXCITE0_W, EXCITE0_B), w1: affine(z, EXCITE1_W, EXCITE1_B) };
}
function gateMaps(map: Map3, gates: number[][]): Map3 {
  return map.map((sample, b) => sample.map((pos) => pos.map((v, c) => v * gates[b]![c]!)));
}

function toTensors(a0: Map3, a1: Map3): [tf.Tensor4D, tf.Tensor4D] {
  const b = a0.length;
  return [tf.tensor4d(a0.flat(2), [b, 1, a0[0]!.length, 2]), tf.tensor4d(a1.flat(2), [b, a1[0]!.length, 1, 2])];
}

function makeMmtm(fidelity: MmtmFidelity): Mmtm {
  const m = new Mmtm({ seed: 1, prefix: 'mmtm' }, [2, 2], fidelity);
  m.squeeze.weight.variable.assign(tf.tensor2d(SQUEEZE_W));
  m.squeeze.bias.variable.assign(tf.tensor1d(SQUEEZE_B));
  m.excites[0].weight.variable.assign(tf.tensor2d(EXCITE0_W));
  m.excites[0].bias.variable.assign(tf.tensor1d(EXCITE0_B));
  m.excites[1].weight.variable.assign(tf.tensor2d(EXCITE1_W));
  m.excites[1].bias.variable.assign(tf.tensor1d(EXCITE1_B));
  return m;
}

const CODE: MmtmFidelity = { gateScale: 1, rebalanceAverage: 'codeRunningSigmoid', replicateSkeletonAvgBug: true };
const PAPER: MmtmFidelity = { gateScale: 2, rebalanceAverage: 'paperRegularPreSigmoid', replicateSkeletonAvgBug: false };

function ctx(mode: ForwardMode, regularTrainingStep = false): FusionContext {
  return { mode, regularTrainingStep, collectSqueezed: true };
}

function run(m: Mmtm, a0: Map3, a1: Map3, context: FusionContext) {
  return tf.tidy(() => {
    const [t0, t1] = toTensors(a0, a1);
    const out = m.forward([t0, t1], context);
    return {
      out0: Array.from(out.outputs[0]!.dataSync()),
      out1: Array.from(out.outputs[1]!.dataSync()),
      h0: Array.from(out.squeezed![0]!.dataSync()),
      h1: Array.from(out.squeezed![1]!.dataSync()),
    };
  });
}

/** Per sample of a batch: h0, h1 and the regular pre-sigmoid excitations. */
function reference(a0: Map3, a1: Map3) {
  return a0.map((s0, b) => {
    const h0 = spatialMean(s0);
    const h1 = spatialMean(a1[b]!);
    return { h0, h1, ...excitations([...h0, ...h1]) };
  });
}

function expectClose(actual: ArrayLike<number>, expected: number[], digits = 6): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) expect(actual[i]).toBeCloseTo(expected[i]!, digits);
}

function columnMean(rows: number[][]): number[] {
  return rows[0]!.map((_, c) => rows.reduce((a, r) => a + r[c]!, 0) / rows.length);
}

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('MMTM forward equals a hand computation', () => {
  for (const fidelity of [CODE, PAPER]) {
    it(`regular mode, gate scale ${fidelity.gateScale}`, () => {
      const m = makeMmtm(fidelity);
      const ref = reference(A0, A1);
      // Anchor the JS reference on one value worked by hand: sample 0 has h0 = (2, 0.5), h1 = (1, −1),
      // z = ReLU((0.55, −0.15) + (0.1, −0.1)) = (0.65, 0) → w0 = (0.65, −0.325 + 0.2) = (0.65, −0.125).
      expectClose(ref[0]!.w0, [0.65, -0.125]);
      const scale = fidelity.gateScale;
      const out = run(m, A0, A1, ctx('regular'));
      expectClose(out.h0, ref.flatMap((r) => r.h0));
      expectClose(out.h1, ref.flatMap((r) => r.h1));
      const gates0 = ref.map((r) => r.w0.map((w) => scale * sigmoid(w)));
      const gates1 = ref.map((r) => r.w1.map((w) => scale * sigmoid(w)));
      expectClose(out.out0, gateMaps(A0, gates0).flat(2));
      expectClose(out.out1, gateMaps(A1, gates1).flat(2));
      m.dispose();
    });
  }

  it('unimodalMeans mode: branch 0 excited by [h0(x), h̄1], branch 1 by [h̄0, h1(x)]', () => {
    const m = makeMmtm(PAPER);
    const mean0 = [0.7, -0.2];
    const mean1 = [0.3, 0.9];
    m.setSqueezeMeans([Float32Array.from(mean0), Float32Array.from(mean1)]);
    const out = run(m, A0, A1, ctx('unimodalMeans'));
    const gates0 = A0.map((s) => excitations([...spatialMean(s), ...mean1]).w0.map((w) => 2 * sigmoid(w)));
    const gates1 = A1.map((s) => excitations([...mean0, ...spatialMean(s)]).w1.map((w) => 2 * sigmoid(w)));
    expectClose(out.out0, gateMaps(A0, gates0).flat(2));
    expectClose(out.out1, gateMaps(A1, gates1).flat(2));
    m.dispose();
  });
});

// Batches of different sizes, so that "mean of batch means" differs from "mean over samples".
const BATCHES: { a0: Map3; a1: Map3 }[] = [
  { a0: A0, a1: A1 },
  { a0: [A0[1]!], a1: [A1[0]!] },
  {
    a0: [
      [
        [-2, 1],
        [0.5, 0.5],
      ],
      ...A0,
    ],
    a1: [
      [
        [3, -1],
        [1, 1],
      ],
      ...A1,
    ],
  },
];

describe('running averages for re-balancing (paper-spec §8.3)', () => {
  it('code profile: after n calls (any mode, train or eval) the average is the mean of the n batch means', () => {
    for (const bug of [false, true]) {
      const m = makeMmtm({ ...CODE, replicateSkeletonAvgBug: bug });
      m.setSqueezeMeans([Float32Array.of(0, 0), Float32Array.of(0, 0)]);
      const modes: ForwardMode[] = ['regular', 'rebalance0', 'unimodalMeans', 'rebalance1', 'regular', 'regular'];
      const batchMeans0: number[][] = [];
      const batchMeans1: number[][] = [];
      modes.forEach((mode, i) => {
        const batch = BATCHES[i % BATCHES.length]!;
        run(m, batch.a0, batch.a1, ctx(mode));
        const ref = reference(batch.a0, batch.a1);
        batchMeans0.push(columnMean(ref.map((r) => r.w0.map(sigmoid))));
        batchMeans1.push(columnMean(ref.map((r) => r.w1.map(sigmoid))));
      });
      const state = readState(m.state);
      const expected0 = columnMean(batchMeans0);
      expectClose(state['mmtm.codeAverage0']!, expected0);
      // The call counter is stored as [high, low] base 2^24.
      expect(Array.from(state['mmtm.codeCalls']!)).toEqual([0, modes.length]);
      if (bug) {
        // The code's bug: the modality-1 average is fed branch-0 gates, so both averages coincide.
        expect(Array.from(state['mmtm.codeAverage1']!)).toEqual(Array.from(state['mmtm.codeAverage0']!));
      } else {
        const expected1 = columnMean(batchMeans1);
        expectClose(state['mmtm.codeAverage1']!, expected1);
        expect(Math.abs(expected1[0]! - expected0[0]!)).toBeGreaterThan(0.01);
      }
      // Each batch has equal weight: the per-sample mean is a different number.
      const perSample0 = columnMean(
        [0, 1, 2, 3, 4, 5].flatMap((i) => {
          const b = BATCHES[i % BATCHES.length]!;
          return reference(b.a0, b.a1).map((r) => r.w0.map(sigmoid));
        }),
      );
      expect(Math.abs(perSample0[0]! - expected0[0]!)).toBeGreaterThan(1e-4);
      m.dispose();
    }
  });

  it('code profile: a re-balancing step gates branch k with the stored average (including this batch)', () => {
    const m = makeMmtm({ ...CODE, replicateSkeletonAvgBug: false });
    run(m, BATCHES[0]!.a0, BATCHES[0]!.a1, ctx('regular'));
    const batch = BATCHES[2]!;
    const out = run(m, batch.a0, batch.a1, ctx('rebalance0'));
    const average0 = readState(m.state)['mmtm.codeAverage0']!;
    expectClose(m.rebalanceGate(0), Array.from(average0));
    const constantGate = batch.a0.map(() => Array.from(average0));
    expectClose(out.out0, gateMaps(batch.a0, constantGate).flat(2));
    // The other branch keeps its input-dependent gate.
    const ref = reference(batch.a0, batch.a1);
    expectClose(out.out1, gateMaps(batch.a1, ref.map((r) => r.w1.map(sigmoid))).flat(2));

    const out1 = run(m, batch.a0, batch.a1, ctx('rebalance1'));
    const average1 = Array.from(readState(m.state)['mmtm.codeAverage1']!);
    expectClose(out1.out1, gateMaps(batch.a1, batch.a1.map(() => average1)).flat(2));
    expectClose(out1.out0, gateMaps(batch.a0, ref.map((r) => r.w0.map(sigmoid))).flat(2));
    m.dispose();
  });

  it('paper profile: sample mean of pre-sigmoid w over regular training steps only; gate 2·σ(mean w)', () => {
    const m = makeMmtm(PAPER);
    expect(() => run(m, A0, A1, ctx('rebalance0'))).toThrow(/regular training steps/);
    run(m, BATCHES[0]!.a0, BATCHES[0]!.a1, ctx('regular', true));
    run(m, BATCHES[1]!.a0, BATCHES[1]!.a1, ctx('regular', false)); // evaluation-like call: ignored
    run(m, BATCHES[2]!.a0, BATCHES[2]!.a1, ctx('regular', true));
    const samples = [...reference(BATCHES[0]!.a0, BATCHES[0]!.a1), ...reference(BATCHES[2]!.a0, BATCHES[2]!.a1)];
    const meanW0 = columnMean(samples.map((r) => r.w0));
    const meanW1 = columnMean(samples.map((r) => r.w1));
    const state = readState(m.state);
    expectClose(state['mmtm.paperMeanW0']!, meanW0);
    expectClose(state['mmtm.paperMeanW1']!, meanW1);
    expect(Array.from(state['mmtm.paperSamples']!)).toEqual([0, 5]);

    const batch = BATCHES[1]!;
    const out = run(m, batch.a0, batch.a1, ctx('rebalance1'));
    const gate1 = meanW1.map((w) => 2 * sigmoid(w));
    expectClose(m.rebalanceGate(1), gate1);
    expectClose(out.out1, gateMaps(batch.a1, [gate1]).flat(2));
    const ref = reference(batch.a0, batch.a1);
    expectClose(out.out0, gateMaps(batch.a0, ref.map((r) => r.w0.map((w) => 2 * sigmoid(w)))).flat(2));
    // Re-balancing calls do not feed the paper average.
    expectClose(readState(m.state)['mmtm.paperMeanW1']!, meanW1);
    m.dispose();
  });

  it('rejects regularTrainingStep outside regular mode, and unimodalMeans without means', () => {
    const m = makeMmtm(CODE);
    expect(() => run(m, A0, A1, ctx('rebalance0', true))).toThrow(/needs 'regular'/);
    expect(() => run(m, A0, A1, ctx('unimodalMeans'))).toThrow(/setSqueezeMeans/);
    m.dispose();
  });
});

describe('MMTM under the gradient tape', () => {
  it('a re-balancing step gives the replaced excitation no gradient, updates the averages, leaks nothing', () => {
    const m = makeMmtm(CODE);
    const [t0, t1] = toTensors(A0, A1);
    const before = tf.memory().numTensors;
    const variables = m.parameters.map((p) => p.variable);
    const { value, grads } = tf.variableGrads(() => {
      const out = m.forward([t0, t1], { mode: 'rebalance0', regularTrainingStep: false, collectSqueezed: false });
      return tf.add(tf.sum(tf.square(out.outputs[0])), tf.sum(tf.square(out.outputs[1]))) as tf.Scalar;
    }, variables);
    const norm = (v: tf.Variable) => (grads[v.name] ? tf.tidy(() => tf.sum(tf.abs(grads[v.name]!)).dataSync()[0]!) : 0);
    expect(norm(m.excites[0].weight.variable)).toBe(0);
    expect(norm(m.excites[0].bias.variable)).toBe(0);
    expect(norm(m.excites[1].weight.variable)).toBeGreaterThan(0);
    expect(norm(m.squeeze.weight.variable)).toBeGreaterThan(0);
    expect(Array.from(readState(m.state)['mmtm.codeCalls']!)).toEqual([0, 1]);
    value.dispose();
    for (const g of Object.values(grads)) g.dispose();
    expect(tf.memory().numTensors).toBe(before);
    t0.dispose();
    t1.dispose();
    m.dispose();
  });
});

/** Central finite differences of a float32 scalar function of one variable, per element, against tfjs gradients. */
function checkGradients(variables: tf.Variable[], loss: () => tf.Scalar, label: string): void {
  const { value, grads } = tf.variableGrads(loss, variables);
  value.dispose();
  const epsilon = 1e-2;
  for (const v of variables) {
    const analytic = grads[v.name] ? Array.from(grads[v.name]!.dataSync()) : new Array<number>(v.size).fill(0);
    const original = v.dataSync().slice() as Float32Array;
    for (let i = 0; i < v.size; i++) {
      const at = (delta: number) => {
        const shifted = original.slice();
        shifted[i]! += delta;
        v.assign(tf.tensor(shifted, v.shape));
        return tf.tidy(() => loss().dataSync()[0]!);
      };
      const numeric = (at(epsilon) - at(-epsilon)) / (2 * epsilon);
      v.assign(tf.tensor(original, v.shape));
      expect(Math.abs(numeric - analytic[i]!), `${label}: element ${i} of a ${v.shape.join('×')} tensor`).toBeLessThan(
        2e-3 + 1e-2 * Math.abs(analytic[i]!),
      );
    }
  }
  for (const g of Object.values(grads)) g.dispose();
}

describe('MMTM gradients equal central finite differences', () => {
  for (const [fidelity, mode] of [
    [CODE, 'regular'],
    [PAPER, 'regular'],
    [PAPER, 'rebalance0'],
    [PAPER, 'rebalance1'],
  ] as const) {
    it(`${fidelity.rebalanceAverage}, ${mode}`, () => {
      const m = makeMmtm(fidelity);
      // The paper average changes only on regular training steps: feed one, then it is a constant.
      run(m, A0, A1, ctx('regular', true));
      const [t0, t1] = toTensors(A0, A1);
      const r0 = tf.tensor4d([0.3, -1, 2, 0.5, -0.7, 1.1, 0.2, 0.9], [2, 1, 2, 2]);
      const r1 = tf.tensor4d([1, 0.4, -0.6, 0.8, 1.5, -0.2, 0.3, -1.2], [2, 2, 1, 2]);
      const loss = () => {
        const out = m.forward([t0, t1], { mode, regularTrainingStep: false, collectSqueezed: false });
        return tf.add(tf.sum(tf.mul(out.outputs[0], r0)), tf.sum(tf.mul(out.outputs[1], r1))) as tf.Scalar;
      };
      checkGradients(
        m.parameters.map((p) => p.variable),
        loss,
        `${fidelity.rebalanceAverage}/${mode}`,
      );
      for (const t of [t0, t1, r0, r1]) t.dispose();
      m.dispose();
    });
  }
});
