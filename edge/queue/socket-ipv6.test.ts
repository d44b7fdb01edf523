// A REDIS_URL with a literal IPv6 host (`redis://[::1]:6379`) must reach connect() without the
// URL's brackets. The test Redis listens on 127.0.0.1 only, so the connect below records the
// address it was given and then dials the test Redis, proving the whole enqueue path still works.
import { connect } from "cloudflare:sockets";
import { describe, expect, inject, it } from "vitest";
import { createProducer } from "./producer.ts";
import { createSocketTransport, socketHostname } from "./socket-transport.ts";

describe("IPv6 Redis hosts", () => {
  it("strips the brackets of a literal IPv6 host and leaves names and IPv4 alone", () => {
    expect(socketHostname(new URL("redis://:pw@[::1]:6380"))).toBe("::1");
    expect(socketHostname(new URL("rediss://[2001:db8::7]/2"))).toBe("2001:db8::7");
    expect(socketHostname(new URL("redis://127.0.0.1:6379"))).toBe("127.0.0.1");
    expect(socketHostname(new URL("rediss://eu1-cat.upstash.io:6379"))).toBe("eu1-cat.upstash.io");
  });

  it("dials ::1 (not [::1]) for redis://[::1]:port, with the URL's password and port", async () => {
    const test = new URL(inject("redisUrl"));
    const url = new URL(test.href);
    url.hostname = "[::1]";
    const dialled: SocketAddress[] = [];
    const recording: typeof connect = (address, options) => {
      const target = typeof address === "string" ? { hostname: address, port: 0 } : address;
      dialled.push(target);
      return connect({ hostname: test.hostname, port: target.port }, options);
    };
    const transport = createSocketTransport(url.href, { connect: recording });
    try {
      await createProducer(transport).ping();
    } finally {
      await transport.close();
    }
    expect(dialled).toEqual([{ hostname: "::1", port: Number(test.port) }]);
  });
});
