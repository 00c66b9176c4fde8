import { describe, expect, it } from 'vitest';
import { sparsityRatio } from '../../src/metrics/sparsity.ts';
import { dSpeedAtBest, modalityUtilization } from '../../src/metrics/utilization.ts';

describe('conditional utilization (paper-spec §6.1)', () => {
  it('u and d_util from the four accuracies', () => {
    // A(f0) 80, A(f0′) 20, A(f1) 90, A(f1′) 81.
    const r = modalityUtilization([80, 90], [20, 81]);
    expect(r.u[0]).toBeCloseTo(0.75, 12);
    expect(r.u[1]).toBeCloseTo(0.1, 12);
    expect(r.dUtil).toBeCloseTo(0.65, 12);
  });

  it('is not clamped: f′ better than f gives negative u and |d_util| may exceed 1', () => {
    const r = modalityUtilization([10, 50], [40, 5]);
    expect(r.u[0]).toBeCloseTo(-3, 12);
    expect(r.u[1]).toBeCloseTo(0.9, 12);
    expect(r.dUtil).toBeCloseTo(-3.9, 12);
  });

  it('a zero accuracy gives null, not NaN', () => {
    const r = modalityUtilization([0, 50], [0, 25]);
    expect(r.u[0]).toBeNull();
    expect(r.u[1]).toBeCloseTo(0.5, 12);
    expect(r.dUtil).toBeNull();
  });

  it('three modalities (§8.6): u(rest|m_k) each, d_util = max u − min u', () => {
    // u = (80−60)/80 = 0.25, (50−55)/50 = −0.1, (40−30)/40 = 0.25 → d_util = 0.25 − (−0.1) = 0.35.
    const r = modalityUtilization([80, 50, 40], [60, 55, 30]);
    expect(r.u.map((v) => v!)).toEqual([expect.closeTo(0.25, 12), expect.closeTo(-0.1, 12), expect.closeTo(0.25, 12)]);
    expect(r.dUtil).toBeCloseTo(0.35, 12);
    expect(() => modalityUtilization([80], [60])).toThrow(/two or more modalities/);
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
