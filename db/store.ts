import { createHash } from 'node:crypto';
import { and, asc, desc, eq, inArray, ne, sql, type SQL } from 'drizzle-orm';
import type { AnyPgColumn } from 'drizzle-orm/pg-core';
import type { TrialSpec } from '../src/spec/trial.ts';
import { rowsOf, type Db } from './client.ts';
import { insertTrialBatch, lockStudy } from './registration.ts';
import { UnknownStudyError, UnknownTrialError } from './errors.ts';

export { UnknownStudyError, UnknownTrialError } from './errors.ts';
import { conditionColumns, conditionOf, isConditionColumn, type ConditionColumn } from './conditions.ts';
import {
  checkpointChunks,
  checkpoints,
  epochs,
  type BranchAccuracies,
  results,
  studies,
  studyTrials,
  trials,
  type StudyStatus,
  type TrialStatus,
} from './schema.ts';
import {
  summaryAggregatesSql,
  type ConditionSummaryRow,
  type StudyProgressRow,
  type TrialOutcomeRow,
} from './views.ts';

/**
 * The data-access API of the results store, shared by the orchestration activities, the CLI and the reports.
 *
 * Fencing: a trial row carries `attempt`, the fencing token of the attempt that currently owns it. A worker
 * claims an attempt (`claimTrialAttempt`), then writes with that number. Every write checks, under a share
 * lock on the trial row, that its attempt is still the trial's attempt; otherwise it changes nothing and
 * reports `applied: false` with the current attempt (the caller has been superseded and should stop).
 * Row upserts additionally never replace a row written by a newer attempt, and replaying a write with the
 * same values leaves every column (timestamps included) as it was.
 */

// ---------------------------------------------------------------------------------------------- studies

export interface StudyInput {
  /** The study's name as the workflow knows it (studies are addressed by it). */
  id: string;
  /** Display name; defaults to `id`. */
  name?: string;
  preset?: string | null;
  spec: unknown;
  codeVersion?: string | null;
  status?: StudyStatus;
}

export type StudyRow = typeof studies.$inferSelect;

/** Insert or update a study (spec, preset and code version follow the latest call; status only if given). */
export async function upsertStudy(db: Db, study: StudyInput): Promise<void> {
  const values = {
    id: study.id,
    name: study.name ?? study.id,
    preset: study.preset ?? null,
    spec: study.spec as object,
    codeVersion: study.codeVersion ?? null,
    status: study.status ?? 'running',
  };
  await db
    .insert(studies)
    .values(values)
    .onConflictDoUpdate({
      target: studies.id,
      set: {
        name: values.name,
        preset: values.preset,
        spec: values.spec,
        // A writer that does not know the code version (the workflow's registration) keeps the one the CLI stored.
        codeVersion: sql`coalesce(excluded.code_version, ${studies.codeVersion})`,
        ...(study.status ? { status: study.status } : {}),
      },
    });
}

export async function setStudyStatus(db: Db, studyId: string, status: StudyStatus): Promise<void> {
  const terminal = status === 'done' || status === 'failed' || status === 'cancelled';
  const updated = await db
    .update(studies)
    .set({
      status,
      finishedAt: terminal ? sql`coalesce(${studies.finishedAt}, now())` : null,
    })
    .where(eq(studies.id, studyId))
    .returning({ id: studies.id });
  if (updated.length === 0) throw new UnknownStudyError(studyId);
}

/** A study by id, else by name (an ambiguous name is an error naming the candidates). */
export async function findStudy(db: Db, idOrName: string): Promise<StudyRow | null> {
  const byId = await db.select().from(studies).where(eq(studies.id, idOrName));
  if (byId.length > 0) return byId[0];
  const byName = await db.select().from(studies).where(eq(studies.name, idOrName));
  if (byName.length > 1) {
    throw new Error(`study name "${idOrName}" is ambiguous: use one of the ids ${byName.map((s) => s.id).join(', ')}`);
  }
  return byName[0] ?? null;
}

