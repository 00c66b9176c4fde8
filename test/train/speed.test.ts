import { describe, expect, it } from 'vitest';
import { groupMus, SpeedTracker } from '../../src/train/speed.ts';

describe('µ and d_speed (paper-spec §7)', () => {
  const groups = { theta0: [0, 1], theta1: [2], theta0Prime: [3, 4], theta1Prime: [3, 5] };

  it('µ is a ratio of group sums (the shared squeeze tensor counts in both primed groups)', () => {
    const gradSq = [1, 3, 2, 0.5, 0.25, 0.75];
    const thetaSq = [4, 4, 8, 1, 1, 2];
    const mu = groupMus(gradSq, thetaSq, groups);
    expect(mu.theta0).toBeCloseTo(4 / 8, 12);
    expect(mu.theta1).toBeCloseTo(2 / 8, 12);
    expect(mu.theta0Prime).toBeCloseTo(0.75 / 2, 12);
    expect(mu.theta1Prime).toBeCloseTo(1.25 / 3, 12);
  });

  it('d = log10(ΣB0/ΣM0) − log10(ΣB1/ΣM1) over accumulated steps; ln when asked', () => {
    const t = new SpeedTracker('10');
    expect(t.d()).toBeNull();
    t.accumulate({ theta0: 0.1, theta1: 0.2, theta0Prime: 1, theta1Prime: 0.2 });
    t.accumulate({ theta0: 0.1, theta1: 0.2, theta0Prime: 3, theta1Prime: 0.2 });
    // s(m1|m0) = log10(4/0.2) = log10 20; s(m0|m1) = log10(0.4/0.4) = 0
    expect(t.sM1GivenM0()).toBeCloseTo(Math.log10(20), 12);
    expect(t.sM0GivenM1()).toBeCloseTo(0, 12);
    expect(t.d()).toBeCloseTo(Math.log10(20), 12);
    const e = new SpeedTracker('e');
    e.setState(JSON.parse(JSON.stringify(t.getState())));
    expect(e.d()).toBeCloseTo(Math.log(20), 12);
  });
});
