import { describe, expect, it } from 'vitest';
import { groupMus, SpeedTracker } from '../../src/train/speed.ts';

describe('µ and d_speed (paper-spec §7)', () => {
  const groups = { theta: [[0, 1], [2]], thetaPrime: [[3, 4], [3, 5]] };

  it('µ is a ratio of group sums (the shared squeeze tensor counts in both primed groups)', () => {
    const gradSq = [1, 3, 2, 0.5, 0.25, 0.75];
    const thetaSq = [4, 4, 8, 1, 1, 2];
    const mu = groupMus(gradSq, thetaSq, groups);
    expect(mu.theta[0]).toBeCloseTo(4 / 8, 12);
    expect(mu.theta[1]).toBeCloseTo(2 / 8, 12);
    expect(mu.thetaPrime[0]).toBeCloseTo(0.75 / 2, 12);
    expect(mu.thetaPrime[1]).toBeCloseTo(1.25 / 3, 12);
  });

  it('d = log10(ΣB0/ΣM0) − log10(ΣB1/ΣM1) over accumulated steps; ln when asked', () => {
    const t = new SpeedTracker('10');
    expect(t.d()).toBeNull();
    expect(t.slowestModality()).toBeNull();
    t.accumulate({ theta: [0.1, 0.2], thetaPrime: [1, 0.2] });
    t.accumulate({ theta: [0.1, 0.2], thetaPrime: [3, 0.2] });
    // s(m1|m0) = log10(4/0.2) = log10 20; s(m0|m1) = log10(0.4/0.4) = 0
    expect(t.conditionalSpeed(0)).toBeCloseTo(Math.log10(20), 12);
    expect(t.conditionalSpeed(1)).toBeCloseTo(0, 12);
    expect(t.d()).toBeCloseTo(Math.log10(20), 12);
    // d > 0 → accelerate m0, as the released code does.
    expect(t.slowestModality()).toBe(0);
    const e = new SpeedTracker('e');
    e.setState(JSON.parse(JSON.stringify(t.getState())));
    expect(e.d()).toBeCloseTo(Math.log(20), 12);
  });

  it('two modalities: d < 0 accelerates m1; the sign of d is kept', () => {
    const t = new SpeedTracker('10');
    t.accumulate({ theta: [1, 0.1], thetaPrime: [1, 1] });
    // s0 = log10(1) = 0, s1 = log10(10) = 1 → d = −1.
    expect(t.d()).toBeCloseTo(-1, 12);
    expect(t.slowestModality()).toBe(1);
  });

  it('reads the named two-modality sums of checkpoints written before the multi-modality change', () => {
    const t = new SpeedTracker('10');
    t.setState({ sums: { theta0: 0.2, theta1: 0.4, theta0Prime: 4, theta1Prime: 0.4 } } as never);
    expect(t.d()).toBeCloseTo(Math.log10(20), 12);
  });

  it('three modalities (§8.6): d = gap between the two most different conditional speeds, the largest s_k is accelerated', () => {
    const t = new SpeedTracker('10', 3);
    t.accumulate({ theta: [1, 1, 1], thetaPrime: [10, 0.1, 1] });
    t.accumulate({ theta: [1, 1, 1], thetaPrime: [10, 0.1, 1] });
    // Σµ(θk) = 2 each; Σµ(θk′) = 20, 0.2, 2 → s = (1, −1, 0): d = 1 − (−1) = 2, slowest m0.
    expect(t.conditionalSpeed(0)).toBeCloseTo(1, 12);
    expect(t.conditionalSpeed(1)).toBeCloseTo(-1, 12);
    expect(t.conditionalSpeed(2)).toBeCloseTo(0, 12);
    expect(t.d()).toBeCloseTo(2, 12);
    expect(t.slowestModality()).toBe(0);
    t.accumulate({ theta: [0, 0, 0], thetaPrime: [0, 0, 2e3] });
    // s2 = log10(2002/2) ≈ 3.0004 is now the largest: m2 is accelerated, d = s2 − s1.
    expect(t.slowestModality()).toBe(2);
    expect(t.d()).toBeCloseTo(Math.log10(1001) + 1, 12);
    expect(() => t.accumulate({ theta: [1, 1], thetaPrime: [1, 1] })).toThrow(/3 modalities/);
    const restored = new SpeedTracker('10', 3);
    restored.setState(t.getState());
    expect(restored.d()).toBe(t.d());
    expect(() => new SpeedTracker('10', 2).setState(t.getState())).toThrow(/3 modalities/);
  });

  it('d is null while any modality has no accumulated gradient', () => {
    const t = new SpeedTracker('10', 3);
    t.accumulate({ theta: [1, 1, 0], thetaPrime: [1, 1, 1] });
    expect(t.d()).toBeNull();
    expect(t.slowestModality()).toBeNull();
  });
});