export async function listStudies(db: Db): Promise<StudyRow[]> {
  return db.select().from(studies).orderBy(desc(studies.createdAt));
}

// ----------------------------------------------------------------------------------------------- trials

export interface TrialInput {
  /** The trial key (src/spec/keys.ts: hash of the canonical, fully defaulted spec). */
  trialKey: string;
  /** The parsed (defaulted) TrialSpec. */
  spec: TrialSpec;
  /** The planner's label of the trial's condition. */
  label?: string | null;
}

/**
 * Add trials to a study, idempotently: a trial key already known (from this or another study) is reused as
 * is, with its status and results. New memberships are appended after the study's existing ones, in the
 * order given. Returns how many trial rows and memberships were new.
 */
export async function registerTrials(
  db: Db,
  studyId: string,
  list: TrialInput[],
): Promise<{ newTrials: number; newMemberships: number }> {
  let newTrials = 0;
  let newMemberships = 0;
  await db.transaction(async (tx) => {
    await lockStudy(tx as unknown as Db, studyId);
    for (let start = 0; start < list.length; start += 500) {
      const batch = list.slice(start, start + 500).map((t) => {
        const { seed, ...columns } = conditionOf(t.spec);
        return { label: t.label ?? null, columns, trials: [{ trialKey: t.trialKey, specJson: JSON.stringify(t.spec), seed }] };
      });
      const counts = await insertTrialBatch(tx as unknown as Db, studyId, batch);
      newTrials += counts.newTrials;
      newMemberships += counts.newMemberships;
    }
  });
  return { newTrials, newMemberships };
}

/** Keys of the study's trials that have no result yet (pending, running or failed), in plan order. */
export async function pendingTrialKeys(db: Db, studyId: string): Promise<string[]> {
  const rows = await db
    .select({ key: studyTrials.trialKey })
    .from(studyTrials)
    .innerJoin(trials, eq(trials.trialKey, studyTrials.trialKey))
    .where(and(eq(studyTrials.studyId, studyId), ne(trials.status, 'done')))
    .orderBy(asc(studyTrials.position));
  return rows.map((r) => r.key);
}

export type TrialRow = typeof trials.$inferSelect;

export async function getTrial(db: Db, trialKey: string): Promise<TrialRow | null> {
  const rows = await db.select().from(trials).where(eq(trials.trialKey, trialKey));
  return rows[0] ?? null;
}

export interface ClaimInfo {
  worker: string;
  backend?: string | null;
  device?: string | null;
}

export type ClaimOutcome =
  | { claimed: true; attempt: number }
  /** `done`: the trial already has its result. `superseded`: a newer attempt owns it. */
  | { claimed: false; reason: 'done' | 'superseded'; attempt: number };

/**
 * Make `attempt` the trial's owner, or with `'next'` take the attempt after the current one (atomically, so two
 * workers never get the same number). Succeeds when the trial has no result and no newer attempt owns it;
 * re-claiming the current attempt (a replayed call) succeeds and keeps its start time.
 */
export async function claimTrialAttempt(
  db: Db,
  trialKey: string,
  attempt: number | 'next',
  info: ClaimInfo,
): Promise<ClaimOutcome> {
  const newAttempt = attempt === 'next' ? sql`${trials.attempt} + 1` : sql`${attempt}::int`;
  const updated = await db
    .update(trials)
    .set({
      attempt: newAttempt,
      status: 'running',
      worker: info.worker,
      backend: info.backend ?? null,
      device: info.device ?? null,
      startedAt: sql`case when ${trials.attempt} = ${newAttempt} and ${trials.startedAt} is not null then ${trials.startedAt} else now() end`,
      finishedAt: null,
      error: null,
      updatedAt: sql`now()`,
    })
    .where(
      and(
        eq(trials.trialKey, trialKey),
        ne(trials.status, 'done'),
        attempt === 'next' ? undefined : sql`${trials.attempt} <= ${attempt}`,
      ),
    )
    .returning({ attempt: trials.attempt });
  if (updated.length > 0) return { claimed: true, attempt: updated[0].attempt };
  const current = await getTrial(db, trialKey);
  if (!current) throw new UnknownTrialError(trialKey);
  return { claimed: false, reason: current.status === 'done' ? 'done' : 'superseded', attempt: current.attempt };
}

