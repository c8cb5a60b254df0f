// Interop of the token stream with native rsync, through batch files: `--write-batch` records
// the sender's stream (file list, ndx + sum head echo, tokens, file checksum) verbatim, and
// `--read-batch` replays it into a receiver. We decode the token streams real rsync wrote, and
// splice streams our TokenWriter wrote into such a batch for rsync to replay.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createTokenReader, createTokenWriter, type TokenCompression, type TokenEvent } from "../src/protocol/token.js";
import { Cursor, NeedMore, Writer } from "../src/protocol/wire.js";
import { rsyncPath, tmpDir } from "./helpers/env.js";
import { assertOk, push, runRsync } from "./helpers/rsync.js";

// ---------------------------------------------------------------------------------------------
// Test data

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 0x1_0000_0000;
  };
}

/** Word-salad text: compressible, with repeats that deflate can refer back to. */
function text(r: () => number, n: number): Uint8Array {
  const vocab: string[] = [];
  for (let i = 0; i < 400; i++) {
    let w = "";
    const len = 2 + Math.floor(r() * 9);
    for (let k = 0; k < len; k++) w += String.fromCharCode(97 + Math.floor(r() * 26));
    vocab.push(w);
  }
  let s = "";
  while (s.length < n) s += vocab[Math.floor(r() * vocab.length)] + (r() < 0.1 ? "\n" : " ");
  return new TextEncoder().encode(s.slice(0, n));
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

interface Case {
  base: Uint8Array;
  src: Uint8Array;
}

/** Small edits only: every literal run stays well under 32 KiB, so rsync's matcher makes one
 *  send_token call per match (no data-only calls) and our writer can reproduce it exactly. */
function editsCase(seed: number, block: number): Case {
  const r = rng(seed);
  const base = text(r, 300_000);
  const parts: Uint8Array[] = [];
  let pos = 0;
  while (pos < base.length) {
    const keep = Math.min(base.length - pos, block * (2 + Math.floor(r() * 12)) + Math.floor(r() * block));
    parts.push(base.subarray(pos, pos + keep));
    pos += keep;
    const op = r();
    if (op < 0.3) {
      parts.push(text(r, 1 + Math.floor(r() * 3000))); // new text
    } else if (op < 0.55) {
      pos += Math.floor(r() * block * 2); // deletion
    } else if (op < 0.8) {
      // a fragment shorter than a block copied from just before: a literal that zlib (but not
      // zlibx) can encode as a back-reference into matched data
      const from = Math.max(0, pos - Math.floor(r() * 20_000) - 200);
      parts.push(base.subarray(from, from + Math.floor(block / 3)));
    } else {
      // a block-sized piece from far back: a backward jump (TOKEN_LONG)
      const from = Math.floor(r() * Math.max(1, pos - block * 4));
      parts.push(base.subarray(from, from + block * 3));
    }
  }
  return { base, src: concat(parts) };
}

/** Long literal runs (rsync then sends data without a token mid-run) and long match runs. */
function bigCase(seed: number): Case {
  const r = rng(seed);
  const base = text(r, 400_000);
  const src = concat([
    base.subarray(0, 150_000),
    text(r, 90_000),
    base.subarray(100_000, 400_000),
    new Uint8Array(70_000).map(() => Math.floor(r() * 256)),
  ]);
  return { base, src };
}

// ---------------------------------------------------------------------------------------------
// Batch files

interface Batch {
  dir: string;
  bytes: Uint8Array;
  /** rsync options that shape the stream (also given to --read-batch). */
  opts: string[];
}

const OLD = new Date("2020-01-01T00:00:00Z");

function compressOpts(c: TokenCompression): string[] {
  return c === "none" ? [] : ["-z", `--compress-choice=${c}`];
}

async function writeBatch(c: TokenCompression, protocol: number, block: number, k: Case, extra: string[] = []): Promise<Batch> {
  const dir = tmpDir("krsync-token-");
  mkdirSync(join(dir, "src"));
  mkdirSync(join(dir, "dst"));
  writeFileSync(join(dir, "src", "f"), k.src);
  writeFileSync(join(dir, "dst", "f"), k.base);
  utimesSync(join(dir, "dst", "f"), OLD, OLD);
  const opts = ["-a", "--no-whole-file", ...compressOpts(c), `--protocol=${protocol}`, "-B", String(block), ...extra];
  // Over a remote shell: a local transfer's server half would refuse every compression but
  // zlib while writing a batch (compat.c getenv_nstr).
  assertOk(await push(join(dir, "src"), join(dir, "dst"), [...opts, `--write-batch=${join(dir, "B")}`]));
  expect(Buffer.compare(readFileSync(join(dir, "dst", "f")), k.src)).toBe(0);
  return { dir, bytes: new Uint8Array(readFileSync(join(dir, "B"))), opts };
}

/** Where the file's tokens start: just after the sum head the sender echoes (io.c
 *  write_sum_head: count, blength, s2length, remainder as int32), found by its known values. */
function findTokens(b: Uint8Array, baseLen: number, block: number): number {
  const count = Math.ceil(baseLen / block);
  const rem = baseLen % block;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const hits: number[] = [];
  for (let i = 0; i + 16 <= b.length; i++) {
    if (v.getInt32(i, true) !== count || v.getInt32(i + 4, true) !== block) continue;
    const s2 = v.getInt32(i + 8, true);
    if (s2 < 2 || s2 > 16 || v.getInt32(i + 12, true) !== rem) continue;
    hits.push(i + 16);
  }
  expect(hits).toHaveLength(1);
  return hits[0]!;
}

interface Decoded {
  file: Uint8Array;
  events: TokenEvent[];
  end: number;
}

/** Decode one file's tokens from `start`, giving the reader the bytes a few at a time (every
 *  NeedMore is retried from the same position with more bytes), and rebuild the file. */
function decode(c: TokenCompression, protocol: number, bytes: Uint8Array, start: number, k: Case, block: number, seed = 7): Decoded {
  const reader = createTokenReader(c, { protocol });
  const r = rng(seed);
  const cur = new Cursor(bytes, start, start);
  const parts: Uint8Array[] = [];
  const events: TokenEvent[] = [];
  for (;;) {
    const pos = cur.pos;
    let ev: TokenEvent;
    try {
      ev = reader.next(cur);
    } catch (e) {
      if (!(e instanceof NeedMore)) throw e;
      expect(cur.pos).toBe(pos);
      expect(cur.end).toBeLessThan(bytes.length);
      cur.end = Math.min(bytes.length, cur.end + 1 + Math.floor(r() * 3000));
      continue;
    }
    events.push(ev);
    if (ev.kind === "end") break;
    if (ev.kind === "literal") {
      expect(ev.data.length).toBeLessThanOrEqual(32 * 1024);
      parts.push(ev.data);
      continue;
    }
    for (let i = ev.index; i < ev.index + ev.count; i++) {
      const blk = k.base.subarray(i * block, Math.min(k.base.length, (i + 1) * block));
      expect(blk.length).toBeGreaterThan(0);
      parts.push(blk);
      reader.seeMatch(blk);
    }
  }
  return { file: concat(parts), events, end: cur.pos };
}

/** Our writer, driven the way rsync's matcher drives send_token: each literal run, then the
 *  matched block (with its bytes), ..., then the end. */
function encode(
  c: TokenCompression,
  protocol: number,
  events: TokenEvent[],
  k: Case,
  block: number,
  opts: { level?: number; exact?: boolean } = {},
): Uint8Array {
  const w = createTokenWriter(c, { protocol, level: opts.level, exactZlibHistory: opts.exact });
  const out = new Writer();
  let lit: Uint8Array[] = [];
  for (const ev of events) {
    if (ev.kind === "literal") {
      lit.push(ev.data);
      continue;
    }
    // One literal() call per run of literal data, as rsync's matched() sends it.
    if (lit.length > 0) w.literal(concat(lit), out);
    lit = [];
    if (ev.kind === "end") w.end(out);
    else {
      for (let i = ev.index; i < ev.index + ev.count; i++) {
        w.match(i, k.base.subarray(i * block, Math.min(k.base.length, (i + 1) * block)), out);
      }
    }
  }
  return out.take();
}

/** Replace the batch's token stream with ours and let rsync --read-batch rebuild the file. */
async function replay(batch: Batch, start: number, end: number, tokens: Uint8Array, k: Case, name: string): Promise<Uint8Array> {
  const file = join(batch.dir, `B-${name}`);
  writeFileSync(file, concat([batch.bytes.subarray(0, start), tokens, batch.bytes.subarray(end)]));
  const dst = join(batch.dir, `r-${name}`);
  mkdirSync(dst);
  writeFileSync(join(dst, "f"), k.base);
  utimesSync(join(dst, "f"), OLD, OLD);
  const opts = batch.opts.filter((o) => !o.startsWith("--protocol"));
  assertOk(await runRsync([...opts, `--read-batch=${file}`, `${dst}/`]));
  return new Uint8Array(readFileSync(join(dst, "f")));
}

const md5 = (b: Uint8Array): Buffer => createHash("md5").update(b).digest();

/** Re-encode with some matches turned into literals, literals cut differently: a different
 *  token sequence for the same file. */
function perturb(events: TokenEvent[], k: Case, block: number, seed: number): TokenEvent[] {
  const r = rng(seed);
  const out: TokenEvent[] = [];
  for (const ev of events) {
    if (ev.kind === "match" && r() < 0.3) {
      for (let i = ev.index; i < ev.index + ev.count; i++) {
        out.push({ kind: "literal", data: k.base.subarray(i * block, Math.min(k.base.length, (i + 1) * block)) });
      }
    } else if (ev.kind === "literal" && ev.data.length > 10 && r() < 0.5) {
      const cut = 1 + Math.floor(r() * (ev.data.length - 1));
      out.push({ kind: "literal", data: ev.data.subarray(0, cut) }, { kind: "literal", data: ev.data.subarray(cut) });
    } else out.push(ev);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

const haveRsync = existsSync(rsyncPath);

describe.skipIf(!haveRsync)("token streams against native rsync (batch files)", () => {
  const choices: TokenCompression[] = ["none", "zlibx", "zlib", "lz4", "zstd"];
  for (const c of choices) {
    for (const protocol of [30, 32]) {
      it(`${c}, protocol ${protocol}: decode rsync's tokens; rsync accepts ours`, async () => {
        const block = 1024;
        const k = editsCase(protocol * 31 + c.length, block);
        const batch = await writeBatch(c, protocol, block, k);
        const start = findTokens(batch.bytes, k.base.length, block);
        const d = decode(c, protocol, batch.bytes, start, k, block);
        expect(Buffer.compare(d.file, k.src)).toBe(0);
        // io.c: the whole-file checksum follows the tokens (md5: a batch negotiates it).
        expect(Buffer.compare(batch.bytes.subarray(d.end, d.end + 16), md5(k.src))).toBe(0);
        // Runs of blocks are a compressed-stream thing; plain tokens name one block each.
        const longest = Math.max(...d.events.map((e) => (e.kind === "match" ? e.count : 0)));
        if (c === "none") expect(longest).toBe(1);
        else expect(longest).toBeGreaterThan(1);
        expect(d.events.filter((e) => e.kind === "match").length).toBeGreaterThan(10);
        expect(d.events.filter((e) => e.kind === "literal").length).toBeGreaterThan(10);

        const ours = encode(c, protocol, d.events, k, block);
        if (c !== "lz4" && c !== "zstd") {
          // Same zlib, same calls: byte-for-byte what rsync sent.
          const exact = encode(c, protocol, d.events, k, block, { exact: true });
          expect(Buffer.compare(exact, batch.bytes.subarray(start, d.end))).toBe(0);
        }
        const again = decode(c, protocol, ours, 0, k, block, 99);
        expect(Buffer.compare(again.file, k.src)).toBe(0);
        expect(Buffer.compare(await replay(batch, start, d.end, ours, k, "ours"), k.src)).toBe(0);

        const other = encode(c, protocol, perturb(d.events, k, block, 5), k, block);
        expect(Buffer.compare(await replay(batch, start, d.end, other, k, "perturbed"), k.src)).toBe(0);

        const allLiteral = encode(c, protocol, [{ kind: "literal", data: k.src }, { kind: "end" }], k, block);
        expect(Buffer.compare(await replay(batch, start, d.end, allLiteral, k, "literal"), k.src)).toBe(0);
      });
    }
  }

  it("zlib's literals refer into matched data: read as zlibx, its stream goes wrong", async () => {
    const block = 1024;
    const k = editsCase(11, block);
    const batch = await writeBatch("zlib", 31, block, k);
    const start = findTokens(batch.bytes, k.base.length, block);
    const d = decode("zlib", 31, batch.bytes, start, k, block);
    expect(Buffer.compare(d.file, k.src)).toBe(0);
    // Decoding zlib's stream as zlibx (no matched data in the window) goes wrong.
    let wrong = false;
    try {
      const x = decode("zlibx", 31, batch.bytes, start, k, block);
      wrong = Buffer.compare(x.file, k.src) !== 0;
    } catch {
      wrong = true;
    }
    expect(wrong).toBe(true);
  });

  for (const c of choices) {
    it(`${c}: long literal and match runs, protocol 31`, async () => {
      const block = 2048;
      const k = bigCase(3);
      const batch = await writeBatch(c, 31, block, k);
      const start = findTokens(batch.bytes, k.base.length, block);
      const d = decode(c, 31, batch.bytes, start, k, block);
      expect(Buffer.compare(d.file, k.src)).toBe(0);
      const matched = d.events.reduce((a, e) => a + (e.kind === "match" ? e.count : 0), 0);
      expect(matched).toBeGreaterThan(100);
      if (c !== "none") expect(d.events.some((e) => e.kind === "match" && e.count > 100)).toBe(true);
      const ours = encode(c, 31, d.events, k, block);
      expect(Buffer.compare(await replay(batch, start, d.end, ours, k, "ours"), k.src)).toBe(0);
    });
  }

  for (const protocol of [27, 29]) {
    for (const c of ["none", "zlib"] as const) {
      it(`${c}, protocol ${protocol}`, async () => {
        const block = 1024;
        const k = editsCase(protocol + c.length, block);
        const batch = await writeBatch(c, protocol, block, k);
        const start = findTokens(batch.bytes, k.base.length, block);
        const d = decode(c, protocol, batch.bytes, start, k, block);
        expect(Buffer.compare(d.file, k.src)).toBe(0);
        const exact = encode(c, protocol, d.events, k, block, { exact: true });
        expect(Buffer.compare(exact, batch.bytes.subarray(start, d.end))).toBe(0);
        const ours = encode(c, protocol, perturb(d.events, k, block, 3), k, block);
        expect(Buffer.compare(await replay(batch, start, d.end, ours, k, "ours"), k.src)).toBe(0);
      });
    }
  }

  for (const protocol of [30, 31]) {
    it(`zlib with blocks over 64 KiB, protocol ${protocol} (the pre-31 history quirk)`, async () => {
      const block = 100_000;
      const r = rng(protocol);
      const base = text(r, 1_000_000);
      // Literals right after matched blocks, quoting the block's start and end.
      const src = concat([
        base.subarray(0, 300_000),
        base.subarray(300_000 + 10, 300_000 + 400),
        base.subarray(300_000 - 5000, 300_000 - 4000),
        text(r, 5000),
        base.subarray(300_000, 700_000),
        base.subarray(700_000 - 90_000, 700_000 - 89_000),
        base.subarray(600_000 + 20, 600_000 + 900),
        base.subarray(700_000),
      ]);
      const k = { base, src };
      const batch = await writeBatch("zlib", protocol, block, k);
      const start = findTokens(batch.bytes, k.base.length, block);
      const d = decode("zlib", protocol, batch.bytes, start, k, block);
      expect(Buffer.compare(d.file, k.src)).toBe(0);
      const exact = encode("zlib", protocol, d.events, k, block, { exact: true });
      expect(Buffer.compare(exact, batch.bytes.subarray(start, d.end))).toBe(0);
      expect(Buffer.compare(await replay(batch, start, d.end, exact, k, "exact"), k.src)).toBe(0);
      const ours = encode("zlib", protocol, d.events, k, block);
      expect(Buffer.compare(await replay(batch, start, d.end, ours, k, "ours"), k.src)).toBe(0);
      const other = encode("zlib", protocol, perturb(d.events, k, block, 9), k, block);
      expect(Buffer.compare(await replay(batch, start, d.end, other, k, "perturbed"), k.src)).toBe(0);
    });
  }

  for (const c of ["lz4", "zstd"] as const) {
    it(`${c}, protocol 29 (a fixed --zc needs no negotiation)`, async () => {
      const block = 1024;
      const k = editsCase(29 + c.length, block);
      const batch = await writeBatch(c, 29, block, k);
      const start = findTokens(batch.bytes, k.base.length, block);
      const d = decode(c, 29, batch.bytes, start, k, block);
      expect(Buffer.compare(d.file, k.src)).toBe(0);
      const ours = encode(c, 29, perturb(d.events, k, block, 3), k, block);
      expect(Buffer.compare(await replay(batch, start, d.end, ours, k, "ours"), k.src)).toBe(0);
    });
  }

  for (const level of [-5, 1, 19]) {
    it(`zstd at --compress-level=${level}: rsync's level, within 10% of rsync's size`, async () => {
      const block = 2048;
      const k = bigCase(level + 10);
      const batch = await writeBatch("zstd", 32, block, k, [`--compress-level=${level}`]);
      const start = findTokens(batch.bytes, k.base.length, block);
      const d = decode("zstd", 32, batch.bytes, start, k, block);
      expect(Buffer.compare(d.file, k.src)).toBe(0);
      const ours = encode("zstd", 32, d.events, k, block, { level });
      const theirs = d.end - start;
      expect(Math.abs(ours.length - theirs)).toBeLessThanOrEqual(theirs * 0.1);
      expect(Buffer.compare(await replay(batch, start, d.end, ours, k, "ours"), k.src)).toBe(0);
    });
  }

  for (const level of [1, 9]) {
    for (const c of ["zlib", "zlibx"] as const) {
      it(`${c} at --compress-level=${level}`, async () => {
        const block = 1024;
        const k = editsCase(level + 40, block);
        const batch = await writeBatch(c, 32, block, k, [`--compress-level=${level}`]);
        const start = findTokens(batch.bytes, k.base.length, block);
        const d = decode(c, 32, batch.bytes, start, k, block);
        expect(Buffer.compare(d.file, k.src)).toBe(0);
        const exact = encode(c, 32, d.events, k, block, { level, exact: true });
        expect(Buffer.compare(exact, batch.bytes.subarray(start, d.end))).toBe(0);
        const ours = encode(c, 32, d.events, k, block, { level });
        expect(Buffer.compare(await replay(batch, start, d.end, ours, k, "ours"), k.src)).toBe(0);
      });
    }
  }
});
