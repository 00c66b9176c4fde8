/**
 * The SQL the report runs. Results and aggregates come from the store's views (`trial_outcomes`,
 * `condition_summary`, db/migrations/0001_views.sql; per-state counts from `study_progress`); two things they do
 * not carry are queried here from the tables: the scheduling state of the trials that started (worker timeline),
 * and the per-epoch learning curves. Trials that never started are counted, never listed, so a study of 10⁶
 * registered trials costs what its started ones cost. Every query works on postgres.js and PGlite (numbers cast in SQL, rows via `rowsOf`).
 */
import { sql, type SQL } from 'drizzle-orm';
import { rowsOf, type Db } from '../../db/client.ts';
import type { StudyProgressRow, SummaryMetrics, TrialConditionFields, TrialOutcomeRow as StoreTrialOutcomeRow } from '../../db/views.ts';

function list(values: readonly string[]): SQL {
  return sql.join(
    values.map((v) => sql`${v}`),
    sql`, `,
  );
}

export interface StudyRow {
  id: string;
  name: string;
  preset: string | null;
  status: string | null;
}

/** Studies whose id or name is one of `refs`. */
export async function findStudies(db: Db, refs: readonly string[]): Promise<StudyRow[]> {
  if (refs.length === 0) return [];
  return rowsOf<StudyRow>(
    await db.execute(sql`
      select id, name, preset, status from studies
      where id in (${list(refs)}) or name in (${list(refs)})
      order by created_at, id`),
  );
}

export async function listStudyIds(db: Db): Promise<string[]> {
  return rowsOf<{ id: string }>(await db.execute(sql`select id from studies order by created_at, id`)).map((r) => r.id);
}

/** The started trials of the studies (running, done, failed) with their condition columns and scheduling state. */
export interface TrialStateRow extends TrialConditionFields {
  study_id: string;
  trial_key: string;
  position: number;
  label: string | null;
  kind: string;
  seed: number | null;
  status: string;
  attempt: number;
  worker: string | null;
  started_at: Date | string | null;
  finished_at: Date | string | null;
}

/** `trialKeys` narrows to those trials (the live page draws one running trial's curve). */
export async function trialStates(db: Db, studyIds: readonly string[], trialKeys?: readonly string[]): Promise<TrialStateRow[]> {
  if (studyIds.length === 0 || trialKeys?.length === 0) return [];
  return rowsOf<TrialStateRow>(
    await db.execute(sql`
      select st.study_id, st.trial_key, st.position::int as position, st.label,
             t.kind, t.dataset, t.dataset_variant, t.architecture, t.modalities, t.algorithm, t.profile,
             t.lr::float8 as lr, t.l1::float8 as l1, t.alpha::float8 as alpha, t.q::int as q, t.seed::int as seed,
             t.status, t.attempt::int as attempt, t.worker, t.started_at, t.finished_at
      from trials t join study_trials st on st.trial_key = t.trial_key
      where t.status in ('running', 'done', 'failed') and st.study_id in (${list(studyIds)})${trialKeys ? sql` and st.trial_key in (${list(trialKeys)})` : sql``}
      order by st.study_id, st.position`),
  );
}

/** A row of the store's `study_progress` view: how many trials of the study are in each state. */
export type StudyCountsRow = Omit<StudyProgressRow, 'diverged'>;

export async function studyCounts(db: Db, studyIds: readonly string[]): Promise<StudyCountsRow[]> {
  if (studyIds.length === 0) return [];
  return rowsOf<StudyCountsRow>(
    await db.execute(sql`
      select study_id, trials, pending, running, done, failed from study_progress
      where study_id in (${list(studyIds)})
      order by study_id`),
  );
}

/** The per-trial rows of the store's `trial_outcomes` view (finished trials with a result): the columns the report reads. */
export type TrialOutcomeRow = Pick<
  StoreTrialOutcomeRow,
  | 'study_id' | 'trial_key' | 'test_acc' | 'acc_f' | 'acc_f0' | 'acc_f1' | 'acc_f0_prime' | 'acc_f1_prime'
  | 'u_m1_given_m0' | 'u_m0_given_m1' | 'd_util' | 'd_speed' | 'r_f' | 'best_epoch' | 'diverged'
>;

export async function trialOutcomes(db: Db, studyIds: readonly string[]): Promise<TrialOutcomeRow[]> {
  if (studyIds.length === 0) return [];
  return rowsOf<TrialOutcomeRow>(
    await db.execute(sql`
      select study_id, trial_key, test_acc, acc_f, acc_f0, acc_f1, acc_f0_prime, acc_f1_prime,
             u_m1_given_m0, u_m0_given_m1, d_util, d_speed, r_f, best_epoch, diverged
      from trial_outcomes
      where study_id in (${list(studyIds)})
      order by study_id, position`),
  );
}

/** A row of the `condition_summary` view. */
export type ConditionSummarySqlRow = TrialConditionFields & SummaryMetrics & { study_id: string };

export async function conditionSummary(db: Db, studyIds: readonly string[]): Promise<ConditionSummarySqlRow[]> {
  if (studyIds.length === 0) return [];
  return rowsOf<ConditionSummarySqlRow>(
    await db.execute(sql`
      select * from condition_summary
      where study_id in (${list(studyIds)})
      order by study_id, dataset, dataset_variant, architecture, modalities, algorithm, profile, lr, l1, alpha, q`),
  );
}

export interface EpochSqlRow {
  trial_key: string;
  epoch: number;
  train_acc: number | null;
  train_acc_0: number | null;
  train_acc_1: number | null;
  val_acc: number | null;
  val_acc_0: number | null;
  val_acc_1: number | null;
  test_acc: number | null;
  test_acc_0: number | null;
  test_acc_1: number | null;
  loss: number | null;
  lr: number | null;
  d_speed: number | null;
  regular_steps: number | null;
  rebalance_steps: number | null;
  /** Every branch's accuracies, for nets with more than two modalities (NULL otherwise). */
  branch_acc: { train: (number | null)[]; val: (number | null)[]; test: (number | null)[] } | null;
}

/** Learning curves of the studies' trials, ordered by trial and epoch. */
export async function epochCurves(db: Db, studyIds: readonly string[], trialKeys?: readonly string[]): Promise<EpochSqlRow[]> {
  if (studyIds.length === 0 || trialKeys?.length === 0) return [];
  return rowsOf<EpochSqlRow>(
    await db.execute(sql`
      select e.trial_key, e.epoch::int as epoch, e.train_acc, e.train_acc_0, e.train_acc_1, e.val_acc, e.val_acc_0,
             e.val_acc_1, e.test_acc, e.test_acc_0, e.test_acc_1, e.loss, e.lr, e.d_speed,
             e.regular_steps::int as regular_steps, e.rebalance_steps::int as rebalance_steps, e.branch_acc
      from epochs e
      where e.trial_key in (select trial_key from study_trials where study_id in (${list(studyIds)}))${trialKeys ? sql` and e.trial_key in (${list(trialKeys)})` : sql``}
      order by e.trial_key, e.epoch`),
  );
}
