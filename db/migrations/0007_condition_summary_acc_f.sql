-- Table 1 reports A(f), the regular-mode accuracy (issue 13); in the `code` profile test_acc is measured in the
-- balancing mode of the best epoch and can differ. The per-condition view carries both (new columns go last: a
-- replaced view keeps its existing columns in place).
CREATE OR REPLACE VIEW "condition_summary" AS
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
  avg(diverged::int)::float8 AS diverged_fraction,
  condition_key,
  avg(acc_f)::float8 AS acc_f_mean,
  stddev_samp(acc_f)::float8 AS acc_f_std
FROM "trial_outcomes"
GROUP BY study_id, dataset, dataset_variant, architecture, modalities, algorithm, profile, lr, l1, alpha, q, condition_key;
