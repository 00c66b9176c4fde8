import { describe, expect, it } from 'vitest';
import { hashSeedParts, Rng, seededPermutation } from '../../src/util/rng.ts';

describe('Rng', () => {
  it('is xoshiro128**: matches the reference C implementation from state (1, 2, 3, 4)', () => {
    // Output of the reference xoshiro128starstar.c (Blackman & Vigna) for s = {1, 2, 3, 4}, computed with gcc.
    const rng = Rng.fromState([1, 2, 3, 4]);
    expect(Array.from({ length: 6 }, () => rng.nextUint32())).toEqual([11520, 0, 5927040, 70819200, 2031721883, 1637235492]);
  });

  it('is deterministic per seed parts and differs between streams', () => {
    const draw = (r: Rng) => Array.from({ length: 8 }, () => r.nextUint32());
    expect(draw(Rng.from('x', 1))).toEqual(draw(Rng.from('x', 1)));
    expect(draw(Rng.from('x', 1))).not.toEqual(draw(Rng.from('x', 2)));
    expect(draw(Rng.from('x', 1))).not.toEqual(draw(Rng.from('y', 1)));
    // Order of parts, strings vs numbers and large seeds all name different streams.
    expect(hashSeedParts(['a', 1])).not.toBe(hashSeedParts([1, 'a']));
    expect(hashSeedParts(['a'])).not.toBe(hashSeedParts([97]));
    expect(hashSeedParts([2 ** 40])).not.toBe(hashSeedParts([0]));
    expect(() => hashSeedParts([0.5])).toThrow(/safe integer/);
  });

  it('draws uniforms, integers and normals with the right moments', () => {
    const rng = Rng.from('moments', 0);
    const n = 200_000;
    let sum = 0;
    let sumSq = 0;
    let uSum = 0;
    const counts = new Array(7).fill(0);
    for (let i = 0; i < n; i++) {
      const z = rng.normal();
      sum += z;
      sumSq += z * z;
      uSum += rng.uniform();
      counts[rng.int(7)]++;
    }
    // Standard errors: mean 1/√n ≈ 0.0022, variance √(2/n) ≈ 0.0032, uniform mean √(1/12/n) ≈ 0.00065.
    expect(Math.abs(sum / n)).toBeLessThan(0.01);
    expect(Math.abs(sumSq / n - 1)).toBeLessThan(0.015);
    expect(Math.abs(uSum / n - 0.5)).toBeLessThan(0.003);
    // Each of 7 bins expects n/7 ≈ 28571 with sd ≈ 156.
    for (const c of counts) expect(Math.abs(c - n / 7)).toBeLessThan(800);
  });

  it('builds seeded permutations', () => {
    const p = seededPermutation(1000, Rng.from('perm', 3));
    expect(Array.from(p).sort((a, b) => a - b)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(p).toEqual(seededPermutation(1000, Rng.from('perm', 3)));
    expect(p).not.toEqual(seededPermutation(1000, Rng.from('perm', 4)));
    let fixed = 0;
    for (let i = 0; i < 1000; i++) if (p[i] === i) fixed++;
    expect(fixed).toBeLessThan(10); // a uniform permutation has 1 fixed point on average
  });
});