export type BeginOutcome =
  /** The attempt is the trial's now: its number (the fencing token), spec and highest recorded epoch (0: none). */
  | { claimed: true; attempt: number; spec: unknown; recordedEpoch: number }
  | { claimed: false; reason: 'done'; attempt: number };

/**
 * A worker's start of the next attempt in one statement (a round trip is 10–50 ms on a loaded machine, and every
 * trial pays this one): claim the attempt after the current one as `claimTrialAttempt(…, 'next', …)` does, and read
 * the trial's spec and its highest recorded epoch (the resume point's upper bound). `done` when the trial already
 * has its result; null when no trial has the key.
 *
 * The epochs are read in the statement's snapshot, taken before it waits for the trial row's lock: a superseded
 * attempt's epoch row committed during that wait is not counted. The worker then resumes from an earlier
 * checkpoint and discards the rows after it (discardAfter of recordTrialProgress): that epoch is trained again,
 * and the learning curve still has no hole.
 */
export async function beginTrialAttempt(db: Db, trialKey: string, worker: string): Promise<BeginOutcome | null> {
  const [row] = rowsOf<{ claimed_attempt: number | null; spec: unknown; status: TrialStatus | null; attempt: number | null; recorded_epoch: number }>(
    await db.execute(sql`
      with claimed as (
        update trials set attempt = attempt + 1, status = 'running', worker = ${worker}, backend = null, device = null,
          started_at = now(), finished_at = null, error = null, updated_at = now()
        where trial_key = ${trialKey} and status <> 'done'
        returning attempt, spec)
      select c.attempt as claimed_attempt, c.spec, t.status, t.attempt,
        (select coalesce(max(e.epoch), 0)::int from epochs e where e.trial_key = ${trialKey}) as recorded_epoch
      from (select 1) as one
      left join claimed c on true
      left join trials t on t.trial_key = ${trialKey}`),
  );
  if (row?.claimed_attempt != null) {
    return { claimed: true, attempt: Number(row.claimed_attempt), spec: parseJson(row.spec), recordedEpoch: Number(row.recorded_epoch) };
  }
  if (!row || row.status === null) return null;
  if (row.status === 'done') return { claimed: false, reason: 'done', attempt: Number(row.attempt) };
  // Not done in this statement's snapshot, yet not claimable: a concurrent attempt recorded its result meanwhile.
  const current = await getTrial(db, trialKey);
  if (current?.status === 'done') return { claimed: false, reason: 'done', attempt: current.attempt };
  throw new Error(`trial ${trialKey} could not be claimed (status ${current?.status ?? 'unknown'}); the activity is retried`);
}

/** jsonb read through db.execute: an object from postgres.js and PGlite, text from drivers that do not parse it. */
function parseJson(value: unknown): unknown {
  return typeof value === 'string' ? JSON.parse(value) : value;
}

export interface WriteOutcome {
  /** False when the write was fenced off: `attempt` is not the trial's current attempt (or the trial is done). */
  applied: boolean;
  currentAttempt: number;
  status: TrialStatus;
}

type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];

/** Run `body` only if `attempt` owns the trial, holding a share lock on the trial row until commit. */
async function fenced(
  db: Db,
  trialKey: string,
  attempt: number,
  body: (tx: Tx, status: TrialStatus) => Promise<boolean | void>,
  isolationLevel?: 'repeatable read',
): Promise<WriteOutcome> {
  return db.transaction(
    async (tx) => {
      const rows = await tx
        .select({ attempt: trials.attempt, status: trials.status })
        .from(trials)
        .where(eq(trials.trialKey, trialKey))
        .for('share');
      if (rows.length === 0) throw new UnknownTrialError(trialKey);
      const { attempt: current, status } = rows[0];
      if (current !== attempt) return { applied: false, currentAttempt: current, status };
      const applied = (await body(tx, status)) ?? true;
      return { applied, currentAttempt: current, status };
    },
    isolationLevel ? { isolationLevel } : undefined,
  );
}

