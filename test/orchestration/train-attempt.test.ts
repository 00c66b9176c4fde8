import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { getResult, getTrial, recordTrialProgress, registerTrials, trialEpochs, upsertStudy } from '../../db/index.ts';
import { dbResultsStore } from '../../activities/db-store.ts';
import { closeSpareRunners, runnerPoolOf } from '../../activities/train-trial.ts';
import { createActivities, type TrainHeartbeat } from '../../activities/index.ts';
import { parseTrialSpec } from '../../src/spec/trial.ts';
import { trialKey } from '../../src/spec/keys.ts';
import { createDatabase, tempDir, waitUntil, type TestDatabase } from './harness.ts';

/**
 * The trainTrial activity's attempt semantics on the real runner and the Postgres server, without Temporal (the
 * activity in a mock context): an attempt cancelled after its first epoch, a row its lost attempt wrote past its
 * checkpoint, and the next attempt resuming exactly after the checkpointed epoch, rewriting what came after it, with
 * its own fencing token. These paths now run through one-statement writes (beginTrialAttempt, recordTrialProgress).
 */
let database: TestDatabase;
let checkpointRoot: string;
const activities: Array<ReturnType<typeof createActivities>> = [];

beforeAll(async () => {
  database = await createDatabase();
  checkpointRoot = tempDir('mmsweep-attempt-ckpt-');
});

afterAll(async () => {
  await Promise.all(activities.map((a) => closeSpareRunners(a.trainTrial)));
  await database?.drop();
  rmSync(checkpointRoot, { recursive: true, force: true });
});

describe('trainTrial attempts', () => {
  it('a cancelled attempt is resumed after its checkpointed epoch; the lost attempt’s later row is replaced; a finished trial is not run again', async () => {
    const db = database.handle.db;
    const spec = parseTrialSpec({ kind: 'noop', sleepMs: 600, epochs: 3, seed: 5 });
    const key = trialKey(spec);
    await upsertStudy(db, { id: 'attempts', spec: {} });
    await registerTrials(db, 'attempts', [{ trialKey: key, spec }]);
    const a = createActivities(dbResultsStore(db), { checkpointRoot, heartbeatIntervalMs: 200, killGraceMs: 500, workerId: 'test-worker' });
    activities.push(a);

    // Attempt 1: cancelled once its first epoch is recorded.
    const first = new MockActivityEnvironment({ attempt: 1 });
    let lastBeat: TrainHeartbeat | undefined;
    first.on('heartbeat', (d: TrainHeartbeat) => (lastBeat = d));
    const running = first.run(a.trainTrial, { studyId: 'attempts', trialKey: key }).then(
      () => null,
      (error: unknown) => error,
    );
    await waitUntil(async () => (await trialEpochs(db, key)).length >= 1, 30_000, () => 'epoch 1 was not recorded');
    first.cancel();
    expect(await running).toBeInstanceOf(CancelledFailure);
    expect((await trialEpochs(db, key)).map((e) => [e.epoch, e.attempt])).toEqual([[1, 1]]);
    expect(lastBeat).toMatchObject({ trialKey: key, attempt: 1, epoch: 1, checkpoint: { epoch: 1 } });
    // The lost attempt also got epoch 2 into the table, but not its checkpoint to disk.
    expect((await recordTrialProgress(db, key, 1, { epochs: [{ epoch: 2, trainAcc: 77 }] })).applied).toBe(true);

    // Attempt 2 (Temporal's retry, with the last heartbeat): resumes after epoch 1 and rewrites epoch 2.
    const second = new MockActivityEnvironment({ attempt: 2, heartbeatDetails: lastBeat });
    const output = await second.run(a.trainTrial, { studyId: 'attempts', trialKey: key });
    expect(output).toMatchObject({ trialKey: key, outcome: 'done', attempt: 2, activityAttempt: 2, resumedFromEpoch: 1, checkpointSource: 'heartbeat', epochs: 3 });
    // Epoch 1 from attempt 1, epochs 2 and 3 from attempt 2 (the noop runner reports accuracy 0: the 77 is gone).
    expect((await trialEpochs(db, key)).map((e) => [e.epoch, e.attempt, e.trainAcc])).toEqual([[1, 1, 0], [2, 2, 0], [3, 2, 0]]);
    expect(await getResult(db, key)).toMatchObject({ attempt: 2, epochs: 3, diverged: false });
    expect(await getTrial(db, key)).toMatchObject({ status: 'done', attempt: 2, worker: 'test-worker', backend: 'none' });

    // A third execution (a duplicate delivery) finds the result and trains nothing.
    const third = new MockActivityEnvironment({ attempt: 3 });
    expect(await third.run(a.trainTrial, { studyId: 'attempts', trialKey: key })).toMatchObject({ outcome: 'already-done', attempt: 2, epochs: 0 });
    expect(await getTrial(db, key)).toMatchObject({ attempt: 2 });
  }, 90_000);

  it('trials one after another on one runner process: each ends as a fresh runner\'s would, and leaves no pid file naming the runner', async () => {
    const db = database.handle.db;
    const specs = [1, 2, 3].map((seed) => parseTrialSpec({ kind: 'noop', sleepMs: 0, epochs: 2, seed: 100 + seed }));
    await upsertStudy(db, { id: 'reuse', spec: {} });
    await registerTrials(db, 'reuse', specs.map((spec) => ({ trialKey: trialKey(spec), spec })));
    const a = createActivities(dbResultsStore(db), { checkpointRoot, workerId: 'test-worker', spareRunners: 1, trialsPerRunner: 5 });
    activities.push(a);
    for (const spec of specs) {
      const key = trialKey(spec);
      const output = await new MockActivityEnvironment({ attempt: 1 }).run(a.trainTrial, { studyId: 'reuse', trialKey: key });
      expect(output).toMatchObject({ trialKey: key, outcome: 'done', epochs: 2 });
      expect(await getResult(db, key)).toMatchObject({ epochs: 2 });
      // A retry of this trial kills the pid its pid file names: the runner now belongs to the next trial.
      expect(existsSync(path.join(checkpointRoot, key, 'runner.pid'))).toBe(false);
    }
    expect(runnerPoolOf(a.trainTrial)!.stats).toMatchObject({ started: 1, givenBack: 3 });
  });

  it('an unregistered trial fails at once and is not retried', async () => {
    const a = createActivities(dbResultsStore(database.handle.db), { checkpointRoot, workerId: 'test-worker' });
    activities.push(a);
    const env = new MockActivityEnvironment({ attempt: 1 });
    await expect(env.run(a.trainTrial, { studyId: 'attempts', trialKey: 'no-such-trial' })).rejects.toMatchObject({ type: 'UnknownTrial', nonRetryable: true });
  });
});
