import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { rowsOf } from '../../db/index.ts';
import { dbResultsStore } from '../../activities/db-store.ts';
import { startWorkers, type WorkerSet } from '../../infra/worker.ts';
import { signalStudy, startStudy, studyHandle } from '../../infra/client.ts';
import { parseStudySpec, type StudySpec } from '../../src/spec/study.ts';
import { planStudy } from '../../src/spec/keys.ts';
import { progressQuery, pauseSignal, resumeSignal, cancelSignal, extendSignal, type StudyOutcome } from '../../workflows/study.ts';
import type { DevServer } from '../../infra/temporal.ts';
import { createDatabase, readPid, alive, startTemporal, temporalClient, tempDir, waitUntil, type TestDatabase } from './harness.ts';

const QUEUE = 'itest';
const TEST_TIMEOUTS = { heartbeatTimeoutMs: 5_000, retryInitialIntervalMs: 500, retryMaximumIntervalMs: 2_000 };

function noopStudy(name: string, trials: number, o: { sleepMs?: number; epochs?: number; concurrency?: number } = {}): StudySpec {
  return parseStudySpec({
    name,
    queue: QUEUE,
    concurrency: o.concurrency ?? 3,
    maxAttempts: 3,
    conditions: [{ label: 'noop', base: { kind: 'noop', sleepMs: o.sleepMs ?? 50, epochs: o.epochs ?? 2 }, seeds: Array.from({ length: trials }, (_, i) => i) }],
  });
}

let server: DevServer;
let database: TestDatabase;
let client: Client;
let workers: WorkerSet;
let checkpointRoot: string;

async function count(query: ReturnType<typeof sql>): Promise<number> {
  return Number(rowsOf<{ n: number }>(await database.handle.db.execute(query))[0].n);
}
const resultRows = (study: string) =>
  count(sql`select count(*)::int as n from results r join study_trials st on st.trial_key = r.trial_key where st.study_id = ${study}`);
const epochRows = (study: string) =>
  count(sql`select count(*)::int as n from epochs e join study_trials st on st.trial_key = e.trial_key where st.study_id = ${study}`);
const attemptsSum = (study: string) =>
  count(sql`select coalesce(sum(t.attempt), 0)::int as n from trials t join study_trials st on st.trial_key = t.trial_key where st.study_id = ${study}`);

async function run(spec: StudySpec): Promise<StudyOutcome> {
  const { handle } = await startStudy(client, spec, { workflowInput: { timeouts: TEST_TIMEOUTS } });
  return handle.result();
}

beforeAll(async () => {
  server = await startTemporal(tempDir('mmsweep-temporal-'));
  database = await createDatabase();
  client = await temporalClient(server.address);
  checkpointRoot = tempDir('mmsweep-ckpt-');
  workers = await startWorkers({
    target: { address: server.address, namespace: 'default' },
    store: dbResultsStore(database.handle.db),
    queueClass: QUEUE,
    slots: 3,
    activity: { checkpointRoot, heartbeatIntervalMs: 500, killGraceMs: 1000 },
  });
});

afterAll(async () => {
  await workers?.shutdown();
  await client?.connection.close();
  await database?.drop();
  await server?.stop();
});

