// `npm test`: runs vitest with the throwaway test CA trusted. Miniflare (workerd) reads
// NODE_EXTRA_CA_CERTS once at start-up, so it has to be in the environment before vitest starts;
// the edge's TLS tests then reach the test Redis over `rediss://` with full verification.
import { spawn } from "node:child_process";
import { testTls } from "./local-services.ts";

const child = spawn("vitest", ["run", ...process.argv.slice(2)], {
  stdio: "inherit",
  env: { ...process.env, NODE_EXTRA_CA_CERTS: testTls().caCert },
});
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => child.kill(signal));
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
