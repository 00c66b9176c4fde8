import { EXIT_CODES, READY_LINE, TRIAL_PROCESS_TITLE, type WarmTrialLine } from '../runner/protocol.ts';
import { backendRequestSchema, type BackendRequest } from '../spec/trial.ts';
import { runCli } from './program.ts';

/**
 * A spare trial runner (`<runner> warm --preload <none|backend>`): it does before its trial what every trial's runner
 * does first (load the CLI, the spec schema, the trainer, and for CPU backends the backend itself), says so with
 * READY_LINE, then reads its trial's `train` arguments as one WarmTrialLine from stdin and runs exactly that one
 * trial as `mmsweep train` would. The worker keeps one such process ready per slot, so a trial does not wait for a
 * process start and module loading (activities/runner-pool.ts).
 */
export async function runWarm(args: string[]): Promise<void> {
  const preload = parsePreload(args);
  if (preload === null) {
    process.stderr.write(`mmsweep warm runner: expected '--preload <none|${backendRequestSchema.options.join('|')}>', got '${args.join(' ')}'\n`);
    process.exitCode = EXIT_CODES.invalidSpec;
    return;
  }
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
  process.stdout.write(`${READY_LINE}\n`);
  const line = await readLine(process.stdin);
  if (line === null) return; // the worker let this spare go without a trial
  let trial: WarmTrialLine;
  try {
    trial = JSON.parse(line) as WarmTrialLine;
    if (!Array.isArray(trial.argv) || !trial.argv.every((a) => typeof a === 'string')) throw new Error('argv must be an array of strings');
  } catch (error) {
    process.stderr.write(`mmsweep warm runner: the trial line is not {"argv": [...]}: ${(error as Error).message}\n`);
    process.exitCode = EXIT_CODES.invalidSpec;
    return;
  }
  // Every runner starts as `… warm --preload …`: the title tells one running a trial from an idle spare (ps, top, and
  // the multi-host test that waits for a cut-off host's stale trial to stop).
  process.title = TRIAL_PROCESS_TITLE;
  await runCli({ train: () => import('./commands/train.ts') }, [process.argv[0]!, process.argv[1]!, ...trial.argv]);
}

function parsePreload(args: string[]): 'none' | BackendRequest | null {
  if (args.length !== 2 || args[0] !== '--preload') return null;
  if (args[1] === 'none') return 'none';
  const parsed = backendRequestSchema.safeParse(args[1]);
  return parsed.success ? parsed.data : null;
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

/** The first line of `input` (without its newline), or null when it ends first; stops reading after it. */
function readLine(input: NodeJS.ReadStream): Promise<string | null> {
  return new Promise((resolve) => {
    let buffered = '';
    const finish = (line: string | null) => {
      input.off('data', onData);
      input.off('end', onEnd);
      input.off('error', onEnd);
      // Nothing more comes on stdin: an open stdin would keep this process alive after its trial.
      input.destroy();
      resolve(line);
    };
    const onData = (chunk: Buffer | string) => {
      buffered += chunk.toString();
      const newline = buffered.indexOf('\n');
      if (newline >= 0) finish(buffered.slice(0, newline));
    };
    const onEnd = () => finish(null);
    input.on('data', onData);
    input.on('end', onEnd);
    input.on('error', onEnd);
  });
}
