import { conditionColumns, type ConditionColumn } from './conditions.ts';

/**
 * The aggregates of the `condition_summary` view (db/migrations/0001_views.sql, grouped by condition_key since
 * 0004_hostile_input.sql), for `studySummary` with a
 * custom grouping. Keep both in step: test/db checks that the view and this text give the same rows.
 */
export const summaryAggregatesSql = `
  count(*)::int AS n,
  avg(test_acc)::float8 AS test_acc_mean,
  stddev_samp(test_acc)::float8 AS test_acc_std,
  avg(d_util)::float8 AS d_util_mean,
  stddev_samp(d_util)::float8 AS d_util_std,
  avg(d_speed)::float8 AS d_speed_mean,
  stddev_samp(d_speed)::float8 AS d_speed_std,
  avg(r_f)::float8 AS r_f_mean,
  stddev_samp(r_f)::float8 AS r_f_std,
  avg(diverged::int)::float8 AS diverged_fraction,
  avg(acc_f)::float8 AS acc_f_mean,
  stddev_samp(acc_f)::float8 AS acc_f_std`;

export const summaryMetricColumns = [
  'n',
  'test_acc_mean',
  'test_acc_std',
  'acc_f_mean',
  'acc_f_std',
  'd_util_mean',
  'd_util_std',
  'd_speed_mean',
  'd_speed_std',
  'r_f_mean',
  'r_f_std',
  'diverged_fraction',
] as const;

export interface SummaryMetrics {
  n: number;
  test_acc_mean: number | null;
  /** Sample standard deviation (n − 1); null when n < 2. */
  test_acc_std: number | null;
  /** A(f), regular-mode accuracy (Table 1's figure); equals test_acc except in the `code` profile's balancing algorithms. */
  acc_f_mean: number | null;
  acc_f_std: number | null;
  d_util_mean: number | null;
  d_util_std: number | null;
  d_speed_mean: number | null;
  d_speed_std: number | null;
  r_f_mean: number | null;
  r_f_std: number | null;
  diverged_fraction: number;
}

/** A row of `condition_summary` (all condition columns) or of `studySummary(…, by)` (the `by` columns). */
export type ConditionSummaryRow = Partial<Record<ConditionColumn, string | number | null>> &
  SummaryMetrics & { study_id?: string };

/** The condition columns of a trial as the views return them (see conditions.ts). */
export interface TrialConditionFields {
  dataset: string;
  dataset_variant: string;
  architecture: string;
  modalities: string | null;
  algorithm: string | null;
  profile: string | null;
  lr: number | null;
  l1: number | null;
  alpha: number | null;
  q: number | null;
  /** md5 of the trial's spec without its seed: one value per configuration. */
  condition_key: string;
}

/** A row of the per-trial `trial_outcomes` view. */
export interface TrialOutcomeRow extends TrialConditionFields {
  study_id: string;
  trial_key: string;
  position: number;
  label: string | null;
  seed: number | null;
  attempt: number;
  worker: string | null;
  backend: string | null;
  device: string | null;
  test_acc: number | null;
  acc_f: number | null;
  acc_f0: number | null;
  acc_f1: number | null;
  acc_f0_prime: number | null;
  acc_f1_prime: number | null;
  u_m1_given_m0: number | null;
  u_m0_given_m1: number | null;
  d_util: number | null;
  d_speed: number | null;
  abs_d_util: number | null;
  abs_d_speed: number | null;
  r_f: number | null;
  best_epoch: number | null;
  steps_t: number | null;
  epochs: number | null;
  diverged: boolean;
  started_at: Date | null;
  finished_at: Date | null;
}

/** A row of the `study_progress` view. */
export interface StudyProgressRow {
  study_id: string;
  trials: number;
  pending: number;
  running: number;
  done: number;
  failed: number;
  diverged: number;
}

export { conditionColumns };
