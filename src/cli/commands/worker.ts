import type { Command } from 'commander';
import os from 'node:os';
import { describeSplit, parsePositiveIntFlag, resolveCpuSplit, threadEnv } from '../../backend/threads.ts';

export function register(program: Command): void {
  program
    .command('worker')
    .description('run trials on this machine: polls mmsweep-train-<queue> (and the control queue) of the Temporal at TEMPORAL_ADDRESS, writes to DATABASE_URL')
    .requiredOption('--queue <class>', 'worker class, e.g. gpu, a100, cpu (task queue mmsweep-train-<class>)')
    .option('--slots <n>', 'trials at once (default: one per GPU with --gpus, else one per CPU core)', (v) => parsePositiveIntFlag('--slots', v))
    .option('--threads-per-slot <n>', 'compute threads of each trial (default: the cores shared evenly between slots)', (v) => parsePositiveIntFlag('--threads-per-slot', v))
    .option(
      '--gpus <ids>',
      'GPU ids, one per slot, as nvidia-smi numbers them (sets CUDA_VISIBLE_DEVICES of each runner; repeat an id to share a GPU: 0,0,1,1)',
    )
    .option('--no-tf32', 'full float32 matmuls/convolutions on Ampere and newer GPUs (NVIDIA_TF32_OVERRIDE=0; TensorFlow uses TF32 by default)')
    .option('--no-control', 'do not poll the control queue (study workflows and bookkeeping activities)')
    .option('--checkpoint-dir <dir>', 'local checkpoint root', '.mmsweep/checkpoints')
    .option('--no-upload-checkpoints', 'keep checkpoints on this machine only (single-machine setups)')
    .option('--heartbeat-interval <ms>', 'heartbeat period while a runner is busy', (v) => parsePositiveIntFlag('--heartbeat-interval', v), 5000)
    .option('--address <host:port>', 'Temporal frontend (default TEMPORAL_ADDRESS)')
    .option('--namespace <ns>', 'Temporal namespace (default TEMPORAL_NAMESPACE or default)')
    .action(async (options: {
      queue: string;
      slots?: number;
      threadsPerSlot?: number;
      gpus?: string;
      tf32: boolean;
      control: boolean;
      checkpointDir: string;
      uploadCheckpoints: boolean;
      heartbeatInterval: number;
      address?: string;
      namespace?: string;
    }) => {
      const path = await import('node:path');
      const { openDatabase } = await import('../../../db/index.ts');
      const { dbResultsStore } = await import('../../../activities/db-store.ts');
      const { startWorkers } = await import('../../../infra/worker.ts');
      const { resolveTarget } = await import('../../../infra/client.ts');
      const { parseGpuIds, resolveSlots } = await import('../../../activities/gpu-slots.ts');
      const gpus = options.gpus === undefined ? [] : parseGpuIds(options.gpus);
      resolveSlots(gpus, options.slots); // one id per slot: a mismatch exits 2
      const split = resolveCpuSplit({ slots: options.slots, threadsPerSlot: options.threadsPerSlot, gpus: gpus.length });
      const slots = split.slots;
      const runnerSettings = await import('../../../activities/common.ts');
      // A bad MMSWEEP_SPARE_RUNNERS or MMSWEEP_RUNNER_TRIALS exits 2 now, before anything starts.
      runnerSettings.spareRunnersFromEnv(slots);
      runnerSettings.trialsPerRunnerFromEnv();
      // Runners inherit the worker's environment: this reaches TensorFlow in every trial process.
      if (!options.tf32) process.env.NVIDIA_TF32_OVERRIDE = '0';
      const target = resolveTarget(options);
      const database = await openDatabase();
      const workerId = `${os.hostname()}:${process.pid}`;
      const workers = await startWorkers({
        target,
        store: dbResultsStore(database.db, database.displayName),
        queueClass: options.queue,
        slots,
        control: options.control,
        activity: {
          workerId,
          gpus,
          checkpointRoot: path.resolve(options.checkpointDir),
          uploadCheckpoints: options.uploadCheckpoints,
          heartbeatIntervalMs: options.heartbeatInterval,
          env: threadEnv(split),
          ...(process.env.MMSWEEP_RUNNER ? { runnerCommand: process.env.MMSWEEP_RUNNER.split(' ').filter(Boolean) } : {}),
        },
      });
      console.error(
        `mmsweep worker ${workerId}: queue mmsweep-train-${options.queue} with ${slots} slot(s)${gpus.length ? ` on GPUs ${gpus.join(',')}` : ''}` +
          `${options.control ? ' + mmsweep-control' : ''}; Temporal ${target.address}/${target.namespace}; database ${database.displayName}`,
      );
      console.error(`mmsweep worker: ${describeSplit(split)}`);
      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) return;
        stopping = true;
        console.error(`${signal}: stopping; running trials are handed back to Temporal and resume from their checkpoints`);
        void workers.shutdown();
      };
      process.on('SIGINT', () => stop('SIGINT'));
      process.on('SIGTERM', () => stop('SIGTERM'));
      await workers.done;
      await database.close();
    });
}
