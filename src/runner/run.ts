import type { Dataset } from '../data/types.ts';
import type { MultimodalNet } from '../nn/types.ts';
import type { NoopTrialSpec, TrainTrialSpec, TrialSpec } from '../spec/trial.ts';
import type { TrialResult } from '../spec/contracts.ts';
import type { RunTrialOptions } from './options.ts';

/**
 * Ten minutes: a full ResNet18-MMTM checkpoint is ≈ 270 MB and takes a second or two to write, negligible at that
 * interval, while a CPU epoch of ModelNet40 (≈ 34 min) or NVGesture (hours) would otherwise be lost on a crash.
 */
export const DEFAULT_MID_EPOCH_CHECKPOINT_SECONDS = 600;

/**
 * The trial runner: a TrialSpec in, progress events and a TrialResult out. It knows nothing of Temporal or
 * Postgres; `mmsweep train` wraps it for the command line and the orchestration activity spawns that command.
 */
export async function runTrial(spec: TrialSpec, options: RunTrialOptions = {}): Promise<TrialResult> {
  if (options.resume && !options.checkpointDir) {
    throw new RunnerInputError('--resume needs --checkpoint-dir (the directory holding the epoch checkpoints)');
  }
  if (options.checkpointDir) {
    // Before loading data or a backend (minutes on the large sets): a bad directory is invalid input, found now.
    const [{ prepareCheckpointDir, CheckpointDirError }, { trialKey }] = await Promise.all([import('../train/checkpoint.ts'), import('../spec/keys.ts')]);
    try {
      prepareCheckpointDir(options.checkpointDir, trialKey(spec), { resume: options.resume });
    } catch (error) {
      throw error instanceof CheckpointDirError ? new RunnerInputError(error.message) : error;
    }
  }
  if (spec.kind === 'noop') {
    const { runNoopTrial } = await import('./noop.ts');
    return runNoopTrial(spec, options);
  }
  return runTrainTrial(spec, options);
}

/** Invalid input discovered by the runner (not by the schema): exit code `invalidSpec`. */
export class RunnerInputError extends Error {
  override name = 'RunnerInputError';
}

async function runTrainTrial(spec: TrainTrialSpec, options: RunTrialOptions): Promise<TrialResult> {
  if (spec.architecture === 'unimodal-se' && spec.algorithm !== 'vanilla') {
    throw new RunnerInputError(`algorithm: a uni-modal SE network trains with 'vanilla' only, got '${spec.algorithm}'`);
  }
  const { initBackend } = await import('../backend/index.ts');
  const backend = await initBackend(spec.backend);
  const { createDataset } = await import('../data/index.ts');
  const { SubsetTooLargeError } = await import('../data/batching.ts');
  let dataset: Dataset;
  try {
    dataset = await createDataset(spec.dataset, {
      modalities: spec.modalities,
      subset: spec.subset,
      cacheDir: options.cacheDir,
    });
  } catch (error) {
    if (!(error instanceof SubsetTooLargeError)) throw error;
    const flag = error.split === 'train' ? '--subset' : `--subset-${error.split}`;
    throw new RunnerInputError(
      `${flag} (subset.${error.split}) is ${error.requested}, more than the ${error.available} ${error.unit} of the ${error.dataset} ${error.split} split; lower it or drop it`,
    );
  }
  const { createNet } = await import('../nn/index.ts');
  const { trainTrial } = await import('../train/trainer.ts');
  const unimodal = spec.architecture === 'unimodal-se';
  const net: MultimodalNet = createNet(spec, dataset);
  const { unimodalLoss } = await import('../train/unimodal.ts');
  try {
    return await trainTrial({
      spec,
      dataset,
      net,
      checkpointDir: options.checkpointDir,
      resume: options.resume,
      midEpochCheckpointSeconds: options.midEpochCheckpointSeconds ?? DEFAULT_MID_EPOCH_CHECKPOINT_SECONDS,
      onEvent: options.onEvent,
      backend: { name: backend.name, device: backend.device, gpu: backend.gpu },
      lossFn: unimodal ? unimodalLoss : undefined,
      skipUtilization: unimodal,
    });
  } catch (error) {
    throw backend.name === 'wasm' ? explainWasmAbort(error, spec) : error;
  } finally {
    net.dispose();
  }
}

export type { NoopTrialSpec };

/**
 * The wasm backend's heap is capped at 4 GB; when a step needs more, emscripten aborts with a bare "Aborted()".
 * Name the likely cause and the ways out (three-view ModelNet40 at batch 8 × 224² is such a case).
 */
function explainWasmAbort(error: unknown, spec: TrainTrialSpec): unknown {
  const message = error instanceof Error ? error.message : String(error);
  if (!/^Aborted\(/.test(message)) return error;
  return new Error(
    `the wasm backend aborted (${message.split('.')[0]}): most likely its 4 GB memory ran out at batchSize ${spec.batchSize}, ` +
      `width ${spec.width}. Use the native backend (npm run setup:native, backend 'tensorflow'), or a smaller batchSize, width or image size`,
  );
}
