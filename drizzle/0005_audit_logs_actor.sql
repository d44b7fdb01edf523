ALTER TABLE "audit_logs" ADD COLUMN "actor_type" text;--> statement-breakpoint
ALTER TABLE "audit_logs" ADD COLUMN "actor_id" text;