/** Non-finite numbers (NaN, ±∞ from a diverged trial) are stored as NULL: SQL aggregates then skip them. */
function num(x: number | null | undefined): number | null {
  return typeof x === 'number' && Number.isFinite(x) ? x : null;
}

function int(x: number | null | undefined): number | null {
  const v = num(x);
  return v === null ? null : Math.round(v);
}

// ----------------------------------------------------------------------------------------------- epochs

/** The runner's EpochMetrics (src/spec/contracts.ts), stored as given (accuracies in percent). */
export interface EpochInput {
  epoch: number;
  trainAcc?: number | null;
  trainAcc0?: number | null;
  trainAcc1?: number | null;
  valAcc?: number | null;
  valAcc0?: number | null;
  valAcc1?: number | null;
  testAcc?: number | null;
  testAcc0?: number | null;
  testAcc1?: number | null;
  loss?: number | null;
  lr?: number | null;
  /** Cumulative d_speed(f; t) at the epoch's end. */
  dSpeed?: number | null;
  regularSteps?: number | null;
  rebalanceSteps?: number | null;
  wallSeconds?: number | null;
  /** Accuracy of every branch ŷk per split (nets with more than two modalities only; stored in `branch_acc`). */
  branchAcc?: { train: readonly number[]; val: readonly number[]; test: readonly number[] } | null;
}

export type EpochRow = typeof epochs.$inferSelect;

const epochValueColumns = [
  'trainAcc',
  'trainAcc0',
  'trainAcc1',
  'valAcc',
  'valAcc0',
  'valAcc1',
  'testAcc',
  'testAcc0',
  'testAcc1',
  'loss',
  'lr',
  'dSpeed',
  'wallSeconds',
] as const;

/** `branch_acc` as stored: absent → NULL; non-finite entries → JSON null (jsonb cannot hold NaN/∞). */
function branchAccValue(b: EpochInput['branchAcc']): BranchAccuracies | null {
  if (!b) return null;
  const finite = (xs: readonly number[]) => xs.map((x) => num(x));
  return { train: finite(b.train), val: finite(b.val), test: finite(b.test) };
}

/** What an attempt reports between its start and its result, written by recordTrialProgress in one statement. */
export interface TrialProgress {
  /** The attempt resumed from this epoch's checkpoint: rows after it belong to a lost attempt and go. */
  discardAfter?: number | null;
  /** Epoch rows to upsert (an epoch already stored is replaced unless a newer attempt wrote it). */
  epochs?: EpochInput[];
}

/** `(v1, v2, …)`: each value a parameter in its column's driver encoding, cast to its SQL type (VALUES infers none). */
function valuesRow<T extends object>(table: T, columns: readonly (keyof T & string)[], row: Record<string, unknown>): SQL {
  return sql`(${sql.join(
    columns.map((c) => {
      const column = table[c] as unknown as AnyPgColumn;
      const type = sql.raw(column.getSQLType());
      const value = row[c] ?? null;
      return value === null ? sql`null::${type}` : sql`${sql.param(value, column)}::${type}`;
    }),
    sql`, `,
  )})`;
}

/** `col = excluded.col, …` for an upsert written as SQL. */
function excludedAssignments<T extends object>(table: T, columns: readonly (keyof T & string)[]): SQL {
  return sql.join(
    columns.map((c) => {
      const name = sql.identifier((table[c] as unknown as AnyPgColumn).name);
      return sql`${name} = excluded.${name}`;
    }),
    sql`, `,
  );
}