describe('study workflow on a real Temporal dev server and Postgres', () => {
  it('runs a small study to completion: one result row per trial, one epoch row per trial epoch, continue-as-new on the way', async () => {
    const spec = noopStudy('small', 8, { epochs: 2, concurrency: 3 });
    const outcome = await run(spec);
    expect(outcome.status).toBe('finished');
    expect(outcome.counts).toMatchObject({ total: 8, done: 8, failed: 0, pending: 0, running: 0 });
    // 8 trials × ~6 events cannot fit under the lowered 40-event suggestion: the study continued as new.
    expect(outcome.runs).toBeGreaterThan(1);
    expect(await resultRows('small')).toBe(8);
    expect(await epochRows('small')).toBe(16);
    expect(await attemptsSum('small')).toBe(8); // every trial trained exactly once
  });

  it('starting the same study twice attaches; starting it after it finished trains nothing again', async () => {
    const spec = noopStudy('twice', 4, { sleepMs: 300, epochs: 1, concurrency: 2 });
    const first = await startStudy(client, spec, { workflowInput: { timeouts: TEST_TIMEOUTS } });
    const second = await startStudy(client, spec, { workflowInput: { timeouts: TEST_TIMEOUTS } });
    expect(first.attached).toBe(false);
    expect(second.attached).toBe(true);
    expect(second.handle.workflowId).toBe(first.handle.workflowId);
    await first.handle.result();
    const again = await run(spec);
    expect(again.counts.done).toBe(4);
    expect(await resultRows('twice')).toBe(4);
    expect(await attemptsSum('twice')).toBe(4);
  });

  it('extend with one more seed runs only the new trials', async () => {
    const spec = noopStudy('extend', 3, { epochs: 1, concurrency: 3 });
    await run(spec);
    const keysBefore = planStudy(spec).map((t) => t.key);
    const { handle } = await startStudy(client, spec, { workflowInput: { timeouts: TEST_TIMEOUTS } });
    await handle.signal(extendSignal, { seeds: [3] });
    const outcome = await handle.result();
    expect(outcome.counts).toMatchObject({ total: 4, done: 4 });
    expect(outcome.spec!.conditions[0].seeds).toEqual([0, 1, 2, 3]);
    const attempts = rowsOf<{ trial_key: string; attempt: number }>(
      await database.handle.db.execute(sql`select t.trial_key, t.attempt from trials t join study_trials st on st.trial_key = t.trial_key where st.study_id = 'extend'`),
    );
    expect(attempts).toHaveLength(4);
    for (const row of attempts) expect(row.attempt).toBe(1);
    expect(attempts.filter((r) => !keysBefore.includes(r.trial_key))).toHaveLength(1);
    expect(await resultRows('extend')).toBe(4);
  });

  it('a trial the runner rejects fails at once (not retried); retry-failed schedules it again', async () => {
    // Valid for the schema, refused by the runner (exit code invalidSpec): a uni-modal SE net trains with vanilla only.
    const spec = parseStudySpec({
      name: 'failing',
      queue: QUEUE,
      concurrency: 2,
      maxAttempts: 3,
      conditions: [
        { label: 'bad', base: { dataset: { name: 'cmnist' }, lr: 0.1, architecture: 'unimodal-se', algorithm: 'guided' }, seeds: [0] },
        { label: 'ok', base: { kind: 'noop', sleepMs: 50, epochs: 1 }, seeds: [0] },
      ],
    });
    const outcome = await run(spec);
    expect(outcome.status).toBe('finished');
    expect(outcome.counts).toMatchObject({ total: 2, done: 1, failed: 1 });
    const failedRow = () =>
      database.handle.db.execute(sql`select t.attempt, t.status, t.error from trials t join study_trials st on st.trial_key = t.trial_key where st.study_id = 'failing' and t.status <> 'done'`);
    const [first] = rowsOf<{ attempt: number; status: string; error: string }>(await failedRow());
    expect(first).toMatchObject({ attempt: 1, status: 'failed' }); // non-retryable: one attempt, not maxAttempts
    expect(first.error).toMatch(/rejected the spec[\s\S]*vanilla/);
    await signalStudy(client, 'failing', 'retryFailed', [], { workflowInput: { timeouts: TEST_TIMEOUTS } });
    const again = await studyHandle(client, 'failing').result();
    expect(again.counts).toMatchObject({ total: 2, done: 1, failed: 1 });
    const [second] = rowsOf<{ attempt: number; status: string }>(await failedRow());
    expect(second).toMatchObject({ attempt: 2, status: 'failed' }); // it ran once more
    expect(await attemptsSum('failing')).toBe(3); // the good trial was not trained again
  });

  it('pause stops scheduling (the running trial finishes), resume continues', async () => {
    const spec = noopStudy('pause', 3, { sleepMs: 1500, epochs: 1, concurrency: 1 });
    const { handle } = await startStudy(client, spec, { workflowInput: { timeouts: TEST_TIMEOUTS } });
    await waitUntil(async () => (await handle.query(progressQuery).catch(() => null))?.running.length === 1, 20_000, () => 'no trial started');
    await handle.signal(pauseSignal);
    await waitUntil(async () => (await handle.query(progressQuery)).status === 'paused', 10_000);
    // The trial that was running finishes; nothing else starts while paused.
    await waitUntil(async () => {
      const p = await handle.query(progressQuery);
      return p.running.length === 0 && p.done >= 1;
    }, 30_000, () => 'the running trial did not finish');
    const held = await handle.query(progressQuery);
    await new Promise((r) => setTimeout(r, 2500));
    const still = await handle.query(progressQuery);
    expect(still.running).toEqual([]);
    expect(still.done).toBe(held.done);
    expect(still.done).toBeLessThan(3);
    await handle.signal(resumeSignal);
    const outcome = await handle.result();
    expect(outcome.counts.done).toBe(3);
    expect(await resultRows('pause')).toBe(3);
  });

  it('cancel cancels the running trials and kills their runner processes', async () => {
    const spec = noopStudy('cancel', 4, { sleepMs: 1000, epochs: 30, concurrency: 2 });
    const keys = planStudy(spec).map((t) => t.key);
    const { handle } = await startStudy(client, spec, { workflowInput: { timeouts: TEST_TIMEOUTS } });
    const pidFiles = keys.map((k) => path.join(checkpointRoot, k, 'runner.pid'));
    await waitUntil(() => pidFiles.filter((f) => readPid(f) !== null).length >= 2, 30_000, () => 'runners did not start');
    const pids = pidFiles.map(readPid).filter((p): p is number => p !== null);
    await waitUntil(() => pids.every(alive), 5_000);
    await handle.signal(cancelSignal);
    const outcome = await handle.result();
    expect(outcome.status).toBe('cancelled');
    expect(outcome.counts.done).toBe(0);
    for (const pid of pids) expect(alive(pid)).toBe(false);
    expect(await resultRows('cancel')).toBe(0);
    const p = await studyHandle(client, 'cancel').describe();
    expect(p.status.name).toBe('COMPLETED');
  });
});
