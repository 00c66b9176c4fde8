import { ApplicationFailure } from '@temporalio/activity';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { maskSecrets } from '../src/util/secrets.ts';
import { SupersededAttemptError } from './store.ts';

/** What every activity shares: the worker's configuration and the retrying store wrapper. */

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export interface ActivityConfig {
  /**
   * argv prefix of the trial runner; the activity appends `--spec … --checkpoint-dir … [--resume] --events --json`.
   * Default: `mmsweep train` from the prebuilt runner bundle (activities/runner-bundle.ts).
   */
  runnerCommand?: string[];
  /** Local checkpoint directories live under `<checkpointRoot>/<trialKey>/`. */
  checkpointRoot: string;
  workerId: string;
  /** GPU ids, one per slot (CUDA_VISIBLE_DEVICES of the runner). Empty on CPU workers. */
  gpus: string[];
  /** Copy every epoch checkpoint into the database, so a worker on another machine can resume the trial. */
  uploadCheckpoints: boolean;
  /** Heartbeat at least this often while the runner is silent (a long epoch), so cancellation gets through. */
  heartbeatIntervalMs: number;
  /** SIGTERM → SIGKILL grace when a runner is cancelled. */
  killGraceMs: number;
  /** How long store writes are retried (e.g. across a database restart) before the attempt fails. */
  storeRetryMs: number;
  /** Extra environment for the runner. */
  env: NodeJS.ProcessEnv;
  /** How long a control activity (registration, paging) retries the store before its attempt fails and says why. */
  controlStoreRetryMs: number;
  /**
   * Spare runners kept started and loaded ahead of their trials (activities/runner-pool.ts): one per slot by default
   * (`mmsweep worker` and `run` set it), 0 with MMSWEEP_SPARE_RUNNERS=0 (each trial starts its runner, as before).
   */
  spareRunners: number;
  /** Trials one runner process takes one after another (MMSWEEP_RUNNER_TRIALS; activities/runner-pool.ts). */
  trialsPerRunner: number;
  /** Largest study (trials before shared ones merge) a worker registers; larger ones fail at once, naming the limit. */
  maxStudyTrials: number;
  /**
   * Trials per registration batch (one transaction). Larger batches touch each index page of a big study fewer
   * times: at 500,000 trials the server's CPU per trial was 25 µs with 5,000 and 20–22 µs with 25,000–50,000.
   */
  registrationBatch: number;
}

export function defaultActivityConfig(overrides: Partial<ActivityConfig> = {}): ActivityConfig {
  return {
    checkpointRoot: path.resolve('.mmsweep', 'checkpoints'),
    workerId: `${os.hostname()}:${process.pid}`,
    gpus: [],
    uploadCheckpoints: true,
    heartbeatIntervalMs: 5_000,
    killGraceMs: 3_000,
    storeRetryMs: 60_000,
    env: {},
    controlStoreRetryMs: 10_000,
    maxStudyTrials: maxStudyTrialsFromEnv(),
    spareRunners: spareRunnersFromEnv(1),
    trialsPerRunner: trialsPerRunnerFromEnv(),
    registrationBatch: 25_000,
    ...overrides,
  };
}

/** `MMSWEEP_MAX_STUDY_TRIALS` (default 10⁷, ten times the largest study tested; positions are 32-bit). */
export function maxStudyTrialsFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.MMSWEEP_MAX_STUDY_TRIALS;
  if (raw === undefined || raw === '') return 10_000_000;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 2 ** 31 - 1) {
    throw new Error(`MMSWEEP_MAX_STUDY_TRIALS must be an integer from 1 to ${2 ** 31 - 1}, got "${raw}"`);
  }
  return n;
}

/** Spare runners: `perSlot` unless MMSWEEP_SPARE_RUNNERS=0 turns them off (e.g. memory is short). */
export function spareRunnersFromEnv(perSlot: number, env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.MMSWEEP_SPARE_RUNNERS;
  if (raw === undefined || raw === '' || raw === '1') return perSlot;
  if (raw === '0') return 0;
  // Invalid input: the CLI exits with 2 and this message.
  throw Object.assign(new Error(`MMSWEEP_SPARE_RUNNERS must be 0 (no spare runners) or 1 (one per slot, the default), got "${raw}"`), { exitCode: 2 });
}

/**
 * Trials one runner process takes before it exits: MMSWEEP_RUNNER_TRIALS, default 20; 1 starts a process for every
 * trial. A runner stops earlier after a trial that did not end with a result (or divergence) or that left tensors
 * alive (src/cli/warm.ts), so a failure never carries over into the next trial's process.
 */
