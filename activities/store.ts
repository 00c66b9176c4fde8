import type { TrialSpec } from '../src/spec/trial.ts';
import type { EpochMetrics, TrialResult } from '../src/spec/contracts.ts';

/**
 * What the orchestration activities need from the results store. The db module (db/) satisfies it through the
 * adapter in ./db-store.ts. Every write is idempotent and fenced by attempt: the store hands out attempt
 * numbers, and a write from an attempt that is no longer the trial's current one changes nothing and throws
 * SupersededAttemptError (that attempt must stop).
 */
export type TrialState = 'pending' | 'running' | 'done' | 'failed';

export interface RegisteredTrial {
  key: string;
  label: string;
  spec: TrialSpec;
}

/** One trial of a streamed registration batch: its key, canonical spec JSON and condition columns. */
/**
 * Trials of one grid point, for registration, in plan order: seeds whose canonical spec JSON is
 * `${head}${seed}${tail}` (src/spec/keys.ts, seedSplice), which the store turns into specs and keys itself, or
 * trials given whole (with their canonical JSON and key) where no splice applies.
 */
export interface RegistrationGroup {
  label: string;
  /** The grid point's spec (any seed): the store derives the condition columns from it, once per object. */
  template: TrialSpec;
  splice?: { head: string; tail: string; seeds: number[] };
  trials?: { key: string; canonical: string; seed: number }[];
}

export interface PendingTrial {
  key: string;
  /** The trial's position in the study's plan: the paging cursor. */
  position: number;
}

export interface StoredCheckpoint {
  epoch: number;
  data: Uint8Array;
  sha256: string;
}

export interface StudyCounts {
  total: number;
  pending: number;
  running: number;
  done: number;
  failed: number;
  diverged: number;
}

export class SupersededAttemptError extends Error {
  constructor(
    readonly trialKey: string,
    readonly attempt: number,
    readonly currentAttempt: number,
  ) {
    super(`attempt ${attempt} of trial ${trialKey} was superseded by attempt ${currentAttempt}`);
    this.name = 'SupersededAttemptError';
  }
}

export interface ResultsStore {
  /** Where the store is, for messages (a database URL with its password masked). */
  readonly location?: string;
  upsertStudy(study: { id: string; name: string; preset?: string; spec: unknown }): Promise<void>;
  /** Insert trials that are new (by key) and link them to the study; existing trials keep their state. */
  registerTrials(studyId: string, trials: RegisteredTrial[]): Promise<void>;
  /** Store a canonical JSON document under its sha256 (idempotent); returns the sha256. */
  saveSpecDocument(canonical: string): Promise<string>;
  /** The document stored under that sha256 (checked), or null. */
  loadSpecDocument(sha256: string): Promise<string | null>;
  /** The study's current spec document and the one whose trials are all registered. */
  studySpecState(studyId: string): Promise<{ specSha256: string | null; registeredSha256: string | null } | null>;
  setStudySpecState(studyId: string, specSha256: string, registered: boolean): Promise<void>;
  /** One batch of a streamed registration, in its own transaction; same semantics as registerTrials. */
  registerTrialBatch(studyId: string, groups: RegistrationGroup[]): Promise<void>;
  /** Up to `limit` trials after `afterPosition` in plan order that are pending or running (not done, not failed). */
  nextPendingTrials(studyId: string, afterPosition: number, limit: number): Promise<PendingTrial[]>;
  /** State of every trial of the study. */
  trialStates(studyId: string): Promise<Array<{ key: string; state: TrialState }>>;
  /**
   * Start the trial's next attempt in one round trip: claim it (state running, worker recorded) and return its number
   * (the fencing token of the writes below), the trial's spec and its highest recorded epoch (0 when none); `done`
   * when the trial already has its result; null when no trial has the key.
   */
  beginTrialAttempt(key: string, worker: string): Promise<{ state: 'claimed'; attempt: number; spec: TrialSpec; recordedEpoch: number } | { state: 'done'; attempt: number } | null>;
  /**
   * An attempt's progress in one write: forget the epoch rows after `discardAfter` (the attempt resumed from that
   * epoch's checkpoint and rewrites them) and record `epochs`.
   */
  recordProgress(key: string, attempt: number, progress: { discardAfter: number | null; epochs: EpochMetrics[] }): Promise<void>;
  recordResult(key: string, attempt: number, result: TrialResult): Promise<void>;
  /** Mark the trial failed (its current attempt); a trial that has its result stays done. */
  markTrialFailed(key: string, error: string): Promise<void>;
  /** Failed trials of the study back to pending; returns their keys. */
  resetFailedTrials(studyId: string): Promise<string[]>;
  saveCheckpoint(key: string, attempt: number, epoch: number, data: Uint8Array): Promise<void>;
  loadLatestCheckpoint(key: string): Promise<StoredCheckpoint | null>;
  studyCounts(studyId: string): Promise<StudyCounts>;
  setStudyStatus(studyId: string, status: 'running' | 'paused' | 'done' | 'cancelled'): Promise<void>;
}
