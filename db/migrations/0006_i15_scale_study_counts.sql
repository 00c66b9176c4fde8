CREATE TABLE "study_counts" (
	"study_id" text PRIMARY KEY NOT NULL,
	"trials" integer DEFAULT 0 NOT NULL,
	"pending" integer DEFAULT 0 NOT NULL,
	"running" integer DEFAULT 0 NOT NULL,
	"done" integer DEFAULT 0 NOT NULL,
	"failed" integer DEFAULT 0 NOT NULL
);
--> statement-breakpoint
DROP INDEX "study_trials_trial_idx";--> statement-breakpoint
ALTER TABLE "study_counts" ADD CONSTRAINT "study_counts_study_id_studies_id_fk" FOREIGN KEY ("study_id") REFERENCES "public"."studies"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "results_diverged_idx" ON "results" USING btree ("trial_key") WHERE "results"."diverged";--> statement-breakpoint
ALTER TABLE "study_trials" DROP CONSTRAINT "study_trials_pk";
--> statement-breakpoint
ALTER TABLE "study_trials" ADD CONSTRAINT "study_trials_pk" PRIMARY KEY("trial_key","study_id");--> statement-breakpoint
-- Issue 15 (branch i15-scale): per-study state counts, so `study_progress` (`mmsweep study status`, the workflow's
-- summaries) reads one row instead of joining every membership of a 10⁶-trial study. New memberships are counted
-- by the statement that inserts them (db/registration.ts, insertTrialBatch: a trigger that looks every new member
-- up again cost a third of the registration's time); state changes, deletions and edits of memberships here.
-- Deltas are applied by one upsert per statement in study_id order (a fixed lock order: two statements touching
-- the same studies cannot deadlock on their counts rows).
CREATE FUNCTION mmsweep_apply_count_deltas(deltas jsonb) RETURNS void LANGUAGE sql AS $$
  INSERT INTO study_counts AS c (study_id, trials, pending, running, done, failed)
  SELECT d.study_id, d.trials, d.pending, d.running, d.done, d.failed
  FROM jsonb_to_recordset(deltas) AS d(study_id text, trials int, pending int, running int, done int, failed int)
  WHERE EXISTS (SELECT 1 FROM studies s WHERE s.id = d.study_id)
  ORDER BY d.study_id
  ON CONFLICT (study_id) DO UPDATE SET
    trials = c.trials + excluded.trials, pending = c.pending + excluded.pending, running = c.running + excluded.running,
    done = c.done + excluded.done, failed = c.failed + excluded.failed
$$;
--> statement-breakpoint
-- The exact counts of some studies, from scratch (after deletes and edits of memberships, which are rare).
CREATE FUNCTION mmsweep_recount_studies(ids text[]) RETURNS void LANGUAGE sql AS $$
  DELETE FROM study_counts WHERE study_id = ANY(ids);
  INSERT INTO study_counts (study_id, trials, pending, running, done, failed)
  SELECT st.study_id, count(*), count(*) FILTER (WHERE t.status = 'pending'), count(*) FILTER (WHERE t.status = 'running'),
         count(*) FILTER (WHERE t.status = 'done'), count(*) FILTER (WHERE t.status = 'failed')
  FROM study_trials st JOIN trials t ON t.trial_key = st.trial_key
  WHERE st.study_id = ANY(ids) AND EXISTS (SELECT 1 FROM studies s WHERE s.id = st.study_id)
  GROUP BY st.study_id
  ORDER BY st.study_id
$$;
--> statement-breakpoint
CREATE FUNCTION mmsweep_study_trials_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM mmsweep_recount_studies(ARRAY(SELECT DISTINCT study_id FROM old_rows));
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER study_trials_counts_delete AFTER DELETE ON study_trials
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION mmsweep_study_trials_deleted();
--> statement-breakpoint
CREATE FUNCTION mmsweep_study_trials_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM mmsweep_recount_studies(ARRAY(SELECT study_id FROM old_rows UNION SELECT study_id FROM new_rows));
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER study_trials_counts_update AFTER UPDATE ON study_trials
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION mmsweep_study_trials_updated();
--> statement-breakpoint
-- A trial that changes state moves from one count to another in every study it belongs to (the primary key of
-- study_trials starts with trial_key, so this reads the trial's memberships only).
CREATE FUNCTION mmsweep_trials_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM mmsweep_apply_count_deltas(coalesce((
    SELECT jsonb_agg(jsonb_build_object('study_id', study_id, 'trials', 0, 'pending', pending, 'running', running,
                                        'done', done, 'failed', failed))
    FROM (
      SELECT st.study_id,
             sum((n.status = 'pending')::int - (o.status = 'pending')::int) AS pending,
             sum((n.status = 'running')::int - (o.status = 'running')::int) AS running,
             sum((n.status = 'done')::int - (o.status = 'done')::int) AS done,
             sum((n.status = 'failed')::int - (o.status = 'failed')::int) AS failed
      FROM old_rows o JOIN new_rows n ON n.trial_key = o.trial_key JOIN study_trials st ON st.trial_key = n.trial_key
      WHERE o.status IS DISTINCT FROM n.status
      GROUP BY st.study_id) g), '[]'::jsonb));
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER trials_counts_update AFTER UPDATE ON trials
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION mmsweep_trials_updated();
--> statement-breakpoint
-- The counts of the studies already in the store.
SELECT mmsweep_recount_studies(ARRAY(SELECT id FROM studies));
--> statement-breakpoint
-- Same columns and types as before. diverged is counted from the partial index of diverged results (few rows).
CREATE OR REPLACE VIEW "study_progress" AS
SELECT
  c.study_id,
  c.trials,
  c.pending,
  c.running,
  c.done,
  c.failed,
  (SELECT count(*) FROM results r JOIN study_trials st ON st.trial_key = r.trial_key
   WHERE r.diverged AND st.study_id = c.study_id)::int AS diverged
FROM "study_counts" c;
