import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import postgres from 'postgres';
import { startDevServer } from '../infra/temporal.ts';
import { startStudy } from '../infra/client.ts';
import { parseStudySpec } from '../src/spec/study.ts';

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
  console.log(`orchestration benchmark: ${trials} noop trials of ${sleepMs} ms, ${slots} slot(s) per worker process, ${os.availableParallelism()} cores`);

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
        const t0 = performance.now();
        const { handle } = await startStudy(client, spec);
        const outcome = await handle.result();
        const wall = (performance.now() - t0) / 1000;
        if (outcome.counts.done !== trials) throw new Error(`only ${outcome.counts.done}/${trials} trials done`);
        const sql = postgres(u.toString(), { max: 1, onnotice: () => {} });
        const [timing] = await sql<{ runner: number }[]>`select avg(extract(epoch from finished_at - started_at))::float8 as runner from trials`;
        await sql.end();
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
