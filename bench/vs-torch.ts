import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type * as TF from '@tensorflow/tfjs';
import { median } from './timing.ts';
import { integerArg, backendsArg } from './args.ts';

/**
 * `npm run bench -- train --vs-torch`: mmsweep's CMNIST MMTM training step on each tfjs backend that starts here,
 * against our PyTorch reference of the same network and step (bench/torch/, written from paper-spec §2, §4.1),
 * in one run. Every contender is its own process holding one network and one fixed random batch of 128; the
 * contenders take turns, one timed step each per round (round order rotates), so that load from other processes
 * on a shared machine falls on all of them alike. Figures are medians over the rounds
 * ("best round": the fastest single training step, less sensitive to bursts of other load).
 *
 * FLOPs: each multiply-add of a conv or linear layer counts 2 (MMTM, BatchNorm, pooling and element-wise work
 * left out — under 1 % here); a training step counts 3× the forward pass (backward ≈ input + weight gradients).
 * Both sides use the same analytic count (asserted equal at start-up). Peak: the processor's FP32 FMA throughput
 * measured on all cores by bench/torch/fma_peak.c, and the nominal cores × reported clock × FLOP/cycle (printed with
 * its assumption); % of peak divides by the larger of the two.
 *
 * Options: --batch n (128), --runs n (5 rounds), --warmup n (2), --backends a,b (default: all that start),
 * --threads n[,m…] (PyTorch threads; a list runs one PyTorch contender per value; default: cores),
 * --omp-passive (run PyTorch with OMP_WAIT_POLICY=PASSIVE: its OpenMP threads spin-wait by default, which on a
 * machine shared with other busy processes slows a 2-thread step by up to 10×; on a quiet machine leave it off), --python cmd (default $MMSWEEP_PYTHON or python3), --json,
 * --also-tree dir (repeatable: each tfjs backend also from the mmsweep checkout in dir, e.g. a `git worktree` of main,
 * taking turns with this one — a before/after comparison under the same load).
 * Each tfjs backend runs as `node --import tsx bench/vs-torch.ts --worker <backend>` speaking the same JSON-lines
 * protocol as `python3 bench/torch/bench_cmnist.py --serve`.
 */

const here = path.dirname(fileURLToPath(import.meta.url));
const TORCH_SCRIPT = path.join(here, 'torch', 'bench_cmnist.py');
const FMA_SOURCE = path.join(here, 'torch', 'fma_peak.c');
const ALL_BACKENDS = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const;

interface Reply {
  ms?: number[];
  error?: string;
  [key: string]: unknown;
}

function log(message: string): void {
  process.stderr.write(`${message}\n`);
}


/** A benchmark process answering one JSON line per JSON-line request. */
class Contender {
  private readonly lines: Interface;
  private readonly waiting: ((line: string) => void)[] = [];
  private stderrTail = '';
  private exited: string | null = null;

  constructor(
    readonly name: string,
    private readonly child: ChildProcessWithoutNullStreams,
  ) {
    this.lines = createInterface({ input: child.stdout });
    this.lines.on('line', (line) => this.waiting.shift()?.(line));
    child.stderr.on('data', (chunk: Buffer) => {
      this.stderrTail = (this.stderrTail + chunk.toString()).slice(-4000);
    });
    child.on('exit', (code, signal) => {
      this.exited = `exited with ${signal ?? `code ${code}`}`;
      for (const resolve of this.waiting.splice(0)) resolve('');
    });
  }

  async request(message: Record<string, unknown>): Promise<Reply> {
    if (this.exited) throw new Error(`${this.name} ${this.exited}: ${this.lastError()}`);
    const line = await new Promise<string>((resolve) => {
      this.waiting.push(resolve);
      this.child.stdin.write(`${JSON.stringify(message)}\n`);
    });
    if (!line) throw new Error(`${this.name} ${this.exited ?? 'closed its output'}: ${this.lastError()}`);
    const reply = JSON.parse(line) as Reply;
    if (reply.error) throw new Error(`${this.name}: ${reply.error}`);
    return reply;
  }

  private lastError(): string {
    const lines = this.stderrTail.trim().split('\n').filter((l) => !/^\d{4}-\d\d-\d\d .*\] /.test(l));
    return lines.slice(-5).join(' | ') || '(no error output)';
  }

  async close(): Promise<void> {
    if (!this.exited) {
      this.child.stdin.write('{"op":"quit"}\n');
      this.child.stdin.end();
    }
  }
}