const epochInsertColumns = ['trialKey', 'attempt', 'epoch', ...epochValueColumns, 'regularSteps', 'rebalanceSteps', 'branchAcc'] as const;

/**
 * The attempt's progress in one statement (one round trip instead of a transaction's four or five): under a share
 * lock on the trial row, and only while `attempt` owns the trial, delete the epoch rows after `discardAfter` and
 * upsert `epochs`. Fenced like every write: a superseded attempt changes nothing and learns the current attempt.
 */
export async function recordTrialProgress(db: Db, trialKey: string, attempt: number, progress: TrialProgress): Promise<WriteOutcome> {
  const list = progress.epochs ?? [];
  const owns = sql`exists (select 1 from owner where owner.attempt = ${attempt}::int)`;
  const steps: SQL[] = [sql`owner as materialized (select attempt, status from trials where trial_key = ${trialKey} for share)`];
  if (progress.discardAfter !== undefined && progress.discardAfter !== null) {
    // Rows upserted below are kept out of the delete: one statement must not touch a row twice.
    const kept = list.length > 0 ? sql` and epoch not in (${sql.join(list.map((r) => sql`${r.epoch}::int`), sql`, `)})` : sql``;
    steps.push(sql`discarded as (delete from epochs where trial_key = ${trialKey} and epoch > ${progress.discardAfter}::int${kept} and ${owns})`);
  }
  if (list.length > 0) {
    const values = list.map((r) => {
      const v: Record<string, unknown> = { trialKey, attempt, epoch: r.epoch };
      for (const c of epochValueColumns) v[c] = num(r[c]);
      v.regularSteps = int(r.regularSteps);
      v.rebalanceSteps = int(r.rebalanceSteps);
      v.branchAcc = branchAccValue(r.branchAcc);
      return valuesRow(epochs, epochInsertColumns, v);
    });
    const names = sql.join(epochInsertColumns.map((c) => sql.identifier(epochs[c].name)), sql`, `);
    const updates = excludedAssignments(epochs, epochInsertColumns.filter((c) => c !== 'trialKey' && c !== 'epoch'));
    steps.push(sql`written as (
      insert into epochs (${names}) select * from (values ${sql.join(values, sql`, `)}) as v where ${owns}
      on conflict (trial_key, epoch) do update set ${updates},
        recorded_at = case when epochs.attempt = excluded.attempt then epochs.recorded_at else excluded.recorded_at end
      where epochs.attempt <= excluded.attempt)`);
  }
  const rows = rowsOf<{ attempt: number; status: TrialStatus }>(await db.execute(sql`with ${sql.join(steps, sql`, `)} select attempt, status from owner`));
  if (rows.length === 0) throw new UnknownTrialError(trialKey);
  const current = Number(rows[0].attempt);
  return { applied: current === attempt, currentAttempt: current, status: rows[0].status };
}

export async function recordEpochs(db: Db, trialKey: string, attempt: number, rows: EpochInput[]): Promise<WriteOutcome> {
  return recordTrialProgress(db, trialKey, attempt, { epochs: rows });
}

export async function recordEpoch(db: Db, trialKey: string, attempt: number, row: EpochInput): Promise<WriteOutcome> {
  return recordEpochs(db, trialKey, attempt, [row]);
}

/**
 * Drop the trial's epoch rows after `epoch`: call it when an attempt resumes from the epoch-`epoch` checkpoint,
 * so rows an earlier attempt wrote past that point do not outlive it.
 */
export async function discardEpochsAfter(db: Db, trialKey: string, attempt: number, epoch: number): Promise<WriteOutcome> {
  return recordTrialProgress(db, trialKey, attempt, { discardAfter: epoch });
}

export async function trialEpochs(db: Db, trialKey: string): Promise<EpochRow[]> {
  return db.select().from(epochs).where(eq(epochs.trialKey, trialKey)).orderBy(asc(epochs.epoch));
}

