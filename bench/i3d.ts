import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { BACKEND_ORDER, initBackend, type BackendName } from '../src/backend/index.ts';
import { createI3dNet } from '../src/nn/i3d.ts';
import { uniformValues } from '../src/nn/random.ts';
import { FIDELITY_PROFILES } from '../src/spec/fidelity.ts';
import { timeMedian } from './timing.ts';
import { netSteps, measureEachBackend } from './net-steps.ts';
import { integerArg, positiveNumberArg, backendsArg } from './args.ts';

/**
 * `npm run bench -- i3d`: one training step and one evaluation forward of the NVGesture I3D-MMTM network
 * (paper-spec §4.3: RGB + depth branches, 25 classes, six MMTMs) per backend, at a reduced clip (default batch 1,
 * 16 frames of 112², width 1), extrapolated to the paper's batch 4 × 64 × 224² by the ratio of input voxels
 * (4·64·224²)/(batch·frames·size²): every convolution and pooling of I3D costs in proportion to the voxels it
 * sees, and the parts that do not (MMTM and head MLPs on pooled vectors) are < 0.1 % of the FLOPs. Then a full
 * NVGesture epoch: 210 training steps (840 / 4) + evaluation of 210 val + 482 test clips.
 *
 * Options: --backends a,b (default: all that start), --batch n (1), --frames n (16), --size n (112), --width x (1),
 * --runs n (2), --warmup n (1), --json.
 */

const PAPER = { batch: 4, frames: 64, size: 224 };
const TRAIN_STEPS_PER_EPOCH = 840 / 4;
const EVAL_CLIPS_PER_EPOCH = 210 + 482;


interface Measurement {
  backend: BackendName;
  device: string;
  batch: number;
  frames: number;
  size: number;
  width: number;
  trainStepSeconds: number;
  trainStepCpuSeconds: number;
  evalForwardSeconds: number;
  /** Paper-size voxels / measured voxels. */
  scale: number;
  paperStepSeconds: number;
  paperEpochMinutes: number;
}

async function measure(backend: BackendName, batch: number, frames: number, size: number, width: number, runs: number, warmup: number): Promise<Measurement> {
  const info = await initBackend(backend);
  const net = createI3dNet({ channels: [3, 1], numClasses: 25, seed: 0, fidelity: FIDELITY_PROFILES.code, width });
  const x0 = tf.tensor(uniformValues(1, 'x0', batch * frames * size * size * 3, 1), [batch, frames, size, size, 3]);
  const x1 = tf.tensor(uniformValues(1, 'x1', batch * frames * size * size, 1), [batch, frames, size, size, 1]);
  const labels = tf.oneHot(tf.tensor1d(Array.from({ length: batch }, (_, i) => (i * 7) % 25), 'int32'), 25);
  const optimizer = tf.train.momentum(0.01, 0.9);
  const { trainStep, forward } = netSteps(net, [x0, x1], labels, optimizer);
  const train = timeMedian(trainStep, warmup, runs);
  const evalForwardSeconds = timeMedian(forward, warmup, runs).wall;
  tf.dispose([x0, x1, labels]);
  optimizer.dispose();
  net.dispose();
  const scale = (PAPER.batch * PAPER.frames * PAPER.size ** 2) / (batch * frames * size ** 2);
  const paperStepSeconds = train.wall * scale;
  const paperEvalPerClip = (evalForwardSeconds / batch) * (PAPER.frames * PAPER.size ** 2) / (frames * size ** 2);
  const epochSeconds = TRAIN_STEPS_PER_EPOCH * paperStepSeconds + EVAL_CLIPS_PER_EPOCH * paperEvalPerClip;
  return {
    backend, device: info.device, batch, frames, size, width,
    trainStepSeconds: train.wall, trainStepCpuSeconds: train.cpu, evalForwardSeconds,
    scale, paperStepSeconds, paperEpochMinutes: epochSeconds / 60,
  };
}

export async function run(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      backends: { type: 'string' },
      batch: { type: 'string', default: '1' },
      frames: { type: 'string', default: '16' },
      size: { type: 'string', default: '112' },
      width: { type: 'string', default: '1' },
      runs: { type: 'string', default: '2' },
      warmup: { type: 'string', default: '1' },
      json: { type: 'boolean', default: false },
    },
  });
  const backends = backendsArg(values.backends, BACKEND_ORDER);
  const [batch, frames, size] = (['batch', 'frames', 'size'] as const).map((name) => integerArg(name, values[name]!, 1)) as [number, number, number];
  const width = positiveNumberArg('width', values.width!);
  const runs = integerArg('runs', values.runs!, 1);
  const warmup = integerArg('warmup', values.warmup!, 0);
  const results = await measureEachBackend('i3d', backends, `batch ${batch}, ${frames}×${size}², width ${width}`, (backend) =>
    measure(backend, batch, frames, size, width, runs, warmup),
  );
  if (values.json) {
    process.stdout.write(`${JSON.stringify(results)}\n`);
    return;
  }
  process.stdout.write('backend     measured step (s)  step CPU (s)  eval fwd (s)  ×voxels  paper step (s)  paper epoch (min)  device\n');
  for (const r of results) {
    process.stdout.write(
      `${r.backend.padEnd(11)} ${r.trainStepSeconds.toFixed(2).padStart(17)}  ${r.trainStepCpuSeconds.toFixed(2).padStart(12)}  ${r.evalForwardSeconds.toFixed(2).padStart(12)}  ` +
        `${r.scale.toFixed(0).padStart(7)}  ${r.paperStepSeconds.toFixed(0).padStart(14)}  ${r.paperEpochMinutes.toFixed(0).padStart(17)}  ${r.device}\n`,
    );
  }
  process.stdout.write(
    `\nmeasured at batch ${batch} × ${frames}×${size}² (width ${width}); "paper" = batch 4 × 64×224², scaled by input voxels; ` +
      `epoch = ${TRAIN_STEPS_PER_EPOCH} steps + ${EVAL_CLIPS_PER_EPOCH} evaluated clips.\n`,
  );
}
