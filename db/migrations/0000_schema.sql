CREATE TABLE "checkpoint_chunks" (
	"trial_key" text NOT NULL,
	"epoch" integer NOT NULL,
	"chunk_index" integer NOT NULL,
	"data" "bytea" NOT NULL,
	CONSTRAINT "checkpoint_chunks_pk" PRIMARY KEY("trial_key","epoch","chunk_index")
);
--> statement-breakpoint
CREATE TABLE "checkpoints" (
	"trial_key" text NOT NULL,
	"epoch" integer NOT NULL,
	"attempt" integer NOT NULL,
	"byte_size" bigint NOT NULL,
	"chunk_count" integer NOT NULL,
	"sha256" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "checkpoints_pk" PRIMARY KEY("trial_key","epoch")
);
--> statement-breakpoint
CREATE TABLE "epochs" (
	"trial_key" text NOT NULL,
	"epoch" integer NOT NULL,
	"attempt" integer NOT NULL,
	"train_acc" double precision,
	"train_acc_0" double precision,
	"train_acc_1" double precision,
	"val_acc" double precision,
	"val_acc_0" double precision,
	"val_acc_1" double precision,
	"test_acc" double precision,
	"test_acc_0" double precision,
	"test_acc_1" double precision,
	"loss" double precision,
	"lr" double precision,
	"d_speed" double precision,
	"regular_steps" integer,
	"rebalance_steps" integer,
	"wall_seconds" double precision,
	"recorded_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "epochs_pk" PRIMARY KEY("trial_key","epoch")
);
--> statement-breakpoint
CREATE TABLE "results" (
	"trial_key" text PRIMARY KEY NOT NULL,
	"attempt" integer NOT NULL,
	"test_acc" double precision,
	"acc_f" double precision,
	"acc_f0" double precision,
	"acc_f1" double precision,
	"acc_f0_prime" double precision,
	"acc_f1_prime" double precision,
	"u_m1_given_m0" double precision,
	"u_m0_given_m1" double precision,
	"d_util" double precision,
	"d_speed" double precision,
	"r_f" double precision,
	"best_epoch" integer,
	"steps_t" integer,
	"epochs" integer,
	"diverged" boolean DEFAULT false NOT NULL,
	"raw" jsonb,
	"recorded_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "studies" (
	"id" text PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"preset" text,
	"spec" jsonb NOT NULL,
	"status" text DEFAULT 'running' NOT NULL,
	"code_version" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"finished_at" timestamp with time zone,
	CONSTRAINT "studies_status_check" CHECK ("studies"."status" in ('running', 'paused', 'done', 'failed', 'cancelled'))
);
--> statement-breakpoint
CREATE TABLE "study_trials" (
	"study_id" text NOT NULL,
	"trial_key" text NOT NULL,
	"position" integer NOT NULL,
	"label" text,
	CONSTRAINT "study_trials_pk" PRIMARY KEY("study_id","trial_key")
);
--> statement-breakpoint
CREATE TABLE "trials" (
	"trial_key" text PRIMARY KEY NOT NULL,
	"spec" jsonb NOT NULL,
	"kind" text NOT NULL,
	"dataset" text NOT NULL,
	"dataset_variant" text DEFAULT '' NOT NULL,
	"architecture" text NOT NULL,
	"modalities" text,
	"algorithm" text,
	"profile" text,
	"lr" double precision,
	"seed" integer,
	"l1" double precision,
	"alpha" double precision,
	"q" integer,
	"status" text DEFAULT 'pending' NOT NULL,
	"attempt" integer DEFAULT 0 NOT NULL,
	"worker" text,
	"backend" text,
	"device" text,
	"started_at" timestamp with time zone,
	"finished_at" timestamp with time zone,
	"error" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "trials_status_check" CHECK ("trials"."status" in ('pending', 'running', 'done', 'failed'))
);
--> statement-breakpoint
ALTER TABLE "checkpoint_chunks" ADD CONSTRAINT "checkpoint_chunks_checkpoint_fk" FOREIGN KEY ("trial_key","epoch") REFERENCES "public"."checkpoints"("trial_key","epoch") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "checkpoints" ADD CONSTRAINT "checkpoints_trial_key_trials_trial_key_fk" FOREIGN KEY ("trial_key") REFERENCES "public"."trials"("trial_key") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "epochs" ADD CONSTRAINT "epochs_trial_key_trials_trial_key_fk" FOREIGN KEY ("trial_key") REFERENCES "public"."trials"("trial_key") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "results" ADD CONSTRAINT "results_trial_key_trials_trial_key_fk" FOREIGN KEY ("trial_key") REFERENCES "public"."trials"("trial_key") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "study_trials" ADD CONSTRAINT "study_trials_study_id_studies_id_fk" FOREIGN KEY ("study_id") REFERENCES "public"."studies"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "study_trials" ADD CONSTRAINT "study_trials_trial_key_trials_trial_key_fk" FOREIGN KEY ("trial_key") REFERENCES "public"."trials"("trial_key") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "study_trials_trial_idx" ON "study_trials" USING btree ("trial_key");--> statement-breakpoint
CREATE INDEX "study_trials_position_idx" ON "study_trials" USING btree ("study_id","position");--> statement-breakpoint
CREATE INDEX "trials_status_idx" ON "trials" USING btree ("status");--> statement-breakpoint
CREATE INDEX "trials_condition_idx" ON "trials" USING btree ("dataset","dataset_variant","architecture","modalities","algorithm","profile","lr","l1","alpha","q");