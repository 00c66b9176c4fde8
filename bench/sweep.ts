import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseTrialSpec, type TrainTrialSpec } from '../src/spec/trial.ts';

/**
 * A whole small study, mmsweep against a plain PyTorch loop: trials per hour (issue 14, item 6).
 *
 * The study: CMNIST vanilla, 6 trials at fixed learning rates, 4,000 training images (500 validation, 500 test),
 * 3 epochs, batch 32, width 0.5 — the `cmnist-greedy-small` settings. mmsweep runs it through `mmsweep run` (the
 * embedded stack, its default slots and threads unless --slots/--threads-per-slot are given) in a fresh
 * MMSWEEP_HOME; PyTorch runs bench/torch/sweep.py on the same images (exported from mmsweep's own CMNIST), one trial
 * after another with all cores as threads (the same thread budget), doing the same passes per trial.
 *
 *   npm run bench -- sweep [--lrs 0.005,…] [--slots N] [--threads-per-slot M] [--torch-threads T] [--skip-torch] [--skip-mmsweep]
 */
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const DEFAULT_LRS = [0.005, 0.01, 0.02, 0.03, 0.05, 0.08];
const TRIAL_BASE = {
  dataset: { name: 'cmnist' },
  algorithm: 'vanilla',
  profile: 'paper',
  momentum: 0.9,
  batchSize: 32,
  evalBatchSize: 250,
  subset: { train: 4000, val: 500, test: 500 },
  width: 0.5,
  maxEpochs: 3,
  seed: 1,
};

function option(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const value = args[i + 1];
  if (value === undefined || value.startsWith('--')) throw new Error(`${name} needs a value`);
  return value;
}

function positiveInt(args: string[], name: string): number | undefined {
  const value = option(args, name);
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new Error(`${name} must be a positive integer, got '${value}'`);
  return Number(value);
}

function exec(command: string, args: string[], env: NodeJS.ProcessEnv, echo: boolean): Promise<{ code: number | null; stdout: string; stderr: string; seconds: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(command, args, { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => {
      stderr += d;
      if (echo) process.stderr.write(d);
    });
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, stdout, stderr, seconds: (performance.now() - t0) / 1000 }));
  });
}

/** Write mmsweep's CMNIST splits (the trials' exact inputs) for the PyTorch script. */
async function exportData(spec: TrainTrialSpec, dir: string): Promise<void> {
  const { createDataset } = await import('../src/data/index.ts');
  const dataset = await createDataset(spec.dataset, { modalities: spec.modalities, subset: spec.subset });
  const meta: Record<string, { n: number; shape0: number[]; shape1: number[] }> = {};
  for (const split of ['train', 'val', 'test'] as const) {
    const n = dataset.size(split);
    const [batch] = [...dataset.batches(split, { batchSize: n, shuffle: false, augment: false, seed: spec.seed, epoch: 1 })];
    if (!batch || batch.size !== n) throw new Error(`could not read the ${split} split in one batch`);
    writeFileSync(path.join(dir, `${split}.x0.f32`), Buffer.from(batch.inputs[0]!.buffer, batch.inputs[0]!.byteOffset, batch.inputs[0]!.byteLength));
    writeFileSync(path.join(dir, `${split}.x1.f32`), Buffer.from(batch.inputs[1]!.buffer, batch.inputs[1]!.byteOffset, batch.inputs[1]!.byteLength));
    writeFileSync(path.join(dir, `${split}.y.i32`), Buffer.from(batch.y.buffer, batch.y.byteOffset, batch.y.byteLength));
    meta[split] = { n, shape0: dataset.modalities[0]!.shape, shape1: dataset.modalities[1]!.shape };
  }
  writeFileSync(path.join(dir, 'meta.json'), JSON.stringify(meta));
}

const perHour = (trials: number, seconds: number) => (trials / seconds) * 3600;

