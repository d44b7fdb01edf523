// wrangler.toml binds the edge's RedisConnection Durable Object, and wrangler refuses to bundle or
// run an entry that does not export the class of every object it binds. The benchmark's probe
// Workers run under that same wrangler.toml, so they re-export this stand-in; it is never
// instantiated (the probes never touch the binding) and costs their requests nothing.
import { DurableObject } from "cloudflare:workers";

export class RedisConnection extends DurableObject {}
