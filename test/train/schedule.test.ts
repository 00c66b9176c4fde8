import { describe, expect, it } from 'vitest';
import { CompletedStopping, ReduceLROnPlateau } from '../../src/train/schedule.ts';

const opts = { factor: 0.3, patience: 10, threshold: 1e-3, minLr: 1e-6, eps: 1e-8 };

describe('ReduceLROnPlateau', () => {
  it('reduces after the 11th bad epoch and resets the counter', () => {
    const s = new ReduceLROnPlateau(opts);
    let lr = 0.01;
    const lrs: number[] = [];
    // Epoch 1 sets best = 1.0; then 12 epochs that do not beat 1.0·(1 − 1e-3).
    const losses = [1.0, ...Array(12).fill(0.9995)];
    for (const l of losses) {
      lr = s.step(l, lr);
      lrs.push(lr);
    }
    // bad epochs 1…10 keep the LR; the 11th bad (12th epoch overall) reduces it.
    expect(lrs.slice(0, 11)).toEqual(Array(11).fill(0.01));
    expect(lrs[11]).toBeCloseTo(0.003, 12);
    expect(lrs[12]).toBeCloseTo(0.003, 12);
    expect(s.getState().badEpochs).toBe(1);
  });

  it('an improvement must beat best·(1 − threshold) and resets the count', () => {
    const s = new ReduceLROnPlateau(opts);
    s.step(1.0, 0.1);
    s.step(0.9991, 0.1); // not < 0.999 → bad
    expect(s.getState()).toEqual({ best: 1.0, badEpochs: 1 });
    s.step(0.9989, 0.1); // < 0.999 → improvement
    expect(s.getState()).toEqual({ best: 0.9989, badEpochs: 0 });
  });

  it('never goes below minLr and skips changes smaller than eps', () => {
    const s = new ReduceLROnPlateau({ ...opts, patience: 0 });
    let lr = 2e-6;
    lr = s.step(1, lr); // improvement (best was ∞)
    lr = s.step(1, lr); // bad → reduce to max(6e-7, 1e-6) = 1e-6
    expect(lr).toBe(1e-6);
    lr = s.step(1, lr); // bad → max(3e-7, 1e-6) = 1e-6: change 0 ≤ eps → unchanged
    expect(lr).toBe(1e-6);
  });

  it('state round-trips through JSON (best = ∞ included)', () => {
    const s = new ReduceLROnPlateau(opts);
    const fresh = JSON.parse(JSON.stringify(s.getState()));
    const t = new ReduceLROnPlateau(opts);
    t.setState(fresh);
    expect(t.step(5, 0.1)).toBe(0.1);
    expect(t.getState().best).toBe(5);
  });
});

describe('CompletedStopping', () => {
  it('stops after the 5th (not necessarily consecutive) epoch at exactly 100 %', () => {
    const s = new CompletedStopping(5, 299);
    // correct/total per epoch: 100 %, 99.9 %, 100 %, 100 %, 99 %, 100 %, 100 %
    const epochs: [number, number][] = [[10, 10], [999, 1000], [10, 10], [10, 10], [99, 100], [10, 10], [10, 10]];
    const stops = epochs.map(([c, t], i) => s.shouldStop(i + 1, c, t));
    expect(stops).toEqual([false, false, false, false, false, false, true]);
  });

  it('stops at the epoch cap', () => {
    const s = new CompletedStopping(5, 3);
    expect([1, 2, 3].map((e) => s.shouldStop(e, 1, 2))).toEqual([false, false, true]);
  });
});