export async function run(args: string[]): Promise<void> {
  const lrs = option(args, '--lrs')?.split(',').map(Number) ?? DEFAULT_LRS;
  if (lrs.length === 0 || lrs.some((lr) => !(lr > 0) || !Number.isFinite(lr))) throw new Error(`--lrs must be positive numbers, got '${option(args, '--lrs')}'`);
  const slots = positiveInt(args, '--slots');
  const threadsPerSlot = positiveInt(args, '--threads-per-slot');
  const torchThreads = positiveInt(args, '--torch-threads') ?? os.availableParallelism();
  const skipTorch = args.includes('--skip-torch');
  const skipMmsweep = args.includes('--skip-mmsweep');
  const spec = parseTrialSpec({ ...TRIAL_BASE, lr: lrs[0] });
  if (spec.kind === 'noop') throw new Error('unreachable');
  const cpu = os.cpus()[0]?.model.trim() ?? 'unknown CPU';
  console.log(`sweep benchmark: ${lrs.length} CMNIST trials (lr ${lrs.join(', ')}), ${spec.subset?.train} images, ${spec.maxEpochs} epochs, batch ${spec.batchSize}, width ${spec.width}`);
  console.log(`machine: ${cpu}, ${os.availableParallelism()} cores, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} at start`);

  const work = mkdtempSync(path.join(os.tmpdir(), 'mmsweep-bench-sweep-'));
  const rows: Array<{ who: string; trials: number; seconds: number; note: string }> = [];
  try {
    if (!skipMmsweep) {
      const studyFile = path.join(work, 'study.json');
      writeFileSync(
        studyFile,
        JSON.stringify({ name: 'bench-sweep', queue: 'cpu', concurrency: 1, conditions: [{ label: 'vanilla', base: TRIAL_BASE, lr: { grid: lrs }, seeds: [1] }] }),
      );
      const home = path.join(work, 'home');
      mkdirSync(home);
      const env = { ...process.env, MMSWEEP_HOME: home };
      const flags = [...(slots ? ['--slots', String(slots)] : []), ...(threadsPerSlot ? ['--threads-per-slot', String(threadsPerSlot)] : [])];
      console.log(`\nmmsweep run ${flags.join(' ') || '(default slots)'} …`);
      const out = await exec(process.execPath, [path.join(repoRoot, 'bin', 'mmsweep.js'), 'run', studyFile, '--no-progress', ...flags], env, true);
      if (out.code !== 0) throw new Error(`mmsweep run exited with code ${out.code}`);
      const done = /(\d+)\/(\d+) done/.exec(out.stdout);
      if (!done || Number(done[1]) !== lrs.length) throw new Error(`mmsweep run finished ${done?.[1] ?? 0}/${lrs.length} trials:\n${out.stdout}`);
      // The trials' own span (first start → last finish), without the dev server's and database's start-up.
      const sql = await exec(process.execPath, [path.join(repoRoot, 'bin', 'mmsweep.js'), 'sql', '--format', 'json',
        'select extract(epoch from max(finished_at) - min(started_at))::float8 as span from trials'], env, false);
      if (sql.code !== 0) throw new Error(`mmsweep sql exited with code ${sql.code}: ${sql.stderr}`);
      const span = (JSON.parse(sql.stdout) as Array<{ span: number }>)[0];
      const split = /(\d+) slot\(s\) × (\d+) thread\(s\)/.exec(out.stderr);
      const backend = /train on backend (\S+)/.exec(out.stderr)?.[1] ?? '?';
      const how = `${split ? `${split[1]} slots × ${split[2]} threads` : '?'}, backend ${backend}`;
      process.stdout.write(out.stdout);
      rows.push({ who: 'mmsweep run (whole command)', trials: lrs.length, seconds: out.seconds, note: how });
      if (span?.span) rows.push({ who: 'mmsweep run (first trial start → last end)', trials: lrs.length, seconds: span.span, note: how });
    }
    if (!skipTorch) {
      const dataDir = path.join(work, 'data');
      mkdirSync(dataDir);
      await exportData(spec as TrainTrialSpec, dataDir);
      console.log(`\nPyTorch loop, ${torchThreads} thread(s) …`);
      const out = await exec(
        'python3',
        [path.join(repoRoot, 'bench', 'torch', 'sweep.py'), '--data', dataDir, '--lrs', lrs.join(','), '--epochs', String(spec.maxEpochs), '--batch', String(spec.batchSize),
          '--eval-batch', String(spec.evalBatchSize), '--width', String(spec.width), '--gate-scale', '2', '--momentum', String(spec.momentum), '--seed', String(spec.seed), '--threads', String(torchThreads)],
        // Passive OpenMP waits: a spinning 2-thread PyTorch collapses on a machine shared with other processes.
        { ...process.env, OMP_WAIT_POLICY: process.env.OMP_WAIT_POLICY ?? 'PASSIVE' },
        true,
      );
      if (out.code !== 0) throw new Error(`bench/torch/sweep.py exited with code ${out.code}`);
      const torch = JSON.parse(out.stdout.trim().split('\n').at(-1)!) as { wallSeconds: number; threads: number; torch: string; parameters: number; trials: Array<{ lr: number; testAcc: number; seconds: number }> };
      console.log(`PyTorch ${torch.torch}: test accuracy per lr ${torch.trials.map((t) => `${t.lr}: ${t.testAcc.toFixed(1)} %`).join(', ')}; ${torch.parameters} parameters`);
      rows.push({ who: 'PyTorch loop (whole process)', trials: lrs.length, seconds: out.seconds, note: `${torch.threads} threads, torch ${torch.torch}` });
      rows.push({ who: 'PyTorch loop (trials only)', trials: lrs.length, seconds: torch.wallSeconds, note: `${torch.threads} threads` });
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  console.log(`\nload average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} at end; ${cpu}`);
  console.log(`${'contender'.padEnd(44)} ${'wall s'.padStart(8)} ${'trials/h'.padStart(9)}  setting`);
  for (const r of rows) console.log(`${r.who.padEnd(44)} ${r.seconds.toFixed(1).padStart(8)} ${perHour(r.trials, r.seconds).toFixed(0).padStart(9)}  ${r.note}`);
  const pick = (who: string) => rows.find((r) => r.who.startsWith(who) && r.who.includes('(whole'));
  const ours = pick('mmsweep');
  const theirs = pick('PyTorch');
  if (ours && theirs) console.log(`ratio mmsweep / PyTorch (whole commands): ${(theirs.seconds / ours.seconds).toFixed(2)}×`);
  const oursTrials = rows.find((r) => r.who.includes('first trial'));
  const theirsTrials = rows.find((r) => r.who.includes('trials only'));
  if (oursTrials && theirsTrials) console.log(`ratio mmsweep / PyTorch (trials only): ${(theirsTrials.seconds / oursTrials.seconds).toFixed(2)}×`);
}
