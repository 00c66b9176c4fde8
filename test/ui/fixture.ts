/**
 * A small study "running" in a real results store, written through the store's own API (upsertStudy,
 * registerTrials, claimTrialAttempt, recordEpochs, recordResult) instead of by training: two finished trials on
 * worker w1, one running trial on worker w2 with three epochs, two pending trials. `addEpoch` writes the running
 * trial's next epoch as a worker would.
 *
 * Hand figures for the ETA: finished trials ran 4 and 6 epochs → 5 expected per trial; w1 measured 10 s per epoch,
 * w2 (the only worker running now, one trial) 20 s. Work left: 2 pending × 5 + (5 − 3) = 12 epochs at 1/20 epoch/s
 * → 240 s.
 */
import type { Db } from '../../db/client.ts';
import { claimTrialAttempt, recordEpochs, recordResult, registerTrials, upsertStudy } from '../../db/store.ts';
import { specOf, type HandTrial } from '../report/fixture.ts';

export const LIVE_STUDY = 'live-cmnist';
export const RUNNING_KEY = 'live-run-0';

const trial = (key: string, algorithm: HandTrial['algorithm'], seed: number): HandTrial => ({
  study: LIVE_STUDY,
  key,
  dataset: 'cmnist',
  architecture: 'mmtm',
  modalities: 'distinct',
  algorithm,
  lr: 0.01,
  seed,
});

export const LIVE_TRIALS = {
  done0: trial('live-done-0', 'vanilla', 0),
  done1: trial('live-done-1', 'vanilla', 1),
  running: trial(RUNNING_KEY, 'guided', 0),
  pending0: trial('live-pend-0', 'guided', 1),
  pending1: trial('live-pend-1', 'guided', 2),
};

/** Epoch e of the running (guided) trial: re-balances 2 of 10 steps from epoch 2 on. */
export function runningEpoch(e: number) {
  return {
    epoch: e,
    trainAcc: 50 + 5 * e,
    trainAcc0: 45 + 5 * e,
    trainAcc1: 80 + 3 * e,
    valAcc: 48 + 5 * e,
    valAcc0: 43 + 5 * e,
    valAcc1: 78 + 3 * e,
    testAcc: 48 + 5 * e,
    testAcc0: 43 + 5 * e,
    testAcc1: 78 + 3 * e,
    loss: 1 / e,
    lr: 0.01,
    dSpeed: e === 1 ? null : 0.05 * e,
    regularSteps: e === 1 ? 10 : 8,
    rebalanceSteps: e === 1 ? 0 : 2,
    wallSeconds: 20,
  };
}

function doneEpochs(n: number) {
  return Array.from({ length: n }, (_, i) => ({ epoch: i + 1, trainAcc: 60 + i, trainAcc0: 55 + i, trainAcc1: 90, valAcc: 58 + i, valAcc0: 53 + i, valAcc1: 89, dSpeed: 0.1, regularSteps: 10, rebalanceSteps: 0, wallSeconds: 10 }));
}

export async function insertLiveStudy(db: Db): Promise<void> {
  await upsertStudy(db, { id: LIVE_STUDY, spec: { name: LIVE_STUDY }, status: 'running' });
  await registerTrials(
    db,
    LIVE_STUDY,
    Object.values(LIVE_TRIALS).map((t) => ({ trialKey: t.key, spec: specOf(t), label: `${t.algorithm} lr=${t.lr} seed=${t.seed}` })),
  );
  for (const [t, n, acc] of [
    [LIVE_TRIALS.done0, 4, 45],
    [LIVE_TRIALS.done1, 6, 47],
  ] as const) {
    await finishTrial(db, t.key, 'w1', acc, n);
  }
  await claimTrialAttempt(db, RUNNING_KEY, 1, { worker: 'w2', backend: 'cpu', device: 'cpu' });
  await recordEpochs(db, RUNNING_KEY, 1, [1, 2, 3].map(runningEpoch));
}

/** Claim `key` on `worker`, write `n` epochs of 10 s and a result of test accuracy `acc`. */
export async function finishTrial(db: Db, key: string, worker: string, acc: number, n = 4): Promise<void> {
  await claimTrialAttempt(db, key, 1, { worker, backend: 'cpu', device: 'cpu' });
  await recordEpochs(db, key, 1, doneEpochs(n));
  await recordResult(db, key, 1, {
    testAcc: acc,
    accF0: 40,
    accF1: 98,
    accF0Prime: null,
    accF1Prime: null,
    uM1GivenM0: null,
    uM0GivenM1: null,
    dUtil: 0.3,
    dSpeed: 0.2,
    rF: 0,
    bestEpoch: n,
    epochs: n,
    diverged: false,
  });
}

export async function addEpoch(db: Db, e: number): Promise<void> {
  const outcome = await recordEpochs(db, RUNNING_KEY, 1, [runningEpoch(e)]);
  if (!outcome.applied) throw new Error('fixture: the running trial refused the epoch');
}
