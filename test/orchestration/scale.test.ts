import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { loadSpecDocument, rowsOf, saveSpecDocument } from '../../db/index.ts';
import { dbResultsStore } from '../../activities/db-store.ts';
import { startWorkers, type WorkerSet } from '../../infra/worker.ts';
import { SpecTooLargeError, startStudy, type SpecStore } from '../../infra/client.ts';
import { parseStudySpec, type StudySpec } from '../../src/spec/study.ts';
import { canonicalJson } from '../../src/spec/canonical.ts';
import { cancelSignal, extendSignal, progressQuery } from '../../workflows/study.ts';
import type { DevServer } from '../../infra/temporal.ts';
import { createDatabase, repoRoot, startTemporal, temporalClient, tempDir, waitUntil, type TestDatabase } from './harness.ts';

/**
 * Studies larger than one Temporal payload: registration streams into Postgres, the workflow pages pending trials
 * after a cursor and continues-as-new with counters only. Real Temporal dev server (continue-as-new suggested after
 * 40 events) and the real Postgres server.
 */
const QUEUE = 'scale';
const TEST_TIMEOUTS = { heartbeatTimeoutMs: 5_000, retryInitialIntervalMs: 500, retryMaximumIntervalMs: 2_000 };
/** Temporal refuses payloads over 2 MB; everything a study sends must stay far below it. */
const PAYLOAD_LIMIT = 2 * 1024 * 1024;

/** Seeds from `firstSeed`: studies of one file share the database, and a trial key done in one is reused by the next. */
function noopStudy(name: string, seeds: number, concurrency = 2, firstSeed = 0): StudySpec {
  return parseStudySpec({
    name,
    queue: QUEUE,
    concurrency,
    conditions: [{ label: 'noop', base: { kind: 'noop', sleepMs: 0, epochs: 1 }, seeds: Array.from({ length: seeds }, (_, i) => firstSeed + i) }],
  });
}

/** Beyond the 60,000-trial study's seeds, so none of this study's trials was already done there. */
const PAGED_FIRST_SEED = 1_000_000;

let server: DevServer;
let database: TestDatabase;
let client: Client;
let workers: WorkerSet;
let specStore: SpecStore;

const count = async (query: ReturnType<typeof sql>) => Number(rowsOf<{ n: number }>(await database.handle.db.execute(query))[0].n);

