import { describe, expect, it } from 'vitest';
import { sparsityRatio } from '../../src/metrics/sparsity.ts';
import { conditionalUtilization, dSpeedAtBest } from '../../src/metrics/utilization.ts';

describe('conditional utilization (paper-spec §6.1)', () => {
  it('u and d_util from the four accuracies', () => {
    const r = conditionalUtilization({ accF0: 80, accF0Prime: 20, accF1: 90, accF1Prime: 81 });
    expect(r.uM1GivenM0).toBeCloseTo(0.75, 12);
    expect(r.uM0GivenM1).toBeCloseTo(0.1, 12);
    expect(r.dUtil).toBeCloseTo(0.65, 12);
  });

  it('is not clamped: f′ better than f gives negative u and |d_util| may exceed 1', () => {
    const r = conditionalUtilization({ accF0: 10, accF0Prime: 40, accF1: 50, accF1Prime: 5 });
    expect(r.uM1GivenM0).toBeCloseTo(-3, 12);
    expect(r.uM0GivenM1).toBeCloseTo(0.9, 12);
    expect(r.dUtil).toBeCloseTo(-3.9, 12);
  });

  it('a zero accuracy gives null, not NaN', () => {
    const r = conditionalUtilization({ accF0: 0, accF0Prime: 0, accF1: 50, accF1Prime: 25 });
    expect(r.uM1GivenM0).toBeNull();
    expect(r.uM0GivenM1).toBeCloseTo(0.5, 12);
    expect(r.dUtil).toBeNull();
  });

  it('d_speed(f) is the logged d_speed of the best-validation epoch', () => {
    const h = [{ epoch: 1, dSpeed: 0.1 }, { epoch: 2, dSpeed: 0.4 }, { epoch: 3, dSpeed: null }];
    expect(dSpeedAtBest(h, 2)).toBe(0.4);
    expect(dSpeedAtBest(h, 3)).toBeNull();
  });
});

describe('R(f) (paper-spec §10)', () => {
  it('counts |θ| < 1e-7 over all tensors', () => {
    const r = sparsityRatio([Float32Array.of(0, 1e-8, -9e-8, 1e-7), Float32Array.of(-1e-7, 0.5, -2, 0)]);
    // below: 0, 1e-8, -9e-8, 0 → 4 of 8 (1e-7 itself is not below; float32(1e-7) ≥ 1e-7 holds here)
    expect(r).toBe(4 / 8);
  });
});
