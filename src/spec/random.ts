import { Rng } from '../util/rng.ts';

/** Round to `digits` significant digits: sampled values are stored and shown exactly as they are trained. */
export function roundSignificant(value: number, digits = 6): number {
  return Number(value.toPrecision(digits));
}

/** `count` values 10^u with u uniform in [log10(min), log10(max)], drawn in order from `seed`. */
export function logUniformSamples(min: number, max: number, count: number, seed: number): number[] {
  const rng = Rng.from('lr-log-uniform', seed);
  const lo = Math.log10(min);
  const hi = Math.log10(max);
  return Array.from({ length: count }, () => roundSignificant(10 ** (lo + (hi - lo) * rng.uniform())));
}

/** `count` log-spaced values from min to max inclusive (ModelNet40's nine LRs, the L1 λ grid). */
export function logSpaced(min: number, max: number, count: number): number[] {
  if (count === 1) return [roundSignificant(min)];
  const lo = Math.log10(min);
  const hi = Math.log10(max);
  return Array.from({ length: count }, (_, k) => roundSignificant(10 ** (lo + ((hi - lo) * k) / (count - 1))));
}
