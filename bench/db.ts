import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { eq, getTableColumns, sql } from 'drizzle-orm';
import postgres from 'postgres';
import {
  claimTrialAttempt,
  openDatabase,
  pendingTrialKeys,
  recordEpoch,
  recordResult,
  registerTrials,
  studySummary,
  trialOutcomes,
  upsertStudy,
  type Db,
  type DbHandle,
} from '../db/index.ts';
import { epochs, results, trials } from '../db/schema.ts';
import { parseTrialSpec, type TrialSpec } from '../src/spec/trial.ts';

/**
 * `npm run bench -- db [--embedded] [--url URL] [--results N] [--epochs-per-trial E]`
 *
 * Fills a fresh results store with N synthetic finished trials (default 100,000) and N·E epoch rows (default
 * 1,000,000), then times the condition-summary query and the other reads the CLI and reports use. By default it
 * runs on the Postgres server (a temporary database on DATABASE_URL's server, else 127.0.0.1:5432, dropped at
 * the end); `--embedded` uses PGlite in a temporary directory. Also times the fenced per-row writes the
 * orchestration activities make.
 */

export interface Options {
  embedded: boolean;
  url?: string;
  results: number;
  epochsPerTrial: number;
}

function parseArgs(args: string[]): Options {
  const options: Options = { embedded: false, results: 100_000, epochsPerTrial: 10 };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const value = () => {
      const v = args[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    if (arg === '--embedded') options.embedded = true;
    else if (arg === '--url') options.url = value();
    else if (arg === '--results') options.results = Number(value());
    else if (arg === '--epochs-per-trial') options.epochsPerTrial = Number(value());
    else throw new Error(`unknown option ${arg}: use --embedded, --url URL, --results N, --epochs-per-trial E`);
  }
  if (!(options.results > 0) || !(options.epochsPerTrial >= 0)) throw new Error('--results must be > 0 and --epochs-per-trial ≥ 0');
  return options;
}

const ALGORITHMS = ['vanilla', 'guided', 'random', 'rubi'] as const;
const MODALITIES = ['distinct', 'duplicate-m1'] as const;
const LRS = Array.from({ length: 20 }, (_, k) => Number((10 ** (-5 + (5 * k) / 19)).toPrecision(6)));
const L1S = [0, 1e-5];
/** 4 × 2 × 20 × 2 = 320 conditions. */
const CONDITIONS = ALGORITHMS.flatMap((algorithm) =>
  MODALITIES.flatMap((modalities) => LRS.flatMap((lr) => L1S.map((l1) => ({ algorithm, modalities, lr, l1 })))),
);

function specOf(i: number): TrialSpec {
  const c = CONDITIONS[i % CONDITIONS.length];
  return parseTrialSpec({ dataset: { name: 'cmnist' }, ...c, seed: Math.floor(i / CONDITIONS.length) });
}

/** Deterministic pseudo-random numbers, so two runs insert the same data. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

export function fmt(n: number, digits = 0): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

export function line(label: string, value: string): void {
  process.stdout.write(`  ${label.padEnd(56)} ${value}\n`);
}

async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const t0 = performance.now();
  const value = await fn();
  return { value, ms: performance.now() - t0 };
}

export async function medianMs(runs: number, fn: () => Promise<unknown>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) times.push((await timed(fn)).ms);
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

function progress(label: string, done: number, total: number, t0: number): void {
  if (!process.stderr.isTTY) return;
  const rate = done / ((performance.now() - t0) / 1000);
  process.stderr.write(`\r  ${label}: ${fmt(done)} / ${fmt(total)} (${fmt(rate)} rows/s)   `);
  if (done === total) process.stderr.write('\n');
}

async function openTarget(options: Options): Promise<{ handle: DbHandle; where: string; cleanup(): Promise<void> }> {
  if (options.embedded) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mmsweep-bench-db-'));
    const handle = await openDatabase({ url: '', dataDir: path.join(dir, 'db'), serve: false });
    return {
      handle,
      where: `embedded PGlite (${dir}, direct driver)`,
      cleanup: async () => {
        await handle.close();
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  const base = new URL(options.url ?? process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
  const name = `mmsweep_bench_${process.pid}_${Date.now().toString(36)}`;
  const admin = postgres(base.toString(), { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database "${name}"`);
  const target = new URL(base.toString());
  target.pathname = `/${name}`;
  const handle = await openDatabase({ url: target.toString() });
  return {
    handle,
    where: `Postgres server ${base.hostname}:${base.port || 5432}, temporary database ${name}`,
    cleanup: async () => {
      await handle.close();
      await admin.unsafe(`drop database if exists "${name}" with (force)`);
      await admin.end();
    },
  };
}

/**
 * Bulk insert: one JSON parameter expanded by Postgres (json_populate_recordset) instead of a multi-row VALUES
 * list with one bind parameter per cell, which made Postgres and the drivers spend most of the time on parameters.
 */
async function insertJsonRows(db: Db, table: typeof epochs | typeof results, rows: Record<string, unknown>[]): Promise<void> {
  const columns = getTableColumns(table) as Record<string, { name: string }>;
  const keys = Object.keys(rows[0]);
  const names = keys.map((k) => `"${columns[k].name}"`).join(', ');
  const json = JSON.stringify(rows.map((r) => Object.fromEntries(keys.map((k) => [columns[k].name, r[k]]))));
  await db.execute(
    sql`insert into ${table} (${sql.raw(names)}) select ${sql.raw(names)} from json_populate_recordset(null::${table}, ${json}::json)`,
  );
}

export async function fill(db: Db, options: Pick<Options, 'results' | 'epochsPerTrial'>): Promise<void> {
  const n = options.results;
  await upsertStudy(db, { id: 'bench', spec: { synthetic: true, trials: n } });

  const register = await timed(async () => {
    const t0 = performance.now();
    for (let start = 0; start < n; start += 5000) {
      const batch = Array.from({ length: Math.min(5000, n - start) }, (_, j) => ({
        trialKey: `bench-${start + j}`,
        spec: specOf(start + j),
      }));
      await registerTrials(db, 'bench', batch);
      progress('register trials', start + batch.length, n, t0);
    }
  });
  line('registerTrials (trials + memberships)', `${fmt(n)} trials in ${fmt(register.ms / 1000, 1)} s (${fmt(n / (register.ms / 1000))}/s)`);

  const rnd = lcg(1);
  const resultInsert = await timed(async () => {
    const t0 = performance.now();
    for (let start = 0; start < n; start += 1000) {
      const rows = [];
      for (let i = start; i < Math.min(n, start + 1000); i++) {
        const accF0 = 40 + 60 * rnd();
        const accF1 = 40 + 60 * rnd();
        const u10 = (accF0 - accF0 * rnd()) / accF0;
        const u01 = (accF1 - accF1 * rnd()) / accF1;
        rows.push({
          trialKey: `bench-${i}`,
          attempt: 1,
          testAcc: 40 + 60 * rnd(),
          accF: 40 + 60 * rnd(),
          accF0,
          accF1,
          accF0Prime: accF0 * (1 - u10),
          accF1Prime: accF1 * (1 - u01),
          uM1GivenM0: u10,
          uM0GivenM1: u01,
          dUtil: u10 - u01,
          dSpeed: 2 * rnd() - 1,
          rF: rnd() * 0.1,
          bestEpoch: 1 + Math.floor(rnd() * options.epochsPerTrial),
          stepsT: Math.floor(rnd() * 5000),
          epochs: options.epochsPerTrial,
          diverged: rnd() < 0.02,
        });
      }
      await insertJsonRows(db, results, rows);
      progress('insert results', start + rows.length, n, t0);
    }
    await db.update(trials).set({ status: 'done', attempt: 1, worker: 'bench' }).where(eq(trials.status, 'pending'));
  });
  line('results (INSERT … json_populate_recordset, 1,000/stmt)', `${fmt(n)} rows in ${fmt(resultInsert.ms / 1000, 1)} s (${fmt(n / (resultInsert.ms / 1000))}/s)`);

  const totalEpochs = n * options.epochsPerTrial;
  if (totalEpochs > 0) {
    const epochInsert = await timed(async () => {
      const t0 = performance.now();
      let done = 0;
      let batch: (typeof epochs.$inferInsert)[] = [];
      const flush = async () => {
        if (batch.length === 0) return;
        await insertJsonRows(db, epochs, batch);
        done += batch.length;
        batch = [];
        progress('insert epochs', done, totalEpochs, t0);
      };
      for (let i = 0; i < n; i++) {
        for (let e = 1; e <= options.epochsPerTrial; e++) {
          const acc = Math.min(100, 30 + 7 * e + 5 * rnd());
          batch.push({
            trialKey: `bench-${i}`, epoch: e, attempt: 1,
            trainAcc: acc, trainAcc0: acc - 5, trainAcc1: acc - 10, valAcc: acc - 2, valAcc0: acc - 7, valAcc1: acc - 12,
            testAcc: acc - 3, testAcc0: acc - 8, testAcc1: acc - 13, loss: 2 / e, lr: 0.01, dSpeed: rnd() - 0.5,
            regularSteps: 400 * e, rebalanceSteps: 20 * e, wallSeconds: 30 * e,
          });
          if (batch.length === 10_000) await flush();
        }
      }
      await flush();
    });
    line('epochs (INSERT … json_populate_recordset, 10,000/stmt)', `${fmt(totalEpochs)} rows in ${fmt(epochInsert.ms / 1000, 1)} s (${fmt(totalEpochs / (epochInsert.ms / 1000))}/s)`);
  }
  await db.execute(sql`analyze`);
}

async function fencedWrites(db: Db): Promise<void> {
  await upsertStudy(db, { id: 'bench-fenced', spec: {} });
  const count = 200;
  await registerTrials(
    db,
    'bench-fenced',
    Array.from({ length: count }, (_, i) => ({ trialKey: `fenced-${i}`, spec: parseTrialSpec({ dataset: { name: 'cmnist' }, lr: 0.5, seed: i }) })),
  );
  for (let i = 0; i < count; i++) await claimTrialAttempt(db, `fenced-${i}`, 1, { worker: 'bench' });
  const epochMs = await timed(async () => {
    for (let i = 0; i < count; i++) {
      for (let e = 1; e <= 5; e++) await recordEpoch(db, `fenced-${i}`, 1, { epoch: e, trainAcc: 50, valAcc: 50, testAcc: 50, loss: 1, lr: 0.5 });
    }
  });
  const resultMs = await timed(async () => {
    for (let i = 0; i < count; i++) {
      await recordResult(db, `fenced-${i}`, 1, {
        testAcc: 50, accF0: 50, accF1: 50, accF0Prime: 40, accF1Prime: 45, uM1GivenM0: 0.2, uM0GivenM1: 0.1,
        dUtil: 0.1, dSpeed: 0.1, rF: 0, bestEpoch: 5, diverged: false,
      });
    }
  });
  line('recordEpoch (fenced, one row per call)', `${fmt((epochMs.ms / (count * 5)), 2)} ms/call over ${fmt(count * 5)} calls`);
  line('recordResult (fenced, marks the trial done)', `${fmt(resultMs.ms / count, 2)} ms/call over ${fmt(count)} calls`);
}

export async function run(args: string[]): Promise<void> {
  const options = parseArgs(args);
  const target = await openTarget(options);
  process.stdout.write(`results-store benchmark on ${target.where}\n`);
  process.stdout.write(`  ${fmt(options.results)} finished trials × ${options.epochsPerTrial} epochs, ${CONDITIONS.length} conditions\n\n`);
  try {
    const db = target.handle.db;
    process.stdout.write('writes\n');
    await fill(db, options);
    await fencedWrites(db);

    process.stdout.write('\nreads (median of 5)\n');
    const summary = await studySummary(db, 'bench');
    const summaryMs = await medianMs(5, () => studySummary(db, 'bench'));
    line(`condition summary, all ${summary.length} conditions (view)`, `${fmt(summaryMs, 1)} ms`);
    const byAlgorithmMs = await medianMs(5, () => studySummary(db, 'bench', ['algorithm', 'modalities']));
    line('condition summary --by algorithm,modalities', `${fmt(byAlgorithmMs, 1)} ms`);
    const outcomesMs = await medianMs(5, () => trialOutcomes(db, 'bench'));
    line(`trial_outcomes, all ${fmt(options.results)} rows fetched`, `${fmt(outcomesMs, 1)} ms`);
    const pendingMs = await medianMs(5, () => pendingTrialKeys(db, 'bench'));
    line('pendingTrialKeys (none pending)', `${fmt(pendingMs, 1)} ms`);
    const curveMs = await medianMs(5, () => db.select().from(epochs).where(eq(epochs.trialKey, `bench-${Math.floor(options.results / 2)}`)));
    line('one learning curve (epochs of one trial)', `${fmt(curveMs, 2)} ms`);
    const n = summary.reduce((s, r) => s + r.n, 0);
    if (n !== options.results) throw new Error(`summary counted ${n} trials, expected ${options.results}`);
  } finally {
    await target.cleanup();
  }
}
