-- `mmsweep sql` runs as a read-only role (DESIGN §5): mmsweep_readonly, NOLOGIN, SELECT on mmsweep's tables and
-- views only. Roles belong to the whole server, so several databases of one server share it (created once, the
-- race between two migrating databases tolerated). An application role that may not create roles leaves it to a
-- privileged user (infra/distributed/init-roles.sql): the migration warns and `mmsweep sql` refuses, saying why.
--
-- `SET LOCAL ROLE` alone is escapable with a superuser connection: `select set_config('role', 'postgres', true),
-- query_to_xml('select pg_read_file(…)', …)` switches back inside the statement, because SET ROLE is checked
-- against the session user. So the query runs inside run_read_only(), a SECURITY DEFINER function owned by the
-- read-only role: Postgres refuses to change `role` or `session_authorization` within one, and wrapping the text
-- as a FROM subquery admits a query, not COPY / SET / DO.
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'mmsweep_readonly') THEN
    BEGIN
      CREATE ROLE mmsweep_readonly NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS;
    EXCEPTION
      WHEN duplicate_object OR unique_violation THEN NULL;
      WHEN insufficient_privilege THEN
        RAISE WARNING 'mmsweep: cannot create role mmsweep_readonly (%): mmsweep sql refuses until a privileged user runs infra/distributed/init-roles.sql', SQLERRM;
        RETURN;
    END;
  END IF;
  -- A non-superuser application role must be a member to SET ROLE to it.
  IF NOT pg_has_role(current_user, 'mmsweep_readonly', 'MEMBER') THEN
    BEGIN
      EXECUTE format('GRANT mmsweep_readonly TO %I', current_user);
    EXCEPTION WHEN insufficient_privilege THEN
      RAISE WARNING 'mmsweep: cannot grant mmsweep_readonly to %: mmsweep sql refuses until a privileged user does', current_user;
      RETURN;
    END;
  END IF;
  GRANT USAGE ON SCHEMA public TO mmsweep_readonly;
  GRANT SELECT ON ALL TABLES IN SCHEMA public TO mmsweep_readonly;
  -- Tables and views of later migrations (created by this same application role) are readable too.
  ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO mmsweep_readonly;
  CREATE SCHEMA IF NOT EXISTS mmsweep_sql;
  REVOKE ALL ON SCHEMA mmsweep_sql FROM PUBLIC;
  -- The new owner of a function needs CREATE on its schema; taken back once the function is handed over.
  GRANT USAGE, CREATE ON SCHEMA mmsweep_sql TO mmsweep_readonly;
  CREATE OR REPLACE FUNCTION mmsweep_sql.run_read_only(query text) RETURNS SETOF json
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_catalog
  AS $fn$
  BEGIN
    RETURN QUERY EXECUTE 'SELECT row_to_json(q.*) FROM (' || query || E'\n) AS q';
  END
  $fn$;
  ALTER FUNCTION mmsweep_sql.run_read_only(text) OWNER TO mmsweep_readonly;
  REVOKE ALL ON FUNCTION mmsweep_sql.run_read_only(text) FROM PUBLIC;
  GRANT EXECUTE ON FUNCTION mmsweep_sql.run_read_only(text) TO mmsweep_readonly;
  REVOKE CREATE ON SCHEMA mmsweep_sql FROM mmsweep_readonly;
END
$$;
--> statement-breakpoint
-- W2: trials that differ in anything but the seed (epoch cap, width, subset, batch size, momentum…) are different
-- conditions. condition_key is the md5 of the trial's spec without its seed (jsonb text is canonical: sorted keys),
-- appended last so CREATE OR REPLACE keeps both views' grants.
CREATE OR REPLACE VIEW "trial_outcomes" AS
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
  t.finished_at,
  md5((t.spec - 'seed')::text) AS condition_key
FROM "study_trials" st
JOIN "trials" t ON t.trial_key = st.trial_key
JOIN "results" r ON r.trial_key = st.trial_key;
--> statement-breakpoint
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
  condition_key
FROM "trial_outcomes"
GROUP BY study_id, dataset, dataset_variant, architecture, modalities, algorithm, profile, lr, l1, alpha, q, condition_key;
