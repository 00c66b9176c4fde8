import { mkdirSync } from 'node:fs';
import { join as pathJoin } from 'node:path';
import type { Command } from 'commander';
import { takePidLock } from '../../util/pid-lock.ts';
import { describeSplit, parsePositiveIntFlag, resolveCpuSplit, threadEnv } from '../../backend/threads.ts';

/**
 * `mmsweep run <preset>`: the whole stack on one machine — a local Temporal dev server (state in
 * .mmsweep/temporal/temporal.db), the embedded database, an in-process worker with one slot per core — then
 * progress bars and the result table. Ctrl-C stops the worker; the study stays in Temporal and the database,
 * and running the same command again continues it.
 */
export function register(program: Command): void {
  program
    .command('run <presetOrFile>')
    .description('run a study on this machine with the embedded stack (local Temporal dev server + embedded database)')
    .option('--slots <n>', 'trials at once (default: one per CPU core)', (v) => parsePositiveIntFlag('--slots', v))
    .option('--threads-per-slot <n>', 'compute threads of each trial (default: the cores shared evenly between slots)', (v) => parsePositiveIntFlag('--threads-per-slot', v))
    .option('--keep-server', 'leave the Temporal dev server running afterwards (so `mmsweep study …` can talk to it)')
    .option('--no-progress', 'no progress bars (log lines instead)')
    .option('--extend', 'the study exists and this spec adds seeds, grid values or conditions to it: run the additions')
    .option('--setup-native', 'when the native backend is missing, build it before the study without asking (MMSWEEP_SETUP_NATIVE=1)')
    .option('--no-setup-native', 'never offer to build the native backend (MMSWEEP_SETUP_NATIVE=0)')
    .action(async (presetOrFile: string, options: RunOptions) => {
      await runEmbedded(presetOrFile, options);
    });
}

interface RunOptions {
  slots?: number;
  threadsPerSlot?: number;
  keepServer?: boolean;
  progress: boolean;
  extend?: boolean;
  /** --setup-native / --no-setup-native; undefined when neither was given. */
  setupNative?: boolean;
}

