import { Context, ApplicationFailure, CancelledFailure } from '@temporalio/activity';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { EXIT_CODES, type RunnerEvent } from '../src/runner/protocol.ts';
import type { CheckpointRef, EpochMetrics, TrialResult } from '../src/spec/contracts.ts';
import type { ResultsStore } from './store.ts';
import { isAlive, signalGroup, startRunner, type RunnerHandle } from './runner-process.ts';
import { bundledRunnerPrefix } from './runner-bundle.ts';
import { RunnerPool, type RunnerProfile } from './runner-pool.ts';
import { backendRequestSchema } from '../src/spec/trial.ts';
import { checkpointPath, latestCheckpoint } from '../src/train/checkpoint.ts';
import { FAILURE_TYPES, repoRoot, storeRetrier, type ActivityConfig } from './common.ts';
import { slotEnvironment } from './gpu-slots.ts';

/** The trainTrial activity: one trial attempt in a runner child process, its events written to the store. */

export interface TrainTrialInput {
  studyId: string;
  trialKey: string;
}

/** Heartbeat details: small pointers only, never weights. */
export interface TrainHeartbeat {
  trialKey: string;
  attempt: number;
  epoch: number | null;
  totalEpochs: number | null;
  checkpoint: Pick<CheckpointRef, 'path' | 'epoch' | 'sha256'> | null;
}

export type CheckpointSource = 'none' | 'heartbeat' | 'local' | 'database';

export interface TrainTrialOutput {
  trialKey: string;
  outcome: 'done' | 'diverged' | 'already-done';
  /** The store's attempt number (fencing token) and Temporal's attempt of this activity execution. */
  attempt: number;
  activityAttempt: number;
  resumedFromEpoch: number | null;
  checkpointSource: CheckpointSource;
  epochs: number;
  /**
   * Where the attempt's time went (a few small numbers, for `npm run bench -- orchestration`): `startedAtMs` is the
   * wall clock when the activity began, each other entry the milliseconds from then to the end of that phase.
   */
  timings?: TrialTimings;
}

export interface TrialTimings {
  startedAtMs: number;
  /** Trial row read, attempt claimed, recorded epochs known. */
  claimed?: number;
  /** Checkpoint directory, spec file and resume point prepared. */
  prepared?: number;
  /** A runner ready for the trial (a spare, or a fresh one loaded). */
  runnerReady?: number;
  /** The runner's first event (it has read its spec). */
  firstEvent?: number;
  /** The runner has exited and every event line was read. */
  exited?: number;
  /** The epoch writes have reached the store. */
  writesDone?: number;
  /** The result row is written. */
  resultRecorded?: number;
}

const SPEC_FILE = 'spec.json';
const PID_FILE = 'runner.pid';

async function sha256File(file: string): Promise<{ data: Buffer; sha256: string }> {
  const data = await readFile(file);
  return { data, sha256: createHash('sha256').update(data).digest('hex') };
}

async function writeAtomic(file: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, data);
  await rename(tmp, file);
}

