import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { execFileSync } from 'node:child_process';
import type { Client } from '@temporalio/client';
import { rowsOf } from '../../db/index.ts';
import { startStudy } from '../../infra/client.ts';
import { parseStudySpec, type StudySpec } from '../../src/spec/study.ts';
import { planStudy } from '../../src/spec/keys.ts';
import type { DevServer } from '../../infra/temporal.ts';
import {
  createDatabase,
  referenceRun,
  SMALL_CMNIST_TRIAL,
  startTemporal,
  startWorkerProcess,
  temporalClient,
  tempDir,
  trainOutputs,
  waitUntil,
  type TestDatabase,
  type WorkerProcess,
} from './harness.ts';

/**
 * Crashes and outages, with workers as separate processes (the real `mmsweep worker`): kill -9 of a worker in
 * the middle of a trial, a Temporal dev server restart and a Postgres restart in the middle of a study.
 * The Postgres restart comes last: other suites share that server, so its outage is kept to one restart.
 */

const QUEUE = 'rtest';
const TEST_TIMEOUTS = { heartbeatTimeoutMs: 4_000, retryInitialIntervalMs: 500, retryMaximumIntervalMs: 2_000 };

let stateDir: string;
let server: DevServer;
let database: TestDatabase;
let client: Client;
const workers: WorkerProcess[] = [];

function study(name: string, base: Record<string, unknown>, seeds: number[], concurrency = 2): StudySpec {
  return parseStudySpec({ name, queue: QUEUE, concurrency, maxAttempts: 5, conditions: [{ label: name, base, seeds }] });
}

async function rows<T>(query: ReturnType<typeof sql>): Promise<T[]> {
  return rowsOf<T>(await database.handle.db.execute(query));
}

async function worker(checkpointDir: string, slots = 2): Promise<WorkerProcess> {
  const w = await startWorkerProcess({ address: server.address, databaseUrl: database.url, queue: QUEUE, slots, checkpointDir });
  workers.push(w);
  return w;
}

beforeAll(async () => {
  stateDir = tempDir('mmsweep-temporal-');
  server = await startTemporal(stateDir);
  database = await createDatabase();
  client = await temporalClient(server.address);
});

// Each test owns its workers: a worker left from an earlier test would pick up the next test's trials.
afterEach(async () => {
  for (const w of workers.splice(0)) await w.stop();
});

afterAll(async () => {
  await client?.connection.close();
  await database?.drop();
  await server?.stop();
});

