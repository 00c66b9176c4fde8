import * as fs from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { createCmnistLateFusionNet } from '../../src/nn/cmnist.ts';
import type { ForwardOutput } from '../../src/nn/types.ts';
import { agmSchema } from '../../src/spec/methods.ts';
import { crossEntropy } from '../../src/train/loss.ts';
import { AgmMethod, agmCoefficients, type MaskedForward } from '../../src/train/methods.ts';
import { maskedForward } from '../../src/train/trainer.ts';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('AGM coefficients (official code: run/AVMNIST_main.py)', () => {
  it('c_k = exp(α·(r̃_k − r_k)), r_k = exp(s_other − s_k), r̃_k from the running averages (values from Python math)', () => {
    // Scores 1 and 2 (modality 0 stronger on this batch), averages equal: r = (e, 1/e), r̃ = (1, 1).
    const a = agmCoefficients([1, 2], [1.5, 1.5], 2.5);
    expect(a.ratios[0]).toBeCloseTo(2.718281828459045, 12);
    expect(a.ratios[1]).toBeCloseTo(0.36787944117144233, 12);
    expect(a.targets).toEqual([1, 1]);
    // math.exp(2.5 * (1 - math.e)), math.exp(2.5 * (1 - math.exp(-1)))
    expect(a.coefficients[0]).toBeCloseTo(0.013626967146253444, 12);
    expect(a.coefficients[1]).toBeCloseTo(4.85641930123541, 12);
    // Averages 0.5 and 1 give r̃ = (e^0.5, e^-0.5): math.exp(1.0 * (math.exp(0.5) - math.e)),
    // math.exp(1.0 * (math.exp(-0.5) - math.exp(-1)))
    const b = agmCoefficients([1, 2], [0.5, 1], 1);
    expect(b.targets[0]).toBeCloseTo(1.6487212707001282, 12);
    expect(b.coefficients[0]).toBeCloseTo(0.34315928297426235, 12);
    expect(b.coefficients[1]).toBeCloseTo(1.269535668853707, 12);
    // A cap as the CREMA-D script's: math.exp(2.5 * min(1 - math.exp(-1), 0.5)); the uncapped c_0 stays.
    const capped = agmCoefficients([1, 2], [1.5, 1.5], 2.5, 0.5);
    expect(capped.coefficients[1]).toBeCloseTo(3.4903429574618414, 12);
    expect(capped.coefficients[0]).toBe(a.coefficients[0]);
    expect(() => agmCoefficients([1, 2, 3], [0, 0, 0], 1)).toThrow(/two modalities/);
  });
});

/** test/fixtures/agm-reference.py: the official mechanism (backward hooks) in PyTorch on a tiny late-fusion net. */
interface Reference {
  alpha: number;
  classes: number;
  batch: number;
  shapes: Record<string, number[]>;
  params: Record<string, number[]>;
  batches: { x0: number[]; x1: number[]; y: number[] }[];
  steps: { loss: number; scores: number[]; ratios: number[]; targets: number[]; coefficients: number[]; averages: number[]; clipped: boolean; grads: Record<string, number[]> }[];
}
const reference = JSON.parse(fs.readFileSync(new URL('../fixtures/agm-reference.json', import.meta.url), 'utf8')) as Reference;

/** Relative closeness for float32 gradients computed by two frameworks. */
function expectClose(actual: ArrayLike<number>, expected: readonly number[], what: string) {
  expect(actual.length, what).toBe(expected.length);
  const scale = Math.max(1e-6, ...expected.map(Math.abs));
  expected.forEach((e, i) => expect(Math.abs(actual[i]! - e) / scale, `${what}[${i}]: ${actual[i]} vs ${e}`).toBeLessThan(2e-5));
}

