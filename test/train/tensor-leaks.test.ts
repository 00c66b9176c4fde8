import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.ts';
import { runTrial } from '../../src/runner/run.ts';
import { LATE_FUSION_METHODS } from '../../src/spec/methods.ts';
import { parseTrialSpec } from '../../src/spec/trial.ts';

/**
 * No tensor outlives its trial, whatever trains: a runner takes its next trial only when tfjs holds as many tensors
 * as before this one (src/cli/warm.ts), and a tensor made per step and never freed grows a long trial's memory by
 * the step. The count is tfjs's own (tf.memory), before and after the runner's whole trial on the native backend
 * (the one workers train on), tiny CMNIST and width; also after a resume from a checkpoint.
 */
const dirs: string[] = [];
beforeAll(async () => {
  await initBackend('tensorflow');
});
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

const tiny = { dataset: { name: 'cmnist' }, lr: 0.05, batchSize: 32, evalBatchSize: 64, subset: { train: 64, val: 32, test: 32 }, width: 0.25, maxEpochs: 2, backend: 'tensorflow', seed: 4 };
const cases: Array<[string, Record<string, unknown>]> = [
  ['vanilla MMTM', {}],
  ['guided', { algorithm: 'guided', q: 1 }],
  ['random', { algorithm: 'random', q: 1 }],
  ['rubi', { algorithm: 'rubi' }],
  ['uni-modal SE', { architecture: 'unimodal-se' }],
  ['late-fusion vanilla', { architecture: 'late-fusion' }],
  // Gradient-Blending estimates its weights on a validation split that must not be the test split.
  ...LATE_FUSION_METHODS.map((m): [string, Record<string, unknown>] => [m, { architecture: 'late-fusion', algorithm: m, dataset: { name: 'cmnist', heldOutValidation: 100 } }]),
];

describe('tensors left behind by a trial', () => {
  it.each(cases)('%s: none, and none after resuming from its checkpoint', async (_label, over) => {
    const spec = parseTrialSpec({ ...tiny, ...over });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mmsweep-leaks-'));
    dirs.push(dir);
    const before = tf.memory().numTensors;
    const first = await runTrial(spec, { checkpointDir: dir });
    expect(first.epochs).toBe(2);
    expect(tf.memory().numTensors - before).toBe(0);
    // The checkpoint of its last epoch: restored, then the trial ends at once (its stopping rule already met).
    await runTrial(spec, { checkpointDir: dir, resume: true });
    expect(tf.memory().numTensors - before).toBe(0);
  }, 120_000);
});
