import os from 'node:os';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { BACKEND_ORDER, initBackend, type BackendName } from '../src/backend/index.ts';
import { registerWasmTrainingKernels } from '../src/backend/wasm-kernels.ts';
import { createCmnistNet, type CmnistMultimodalNet } from '../src/nn/cmnist.ts';
import { FIDELITY_PROFILES } from '../src/spec/fidelity.ts';
import { median } from './timing.ts';
import { integerArg, backendsArg } from './args.ts';
import { netSteps } from './net-steps.ts';

/**
 * `npm run bench -- train`: throughput of the CMNIST MMTM network (paper-spec §4.1, colored 3-channel m0, gray
 * 1-channel m1, 28×28, 10 classes) on every backend that starts here.
 * - training step: regular forward in training mode, backward of CE(ŷ0) + CE(ŷ1), SGD-with-momentum update;
 * - forward: regular forward in evaluation mode.
 * Median of `--runs` timed repetitions after `--warmup` untimed ones; each timing ends with a read of the
 * result so asynchronous backends are measured to completion.
 *
 * Options: --json (one JSON line on stdout), --batch n (128), --runs n (5), --warmup n (2),
 * --backends a,b (default: all that start), --compare-kernels (also time wasm with only
 * the kernels it needs to train at all and those correcting stock bugs, i.e. without the speed group), --profile (print the kernels of one
 * profiled training step per backend, by time, to stderr).
 *
 * Besides wall-clock samples/s the table shows samples per CPU-second of this process, which stays meaningful when
 * other work shares the machine (wall-clock throughput then drops, CPU time does not).
 * GFLOP/s counts the multiply-adds of the convolutions and linear layers as 2 FLOPs each (MMTM, BatchNorm,
 * pooling and element-wise work excluded); a training step is counted as 3× the forward FLOPs.
 */

interface Result {
  trainSamplesPerSecond: number;
  forwardSamplesPerSecond: number;
}

interface Measured extends Result {
  /** Training samples per second of this process's CPU time (all threads): robust to other load on the machine. */
  trainSamplesPerCpuSecond: number;
  gflops: number;
}


function log(message: string): void {
  process.stderr.write(`${message}\n`);
}

/** Forward FLOPs per sample of the convolutions and linear layers (2 per multiply-add). */
export function forwardFlopsPerSample(net: CmnistMultimodalNet, size = 28): number {
  let flops = 0;
  for (const branch of net.branches) {
    let h = size;
    branch.convs.forEach((conv, i) => {
      h = Math.floor((h + 2 * conv.padding - conv.kernelSize) / conv.stride) + 1;
      flops += 2 * h * h * conv.outChannels * conv.kernelSize * conv.kernelSize * conv.inChannels;
      if (i === 0) h = Math.floor((h + 2 - 3) / 2) + 1; // max-pool 3×3, stride 2, pad 1
    });
    flops += 2 * branch.stageChannels[3] * 10;
  }
  return flops;
}

function cpuMs(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
}

/** Kernel time of one training step by kernel and input shapes (tf.profile: wall time per kernel), top entries. */
async function profileStep(label: string, trainStep: () => void, top = 15): Promise<void> {
  const profile = await tf.profile(trainStep);
  const byKernel = new Map<string, number>();
  let total = 0;
  for (const k of profile.kernels) {
    const ms = await k.kernelTimeMs;
    if (typeof ms !== 'number') continue;
    const key = `${k.name} ${k.inputShapes.map((s) => (s ? s.join('×') : '-')).join(', ')}`;
    byKernel.set(key, (byKernel.get(key) ?? 0) + ms);
    total += ms;
  }
  log(`${label}: kernel time of one training step ${total.toFixed(0)} ms; top kernels:`);
  for (const [key, ms] of [...byKernel].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    log(`  ${ms.toFixed(1).padStart(8)} ms ${((100 * ms) / total).toFixed(1).padStart(5)} %  ${key}`);
  }
}

