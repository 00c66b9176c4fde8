import { setTimeout as sleep } from 'node:timers/promises';
import { trialKey } from '../spec/keys.ts';
import type { NoopTrialSpec } from '../spec/trial.ts';
import { checkpointPath, latestCheckpoint, pruneCheckpoints, readCheckpointFile, ResumeMismatchError, writeCheckpointFile } from '../train/checkpoint.ts';
import type { CheckpointRef, EpochMetrics, TrialResult } from '../spec/contracts.ts';
import type { RunTrialOptions } from './options.ts';

interface NoopPayload {
  kind: 'noop';
  specKey: string;
  epoch: number;
  wallSeconds: number;
}

/**
 * The `noop` trial: sleeps `sleepMs` per epoch for `epochs` epochs, emitting epoch events with zero metrics and
 * writing a tiny real checkpoint per epoch (resumable), so orchestration can be tested and benchmarked without
 * training anything.
 */
export async function runNoopTrial(spec: NoopTrialSpec, options: RunTrialOptions): Promise<TrialResult> {
  const emit = options.onEvent ?? (() => {});
  const key = trialKey(spec);
  const started = Date.now();
  let epoch = 0;
  let prior = 0;
  let resumedFromEpoch: number | null = null;
  if (options.resume && options.checkpointDir) {
    const latest = latestCheckpoint(options.checkpointDir);
    if (latest) {
      const p = readCheckpointFile<NoopPayload>(latest.path).payload;
      if (p.specKey !== key) throw new ResumeMismatchError(`checkpoint ${latest.path} belongs to another trial; use an empty --checkpoint-dir`);
      epoch = p.epoch;
      prior = p.wallSeconds;
      resumedFromEpoch = epoch;
    }
  }
  emit({ type: 'start', backend: 'none', device: 'none', resumedFromEpoch, totalEpochs: spec.epochs });
  while (epoch < spec.epochs) {
    epoch += 1;
    const t0 = Date.now();
    await sleep(spec.sleepMs);
    emit({ type: 'progress', epoch, step: 1, stepsInEpoch: 1 });
    let checkpoint: CheckpointRef = { path: '', epoch, sha256: '', bytes: 0 };
    if (options.checkpointDir) {
      const payload: NoopPayload = { kind: 'noop', specKey: key, epoch, wallSeconds: prior + (Date.now() - started) / 1000 };
      const written = writeCheckpointFile(checkpointPath(options.checkpointDir, epoch), {
        payload,
        blobs: { epoch: Float32Array.of(epoch) },
      });
      pruneCheckpoints(options.checkpointDir, 2);
      checkpoint = { ...written, epoch };
    }
    const metrics: EpochMetrics = {
      epoch, trainAcc: 0, trainAcc0: 0, trainAcc1: 0, valAcc: 0, valAcc0: 0, valAcc1: 0, testAcc: 0, testAcc0: 0, testAcc1: 0,
      loss: 0, lr: 0, dSpeed: null, regularSteps: 0, rebalanceSteps: 0, wallSeconds: (Date.now() - t0) / 1000,
    };
    emit({ type: 'epoch', metrics, checkpoint });
  }
  const result: TrialResult = {
    testAcc: 0, accF: 0, accF0: 0, accF1: 0, accF0Prime: 0, accF1Prime: 0,
    uM1GivenM0: null, uM0GivenM1: null, dUtil: null, dSpeed: null, rF: 0,
    bestEpoch: spec.epochs, stepsT: 0, diverged: false, backend: 'none', device: 'none', epochs: epoch,
    profile: 'code', wallSeconds: prior + (Date.now() - started) / 1000,
  };
  emit({ type: 'result', result });
  return result;
}
