import { defineConfig } from "drizzle-kit";

// Generation needs no database. `npm run db:migrate` applies migrations (worker/migrate.ts).
export default defineConfig({
  dialect: "postgresql",
  schema: [
    "./shared/db/audit-logs.ts",
    "./shared/db/email-messages.ts",
    "./shared/db/webhook-events.ts",
    "./shared/db/stripe-customers.ts",
    "./shared/db/stripe-subscriptions.ts",
    "./shared/db/stripe-invoices.ts",
    "./shared/db/reports.ts",
  ],
  out: "./drizzle",
});