async function runEmbedded(presetOrFile: string, options: RunOptions) {
  const path = await import('node:path');
  const { NativeConnection } = await import('@temporalio/worker');
  const { defaultPayloadConverter } = await import('@temporalio/common');
  const { openDatabase, findStudy, upsertStudy, trialOutcomes, studySummary, formatRows, saveSpecDocument, loadSpecDocument } = await import('../../../db/index.ts');
  const { dbResultsStore } = await import('../../../activities/db-store.ts');
  const { startWorkers, installQuietRuntime } = await import('../../../infra/worker.ts');
  const { startDevServer } = await import('../../../infra/temporal.ts');
  const { connectClient, studyState, diagnoseStudy, failureMessage, loadStudySpec, startStudy, temporalStateDir, localStateDir } = await import('../../../infra/client.ts');
  const { checkStudyRerun } = await import('../../spec/study-change.ts');
  const { progressQuery } = await import('../../../workflows/study.ts');
  const { parseStudySpec } = await import('../../spec/study.ts');
  const { InvalidSpecError } = await import('../../spec/strict.ts');
  type StudySpec = import('../../spec/study-model.ts').StudySpec;

  // Ctrl-C at any point, start-up included, ends in an orderly shutdown that leaves the study resumable.
  let interrupted = false;
  let finish: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => (finish = resolve));
  const onSigint = () => {
    if (interrupted) return;
    interrupted = true;
    console.error('[mmsweep run] Ctrl-C: stopping; the study stays resumable — run the same command again to continue');
    finish();
  };
  process.on('SIGINT', onSigint);

  const split = resolveCpuSplit({ slots: options.slots, threadsPerSlot: options.threadsPerSlot });
  const slots = split.slots;
  const runnerSettings = await import('../../../activities/common.ts');
  // A bad MMSWEEP_SPARE_RUNNERS or MMSWEEP_RUNNER_TRIALS exits 2 now, before anything starts.
  runnerSettings.spareRunnersFromEnv(slots);
  runnerSettings.trialsPerRunnerFromEnv();
  const nativeOffer = await import('../native-offer.ts');
  const nativePreference = nativeOffer.nativeSetupPreference(options.setupNative); // a bad MMSWEEP_SETUP_NATIVE exits 2 now
  const spec = parseStudySpec({ ...loadStudySpec(presetOrFile), concurrency: slots });
  const log = (m: string) => console.error(`[mmsweep run] ${m}`);
  // U3: one `mmsweep run` per home. A second one would start a second Temporal dev server on the same state file
  // and, if it attached to the first one's instead, be left without it when the first is stopped.
  const homeLock = takeRunLock(localStateDir(), spec.name);
  const nativeMissing = await announceBackends(spec, log);
  await offerNativeBackend(nativeMissing, nativePreference, log);

  // The study's stored spec decides first (W2): a changed spec under the same name is refused before anything starts.
  const database = await openDatabase();
  let additions: string[];
  try {
    const stored = await findStudy(database.db, spec.name);
    additions = checkStudyRerun(stored ? (stored.spec as StudySpec) : null, spec, { extend: options.extend }).additions;
    const { codeVersion } = await import('../../../infra/provenance.ts');
    await upsertStudy(database.db, { id: spec.name, name: spec.name, preset: spec.preset, spec: stored?.spec ?? spec, codeVersion: codeVersion() });
  } catch (error) {
    await database.close();
    throw error;
  }
  const server = await startDevServer({ stateDir: temporalStateDir(), log, detached: options.keepServer });
  // Whatever happens below (a study that cannot register, a lost server), the worker, the database and the dev
  // server are stopped before the error is reported.
  const cleanups: Array<() => Promise<unknown>> = [];
  try {
    log(`Temporal ${server.address} — UI ${server.uiAddress ?? '(none)'}  (workflow mmsweep-study-${spec.name})`);
    cleanups.unshift(() => database.close());
    log(`database ${database.displayName}`);
    const target = { address: server.address, namespace: server.namespace };
    installQuietRuntime();
    const connection = await NativeConnection.connect({ address: server.address });
    cleanups.unshift(() => connection.close());
    const workers = await startWorkers({
      target,
      connection,
      store: dbResultsStore(database.db, database.displayName),
      queueClass: spec.queue,
      slots,
      activity: {
        checkpointRoot: path.join(localStateDir(), 'checkpoints'),
        uploadCheckpoints: false,
        env: threadEnv(split),
        ...(process.env.MMSWEEP_RUNNER ? { runnerCommand: process.env.MMSWEEP_RUNNER.split(' ').filter(Boolean) } : {}),
      },
    });
    cleanups.unshift(() => workers.shutdown());
    // The client's connection is left to process exit: closing it under a pending result() long-poll (Ctrl-C)
    // makes the SDK's retry timer throw on a closed channel.
    const client = await connectClient(target);
    const specStore = { save: (c: string) => saveSpecDocument(database.db, c), load: (sha: string) => loadSpecDocument(database.db, sha) };
    if (additions.length > 0 && (await studyState(client, spec.name)) === 'running') {
      throw new InvalidSpecError(
        `study "${spec.name}" is still running, so its additions would be ignored; let it finish (or stop it) and run again with --extend`,
        [],
      );
    }
    const { handle, attached } = await startStudy(client, spec, { specStore });
    log(`${attached ? 'continuing' : 'started'} study ${spec.name}: ${describeSplit(split)}`);

    const bars = await progressView(options.progress, log);
    let lastProblems = '';
    let lastRegistering = -1;
    const poll = async () => {
      try {
        const progress = await handle.query(progressQuery);
        const description = await handle.describe();
        const perTrial = new Map<string, { epoch: number; total: number }>();
        for (const activity of description.raw.pendingActivities ?? []) {
          const payload = activity.heartbeatDetails?.payloads?.[0];
          if (!payload || activity.activityType?.name !== 'trainTrial') continue;
          const beat = defaultPayloadConverter.fromPayload(payload) as { trialKey: string; epoch: number | null; totalEpochs: number | null };
          perTrial.set(beat.trialKey, { epoch: beat.epoch ?? 0, total: beat.totalEpochs ?? 0 });
        }
        // A control step that keeps failing (database unreachable, …) is said at once, not after the last retry.
        const diagnosis = diagnoseStudy(description, (p) => defaultPayloadConverter.fromPayload(p as never));
        const problems = diagnosis.problems.join('\n');
        if (problems && problems !== lastProblems) log(`study ${spec.name} is stuck: ${problems}`);
        lastProblems = problems;
        if (diagnosis.registering && diagnosis.registering.registering !== lastRegistering) {
          lastRegistering = diagnosis.registering.registering;
          log(`registering trials: ${diagnosis.registering.registering} of ≤ ${diagnosis.registering.of}`);
        }
        bars.update(progress.done, progress.total, progress.failed, progress.status, perTrial);
      } catch {
        // The workflow may be between runs (continue-as-new) or finished: the next poll catches up.
      }
    };
    const timer = setInterval(() => void poll(), 1000);
    let outcome;
    try {
      outcome = await Promise.race([handle.result().then((o) => o), stopped.then(() => null)]);
    } catch (error) {
      throw new Error(`study ${spec.name} failed: ${failureMessage(error)}`);
    } finally {
      clearInterval(timer);
      await poll();
      bars.stop();
    }

    if (outcome) {
      const rows = await trialOutcomes(database.db, spec.name, REPORTED_TRIALS);
      const columns = ['label', 'lr', 'l1', 'alpha', 'q', 'seed', 'test_acc', 'd_util', 'd_speed', 'r_f', 'best_epoch', 'epochs', 'diverged'].filter(
        (c) => rows.some((r) => (r as unknown as Record<string, unknown>)[c] !== null && (r as unknown as Record<string, unknown>)[c] !== undefined),
      );
      process.stdout.write(`\nStudy ${spec.name}: ${outcome.counts.done}/${outcome.counts.total} done, ${outcome.counts.failed} failed, ${outcome.counts.diverged} diverged\n\n`);
      process.stdout.write(formatRows(columns, rows as unknown as Record<string, unknown>[], 'table'));
      if (outcome.counts.done > rows.length) process.stdout.write(`… the first ${rows.length} of ${outcome.counts.done} trials; all of them: mmsweep results / mmsweep export\n`);
      const summary = await studySummary(database.db, spec.name, ['algorithm', 'modalities', 'architecture']);
      process.stdout.write(`\nPer condition:\n${formatRows(['algorithm', 'modalities', 'architecture', 'n', 'acc_f_mean', 'acc_f_std', 'test_acc_mean', 'd_util_mean', 'd_speed_mean'], summary as unknown as Record<string, unknown>[], 'table')}`);
    }
  } finally {
    for (const cleanup of cleanups) await cleanup().catch(() => undefined);
    if (options.keepServer || !server.started) log(`Temporal dev server left running at ${server.address} (UI ${server.uiAddress})`);
    else await server.stop();
  }
  homeLock.release();
  process.off('SIGINT', onSigint);
  // The client connection left open above (and its pending result() long-poll) would keep the process alive after
  // Ctrl-C indefinitely: everything worth keeping is stopped and closed by now, so leave.
  if (interrupted) process.exit(130);
}

