import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { rmSync } from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { rowsOf } from '../../db/index.ts';
import { startStudy } from '../../infra/client.ts';
import { parseStudySpec, type StudySpec } from '../../src/spec/study.ts';
import { planStudy } from '../../src/spec/keys.ts';
import { latestCheckpoint } from '../../src/train/checkpoint.ts';
import { TRIAL_PROCESS_TITLE } from '../../src/runner/protocol.ts';
import type { DevServer } from '../../infra/temporal.ts';
import { createDatabase, startTemporal, temporalClient, trainOutputs, referenceRun, SMALL_CMNIST_TRIAL, waitUntil, type TestDatabase, type WorkerProcess } from '../orchestration/harness.ts';
import { commandLineOf, createHosts, killHost, pidsIn, removeAll, removeLeftoverFiles, temporalStateDir, serviceIp, setLink, startHostWorker, tcpForwarder, unavailableReason, type Forwarder, type SimHost } from './netns.ts';

/**
 * Workers on separate (simulated) machines: each host is a network namespace with its own host name, its own
 * checkpoint directory and MMSWEEP_HOME, reaching Temporal and Postgres across a veth. Scenarios: a study spread
 * over all hosts, a host killed mid-trial, a host cut off mid-trial and restored, and task-queue routing.
 * The hosts share the repository checkout and its read-only data cache (on real machines each has its own copy);
 * they share no checkpoint, so a trial that moves between hosts can only resume from Postgres.
 */

const skipReason = unavailableReason();
if (skipReason) console.warn(`test/multihost skipped: ${skipReason}`);

const TEST_TIMEOUTS = { heartbeatTimeoutMs: 4_000, retryInitialIntervalMs: 500, retryMaximumIntervalMs: 2_000 };

let hosts: SimHost[] = [];
let server: DevServer | undefined;
let temporalState: string | undefined;
let database: TestDatabase | undefined;
let pgForwarder: Forwarder | undefined;
let temporalForwarder: Forwarder | undefined;
let client: Client | undefined;
let workerDatabaseUrl = '';
let workerTemporalAddress = '';
/** The `cpu` worker of each host, by host name (replaced when a host is restarted). */
const cpuWorkers = new Map<string, WorkerProcess>();
const allWorkers: WorkerProcess[] = [];

function study(name: string, queue: string, base: Record<string, unknown>, seeds: number[], concurrency: number): StudySpec {
  return parseStudySpec({ name, queue, concurrency, maxAttempts: 5, conditions: [{ label: name, base, seeds }] });
}

async function rows<T>(query: ReturnType<typeof sql>): Promise<T[]> {
  return rowsOf<T>(await database!.handle.db.execute(query));
}

/** Worker ids are `<hostname>:<pid>`, and each namespace has its own hostname. */
function hostOf(workerId: string | null): string {
  return (workerId ?? '').split(':')[0];
}

async function startWorker(host: SimHost, queue: string, extraArgs: string[] = []): Promise<WorkerProcess> {
  const w = await startHostWorker(host, { temporalAddress: workerTemporalAddress, databaseUrl: workerDatabaseUrl, queue, extraArgs });
  allWorkers.push(w);
  return w;
}

/** Runner processes of a host that hold a trial (TRIAL_PROCESS_TITLE), not idle spares or the worker. */
function trialRunnersIn(ns: string): number[] {
  return pidsIn(ns).filter((pid) => commandLineOf(pid).startsWith(TRIAL_PROCESS_TITLE));
}

async function trialRow(key: string) {
  const [row] = await rows<{ attempt: number; worker: string | null; status: string }>(sql`select attempt, worker, status from trials where trial_key = ${key}`);
  return row;
}

async function epochCount(key: string): Promise<number> {
  return (await rows<{ n: number }>(sql`select count(*)::int as n from epochs where trial_key = ${key}`))[0].n;
}

function allOutput(): string {
  return allWorkers.map((w, i) => `--- worker ${i}\n${w.output().slice(-3000)}`).join('\n');
}

