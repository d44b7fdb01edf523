/**
 * The scanner the RedisConnection object splits Redis's reply stream with (resp-scanner.ts): it
 * must find the same reply boundaries the decoder does, however the stream is cut into chunks,
 * and hand back exactly the bytes of the replies it skipped.
 */
import { describe, expect, it } from "vitest";
import { RespError } from "./resp.ts";
import { decodeReplies, RespScanner } from "./resp-scanner.ts";

const encoder = new TextEncoder();
// Every reply type, nesting, empty and null forms, a bulk string holding CRLF and multi-byte UTF-8.
const REPLIES = [
  "+OK\r\n", "-NOSCRIPT No matching script.\r\n", ":-42\r\n", "$5\r\nhe\r\nl\r\n", "$-1\r\n", "$0\r\n\r\n",
  "*-1\r\n", "*0\r\n", "*3\r\n$3\r\nabc\r\n*2\r\n:1\r\n$-1\r\n+x\r\n", "$4\r\nñé\r\n",
];
const STREAM = encoder.encode(REPLIES.join(""));

/** Feeds `stream` cut at `cuts`, taking each reply as soon as it is complete. */
function scan(stream: Uint8Array, cuts: number[]): string[] {
  const scanner = new RespScanner();
  const taken: string[] = [];
  let from = 0;
  for (const to of [...cuts, stream.byteLength]) {
    scanner.push(stream.slice(from, to));
    from = to;
    while (scanner.skip()) taken.push(new TextDecoder().decode(scanner.take()));
  }
  return taken;
}

describe("RespScanner", () => {
  it("splits a stream into its replies, byte for byte, whole or cut at any single point", () => {
    expect(scan(STREAM, [])).toEqual(REPLIES);
    for (let cut = 1; cut < STREAM.byteLength; cut++) expect(scan(STREAM, [cut])).toEqual(REPLIES);
  });

  it("splits a stream fed one byte at a time", () => {
    expect(scan(STREAM, Array.from({ length: STREAM.byteLength - 1 }, (_, i) => i + 1))).toEqual(REPLIES);
  });

  it("takes several skipped replies as one run of bytes, which decodeReplies turns into values", () => {
    const scanner = new RespScanner();
    scanner.push(STREAM);
    for (let i = 0; i < 4; i++) expect(scanner.skip()).toBe(true);
    const bytes = scanner.take();
    expect(new TextDecoder().decode(bytes)).toBe(REPLIES.slice(0, 4).join(""));
    expect(decodeReplies(bytes, 4)).toEqual(["OK", new RespError("NOSCRIPT No matching script."), -42, "he\r\nl"]);
  });

  it("refuses a type byte RESP2 does not have instead of losing its place", () => {
    const scanner = new RespScanner();
    scanner.push(encoder.encode(">2\r\n+a\r\n+b\r\n"));
    expect(() => scanner.skip()).toThrow(/unexpected type byte 0x3e/);
  });

  it("decodeReplies refuses bytes that hold fewer replies than expected", () => {
    expect(() => decodeReplies(encoder.encode("+OK\r\n"), 2)).toThrow(/2 replies expected, 1 found/);
  });
});
