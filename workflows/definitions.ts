import { defineQuery, defineSignal } from '@temporalio/workflow';
import type { StudyCounts } from '../activities/index.ts';
import type { StudyExtension, StudySpec } from '../src/spec/study-model.ts';

/** What the study workflow shares with its clients and its legacy code path: inputs, outcome, signals, query. */

export interface StudyTimeouts {
  /** A trial attempt fails when its worker is silent this long (worker crash, kill -9, lost machine). */
  heartbeatTimeoutMs: number;
  /** Upper bound of one attempt. */
  startToCloseTimeoutMs: number;
  retryInitialIntervalMs: number;
  retryMaximumIntervalMs: number;
}

export const DEFAULT_TIMEOUTS: StudyTimeouts = {
  heartbeatTimeoutMs: 2 * 60_000,
  startToCloseTimeoutMs: 7 * 24 * 3_600_000,
  retryInitialIntervalMs: 5_000,
  retryMaximumIntervalMs: 5 * 60_000,
};

/** The fields of a StudySpec the workflow itself needs (the rest stays in the stored document). */
export interface StudyHeader {
  name: string;
  queue: string;
  concurrency: number;
  maxAttempts: number;
}

export interface StudyWorkflowInput {
  /** The spec inline: small specs (clients without database access send it so) and histories from before paging. */
  spec?: StudySpec;
  /** Or the header and the sha256 of the spec document stored in study_specs: large specs. */
  study?: StudyHeader;
  specSha256?: string;
  /** Trials taken from the store per page (default 256). */
  pageSize?: number;
  timeouts?: Partial<StudyTimeouts>;
  /** Continue-as-new also after this many history events (besides the server's suggestion); for tests. */
  continueAsNewAfterEvents?: number;
  /** Carried across continue-as-new: counters and a cursor, never trial keys. */
  carried?: {
    paused: boolean;
    runs: number;
    trialsStartedBefore: number;
    /** Set once the spec's trials are registered: later runs only page. */
    registered?: boolean;
    /** Position (plan order) after which the next run looks for pending trials. */
    cursor?: number;
    total?: number;
    done?: number;
    failed?: number;
  };
}

export type StudyStatus = 'running' | 'paused' | 'draining' | 'cancelling' | 'cancelled' | 'finished';

export interface StudyProgress {
  study: string;
  status: StudyStatus;
  total: number;
  done: number;
  failed: number;
  running: string[];
  pending: number;
  /** Trials whose last activity ended in failure, by key (the latest few of this run; `failed` counts them all). */
  failedKeys: string[];
  /** Workflow runs so far (continue-as-new count + 1). */
  runs: number;
  trialsStarted: number;
  /** False while the study's trials are being registered (paged runs only). */
  registered?: boolean;
}

export interface StudyOutcome {
  study: string;
  status: 'finished' | 'cancelled';
  counts: StudyCounts;
  runs: number;
  /**
   * The study as it ended (with every extension applied): a later start or extend continues from it. Present when
   * the spec is small enough to travel inline; otherwise load the document `specSha256` from the results store.
   */
  spec?: StudySpec;
  specSha256?: string;
}

export const pauseSignal = defineSignal('pause');
export const resumeSignal = defineSignal('resume');
export const cancelSignal = defineSignal('cancel');
export const retryFailedSignal = defineSignal('retryFailed');
export const extendSignal = defineSignal<[StudyExtension]>('extend');
export const progressQuery = defineQuery<StudyProgress>('progress');

