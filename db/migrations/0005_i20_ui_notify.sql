-- i20-ui: `mmsweep ui` follows running trials live. On a Postgres server it LISTENs on channel mmsweep_ui; these
-- triggers NOTIFY it when an epoch row is written (payload: {"kind":"epoch","trial":…,"epoch":…}) and when trials
-- or results change (one statement-level notice: a registration batch of 500 trials sends one, not 500).
-- Notifications are sent at commit and dropped when nobody listens; the embedded PGlite database fires them too
-- but `mmsweep ui` polls it instead (its socket server shares one session among clients).
CREATE OR REPLACE FUNCTION mmsweep_ui_notify_epoch() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  PERFORM pg_notify('mmsweep_ui', json_build_object('kind', 'epoch', 'trial', NEW.trial_key, 'epoch', NEW.epoch)::text);
  RETURN NULL;
END
$fn$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION mmsweep_ui_notify_table() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  PERFORM pg_notify('mmsweep_ui', json_build_object('kind', TG_TABLE_NAME)::text);
  RETURN NULL;
END
$fn$;
--> statement-breakpoint
DROP TRIGGER IF EXISTS epochs_notify_ui ON epochs;
--> statement-breakpoint
CREATE TRIGGER epochs_notify_ui AFTER INSERT OR UPDATE ON epochs FOR EACH ROW EXECUTE FUNCTION mmsweep_ui_notify_epoch();
--> statement-breakpoint
DROP TRIGGER IF EXISTS trials_notify_ui ON trials;
--> statement-breakpoint
CREATE TRIGGER trials_notify_ui AFTER INSERT OR UPDATE OR DELETE ON trials FOR EACH STATEMENT EXECUTE FUNCTION mmsweep_ui_notify_table();
--> statement-breakpoint
DROP TRIGGER IF EXISTS results_notify_ui ON results;
--> statement-breakpoint
CREATE TRIGGER results_notify_ui AFTER INSERT OR UPDATE OR DELETE ON results FOR EACH STATEMENT EXECUTE FUNCTION mmsweep_ui_notify_table();