function startTorch(python: string, batch: number, threads: number, ompPassive: boolean): Contender {
  const child = spawn(python, [TORCH_SCRIPT, '--serve', '--batch', String(batch), '--threads', String(threads)], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: ompPassive ? { ...process.env, OMP_WAIT_POLICY: 'PASSIVE' } : process.env,
  });
  child.on('error', (error) => log(`could not start ${python}: ${error.message} (set --python or MMSWEEP_PYTHON)`));
  return new Contender(`pytorch ${threads}T${ompPassive ? ' omp-passive' : ''}`, child);
}

/** A tfjs worker of this checkout, or of another one (`tree`: its root directory, for before/after comparisons). */
function startWorker(backend: string, batch: number, tree?: string): Contender {
  const script = tree ? path.join(tree, 'bench', 'vs-torch.ts') : fileURLToPath(import.meta.url);
  const child = spawn(process.execPath, ['--import', 'tsx', script, '--worker', backend, '--batch', String(batch)], {
    stdio: ['pipe', 'pipe', 'pipe'],
    ...(tree ? { cwd: tree } : {}),
    // The worker must use exactly the backend it was asked for, whatever the caller's environment says.
    env: { ...process.env, MMSWEEP_BACKEND: '', TF_CPP_MIN_LOG_LEVEL: process.env.TF_CPP_MIN_LOG_LEVEL ?? '2' },
  });
  return new Contender(`mmsweep ${backend}${tree ? ` @ ${tree}` : ''}`, child);
}

interface Peak {
  measuredGflops: number | null;
  measuredNote: string;
  nominalGflops: number | null;
  nominalNote: string;
}

