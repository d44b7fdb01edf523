/**
 * How BullMQ's binary script arguments travel over Upstash REST, whose request body is JSON.
 *
 * JSON strings carry text, not bytes: BullMQ's msgpack ARGV (bytes ≥ 0x80) would be corrupted.
 * So the transport sends those arguments base64-encoded, and runs a wrapped script instead of
 * BullMQ's: a small pure-Lua base64 decoder that builds a decoded local copy of ARGV (the global
 * table is never assigned to), followed by BullMQ's script byte for byte.
 *
 * Which ARGV are encoded is fixed per script (BINARY_ARGV), not signalled per call: a marker
 * inside the value could collide with a real argument (job ids are caller-chosen), and an extra
 * ARGV would change `#ARGV` under BullMQ's feet. The transport enforces the table on every call:
 * it encodes exactly those positions and refuses any other argument that is not valid UTF-8, so
 * bytes are never silently mangled.
 */
import { defineScript, type LuaScript } from "../../shared/jobs/bullmq-scripts.ts";
import type { RedisArg } from "./resp.ts";

/**
 * 1-based ARGV positions that hold msgpack per BullMQ script name (see job-args.ts: ARGV[1] the
 * packed add args, ARGV[2] the JSON data, ARGV[3] the packed options). Scripts not listed here
 * take text only and run unchanged (same SHA as the fleet preloads).
 */
export const BINARY_ARGV: Readonly<Record<string, readonly number[]>> = {
  addStandardJob: [1, 3],
  addDelayedJob: [1, 3],
  addPrioritizedJob: [1, 3],
};

/**
 * Lua 5.1 has no base64 and Upstash's Lua may lack `bit`: plain arithmetic, chunked `unpack`.
 * The decoded arguments go into a chunk-level `local ARGV` that shadows the global table for the
 * rest of the script: BullMQ's code reads `ARGV[i]` and `#ARGV` unchanged, and nothing assigns to
 * the global, which Redis permits but an engine of its own (Upstash's) need not.
 */
function decoderLua(positions: readonly number[]): string {
  return `-- edgefleet: ARGV[${positions.join("], ARGV[")}] arrive base64-encoded over Upstash REST (JSON
-- cannot carry msgpack bytes); decode them into a local copy of ARGV, then run BullMQ's script unchanged.
local ARGV = (function(argv)
  local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  local value = {}
  for i = 1, 64 do value[string.byte(alphabet, i)] = i - 1 end
  local function decode(s)
    local bytes, n = {}, 0
    for i = 1, #s, 4 do
      local a, b, c, d = string.byte(s, i, i + 3)
      local v = value[a] * 262144 + value[b] * 4096 + (value[c] or 0) * 64 + (value[d] or 0)
      bytes[n + 1] = math.floor(v / 65536)
      bytes[n + 2] = math.floor(v / 256) % 256
      bytes[n + 3] = v % 256
      n = n + 3
      if d == 61 then n = n - 1 end
      if c == 61 then n = n - 1 end
    end
    local parts = {}
    for i = 1, n, 4096 do parts[#parts + 1] = string.char(unpack(bytes, i, math.min(i + 4095, n))) end
    return table.concat(parts)
  end
  local copy = {}
  for i = 1, #argv do copy[i] = argv[i] end
  for _, i in ipairs({${positions.join(", ")}}) do copy[i] = decode(copy[i]) end
  return copy
end)(ARGV)
`;
}

const wrapped = new Map<LuaScript, LuaScript>();
/** Positions by wrapped script body and by SHA, so the transport can check EVAL and EVALSHA. */
const positionsByContent = new Map<string, readonly number[]>();
const positionsBySha = new Map<string, readonly number[]>();

/**
 * The script the Upstash transport runs for `script`: wrapped when it takes binary ARGV, else the
 * script itself. Memoised per isolate; the wrapped SHA-1 is computed lazily like BullMQ's own.
 */
export function upstashScript(script: LuaScript): LuaScript {
  const positions = BINARY_ARGV[script.name];
  if (!positions) return script;
  let out = wrapped.get(script);
  if (!out) {
    const inner = defineScript({ name: script.name, content: decoderLua(positions) + script.content, keys: script.keys });
    positionsByContent.set(inner.content, positions);
    out = {
      ...inner,
      sha1: () =>
        inner.sha1().then((sha) => {
          positionsBySha.set(sha, positions);
          return sha;
        }),
    };
    wrapped.set(script, out);
  }
  return out;
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const encoder = new TextEncoder();

export function toBase64(bytes: Uint8Array): string {
  let binary = "";
  // Chunked: String.fromCharCode(...bytes) overflows the argument limit on large inputs.
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

export function fromBase64(text: string): Uint8Array {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** Thrown before anything is sent: the command holds bytes JSON cannot carry. */
export class UnencodableArgumentError extends Error {
  constructor(where: string) {
    super(`${where} is binary (not UTF-8) and cannot be sent over Upstash REST JSON`);
    this.name = "UnencodableArgumentError";
  }
}

/**
 * A command as the JSON strings Upstash receives. For EVAL/EVALSHA of a wrapped script the
 * binary ARGV positions are base64-encoded (whatever their JS type, so the Lua side can always
 * decode); every other argument must be text.
 */
export function toJsonCommand(command: readonly RedisArg[]): string[] {
  const name = typeof command[0] === "string" ? command[0].toUpperCase() : "";
  let encoded: readonly number[] = [];
  let firstArgv = Number.POSITIVE_INFINITY;
  if ((name === "EVAL" || name === "EVALSHA") && typeof command[1] === "string") {
    encoded = (name === "EVAL" ? positionsByContent : positionsBySha).get(command[1]) ?? [];
    firstArgv = 3 + Number(command[2]);
  }
  return command.map((arg, i) => {
    if (i >= firstArgv && encoded.includes(i - firstArgv + 1)) {
      return toBase64(typeof arg === "string" ? encoder.encode(arg) : arg);
    }
    if (typeof arg === "string") return arg;
    try {
      return utf8.decode(arg);
    } catch {
      throw new UnencodableArgumentError(`argument ${i} of ${name || "command"}`);
    }
  });
}
