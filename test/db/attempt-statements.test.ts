import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  beginTrialAttempt,
  getResult,
  getTrial,
  recordResult,
  recordTrialProgress,
  registerTrials,
  trialEpochs,
  upsertStudy,
  type Db,
} from '../../db/index.ts';
import { cmnistSpec, result } from './store.suite.ts';
import { pgliteDirectTarget, serverTarget, type OpenTarget, type Target } from './targets.ts';

/**
 * The one-statement writes a trial attempt makes (issue 14: a round trip each instead of a transaction's four or
 * five): beginTrialAttempt (claim + spec + recorded epochs), recordTrialProgress (discard + epoch upserts, fenced)
 * and recordResult (fenced by its own update). The story is one trial resumed by a second attempt while the first
 * keeps writing; every expected row is written out by hand.
 */
for (const target of [serverTarget, pgliteDirectTarget] as Target[]) {
  describe(`attempt statements on ${target.name}`, () => {
    let t: OpenTarget;
    let db: Db;
    beforeAll(async () => {
      t = await target.open();
      db = t.handle.db;
      await upsertStudy(db, { id: 'attempts', spec: {} });
    });
    afterAll(async () => {
      await t?.cleanup();
    });

    const rows = async (key: string) => (await trialEpochs(db, key)).map((e) => [e.epoch, e.attempt, e.trainAcc]);

    it('begins attempts: claims the next one, hands back the spec and the highest recorded epoch; done and unknown trials', async () => {
      const spec = cmnistSpec({ seed: 101 });
      await registerTrials(db, 'attempts', [{ trialKey: 'begin-a', spec }]);
      expect(await beginTrialAttempt(db, 'begin-missing', 'w')).toBeNull();

      const first = await beginTrialAttempt(db, 'begin-a', 'w1');
      expect(first).toEqual({ claimed: true, attempt: 1, spec: JSON.parse(JSON.stringify(spec)), recordedEpoch: 0 });
      expect(await getTrial(db, 'begin-a')).toMatchObject({ status: 'running', attempt: 1, worker: 'w1', error: null, finishedAt: null });

      expect((await recordTrialProgress(db, 'begin-a', 1, { epochs: [{ epoch: 1, trainAcc: 10 }, { epoch: 2, trainAcc: 20 }] })).applied).toBe(true);
      const second = await beginTrialAttempt(db, 'begin-a', 'w2');
      expect(second).toMatchObject({ claimed: true, attempt: 2, recordedEpoch: 2 });
      expect(await getTrial(db, 'begin-a')).toMatchObject({ status: 'running', attempt: 2, worker: 'w2' });

      expect(await recordResult(db, 'begin-a', 2, result())).toEqual({ applied: true, currentAttempt: 2, status: 'done' });
      expect(await beginTrialAttempt(db, 'begin-a', 'w3')).toEqual({ claimed: false, reason: 'done', attempt: 2 });
      expect(await getTrial(db, 'begin-a')).toMatchObject({ status: 'done', attempt: 2, worker: 'w2' });
    });

    it('records progress fenced: a resumed attempt discards the lost rows and rewrites them in one write; the old attempt changes nothing', async () => {
      await registerTrials(db, 'attempts', [{ trialKey: 'progress-a', spec: cmnistSpec({ seed: 102 }) }]);
      // Not claimed yet: attempt 1 owns nothing.
      expect(await recordTrialProgress(db, 'progress-a', 1, { epochs: [{ epoch: 1, trainAcc: 1 }] })).toEqual({ applied: false, currentAttempt: 0, status: 'pending' });
      await beginTrialAttempt(db, 'progress-a', 'old');
      expect(await recordTrialProgress(db, 'progress-a', 1, { discardAfter: 0, epochs: [{ epoch: 1, trainAcc: 11 }, { epoch: 2, trainAcc: 12 }, { epoch: 3, trainAcc: 13 }] })).toEqual({
        applied: true,
        currentAttempt: 1,
        status: 'running',
      });
      expect(await rows('progress-a')).toEqual([[1, 1, 11], [2, 1, 12], [3, 1, 13]]);

      // Attempt 2 resumes from the epoch-1 checkpoint: rows 2 and 3 are the lost attempt's. Its first write discards
      // after 1 and brings its own epoch 2 (a row the discard also covers: the statement must not touch it twice).
      expect(await beginTrialAttempt(db, 'progress-a', 'new')).toMatchObject({ claimed: true, attempt: 2, recordedEpoch: 3 });
      // The zombie attempt 1 keeps writing: nothing changes, it learns attempt 2 owns the trial.
      expect(await recordTrialProgress(db, 'progress-a', 1, { discardAfter: 0, epochs: [{ epoch: 4, trainAcc: 99 }] })).toEqual({ applied: false, currentAttempt: 2, status: 'running' });
      expect(await rows('progress-a')).toEqual([[1, 1, 11], [2, 1, 12], [3, 1, 13]]);
      expect((await recordTrialProgress(db, 'progress-a', 2, { discardAfter: 1, epochs: [{ epoch: 2, trainAcc: 22 }] })).applied).toBe(true);
      expect(await rows('progress-a')).toEqual([[1, 1, 11], [2, 2, 22]]);
      // A discard alone, and epochs alone.
      expect((await recordTrialProgress(db, 'progress-a', 2, { epochs: [{ epoch: 3, trainAcc: 23 }] })).applied).toBe(true);
      expect((await recordTrialProgress(db, 'progress-a', 2, { discardAfter: 2 })).applied).toBe(true);
      expect(await rows('progress-a')).toEqual([[1, 1, 11], [2, 2, 22]]);

      // Every column of an epoch row, non-finite numbers as NULL, branch accuracies as JSON.
      expect(
        (await recordTrialProgress(db, 'progress-a', 2, {
          epochs: [{ epoch: 3, trainAcc: 33, valAcc: 30, testAcc0: 5, loss: Number.NaN, lr: 0.01, dSpeed: -0.5, regularSteps: 7.4, rebalanceSteps: 2, wallSeconds: 1.25, branchAcc: { train: [1, Number.POSITIVE_INFINITY], val: [2], test: [] } }],
        })).applied,
      ).toBe(true);
      const [, , third] = await trialEpochs(db, 'progress-a');
      expect(third).toMatchObject({ epoch: 3, attempt: 2, trainAcc: 33, valAcc: 30, testAcc0: 5, loss: null, lr: 0.01, dSpeed: -0.5, regularSteps: 7, rebalanceSteps: 2, wallSeconds: 1.25, branchAcc: { train: [1, null], val: [2], test: [] } });
      expect(third.trainAcc0).toBeNull();

      // The result: attempt 1's is refused (and says who owns the trial), attempt 2's lands with every column.
      expect(await recordResult(db, 'progress-a', 1, result({ testAcc: 0.01 }))).toEqual({ applied: false, currentAttempt: 2, status: 'running' });
      expect(await getResult(db, 'progress-a')).toBeNull();
      expect(await recordResult(db, 'progress-a', 2, result({ testAcc: 0.5, dUtil: Number.NaN, epochs: 3, backend: 'wasm', device: 'wasm simd' }))).toEqual({
        applied: true,
        currentAttempt: 2,
        status: 'done',
      });
      expect(await getResult(db, 'progress-a')).toMatchObject({ attempt: 2, testAcc: 0.5, accF: 0.5, accF0: 0.8, dUtil: null, bestEpoch: 3, stepsT: 1200, epochs: 3, diverged: false, raw: { backend: 'wasm', dUtil: 'NaN' } });
      expect(await getTrial(db, 'progress-a')).toMatchObject({ status: 'done', attempt: 2, backend: 'wasm', device: 'wasm simd' });
      // After the result, attempt 1 still cannot write; a result for an unknown trial is an error naming it.
      expect(await recordResult(db, 'progress-a', 1, result())).toEqual({ applied: false, currentAttempt: 2, status: 'done' });
      await expect(recordResult(db, 'progress-missing', 1, result())).rejects.toThrow(/progress-missing/);
      await expect(recordTrialProgress(db, 'progress-missing', 1, { epochs: [] })).rejects.toThrow(/progress-missing/);
    });
  });
}
