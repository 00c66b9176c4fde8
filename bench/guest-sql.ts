import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { sql } from 'drizzle-orm';
import { embeddedServerInfo, GuestSandbox, openDatabase, rowsOf, runReadOnlyQuery, type DbHandle } from '../db/index.ts';
import { fetchSnapshot } from '../db/embedded-server.ts';
import { fill, fmt, line, medianMs } from './db.ts';

/**
 * `npm run bench -- guest-sql [--trials N] [--epochs-per-trial E]`
 *
 * What a guest query (`mmsweep sql`) on the embedded database costs (issue 17, S2). A home of N finished trials ×
 * E epochs (default 3,000 × 30) is held by an owner serving it as `mmsweep run` does; the benchmark times the
 * owner's snapshot (PGlite's dumpDataDir), its way through the snapshot socket, opening it in the guest's sandbox,
 * a query there, `mmsweep sql` end to end, and how long the owner's own statements wait while snapshots are taken.
 * Measured right after the writes (the WAL since the last checkpoint is in the snapshot) and after a CHECKPOINT.
 */

interface Options {
  trials: number;
  epochsPerTrial: number;
}

function parseArgs(args: string[]): Options {
  const options: Options = { trials: 3000, epochsPerTrial: 30 };
  for (let i = 0; i < args.length; i++) {
    const value = Number(args[i + 1]);
    if (args[i] === '--trials') options.trials = value;
    else if (args[i] === '--epochs-per-trial') options.epochsPerTrial = value;
    else throw new Error(`unknown option ${args[i]}: use --trials N, --epochs-per-trial E`);
    i++;
  }
  if (!(options.trials > 0) || !(options.epochsPerTrial >= 0)) throw new Error('--trials must be > 0 and --epochs-per-trial ≥ 0');
  return options;
}

const repoRoot = fileURLToPath(new URL('..', import.meta.url));

function duSync(dir: string): number {
  let total = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += fs.statSync(path.join(entry.parentPath, entry.name)).size;
  }
  return total;
}

const mib = (bytes: number) => `${fmt(bytes / 2 ** 20, 1)} MiB`;

/** `mmsweep sql` as a user runs it: wall time and the figures it prints under MMSWEEP_DEBUG. */
function mmsweepSql(home: string, query: string): Promise<{ ms: number; stdout: string; stderr: string; code: number | null }> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['bin/mmsweep.js', 'sql', query, '--format', 'csv'], {
      cwd: repoRoot,
      env: { ...process.env, MMSWEEP_HOME: home, DATABASE_URL: '', MMSWEEP_DEBUG: '1' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ ms: performance.now() - t0, stdout, stderr, code }));
  });
}

/** The slowest of the owner's own statements while `during` runs (a statement at a time, back to back). */
async function ownerWaitWhile(owner: DbHandle, during: () => Promise<unknown>): Promise<{ maxMs: number; statements: number }> {
  let running = true;
  let maxMs = 0;
  let statements = 0;
  const loop = (async () => {
    while (running) {
      const t0 = performance.now();
      await owner.db.execute(sql`select count(*) from studies`);
      maxMs = Math.max(maxMs, performance.now() - t0);
      statements++;
    }
  })();
  await during();
  running = false;
  await loop;
  return { maxMs, statements };
}

async function measure(owner: DbHandle, home: string, dataDir: string, state: string): Promise<void> {
  const socket = embeddedServerInfo(dataDir)!.snapshot!;
  process.stdout.write(`\n${state}: data directory ${mib(duSync(dataDir))} on disk (pg_wal ${mib(duSync(path.join(dataDir, 'pg_wal')))})\n`);
  const dumped = await owner.snapshot!();
  line('snapshot size (tar, uncompressed)', mib(dumped.byteLength));
  line("owner's dumpDataDir (median of 5)", `${fmt(await medianMs(5, () => owner.snapshot!()), 0)} ms`);
  line('a guest fetching it through the snapshot socket (median of 5)', `${fmt(await medianMs(5, () => fetchSnapshot(socket)), 0)} ms`);
  let sandbox: GuestSandbox | undefined;
  const openMs = await medianMs(3, async () => {
    await sandbox?.close();
    sandbox = await GuestSandbox.start(await fetchSnapshot(socket));
  });
  line('opening it in the sandbox, fetch included (median of 3)', `${fmt(openMs, 0)} ms`);
  const t0 = performance.now();
  const counted = await runReadOnlyQuery(sandbox!, 'select count(*)::int as n from epochs', { timeoutMs: 60_000 });
  line(`select count(*) from epochs in the sandbox (${fmt((counted.rows[0] as { n: number }).n)} rows)`, `${fmt(performance.now() - t0, 0)} ms`);
  await sandbox!.close();
  const idle = await ownerWaitWhile(owner, () => new Promise((resolve) => setTimeout(resolve, 2000)));
  const busy = await ownerWaitWhile(owner, async () => {
    for (let i = 0; i < 5; i++) await fetchSnapshot(socket);
  });
  line("owner's slowest statement: idle 2 s / during 5 snapshots", `${fmt(idle.maxMs, 1)} ms / ${fmt(busy.maxMs, 1)} ms (${idle.statements} / ${busy.statements} statements)`);
  const runs = [];
  for (let i = 0; i < 3; i++) runs.push(await mmsweepSql(home, 'select count(*)::int as n from results'));
  runs.sort((a, b) => a.ms - b.ms);
  const median = runs[1];
  if (median.code !== 0) throw new Error(`mmsweep sql failed: ${median.stderr}`);
  line('`mmsweep sql "select count(*) from results"` wall time (median of 3)', `${fmt(median.ms, 0)} ms`);
  line('  its own account', median.stderr.trim().replace(/^mmsweep: sql: /, ''));
}

export async function run(args: string[]): Promise<void> {
  const options = parseArgs(args);
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'mmsweep-bench-guest-'));
  const dataDir = path.join(home, 'db');
  const owner = await openDatabase({ url: '', dataDir });
  try {
    process.stdout.write(`guest queries on the embedded database: ${fmt(options.trials)} finished trials × ${options.epochsPerTrial} epochs\n`);
    process.stdout.write(`load average before: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}\n`);
    await fill(owner.db, { results: options.trials, epochsPerTrial: options.epochsPerTrial });
    await measure(owner, home, dataDir, 'right after the writes');
    await owner.db.execute(sql`checkpoint`);
    const [{ n }] = rowsOf<{ n: number }>(await owner.db.execute(sql`select count(*)::int as n from trials`));
    await measure(owner, home, dataDir, `after a CHECKPOINT (${fmt(n)} trials)`);
    process.stdout.write(`\nload average after: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}\n`);
  } finally {
    await owner.close();
    fs.rmSync(home, { recursive: true, force: true });
  }
}
