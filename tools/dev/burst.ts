// `npm run dev:burst -- [events]`: posts a burst of audit events (default 5 000, in batches of 100)
// to the local edge with the key `npm run dev` generated, so the autoscaler's decisions in the dev
// output show the fleet scaling up from zero and, a little later, back down. EDGE_URL defaults to
// http://127.0.0.1:8787.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { ROOT } from "./local-services.ts";

const API_KEY_FILE = join(ROOT, ".data/dev/api-key");
const BATCH = 100;
const IN_FLIGHT = 8;

async function main(args: string[]): Promise<number> {
  const total = z.coerce.number().int().min(1).max(100_000).default(5_000).safeParse(args[0]);
  const edgeUrl = z.url().default("http://127.0.0.1:8787").parse(process.env.EDGE_URL);
  if (!total.success || args.length > 1) {
    console.error("usage: npm run dev:burst -- [events, 1–100000, default 5000]");
    return 2;
  }
  if (!existsSync(API_KEY_FILE)) {
    console.error(`no API key: run \`npm run dev\` first (it writes ${API_KEY_FILE})`);
    return 2;
  }
  const apiKey = readFileSync(API_KEY_FILE, "utf8").trim();
  const started = performance.now();
  let accepted = 0;
  let next = 0;
  const failures = new Map<number, number>();
  const lane = async () => {
    while (next < total.data) {
      const count = Math.min(BATCH, total.data - next);
      next += count;
      const events = Array.from({ length: count }, (_, i) => ({ name: "dev.burst", type: "domain", payload: { n: next - count + i } }));
      const res = await fetch(`${edgeUrl}/v1/events`, {
        method: "POST",
        headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
        body: JSON.stringify({ events }),
        signal: AbortSignal.timeout(15_000),
      });
      await res.arrayBuffer();
      if (res.status === 202) accepted += count;
      else failures.set(res.status, (failures.get(res.status) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, lane));
  const ms = Math.round(performance.now() - started);
  console.log(`${accepted} of ${total.data} events accepted in ${ms} ms (queue audit)${failures.size ? `; refused: ${JSON.stringify(Object.fromEntries(failures))}` : ""}`);
  console.log("watch the `npm run dev` output: autoscaler decision … from 0 to N, then back down to 0");
  return failures.size ? 1 : 0;
}

process.exit(await main(process.argv.slice(2)));
