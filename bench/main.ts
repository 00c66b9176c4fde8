/**
 * Benchmark dispatcher: `npm run bench -- <name> [options]`. Each benchmark is a module in bench/ exporting
 * `run(args: string[]): Promise<void>`; add one line to `benchmarks` to register a new one.
 */
const benchmarks: Record<string, { describe: string; load: () => Promise<{ run: (args: string[]) => Promise<void> }> }> = {
  train: {
    describe: 'samples/s of a CMNIST MMTM training step and forward pass, per available backend',
    load: () => import('./train.ts'),
  },
  'step-profile': {
    describe: 'TensorFlow ops of one native CMNIST MMTM training step by op type: calls, time, share of the step',
    load: () => import('./step-profile.ts'),
  },
  orchestration: {
    describe: 'noop study of 200 trials on 1 and on 4 worker processes: per-trial orchestration overhead, speed-up',
    load: () => import('./orchestration.ts'),
  },
  resnet18: {
    describe: 'ModelNet40 ResNet18-MMTM: training step and eval forward at batch 8, 224×224, per backend; full-trial estimate',
    load: () => import('./resnet18.ts'),
  },
  i3d: {
    describe: 'NVGesture I3D-MMTM: training step and eval forward at a reduced clip per backend, scaled to batch 4 × 64×224²',
    load: () => import('./i3d.ts'),
  },
  scale: {
    describe: 'plan + register 10⁶ no-op trials (time, peak RSS of CLI and worker); 20,000 no-op trials through mmsweep run',
    load: () => import('./scale.ts'),
  },
  threads: {
    describe: 'small CMNIST trials per hour for each split of the cores (slots × TensorFlow threads per trial)',
    load: () => import('./threads.ts'),
  },
  sweep: {
    describe: 'a small CMNIST study (6 trials) through `mmsweep run` and as a plain PyTorch loop: trials per hour, ratio',
    load: () => import('./sweep.ts'),
  },
  db: {
    describe: 'results store: insert 100,000 results + 1,000,000 epoch rows, time the condition-summary query',
    load: () => import('./db.ts'),
  },
  'guest-sql': {
    describe: 'mmsweep sql on the embedded database: snapshot size and time, sandbox start-up, the owner\'s wait (3,000 trials × 30 epochs)',
    load: () => import('./guest-sql.ts'),
  },
};

function usage(): string {
  const names = Object.entries(benchmarks).map(([name, b]) => `  ${name.padEnd(14)} ${b.describe}`);
  return `usage: npm run bench -- <name> [options]\n\nbenchmarks:\n${names.join('\n')}\n`;
}

const [name, ...rest] = process.argv.slice(2);
if (!name || name === '--help' || name === '-h') {
  process.stdout.write(usage());
  process.exit(name ? 0 : 1);
}
const benchmark = benchmarks[name];
if (!benchmark) {
  process.stderr.write(`unknown benchmark '${name}'\n\n${usage()}`);
  process.exit(1);
}
try {
  await (await benchmark.load()).run(rest);
} catch (error) {
  // Bad options and unavailable pieces are user errors: say what is wrong without a stack trace.
  // A failed workflow's reason is in its cause chain (Temporal wraps it): print every link.
  const chain: string[] = [];
  for (let e: unknown = error; e && chain.length < 6; e = (e as { cause?: unknown }).cause) chain.push(e instanceof Error ? e.message : String(e));
  process.stderr.write(`bench ${name}: ${chain.join(': ')}\n`);
  process.exit(1);
}
