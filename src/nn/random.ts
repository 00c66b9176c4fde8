/**
 * Seeded values for weight initialisation, drawn from the project's one generator (`src/util/rng.ts`).
 *
 * Weights are drawn in JavaScript (not with tfjs random ops) and uploaded, so the same seed gives bit-identical
 * initial weights on every backend. Every parameter has its own stream, named by (seed, parameter name): adding
 * or moving an MMTM does not change the initial weights of the branches, and a uni-modal SE net built with the same
 * seed starts from the same backbone weights as the matching branch of the two-branch net.
 */
import { Rng } from '../util/rng.ts';

/** The stream of a (seed, label) pair, e.g. a parameter name or a dropout call. */
export function labelledStream(seed: number, label: string): Rng {
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new Error(`seed must be an integer in [0, 2^32), got ${seed}`);
  }
  return Rng.from('nn', seed, label);
}

/** `size` values uniform in [−bound, bound) from the stream of (seed, label), rounded to float32. */
export function uniformValues(seed: number, label: string, size: number, bound: number): Float32Array {
  const random = labelledStream(seed, label);
  const values = new Float32Array(size);
  for (let i = 0; i < size; i++) values[i] = (2 * random.uniform() - 1) * bound;
  return values;
}

/**
 * `size` values from N(0, std²) from the stream of (seed, label), rounded to float32 (used by the Kaiming-normal
 * initialisation of bias-free convolutions).
 */
export function normalValues(seed: number, label: string, size: number, std: number): Float32Array {
  const random = labelledStream(seed, label);
  const values = new Float32Array(size);
  for (let i = 0; i < size; i++) values[i] = std * random.normal();
  return values;
}
