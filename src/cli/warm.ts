import { EXIT_CODES, READY_LINE, TRIAL_END_PREFIX, TRIAL_PROCESS_TITLE, WARM_PROCESS_TITLE, WARM_RUNNER_LOG_PREFIX, type WarmTrialLine } from '../runner/protocol.ts';
import { backendRequestSchema, type BackendRequest } from '../spec/trial.ts';
import { runCli } from './program.ts';

/**
 * A spare trial runner (`<runner> warm --preload <none|backend> [--trials n]`): it does before its trial what every
 * trial's runner does first (load the CLI, the spec schema, the trainer, and for CPU backends the backend itself),
 * says so with READY_LINE, then reads its trial's `train` arguments as one WarmTrialLine from stdin and runs that
 * trial as `mmsweep train` would. The worker keeps one such process ready per slot, so a trial does not wait for a
 * process start and module loading (activities/runner-pool.ts). With `--trials n` it takes up to n trials one after
 * another (protocol.ts says when it stops early), so that a trial does not pay for a process start either: with the
 * native backend that is about a CPU-second of loading libtensorflow per trial.
 */
export async function runWarm(args: string[]): Promise<void> {
  const parsed = parseWarmArgs(args);
  if (parsed === null) {
    log(`expected '--preload <none|${backendRequestSchema.options.join('|')}> [--trials <n ≥ 1>]', got '${args.join(' ')}'`);
    process.exitCode = EXIT_CODES.invalidSpec;
    return;
  }
  const { preload, trials } = parsed;
  await Promise.all([
    import('./commands/train.ts'),
    import('../runner/run.ts'),
    import('../train/checkpoint.ts'),
    import('../spec/keys.ts'),
    import('../backend/notice.ts'),
    preload === 'none' ? import('../runner/noop.ts') : null,
  ]);
  if (preload !== 'none') {
    try {
      await preloadTraining(preload);
    } catch {
      // The trial starts the same backend again and reports the failure in its own words (and exit code).
    }
  }
  // A no-op runner never loads tfjs: nothing to count, no GPU.
  const backend = preload === 'none' ? null : await import('../backend/index.ts');
  const tensors = () => backend?.liveTensorCount() ?? null;
  const lines = lineReader(process.stdin);
  for (let trial = 1; ; trial++) {
    process.stdout.write(`${READY_LINE}\n`);
    const line = await lines.next();
    if (line === null) return; // the worker let this spare go without a trial
    let trialLine: WarmTrialLine;
    try {
      trialLine = JSON.parse(line) as WarmTrialLine;
      if (!Array.isArray(trialLine.argv) || !trialLine.argv.every((a) => typeof a === 'string')) throw new Error('argv must be an array of strings');
    } catch (error) {
      log(`the trial line is not {"argv": [...]}: ${(error as Error).message}`);
      process.exitCode = EXIT_CODES.invalidSpec;
      lines.close();
      return;
    }
    // Every runner starts as `… warm --preload …`: the title tells one running a trial from an idle spare (ps, top, and
    // the multi-host test that waits for a cut-off host's stale trial to stop).
    process.title = TRIAL_PROCESS_TITLE;
    const tensorsBefore = tensors();
    await runCli({ train: () => import('./commands/train.ts') }, [process.argv[0]!, process.argv[1]!, ...trialLine.argv]);
    const code = Number(process.exitCode ?? EXIT_CODES.success);
    const tensorsAfter = tensors();
    const verdict = takesAnotherTrial({ trial, trials, code, tensorsBefore, tensorsAfter, gpu: backend?.onGpu() ?? false });
    if (verdict !== true) {
      if (verdict === 'leaked') log(`the trial left ${tensorsAfter! - tensorsBefore!} tensors alive; not taking another trial`);
      if (verdict === 'gpu') log('trained on a GPU, whose memory TensorFlow keeps until the process ends; not taking another trial');
      lines.close();
      return;
    }
    process.exitCode = undefined;
    process.title = WARM_PROCESS_TITLE;
    process.stdout.write(`${TRIAL_END_PREFIX}${code}\n`);
  }
}