/** Every run of the study's workflow, newest first: walked back through each run's continued-from link. */
async function allRunHistories(workflowId: string) {
  const histories = [];
  let runId: string | undefined;
  for (;;) {
    const history = await client.workflow.getHandle(workflowId, runId).fetchHistory();
    histories.push(history);
    const previous = history.events?.[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId;
    if (!previous) return histories;
    runId = previous;
  }
}

function payloadSizes(history: Awaited<ReturnType<typeof allRunHistories>>[number]): number[] {
  const sizes: number[] = [];
  const visit = (value: unknown) => {
    if (!value || typeof value !== 'object') return;
    if (value instanceof Uint8Array) return;
    const payload = value as { data?: Uint8Array; metadata?: unknown };
    if (payload.data instanceof Uint8Array && payload.metadata) sizes.push(payload.data.byteLength);
    for (const member of Object.values(value)) visit(member);
  };
  visit(history.events);
  return sizes;
}

beforeAll(async () => {
  server = await startTemporal(tempDir('mmsweep-scale-temporal-'));
  database = await createDatabase();
  client = await temporalClient(server.address);
  specStore = { save: (c) => saveSpecDocument(database.handle.db, c), load: (s) => loadSpecDocument(database.handle.db, s) };
  workers = await startWorkers({
    target: { address: server.address, namespace: 'default' },
    store: dbResultsStore(database.handle.db),
    queueClass: QUEUE,
    slots: 2,
    activity: { checkpointRoot: tempDir('mmsweep-scale-ckpt-'), heartbeatIntervalMs: 500, uploadCheckpoints: false },
  });
});

afterAll(async () => {
  await workers?.shutdown();
  await client?.connection.close();
  await database?.drop();
  await server?.stop();
});

describe('studies larger than a payload', () => {
  it('a study of 60,000 trials (a 4 MB key list) registers every trial and starts running them; no payload nears 2 MB', async () => {
    const spec = noopStudy('sixty-k', 60_000);
    // The key list alone is 60,000 × 64 hex characters: what once went back in one payload.
    expect(60_000 * 64).toBeGreaterThan(PAYLOAD_LIMIT);
    const specBytes = Buffer.byteLength(canonicalJson(spec));
    await expect(startStudy(client, spec)).rejects.toThrow(SpecTooLargeError); // too large inline and no store given
    const { handle } = await startStudy(client, spec, { specStore, workflowInput: { timeouts: TEST_TIMEOUTS } });
    await waitUntil(
      async () => {
        const p = await handle.query(progressQuery);
        return p.registered === true && p.done >= 6;
      },
      240_000,
      () => 'the study did not register and run six trials',
    );
    const progress = await handle.query(progressQuery);
    expect(progress.total).toBe(60_000);
    expect(await count(sql`select count(*)::int as n from study_trials where study_id = 'sixty-k'`)).toBe(60_000);
    expect(await count(sql`select count(distinct position)::int as n from study_trials where study_id = 'sixty-k'`)).toBe(60_000);
    expect(await count(sql`select count(*)::int as n from results r join study_trials st using (trial_key) where st.study_id = 'sixty-k'`)).toBeGreaterThanOrEqual(6);
    await handle.signal(cancelSignal);
    const outcome = await handle.result();
    expect(outcome.status).toBe('cancelled');
    expect(outcome.spec).toBeUndefined(); // the spec travels by its stored document
    expect(outcome.specSha256).toMatch(/^[0-9a-f]{64}$/);
    const sizes = (await allRunHistories(handle.workflowId)).flatMap(payloadSizes);
    expect(sizes.length).toBeGreaterThan(10);
    expect(Math.max(...sizes)).toBeLessThan(64 * 1024);
    expect(Math.max(...sizes)).toBeLessThan(specBytes / 4);
  }, 300_000);

  it('every pending trial runs exactly once across many continue-as-new runs, pages of 4 and an extension mid-study', async () => {
    const spec = noopStudy('paged', 30, 3, PAGED_FIRST_SEED);
    const { handle } = await startStudy(client, spec, { workflowInput: { timeouts: TEST_TIMEOUTS, pageSize: 4 } });
    await waitUntil(async () => (await handle.query(progressQuery)).done >= 5, 120_000);
    await handle.signal(extendSignal, { seeds: Array.from({ length: 10 }, (_, i) => PAGED_FIRST_SEED + 30 + i) });
    const outcome = await handle.result();
    expect(outcome.status).toBe('finished');
    expect(outcome.counts).toMatchObject({ total: 40, done: 40, failed: 0 });
    expect(outcome.runs).toBeGreaterThan(3);

    // Independent count of what ran: the trainTrial activities scheduled in every run's history, by trial key.
    const histories = await allRunHistories(handle.workflowId);
    expect(histories.length).toBe(outcome.runs);
    const scheduled: string[] = [];
    for (const history of histories) {
      for (const event of history.events ?? []) {
        const attributes = event.activityTaskScheduledEventAttributes;
        if (attributes?.activityType?.name !== 'trainTrial') continue;
        const input = defaultPayloadConverter.fromPayload(attributes.input!.payloads![0]) as { trialKey: string };
        scheduled.push(input.trialKey);
      }
    }
    expect(scheduled).toHaveLength(40);
    expect(new Set(scheduled).size).toBe(40);
    const members = rowsOf<{ trial_key: string; attempt: number }>(
      await database.handle.db.execute(sql`select t.trial_key, t.attempt from trials t join study_trials st using (trial_key) where st.study_id = 'paged'`),
    );
    expect(new Set(scheduled)).toEqual(new Set(members.map((m) => m.trial_key)));
    expect(members.every((m) => m.attempt === 1)).toBe(true);
  }, 300_000);
});

describe('a study that cannot register', () => {
  it('mmsweep run reports a non-retryable registration failure, naming the cause, and stops', async () => {
    const home = tempDir('mmsweep-scale-home-');
    const specFile = path.join(home, 'too-large.json');
    writeFileSync(
      specFile,
      JSON.stringify({ name: 'too-large', queue: 'toolarge', conditions: [{ label: 'noop', base: { kind: 'noop', sleepMs: 0 }, seeds: Array.from({ length: 500 }, (_, i) => i) }] }),
    );
    const child = spawn(process.execPath, [path.join(repoRoot, 'bin', 'mmsweep.js'), 'run', specFile, '--no-progress', '--slots', '1'], {
      cwd: repoRoot,
      env: { ...process.env, MMSWEEP_HOME: home, DATABASE_URL: database.url, MMSWEEP_MAX_STUDY_TRIALS: '100' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const started = Date.now();
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    const seconds = (Date.now() - started) / 1000;
    expect(code, output).toBe(1);
    expect(output).toMatch(/study too-large failed: registerStudy failed: study too-large is too large: it expands to 500 trials/);
    expect(output).toMatch(/MMSWEEP_MAX_STUDY_TRIALS[\s\S]*\(StudyTooLarge\)/);
    // Failed once, not retried: the registration activity ran one attempt and no trial was registered.
    expect(output.match(/failed \d+ time\(s\) and is retried/)).toBeNull();
    expect(await count(sql`select count(*)::int as n from study_trials where study_id = 'too-large'`)).toBe(0);
    expect(seconds).toBeLessThan(120); // generous: the dev server starts inside; the figure is what matters, not speed
  }, 180_000);
});