describe('AGM step against the PyTorch reference (tiny late-fusion net, three steps)', () => {
  const names = Object.keys(reference.params);
  const B = reference.batch;

  function setup(options: Partial<ReturnType<typeof agmSchema.parse>> = {}) {
    const v = Object.fromEntries(names.map((n) => [n, tf.variable(tf.tensor(reference.params[n]!, reference.shapes[n]!), true, `agm-ref-${n}-${Math.random()}`)]));
    const forward = (x0: tf.Tensor, x1: tf.Tensor) =>
      tf.add(
        tf.add(tf.matMul(tf.relu(tf.add(tf.matMul(x0 as tf.Tensor2D, v.A0 as tf.Tensor2D), v.a0!)), v.W0 as tf.Tensor2D), tf.matMul(tf.relu(tf.add(tf.matMul(x1 as tf.Tensor2D, v.A1 as tf.Tensor2D), v.a1!)), v.W1 as tf.Tensor2D)),
        v.b!,
      ) as tf.Tensor2D;
    const method = new AgmMethod(agmSchema.parse({ alpha: reference.alpha, ...options }), [v.W0!, v.W1!], 2);
    const step = (i: number, epoch = 1) => {
      const batch = reference.batches[i]!;
      const x0 = tf.tensor2d(batch.x0, [B, 3]);
      const x1 = tf.tensor2d(batch.x1, [B, 2]);
      const oneHot = tf.oneHot(tf.tensor1d(batch.y, 'int32'), reference.classes).toFloat() as tf.Tensor2D;
      method.onEpochBegin(epoch); // sets the epoch only
      const masked: MaskedForward = (zeroed) => forward(zeroed.includes(0) ? tf.zerosLike(x0) : x0, zeroed.includes(1) ? tf.zerosLike(x1) : x1);
      const { value, grads } = tf.variableGrads(() => method.loss({ logits: forward(x0, x1), branchLogits: [], branchFeatures: [] } as ForwardOutput, oneHot, masked), Object.values(v));
      method.modifyGradients(grads);
      const out = { loss: value.dataSync()[0]!, grads: Object.fromEntries(names.map((n) => [n, grads[v[n]!.name]!.dataSync().slice()])), plain: () => plainGrads(forward, x0, x1, oneHot, Object.values(v)) };
      tf.dispose([value, ...Object.values(grads)]);
      return { ...out, x0, x1, oneHot };
    };
    return { v, method, step, dispose: () => tf.dispose(Object.values(v)) };
  }

  /** Gradients of plain CE(ŷ) (no AGM), keyed like the reference. */
  function plainGrads(forward: (a: tf.Tensor, b: tf.Tensor) => tf.Tensor2D, x0: tf.Tensor, x1: tf.Tensor, oneHot: tf.Tensor2D, vars: tf.Variable[]) {
    const { value, grads } = tf.variableGrads(() => crossEntropy(forward(x0, x1), oneHot), vars);
    const out = vars.map((x) => grads[x.name]!.dataSync().slice());
    tf.dispose([value, ...Object.values(grads)]);
    return out;
  }

  it('matches scores, coefficients, running averages, the clip guard and every gradient of the official code', () => {
    // The fixture exercises both branches of the clip guard and coefficients well away from 1.
    expect(reference.steps.map((s) => s.clipped)).toContain(true);
    expect(reference.steps.map((s) => s.clipped)).toContain(false);
    const { method, step, dispose } = setup();
    reference.steps.forEach((expected, i) => {
      const got = step(i);
      expect(got.loss).toBeCloseTo(expected.loss, 5);
      method.last.scores.forEach((s, k) => expect(s).toBeCloseTo(expected.scores[k]!, 5));
      method.last.ratios.forEach((r, k) => expect(r / expected.ratios[k]!).toBeCloseTo(1, 5));
      method.last.targets.forEach((r, k) => expect(r / expected.targets[k]!).toBeCloseTo(1, 5));
      method.last.coefficients.forEach((c, k) => expect(c / expected.coefficients[k]!).toBeCloseTo(1, 4));
      expect(method.getState()).toMatchObject({ steps: i + 1 });
      (method.getState().averages as number[]).forEach((a, k) => expect(a).toBeCloseTo(expected.averages[k]!, 5));
      expect(method.last.clipped).toBe(expected.clipped);
      for (const n of names) expectClose(got.grads[n]!, expected.grads[n]!, `step ${i + 1} ∂/∂${n}`);
    });
    dispose();
  });

  it('resumes from getState exactly, and outside the window leaves the plain gradient (c = 1) while the averages move on', () => {
    const a = setup({ gradientClip: false });
    a.step(0);
    const state = JSON.parse(JSON.stringify(a.method.getState()));
    const second = a.step(1);
    const b = setup({ gradientClip: false });
    b.method.setState(state);
    const resumed = b.step(1);
    for (const n of names) expect(Array.from(resumed.grads[n]!)).toEqual(Array.from(second.grads[n]!));
    expect(b.method.last).toEqual(a.method.last);

    // endEpoch 1: epoch 2 is outside the window.
    const c = setup({ endEpoch: 1, gradientClip: false });
    c.step(0, 1);
    const outside = c.step(1, 2);
    expect(c.method.last.coefficients).toEqual([1, 1]);
    expect(c.method.getState()).toMatchObject({ steps: 2 });
    const plain = outside.plain();
    names.forEach((n, i) => expectClose(outside.grads[n]!, Array.from(plain[i]!), `outside ∂/∂${n}`));
    // The step inside the window was modulated: its gradient differs from the plain one.
    expect(a.method.last.coefficients.every((x) => Math.abs(x - 1) > 1e-3)).toBe(true);
    [a, b, c].forEach((s) => s.dispose());
  });
});

describe("the trainer's masked forward", () => {
  it('zeroes exactly the named modality and runs in inference mode (BatchNorm running statistics untouched)', () => {
    const net = createCmnistLateFusionNet({ channels: [3, 1], numClasses: 4, seed: 5, width: 0.25 });
    let s = 11;
    const rand = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 4294967296) * 2 - 1;
    const x = [3, 1].map((c) => tf.tensor(Float32Array.from({ length: 2 * 12 * 12 * c }, rand), [2, 12, 12, c]));
    // Move the running statistics away from their initial values first.
    net.forward(x, { mode: 'regular', training: true });
    const before = net.getState();
    const masked = maskedForward(net, x);
    const zeroFirst = masked([0]).arraySync();
    const zeroSecond = masked([1]).arraySync();
    expect(net.getState()).toEqual(before);
    const infer = (inputs: tf.Tensor[]) => net.forward(inputs, { mode: 'regular', training: false }).logits.arraySync();
    expect(zeroFirst).toEqual(infer([tf.zerosLike(x[0]!), x[1]!]));
    expect(zeroSecond).toEqual(infer([x[0]!, tf.zerosLike(x[1]!)]));
    expect(zeroFirst).not.toEqual(zeroSecond);
    net.dispose();
  });
});
