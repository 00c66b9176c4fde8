/**
 * The live page's own reads: progress per study and per worker, the inputs of the ETA, the running trials, and the
 * snapshot the polling watcher compares. Every value travels as a bound parameter (drizzle's `sql` template); the
 * callers run these inside withReadOnlyRole (db/readonly.ts). Figures and curves come from src/report's queries.
 */
import { sql } from 'drizzle-orm';
import { rowsOf, type Db } from '../../db/client.ts';
import { estimateEta, type Eta, type WorkerLoad } from './eta.ts';

export interface WorkerProgress {
  worker: string;
  running: number;
  done: number;
  failed: number;
  /** Mean wall seconds per epoch measured on this worker (this study's trials), null when none yet. */
  meanEpochSeconds: number | null;
  measuredEpochs: number;
}

export interface StudyOverview {
  id: string;
  name: string;
  preset: string | null;
  status: string;
  createdAt: string;
  total: number;
  pending: number;
  running: number;
  done: number;
  failed: number;
  diverged: number;
  workers: WorkerProgress[];
  meanEpochSeconds: number | null;
  expectedEpochs: number | null;
  /** Where expectedEpochs comes from: finished trials, or the epoch cap of the unfinished ones. */
  expectedEpochsBasis: 'finished trials' | 'epoch cap' | null;
  eta: Eta;
}

const iso = (v: unknown) => (v instanceof Date ? v.toISOString() : v === null || v === undefined ? null : new Date(String(v)).toISOString());
const numOrNull = (v: unknown) => (v === null || v === undefined ? null : Number(v));