export function trialsPerRunnerFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.MMSWEEP_RUNNER_TRIALS;
  if (raw === undefined || raw === '') return 20;
  const n = Number(raw);
  if (!/^[0-9]+$/.test(raw) || !Number.isSafeInteger(n) || n < 1 || n > 10_000) {
    throw Object.assign(new Error(`MMSWEEP_RUNNER_TRIALS must be a whole number from 1 (a process per trial) to 10000, got "${raw}"`), { exitCode: 2 });
  }
  return n;
}

/** Non-retryable failure types (Temporal stops retrying at once). */
export const FAILURE_TYPES = {
  invalidSpec: 'InvalidSpec',
  missingData: 'MissingData',
  unknownTrial: 'UnknownTrial',
  superseded: 'SupersededAttempt',
  studyTooLarge: 'StudyTooLarge',
  specDocumentMissing: 'SpecDocumentMissing',
} as const;

/** Store errors that no retry can fix. */
const PERMANENT_STORE_ERRORS = new Set(['UnknownStudyError', 'UnknownTrialError', 'InvalidSpecError', 'SpecDocumentError']);

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export type WithStore = <T>(what: string, fn: () => Promise<T>, retryMs?: number) => Promise<T>;

/** Driver codes of a database that cannot be reached (as opposed to one that refuses a query). */
const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE',
  'CONNECT_TIMEOUT', 'CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED',
]);

/** The errors under drizzle's wrapper, outermost first (its own message carries the whole query and parameters). */
function errorChain(error: unknown): Error[] {
  const chain: Error[] = [];
  for (let e: unknown = error; e instanceof Error && chain.length < 6; e = (e as { cause?: unknown }).cause) chain.push(e);
  return chain;
}

/** True when the store's error says the database cannot be reached: refused, reset, timed out, shutting down. */
export function isUnreachableStoreError(error: unknown): boolean {
  return errorChain(error).some((e) => {
    const code = (e as { code?: unknown }).code;
    // SQLSTATE class 08 (connection exception), 57P01–57P03 (admin shutdown, crash shutdown, cannot connect now).
    return typeof code === 'string' && (UNREACHABLE_CODES.has(code) || /^08[0-9A-Z]{3}$/.test(code) || /^57P0[123]$/.test(code));
  });
}

/**
 * A store error as one short line for a failure message: the innermost (driver's) message, not drizzle's
 * "Failed query: … params: …" (megabytes for a registration batch, far over what a failure should carry),
 * passwords masked, cut to 300 characters.
 */
export function storeErrorText(error: unknown): string {
  const chain = errorChain(error);
  const innermost = chain.at(-1);
  const text = innermost ? innermost.message || innermost.name : String(error);
  const masked = maskSecrets(text.replace(/\s+/g, ' ').trim());
  return masked.length > 300 ? `${masked.slice(0, 300)}…` : masked;
}

/**
 * Retry a store call across transient outages (a database restart), bounded in time (default `storeRetryMs`).
 * `location` (the database URL, password masked) names the store in the message of an outage that outlasts it.
 */
export function storeRetrier(config: ActivityConfig, location?: string): WithStore {
  return async function withStore<T>(what: string, fn: () => Promise<T>, retryMs = config.storeRetryMs): Promise<T> {
    const deadline = Date.now() + retryMs;
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (error) {
        if (error instanceof SupersededAttemptError) {
          throw ApplicationFailure.nonRetryable(error.message, FAILURE_TYPES.superseded);
        }
        if (PERMANENT_STORE_ERRORS.has((error as Error).name)) {
          throw ApplicationFailure.nonRetryable(`results store: ${what}: ${(error as Error).message}`, (error as Error).name);
        }
        if (Date.now() > deadline) {
          if (isUnreachableStoreError(error)) {
            throw ApplicationFailure.retryable(
              `results store: ${what}: cannot reach the database${location ? ` ${location}` : ''} for ${(retryMs / 1000).toFixed(retryMs % 1000 ? 1 : 0)} s ` +
                `(${storeErrorText(error)}). Start the Postgres server, or give this worker the right DATABASE_URL; ` +
                'the activity is retried and keeps what it had committed',
              'StoreUnavailable',
            );
          }
          throw ApplicationFailure.retryable(`results store: ${what} failed: ${storeErrorText(error)}`, 'StoreUnavailable');
        }
        await sleep(Math.min(250 * 2 ** Math.min(attempt, 4), 4_000));
      }
    }
  };
}
