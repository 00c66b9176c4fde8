import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bundledRunnerCommand } from '../activities/runner-bundle.ts';
import { threadEnv } from '../src/backend/threads.ts';

/**
 * Which split of the cores finishes more small CMNIST trials per hour (issue 14, item 3): `slots` trials at once,
 * each runner limited to `threads` TensorFlow threads, e.g. one trial on both cores (1×2) or one trial per core
 * (2×1). Runs the same trials through the same runner a worker starts (the prebuilt bundle, `train --spec`),
 * alternating the splits round by round so that a change in the machine's load hits both alike.
 *
 *   npm run bench -- threads [--splits 1x2,2x1] [--trials 2] [--rounds 2] [--epochs 1] [--backend tensorflow]
 */
/** CPU seconds (user + system) of this process's children that have been waited for (Linux /proc). */
function childCpuSeconds(): number {
  const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[13]) + Number(fields[14])) / 100; // cutime, cstime in clock ticks (100 Hz)
}

function option(args: string[], name: string, fallback: string): string {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] ? args[i + 1]! : fallback;
}

function positive(name: string, value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new Error(`${name} must be a positive integer, got '${value}'`);
  return Number(value);
}

export async function run(args: string[]): Promise<void> {
  const cores = os.availableParallelism();
  const splits = option(args, '--splits', `1x${cores},${cores}x1`).split(',').map((s) => {
    const m = /^(\d+)x(\d+)$/.exec(s.trim());
    if (!m || Number(m[1]) < 1 || Number(m[2]) < 1) throw new Error(`--splits: expected slots×threads like 2x1, got '${s}'`);
    return { slots: Number(m[1]), threads: Number(m[2]) };
  });
  const trials = positive('--trials', option(args, '--trials', String(cores)));
  const rounds = positive('--rounds', option(args, '--rounds', '2'));
  const epochs = positive('--epochs', option(args, '--epochs', '1'));
  const backend = option(args, '--backend', 'tensorflow');
  const command = await bundledRunnerCommand();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mmsweep-bench-threads-'));
  console.log(
    `threads benchmark: ${trials} CMNIST trials per split and round (4,000 images, ${epochs} epoch(s), batch 32, width 0.5, backend ${backend}), ` +
      `${rounds} round(s); ${os.cpus()[0]?.model.trim()}, ${cores} cores, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`,
  );
  const totals = new Map<string, { trials: number; seconds: number; cpu: number }>();
  try {
    for (let round = 1; round <= rounds; round++) {
      for (const split of splits) {
        const label = `${split.slots}×${split.threads}`;
        const t0 = performance.now();
        const cpu0 = childCpuSeconds();
        let next = 0;
        const slot = async () => {
          while (next < trials) {
            const index = next++;
            const spec = path.join(dir, `trial-${round}-${label}-${index}.json`);
            writeFileSync(spec, JSON.stringify({
              dataset: { name: 'cmnist' }, algorithm: 'vanilla', profile: 'paper', momentum: 0.9, batchSize: 32, evalBatchSize: 250,
              subset: { train: 4000, val: 500, test: 500 }, width: 0.5, maxEpochs: epochs, lr: 0.01 * (index + 1), seed: index + 1, backend,
            }));
            await new Promise<void>((resolve, reject) => {
              const child = spawn(command[0]!, [...command.slice(1), '--spec', spec, '--json'], {
                env: { ...process.env, ...threadEnv({ threadsPerSlot: split.threads }) },
                stdio: ['ignore', 'ignore', 'pipe'],
              });
              let err = '';
              child.stderr.on('data', (d) => (err += d));
              child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`trial exited with ${code}: ${err.slice(-400)}`))));
            });
          }
        };
        await Promise.all(Array.from({ length: split.slots }, slot));
        const seconds = (performance.now() - t0) / 1000;
        const cpu = childCpuSeconds() - cpu0;
        const total = totals.get(label) ?? { trials: 0, seconds: 0, cpu: 0 };
        totals.set(label, { trials: total.trials + trials, seconds: total.seconds + seconds, cpu: total.cpu + cpu });
        console.log(
          `round ${round}, ${label}: ${trials} trials in ${seconds.toFixed(1)} s = ${((trials / seconds) * 3600).toFixed(0)} trials/h, ` +
            `${(cpu / trials).toFixed(1)} CPU s per trial (load ${os.loadavg()[0]!.toFixed(2)})`,
        );
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  // CPU seconds per trial is the figure a busy machine distorts least: with every core free, a split finishes
  // about cores × 3600 / (CPU s per trial) trials per hour if its threads keep the cores busy.
  console.log(`\n${'slots×threads'.padEnd(14)} ${'trials/h'.padStart(9)} ${'CPU s/trial'.padStart(12)}`);
  for (const [label, t] of totals) {
    console.log(`${label.padEnd(14)} ${((t.trials / t.seconds) * 3600).toFixed(0).padStart(9)} ${(t.cpu / t.trials).toFixed(1).padStart(12)}`);
  }
}
