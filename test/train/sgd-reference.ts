import * as tf from '@tensorflow/tfjs';
import { Sgd } from '../../src/train/sgd.ts';

/**
 * A scenario for Sgd with every case of its masks: variables of several shapes, one that starts late (its first
 * update while the others continue), one skipped after it started, several skipped together, and a save/restore of
 * the state in between. The reference is PyTorch's rule per variable and element in plain JS, rounded to float32
 * after every operation as a float32 backend does (Math.fround), so Sgd must match it exactly on every backend.
 */
export function sgdAgainstReference(options: { momentum: number; weightDecay: number; restoreAt?: number }): {
  got: number[][];
  expected: number[][];
  bufferAfterFirstStep: (Float32Array | null)[];
} {
  const f = Math.fround;
  const lr = 0.07;
  const { momentum, weightDecay } = options;
  const shapes = [[2, 3], [4], [1, 2, 2], [3]];
  let seed = 12345;
  const next = () => {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    return f(seed / 4294967296 - 0.5);
  };
  const initial = shapes.map((s) => Array.from({ length: s.reduce((a, b) => a * b, 1) }, next));
  // null = the variable has no gradient that step.
  const present = [
    [true, true, true, false],
    [true, true, true, true],
    [true, false, true, true],
    [true, true, true, true],
    [false, true, false, true],
    [true, true, true, true],
  ];
  const gradients = present.map((row) => row.map((p, i) => (p ? initial[i]!.map(() => next()) : null)));

  // Reference.
  const theta = initial.map((v) => [...v]);
  const velocity: (number[] | null)[] = shapes.map(() => null);
  for (const row of gradients) {
    row.forEach((g, i) => {
      if (!g) return;
      const d = g.map((gk, k) => (weightDecay !== 0 ? f(gk + f(theta[i]![k]! * f(weightDecay))) : gk));
      let v = d;
      if (momentum !== 0) {
        const prev = velocity[i];
        v = prev ? d.map((dk, k) => f(f(prev[k]! * f(momentum)) + dk)) : d;
        velocity[i] = v;
      }
      theta[i] = theta[i]!.map((t, k) => f(t - f(v[k]! * f(lr))));
    });
  }

  const variables = initial.map((v, i) => tf.variable(tf.tensor(v, shapes[i])));
  let sgd = new Sgd(variables, { lr, momentum, weightDecay });
  let bufferAfterFirstStep: (Float32Array | null)[] = [];
  gradients.forEach((row, s) => {
    if (s === options.restoreAt) {
      const state = sgd.getState();
      sgd.dispose();
      sgd = new Sgd(variables, { lr: 1, momentum, weightDecay });
      sgd.setState(state);
    }
    const grads = row.map((g, i) => (g ? tf.tensor(g, shapes[i]) : null));
    sgd.step(grads);
    tf.dispose(grads.filter((g): g is tf.Tensor => g !== null));
    if (s === 0) bufferAfterFirstStep = sgd.getState().buffers;
  });
  const got = variables.map((v) => Array.from(v.dataSync()));
  sgd.dispose();
  tf.dispose(variables);
  return { got, expected: theta, bufferAfterFirstStep };
}
