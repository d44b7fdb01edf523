ALTER TABLE "stripe_invoices" ALTER COLUMN "amount_due" SET DATA TYPE bigint;--> statement-breakpoint
ALTER TABLE "stripe_invoices" ALTER COLUMN "amount_paid" SET DATA TYPE bigint;