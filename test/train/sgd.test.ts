import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { Sgd } from '../../src/train/sgd.ts';
import { sgdAgainstReference } from './sgd-reference.ts';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('Sgd (PyTorch semantics)', () => {
  it('matches a hand computation with momentum and weight decay over three steps', () => {
    const theta = tf.variable(tf.tensor1d([1, -2]));
    const sgd = new Sgd([theta], { lr: 0.1, momentum: 0.9, weightDecay: 0.01 });
    const grads = [
      [0.5, 1],
      [-1, 0.25],
      [2, -3],
    ];
    // Hand computation in float64 (the tolerance covers float32 rounding).
    let t = [1, -2];
    let v: number[] | null = null;
    for (const g of grads) {
      const d = g.map((gi, i) => gi + 0.01 * t[i]);
      v = v ? v.map((vi, i) => 0.9 * vi + d[i]) : d;
      t = t.map((ti, i) => ti - 0.1 * v![i]);
      sgd.step([tf.tensor1d(g)]);
    }
    const got = Array.from(theta.dataSync());
    got.forEach((x, i) => expect(x).toBeCloseTo(t[i], 6));
  });

  it('first step uses the gradient itself as the momentum buffer', () => {
    const theta = tf.variable(tf.tensor1d([3]));
    const sgd = new Sgd([theta], { lr: 0.5, momentum: 0.9, weightDecay: 0 });
    sgd.step([tf.tensor1d([2])]);
    expect(theta.dataSync()[0]).toBeCloseTo(3 - 0.5 * 2, 7);
    expect(Array.from(sgd.getState().buffers[0]!)).toEqual([2]);
    sgd.step([tf.tensor1d([1])]);
    // v = 0.9·2 + 1 = 2.8
    expect(theta.dataSync()[0]).toBeCloseTo(2 - 0.5 * 2.8, 6);
  });

  it('a null gradient leaves the variable and its buffer untouched', () => {
    const a = tf.variable(tf.tensor1d([1]));
    const b = tf.variable(tf.tensor1d([1]));
    const sgd = new Sgd([a, b], { lr: 1, momentum: 0.9, weightDecay: 0.5 });
    sgd.step([tf.tensor1d([1]), null]);
    expect(a.dataSync()[0]).toBeCloseTo(1 - 1.5, 7);
    expect(b.dataSync()[0]).toBe(1);
    expect(sgd.getState().buffers[1]).toBeNull();
  });

  it('save/restore of the slots continues bit-for-bit', () => {
    const run = (restoreAt: number | null) => {
      const theta = tf.variable(tf.tensor1d([0.3, -0.7, 1.1]));
      let sgd = new Sgd([theta], { lr: 0.03, momentum: 0.9, weightDecay: 1e-3 });
      for (let s = 0; s < 6; s++) {
        if (s === restoreAt) {
          const state = sgd.getState();
          const values = theta.dataSync().slice();
          sgd = new Sgd([theta], { lr: 0.5, momentum: 0.9, weightDecay: 1e-3 });
          theta.assign(tf.tensor1d([9, 9, 9]));
          sgd.setState(state);
          theta.assign(tf.tensor1d(values));
        }
        sgd.step([tf.tensor1d([Math.sin(s), Math.cos(s), s / 7])]);
      }
      return Array.from(theta.dataSync());
    };
    expect(run(3)).toEqual(run(null));
  });
});

describe('Sgd on all variables at once (one flat update)', () => {
  for (const [momentum, weightDecay] of [
    [0.9, 0.01],
    [0.9, 0],
    [0, 0.01],
  ] as const) {
    it(`equals PyTorch's per-variable rule in float32 exactly, with skipped and late-starting variables (momentum ${momentum}, weight decay ${weightDecay})`, () => {
      const { got, expected, bufferAfterFirstStep } = sgdAgainstReference({ momentum, weightDecay });
      expect(got).toEqual(expected);
      // The variable without gradient at the first step has no buffer yet.
      expect(bufferAfterFirstStep[3]).toBeNull();
      if (momentum !== 0) expect(bufferAfterFirstStep[0]).not.toBeNull();
    });
  }

  it('a save/restore after masked steps continues exactly', () => {
    for (const restoreAt of [1, 3, 5]) {
      const { got, expected } = sgdAgainstReference({ momentum: 0.9, weightDecay: 0.01, restoreAt });
      expect(got, `restored before step ${restoreAt}`).toEqual(expected);
    }
  });
});