/**
 * Whether a runner takes another trial after this one: only after one that ended as trials end (a result, or
 * divergence, which is a result too), gave back every tensor it made and did not compute on a GPU, and only
 * `trials` in all. Anything else ends the process, as a one-trial runner's would, so a failure never carries over
 * into the next trial.
 */
export function takesAnotherTrial(after: {
  trial: number;
  trials: number;
  code: number;
  tensorsBefore: number | null;
  tensorsAfter: number | null;
  gpu: boolean;
}): true | 'last' | 'failed' | 'leaked' | 'gpu' {
  if (after.code !== EXIT_CODES.success && after.code !== EXIT_CODES.diverged) return 'failed';
  // TensorFlow keeps the GPU memory it reserved until the process ends: an idle runner must not hold it.
  if (after.gpu) return 'gpu';
  if (after.tensorsBefore !== null && after.tensorsAfter !== null && after.tensorsAfter > after.tensorsBefore) return 'leaked';
  return after.trial >= after.trials ? 'last' : true;
}

function log(message: string): void {
  process.stderr.write(`${WARM_RUNNER_LOG_PREFIX}${message}\n`);
}

function parseWarmArgs(args: string[]): { preload: 'none' | BackendRequest; trials: number } | null {
  if (args.length !== 2 && !(args.length === 4 && args[2] === '--trials')) return null;
  if (args[0] !== '--preload') return null;
  const trials = args.length === 4 ? Number(args[3]) : 1;
  if (!Number.isSafeInteger(trials) || trials < 1) return null;
  if (args[1] === 'none') return { preload: 'none', trials };
  const parsed = backendRequestSchema.safeParse(args[1]);
  return parsed.success ? { preload: parsed.data, trials } : null;
}

/**
 * The modules runTrainTrial loads, and the backend when it certainly computes on the CPU: a spare must not take a
 * GPU (TensorFlow reserves GPU memory when it starts) while the trial beside it trains there. `auto` starts only
 * when no GPU build of tfjs-node is installed, since auto would try it first.
 */
async function preloadTraining(request: BackendRequest): Promise<void> {
  const backend = await import('../backend/index.ts');
  await Promise.all([import('../data/index.ts'), import('../nn/index.ts'), import('../train/trainer.ts'), import('../train/unimodal.ts')]);
  const wanted = backend.effectiveRequest(request);
  const cpuOnly = wanted === 'tensorflow' || wanted === 'wasm' || wanted === 'cpu' || (wanted === 'auto' && !(await backend.gpuBuildInstalled()));
  if (cpuOnly) await backend.initBackend(request);
}

/**
 * Lines of `input` one at a time (without their newlines); null once it ends. `close` stops reading: an open stdin
 * would keep this process alive after its last trial.
 */
function lineReader(input: NodeJS.ReadStream): { next(): Promise<string | null>; close(): void } {
  let buffered = '';
  let ended = false;
  let waiting: ((line: string | null) => void) | null = null;
  const deliver = () => {
    if (!waiting) return;
    const newline = buffered.indexOf('\n');
    if (newline < 0 && !ended) return;
    const resolve = waiting;
    waiting = null;
    if (newline < 0) return resolve(null);
    const line = buffered.slice(0, newline);
    buffered = buffered.slice(newline + 1);
    resolve(line);
  };
  const onData = (chunk: Buffer | string) => {
    buffered += chunk.toString();
    deliver();
  };
  const onEnd = () => {
    ended = true;
    deliver();
  };
  input.on('data', onData);
  input.on('end', onEnd);
  input.on('error', onEnd);
  return {
    next: () =>
      new Promise((resolve) => {
        waiting = resolve;
        deliver();
      }),
    close() {
      input.off('data', onData);
      input.off('end', onEnd);
      input.off('error', onEnd);
      input.destroy();
    },
  };
}
