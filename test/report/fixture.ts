/**
 * Hand-made results with known values for the report tests: three studies (a CMNIST Table 1 study, a ModelNet40
 * learning-rate sweep, a ModelNet40 L1 study), written into a real results store by `insertFixture`.
 * The expected numbers in the tests are computed by hand from the values below.
 */
import { sql } from 'drizzle-orm';
import type { Db } from '../../db/client.ts';
import { claimTrialAttempt, markTrialFailed, recordEpochs, recordResult, registerTrials, upsertStudy } from '../../db/store.ts';
import { parseTrialSpec, type TrialSpec } from '../../src/spec/trial.ts';

export interface HandTrial {
  study: string;
  key: string;
  dataset: 'cmnist' | 'modelnet40';
  architecture: 'mmtm' | 'unimodal-se:m0' | 'unimodal-se:m1';
  modalities: 'distinct' | 'duplicate-m0' | 'duplicate-m1';
  algorithm: 'vanilla' | 'guided' | 'random' | 'rubi';
  lr: number;
  l1?: number;
  seed: number;
  status?: 'pending' | 'running' | 'done' | 'failed';
  attempt?: number;
  worker?: string;
  /** Minutes after T0 the trial started / finished. */
  start?: number;
  end?: number;
  result?: {
    testAcc: number;
    accF1?: number;
    dUtil?: number | null;
    dSpeed?: number | null;
    rF?: number;
    diverged?: boolean;
    bestEpoch?: number;
  };
}

export const T0 = new Date('2026-01-05T10:00:00Z');

const cm = (x: Omit<HandTrial, 'study' | 'dataset'>): HandTrial => ({ study: 'rep-cmnist', dataset: 'cmnist', ...x });
const mn = (study: string, x: Omit<HandTrial, 'study' | 'dataset' | 'modalities' | 'algorithm' | 'architecture'>): HandTrial => ({
  study,
  dataset: 'modelnet40',
  modalities: 'distinct',
  algorithm: 'vanilla',
  architecture: 'mmtm',
  ...x,
});

