import { timestamp } from "drizzle-orm/pg-core";

/** Row creation time, set by Postgres. */
export const createdAt = {
  createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
};