async function timeBackend(label: string, batch: number, runs: number, warmup: number, profile = false): Promise<Measured> {
  const net = createCmnistNet({ channels: [3, 1], numClasses: 10, seed: 0, fidelity: FIDELITY_PROFILES.code });
  const x0 = tf.randomUniform([batch, 28, 28, 3], 0, 1, 'float32', 1);
  const x1 = tf.randomUniform([batch, 28, 28, 1], 0, 1, 'float32', 2);
  const labels = tf.oneHot(tf.randomUniform([batch], 0, 10, 'int32', 3) as tf.Tensor1D, 10);
  const optimizer = tf.train.momentum(0.01, 0.9);
  const { trainStep, forward } = netSteps(net, [x0, x1], labels, optimizer);
  const measure = (what: string, fn: () => void): { wallMs: number; cpuMs: number } => {
    const wall: number[] = [];
    const cpu: number[] = [];
    for (let i = 0; i < warmup + runs; i++) {
      const start = performance.now();
      const cpuStart = cpuMs();
      fn();
      const ms = performance.now() - start;
      const cpuSpent = cpuMs() - cpuStart;
      if (i >= warmup) {
        wall.push(ms);
        cpu.push(cpuSpent);
      }
      log(`  ${label} ${what} ${i < warmup ? 'warm-up' : 'run'} ${i + 1}/${warmup + runs}: ${ms.toFixed(0)} ms (CPU ${cpuSpent.toFixed(0)} ms)`);
    }
    return { wallMs: median(wall), cpuMs: median(cpu) };
  };
  const train = measure('train', trainStep);
  const forwardMs = measure('forward', forward).wallMs;
  if (profile) await profileStep(label, trainStep);
  const trainMs = train.wallMs;
  const flops = forwardFlopsPerSample(net);
  optimizer.dispose();
  tf.dispose([x0, x1, labels]);
  net.dispose();
  const trainSamplesPerSecond = (batch * 1000) / trainMs;
  return {
    trainSamplesPerSecond: Math.round(trainSamplesPerSecond * 10) / 10,
    forwardSamplesPerSecond: Math.round(((batch * 1000) / forwardMs) * 10) / 10,
    trainSamplesPerCpuSecond: Math.round(((batch * 1000) / train.cpuMs) * 10) / 10,
    gflops: (3 * flops * trainSamplesPerSecond) / 1e9,
  };
}

export async function run(args: string[]): Promise<void> {
  // `--vs-torch`: the same network against the PyTorch reference, in bench/vs-torch.ts.
  if (args.includes('--vs-torch')) return (await import('./vs-torch.ts')).run(args.filter((a) => a !== '--vs-torch'));
  const { values } = parseArgs({
    args,
    options: {
      json: { type: 'boolean', default: false },
      batch: { type: 'string', default: '128' },
      runs: { type: 'string', default: '5' },
      warmup: { type: 'string', default: '2' },
      backends: { type: 'string' },
      'compare-kernels': { type: 'boolean', default: false },
      profile: { type: 'boolean', default: false },
    },
  });
  const batch = integerArg('batch', values.batch!, 1);
  const runs = integerArg('runs', values.runs!, 1);
  const warmup = integerArg('warmup', values.warmup!, 0);
  const requested = backendsArg(values.backends, BACKEND_ORDER);

  const results: Record<string, Measured & { version: string }> = {};
  for (const name of requested as BackendName[]) {
    let info;
    try {
      info = await initBackend(name);
    } catch (error) {
      log(`skipping ${name}: ${(error as Error).message}`);
      continue;
    }
    log(`${name}: ${info.version}; ${info.device}`);
    if (name === 'wasm' && values['compare-kernels']) {
      registerWasmTrainingKernels({ fast: false });
      results['wasm (missing + fixed kernels only)'] = {
        ...(await timeBackend('wasm-stock', batch, runs, warmup, values.profile)),
        version: info.version,
      };
      registerWasmTrainingKernels({ fast: true });
    }
    results[name] = { ...(await timeBackend(name, batch, runs, warmup, values.profile)), version: info.version };
  }

  if (values.json) {
    const line: Record<string, Result> = {};
    for (const [name, r] of Object.entries(results)) {
      line[name] = { trainSamplesPerSecond: r.trainSamplesPerSecond, forwardSamplesPerSecond: r.forwardSamplesPerSecond };
    }
    process.stdout.write(`${JSON.stringify(line)}\n`);
    return;
  }
  const rows = Object.entries(results).map(([name, r]) => [
    name,
    r.trainSamplesPerSecond.toFixed(1),
    r.forwardSamplesPerSecond.toFixed(1),
    r.gflops.toFixed(2),
    r.trainSamplesPerCpuSecond.toFixed(1),
  ]);
  const header = ['backend', 'train samples/s', 'forward samples/s', 'train GFLOP/s', 'train samples/CPU-s'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  process.stdout.write(
    `CMNIST MMTM net, batch ${batch}, median of ${runs} runs after ${warmup} warm-up\n` +
      [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n') +
      '\n' +
      `CPU-s: CPU time of this process (all its threads), a measure robust to other load; load average now ${os
        .loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')} on ${os.cpus().length} cores\n`,
  );
}