export const HAND_TRIALS: HandTrial[] = [
  // CMNIST vanilla, distinct: test acc 45, 46, 47 → 46.00 ± 1.00 (3); one diverged trial left out of the mean.
  cm({ key: 'cm-van-0', architecture: 'mmtm', modalities: 'distinct', algorithm: 'vanilla', lr: 0.01, seed: 0, worker: 'w1', start: 0, end: 10, result: { testAcc: 45, accF1: 98, dUtil: 0.3, dSpeed: 0.2, rF: 0, bestEpoch: 3 } }),
  cm({ key: 'cm-van-1', architecture: 'mmtm', modalities: 'distinct', algorithm: 'vanilla', lr: 0.01, seed: 1, worker: 'w2', start: 0, end: 12, result: { testAcc: 46, accF1: 98, dUtil: 0.4, dSpeed: 0.3, rF: 0 } }),
  cm({ key: 'cm-van-2', architecture: 'mmtm', modalities: 'distinct', algorithm: 'vanilla', lr: 0.01, seed: 2, worker: 'w1', start: 10, end: 25, attempt: 2, result: { testAcc: 47, accF1: 98, dUtil: 0.5, dSpeed: 0.6, rF: 0 } }),
  cm({ key: 'cm-van-3', architecture: 'mmtm', modalities: 'distinct', algorithm: 'vanilla', lr: 0.01, seed: 3, worker: 'w2', start: 12, end: 14, result: { testAcc: Number.NaN, dUtil: null, dSpeed: null, rF: 0, diverged: true } }),
  // Duplicated gray control: d_util −0.1, 0, 0.1 → E = 0.
  cm({ key: 'cm-dup-0', architecture: 'mmtm', modalities: 'duplicate-m1', algorithm: 'vanilla', lr: 0.01, seed: 0, worker: 'w2', start: 14, end: 20, result: { testAcc: 99, dUtil: -0.1, dSpeed: -0.05, rF: 0 } }),
  cm({ key: 'cm-dup-1', architecture: 'mmtm', modalities: 'duplicate-m1', algorithm: 'vanilla', lr: 0.01, seed: 1, worker: 'w2', start: 20, end: 26, result: { testAcc: 99, dUtil: 0, dSpeed: 0.05, rF: 0 } }),
  cm({ key: 'cm-dup-2', architecture: 'mmtm', modalities: 'duplicate-m1', algorithm: 'vanilla', lr: 0.01, seed: 2, worker: 'w1', start: 25, end: 30, result: { testAcc: 99, dUtil: 0.1, dSpeed: 0.0, rF: 0 } }),
  // Guided: test acc 90, 92, 91 → 91.00 ± 1.00 (3); gray branch ŷ1 99.0, 99.2, 99.4 → 99.20 ± 0.20.
  cm({ key: 'cm-gui-0', architecture: 'mmtm', modalities: 'distinct', algorithm: 'guided', lr: 0.01, seed: 0, worker: 'w1', start: 30, end: 40, result: { testAcc: 90, accF1: 99.0, dUtil: 0.1, dSpeed: 0.05, rF: 0, bestEpoch: 4 } }),
  cm({ key: 'cm-gui-1', architecture: 'mmtm', modalities: 'distinct', algorithm: 'guided', lr: 0.01, seed: 1, worker: 'w2', start: 30, end: 41, result: { testAcc: 92, accF1: 99.2, dUtil: 0.0, dSpeed: 0.1, rF: 0 } }),
  cm({ key: 'cm-gui-2', architecture: 'mmtm', modalities: 'distinct', algorithm: 'guided', lr: 0.01, seed: 2, worker: 'w1', start: 40, end: 50, result: { testAcc: 91, accF1: 99.4, dUtil: 0.2, dSpeed: 0.15, rF: 0 } }),
  // Uni-modal SE: m0 40, 42 (mean 41); m1 99.0, 99.5 (mean 99.25 ± 0.3536) → the best row is m1.
  cm({ key: 'cm-uni0-0', architecture: 'unimodal-se:m0', modalities: 'distinct', algorithm: 'vanilla', lr: 0.01, seed: 0, worker: 'w2', start: 41, end: 45, result: { testAcc: 40 } }),
  cm({ key: 'cm-uni0-1', architecture: 'unimodal-se:m0', modalities: 'distinct', algorithm: 'vanilla', lr: 0.01, seed: 1, worker: 'w2', start: 45, end: 49, result: { testAcc: 42 } }),
  cm({ key: 'cm-uni1-0', architecture: 'unimodal-se:m1', modalities: 'distinct', algorithm: 'vanilla', lr: 0.01, seed: 0, worker: 'w1', start: 50, end: 53, result: { testAcc: 99.0 } }),
  cm({ key: 'cm-uni1-1', architecture: 'unimodal-se:m1', modalities: 'distinct', algorithm: 'vanilla', lr: 0.01, seed: 1, worker: 'w2', start: 50, end: 54, result: { testAcc: 99.5 } }),
  // Not finished: a failed RUBi trial and a pending random one (no results).
  cm({ key: 'cm-rubi-0', architecture: 'mmtm', modalities: 'distinct', algorithm: 'rubi', lr: 0.01, seed: 0, worker: 'w1', start: 53, end: 55, attempt: 3, status: 'failed' }),
  cm({ key: 'cm-rand-0', architecture: 'mmtm', modalities: 'distinct', algorithm: 'random', lr: 0.01, seed: 0, status: 'pending', attempt: 0 }),

  // ModelNet40 lr sweep: lr 0.01 → acc 88, 90 (mean 89, min 88, max 90); lr 0.1 → acc 91, 92 (mean 91.5).
  // d_util: lr 0.01 → −0.2, −0.1; lr 0.1 → 0.0, −0.3.
  mn('rep-mn40-sweep', { key: 'mn-s-a0', lr: 0.01, seed: 0, worker: 'w3', start: 0, end: 30, result: { testAcc: 88, dUtil: -0.2, dSpeed: -0.1, rF: 0 } }),
  mn('rep-mn40-sweep', { key: 'mn-s-a1', lr: 0.01, seed: 1, worker: 'w3', start: 30, end: 60, result: { testAcc: 90, dUtil: -0.1, dSpeed: -0.2, rF: 0 } }),
  mn('rep-mn40-sweep', { key: 'mn-s-b0', lr: 0.1, seed: 0, worker: 'w4', start: 0, end: 28, result: { testAcc: 91, dUtil: 0.0, dSpeed: 0.05, rF: 0 } }),
  mn('rep-mn40-sweep', { key: 'mn-s-b1', lr: 0.1, seed: 1, worker: 'w4', start: 28, end: 61, result: { testAcc: 92, dUtil: -0.3, dSpeed: -0.25, rF: 0 } }),

  // L1 study (lr 0.1): λ 1e-5 → R(f) 0.10, 0.20; λ 1e-3 → R(f) 0.50, 0.70. |d_util| 0.1, 0.2, 0.4, 0.6.
  mn('rep-mn40-l1', { key: 'mn-l-a0', lr: 0.1, l1: 1e-5, seed: 0, worker: 'w3', start: 60, end: 80, result: { testAcc: 90, dUtil: 0.1, dSpeed: 0.1, rF: 0.1 } }),
  mn('rep-mn40-l1', { key: 'mn-l-a1', lr: 0.1, l1: 1e-5, seed: 1, worker: 'w4', start: 61, end: 79, result: { testAcc: 89, dUtil: -0.2, dSpeed: -0.3, rF: 0.2 } }),
  mn('rep-mn40-l1', { key: 'mn-l-b0', lr: 0.1, l1: 1e-3, seed: 0, worker: 'w3', start: 80, end: 95, result: { testAcc: 80, dUtil: 0.4, dSpeed: 0.35, rF: 0.5 } }),
  mn('rep-mn40-l1', { key: 'mn-l-b1', lr: 0.1, l1: 1e-3, seed: 1, worker: 'w4', start: 79, end: 99, result: { testAcc: 78, dUtil: -0.6, dSpeed: -0.5, rF: 0.7 } }),
];

