import os from 'node:os';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { integerArg } from './args.ts';
import { tfjsTrainingBench } from './vs-torch.ts';

/**
 * `npm run bench -- step-profile`: where one native CMNIST MMTM training step goes (issue 14). Runs the exact step
 * that `train --vs-torch` times (forward in training mode, Σ_k CE(ŷk), tf.variableGrads, the trainer's Sgd, one
 * read of the loss) on the `tensorflow` backend and times every TensorFlow op it executes.
 *
 * Method: tfjs-node runs each op eagerly and synchronously through one binding call, `binding.executeOp(name, …)`
 * (TFE_Execute); wrapping that call with a high-resolution clock times each op exclusively — ops that tfjs-node
 * composes from several TF ops (e.g. its `Step`: IsNan, Greater, Select, Fill) show up as those ops, and nothing is
 * counted twice (tf.profile, by contrast, records a composite kernel and its inner kernels both). Device-to-host
 * reads (`tensorDataSync`) are timed the same way. The rest of the step's wall time is JavaScript: tfjs's tape,
 * tidy scopes, gradient bookkeeping, and any loops written in JS.
 *
 * Options: --batch n (128), --steps n (profiled steps, 5), --warmup n (3), --top n (10), --forward (profile the
 * evaluation forward instead of the training step), --by-shape (one row per op and output shape: e.g. which
 * convolution's input gradient costs most), --json.
 */

interface OpStat {
  op: string;
  calls: number;
  ms: number;
}

interface Binding {
  executeOp: (name: string, ...rest: unknown[]) => unknown;
  tensorDataSync: (...args: unknown[]) => unknown;
}

export async function run(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      batch: { type: 'string', default: '128' },
      steps: { type: 'string', default: '5' },
      warmup: { type: 'string', default: '3' },
      top: { type: 'string', default: '10' },
      forward: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      'by-shape': { type: 'boolean', default: false },
    },
  });
  const batch = integerArg('batch', values.batch!, 1);
  const steps = integerArg('steps', values.steps!, 1);
  const warmup = integerArg('warmup', values.warmup!, 0);
  const top = integerArg('top', values.top!, 1);
  const byShape = values['by-shape']!;
  const loadBefore = os.loadavg()[0]!;
  const bench = await tfjsTrainingBench('tensorflow', batch);
  const backend = tf.backend() as unknown as { binding: Binding };
  const binding = backend.binding;
  const what = values.forward ? 'evaluation forward' : 'training step';
  const step = values.forward ? bench.forward : bench.trainStep;
  for (let i = 0; i < warmup; i++) await step();

  const byOp = new Map<string, OpStat>();
  let recording = false;
  const timed = <F extends (...a: never[]) => unknown>(label: (args: Parameters<F>) => string, original: F): F =>
    ((...a: Parameters<F>) => {
      if (!recording) return original(...a);
      const started = process.hrtime.bigint();
      const result = original(...a);
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      const key = label(a) + (byShape && Array.isArray(result) ? ` → ${(result as { shape: number[] }[]).map((o) => o.shape.join('×')).join(', ')}` : '');
      const stat = byOp.get(key) ?? { op: key, calls: 0, ms: 0 };
      stat.calls += 1;
      stat.ms += ms;
      byOp.set(key, stat);
      return result;
    }) as F;
  const executeOp = binding.executeOp.bind(binding);
  const tensorDataSync = binding.tensorDataSync.bind(binding);
  // The binding's properties are read-only: the backend gets a stand-in whose two timed calls shadow them.
  backend.binding = Object.create(binding, {
    executeOp: { value: timed((a) => String(a[0]), executeOp) },
    tensorDataSync: { value: timed(() => '(read to host: tensorDataSync)', tensorDataSync) },
  }) as Binding;

  const wall: number[] = [];
  try {
    for (let s = 0; s < steps; s++) {
      recording = true;
      const started = performance.now();
      await step();
      wall.push(performance.now() - started);
      recording = false;
    }
  } finally {
    backend.binding = binding;
    bench.dispose();
  }
  const loadAfter = os.loadavg()[0]!;
  const stepMs = wall.reduce((a, b) => a + b, 0) / steps;
  const stats = [...byOp.values()].sort((a, b) => b.ms - a.ms);
  const opMs = stats.reduce((a, s) => a + s.ms, 0) / steps;
  const opCalls = stats.filter((s) => !s.op.startsWith('(')).reduce((a, s) => a + s.calls, 0) / steps;
  const rows = stats.slice(0, top).map((s) => ({ op: s.op, callsPerStep: s.calls / steps, msPerStep: s.ms / steps, shareOfStep: s.ms / steps / stepMs }));
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ what, batch, steps, device: bench.device, loadAverage: [loadBefore, loadAfter], stepMs, opMs, opCalls, top: rows })}\n`);
    return;
  }
  process.stdout.write(
    [
      `${bench.device}; CMNIST MMTM ${what}, batch ${batch}, mean of ${steps} steps after ${warmup} warm-up`,
      `load average (1 min) ${loadBefore.toFixed(1)} before, ${loadAfter.toFixed(1)} after`,
      `step ${stepMs.toFixed(1)} ms: ${opCalls.toFixed(0)} TF ops taking ${opMs.toFixed(1)} ms (incl. reads), JavaScript ${(stepMs - opMs).toFixed(1)} ms`,
      '| TF op | calls/step | ms/step | share of step |',
      '|---|---|---|---|',
      ...rows.map((r) => `| ${r.op} | ${r.callsPerStep.toFixed(0)} | ${r.msPerStep.toFixed(1)} | ${(100 * r.shareOfStep).toFixed(1)} % |`),
      `| (JavaScript between ops) | | ${(stepMs - opMs).toFixed(1)} | ${(100 * (1 - opMs / stepMs)).toFixed(1)} % |`,
      '',
    ].join('\n'),
  );
}
