// `npm run stripe:send -- <event type>`: posts one realistic, correctly signed Stripe event to the
// local edge, as Stripe would, and prints the answer. The secret is the one `npm run dev` generated
// (.data/dev/stripe-webhook-secret) unless STRIPE_WEBHOOK_SECRET is set; the edge is EDGE_URL
// (default http://127.0.0.1:8787). Types with a fixture: see SAMPLE_EVENT_TYPES; any other type
// gets a bare object (the fleet stores it and marks it PROCESSED without side effects).
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { ROOT } from "./local-services.ts";
import { deliver, SAMPLE_EVENT_TYPES, sampleEvent } from "../testing/stripe-fixtures.ts";

export const LOCAL_SECRET_FILE = join(ROOT, ".data/dev/stripe-webhook-secret");

const Env = z.object({
  EDGE_URL: z.url().default("http://127.0.0.1:8787"),
  STRIPE_WEBHOOK_SECRET: z.string().startsWith("whsec_").optional(),
});

async function main(args: string[]): Promise<number> {
  const type = args[0];
  if (!type || args.length > 1) {
    console.error(`usage: npm run stripe:send -- <event type>\n  with fixtures: ${SAMPLE_EVENT_TYPES.join(", ")}`);
    return 2;
  }
  const env = Env.parse(process.env);
  const secret = env.STRIPE_WEBHOOK_SECRET ?? (existsSync(LOCAL_SECRET_FILE) ? readFileSync(LOCAL_SECRET_FILE, "utf8").trim() : undefined);
  if (!secret) {
    console.error(`no webhook secret: run \`npm run dev\` first (it writes ${LOCAL_SECRET_FILE}) or set STRIPE_WEBHOOK_SECRET`);
    return 2;
  }
  const event = sampleEvent(type);
  const res = await deliver(env.EDGE_URL, event, secret);
  console.log(`POST ${env.EDGE_URL}/webhooks/stripe  ${type}  ${event.id}`);
  console.log(`→ ${res.status} ${JSON.stringify(res.body)}`);
  if (res.status === 200) console.log(`job id: ${(res.body as { id: string }).id} (queue stripe-webhook)`);
  return res.status === 200 ? 0 : 1;
}

// Guarded so `npm run dev` can import LOCAL_SECRET_FILE without sending anything.
if (import.meta.main) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(`stripe:send: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    },
  );
}
