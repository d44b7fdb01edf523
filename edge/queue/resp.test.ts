import { describe, expect, it } from "vitest";
import { encodeCommands, RespDecoder, RespError, type Reply } from "./resp.ts";

const bytes = (s: string) => new TextEncoder().encode(s);

/** Feeds `input` one byte at a time: the worst case of a socket splitting replies anywhere. */
function decodeBytewise(input: Uint8Array): Reply[] {
  const decoder = new RespDecoder();
  const replies: Reply[] = [];
  for (const byte of input) {
    decoder.push(Uint8Array.of(byte));
    for (let r = decoder.next(); r !== undefined; r = decoder.next()) replies.push(r);
  }
  return replies;
}

describe("RESP codec", () => {
  it("encodes commands as arrays of bulk strings, byte-counting UTF-8 and passing binary through", () => {
    const encoded = encodeCommands([["SET", "k", "é"], ["EVALSHA", Uint8Array.of(0x92, 0x00, 0xc0)]]);
    const expected = [
      ...bytes("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n"), 0xc3, 0xa9, ...bytes("\r\n"),
      ...bytes("*2\r\n$7\r\nEVALSHA\r\n$3\r\n"), 0x92, 0x00, 0xc0, ...bytes("\r\n"),
    ];
    expect([...encoded]).toEqual(expected);
  });

  it("encodes every argument exactly as TextEncoder would on its own: astral, lone surrogates, long strings, binary", () => {
    const args = [
      "plain", "", "é", "日本", "🙂", "a\uD800", "\uDC00b", "\uD800\uD800", "x\uDBFF\uDFFFy", "€".repeat(5000),
      "z".repeat(4096), "\uD83D".repeat(4097), Uint8Array.of(0xff, 0x0d, 0x0a), new Uint8Array(0),
    ];
    const perArgument = (command: readonly (string | Uint8Array)[]) => [
      ...bytes(`*${command.length}\r\n`),
      ...command.flatMap((arg) => {
        const b = typeof arg === "string" ? bytes(arg) : arg;
        return [...bytes(`$${b.byteLength}\r\n`), ...b, ...bytes("\r\n")];
      }),
    ];
    const commands = [args, ["EVALSHA", ...args.slice().reverse()], ["PING"]];
    expect([...encodeCommands(commands)]).toEqual(commands.flatMap(perArgument));
  });

  it("decodes every reply type even when split at every byte", () => {
    const wire = bytes(
      "+OK\r\n-NOSCRIPT No matching script\r\n:-5\r\n$5\r\nhé\r\n\r\n$-1\r\n*-1\r\n*0\r\n" +
        "*3\r\n$2\r\nid\r\n*2\r\n:1\r\n$0\r\n\r\n+PONG\r\n",
    );
    const replies = decodeBytewise(wire);
    expect(replies).toEqual(["OK", new RespError("NOSCRIPT No matching script"), -5, "hé\r\n", null, null, [], ["id", [1, ""], "PONG"]]);
    expect((replies[1] as RespError).code).toBe("NOSCRIPT");
  });

  it("waits for the rest of a large bulk string instead of returning a partial value", () => {
    const decoder = new RespDecoder();
    const body = "x".repeat(200_000);
    const wire = bytes(`$${body.length}\r\n${body}\r\n:1\r\n`);
    decoder.push(wire.subarray(0, 100_000));
    expect(decoder.next()).toBeUndefined();
    decoder.push(wire.subarray(100_000));
    expect(decoder.next()).toBe(body);
    expect(decoder.next()).toBe(1);
    expect(decoder.next()).toBeUndefined();
  });

  it("refuses a reply type it does not speak rather than desynchronising", () => {
    const decoder = new RespDecoder();
    decoder.push(bytes(">2\r\n+a\r\n+b\r\n"));
    expect(() => decoder.next()).toThrow(/unexpected type byte 0x3e/);
  });
});
