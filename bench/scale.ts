import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import postgres from 'postgres';
import { startDevServer, stateFiles } from '../infra/temporal.ts';
import { stopChild } from '../infra/stop-child.ts';
import { integerArg } from './args.ts';

/**
 * Studies of any size (issue 15), through the real CLI against a local Temporal dev server and the Postgres server:
 *  1. plan and register a study of `--register` no-op trials (default 10⁶): `mmsweep study plan` and
 *     `mmsweep study start` (time, peak RSS), then the worker's streamed registration (time, trials/s, peak RSS);
 *     then `study status`, `results` and `report` on that study (wall time of each command, peak RSS).
 *  2. run `--run` no-op trials of 0 ms (default 20,000) end to end through `mmsweep run`: trials/s, history events
 *     per trial, the CLI's RSS over time.
 * Peak RSS is the kernel's high-water mark (VmHWM / GNU time %M). Prints the load average and processor.
 *
 *   npm run bench -- scale [--register 1000000] [--run 20000] [--slots 2] [--skip-register] [--skip-run]
 */
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = path.join(repoRoot, 'bin', 'mmsweep.js');

function option(args: string[], name: string, fallback: string): string {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] ? args[i + 1] : fallback;
}

function machine(): string {
  const cpu = os.cpus()[0]?.model ?? 'unknown processor';
  return `${cpu}, ${os.availableParallelism()} cores, load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`;
}

function noopSpec(name: string, queue: string, seeds: number, concurrency: number) {
  return { name, queue, concurrency, conditions: [{ label: 'noop', base: { kind: 'noop', sleepMs: 0, epochs: 1 }, seeds: Array.from({ length: seeds }, (_, i) => i) }] };
}

/** A CLI command under GNU time: wall seconds, peak RSS (MB), output. */
function timed(args: string[], env: NodeJS.ProcessEnv, stdoutToNull = false): Promise<{ seconds: number; peakMb: number; output: string; code: number | null }> {
  return new Promise((resolve) => {
    const child = spawn('/usr/bin/time', ['-f', 'TIME %e %M', process.execPath, CLI, ...args], { cwd: repoRoot, env: { ...process.env, ...env } });
    let output = '';
    let err = '';
    if (!stdoutToNull) child.stdout.on('data', (d) => (output += d));
    else child.stdout.resume();
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code) => {
      const m = /TIME ([\d.]+) (\d+)/.exec(err);
      resolve({ seconds: m ? Number(m[1]) : NaN, peakMb: m ? Number(m[2]) / 1024 : NaN, output: output + err.replace(/TIME .*\n?/, ''), code });
    });
  });
}

/** CPU seconds (user + system) a process has used, from /proc (NaN when it is gone or unreadable). */
function cpuSeconds(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime in clock ticks (USER_HZ = 100 on Linux)
  } catch {
    return NaN;
  }
}

