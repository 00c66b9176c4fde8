ALTER TABLE "study_trials" DROP CONSTRAINT "study_trials_study_id_studies_id_fk";
--> statement-breakpoint
ALTER TABLE "study_trials" DROP CONSTRAINT "study_trials_trial_key_trials_trial_key_fk";
--> statement-breakpoint
DROP INDEX "trials_status_idx";--> statement-breakpoint
CREATE INDEX "trials_status_idx" ON "trials" USING btree ("status") WHERE "trials"."status" <> 'pending';
--> statement-breakpoint
-- Issue 15 (branch i15-scale): study_trials no longer has foreign keys to studies and trials. A foreign key checks
-- each inserted membership with a query of its own (two per trial), which cost a third of the registering
-- statement's server time; these statement-level triggers keep the same rules with one check per statement.
--
-- Every membership names an existing study and trial. Registration (db/registration.ts) inserts the trials in the
-- same statement, and reads the trials that already existed FOR SHARE, so no concurrent delete can remove one
-- before it commits; a membership inserted by hand is checked here but takes no row locks (a concurrent delete
-- of its trial by hand is not guarded against, as it would be by a foreign key).
CREATE FUNCTION mmsweep_study_trials_check_refs() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  bad record;
BEGIN
  -- Scalar subqueries: one index probe per new row whatever the planner thinks of the transition table's size.
  SELECT n.study_id, n.trial_key INTO bad FROM new_rows n
  WHERE (SELECT 1 FROM trials t WHERE t.trial_key = n.trial_key) IS NULL
     OR (SELECT 1 FROM studies s WHERE s.id = n.study_id) IS NULL
  LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'insert or update on table "study_trials" names a missing study or trial: study %, trial %', bad.study_id, bad.trial_key
      USING ERRCODE = 'foreign_key_violation', TABLE = 'study_trials';
  END IF;
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER study_trials_refs_insert AFTER INSERT ON study_trials
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION mmsweep_study_trials_check_refs();
--> statement-breakpoint
CREATE TRIGGER study_trials_refs_update AFTER UPDATE ON study_trials
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION mmsweep_study_trials_check_refs();
--> statement-breakpoint
-- ON DELETE CASCADE: deleting trials or studies deletes their memberships (whose own trigger recounts the studies).
CREATE FUNCTION mmsweep_trials_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM study_trials st USING old_rows o WHERE st.trial_key = o.trial_key;
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER trials_memberships_delete AFTER DELETE ON trials
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION mmsweep_trials_deleted();
--> statement-breakpoint
CREATE FUNCTION mmsweep_studies_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM study_trials st USING old_rows o WHERE st.study_id = o.id;
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER studies_memberships_delete AFTER DELETE ON studies
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION mmsweep_studies_deleted();
--> statement-breakpoint
-- TRUNCATE fires no delete triggers: empty the memberships (and their counts) with the table they name.
CREATE FUNCTION mmsweep_memberships_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  TRUNCATE study_trials;
  UPDATE study_counts SET trials = 0, pending = 0, running = 0, done = 0, failed = 0;
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER trials_memberships_truncate AFTER TRUNCATE ON trials FOR EACH STATEMENT EXECUTE FUNCTION mmsweep_memberships_truncated();
--> statement-breakpoint
CREATE TRIGGER studies_memberships_truncate AFTER TRUNCATE ON studies FOR EACH STATEMENT EXECUTE FUNCTION mmsweep_memberships_truncated();
--> statement-breakpoint
-- ON UPDATE NO ACTION: a study or trial that has memberships keeps its key. Row triggers that fire only on
-- statements that set the key, so claims and results (which never do) pay nothing.
CREATE FUNCTION mmsweep_member_key_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  named boolean;
BEGIN
  -- One branch per table: PL/pgSQL plans only the branch it runs (OLD has trial_key or id, not both).
  IF TG_TABLE_NAME = 'trials' THEN
    named := EXISTS (SELECT 1 FROM study_trials WHERE trial_key = OLD.trial_key);
  ELSE
    named := EXISTS (SELECT 1 FROM study_trials WHERE study_id = OLD.id);
  END IF;
  IF named THEN
    RAISE EXCEPTION 'update on table "%" changes a key that study_trials still names', TG_TABLE_NAME
      USING ERRCODE = 'foreign_key_violation', TABLE = TG_TABLE_NAME;
  END IF;
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER trials_member_key_update AFTER UPDATE OF trial_key ON trials
  FOR EACH ROW WHEN (OLD.trial_key IS DISTINCT FROM NEW.trial_key) EXECUTE FUNCTION mmsweep_member_key_changed();
--> statement-breakpoint
CREATE TRIGGER studies_member_key_update AFTER UPDATE OF id ON studies
  FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION mmsweep_member_key_changed();
