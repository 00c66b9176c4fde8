import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.ts';
import { createCmnistNet } from '../../src/nn/cmnist.ts';
import { FIDELITY_PROFILES } from '../../src/spec/fidelity.ts';
import { branchLoss } from '../../src/train/loss.ts';
import { Sgd } from '../../src/train/sgd.ts';

/**
 * The PyTorch speed reference (bench/torch/) must compute the same function as mmsweep's CMNIST MMTM net, or the
 * `--vs-torch` comparison compares different work: loaded with mmsweep's weights and data, it must give the same
 * logits and the same losses over a few SGD-momentum steps. Skipped, with the reason printed, without torch.
 */

const python = process.env.MMSWEEP_PYTHON ?? 'python3';
const replayScript = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bench/torch/replay.py');
const probe = spawnSync(python, ['-c', 'import torch'], { encoding: 'utf8' });
const torchMissing =
  probe.status === 0 ? null : `${python} cannot import torch (${(probe.stderr || String(probe.error)).trim().split('\n').at(-1)})`;
if (torchMissing) console.log(`[test/native] torch reference check skipped: ${torchMissing}; pip install torch==2.13.0`);

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe.skipIf(torchMissing !== null)('PyTorch reference of the CMNIST MMTM net', () => {
  it('gives mmsweep’s logits and losses from mmsweep’s weights and data', async () => {
    await initBackend('wasm');
    const batch = 4;
    const steps = 3;
    const lr = 0.05;
    const net = createCmnistNet({ channels: [3, 1], numClasses: 10, seed: 5, fidelity: FIDELITY_PROFILES.code });
    const params = Object.fromEntries(
      net.namedParameters.map((p) => [p.name, { shape: p.variable.shape, values: Array.from(p.variable.dataSync()) }]),
    );
    const x0 = tf.randomUniform([batch, 28, 28, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
    const x1 = tf.randomUniform([batch, 28, 28, 1], 0, 1, 'float32', 2) as tf.Tensor4D;
    const labels = [1, 7, 3, 9];
    const oneHot = tf.oneHot(tf.tensor1d(labels, 'int32'), 10).toFloat() as tf.Tensor2D;
    const variables = [...net.trainableVariables];
    const sgd = new Sgd(variables, { lr, momentum: 0.9, weightDecay: 0 });
    const losses: number[] = [];
    let firstLogits: { l0: Float32Array; l1: Float32Array } | null = null;
    for (let step = 0; step < steps; step++) {
      const { value, grads } = tf.variableGrads(() => {
        const out = net.forward([x0, x1], { mode: 'regular', training: true, regularTrainingStep: true });
        firstLogits ??= { l0: out.branchLogits[0].dataSync() as Float32Array, l1: out.branchLogits[1].dataSync() as Float32Array };
        return branchLoss([out.branchLogits[0] as tf.Tensor2D, out.branchLogits[1] as tf.Tensor2D], oneHot);
      }, variables);
      sgd.step(variables.map((v) => grads[v.name] ?? null));
      losses.push(value.dataSync()[0]!);
      tf.dispose([value, ...Object.values(grads)]);
    }

    const request = { params, x0: Array.from(x0.dataSync()), x1: Array.from(x1.dataSync()), labels, steps, lr, momentum: 0.9 };
    tf.dispose([x0, x1, oneHot]);
    sgd.dispose();
    net.dispose();
    const run = spawnSync(python, [replayScript], { input: JSON.stringify(request), encoding: 'utf8', maxBuffer: 64 << 20 });
    expect(run.status, run.stderr).toBe(0);
    const torch = JSON.parse(run.stdout) as { logits0: number[]; logits1: number[]; losses: number[] };

    // Observed: logits within 1e-8, losses equal to float32 precision; a wrong layout or layer gives O(0.1).
    expect(maxAbsDiff(torch.logits0, firstLogits!.l0)).toBeLessThan(1e-5);
    expect(maxAbsDiff(torch.logits1, firstLogits!.l1)).toBeLessThan(1e-5);
    expect(maxAbsDiff(torch.losses, losses)).toBeLessThan(1e-5);
    expect(losses[2]!).toBeLessThan(losses[0]! - 0.02);
  });
});