/** Refused while another run uses this home (exit 2, naming the home, the holder's pid and its study). */
export class HomeBusyError extends Error {
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = 'HomeBusyError';
  }
}

function takeRunLock(home: string, study: string): { release(): void } {
  mkdirSync(home, { recursive: true });
  const file = pathJoin(home, 'run.lock');
  const lock = takePidLock(file, { study });
  if ('release' in lock) return lock;
  const { pid, detail } = lock.holder;
  const what = typeof detail.study === 'string' ? ` (study ${detail.study}${typeof detail.since === 'string' ? `, since ${detail.since}` : ''})` : '';
  throw new HomeBusyError(
    `another mmsweep run, process ${pid}${what}, is using MMSWEEP_HOME ${home}. Wait for it to finish or stop it ` +
      `with Ctrl-C, or give this run its own home: MMSWEEP_HOME=<another directory> mmsweep run … ` +
      `(the lock is ${file}; it is taken over by itself once process ${pid} has exited).`,
  );
}

/** Trials listed by name at the end of a run; the per-condition summary covers all of them. */
const REPORTED_TRIALS = 200;

/**
 * Resolve the backend(s) the study's trials request, here once, the way each runner will (same machine, same
 * MMSWEEP_BACKEND), and say which trains; a forced backend that cannot start stops the run before any trial fails.
 */
