import { describe, expect, it } from 'vitest';
import type { ForwardMode } from '../../src/nn/types.ts';
import { GuidedBalancer, RandomBalancer, randomModes, type StepReport } from '../../src/train/balancers.ts';

/** A two-modality step report as the speed tracker makes it: d > 0 → m0 is the slowest, else m1. */
function report(mode: ForwardMode, d: number | null): StepReport {
  return { mode, d, slowest: d === null ? null : d > 0 ? 0 : 1 };
}

/** Drive a balancer through epochs of `steps` steps with scripted d values; return the step modes. */
function drive(
  b: GuidedBalancer | RandomBalancer,
  epochs: number,
  steps: number,
  dOf: (globalStep: number) => number | null,
): ForwardMode[][] {
  const out: ForwardMode[][] = [];
  let g = 0;
  for (let e = 1; e <= epochs; e++) {
    b.onEpochBegin(e);
    const modes: ForwardMode[] = [];
    for (let s = 0; s < steps; s++) {
      const mode = b.mode;
      modes.push(mode);
      b.afterStep(report(mode, dOf(g++)));
    }
    out.push(modes);
  }
  return out;
}

const R = 'regular';
const A0 = 'rebalance0';
const A1 = 'rebalance1';

describe('GuidedBalancer (paper-spec §8.2)', () => {
  it('warm-up epoch is regular; after a trigger exactly Q re-balancing steps, direction frozen, across epochs', () => {
    const b = new GuidedBalancer({ alpha: 0.1, q: 3, startEpoch: 2 });
    // d per global step. Epoch 1 (steps 0–5) has huge d but balancing is locked.
    // Epoch 2 starts at step 6: d=0.05 (no trigger), step 7: d=0.5 (trigger k=0); during the window d flips sign
    // (ignored); step 11 is regular and sees d=-0.2 → trigger k=1, window crosses into epoch 3.
    const d = [9, 9, 9, 9, 9, 9, 0.05, 0.5, -5, -5, -5, -0.2, 0, 0, 0, 0.0, 0.0, 0.0];
    const modes = drive(b, 3, 6, (i) => d[i]);
    expect(modes[0]).toEqual([R, R, R, R, R, R]);
    expect(modes[1]).toEqual([R, R, A0, A0, A0, R]);
    expect(modes[2]).toEqual([A1, A1, A1, R, R, R]);
  });

  it('|d| ≤ α and an undefined d never trigger', () => {
    const b = new GuidedBalancer({ alpha: 0.1, q: 5, startEpoch: 1 });
    const modes = drive(b, 1, 4, (i) => [0.1, -0.1, null, 0][i]);
    expect(modes[0]).toEqual([R, R, R, R]);
  });

  it('the decision after a step governs the next forward; state restores exactly mid-window', () => {
    const b = new GuidedBalancer({ alpha: 0.1, q: 5, startEpoch: 1 });
    b.onEpochBegin(1);
    b.afterStep(report(R, 0.3));
    expect(b.mode).toBe(A0);
    b.afterStep(report(A0, null));
    b.afterStep(report(A0, null));
    const c = new GuidedBalancer({ alpha: 0.1, q: 5, startEpoch: 1 });
    c.setState(JSON.parse(JSON.stringify(b.getState())));
    const seq = (x: GuidedBalancer) => {
      const m: ForwardMode[] = [];
      for (let i = 0; i < 5; i++) {
        m.push(x.mode);
        x.afterStep(report(x.mode, -1));
      }
      return m;
    };
    expect(seq(c)).toEqual([A0, A0, A0, R, A1]);
    expect(seq(b)).toEqual([A0, A0, A0, R, A1]);
  });
});

describe('RandomBalancer (paper-spec §8.4)', () => {
  it('is regular in the warm-up epoch, then uniform over the three modes', () => {
    const b = new RandomBalancer({ startEpoch: 2, seed: 5 });
    const modes = drive(b, 2, 3000, () => null);
    expect(new Set(modes[0])).toEqual(new Set([R]));
    // The first step of epoch 2 still runs the mode set at the end of epoch 1 (regular).
    expect(modes[1][0]).toBe(R);
    const counts = { [R]: 0, [A0]: 0, [A1]: 0 } as Record<string, number>;
    modes[1].slice(1).forEach((m) => counts[m]++);
    for (const k of [R, A0, A1]) expect(Math.abs(counts[k] / 2999 - 1 / 3)).toBeLessThan(0.03);
  });

  it('is reproducible from its seed and restores its PRNG state', () => {
    const a = new RandomBalancer({ startEpoch: 1, seed: 11 });
    const first = drive(a, 1, 20, () => null)[0];
    const b = new RandomBalancer({ startEpoch: 1, seed: 11 });
    expect(drive(b, 1, 20, () => null)[0]).toEqual(first);
    const c = new RandomBalancer({ startEpoch: 1, seed: 99 });
    c.setState(JSON.parse(JSON.stringify(a.getState())));
    const next = (x: RandomBalancer) => Array.from({ length: 10 }, () => (x.afterStep(report(x.mode, null)), x.mode));
    expect(next(c)).toEqual(next(a));
    expect(first).not.toEqual(drive(new RandomBalancer({ startEpoch: 1, seed: 12 }), 1, 20, () => null)[0]);
  });
});

describe('balancers with three modalities (paper-spec §8.6)', () => {
  it('guided accelerates the modality the speed tracker names, for exactly Q steps', () => {
    const b = new GuidedBalancer({ alpha: 0.5, q: 2, startEpoch: 1 });
    b.onEpochBegin(1);
    const seen: ForwardMode[] = [];
    // d ≥ 0 is the gap between the most different speeds; `slowest` picks the branch to accelerate.
    const reports: [number | null, number | null][] = [[0.4, 2], [0.9, 2], [0.9, 0], [0.9, 0], [0.7, 1], [0, 1], [0, 1], [0, 1]];
    for (const [d, slowest] of reports) {
      const mode = b.mode;
      seen.push(mode);
      b.afterStep({ mode, d, slowest });
    }
    expect(seen).toEqual([R, R, 'rebalance2', 'rebalance2', R, 'rebalance1', 'rebalance1', R]);
    const c = new GuidedBalancer({ alpha: 0.5, q: 2, startEpoch: 1 });
    b.afterStep({ mode: R, d: 0.6, slowest: 2 });
    c.setState(JSON.parse(JSON.stringify(b.getState())));
    expect(c.mode).toBe('rebalance2');
  });

  it('random draws uniformly over regular and one re-balancing mode per modality, in the code\'s order', () => {
    expect(randomModes(2)).toEqual([R, A1, A0]);
    expect(randomModes(3)).toEqual([R, 'rebalance2', A1, A0]);
    const b = new RandomBalancer({ startEpoch: 1, seed: 3, modalityCount: 3 });
    const modes = drive(b, 1, 4001, () => null)[0]!.slice(1);
    const counts = new Map<string, number>();
    for (const m of modes) counts.set(m, (counts.get(m) ?? 0) + 1);
    expect([...counts.keys()].sort()).toEqual([R, A0, A1, 'rebalance2'].sort());
    for (const n of counts.values()) expect(Math.abs(n / 4000 - 1 / 4)).toBeLessThan(0.03);
  });
});