export function createTrainActivities(store: ResultsStore, config: ActivityConfig) {
  const freeSlots = Array.from({ length: Math.max(1, config.gpus.length) }, (_, i) => i);
  const withStore = storeRetrier(config, store.location);
  // The default runner (the bundle) is started ahead of its trial; a custom MMSWEEP_RUNNER command is started per trial.
  const pool = config.runnerCommand
    ? null
    : new RunnerPool({
        capacity: config.spareRunners,
        // Without spares a runner is never kept between trials either.
        trialsPerRunner: config.spareRunners > 0 ? config.trialsPerRunner : 1,
        log: (message) => process.stderr.write(`mmsweep worker ${config.workerId}: ${message}\n`),
      });

  /**
   * Where to resume from: the newest checkpoint this machine has (the previous attempt's heartbeat names it when
   * the attempt ran here), unless the database holds a newer one (the trial ran elsewhere since). A checkpoint
   * from the database is written into the local directory, where the runner's `--resume` finds it.
   */
  async function prepareResume(
    key: string,
    dir: string,
    previous: TrainHeartbeat | undefined,
    recorded: number,
  ): Promise<{ source: CheckpointSource; epoch: number | null }> {
    // A checkpoint newer than the last epoch row (`recorded`) was written by an attempt that died before recording
    // that epoch: resuming from it would leave a hole in the learning curve. Drop it; the epoch is trained again.
    for (const name of readdirSync(dir)) {
      const match = /^epoch-(\d+)\.ckpt$/.exec(name);
      const file = path.join(dir, name);
      if (match && checkpointPath(dir, Number(match[1])) === file && Number(match[1]) > recorded) rmSync(file, { force: true });
    }
    const local = latestCheckpoint(dir);
    const heartbeatEpoch = Math.min(previous?.checkpoint?.epoch ?? 0, recorded);
    if (local && local.epoch >= heartbeatEpoch) {
      const named = previous?.checkpoint && path.resolve(previous.checkpoint.path) === path.resolve(local.path);
      return { source: named ? 'heartbeat' : 'local', epoch: local.epoch };
    }
    // No epoch recorded (a first attempt): no stored checkpoint can qualify (it must be ≤ recorded); spare the query.
    if (recorded === 0) return { source: 'none', epoch: null };
    const stored = await withStore('loadLatestCheckpoint', () => store.loadLatestCheckpoint(key));
    if (stored && stored.epoch > (local?.epoch ?? 0) && stored.epoch <= recorded) {
      const actual = createHash('sha256').update(stored.data).digest('hex');
      if (actual !== stored.sha256) {
        throw ApplicationFailure.retryable(`checkpoint of trial ${key} epoch ${stored.epoch} in the database is corrupt (sha256 mismatch)`);
      }
      await writeAtomic(checkpointPath(dir, stored.epoch), stored.data);
      return { source: 'database', epoch: stored.epoch };
    }
    if (local) return { source: 'local', epoch: local.epoch };
    return { source: 'none', epoch: null };
  }

  async function trainTrial({ studyId, trialKey }: TrainTrialInput): Promise<TrainTrialOutput> {
    const context = Context.current();
    const activityAttempt = context.info.attempt;
    const startedAtMs = Date.now();
    const timings: TrialTimings = { startedAtMs };
    const mark = (phase: Exclude<keyof TrialTimings, 'startedAtMs'>) => void (timings[phase] ??= Date.now() - startedAtMs);
    // One round trip: the attempt claimed (the store's fencing token, growing across retries, retry-failed and
    // restarted studies alike), the spec and the highest recorded epoch read.
    const begun = await withStore('beginTrialAttempt', () => store.beginTrialAttempt(trialKey, config.workerId));
    if (!begun) throw ApplicationFailure.nonRetryable(`trial ${trialKey} of study ${studyId} is not registered`, FAILURE_TYPES.unknownTrial);
    if (begun.state === 'done') {
      return { trialKey, outcome: 'already-done', attempt: begun.attempt, activityAttempt, resumedFromEpoch: null, checkpointSource: 'none', epochs: 0 };
    }
    const trial = begun;
    const attempt = begun.attempt;
    mark('claimed');
    // Checking the runner bundle stats every source it was built from: overlap it with the store calls below.
    const runnerPrefix = pool ? bundledRunnerPrefix() : null;
    runnerPrefix?.catch(() => undefined);

    const dir = path.join(config.checkpointRoot, trialKey);
    await mkdir(dir, { recursive: true });
    // A runner orphaned by a worker that died (kill -9) may still be writing here: stop it first.
    const pidFile = path.join(dir, PID_FILE);
    if (existsSync(pidFile)) {
      const stalePid = Number(await readFile(pidFile, 'utf8'));
      if (Number.isInteger(stalePid) && stalePid > 0 && isAlive(stalePid)) signalGroup(stalePid, 'SIGKILL');
    }
    const specFile = path.join(dir, SPEC_FILE);
    await writeAtomic(specFile, JSON.stringify(trial.spec, null, 2));
    const resume = await prepareResume(trialKey, dir, context.info.heartbeatDetails as TrainHeartbeat | undefined, begun.recordedEpoch);
    mark('prepared');
    let beat: TrainHeartbeat = { trialKey, attempt, epoch: resume.epoch, totalEpochs: null, checkpoint: null };
    context.heartbeat(beat);

    const slot = freeSlots.shift() ?? 0;
    const env = slotEnvironment(config.gpus, slot, { ...process.env, ...config.env });

    let result: TrialResult | null = null;
    let resumedFromEpoch: number | null = null;
    let lastEpoch = resume.epoch ?? 0;
    // Store writes happen in event order; a failure is kept and rethrown after the runner is stopped.
    let writes: Promise<void> = Promise.resolve();
    let writeError: unknown = null;
    let runner: RunnerHandle | null = null;
    const enqueue = (what: string, fn: () => Promise<void>) => {
      writes = writes.then(() =>
        writeError
          ? undefined
          : withStore(what, fn).catch((e) => {
              writeError = e;
              void runner?.kill(config.killGraceMs); // the attempt cannot record its work: stop training for nothing
            }),
      );
    };
    // The discard of the start event and the epoch rows go to the store together: what arrives while the previous
    // write is in flight, or in the same burst of event lines, joins one write (a short trial's start and epochs
    // cost one round trip instead of two transactions).
    type Progress = { discardAfter: number | null; epochs: EpochMetrics[] };
    let progress: Progress | null = null;
    const recordProgress = (change: (p: Progress) => void) => {
      if (progress) return change(progress);
      change((progress = { discardAfter: null, epochs: [] }));
      let batch: Progress | null = null;
      enqueue('recordProgress', () => {
        // Taken when its turn comes, and kept for the store's retries.
        if (!batch) [batch, progress] = [progress!, null];
        return store.recordProgress(trialKey, attempt, batch);
      });
    };

    const onEvent = (event: RunnerEvent) => {
      mark('firstEvent');
      switch (event.type) {
        case 'start': {
          resumedFromEpoch = event.resumedFromEpoch;
          beat = { ...beat, totalEpochs: event.totalEpochs };
          // Epoch rows past the resume point belong to a lost attempt: the runner writes them again.
          const from = event.resumedFromEpoch ?? 0;
          recordProgress((p) => void (p.discardAfter = from));
          break;
        }
        case 'progress':
          break;
        case 'epoch': {
          const metrics: EpochMetrics = event.metrics;
          const ref = event.checkpoint;
          lastEpoch = metrics.epoch;
          beat = { ...beat, epoch: metrics.epoch, checkpoint: { path: ref.path, epoch: ref.epoch, sha256: ref.sha256 } };
          recordProgress((p) => void p.epochs.push(metrics));
          if (config.uploadCheckpoints) {
            enqueue('saveCheckpoint', async () => {
              const { data, sha256 } = await sha256File(ref.path);
              if (sha256 !== ref.sha256) throw new Error(`checkpoint ${ref.path} changed after the runner reported it`);
              await store.saveCheckpoint(trialKey, attempt, ref.epoch, data);
            });
          }
          break;
        }
        case 'result':
          result = event.result;
          break;
      }
      context.heartbeat(beat);
    };

    // --resume with an empty directory starts fresh, so it is always passed: whatever checkpoint is there counts.
    const args = ['--spec', specFile, '--checkpoint-dir', dir, '--resume', '--events', '--json'];
    const onCancel = () => void runner?.kill(config.killGraceMs);
    context.cancellationSignal.addEventListener('abort', onCancel);
    const timer = setInterval(() => context.heartbeat(beat), config.heartbeatIntervalMs);
    let exit;
    let profile: RunnerProfile | null = null;
    try {
      if (pool) {
        profile = { command: await runnerPrefix!, preload: preloadFor(trial.spec), env, cwd: repoRoot };
        const acquired = await pool.acquire(profile, {
          signal: context.cancellationSignal,
          onRunner: (r) => {
            runner = r;
            return writeAtomic(pidFile, String(r.pid));
          },
          onReady: (r) => {
            runner = r;
            mark('runnerReady');
            r.setEventListener(onEvent);
            if (context.cancellationSignal.aborted) void r.kill(config.killGraceMs);
            else if (!r.hasExited()) r.sendTrial(['train', ...args]);
          },
        });
        runner = acquired.runner;
      } else {
        runner = startRunner({ command: config.runnerCommand!, args, env, cwd: repoRoot, onEvent });
        await writeAtomic(pidFile, String(runner.pid));
      }
      exit = await runner.trialEnd();
      mark('exited');
    } finally {
      clearInterval(timer);
      context.cancellationSignal.removeEventListener('abort', onCancel);
      freeSlots.push(slot);
    }
    await writes;
    mark('writesDone');
    if (exit.reusable) {
      // The runner takes another trial: from here on it is not this trial's, nor is the pid file that names it (a
      // retry of this trial kills the pid it finds there). Only once every write is done: a failed write kills it.
      if (pool && profile && !writeError && !context.cancellationSignal.aborted) {
        await rm(pidFile, { force: true });
        pool.giveBack(profile, runner);
      } else void runner.kill(config.killGraceMs);
    }

    if (context.cancellationSignal.aborted) {
      const details = context.cancellationDetails;
      if (details?.workerShutdown) {
        // Ctrl-C / worker stop: fail this attempt so the next worker retries it from the checkpoint at once.
        throw ApplicationFailure.retryable(`worker ${config.workerId} shut down during trial ${trialKey}`, 'WorkerShutdown');
      }
      throw new CancelledFailure(`trial ${trialKey} cancelled; runner process group ${runner.pid} killed`);
    }
    if (writeError) throw writeError;

    const stderr = exit.stderrTail ? `\n${exit.stderrTail}` : '';
    if (exit.code === EXIT_CODES.invalidSpec) {
      throw ApplicationFailure.nonRetryable(`trial ${trialKey}: the runner rejected the spec${stderr}`, FAILURE_TYPES.invalidSpec);
    }
    if (exit.code === EXIT_CODES.missingData) {
      throw ApplicationFailure.nonRetryable(`trial ${trialKey}: dataset missing${stderr}`, FAILURE_TYPES.missingData);
    }
    const finalResult = result as TrialResult | null;
    if ((exit.code === EXIT_CODES.success || exit.code === EXIT_CODES.diverged) && finalResult) {
      await withStore('recordResult', () => store.recordResult(trialKey, attempt, finalResult));
      mark('resultRecorded');
      return {
        trialKey,
        outcome: finalResult.diverged ? 'diverged' : 'done',
        attempt,
        activityAttempt,
        resumedFromEpoch,
        checkpointSource: resumedFromEpoch === null ? 'none' : resume.source,
        epochs: lastEpoch,
        timings,
      };
    }
    const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
    const missing = exit.code === EXIT_CODES.success || exit.code === EXIT_CODES.diverged ? ' without a result event' : '';
    throw ApplicationFailure.retryable(`trial ${trialKey}: the runner ${how}${missing}${stderr}`, 'RunnerCrashed');
  }

  if (pool) poolOf.set(trainTrial, pool);
  return { trainTrial };
}

const poolOf = new WeakMap<object, RunnerPool>();

/** The runner pool of a trainTrial activity (tests and diagnostics). */
export function runnerPoolOf(trainTrial: object): RunnerPool | undefined {
  return poolOf.get(trainTrial);
}

/** Stop the spare runners of a trainTrial activity (worker shutdown; they would die with the worker anyway). */
export async function closeSpareRunners(trainTrial: object): Promise<void> {
  await runnerPoolOf(trainTrial)?.close();
}

/** What a spare runner loads ahead of the trial: its backend request; a spec with none valid gets a bare runner. */
function preloadFor(spec: { kind?: string; backend?: unknown }): string {
  if (spec.kind === 'noop') return 'none';
  return backendRequestSchema.safeParse(spec.backend).success ? (spec.backend as string) : 'none';
}
