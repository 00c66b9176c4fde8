import { describe, expect, it } from 'vitest';
import { buildMethodTable } from '../../src/report/methods.ts';
import type { ReportResult, ReportTrial } from '../../src/report/model.ts';

const t0 = new Date('2026-12-02T10:00:00Z');
const trial = (key: string, algorithm: ReportTrial['algorithm'], architecture: ReportTrial['architecture'], result: Partial<ReportResult> | null, seconds: number): ReportTrial => ({
  studyNames: ['s'],
  trialKey: key,
  column: 'cmnist:heldOutVal=5000',
  modalities: 'distinct',
  architecture,
  unimodalModality: null,
  algorithm,
  profile: 'paper',
  lr: 0.01,
  seed: 0,
  l1: 0,
  alpha: null,
  q: null,
  status: 'done',
  attempts: 1,
  worker: null,
  startedAt: t0,
  finishedAt: new Date(t0.getTime() + seconds * 1000),
  result: result && {
    testAcc: 0, accF: null, accF0: null, accF1: null, accF0Prime: null, accF1Prime: null, uM1GivenM0: null, uM0GivenM1: null,
    dUtil: null, dSpeed: null, rF: null, bestEpoch: 1, diverged: false, ...result,
  },
});

describe('method-comparison table', () => {
  it('mean ± sample std per condition over its non-diverged trials (hand computation), MMTM before late fusion', () => {
    const rows = buildMethodTable([
      trial('a', 'ogm-ge', 'late-fusion', { testAcc: 80, accF0: 80, accF1: 80, accF0Prime: 40, accF1Prime: 70, dUtil: 0.4, dSpeed: 1 }, 100),
      trial('b', 'ogm-ge', 'late-fusion', { testAcc: 90, accF0: 90, accF1: 90, accF0Prime: 50, accF1Prime: 60, dUtil: 0.2, dSpeed: 3 }, 140),
      trial('c', 'ogm-ge', 'late-fusion', { testAcc: 10, diverged: true }, 5),
      trial('d', 'vanilla', 'mmtm', { testAcc: 70, dUtil: 0.5, dSpeed: -1 }, 60),
      trial('e', 'vanilla', 'mmtm', null, 0),
    ]);
    expect(rows.map((r) => r.condition)).toEqual(['cmnist:heldOutVal=5000 · distinct · vanilla', 'cmnist:heldOutVal=5000 · late fusion · distinct · ogm-ge']);
    const ogm = rows[1]!;
    expect(ogm.n).toBe(2);
    expect(ogm.n_diverged).toBe(1);
    expect(ogm.test_acc_mean).toBe(85);
    expect(ogm.test_acc_std).toBeCloseTo(Math.sqrt(50), 12); // (80 − 85)² + (90 − 85)² over n − 1 = 1
    expect(ogm.acc_f0_prime_mean).toBe(45);
    expect(ogm.acc_f1_prime_mean).toBe(65);
    expect(ogm.d_util_mean).toBeCloseTo(0.3, 12);
    expect(ogm.d_util_std).toBeCloseTo(Math.sqrt(0.02), 12);
    expect(ogm.d_speed_mean).toBe(2);
    expect(ogm.wall_seconds_mean).toBe(120);
    expect(ogm.wall_seconds_std).toBeCloseTo(Math.sqrt(800), 12);
    // One trial: no std; missing numbers stay null.
    expect(rows[0]).toMatchObject({ n: 1, test_acc_mean: 70, test_acc_std: null, acc_f0_mean: null, d_speed_mean: -1 });
  });

  it('lists AGM after the other late-fusion methods', () => {
    const rows = buildMethodTable([
      trial('x', 'agm', 'late-fusion', { testAcc: 60 }, 10),
      trial('y', 'mmpareto', 'late-fusion', { testAcc: 50 }, 10),
      trial('z', 'vanilla', 'late-fusion', { testAcc: 40 }, 10),
    ]);
    expect(rows.map((r) => r.condition)).toEqual([
      'cmnist:heldOutVal=5000 · late fusion · distinct · vanilla',
      'cmnist:heldOutVal=5000 · late fusion · distinct · mmpareto',
      'cmnist:heldOutVal=5000 · late fusion · distinct · agm',
    ]);
  });
});