// ---------------------------------------------------------------------------------------------- results

/**
 * The trial runner's TrialResult (src/spec/contracts.ts; extra fields, e.g. `perModality` of an M-modality net,
 * are kept in `results.raw`). Values are stored
 * as given: the runner reports accuracies in percent (0–100).
 */
export interface TrialResultInput {
  /** Test accuracy of ŷ at the best-validation checkpoint. */
  testAcc: number | null;
  /** A(f): test accuracy of ŷ from the clean re-evaluation; defaults to testAcc. */
  accF?: number | null;
  accF0: number | null;
  accF1: number | null;
  accF0Prime: number | null;
  accF1Prime: number | null;
  uM1GivenM0: number | null;
  uM0GivenM1: number | null;
  dUtil: number | null;
  dSpeed: number | null;
  rF: number | null;
  bestEpoch: number | null;
  stepsT?: number | null;
  /** Number of epochs run (an array of epoch records is accepted and counted). */
  epochs?: number | unknown[] | null;
  diverged: boolean;
  [extra: string]: unknown;
}

export type ResultRow = typeof results.$inferSelect;

const resultValueColumns = [
  'testAcc',
  'accF',
  'accF0',
  'accF1',
  'accF0Prime',
  'accF1Prime',
  'uM1GivenM0',
  'uM0GivenM1',
  'dUtil',
  'dSpeed',
  'rF',
] as const;

/** Store the trial's result and mark it done (fenced; replaying it changes nothing). */
export async function recordResult(
  db: Db,
  trialKey: string,
  attempt: number,
  result: TrialResultInput,
): Promise<WriteOutcome> {
  const { epochs: epochList, ...rest } = result;
  const epochCount = Array.isArray(epochList) ? epochList.length : int(epochList as number | null | undefined);
  const row: Record<string, unknown> = { trialKey, attempt };
  for (const c of resultValueColumns) row[c] = num(result[c] as number | null | undefined);
  if (result.accF === undefined) row.accF = num(result.testAcc);
  row.bestEpoch = int(result.bestEpoch);
  row.stepsT = int(result.stepsT);
  row.epochs = epochCount;
  row.diverged = Boolean(result.diverged);
  // JSON cannot hold NaN/∞; keep the raw numbers' meaning as strings rather than silently nulling them.
  row.raw = JSON.parse(JSON.stringify(rest, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v)));
  // One statement (a transaction took five round trips): the trial row is marked done only while `attempt` owns it
  // (the update is the fence, and its row lock the claim's), and the result row is upserted only when it was.
  const columns = ['trialKey', 'attempt', ...resultValueColumns, 'bestEpoch', 'stepsT', 'epochs', 'diverged', 'raw'] as const;
  const markDone = db
    .update(trials)
    .set({
      status: 'done',
      error: null,
      // Provenance: the backend and device that trained it, as columns (also kept in results.raw).
      ...(typeof result.backend === 'string' ? { backend: result.backend } : {}),
      ...(typeof result.device === 'string' ? { device: result.device } : {}),
      finishedAt: sql`case when ${trials.status} = 'done' then ${trials.finishedAt} else now() end`,
      updatedAt: sql`case when ${trials.status} = 'done' then ${trials.updatedAt} else now() end`,
    })
    .where(and(eq(trials.trialKey, trialKey), eq(trials.attempt, attempt)))
    .returning({ attempt: trials.attempt });
  const applied = rowsOf<{ attempt: number }>(
    await db.execute(sql`
      with owner as (${markDone.getSQL()}),
      written as (
        insert into results (${sql.join(columns.map((c) => sql.identifier(results[c].name)), sql`, `)})
        select * from (values ${valuesRow(results, columns, row)}) as v where exists (select 1 from owner)
        on conflict (trial_key) do update set ${excludedAssignments(results, columns.filter((c) => c !== 'trialKey'))},
          recorded_at = case when results.attempt = excluded.attempt then results.recorded_at else excluded.recorded_at end
        where results.attempt <= excluded.attempt)
      select attempt from owner`),
  );
  if (applied.length > 0) return { applied: true, currentAttempt: attempt, status: 'done' };
  const current = await getTrial(db, trialKey);
  if (!current) throw new UnknownTrialError(trialKey);
  return { applied: false, currentAttempt: current.attempt, status: current.status as TrialStatus };
}

