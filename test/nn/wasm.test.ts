import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.ts';
import { createCmnistNet } from '../../src/nn/cmnist.ts';
import { uniformValues } from '../../src/nn/random.ts';
import type { ForwardMode } from '../../src/nn/types.ts';
import { FIDELITY_PROFILES } from '../../src/spec/fidelity.ts';

interface StepResult {
  weights: number[][];
  loss: number;
  logits: number[];
  grads: (number[] | null)[];
  state: Record<string, Float32Array>;
}

/** One training forward/backward (loss CE(ŷ0) + CE(ŷ1)) of a freshly seeded small net on the active backend. */
function step(mode: ForwardMode): StepResult {
  const net = createCmnistNet({ channels: [3, 1], numClasses: 10, seed: 21, fidelity: FIDELITY_PROFILES.code, width: 0.25 });
  const x0 = tf.tensor4d(uniformValues(1, 'x0', 4 * 10 * 10 * 3, 1), [4, 10, 10, 3]);
  const x1 = tf.tensor4d(uniformValues(1, 'x1', 4 * 10 * 10, 1), [4, 10, 10, 1]);
  const labels = tf.oneHot(tf.tensor1d([3, 1, 4, 1], 'int32'), 10);
  const weights = net.trainableVariables.map((v) => Array.from(v.dataSync()));
  let logits: number[] = [];
  const { value, grads } = tf.variableGrads(() => {
    const out = net.forward([x0, x1], { mode, training: true, regularTrainingStep: mode === 'regular' });
    logits = Array.from(out.logits.dataSync());
    return tf.add(tf.losses.softmaxCrossEntropy(labels, out.branchLogits[0]), tf.losses.softmaxCrossEntropy(labels, out.branchLogits[1])) as tf.Scalar;
  });
  const result: StepResult = {
    weights,
    loss: value.dataSync()[0]!,
    logits,
    grads: net.trainableVariables.map((v) => (grads[v.name] ? Array.from(grads[v.name]!.dataSync()) : null)),
    state: net.getState(),
  };
  value.dispose();
  for (const g of Object.values(grads)) g.dispose();
  for (const t of [x0, x1, labels]) t.dispose();
  net.dispose();
  return result;
}

function expectNear(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  expect(actual.length, what).toBe(expected.length);
  let scale = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]!));
  let worst = 0;
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
  expect(worst, what).toBeLessThanOrEqual(1e-4 * scale + 1e-7);
}

describe('the CMNIST net on the wasm backend (with our training kernels)', () => {
  it('same seed → identical weights; forward, gradients and state match the cpu backend', async () => {
    await initBackend('cpu');
    const cpu = (['regular', 'rebalance1'] as const).map(step);
    await initBackend('wasm');
    const wasm = (['regular', 'rebalance1'] as const).map(step);
    for (let k = 0; k < 2; k++) {
      const [c, w] = [cpu[k]!, wasm[k]!];
      expect(w.weights).toEqual(c.weights);
      expect(w.loss).toBeCloseTo(c.loss, 4);
      expectNear(w.logits, c.logits, 'logits');
      c.grads.forEach((g, i) => {
        if (g === null) expect(w.grads[i], `gradient ${i}`).toBeNull();
        else expectNear(w.grads[i]!, g, `gradient ${i}`);
      });
      for (const key of Object.keys(c.state)) expectNear(w.state[key]!, c.state[key]!, key);
    }
    // In rebalance1 the excitation-1 tensors (weight and bias of 3 MMTMs) receive no gradient at all.
    expect(cpu[1]!.grads.filter((g) => g === null).length).toBe(6);
  });
});