/** Learning curves: cm-gui-0 re-balances in epochs 2–4 (shares 0.4, 0.25, 0); cm-van-0 never does. */
export const HAND_EPOCHS: Record<string, { epoch: number; acc: [number, number, number]; dSpeed: number | null; regular: number; rebalance: number }[]> = {
  'cm-gui-0': [
    { epoch: 1, acc: [60, 55, 90], dSpeed: null, regular: 10, rebalance: 0 },
    { epoch: 2, acc: [75, 65, 95], dSpeed: 0.3, regular: 6, rebalance: 4 },
    { epoch: 3, acc: [85, 80, 98], dSpeed: 0.12, regular: 6, rebalance: 2 },
    { epoch: 4, acc: [90, 85, 99], dSpeed: 0.05, regular: 10, rebalance: 0 },
  ],
  'cm-van-0': [
    { epoch: 1, acc: [40, 35, 90], dSpeed: 0.1, regular: 10, rebalance: 0 },
    { epoch: 2, acc: [43, 38, 96], dSpeed: 0.15, regular: 10, rebalance: 0 },
    { epoch: 3, acc: [45, 39, 98], dSpeed: 0.2, regular: 10, rebalance: 0 },
  ],
};

const minutes = (m: number) => new Date(T0.getTime() + m * 60_000);

export function specOf(t: HandTrial): TrialSpec {
  const unimodal = t.architecture.startsWith('unimodal-se');
  return parseTrialSpec({
    dataset: { name: t.dataset },
    modalities: t.modalities,
    architecture: unimodal ? 'unimodal-se' : 'mmtm',
    unimodalModality: t.architecture === 'unimodal-se:m1' ? 1 : 0,
    algorithm: t.algorithm,
    lr: t.lr,
    l1: t.l1 ?? 0,
    seed: t.seed,
  });
}

/**
 * Writes the fixture through the store's own API (upsertStudy, registerTrials, claimTrialAttempt, recordEpochs,
 * recordResult, markTrialFailed), then sets the start/end times the timeline test expects (the API stamps now()).
 */
export async function insertFixture(db: Db): Promise<void> {
  const studyNames = [...new Set(HAND_TRIALS.map((t) => t.study))];
  for (const name of studyNames) await upsertStudy(db, { id: name, spec: { name }, status: 'done' });
  for (const name of studyNames) {
    await registerTrials(
      db,
      name,
      HAND_TRIALS.filter((t) => t.study === name).map((t) => ({ trialKey: t.key, spec: specOf(t) })),
    );
  }
  for (const t of HAND_TRIALS) {
    const attempt = t.attempt ?? 1;
    if (t.status === 'pending') continue;
    const claim = await claimTrialAttempt(db, t.key, attempt, { worker: t.worker ?? 'w?', backend: 'cpu', device: 'cpu' });
    if (!claim.claimed) throw new Error(`fixture: could not claim ${t.key}`);
    const es = HAND_EPOCHS[t.key];
    if (es) {
      await recordEpochs(
        db,
        t.key,
        attempt,
        es.map((e) => ({
          epoch: e.epoch,
          trainAcc: e.acc[0] + 2,
          trainAcc0: e.acc[1] + 2,
          trainAcc1: Math.min(100, e.acc[2] + 1),
          valAcc: e.acc[0],
          valAcc0: e.acc[1],
          valAcc1: e.acc[2],
          testAcc: e.acc[0],
          testAcc0: e.acc[1],
          testAcc1: e.acc[2],
          loss: 1 / e.epoch,
          lr: 0.01,
          dSpeed: e.dSpeed,
          regularSteps: e.regular,
          rebalanceSteps: e.rebalance,
          wallSeconds: 1,
        })),
      );
    }
    if (t.status === 'failed') {
      await markTrialFailed(db, t.key, attempt, 'fixture: worker crashed');
    } else if (t.result) {
      const r = t.result;
      await recordResult(db, t.key, attempt, {
        // A diverged trial reports NaN accuracies; the store keeps them as NULL.
        testAcc: r.diverged ? Number.NaN : r.testAcc,
        accF0: null,
        accF1: r.accF1 ?? null,
        accF0Prime: null,
        accF1Prime: null,
        uM1GivenM0: null,
        uM0GivenM1: null,
        dUtil: r.dUtil ?? null,
        dSpeed: r.dSpeed ?? null,
        rF: r.rF ?? null,
        bestEpoch: r.bestEpoch ?? null,
        diverged: r.diverged ?? false,
      });
    }
    await db.execute(
      sql`update trials set started_at = ${minutes(t.start!).toISOString()}::timestamptz, finished_at = ${minutes(t.end!).toISOString()}::timestamptz where trial_key = ${t.key}`,
    );
  }
}
