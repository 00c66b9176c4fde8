import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { RubiHead } from '../../src/train/rubi.ts';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
const ce = (logits: number[], y: number) => {
  const m = Math.max(...logits);
  const lse = m + Math.log(logits.reduce((s, l) => s + Math.exp(l - m), 0));
  return lse - logits[y];
};

describe('RUBi head (paper-spec §9.2)', () => {
  it('masks both branch logits with σ(c1(features_b)) and adds CE(c2(q)) — hand computation', () => {
    const head = new RubiHead(0, 2, 3, 1);
    // c1: weights 0 except the last layer's bias; q = b3 for every sample. c2: identity weight, zero bias.
    const b3 = [0.5, -1, 2];
    head.variables.forEach((v, i) => v.assign(tf.zerosLike(v)));
    head.variables[5].assign(tf.tensor1d(b3));
    head.variables[6].assign(tf.eye(3));
    const l0 = [[1, 2, 3], [0.5, -0.5, 0]];
    const l1 = [[-1, 0, 1], [2, 1, 0]];
    const y = [2, 0];
    const out = {
      branchLogits: [tf.tensor2d(l0), tf.tensor2d(l1)],
      branchFeatures: [tf.tensor2d([[5, 6], [7, 8]]), tf.tensor2d([[0, 0], [0, 0]])],
    };
    const oneHot = tf.oneHot(tf.tensor1d(y, 'int32'), 3).toFloat() as tf.Tensor2D;
    const got = head.loss(out, oneHot).dataSync()[0];
    const mask = b3.map(sigmoid);
    const mean = (f: (i: number) => number) => (f(0) + f(1)) / 2;
    const expected =
      mean((i) => ce(l0[i].map((l, c) => l * mask[c]), y[i])) +
      mean((i) => ce(l1[i].map((l, c) => l * mask[c]), y[i])) +
      mean((i) => ce(b3, y[i]));
    expect(got).toBeCloseTo(expected, 5);
  });

  it('reads the bias branch features through a stop-gradient, and the head itself learns', () => {
    const head = new RubiHead(1, 3, 2, 7);
    const f1 = tf.variable(tf.tensor2d([[0.3, -0.2, 0.9]]));
    const f0 = tf.variable(tf.tensor2d([[1, 1, 1]]));
    const oneHot = tf.tensor2d([[0, 1]]);
    const { grads } = tf.variableGrads(
      () =>
        head.loss(
          { branchLogits: [tf.tensor2d([[0.2, 0.1]]), tf.tensor2d([[0.4, -0.3]])], branchFeatures: [f0, f1] },
          oneHot,
        ),
      [f0, f1, ...head.variables],
    );
    const g1 = grads[f1.name];
    expect(g1 === undefined || Array.from(g1.dataSync()).every((x) => x === 0)).toBe(true);
    const gHead = head.variables.map((v) => grads[v.name]);
    expect(gHead.some((g) => g && Array.from(g.dataSync()).some((x) => x !== 0))).toBe(true);
  });
});