describe.skipIf(skipReason !== null)('workers on separate hosts (network namespaces)', () => {
  beforeAll(async () => {
    removeAll('leftovers'); // of earlier runs killed before their cleanup
    removeLeftoverFiles();
    hosts = createHosts(3);
    // The dev server's own services dial each other on 127.0.0.1, so it stays there; a relay on the bridge
    // address carries the hosts' gRPC to it, as one does for Postgres.
    temporalState = temporalStateDir();
    server = await startTemporal(temporalState);
    temporalForwarder = await tcpForwarder(serviceIp(), { host: '127.0.0.1', port: Number(server.address.split(':')[1]) });
    workerTemporalAddress = `${serviceIp()}:${temporalForwarder.port}`;
    database = await createDatabase();
    pgForwarder = await tcpForwarder(serviceIp(), { host: '127.0.0.1', port: Number(new URL(database.url).port || 5432) });
    const url = new URL(database.url);
    url.hostname = serviceIp();
    url.port = String(pgForwarder.port);
    workerDatabaseUrl = url.toString();
    client = await temporalClient(server.address);
    const started = await Promise.all(hosts.map((h) => startWorker(h, 'cpu')));
    hosts.forEach((h, i) => cpuWorkers.set(h.ns, started[i]));
  });

  afterAll(async () => {
    try {
      await Promise.all(allWorkers.map((w) => w.stop().catch(() => undefined)));
      await client?.connection.close().catch(() => undefined);
      await pgForwarder?.close();
      await temporalForwarder?.close();
      await database?.drop();
      await server?.stop();
      if (temporalState) rmSync(temporalState, { recursive: true, force: true });
    } finally {
      removeAll();
      for (const h of hosts) rmSync(path.dirname(h.checkpointDir), { recursive: true, force: true });
    }
  });

  it('(a) a study spread over all hosts completes, each trial exactly once', async () => {
    const spec = study('mh-spread', 'cpu', { kind: 'noop', sleepMs: 300, epochs: 2 }, [0, 1, 2, 3, 4, 5], 6);
    const planned = planStudy(spec);
    const { handle } = await startStudy(client!, spec, { workflowInput: { timeouts: TEST_TIMEOUTS } });
    const outcome = await handle.result();
    expect(outcome.counts).toMatchObject({ total: 6, done: 6, failed: 0 });
    const keys = planned.map((t) => t.key);
    for (const key of keys) expect(await rows(sql`select 1 from results where trial_key = ${key}`), key).toHaveLength(1);
    const trials = await Promise.all(keys.map(trialRow));
    for (const t of trials) expect(t).toMatchObject({ attempt: 1, status: 'done' });
    for (const key of keys) expect(await epochCount(key)).toBe(2);
    const usedHosts = new Set(trials.map((t) => hostOf(t.worker)));
    for (const h of usedHosts) expect(hosts.map((x) => x.ns)).toContain(h);
    expect(usedHosts.size, `hosts used: ${[...usedHosts].join(', ')}`).toBeGreaterThan(1);
  });

  it('(b) the host running a trial is killed (all its processes): the trial resumes on another host from the checkpoint in Postgres', async () => {
    const spec = study('mh-kill', 'cpu', { kind: 'noop', sleepMs: 500, epochs: 8 }, [0], 1);
    const [trial] = planStudy(spec);
    const { handle } = await startStudy(client!, spec, { workflowInput: { timeouts: TEST_TIMEOUTS } });
    await waitUntil(async () => (await epochCount(trial.key)) >= 2, 60_000, () => `no epoch rows yet\n${allOutput()}`);
    const runningOn = hostOf((await trialRow(trial.key)).worker);
    const victim = hosts.find((h) => h.ns === runningOn)!;
    expect(victim, 'the trial runs on one of the hosts').toBeDefined();
    const killed = await killHost(victim);
    expect(killed.length).toBeGreaterThanOrEqual(2); // the worker and its runner at least

    const outcome = await handle.result();
    expect(outcome.counts).toMatchObject({ total: 1, done: 1, failed: 0 });
    const [output] = await trainOutputs(client!, handle.workflowId);
    // The other host never saw this trial: its checkpoint can only have come from the database.
    expect(output.checkpointSource).toBe('database');
    expect(output.resumedFromEpoch).toBeGreaterThanOrEqual(1);
    expect(output.attempt).toBe(2);
    const final = await trialRow(trial.key);
    expect(final).toMatchObject({ attempt: 2, status: 'done' });
    expect(hostOf(final.worker)).not.toBe(victim.ns);
    // Every epoch exactly once, written by the attempt that owned it; one result, with the uninterrupted run's
    // epoch count (a noop trial's metrics are constant, so equal rows here are rows with the right epochs).
    const epochs = await rows<{ epoch: number; attempt: number }>(sql`select epoch, attempt from epochs where trial_key = ${trial.key} order by epoch`);
    expect(epochs.map((e) => e.epoch)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    for (const e of epochs) expect(e.attempt).toBe(e.epoch <= output.resumedFromEpoch! ? 1 : 2);
    const results = await rows<{ epochs: number }>(sql`select epochs from results where trial_key = ${trial.key}`);
    expect(results).toEqual([{ epochs: 8 }]);

    // The host comes back (same disk), for the scenarios after this one.
    allWorkers.splice(allWorkers.indexOf(cpuWorkers.get(victim.ns)!), 1);
    cpuWorkers.set(victim.ns, await startWorker(victim, 'cpu'));
  });

  it('(b) with a real CMNIST trial: resumed on another host from Postgres, it ends with the metrics of an uninterrupted run', async () => {
    const spec = study('mh-kill-cmnist', 'cpu', SMALL_CMNIST_TRIAL, [1], 1);
    const [trial] = planStudy(spec);
    const reference = referenceRun(trial.spec);
    reference.catch(() => undefined); // awaited below; no unhandled rejection if an earlier step fails first
    const { handle } = await startStudy(client!, spec, { workflowInput: { timeouts: TEST_TIMEOUTS } });
    // Kill only once a checkpoint is in Postgres: that is what the other host resumes from.
    await waitUntil(
      async () => (await rows<{ n: number }>(sql`select count(*)::int as n from checkpoints where trial_key = ${trial.key}`))[0].n >= 1,
      120_000,
      () => `no checkpoint stored yet\n${allOutput()}`,
    );
    const runningOn = hostOf((await trialRow(trial.key)).worker);
    const victim = hosts.find((h) => h.ns === runningOn)!;
    expect(victim).toBeDefined();
    await killHost(victim);

    const outcome = await handle.result();
    expect(outcome.counts).toMatchObject({ total: 1, done: 1, failed: 0 });
    const [output] = await trainOutputs(client!, handle.workflowId);
    expect(output.checkpointSource).toBe('database');
    expect(output.resumedFromEpoch).toBeGreaterThanOrEqual(1);
    expect(output.attempt).toBe(2);
    expect(hostOf((await trialRow(trial.key)).worker)).not.toBe(victim.ns);

    const ref = await reference;
    const [stored] = await rows<{ raw: Record<string, unknown>; epochs: number }>(sql`select raw, epochs from results where trial_key = ${trial.key}`);
    expect(stored.epochs).toBe(ref.result.epochs);
    for (const field of ['testAcc', 'accF', 'accF0', 'accF1', 'accF0Prime', 'accF1Prime', 'uM1GivenM0', 'uM0GivenM1', 'dUtil', 'dSpeed', 'rF', 'bestEpoch', 'stepsT']) {
      expect(stored.raw[field], field).toEqual((ref.result as unknown as Record<string, unknown>)[field]);
    }
    const storedEpochs = await rows<{ epoch: number; val_acc: number; loss: number }>(sql`select epoch, val_acc, loss from epochs where trial_key = ${trial.key} order by epoch`);
    expect(storedEpochs.map((e) => e.epoch)).toEqual(ref.epochs.map((e) => e.epoch));
    storedEpochs.forEach((e, i) => {
      expect(e.val_acc).toBe(ref.epochs[i].valAcc);
      expect(e.loss).toBe(ref.epochs[i].loss);
    });

    allWorkers.splice(allWorkers.indexOf(cpuWorkers.get(victim.ns)!), 1);
    cpuWorkers.set(victim.ns, await startWorker(victim, 'cpu'));
  });

  it('(c) a host cut off mid-trial, then restored: the trial completes once elsewhere, the stale attempt is fenced off', async () => {
    const spec = study('mh-partition', 'cpu', { kind: 'noop', sleepMs: 500, epochs: 12 }, [0], 1);
    const [trial] = planStudy(spec);
    const { handle } = await startStudy(client!, spec, { workflowInput: { timeouts: TEST_TIMEOUTS } });
    await waitUntil(async () => (await epochCount(trial.key)) >= 2, 60_000, () => `no epoch rows yet\n${allOutput()}`);
    const runningOn = hostOf((await trialRow(trial.key)).worker);
    const cut = hosts.find((h) => h.ns === runningOn)!;
    expect(cut).toBeDefined();
    let bytesBeforeRestore = 0;
    setLink(cut, false);
    try {
      // Temporal misses the heartbeats and hands the trial to a reachable host, which claims attempt 2.
      await waitUntil(async () => (await trialRow(trial.key)).attempt >= 2, 60_000, () => `no second attempt\n${allOutput()}`);
      // The cut-off runner kept training meanwhile (its writes queue up behind the dead link).
      const staleDir = path.join(cut.checkpointDir, trial.key);
      await waitUntil(() => (latestCheckpoint(staleDir)?.epoch ?? 0) >= 4, 30_000, () => `stale runner made no progress in ${staleDir}`);
      // The stale runner is known by its title (a spare waiting beside it keeps its `warm` command line).
      expect(trialRunnersIn(cut.ns).length, pidsIn(cut.ns).map((p) => commandLineOf(p)).join('\n')).toBe(1);
      bytesBeforeRestore = pgForwarder!.bytesFrom(cut.ip);
    } finally {
      setLink(cut, true);
    }
    const outcome = await handle.result();
    expect(outcome.counts).toMatchObject({ total: 1, done: 1, failed: 0 });
    const [output] = await trainOutputs(client!, handle.workflowId);
    expect(output.attempt).toBe(2);
    expect(output.resumedFromEpoch).toBeGreaterThanOrEqual(1);
    const final = await trialRow(trial.key);
    expect(final).toMatchObject({ attempt: 2, status: 'done' });
    expect(hostOf(final.worker)).not.toBe(cut.ns);

    // Give the restored host's queued writes time to arrive (TCP retransmits back off for seconds), then check
    // that none was applied: every epoch past the resume point is attempt 2's, and there is one result.
    const staleEpoch = latestCheckpoint(path.join(cut.checkpointDir, trial.key))!.epoch;
    expect(staleEpoch).toBeGreaterThan(output.resumedFromEpoch!);
    const staleWorker = cpuWorkers.get(cut.ns)!;
    // The stale attempt's writes were queued on its Postgres connection while the link was down; after the restore
    // they reach the server (bytes arrive from that host) and are refused by the fencing token (checked below).
    await waitUntil(() => pgForwarder!.bytesFrom(cut.ip) > bytesBeforeRestore, 60_000, () => `no bytes from ${cut.ip} after the restore\n${staleWorker.output()}`);
    // The stale attempt stops: no runner with a trial is left on that host (the worker and its idle spare may be).
    await waitUntil(() => trialRunnersIn(cut.ns).length === 0, 60_000, () => `stale runner still alive on ${cut.ns}: ${trialRunnersIn(cut.ns).join(', ')}`);
    // Let the last queued writes land (the byte count settles), bounded.
    let last = -1;
    for (let i = 0; i < 30 && pgForwarder!.bytesFrom(cut.ip) !== last; i++) {
      last = pgForwarder!.bytesFrom(cut.ip);
      await new Promise((r) => setTimeout(r, 1_000));
    }
    const epochs = await rows<{ epoch: number; attempt: number }>(sql`select epoch, attempt from epochs where trial_key = ${trial.key} order by epoch`);
    expect(epochs.map((e) => e.epoch)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    for (const e of epochs) expect(e.attempt, `epoch ${e.epoch}`).toBe(e.epoch <= output.resumedFromEpoch! ? 1 : 2);
    const ckpts = await rows<{ epoch: number; attempt: number }>(sql`select epoch, attempt from checkpoints where trial_key = ${trial.key}`);
    for (const c of ckpts) if (c.epoch > output.resumedFromEpoch!) expect(c.attempt, `checkpoint of epoch ${c.epoch}`).toBe(2);
    expect(await rows(sql`select 1 from results where trial_key = ${trial.key}`)).toHaveLength(1);
  });

  it('(d) task-queue routing: trials of a `gpu` study run only on the host that serves `gpu`', async () => {
    const gpuHost = hosts[2];
    await startWorker(gpuHost, 'gpu', ['--no-control']);
    const spec = study('mh-gpu', 'gpu', { kind: 'noop', sleepMs: 200, epochs: 1 }, [0, 1, 2, 3], 4);
    const planned = planStudy(spec);
    const { handle } = await startStudy(client!, spec, { workflowInput: { timeouts: TEST_TIMEOUTS } });
    const outcome = await handle.result();
    expect(outcome.counts).toMatchObject({ total: 4, done: 4, failed: 0 });
    for (const t of planned) {
      const row = await trialRow(t.key);
      expect(row).toMatchObject({ attempt: 1, status: 'done' });
      expect(hostOf(row.worker), t.key).toBe(gpuHost.ns);
    }
  });
});
