// The README's client example. Compiled by `npm run typecheck` (part of `npm test`) and run
// against the app by edge/client.test.ts. Run it against a deployment with:
//   EDGEFLEET_URL=https://edge.example.com EDGEFLEET_API_KEY=... node client/example.ts
import { createClient, EdgefleetError, type EdgefleetClient } from "./edgefleet.ts";

export async function example(client: EdgefleetClient): Promise<string> {
  // An audit event; `payload` is any JSON object.
  await client.events.record({ name: "user.signed_in", type: "domain", accountId: "acct_42", payload: { ip: "203.0.113.7" } });

  // A job of your own type: `data` is checked against shared/jobs/report.ts at compile time.
  const { id } = await client.jobs.enqueue("report", { accountId: "acct_42", month: "2026-11" }, { idempotencyKey: "report-acct_42-2026-11" });
  const job = await client.jobs.get("report", id);
  console.log(`report job ${job.id} is ${job.state}`);

  try {
    await client.jobs.enqueue("report", { accountId: "acct_42", month: "2026-13" });
  } catch (err) {
    // Errors carry the API's stable code and the field at fault.
    if (!(err instanceof EdgefleetError)) throw err;
    console.log(`refused: ${err.code} at ${err.field}`); // refused: validation_failed at data.month
  }
  return id;
}

if (import.meta.main) {
  const baseUrl = process.env.EDGEFLEET_URL;
  const token = process.env.EDGEFLEET_API_KEY;
  if (!baseUrl || !token) throw new Error("set EDGEFLEET_URL and EDGEFLEET_API_KEY");
  await example(createClient({ baseUrl, token }));
}