export async function getResult(db: Db, trialKey: string): Promise<ResultRow | null> {
  const rows = await db.select().from(results).where(eq(results.trialKey, trialKey));
  return rows[0] ?? null;
}

/** Mark the attempt failed (fenced; a trial that already has its result stays done). */
export async function markTrialFailed(db: Db, trialKey: string, attempt: number, error: string): Promise<WriteOutcome> {
  const outcome = await fenced(db, trialKey, attempt, async (tx, status) => {
    if (status === 'done') return false;
    await tx
      .update(trials)
      .set({
        status: 'failed',
        error,
        finishedAt: sql`case when ${trials.status} = 'failed' and ${trials.error} = ${error} then ${trials.finishedAt} else now() end`,
        updatedAt: sql`now()`,
      })
      .where(eq(trials.trialKey, trialKey));
  });
  return outcome.applied ? { ...outcome, status: 'failed' } : outcome;
}

// ------------------------------------------------------------------------------------------ checkpoints

export const DEFAULT_CHECKPOINT_CHUNK_BYTES = 4 * 1024 * 1024;

export interface SaveCheckpointOptions {
  /** Bytes per chunk row (default 4 MiB). */
  chunkBytes?: number;
  /** How many of the trial's most recent checkpoints to keep (default 2). */
  keep?: number;
}

/**
 * Store a checkpoint's bytes in chunks with their SHA-256, in one transaction (readers never see a partial
 * checkpoint), and prune the trial's older checkpoints. Fenced like every write.
 */
export async function saveCheckpoint(
  db: Db,
  trialKey: string,
  attempt: number,
  epoch: number,
  bytes: Uint8Array,
  options: SaveCheckpointOptions = {},
): Promise<WriteOutcome> {
  const chunkBytes = options.chunkBytes ?? DEFAULT_CHECKPOINT_CHUNK_BYTES;
  const keep = Math.max(1, options.keep ?? 2);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const chunkCount = Math.max(1, Math.ceil(bytes.byteLength / chunkBytes));
  return fenced(db, trialKey, attempt, async (tx) => {
    await tx.delete(checkpoints).where(and(eq(checkpoints.trialKey, trialKey), eq(checkpoints.epoch, epoch)));
    await tx.insert(checkpoints).values({ trialKey, epoch, attempt, byteSize: bytes.byteLength, chunkCount, sha256 });
    for (let i = 0; i < chunkCount; i++) {
      const data = bytes.subarray(i * chunkBytes, Math.min(bytes.byteLength, (i + 1) * chunkBytes));
      await tx.insert(checkpointChunks).values({ trialKey, epoch, chunkIndex: i, data });
    }
    await tx.execute(sql`
      delete from checkpoints where trial_key = ${trialKey} and epoch not in (
        select epoch from checkpoints where trial_key = ${trialKey} order by epoch desc limit ${keep})`);
  });
}

export interface LoadedCheckpoint {
  epoch: number;
  attempt: number;
  bytes: Uint8Array;
  sha256: string;
}

export class CheckpointIntegrityError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointIntegrityError';
  }
}

