-- Views for what the paper reports. Hand-written (drizzle-kit does not generate them); db/views.ts holds
-- the same aggregate expressions for `studySummary(studyId, by)` and a test checks both agree.
-- Every aggregate is cast (::int, ::float8) so that postgres.js and PGlite both return JS numbers.

-- One row per (study, finished trial): the histogram-ready per-trial view.
CREATE VIEW "trial_outcomes" AS
SELECT
  st.study_id,
  st.trial_key,
  st.position,
  st.label,
  t.dataset,
  t.dataset_variant,
  t.architecture,
  t.modalities,
  t.algorithm,
  t.profile,
  t.lr,
  t.l1,
  t.alpha,
  t.q,
  t.seed,
  r.attempt,
  t.worker,
  t.backend,
  t.device,
  r.test_acc,
  r.acc_f,
  r.acc_f0,
  r.acc_f1,
  r.acc_f0_prime,
  r.acc_f1_prime,
  r.u_m1_given_m0,
  r.u_m0_given_m1,
  r.d_util,
  r.d_speed,
  abs(r.d_util) AS abs_d_util,
  abs(r.d_speed) AS abs_d_speed,
  r.r_f,
  r.best_epoch,
  r.steps_t,
  r.epochs,
  r.diverged,
  t.started_at,
  t.finished_at
FROM "study_trials" st
JOIN "trials" t ON t.trial_key = st.trial_key
JOIN "results" r ON r.trial_key = st.trial_key;
--> statement-breakpoint

-- Per study and condition: n, mean ± sample std of test accuracy, E[d_util] ± std, E[d_speed] ± std,
-- mean ± std of R(f), fraction diverged. NULL metrics (e.g. d_util when an accuracy was 0) are left out of
-- their own mean; n counts every finished trial.
CREATE VIEW "condition_summary" AS
SELECT
  study_id,
  dataset,
  dataset_variant,
  architecture,
  modalities,
  algorithm,
  profile,
  lr,
  l1,
  alpha,
  q,
  count(*)::int AS n,
  avg(test_acc)::float8 AS test_acc_mean,
  stddev_samp(test_acc)::float8 AS test_acc_std,
  avg(d_util)::float8 AS d_util_mean,
  stddev_samp(d_util)::float8 AS d_util_std,
  avg(d_speed)::float8 AS d_speed_mean,
  stddev_samp(d_speed)::float8 AS d_speed_std,
  avg(r_f)::float8 AS r_f_mean,
  stddev_samp(r_f)::float8 AS r_f_std,
  avg(diverged::int)::float8 AS diverged_fraction
FROM "trial_outcomes"
GROUP BY study_id, dataset, dataset_variant, architecture, modalities, algorithm, profile, lr, l1, alpha, q;
--> statement-breakpoint

-- Per study: how many trials are in each state.
CREATE VIEW "study_progress" AS
SELECT
  st.study_id,
  count(*)::int AS trials,
  (count(*) FILTER (WHERE t.status = 'pending'))::int AS pending,
  (count(*) FILTER (WHERE t.status = 'running'))::int AS running,
  (count(*) FILTER (WHERE t.status = 'done'))::int AS done,
  (count(*) FILTER (WHERE t.status = 'failed'))::int AS failed,
  (count(*) FILTER (WHERE r.diverged))::int AS diverged
FROM "study_trials" st
JOIN "trials" t ON t.trial_key = st.trial_key
LEFT JOIN "results" r ON r.trial_key = st.trial_key
GROUP BY st.study_id;
