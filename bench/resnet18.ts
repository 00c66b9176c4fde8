import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { BACKEND_ORDER, initBackend, type BackendName } from '../src/backend/index.ts';
import { createResnet18MmtmNet } from '../src/nn/resnet18.ts';
import { uniformValues } from '../src/nn/random.ts';
import { FIDELITY_PROFILES } from '../src/spec/fidelity.ts';
import { timeMedian } from './timing.ts';
import { netSteps, measureEachBackend } from './net-steps.ts';
import { integerArg, positiveNumberArg, backendsArg } from './args.ts';

/**
 * `npm run bench -- resnet18`: time of one training step and one evaluation forward of the ModelNet40
 * ResNet18-MMTM network (paper-spec §4.2: two 3-channel branches — three with --views 3, the three-view experiment of
 * §6.4 — 40 classes, MMTMs after layer2/3/4) at the
 * paper's batch 8 and 224×224 views, per backend, and the resulting estimate of a full ModelNet40 trial:
 *   epoch = ⌈7,875 / batch⌉ training steps (985 at batch 8) + evaluation of 1,968 val + 2,468 test samples (the code evaluates both
 *   every epoch) + the final utilization pass (not included: once per trial);
 * a trial runs until 5 epochs at 100 % training accuracy or 299 epochs.
 *
 * Options: --backends a,b (default: all that start), --batch n (8), --size n (224), --width x (1), --runs n (3),
 * --warmup n (1), --views 2|3 (2), --json.
 */

const TRAIN_SAMPLES_PER_EPOCH = 7875;
const EVAL_SAMPLES_PER_EPOCH = 1968 + 2468;


interface Measurement {
  backend: BackendName;
  device: string;
  batch: number;
  size: number;
  width: number;
  views: number;
  trainStepSeconds: number;
  /** CPU seconds (all threads of this process) per training step: robust to other load on a shared machine. */
  trainStepCpuSeconds: number;
  evalForwardSeconds: number;
  epochMinutes: number;
}

async function measure(backend: BackendName, batch: number, size: number, width: number, views: number, runs: number, warmup: number): Promise<Measurement> {
  const info = await initBackend(backend);
  const net = createResnet18MmtmNet({ channels: new Array(views).fill(3), numClasses: 40, seed: 0, fidelity: FIDELITY_PROFILES.code, width });
  const inputs = Array.from({ length: views }, (_, k) => tf.tensor4d(uniformValues(1, `x${k}`, batch * size * size * 3, 2), [batch, size, size, 3]));
  const labels = tf.oneHot(tf.tensor1d(Array.from({ length: batch }, (_, i) => (i * 7) % 40), 'int32'), 40);
  const optimizer = tf.train.sgd(0.1);
  const { trainStep, forward } = netSteps(net, inputs, labels, optimizer);
  const train = timeMedian(trainStep, warmup, runs);
  const trainStepSeconds = train.wall;
  const evalForwardSeconds = timeMedian(forward, warmup, runs).wall;
  tf.dispose([...inputs, labels]);
  optimizer.dispose();
  net.dispose();
  const epochSeconds = Math.ceil(TRAIN_SAMPLES_PER_EPOCH / batch) * trainStepSeconds + (EVAL_SAMPLES_PER_EPOCH / batch) * evalForwardSeconds;
  return { backend, device: info.device, batch, size, width, views, trainStepSeconds, trainStepCpuSeconds: train.cpu, evalForwardSeconds, epochMinutes: epochSeconds / 60 };
}

export async function run(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      backends: { type: 'string' },
      batch: { type: 'string', default: '8' },
      size: { type: 'string', default: '224' },
      width: { type: 'string', default: '1' },
      runs: { type: 'string', default: '3' },
      warmup: { type: 'string', default: '1' },
      views: { type: 'string', default: '2' },
      json: { type: 'boolean', default: false },
    },
  });
  const backends = backendsArg(values.backends, BACKEND_ORDER);
  const [batch, size] = (['batch', 'size'] as const).map((name) => integerArg(name, values[name]!, 1)) as [number, number];
  const width = positiveNumberArg('width', values.width!);
  const runs = integerArg('runs', values.runs!, 1);
  const warmup = integerArg('warmup', values.warmup!, 0);
  const views = Number(values.views);
  if (views !== 2 && views !== 3) throw new Error(`--views: 2 (front/rear) or 3 (the three-view experiment), got '${values.views}'`);
  const results = await measureEachBackend('resnet18', backends, `batch ${batch}, ${size}×${size}, width ${width}, ${views} views`, (backend) =>
    measure(backend, batch, size, width, views, runs, warmup),
  );
  if (values.json) {
    process.stdout.write(`${JSON.stringify(results)}\n`);
    return;
  }
  process.stdout.write('backend     train step (s)  step CPU (s)  eval forward (s)  epoch (min)  100 epochs (h)  299 epochs (h)  device\n');
  for (const r of results) {
    process.stdout.write(
      `${r.backend.padEnd(12)}${r.trainStepSeconds.toFixed(2).padStart(14)}${r.trainStepCpuSeconds.toFixed(2).padStart(14)}${r.evalForwardSeconds.toFixed(2).padStart(18)}` +
        `${r.epochMinutes.toFixed(1).padStart(13)}${((r.epochMinutes * 100) / 60).toFixed(1).padStart(16)}${((r.epochMinutes * 299) / 60).toFixed(1).padStart(16)}  ${r.device}\n`,
    );
  }
}
