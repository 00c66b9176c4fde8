CREATE TABLE "study_specs" (
	"sha256" text PRIMARY KEY NOT NULL,
	"document" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "studies" ADD COLUMN "spec_sha256" text;--> statement-breakpoint
ALTER TABLE "studies" ADD COLUMN "registered_sha256" text;