export async function studyOverviews(db: Db, onlyStudy?: string): Promise<StudyOverview[]> {
  const filter = onlyStudy === undefined ? sql`` : sql` where s.id = ${onlyStudy}`;
  const stFilter = onlyStudy === undefined ? sql`` : sql` and st.study_id = ${onlyStudy}`;
  const studies = rowsOf<{
    id: string;
    name: string;
    preset: string | null;
    status: string;
    created_at: unknown;
    trials: number | null;
    pending: number | null;
    running: number | null;
    done: number | null;
    failed: number | null;
    diverged: number | null;
  }>(
    await db.execute(sql`
      select s.id, s.name, s.preset, s.status, s.created_at, p.trials, p.pending, p.running, p.done, p.failed, p.diverged
      from studies s left join study_progress p on p.study_id = s.id${filter}
      order by s.created_at desc, s.id`),
  );
  if (studies.length === 0) return [];
  const workers = rowsOf<{ study_id: string; worker: string; running: number; done: number; failed: number }>(
    await db.execute(sql`
      select st.study_id, t.worker,
             (count(*) filter (where t.status = 'running'))::int as running,
             (count(*) filter (where t.status = 'done'))::int as done,
             (count(*) filter (where t.status = 'failed'))::int as failed
      from study_trials st join trials t on t.trial_key = st.trial_key
      where t.worker is not null${stFilter}
      group by st.study_id, t.worker
      order by st.study_id, t.worker`),
  );
  // Epochs written by the trial's current attempt ran on the worker the trial row names.
  const epochTimes = rowsOf<{ study_id: string; worker: string; n: number; mean_s: number | null }>(
    await db.execute(sql`
      select st.study_id, t.worker, count(*)::int as n, avg(e.wall_seconds)::float8 as mean_s
      from study_trials st join trials t on t.trial_key = st.trial_key
      join epochs e on e.trial_key = t.trial_key and e.attempt = t.attempt
      where e.wall_seconds is not null and e.wall_seconds > 0 and t.worker is not null${stFilter}
      group by st.study_id, t.worker`),
  );
  const expected = rowsOf<{ study_id: string; finished_mean: number | null; cap_mean: number | null }>(
    await db.execute(sql`
      select st.study_id,
             avg(r.epochs) filter (where r.epochs is not null and not r.diverged)::float8 as finished_mean,
             avg((t.spec->>'maxEpochs')::float8) filter (where t.status <> 'done')::float8 as cap_mean
      from study_trials st join trials t on t.trial_key = st.trial_key
      left join results r on r.trial_key = st.trial_key
      where t.kind = 'train'${stFilter}
      group by st.study_id`),
  );
  const runningDone = rowsOf<{ study_id: string; done: number }>(
    await db.execute(sql`
      select st.study_id, coalesce(max(e.epoch), 0)::int as done
      from study_trials st join trials t on t.trial_key = st.trial_key
      left join epochs e on e.trial_key = t.trial_key
      where t.status = 'running'${stFilter}
      group by st.study_id, t.trial_key`),
  );

  return studies.map((s) => {
    const times = epochTimes.filter((e) => e.study_id === s.id);
    const measured = times.reduce((n, e) => n + Number(e.n), 0);
    const meanEpochSeconds = measured > 0 ? times.reduce((sum, e) => sum + Number(e.n) * Number(e.mean_s), 0) / measured : null;
    const ws: WorkerProgress[] = workers
      .filter((w) => w.study_id === s.id)
      .map((w) => {
        const t = times.find((e) => e.worker === w.worker);
        return {
          worker: w.worker,
          running: Number(w.running),
          done: Number(w.done),
          failed: Number(w.failed),
          meanEpochSeconds: t ? numOrNull(t.mean_s) : null,
          measuredEpochs: t ? Number(t.n) : 0,
        };
      });
    const exp = expected.find((e) => e.study_id === s.id);
    const finishedMean = numOrNull(exp?.finished_mean);
    const capMean = numOrNull(exp?.cap_mean);
    const expectedEpochs = finishedMean ?? capMean;
    const pending = Number(s.pending ?? 0);
    const loads: WorkerLoad[] = ws.map((w) => ({ worker: w.worker, running: w.running, meanEpochSeconds: w.meanEpochSeconds }));
    return {
      id: s.id,
      name: s.name,
      preset: s.preset,
      status: s.status,
      createdAt: iso(s.created_at) ?? '',
      total: Number(s.trials ?? 0),
      pending,
      running: Number(s.running ?? 0),
      done: Number(s.done ?? 0),
      failed: Number(s.failed ?? 0),
      diverged: Number(s.diverged ?? 0),
      workers: ws,
      meanEpochSeconds,
      expectedEpochs,
      expectedEpochsBasis: finishedMean !== null ? 'finished trials' : capMean !== null ? 'epoch cap' : null,
      eta: estimateEta({
        pending,
        runningEpochsDone: runningDone.filter((r) => r.study_id === s.id).map((r) => Number(r.done)),
        workers: loads,
        studyMeanEpochSeconds: meanEpochSeconds,
        expectedEpochs,
      }),
    };
  });
}

export interface RunningTrial {
  trialKey: string;
  label: string | null;
  worker: string | null;
  attempt: number;
  startedAt: string | null;
  dataset: string;
  algorithm: string | null;
  lr: number | null;
  seed: number | null;
  epochs: number;
  lastEpoch: number | null;
  maxEpochs: number | null;
  /** Share of the last epoch's steps that were re-balancing steps (null before the first epoch). */
  rebalanceShare: number | null;
}