/** Say which backend the study's trials train on; true when one of them falls back because native is missing. */
async function announceBackends(spec: import('../../spec/study-model.ts').StudySpec, log: (m: string) => void): Promise<boolean> {
  const { studyTemplates } = await import('../../spec/study.ts');
  const requests = new Set<import('../../spec/trial.ts').BackendRequest>();
  // One trial per grid point is enough (the backend is no seed axis): no 10⁶-trial expansion here.
  for (const { template } of studyTemplates(spec)) if (template.kind !== 'noop') requests.add(template.backend);
  if (requests.size === 0) return false;
  const { initBackend } = await import('../../backend/index.ts');
  const { backendNotice, nativeMissing } = await import('../../backend/notice.ts');
  let missing = false;
  for (const request of requests) {
    const info = await initBackend(request);
    const lines = backendNotice(info);
    log(`trials${requests.size > 1 ? ` requesting '${request}'` : ''} train on ${lines[0]}`);
    for (const line of lines.slice(1)) log(line);
    missing ||= nativeMissing(info);
  }
  return missing;
}

/**
 * The native backend is missing: build it now if the user said so (--setup-native), or ask on a terminal when the
 * registries answer (src/cli/native-offer.ts). Each trial's runner is a new process, so trials started after the
 * build train on it.
 */
async function offerNativeBackend(missing: boolean, preference: boolean | undefined, log: (m: string) => void): Promise<void> {
  const offer = await import('../native-offer.ts');
  const plan = offer.planNativeOffer({
    nativeMissing: missing,
    preference,
    interactive: Boolean(process.stdin.isTTY && process.stderr.isTTY),
    ci: offer.runningInCi(),
  });
  const outcome = await offer.offerNativeSetup(plan, {
    log,
    ask: (question, timeoutMs) => offer.askYesNo(`[mmsweep run] ${question}`, timeoutMs),
    reachable: () => offer.registriesReachable(offer.setupRegistries()),
    build: async () => (await import('./setup.ts')).runNativeSetup(),
  });
  if (outcome === 'built') log('the native backend is built: the trials train on it (each trial starts its own runner process)');
}

interface ProgressView {
  update(done: number, total: number, failed: number, status: string, trials: Map<string, { epoch: number; total: number }>): void;
  stop(): void;
}

async function progressView(enabled: boolean, log: (m: string) => void): Promise<ProgressView> {
  if (!enabled || !process.stderr.isTTY) {
    let last = '';
    return {
      update(done, total, failed, status, trials) {
        const line = `${status}: ${done}/${total} done, ${failed} failed, running ${[...trials].sort(([a], [b]) => a.localeCompare(b)).map(([k, t]) => `${k.slice(0, 8)}@${t.epoch}/${t.total}`).join(' ') || '-'}`;
        if (line !== last) log(line);
        last = line;
      },
      stop() {},
    };
  }
  const { MultiBar, Presets } = await import('cli-progress');
  const multi = new MultiBar({ format: ' {name} [{bar}] {value}/{total} {info}', hideCursor: true, clearOnComplete: false }, Presets.shades_classic);
  const study = multi.create(1, 0, { name: 'study ', info: '' });
  const trialBars = new Map<string, ReturnType<typeof multi.create>>();
  return {
    update(done, total, failed, status, trials) {
      study.setTotal(Math.max(total, 1));
      study.update(done, { info: `${status}${failed ? `, ${failed} failed` : ''}` });
      for (const [key, bar] of trialBars) if (!trials.has(key)) { multi.remove(bar); trialBars.delete(key); }
      for (const [key, t] of trials) {
        let bar = trialBars.get(key);
        if (!bar) trialBars.set(key, (bar = multi.create(Math.max(t.total, 1), 0, { name: key.slice(0, 6), info: 'epochs' })));
        bar.setTotal(Math.max(t.total, 1));
        bar.update(t.epoch);
      }
    },
    stop() {
      multi.stop();
    },
  };
}