/** The trial's most recent checkpoint, verified against its size and SHA-256; null when it has none. */
export async function loadLatestCheckpoint(db: Db, trialKey: string): Promise<LoadedCheckpoint | null> {
  // Repeatable read: a concurrent save may prune this checkpoint while its chunks are being read.
  return db.transaction(
    async (tx) => {
      const headers = await tx
        .select()
        .from(checkpoints)
        .where(eq(checkpoints.trialKey, trialKey))
        .orderBy(desc(checkpoints.epoch))
        .limit(1);
      if (headers.length === 0) return null;
      const h = headers[0];
      const parts: Uint8Array[] = [];
      for (let i = 0; i < h.chunkCount; i++) {
        const chunk = await tx
          .select({ data: checkpointChunks.data })
          .from(checkpointChunks)
          .where(
            and(
              eq(checkpointChunks.trialKey, trialKey),
              eq(checkpointChunks.epoch, h.epoch),
              eq(checkpointChunks.chunkIndex, i),
            ),
          );
        if (chunk.length === 0) {
          throw new CheckpointIntegrityError(`checkpoint of trial ${trialKey} at epoch ${h.epoch} lacks chunk ${i} of ${h.chunkCount}`);
        }
        parts.push(chunk[0].data);
      }
      const bytes = new Uint8Array(Buffer.concat(parts));
      const sha256 = createHash('sha256').update(bytes).digest('hex');
      if (bytes.byteLength !== h.byteSize || sha256 !== h.sha256) {
        throw new CheckpointIntegrityError(
          `checkpoint of trial ${trialKey} at epoch ${h.epoch} is corrupt: ${bytes.byteLength} bytes with sha256 ` +
            `${sha256}, expected ${h.byteSize} bytes with ${h.sha256}`,
        );
      }
      return { epoch: h.epoch, attempt: h.attempt, bytes, sha256 };
    },
    { isolationLevel: 'repeatable read' },
  );
}

// -------------------------------------------------------------------------------------- views and reads

/**
 * Aggregates per condition of a study (n, mean ± sample std of test accuracy, E[d_util] ± std, E[d_speed] ±
 * std, R(f) mean ± std, fraction diverged). `by` picks the grouping columns (default: all condition columns,
 * i.e. the `condition_summary` view); rows are ordered by them.
 */
export async function studySummary(
  db: Db,
  studyId: string,
  by: readonly ConditionColumn[] = conditionColumns,
): Promise<ConditionSummaryRow[]> {
  for (const c of by) {
    if (!isConditionColumn(c)) {
      throw new Error(`cannot group by "${c}": choose from ${conditionColumns.join(', ')}`);
    }
  }
  const cols = by.map((c) => `"${c}"`).join(', ');
  const orderBy = by.length > 0 ? sql.raw(`order by ${cols}`) : sql``;
  const query =
    by === conditionColumns
      ? sql`select * from condition_summary where study_id = ${studyId} ${orderBy}`
      : sql`select ${sql.raw(cols ? `${cols},` : '')} ${sql.raw(summaryAggregatesSql)}
            from trial_outcomes where study_id = ${studyId}
            ${sql.raw(cols ? `group by ${cols}` : '')} ${orderBy}`;
  return rowsOf<ConditionSummaryRow>(await db.execute(query));
}

/** Per-trial outcomes of a study in plan order (histograms, scatter plots, sweeps). */
export async function trialOutcomes(db: Db, studyId: string, limit?: number): Promise<TrialOutcomeRow[]> {
  const rows = rowsOf<TrialOutcomeRow>(
    await db.execute(sql`select * from trial_outcomes where study_id = ${studyId} order by position ${limit === undefined ? sql`` : sql`limit ${limit}`}`),
  );
  // drizzle's drivers hand timestamps of raw queries back as text.
  for (const row of rows) {
    row.started_at = asDate(row.started_at);
    row.finished_at = asDate(row.finished_at);
  }
  return rows;
}

function asDate(value: Date | string | null): Date | null {
  return typeof value === 'string' ? new Date(value) : value;
}

export async function studyProgress(db: Db, studyId: string): Promise<StudyProgressRow> {
  const rows = rowsOf<StudyProgressRow>(await db.execute(sql`select * from study_progress where study_id = ${studyId}`));
  return rows[0] ?? { study_id: studyId, trials: 0, pending: 0, running: 0, done: 0, failed: 0, diverged: 0 };
}