/** At most `limit` running trials of the study, in plan order. */
export async function runningTrials(db: Db, studyId: string, limit: number): Promise<{ trials: RunningTrial[]; more: number }> {
  const rows = rowsOf<{
    trial_key: string;
    label: string | null;
    worker: string | null;
    attempt: number;
    started_at: unknown;
    dataset: string;
    algorithm: string | null;
    lr: number | null;
    seed: number | null;
    max_epochs: number | null;
    epochs: number;
    last_epoch: number | null;
    regular_steps: number | null;
    rebalance_steps: number | null;
    n_running: number;
  }>(
    await db.execute(sql`
      with r as (
        select st.trial_key, st.label, st.position, t.worker, t.attempt, t.started_at, t.dataset, t.algorithm, t.lr, t.seed,
               (t.spec->>'maxEpochs')::int as max_epochs, count(*) over ()::int as n_running
        from study_trials st join trials t on t.trial_key = st.trial_key
        where st.study_id = ${studyId} and t.status = 'running'
        order by st.position
        limit ${limit}
      )
      select r.trial_key, r.label, r.worker, r.attempt::int as attempt, r.started_at, r.dataset, r.algorithm, r.lr::float8 as lr,
             r.seed::int as seed, r.max_epochs, r.n_running,
             (select count(*)::int from epochs e where e.trial_key = r.trial_key) as epochs,
             last.epoch::int as last_epoch, last.regular_steps::int as regular_steps, last.rebalance_steps::int as rebalance_steps
      from r left join lateral (
        select e.epoch, e.regular_steps, e.rebalance_steps from epochs e where e.trial_key = r.trial_key order by e.epoch desc limit 1
      ) last on true
      order by r.position`),
  );
  const trials = rows.map((r) => {
    const regular = Number(r.regular_steps ?? 0);
    const rebalance = Number(r.rebalance_steps ?? 0);
    return {
      trialKey: r.trial_key,
      label: r.label,
      worker: r.worker,
      attempt: Number(r.attempt),
      startedAt: iso(r.started_at),
      dataset: r.dataset,
      algorithm: r.algorithm,
      lr: numOrNull(r.lr),
      seed: numOrNull(r.seed),
      epochs: Number(r.epochs),
      lastEpoch: numOrNull(r.last_epoch),
      maxEpochs: numOrNull(r.max_epochs),
      rebalanceShare: r.last_epoch === null ? null : regular + rebalance > 0 ? rebalance / (regular + rebalance) : 0,
    };
  });
  return { trials, more: rows.length > 0 ? Number(rows[0].n_running) - rows.length : 0 };
}

/** Is `trialKey` a member of `studyId`? (The curve endpoint answers 404 otherwise.) */
export async function isStudyTrial(db: Db, studyId: string, trialKey: string): Promise<boolean> {
  const rows = rowsOf(await db.execute(sql`select 1 from study_trials where study_id = ${studyId} and trial_key = ${trialKey}`));
  return rows.length > 0;
}

/** What the polling watcher compares between two polls (see live.ts). */
export interface ChangeSnapshot {
  /** Running trial → "last epoch/count/last write" of its epoch rows. */
  runningEpochs: Map<string, { epoch: number | null; stamp: string }>;
  trials: string;
  results: string;
}

export async function changeSnapshot(db: Db): Promise<ChangeSnapshot> {
  const epochs = rowsOf<{ trial_key: string; epoch: number | null; n: number; at: unknown }>(
    await db.execute(sql`
      select t.trial_key, max(e.epoch)::int as epoch, count(e.epoch)::int as n, max(e.recorded_at) as at
      from trials t left join epochs e on e.trial_key = t.trial_key
      where t.status = 'running'
      group by t.trial_key`),
  );
  const trials = rowsOf<{ status: string; n: number; at: unknown }>(
    await db.execute(sql`select status, count(*)::int as n, max(updated_at) as at from trials group by status order by status`),
  );
  const results = rowsOf<{ n: number; at: unknown }>(await db.execute(sql`select count(*)::int as n, max(recorded_at) as at from results`));
  return {
    runningEpochs: new Map(epochs.map((e) => [e.trial_key, { epoch: numOrNull(e.epoch), stamp: `${e.epoch}/${e.n}/${iso(e.at)}` }])),
    trials: JSON.stringify(trials.map((t) => [t.status, Number(t.n), iso(t.at)])),
    results: JSON.stringify(results.map((r) => [Number(r.n), iso(r.at)])),
  };
}