function procStatus(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  try {
    const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}


async function historyEvents(client: Client, workflowId: string): Promise<{ events: number; runs: number }> {
  let events = 0;
  let runs = 0;
  let runId: string | undefined;
  for (;;) {
    const history = await client.workflow.getHandle(workflowId, runId).fetchHistory();
    events += history.events?.length ?? 0;
    runs++;
    const previous = history.events?.[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId;
    if (!previous) return { events, runs };
    runId = previous;
  }
}

export async function run(args: string[]): Promise<void> {
  const registerCount = integerArg('register', option(args, '--register', '1000000'), 1);
  const runCount = integerArg('run', option(args, '--run', '20000'), 1);
  const slots = integerArg('slots', option(args, '--slots', '2'), 1);
  const adminUrl = process.env.MMSWEEP_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const work = mkdtempSync(path.join(os.tmpdir(), 'mmsweep-bench-scale-'));
  const dbName = `mmsweep_bench_scale_${process.pid}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database "${dbName}"`);
  const u = new URL(adminUrl);
  u.pathname = `/${dbName}`;
  const databaseUrl = u.toString();
  console.log(`scale benchmark — ${machine()}`);
  try {
    const { openDatabase } = await import('../db/index.ts');
    await (await openDatabase({ url: databaseUrl })).close();
    if (!args.includes('--skip-register')) await registerBench(registerCount, slots, work, databaseUrl);
    if (!args.includes('--skip-run')) await runBench(runCount, slots, work, databaseUrl);
  } finally {
    await admin.unsafe(`drop database if exists "${dbName}" with (force)`);
    await admin.end();
    rmSync(work, { recursive: true, force: true });
  }
}

async function registerBench(count: number, slots: number, work: string, databaseUrl: string): Promise<void> {
  const name = `scale-${count}`;
  const queue = 'scalebench';
  const specFile = path.join(work, `${name}.json`);
  writeFileSync(specFile, JSON.stringify(noopSpec(name, queue, count, slots)));
  console.log(`\n1. plan and register ${count} no-op trials (spec file ${(readFileSync(specFile).byteLength / 1e6).toFixed(1)} MB)`);

  const plan = await timed(['study', 'plan', specFile], {}, true);
  console.log(`   mmsweep study plan:   ${plan.seconds.toFixed(1)} s, peak RSS ${plan.peakMb.toFixed(0)} MB (exit ${plan.code})`);

  const server = await startDevServer({ stateDir: path.join(work, 'temporal'), port: 0, allowPipInstall: false });
  const env = { TEMPORAL_ADDRESS: server.address, DATABASE_URL: databaseUrl };
  const worker = spawn(process.execPath, [CLI, 'worker', '--queue', queue, '--slots', String(slots), '--checkpoint-dir', path.join(work, 'ckpt'), '--no-upload-checkpoints'], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let workerLog = '';
  worker.stderr!.on('data', (d) => (workerLog += d));
  const client = new Client({ connection: await Connection.connect({ address: server.address }), namespace: 'default' });
  try {
    const deadline = Date.now() + 120_000;
    while (!workerLog.includes('mmsweep worker ')) {
      if (worker.exitCode !== null || Date.now() > deadline) throw new Error(`worker did not start:\n${workerLog}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const rssBefore = procStatus(worker.pid!, 'VmRSS');
    const workerCpu0 = cpuSeconds(worker.pid!);
    const t0 = performance.now();
    const start = await timed(['study', 'start', specFile], env);
    console.log(`   mmsweep study start:  ${start.seconds.toFixed(1)} s, peak RSS ${start.peakMb.toFixed(0)} MB (exit ${start.code}) — stores the spec document, starts the workflow`);
    const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
    try {
      for (;;) {
        const [row] = await sql<{ registered: boolean }[]>`select registered_sha256 is not null and registered_sha256 = spec_sha256 as registered from studies where id = ${name}`;
        if (row?.registered) break;
        if (worker.exitCode !== null) throw new Error(`worker exited:\n${workerLog}`);
        await new Promise((r) => setTimeout(r, 250));
      }
      const seconds = (performance.now() - t0) / 1000;
      const workerCpu = cpuSeconds(worker.pid!) - workerCpu0;
      // CPU of the server processes serving this database (the worker's connections; mine excluded), since they
      // connected: registration is nearly all of it. CPU time does not grow with the machine's load, wall time does.
      const backends = await sql<{ pid: number }[]>`select pid from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()`;
      const serverCpu = backends.map((b) => cpuSeconds(Number(b.pid))).filter(Number.isFinite).reduce((a, b) => a + b, 0);
      const [{ n }] = await sql<{ n: number }[]>`select count(*)::int as n from study_trials where study_id = ${name}`;
      console.log(
        `   registered ${n} trials ${seconds.toFixed(1)} s after study start (${(n / seconds).toFixed(0)} trials/s into Postgres); ` +
          `worker RSS ${rssBefore.toFixed(0)} MB idle, peak ${procStatus(worker.pid!, 'VmHWM').toFixed(0)} MB`,
      );
      const server = serverCpu > 0 ? `Postgres ${serverCpu.toFixed(1)} s (${((serverCpu / n) * 1e6).toFixed(0)} µs per trial)` : 'Postgres not readable here (another machine?)';
      console.log(`   CPU: worker ${workerCpu.toFixed(1)} s, ${server} — the wall time above is what the machine's load left of these`);
    } finally {
      await sql.end();
    }
    for (const command of [
      ['study', 'status', name],
      ['results', name],
      ['report', name, '--out', path.join(work, 'report'), '--no-png'],
    ]) {
      const r = await timed(command, env, true);
      console.log(`   mmsweep ${command.slice(0, 2).join(' ')}: ${r.seconds.toFixed(2)} s wall (Node start-up included), peak RSS ${r.peakMb.toFixed(0)} MB (exit ${r.code})`);
    }
    await timedQueries(databaseUrl, name);
    await client.workflow.getHandle(`mmsweep-study-${name}`).signal('cancel');
    await client.workflow.getHandle(`mmsweep-study-${name}`).result().catch(() => undefined);
  } finally {
    await stopChild(worker, 15_000);
    await client.connection.close();
    await server.stop();
  }
}

/** The aggregate queries behind status/results/report, timed in-process (no Node start-up in the figure). */
async function timedQueries(databaseUrl: string, studyId: string): Promise<void> {
  const { openDatabase, studyProgress, studySummary } = await import('../db/index.ts');
  const { loadReportData } = await import('../src/report/data.ts');
  const handle = await openDatabase({ url: databaseUrl, migrate: false });
  try {
    for (const [label, fn] of [
      ['study_progress (counts)', () => studyProgress(handle.db, studyId)],
      ['condition summary (results)', () => studySummary(handle.db, studyId)],
      ['report data', () => loadReportData(handle.db, [studyId])],
    ] as const) {
      const t = performance.now();
      await (fn as () => Promise<unknown>)();
      console.log(`   query ${label}: ${((performance.now() - t) / 1000).toFixed(3)} s`);
    }
  } finally {
    await handle.close();
  }
}

async function runBench(count: number, slots: number, work: string, databaseUrl: string): Promise<void> {
  const name = `scale-run-${count}`;
  const specFile = path.join(work, `${name}.json`);
  writeFileSync(specFile, JSON.stringify(noopSpec(name, 'scalerun', count, slots)));
  const home = path.join(work, 'home');
  console.log(`\n2. ${count} no-op trials of 0 ms end to end through mmsweep run (${slots} slots, runner process per trial)`);
  const child = spawn(process.execPath, [CLI, 'run', specFile, '--no-progress', '--slots', String(slots), '--keep-server'], {
    cwd: repoRoot,
    env: { ...process.env, MMSWEEP_HOME: home, DATABASE_URL: databaseUrl },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr!.on('data', (d) => (log += d));
  const t0 = performance.now();
  const samples: Array<{ t: number; rss: number; done: number }> = [];
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  const sampler = setInterval(async () => {
    const rss = procStatus(child.pid!, 'VmRSS');
    const [row] = await sql<{ n: number }[]>`select count(*)::int as n from results`.catch(() => [{ n: NaN }]);
    samples.push({ t: (performance.now() - t0) / 1000, rss, done: Number(row.n) });
  }, 10_000);
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  clearInterval(sampler);
  await sql.end();
  const seconds = (performance.now() - t0) / 1000;
  if (code !== 0) console.log(log.split('\n').slice(-20).join('\n'));
  console.log(`   exit ${code} after ${seconds.toFixed(0)} s: ${(count / seconds).toFixed(2)} trials/s (dev server start and workflow bundle included)`);
  const steady = samples.filter((s) => s.done > 0);
  if (steady.length >= 2) {
    const a = steady[0];
    const b = steady[steady.length - 1];
    console.log(`   steady rate ${((b.done - a.done) / (b.t - a.t)).toFixed(2)} trials/s between ${a.done} and ${b.done} done`);
  }
  const rss = samples.map((s) => s.rss).filter(Number.isFinite);
  const pick = (q: number) => samples[Math.min(samples.length - 1, Math.floor(q * (samples.length - 1)))];
  console.log(`   mmsweep run RSS over time (t s: MB @ done): ${[0, 0.25, 0.5, 0.75, 1].map((q) => pick(q)).filter(Boolean).map((s) => `${s.t.toFixed(0)}: ${s.rss.toFixed(0)} @ ${s.done}`).join(', ')}; min ${Math.min(...rss).toFixed(0)}, max ${Math.max(...rss).toFixed(0)} MB`);
  // The dev server was kept so its histories can be counted.
  const state = JSON.parse(readFileSync(stateFiles(path.join(home, 'temporal')).state, 'utf8')) as { ip: string; port: number; pid: number };
  const client = new Client({ connection: await Connection.connect({ address: `${state.ip}:${state.port}` }), namespace: 'default' });
  try {
    const { events, runs } = await historyEvents(client, `mmsweep-study-${name}`);
    console.log(`   history: ${events} events in ${runs} runs = ${(events / count).toFixed(2)} events per trial`);
  } finally {
    await client.connection.close();
    try {
      process.kill(state.pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
}