/** FP32 peak: measured by fma_peak.c (if a C compiler is here), and nominal from cores × clock × FLOP/cycle. */
function processorPeak(): Peak {
  const cores = os.cpus().length;
  const flags = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '';
  const has = (flag: string) => new RegExp(`\\b${flag}\\b`).test(flags);
  // Assumes two FMA pipes per core of the widest vector width (true of the Intel and AMD server cores we run on;
  // AMD Zen 4 splits 512-bit ops in two, which halves its AVX-512 figure).
  const lanes = has('avx512f') ? 16 : has('avx2') && has('fma') ? 8 : 4;
  // Node reports 0 MHz in some VMs; /proc/cpuinfo then still has the (base) clock.
  const cpuinfoMhz = Number(/^cpu MHz\s*:\s*([\d.]+)/m.exec(flags)?.[1] ?? 0);
  const ghz = (os.cpus()[0]?.speed || cpuinfoMhz) / 1000;
  const nominal = ghz > 0 ? cores * ghz * lanes * 2 * 2 : null;
  const nominalNote = `${cores} cores × ${ghz.toFixed(2)} GHz (reported clock) × ${lanes} lanes × 2 FMA pipes × 2 FLOP`;

  const dir = mkdtempSync(path.join(os.tmpdir(), 'mmsweep-fma-'));
  try {
    const binary = path.join(dir, 'fma_peak');
    const cc = spawnSync('cc', ['-O3', '-march=native', '-ffp-contract=fast', '-pthread', FMA_SOURCE, '-o', binary], { encoding: 'utf8' });
    if (cc.status !== 0) {
      return { measuredGflops: null, measuredNote: `not measured: cc failed (${(cc.stderr || String(cc.error)).trim().split('\n')[0]})`, nominalGflops: nominal, nominalNote };
    }
    const out = spawnSync(binary, [String(cores), '0.3'], { encoding: 'utf8' });
    const parsed = JSON.parse(out.stdout) as { threads: number; lanes: number; gflops: number };
    return {
      measuredGflops: parsed.gflops,
      measuredNote: `${parsed.threads} threads of ${parsed.lanes}-lane FMA chains, best of 5 × 0.3 s`,
      nominalGflops: nominal,
      nominalNote,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

interface Row {
  name: string;
  version: string;
  trainMs: number[];
  forwardMs: number[];
}

export async function run(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      json: { type: 'boolean', default: false },
      batch: { type: 'string', default: '128' },
      runs: { type: 'string', default: '5' },
      warmup: { type: 'string', default: '2' },
      backends: { type: 'string' },
      threads: { type: 'string', default: String(os.cpus().length) },
      python: { type: 'string', default: process.env.MMSWEEP_PYTHON ?? 'python3' },
      'omp-passive': { type: 'boolean', default: false },
      'vs-torch': { type: 'boolean', default: true },
      'also-tree': { type: 'string', multiple: true, default: [] },
    },
  });
  const batch = integerArg('batch', values.batch!, 1);
  const runs = integerArg('runs', values.runs!, 1);
  const warmup = integerArg('warmup', values.warmup!, 0);
  const threadCounts = values.threads!.split(',').map((t) => integerArg('threads', t.trim(), 1));
  const backends = backendsArg(values.backends, ALL_BACKENDS);
  const trees = values['also-tree']!.map((tree) => {
    const root = path.resolve(tree);
    if (!existsSync(path.join(root, 'bench', 'vs-torch.ts'))) {
      throw new Error(`--also-tree ${tree}: no bench/vs-torch.ts there; give the root of another mmsweep checkout (with node_modules)`);
    }
    return root;
  });

  const loadBefore = os.loadavg()[0]!;
  log('measuring the processor FP32 peak …');
  const peak = processorPeak();

  const contenders: { contender: Contender; version: string }[] = [];
  let flopsPerSample = 0;
  for (const threads of threadCounts) {
    const torch = startTorch(values.python!, batch, threads, values['omp-passive']!);
    try {
      const info = await torch.request({ op: 'info' });
      flopsPerSample = info.forward_flops_per_sample as number;
      const sgemm = await torch.request({ op: 'sgemm' });
      contenders.push({ contender: torch, version: `torch ${info.torch}, ${info.threads} threads` });
      log(`${torch.name}: torch ${info.torch}, ${info.threads} threads; 2048² sgemm ${(sgemm.gflops as number).toFixed(0)} GFLOP/s`);
      peak.measuredNote += `; PyTorch ${threads}-thread 2048² sgemm reaches ${(sgemm.gflops as number).toFixed(0)} GFLOP/s`;
    } catch (error) {
      await Promise.all([torch, ...contenders.map((c) => c.contender)].map((c) => c.close()));
      throw new Error(
        `the PyTorch reference did not start (${(error as Error).message}). It needs torch: ` +
          `\`pip install torch==2.13.0\` (CPU build), or point --python / MMSWEEP_PYTHON at a Python that has it.`,
      );
    }
  }
  for (const [backend, tree] of backends.flatMap((b) => [[b, undefined] as const, ...trees.map((t) => [b, t] as const)])) {
    const worker = startWorker(backend, batch, tree);
    try {
      const info = await worker.request({ op: 'info' });
      if (info.forward_flops_per_sample !== flopsPerSample) {
        throw new Error(`FLOP counts differ: tfjs ${info.forward_flops_per_sample}, PyTorch ${flopsPerSample} per sample`);
      }
      contenders.push({ contender: worker, version: String(info.version) });
      log(`${worker.name}: ${info.version}; ${info.device}`);
    } catch (error) {
      log(`skipping ${backend}: ${(error as Error).message}`);
      await worker.close();
    }
  }

  const rows: Row[] = contenders.map(({ contender, version }) => ({ name: contender.name, version, trainMs: [], forwardMs: [] }));
  try {
    for (const op of ['train', 'forward'] as const) {
      for (const { contender } of contenders) {
        if (warmup > 0) {
          const ms = (await contender.request({ op, runs: warmup })).ms!;
          log(`  ${contender.name} ${op} warm-up: ${ms.map((m) => m.toFixed(0)).join(', ')} ms`);
        }
      }
      for (let round = 0; round < runs; round++) {
        for (let k = 0; k < contenders.length; k++) {
          const index = (k + round) % contenders.length;
          const { contender } = contenders[index]!;
          const ms = (await contender.request({ op, runs: 1 })).ms![0]!;
          (op === 'train' ? rows[index]!.trainMs : rows[index]!.forwardMs).push(ms);
          log(`  ${op} round ${round + 1}/${runs} ${contender.name}: ${ms.toFixed(0)} ms`);
        }
      }
    }
  } finally {
    await Promise.all(contenders.map(({ contender }) => contender.close()));
  }

  const loadAfter = os.loadavg()[0]!;
  // Both figures are lower bounds of the true peak (the measurement loses to other processes, the nominal one
  // ignores boost clocks): take the larger.
  const peakGflops = Math.max(peak.measuredGflops ?? 0, peak.nominalGflops ?? 0) || null;
  const results = rows.map((r) => {
    const train = (batch * 1000) / median(r.trainMs);
    // The fastest round: what the code does when other processes leave it alone for one step.
    const bestTrain = (batch * 1000) / Math.min(...r.trainMs);
    const forward = (batch * 1000) / median(r.forwardMs);
    const gflops = (3 * flopsPerSample * train) / 1e9;
    return { name: r.name, version: r.version, train, bestTrain, forward, gflops, percentOfPeak: peakGflops ? (100 * gflops) / peakGflops : null };
  });
  const reference = results[0]!;

  if (values.json) {
    process.stdout.write(
      `${JSON.stringify({
        batch,
        runs,
        warmup,
        forwardFlopsPerSample: flopsPerSample,
        trainFlopsPerSample: 3 * flopsPerSample,
        peak,
        loadAverage: [loadBefore, loadAfter],
        results: results.map((r) => ({
          ...r,
          trainRatioToTorch: r.train / reference.train,
          forwardRatioToTorch: r.forward / reference.forward,
        })),
      })}\n`,
    );
    return;
  }
  const table = results.map((r) => [
    r.name,
    r.train.toFixed(1),
    (r.train / reference.train).toFixed(2),
    r.bestTrain.toFixed(1),
    r.forward.toFixed(1),
    (r.forward / reference.forward).toFixed(2),
    r.gflops.toFixed(1),
    r.percentOfPeak === null ? '?' : `${r.percentOfPeak.toFixed(1)} %`,
  ]);
  const header = ['contender', 'train samples/s', `× ${reference.name}`, 'best round', 'forward samples/s', `× ${reference.name}`, 'train GFLOP/s', '% of peak'];
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)));
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  const gf = (x: number | null) => (x === null ? '?' : `${x.toFixed(0)} GFLOP/s`);
  process.stdout.write(
    [
      `CMNIST MMTM net, batch ${batch}: median of ${runs} alternating rounds after ${warmup} warm-up steps each`,
      `FLOPs per sample: forward ${(flopsPerSample / 1e6).toFixed(2)} M (conv + linear multiply-adds × 2), training step 3× forward = ${((3 * flopsPerSample) / 1e6).toFixed(2)} M`,
      `FP32 peak: measured ${gf(peak.measuredGflops)} (${peak.measuredNote}); nominal ${gf(peak.nominalGflops)} (${peak.nominalNote}); % of peak uses the larger, ${peakGflops === null ? '?' : peakGflops.toFixed(0)} GFLOP/s`,
      `load average (1 min) ${loadBefore.toFixed(1)} before, ${loadAfter.toFixed(1)} after on ${os.cpus().length} cores${
        loadAfter > os.cpus().length * 0.75
          ? ' — other processes were competing: absolute figures are low, ratios are fairer' +
            (values['omp-passive'] ? '' : "; PyTorch's spinning OpenMP threads suffer most (compare --omp-passive)")
          : ''
      }`,
      line(header),
      `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`,
      ...table.map(line),
      ...results.map((r) => `  ${r.name}: ${r.version}`),
      '',
    ].join('\n'),
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Worker: one tfjs backend, the trainer's own pieces (branchLoss, Sgd, variableGrads) on a fixed batch.

async function worker(backend: string, batch: number): Promise<void> {
  const reply = (message: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(message)}\n`);
  const lines = createInterface({ input: process.stdin });
  const pending: string[] = [];
  let wake: (() => void) | null = null;
  let closed = false;
  lines.on('line', (line) => {
    pending.push(line);
    wake?.();
  });
  lines.on('close', () => {
    closed = true;
    wake?.();
  });
  const nextLine = async (): Promise<string | null> => {
    while (pending.length === 0 && !closed) await new Promise<void>((resolve) => (wake = resolve));
    return pending.shift() ?? null;
  };

  let bench: Awaited<ReturnType<typeof tfjsTrainingBench>>;
  try {
    bench = await tfjsTrainingBench(backend, batch);
  } catch (error) {
    // Answer the first request with the reason, so the parent can skip this backend and say why.
    await nextLine();
    reply({ error: (error as Error).message.split('\n')[0] });
    return;
  }
  for (let line = await nextLine(); line !== null; line = await nextLine()) {
    if (!line.trim()) continue;
    const request = JSON.parse(line) as { op: string; runs?: number };
    if (request.op === 'quit') break;
    if (request.op === 'info') {
      reply({ version: bench.version, device: bench.device, forward_flops_per_sample: bench.forwardFlopsPerSample });
    } else if (request.op === 'train' || request.op === 'forward') {
      const step = request.op === 'train' ? bench.trainStep : bench.forward;
      const ms: number[] = [];
      for (let i = 0; i < (request.runs ?? 1); i++) {
        const start = performance.now();
        await step();
        ms.push(performance.now() - start);
      }
      reply({ ms });
    } else {
      reply({ error: `unknown op '${request.op}' (use info, train, forward, quit)` });
    }
  }
  bench.dispose();
  process.exit(0);
}

/** Same analytic count as bench/torch/cmnist_mmtm.py `forward_flops_per_sample`, from the tfjs net's layers. */
function forwardFlopsPerSample(net: import('../src/nn/cmnist.ts').CmnistMultimodalNet, size = 28): number {
  let flops = 0;
  for (const branch of net.branches) {
    let h = size;
    branch.convs.forEach((conv, i) => {
      h = Math.floor((h + 2 * conv.padding - conv.kernelSize) / conv.stride) + 1;
      flops += 2 * h * h * conv.outChannels * conv.kernelSize * conv.kernelSize * conv.inChannels;
      if (i === 0) h = Math.floor((h + 2 - 3) / 2) + 1; // max-pool 3×3, stride 2, pad 1
    });
    flops += 2 * branch.head.inFeatures * branch.head.outFeatures;
  }
  return flops;
}

export async function tfjsTrainingBench(backend: string, batch: number) {
  const tf = await import('@tensorflow/tfjs');
  const { initBackend } = await import('../src/backend/index.ts');
  const { createCmnistNet } = await import('../src/nn/cmnist.ts');
  const { FIDELITY_PROFILES } = await import('../src/spec/fidelity.ts');
  const { branchLoss } = await import('../src/train/loss.ts');
  const { Sgd } = await import('../src/train/sgd.ts');

  const info = await initBackend(backend as Parameters<typeof initBackend>[0]);
  const net = createCmnistNet({ channels: [3, 1], numClasses: 10, seed: 0, fidelity: FIDELITY_PROFILES.code });
  const x0 = tf.randomUniform([batch, 28, 28, 3], 0, 1, 'float32', 1);
  const x1 = tf.randomUniform([batch, 28, 28, 1], 0, 1, 'float32', 2);
  const oneHot = tf.oneHot(tf.randomUniform([batch], 0, 10, 'int32', 3) as TF.Tensor1D, 10).toFloat() as TF.Tensor2D;
  const variables = [...net.trainableVariables];
  const sgd = new Sgd(variables, { lr: 0.01, momentum: 0.9, weightDecay: 0 });

  return {
    version: info.version,
    device: info.device,
    forwardFlopsPerSample: forwardFlopsPerSample(net),
    /** Forward in training mode, L = CE(ŷ0) + CE(ŷ1), gradients, SGD-momentum update; ends with the loss read. */
    async trainStep(): Promise<void> {
      const { value, grads } = tf.variableGrads(() => {
        const out = net.forward([x0, x1], { mode: 'regular', training: true, regularTrainingStep: true });
        return branchLoss([out.branchLogits[0] as TF.Tensor2D, out.branchLogits[1] as TF.Tensor2D], oneHot);
      }, variables);
      sgd.step(variables.map((v) => grads[v.name] ?? null));
      await value.data();
      tf.dispose([value, ...Object.values(grads)]);
    },
    /** Evaluation-mode forward; ends with the read of ŷ's argmax. */
    async forward(): Promise<void> {
      const predicted = tf.tidy(() => tf.argMax(net.forward([x0, x1], { mode: 'regular', training: false }).logits, 1));
      await predicted.data();
      predicted.dispose();
    },
    dispose(): void {
      sgd.dispose();
      net.dispose();
      tf.dispose([x0, x1, oneHot]);
    },
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const argv = process.argv.slice(2);
  if (argv.includes('--worker')) {
    const { values } = parseArgs({ args: argv, options: { worker: { type: 'string' }, batch: { type: 'string', default: '128' } } });
    await worker(values.worker!, Number(values.batch));
  } else {
    await run(argv);
  }
}
