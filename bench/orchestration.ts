import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { tsToMs } from '@temporalio/common/lib/time.js';
import postgres from 'postgres';
import { startDevServer } from '../infra/temporal.ts';
import { startStudy } from '../infra/client.ts';
import { parseStudySpec } from '../src/spec/study.ts';
import type { TrainTrialOutput, TrialTimings } from '../activities/train-trial.ts';
import { spareRunnersFromEnv, trialsPerRunnerFromEnv } from '../activities/common.ts';

/**
 * Orchestration overhead: a study of `--trials` noop trials (the runner sleeps `--sleep-ms` and trains nothing)
 * on 1 and on 4 `mmsweep worker` processes (each with `--slots` slots), against a local Temporal dev server and the
 * Postgres server. Prints wall time, throughput, the per-trial overhead (slot-seconds per trial beyond the sleep:
 * runner process start, activity, database writes, workflow scheduling) and the speed-up.
 *
 *   npm run bench -- orchestration [--trials 200] [--sleep-ms 200] [--slots 1] [--workers 1,4]
 */
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function option(args: string[], name: string, fallback: string): string {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] ? args[i + 1] : fallback;
}

export async function run(args: string[]): Promise<void> {
  const trials = Number(option(args, '--trials', '200'));
  const sleepMs = Number(option(args, '--sleep-ms', '200'));
  const slots = Number(option(args, '--slots', '1'));
  const workerCounts = option(args, '--workers', '1,4').split(',').map(Number);
  const adminUrl = process.env.MMSWEEP_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const runners = spareRunnersFromEnv(1) === 0 ? 'no spare runners, a process per trial' : `spare runners, each taking up to ${trialsPerRunnerFromEnv()} trials (MMSWEEP_RUNNER_TRIALS)`;
  console.log(`orchestration benchmark: ${trials} noop trials of ${sleepMs} ms, ${slots} slot(s) per worker process, ${os.availableParallelism()} cores; ${runners}`);

  const stateDir = mkdtempSync(path.join(os.tmpdir(), 'mmsweep-bench-temporal-'));
  const server = await startDevServer({ stateDir, allowPipInstall: false });
  const client = new Client({ connection: await Connection.connect({ address: server.address }), namespace: 'default' });
  const results: Array<{ workers: number; wall: number }> = [];
  try {
    for (const workerCount of workerCounts) {
      const dbName = `mmsweep_bench_${process.pid}_${workerCount}`;
      const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
      await admin.unsafe(`drop database if exists "${dbName}" with (force)`);
      await admin.unsafe(`create database "${dbName}"`);
      const u = new URL(adminUrl);
      u.pathname = `/${dbName}`;
      const checkpointDir = mkdtempSync(path.join(os.tmpdir(), 'mmsweep-bench-ckpt-'));
      const children: ChildProcess[] = [];
      try {
        // Migrate once before the workers start, so start-up is not part of the measurement.
        const { openDatabase } = await import('../db/index.ts');
        await (await openDatabase({ url: u.toString() })).close();
        const queue = `bench${workerCount}`;
        await Promise.all(
          Array.from({ length: workerCount }, async () => {
            const child = spawn(
              process.execPath,
              [path.join(repoRoot, 'bin', 'mmsweep.js'), 'worker', '--queue', queue, '--slots', String(slots), '--checkpoint-dir', checkpointDir, '--no-upload-checkpoints'],
              { cwd: repoRoot, env: { ...process.env, TEMPORAL_ADDRESS: server.address, DATABASE_URL: u.toString() }, stdio: ['ignore', 'ignore', 'pipe'] },
            );
            children.push(child);
            let err = '';
            child.stderr!.on('data', (d) => {
              err += d;
              if (process.env.MMSWEEP_BENCH_VERBOSE) process.stderr.write(d); // the workers' own warnings, for debugging
            });
            const deadline = Date.now() + 120_000;
            while (!err.includes('mmsweep worker ')) {
              if (child.exitCode !== null || Date.now() > deadline) throw new Error(`worker did not start:\n${err}`);
              await new Promise((r) => setTimeout(r, 100));
            }
          }),
        );
        const concurrency = workerCount * slots;
        const spec = parseStudySpec({
          name: `bench-${workerCount}w-${Date.now().toString(36)}`,
          queue,
          concurrency,
          conditions: [{ label: 'noop', base: { kind: 'noop', sleepMs, epochs: 1 }, seeds: Array.from({ length: trials }, (_, i) => i) }],
        });
        const serverCpuBefore = server.pid ? cpuMs(server.pid) : 0;
        const workersCpuBefore = children.reduce((sum, c) => sum + cpuMs(c.pid!, true), 0); // their start-up
        const t0 = performance.now();
        const { handle } = await startStudy(client, spec);
        const outcome = await handle.result();
        const wall = (performance.now() - t0) / 1000;
        // CPU per trial of everything the study ran on (other jobs on the machine excluded): the worker processes
        // with the runners they reaped, the Temporal dev server, and this database's Postgres backends.
        const serverCpu = server.pid ? cpuMs(server.pid) - serverCpuBefore : 0;
        const workersCpu = children.reduce((sum, c) => sum + cpuMs(c.pid!, true), 0) - workersCpuBefore;
        const backends = await admin<{ pid: number }[]>`select pid from pg_stat_activity where datname = ${dbName}`;
        const postgresCpu = backends.reduce((sum, b) => sum + cpuMs(b.pid), 0);
        const perTrial = (ms: number) => (ms / trials).toFixed(0);
        console.log(
          `  CPU per trial: workers and their runners ${perTrial(workersCpu)} ms, Temporal server ${perTrial(serverCpu)} ms, ` +
            `Postgres ${perTrial(postgresCpu)} ms; total ${perTrial(workersCpu + serverCpu + postgresCpu)} ms ` +
            `(${os.availableParallelism()} cores fit at most ${((os.availableParallelism() * 1000 * trials) / (workersCpu + serverCpu + postgresCpu)).toFixed(1)} trials/s)`,
        );
        if (outcome.counts.done !== trials) throw new Error(`only ${outcome.counts.done}/${trials} trials done`);
        const sql = postgres(u.toString(), { max: 1, onnotice: () => {} });
        const [timing] = await sql<{ runner: number }[]>`select avg(extract(epoch from finished_at - started_at))::float8 as runner from trials`;
        await sql.end();
        console.log(await breakdown(handle, sleepMs));
        const overhead = (wall * concurrency) / trials - sleepMs / 1000;
        results.push({ workers: workerCount, wall });
        console.log(
          `${workerCount} worker process(es) × ${slots} slot(s): ${wall.toFixed(1)} s wall, ${(trials / wall).toFixed(2)} trials/s, ` +
            `per-trial overhead ${(overhead * 1000).toFixed(0)} ms of slot time = ${((timing.runner - sleepMs / 1000) * 1000).toFixed(0)} ms inside the activity ` +
            `(runner process start/exit, events, store writes) + ${((overhead - timing.runner + sleepMs / 1000) * 1000).toFixed(0)} ms scheduling (Temporal, workflow), workflow runs ${outcome.runs}`,
        );
      } finally {
        await Promise.all(
          children.map(
            (c) =>
              new Promise<void>((resolve) => {
                if (c.exitCode !== null) return resolve();
                c.once('exit', () => resolve());
                c.kill('SIGTERM');
                setTimeout(() => c.kill('SIGKILL'), 15_000).unref();
              }),
          ),
        );
        await admin.unsafe(`drop database if exists "${dbName}" with (force)`);
        await admin.end();
        rmSync(checkpointDir, { recursive: true, force: true });
      }
    }
    const one = results.find((r) => r.workers === 1);
    for (const r of results) if (one && r !== one) console.log(`speed-up ${r.workers} vs 1 worker process(es): ${(one.wall / r.wall).toFixed(2)}×`);
  } finally {
    await client.connection.close();
    await server.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

/** CPU time (user + system) of a process, with its reaped descendants when `children`, from /proc (0 when gone). */
function cpuMs(pid: number, children = false): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 14–17 of proc(5) (utime, stime, cutime, cstime), counted after the command name: indices 11–14.
    const ticks = Number(fields[11]) + Number(fields[12]) + (children ? Number(fields[13]) + Number(fields[14]) : 0);
    return (ticks * 1000) / 100; // USER_HZ is 100 on Linux
  } catch {
    return 0;
  }
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/**
 * Where a trial's slot time went, from the last workflow run's history (the server's times of each trainTrial's
 * schedule, start and completion) and the phase timings the activity returns (activities/train-trial.ts).
 * `workflow` is a completion to the next schedule (the workflow task that launches the next trial); `dispatch` a
 * schedule to the server's start of it (waiting for a free slot included); `pickup` that start to the activity's
 * code running; `report` the activity's return to the server's completion event.
 */
async function breakdown(handle: WorkflowHandle, sleepMs: number): Promise<string> {
  const history = await handle.fetchHistory();
  const scheduled = new Map<string, number>();
  const started = new Map<string, number>();
  const completions: Array<{ at: number; scheduledId: string; output: TrainTrialOutput }> = [];
  const workflowGaps: number[] = [];
  let lastCompleted: number | null = null;
  for (const event of history.events ?? []) {
    const at = tsToMs(event.eventTime);
    const id = String(event.eventId);
    if (event.activityTaskScheduledEventAttributes?.activityType?.name === 'trainTrial') {
      scheduled.set(id, at);
      if (lastCompleted !== null) workflowGaps.push(at - lastCompleted);
    } else if (event.activityTaskStartedEventAttributes) {
      started.set(String(event.activityTaskStartedEventAttributes.scheduledEventId), at);
    } else if (event.activityTaskCompletedEventAttributes) {
      const a = event.activityTaskCompletedEventAttributes;
      const scheduledId = String(a.scheduledEventId);
      if (!scheduled.has(scheduledId)) continue;
      lastCompleted = at;
      completions.push({ at, scheduledId, output: defaultPayloadConverter.fromPayload(a.result!.payloads![0]!) as TrainTrialOutput });
    }
  }
  const rows: Record<string, number[]> = { dispatch: [], pickup: [], claimed: [], prepared: [], runnerReady: [], firstEvent: [], exited: [], writesDone: [], resultRecorded: [], report: [] };
  const phases: Array<keyof Omit<TrialTimings, 'startedAtMs'>> = ['claimed', 'prepared', 'runnerReady', 'firstEvent', 'exited', 'writesDone', 'resultRecorded'];
  for (const c of completions) {
    const s = scheduled.get(c.scheduledId)!;
    const st = started.get(c.scheduledId);
    const t = c.output.timings;
    if (st === undefined || !t) continue;
    rows.dispatch!.push(st - s);
    rows.pickup!.push(t.startedAtMs - st);
    let previous = 0;
    for (const phase of phases) {
      const value = t[phase];
      if (value === undefined) continue;
      rows[phase]!.push(value - previous - (phase === 'exited' ? sleepMs : 0));
      previous = value;
    }
    rows.report!.push(c.at - (t.startedAtMs + previous));
  }
  const show = (name: string, v: number[]) => `${name} ${mean(v).toFixed(0)} (${median(v).toFixed(0)})`;
  const parts = [show('workflow', workflowGaps), ...Object.entries(rows).map(([k, v]) => show(k, v))];
  return `  ms per trial, mean (median), ${completions.length} trials of the last run, 'exited' less the sleep: ${parts.join(', ')}`;
}