describe('resilience with worker processes', () => {
  it('kill -9 of the worker mid-trial: a new worker on another machine resumes from the checkpoint in the database', async () => {
    const spec = study('kill9', { kind: 'noop', sleepMs: 600, epochs: 8 }, [0], 1);
    const [trial] = planStudy(spec);
    const first = await worker(tempDir('mmsweep-ckpt-a-'), 1);
    const { handle } = await startStudy(client, spec, { workflowInput: { timeouts: TEST_TIMEOUTS } });
    // The precondition of the assertions below is a checkpoint of epoch ≥ 2 in the database (the activity stores
    // it just after the epoch row, so waiting for epoch rows alone can kill the worker in between).
    await waitUntil(
      async () => (await rows<{ n: number }>(sql`select count(*)::int as n from checkpoints where trial_key = ${trial.key} and epoch >= 2`))[0].n >= 1,
      60_000,
      () => `no checkpoint of epoch ≥ 2 in the database yet; worker output:\n${first.output()}`,
    );
    first.child.kill('SIGKILL');
    // Another machine: its own (empty) checkpoint directory, so the checkpoint must come from the database.
    await worker(tempDir('mmsweep-ckpt-b-'), 1);
    const outcome = await handle.result();
    expect(outcome.counts).toMatchObject({ total: 1, done: 1, failed: 0 });
    const [output] = await trainOutputs(client, handle.workflowId);
    expect(output.checkpointSource).toBe('database');
    expect(output.resumedFromEpoch).toBeGreaterThanOrEqual(2);
    expect(output.attempt).toBe(2);
    const epochs = await rows<{ epoch: number; attempt: number }>(sql`select epoch, attempt from epochs where trial_key = ${trial.key} order by epoch`);
    expect(epochs.map((e) => e.epoch)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    for (const e of epochs) expect(e.attempt).toBe(e.epoch <= output.resumedFromEpoch! ? 1 : 2);
    expect((await rows<{ n: number }>(sql`select count(*)::int as n from results where trial_key = ${trial.key}`))[0].n).toBe(1);
  });

  it('kill -9 during a real CMNIST trial: resumes from the local checkpoint and ends with the metrics of an uninterrupted run', async () => {
    const spec = study('kill9-cmnist', SMALL_CMNIST_TRIAL, [1], 1);
    const [trial] = planStudy(spec);
    // The reference: the same trial, uninterrupted, through the same runner command.
    const reference = referenceRun(trial.spec);
    reference.catch(() => undefined); // awaited below; no unhandled rejection if an earlier step fails first

    const dir = tempDir('mmsweep-ckpt-c-');
    const first = await worker(dir, 1);
    const { handle } = await startStudy(client, spec, { workflowInput: { timeouts: TEST_TIMEOUTS } });
    await waitUntil(
      async () => (await rows<{ n: number }>(sql`select count(*)::int as n from epochs where trial_key = ${trial.key}`))[0].n >= 1,
      90_000,
      () => `no epoch row yet; worker output:\n${first.output()}`,
    );
    first.child.kill('SIGKILL');
    await worker(dir, 1); // same machine: the local directory has the checkpoint
    const outcome = await handle.result();
    expect(outcome.counts.done).toBe(1);
    const [output] = await trainOutputs(client, handle.workflowId);
    expect(['local', 'heartbeat'], JSON.stringify(output)).toContain(output.checkpointSource);
    expect(output.resumedFromEpoch).toBeGreaterThanOrEqual(1);
    expect(output.attempt).toBe(2);

    const ref = await reference;
    const [stored] = await rows<{ raw: Record<string, unknown>; epochs: number }>(sql`select raw, epochs from results where trial_key = ${trial.key}`);
    expect(stored.epochs).toBe(ref.result.epochs);
    for (const field of ['testAcc', 'accF', 'accF0', 'accF1', 'accF0Prime', 'accF1Prime', 'uM1GivenM0', 'uM0GivenM1', 'dUtil', 'dSpeed', 'rF', 'bestEpoch', 'stepsT']) {
      expect(stored.raw[field], field).toEqual((ref.result as unknown as Record<string, unknown>)[field]);
    }
    const storedEpochs = await rows<{ epoch: number; val_acc: number; loss: number; d_speed: number | null }>(
      sql`select epoch, val_acc, loss, d_speed from epochs where trial_key = ${trial.key} order by epoch`,
    );
    expect(storedEpochs.map((e) => e.epoch)).toEqual(ref.epochs.map((e) => e.epoch));
    storedEpochs.forEach((e, i) => {
      expect(e.val_acc).toBe(ref.epochs[i].valAcc);
      expect(e.loss).toBe(ref.epochs[i].loss);
      expect(e.d_speed).toBe(ref.epochs[i].dSpeed);
    });
  });

  it('a Temporal dev server restart (same state file) mid-study: the study completes, nothing lost or duplicated', async () => {
    const spec = study('temporal-restart', { kind: 'noop', sleepMs: 400, epochs: 2 }, [0, 1, 2, 3, 4, 5], 2);
    await worker(tempDir('mmsweep-ckpt-d-'), 2);
    const { handle } = await startStudy(client, spec, { workflowInput: { timeouts: TEST_TIMEOUTS } });
    const done = async () => (await rows<{ n: number }>(sql`select count(*)::int as n from results r join study_trials st on st.trial_key = r.trial_key where st.study_id = 'temporal-restart'`))[0].n;
    await waitUntil(async () => (await done()) >= 2, 60_000);
    const port = Number(server.address.split(':')[1]);
    await server.stop();
    server = await startTemporal(stateDir, port);
    expect(server.address).toBe(`127.0.0.1:${port}`);
    const outcome = await handle.result();
    expect(outcome.counts).toMatchObject({ total: 6, done: 6, failed: 0 });
    expect(await done()).toBe(6);
    const epochs = await rows<{ n: number }>(sql`select count(*)::int as n from epochs e join study_trials st on st.trial_key = e.trial_key where st.study_id = 'temporal-restart'`);
    expect(epochs[0].n).toBe(12);
  });

  it('a Postgres restart mid-study: the study completes, nothing lost or duplicated', async () => {
    const spec = study('pg-restart', { kind: 'noop', sleepMs: 400, epochs: 2 }, [0, 1, 2, 3, 4, 5], 2);
    await worker(tempDir('mmsweep-ckpt-e-'), 2);
    const { handle } = await startStudy(client, spec, { workflowInput: { timeouts: TEST_TIMEOUTS } });
    const done = async () => (await rows<{ n: number }>(sql`select count(*)::int as n from results r join study_trials st on st.trial_key = r.trial_key where st.study_id = 'pg-restart'`))[0].n;
    await waitUntil(async () => (await done()) >= 2, 60_000);
    execFileSync('pg_ctlcluster', ['--skip-systemctl-redirect', '15', 'main', 'restart'], { stdio: 'ignore', timeout: 60_000 });
    const outcome = await handle.result();
    expect(outcome.counts).toMatchObject({ total: 6, done: 6, failed: 0 });
    await waitUntil(async () => (await done().catch(() => -1)) === 6, 20_000);
    const epochs = await rows<{ n: number }>(sql`select count(*)::int as n from epochs e join study_trials st on st.trial_key = e.trial_key where st.study_id = 'pg-restart'`);
    expect(epochs[0].n).toBe(12);
  });
});
