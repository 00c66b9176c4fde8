import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';
import { describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.ts';

/**
 * Our Sum and Mean gradients (tile dy over the reduced axes instead of multiplying by a full tensor of ones) against
 * the rule written out by hand: dx[i] = dy[the reduced index of i] (Sum), that divided by the count in float32
 * (Mean), with −0, ±∞ and NaN in dy carried through as dy·1 carries them.
 */

// initBackend installs the gradients; the native backend too where it loads (its Tile and RealDiv kernels).
const backends = ['cpu'];
try {
  await initBackend('tensorflow');
  backends.push('tensorflow');
} catch (error) {
  console.log(`[test/backend/gradients] native backend not available, cpu only: ${(error as Error).message}`);
}
await initBackend('cpu');

function reductionGradientCase(kind: 'sum' | 'mean', axis: number[], keepDims: boolean): { got: number[]; expected: number[] } {
  const shape = [2, 3, 4, 5];
  const outShape = shape.map((d, a) => (axis.includes(a) ? 1 : d));
  const dySize = outShape.reduce((a, b) => a * b, 1);
  const special = [-0, Infinity, -Infinity, NaN];
  const dy = Float32Array.from({ length: dySize }, (_, i) => special[i] ?? (i * 0.37 - 3.1) / 7);
  const count = axis.reduce((n, a) => n * shape[a]!, 1);
  const expected: number[] = [];
  const index = (flat: number) => {
    const coords = shape.map(() => 0);
    for (let a = shape.length - 1; a >= 0; a--) {
      coords[a] = flat % shape[a]!;
      flat = Math.floor(flat / shape[a]!);
    }
    return coords.reduce((o, c, a) => o * outShape[a]! + (axis.includes(a) ? 0 : c), 0);
  };
  for (let i = 0; i < shape.reduce((a, b) => a * b, 1); i++) {
    const d = dy[index(i)]!;
    expected.push(kind === 'sum' ? d : Math.fround(d / count));
  }
  const got = tf.tidy(() => {
    const x = tf.zeros(shape);
    const f = (t: tf.Tensor) => (kind === 'sum' ? tf.sum(t, axis, keepDims) : tf.mean(t, axis, keepDims));
    const y = f(x);
    // dy handed to tf.grad directly: no other reduction's gradient on the way.
    const grad = tf.grad((t: tf.Tensor) => f(t))(x, tf.tensor(dy, y.shape));
    return Array.from(grad.dataSync());
  });
  return { got, expected };
}

describe.each(backends)('Sum and Mean gradients on %s', (backend) => {
  for (const kind of ['sum', 'mean'] as const) {
    for (const [axis, keepDims] of [[[1, 2], false], [[0, 3], true], [[0, 1, 2, 3], false], [[3], false]] as const) {
      it(`${kind} over axes ${axis.join(',')}${keepDims ? ' (keepDims)' : ''}: dy spread over the reduced axes${kind === 'mean' ? ', divided by the count' : ''}`, () => {
        tf.setBackend(backend);
        const { got, expected } = reductionGradientCase(kind, [...axis], keepDims);
        expect(got).toEqual(expected);
      });
    }
  }
});
