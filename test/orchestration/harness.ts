import { Client, Connection } from '@temporalio/client';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import { openDatabase, type DbHandle } from '../../db/index.ts';
import { startDevServer, type DevServer } from '../../infra/temporal.ts';
import { stopChild } from '../../infra/stop-child.ts';
import { defaultPayloadConverter } from '@temporalio/common';
import type { TrainTrialOutput } from '../../activities/index.ts';
import type { TrialResult } from '../../src/spec/contracts.ts';
import { EVENT_LINE_PREFIX } from '../../src/runner/protocol.ts';

/**
 * Real services for the orchestration tests: a Temporal dev server on a free port with its own state file (and a
 * continue-as-new suggestion after 40 events, so that path runs in every study), a uniquely named database on the
 * Postgres server at 127.0.0.1:5432, and worker processes started through the real CLI.
 */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const ADMIN_URL = process.env.MMSWEEP_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const CONTINUE_AS_NEW_AT = 40;

export function tempDir(prefix: string): string {
  return mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** On `port`, or on a random free port (never the default 7233: test files run in parallel). */
export async function startTemporal(stateDir: string, port?: number): Promise<DevServer> {
  return startDevServer({
    stateDir,
    port: port ?? 0,
    dynamicConfig: [`limit.historyCount.suggestContinueAsNew=${CONTINUE_AS_NEW_AT}`],
    allowPipInstall: false,
  });
}

export async function temporalClient(address: string): Promise<Client> {
  const connection = await Connection.connect({ address });
  return new Client({ connection, namespace: 'default' });
}

export interface TestDatabase {
  name: string;
  url: string;
  handle: DbHandle;
  drop(): Promise<void>;
}

export async function createDatabase(): Promise<TestDatabase> {
  const name = `mmsweep_orch_${process.pid}_${Date.now().toString(36)}`;
  const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database "${name}"`);
  await admin.end();
  const u = new URL(ADMIN_URL);
  u.pathname = `/${name}`;
  const url = u.toString();
  const handle = await openDatabase({ url });
  return {
    name,
    url,
    handle,
    drop: async () => {
      await handle.close().catch(() => undefined);
      const a = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
      await a.unsafe(`drop database if exists "${name}" with (force)`);
      await a.end();
    },
  };
}

export interface WorkerProcess {
  child: ChildProcess;
  output: () => string;
  stop(): Promise<void>;
}

/** `mmsweep worker` as its own process (so a test can kill -9 it). Resolves once it polls. */
export async function startWorkerProcess(o: {
  address: string;
  databaseUrl: string;
  queue: string;
  slots: number;
  checkpointDir: string;
  extraArgs?: string[];
  /** Command prefix that execs node, e.g. `ip netns exec <ns> …` to run the worker on a simulated host. */
  launcher?: string[];
  env?: NodeJS.ProcessEnv;
}): Promise<WorkerProcess> {
  const command = [
    process.execPath,
    path.join(repoRoot, 'bin', 'mmsweep.js'), 'worker', '--queue', o.queue, '--slots', String(o.slots), '--checkpoint-dir', o.checkpointDir, '--heartbeat-interval', '1000', ...(o.extraArgs ?? []),
  ];
  const [file, ...args] = [...(o.launcher ?? []), ...command];
  const child = spawn(file, args, {
    cwd: repoRoot,
    env: { ...process.env, ...o.env, TEMPORAL_ADDRESS: o.address, DATABASE_URL: o.databaseUrl },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  await waitUntil(() => out.includes('mmsweep worker '), 60_000, () => `worker did not start:\n${out}`, () => child.exitCode !== null);
  return {
    child,
    output: () => out,
    stop: () => stopChild(child, 15_000),
  };
}

/** Poll `check` every 100 ms; bounded in time. */
export async function waitUntil(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  message: () => string = () => 'condition not met',
  abort: () => boolean = () => false,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    if (abort()) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${timeoutMs} ms: ${message()}`);
}

export function readPid(file: string): number | null {
  return existsSync(file) ? Number(readFileSync(file, 'utf8')) : null;
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A real CMNIST trial small enough to train in seconds on wasm (4 short epochs): the crash tests' workload. */
export const SMALL_CMNIST_TRIAL = {
  dataset: { name: 'cmnist' },
  lr: 0.05,
  batchSize: 32,
  evalBatchSize: 128,
  subset: { train: 128, val: 64, test: 64 },
  width: 0.25,
  maxEpochs: 4,
  backend: 'wasm',
};

/** trainTrial outputs recorded in a study's history (its latest run). */
export async function trainOutputs(client: Client, workflowId: string): Promise<TrainTrialOutput[]> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const outputs: TrainTrialOutput[] = [];
  for (const event of history.events ?? []) {
    const payload = event.activityTaskCompletedEventAttributes?.result?.payloads?.[0];
    if (!payload) continue;
    const value = defaultPayloadConverter.fromPayload(payload) as Partial<TrainTrialOutput>;
    if (value && typeof value === 'object' && 'trialKey' in value && 'checkpointSource' in value) outputs.push(value as TrainTrialOutput);
  }
  return outputs;
}

/** The trial run uninterrupted through the same runner command (`mmsweep train --events`): the reference a resumed run must equal. */
export function referenceRun(spec: unknown): Promise<{ result: TrialResult; epochs: Record<string, unknown>[] }> {
  const dir = tempDir('mmsweep-ref-');
  const specFile = path.join(dir, 'spec.json');
  writeFileSync(specFile, JSON.stringify(spec));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(repoRoot, 'bin', 'mmsweep.js'), 'train', '--spec', specFile, '--checkpoint-dir', dir, '--events'], { cwd: repoRoot });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('exit', (code) => {
      const events = out.split('\n').filter((l) => l.startsWith(EVENT_LINE_PREFIX)).map((l) => JSON.parse(l.slice(EVENT_LINE_PREFIX.length)));
      const result = events.find((e) => e.type === 'result')?.result;
      if (code !== 0 || !result) reject(new Error(`reference run exited ${code}`));
      else resolve({ result, epochs: events.filter((e) => e.type === 'epoch').map((e) => e.metrics) });
    });
  });
}
