import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.ts';
import { createDataset } from '../../src/data/index.ts';
import { createNet } from '../../src/nn/index.ts';
import type { EpochMetrics, TrialEvent } from '../../src/spec/contracts.ts';
import { trainTrialSpecSchema } from '../../src/spec/trial.ts';
import { trainTrial } from '../../src/train/trainer.ts';
import { writeNvgestureFixture } from '../fixtures/nvgesture.ts';

/**
 * A small I3D-MMTM (width 1/16, 8 frames of 16², resize 18) learns the generated NVGesture fixture through the
 * real trainer, dataset factory and net factory; the SE baseline trains through the same seams.
 */

let dir: string;
let root: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mmsweep-i3d-train-'));
  root = join(dir, 'nvgesture');
  // 3 classes × 4 training clips (→ 10 train / 2 val) + 3 test clips, 32×24 frames.
  writeNvgestureFixture(root, { classes: 3, trainPerClass: 4, testPerClass: 1 });
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function spec(extra: Record<string, unknown> = {}) {
  return trainTrialSpecSchema.parse({
    dataset: { name: 'nvgesture', root, frames: 8, imageSize: 16, splitSeed: 1 },
    // The profile this fixture's loss bound was set under; NVGesture's default is now `paper`, whose gate scale 2
    // makes this 8-epoch, lr 0.05 run overshoot (loss back above 0.6× its start in epochs 6–8, seen twice).
    profile: 'code',
    lr: 0.05,
    momentum: 0.9,
    batchSize: 4,
    evalBatchSize: 16,
    seed: 2,
    width: 1 / 16,
    maxEpochs: 8,
    ...extra,
  });
}

describe('I3D-MMTM on the NVGesture fixture', () => {
  it('training loss goes down and the trial result is complete', async () => {
    const backend = await initBackend('auto');
    const s = spec();
    const dataset = await createDataset(s.dataset, { modalities: s.modalities, cacheDir: join(dir, 'cache'), log: () => {} });
    expect(dataset.modalities.map((m) => m.shape)).toEqual([
      [8, 16, 16, 3],
      [8, 16, 16, 1],
    ]);
    const net = createNet(s, dataset);
    const events: TrialEvent[] = [];
    const started = performance.now();
    const result = await trainTrial({ spec: s, dataset, net, backend: { name: backend.name, device: backend.device }, onEvent: (e) => events.push(e) });
    net.dispose();
    const history = events.flatMap((e) => (e.type === 'epoch' ? [e.metrics as EpochMetrics] : []));
    console.log(
      `i3d fixture training on ${backend.name}: ${((performance.now() - started) / 1000).toFixed(1)} s; loss per epoch ` +
        history.map((h) => h.loss.toFixed(3)).join(' ') + '; train accuracy ' + history.map((h) => h.trainAcc.toFixed(0)).join(' '),
    );
    expect(history.length).toBeGreaterThanOrEqual(4);
    // Two 25-way heads start near 2·ln 25 ≈ 6.4.
    expect(history[0]!.loss).toBeGreaterThan(4);
    expect(Math.min(...history.slice(-3).map((h) => h.loss))).toBeLessThan(0.6 * history[0]!.loss);
    expect(Math.max(...history.slice(-3).map((h) => h.trainAcc))).toBeGreaterThan(history[0]!.trainAcc);
    // A complete result. (Evaluation-mode accuracy is not asserted: with I3D's BatchNorm momentum 0.01 the running
    // statistics after ~24 steps are still ≈ 80 % of their initial values, so eval-mode predictions are not yet
    // meaningful on so short a run.)
    expect(result.epochs).toBe(history.length);
    expect(typeof result.testAcc).toBe('number');
    expect(Number.isFinite(result.dSpeed!)).toBe(true);
  });

  it('the uni-modal SE baseline on depth trains through the same factories', async () => {
    const backend = await initBackend('auto');
    const s = spec({ architecture: 'unimodal-se', unimodalModality: 1, maxEpochs: 4 });
    const dataset = await createDataset(s.dataset, { modalities: s.modalities, cacheDir: join(dir, 'cache'), log: () => {} });
    const net = createNet(s, dataset);
    const { unimodalLoss } = await import('../../src/train/unimodal.ts');
    const events: TrialEvent[] = [];
    await trainTrial({ spec: s, dataset, net, backend: { name: backend.name, device: backend.device }, onEvent: (e) => events.push(e), lossFn: unimodalLoss, skipUtilization: true });
    net.dispose();
    const history = events.flatMap((e) => (e.type === 'epoch' ? [e.metrics as EpochMetrics] : []));
    expect(history.length).toBe(4);
    expect(Math.min(...history.slice(-2).map((h) => h.loss))).toBeLessThan(history[0]!.loss);
  });
});
