/**
 * A small seeded PRNG (mulberry32) so that sampled hyper-parameters (the paper's log-uniform learning rates)
 * are reproducible from the seed recorded in the study spec, on every machine and in workflow code.
 */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Round to `digits` significant digits: sampled values are stored and shown exactly as they are trained. */
export function roundSignificant(value: number, digits = 6): number {
  return Number(value.toPrecision(digits));
}

/** `count` values 10^u with u uniform in [log10(min), log10(max)], drawn in order from `seed`. */
export function logUniformSamples(min: number, max: number, count: number, seed: number): number[] {
  const next = mulberry32(seed);
  const lo = Math.log10(min);
  const hi = Math.log10(max);
  return Array.from({ length: count }, () => roundSignificant(10 ** (lo + (hi - lo) * next())));
}

/** `count` log-spaced values from min to max inclusive (ModelNet40's nine LRs, the L1 λ grid). */
export function logSpaced(min: number, max: number, count: number): number[] {
  if (count === 1) return [roundSignificant(min)];
  const lo = Math.log10(min);
  const hi = Math.log10(max);
  return Array.from({ length: count }, (_, k) => roundSignificant(10 ** (lo + ((hi - lo) * k) / (count - 1))));
}
