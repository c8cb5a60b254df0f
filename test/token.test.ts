import fc from "fast-check";
import { Deflate, Z_SYNC_FLUSH } from "pako";
import { describe, expect, it } from "vitest";
import { LZ4_OUT_SIZE } from "../src/protocol/token-lz4.js";
import { availableCompressions, compressionUnavailable, lz4Lib } from "../src/protocol/token-libs.js";
import {
  CHUNK_SIZE,
  createTokenReader,
  createTokenWriter,
  initCompressionLevel,
  type TokenCompression,
  type TokenEvent,
  type TokenReader,
} from "../src/protocol/token.js";
import { Cursor, NeedMore, ProtocolError, Writer } from "../src/protocol/wire.js";

const bytes = (...b: number[]): Uint8Array => Uint8Array.from(b);
const le32 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Read every event of one file from complete input. */
function readAll(reader: TokenReader, input: Uint8Array, block?: (i: number) => Uint8Array): { events: TokenEvent[]; pos: number } {
  const c = new Cursor(input);
  const events: TokenEvent[] = [];
  for (;;) {
    const ev = reader.next(c);
    events.push(ev);
    if (ev.kind === "end") return { events, pos: c.pos };
    if (ev.kind === "match" && reader.needsMatchData) {
      for (let i = 0; i < ev.count; i++) reader.seeMatch(block!(ev.index + i));
    }
  }
}

function expectProtocolError(f: () => unknown, code: number, re?: RegExp): void {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(ProtocolError);
  expect((err as ProtocolError).exitCode).toBe(code);
  if (re) expect((err as ProtocolError).message).toMatch(re);
}

// ---------------------------------------------------------------------------------------------

describe("plain tokens (simple_send_token / simple_recv_token)", () => {
  it("writes literals in CHUNK_SIZE pieces, -(i+1) for block i, 0 at the end", () => {
    const w = createTokenWriter("none", { protocol: 31 });
    const out = new Writer();
    const data = new Uint8Array(40_000).map((_, i) => i);
    w.literal(data, out);
    w.match(5, undefined, out);
    w.match(0x7fffffff, undefined, out);
    w.end(out);
    const b = out.take();
    const v = new DataView(b.buffer);
    expect(v.getInt32(0, true)).toBe(CHUNK_SIZE);
    expect(v.getInt32(4 + CHUNK_SIZE, true)).toBe(40_000 - CHUNK_SIZE);
    const tail = b.length - 12;
    expect(v.getInt32(tail, true)).toBe(-6);
    expect(v.getInt32(tail + 4, true)).toBe(-0x80000000);
    expect(v.getInt32(tail + 8, true)).toBe(0);
    const { events } = readAll(createTokenReader("none", { protocol: 31 }), b);
    expect(events.slice(-3)).toEqual([{ kind: "match", index: 5, count: 1 }, { kind: "match", index: 0x7fffffff, count: 1 }, { kind: "end" }]);
    expect(concat(events.flatMap((e) => (e.kind === "literal" ? [e.data] : [])))).toEqual(data);
  });

  it("passes a huge literal on as its bytes arrive, without allocating from the count", () => {
    const r = createTokenReader("none", { protocol: 31 });
    const buf = new Uint8Array(4 + 100);
    new DataView(buf.buffer).setInt32(0, 0x7fffffff, true);
    buf.fill(7, 4);
    const c = new Cursor(buf, 0, 4);
    // The header alone is not taken.
    expect(() => r.next(c)).toThrow(NeedMore);
    expect(c.pos).toBe(0);
    c.end = 14;
    const a = r.next(c);
    expect(a).toEqual({ kind: "literal", data: new Uint8Array(10).fill(7) });
    expect(() => r.next(c)).toThrow(NeedMore);
    expect(c.pos).toBe(14);
    c.end = 104;
    const b = r.next(c);
    expect(b.kind === "literal" && b.data.length).toBe(90);
    // Still inside the literal: the next bytes are data, not a token.
    const d = r.next(new Cursor(new Uint8Array([1, 2, 3, 4])));
    expect(d).toEqual({ kind: "literal", data: bytes(1, 2, 3, 4) });
  });
});

describe("token runs in compressed streams", () => {
  const enc = (c: TokenCompression, ops: number[]): Uint8Array => {
    const w = createTokenWriter(c, { protocol: 31 });
    const out = new Writer();
    for (const i of ops) w.match(i, new Uint8Array(4), out);
    w.end(out);
    return out.take();
  };

  for (const c of ["zlibx", "zlib", "lz4", "zstd"] as const) {
    it(`${c}: relative, long and run forms`, () => {
      expect(enc(c, [0, 1, 2])).toEqual(bytes(0xc0, 2, 0, 0));
      expect(enc(c, [100])).toEqual(bytes(0x20, ...le32(100), 0));
      expect(enc(c, [5, 70])).toEqual(bytes(0x85, 0x20, ...le32(70), 0));
      expect(enc(c, [10, 3, 4])).toEqual(bytes(0x8a, 0x21, ...le32(3), 1, 0, 0));
      expect(enc(c, [7, 7])).toEqual(bytes(0x87, 0x80, 0));
    });
  }

  it("cuts a run before it spans 65536 blocks", () => {
    const ops = Array.from({ length: 65537 }, (_, i) => i);
    const b = enc("zlibx", ops);
    expect(b).toEqual(bytes(0xc0, 0xff, 0xff, 0x81, 0));
    const { events } = readAll(createTokenReader("zlibx", { protocol: 31 }), b);
    expect(events).toEqual([{ kind: "match", index: 0, count: 65536 }, { kind: "match", index: 65536, count: 1 }, { kind: "end" }]);
  });

  it("decodes relative offsets from the previous run's last block", () => {
    const { events } = readAll(createTokenReader("zlibx", { protocol: 31 }), bytes(0xc3, 4, 0, 0x82, 0x21, ...le32(1), 2, 0, 0));
    expect(events).toEqual([
      { kind: "match", index: 3, count: 5 },
      { kind: "match", index: 9, count: 1 },
      { kind: "match", index: 1, count: 3 },
      { kind: "end" },
    ]);
  });

  it("rejects block numbers out of range (RERR_PROTOCOL)", () => {
    const r = (...b: number[]) => () => readAll(createTokenReader("zlibx", { protocol: 31 }), bytes(...b));
    expectProtocolError(r(0x20, ...le32(-1)), 2, /invalid token number/);
    expectProtocolError(r(0x20, ...le32(0x7fffffff)), 2);
    expectProtocolError(r(0x21, ...le32(0), 0, 0), 2); // a run of 0 more blocks
    expectProtocolError(r(0x20, ...le32(0x7ffffffe), 0x81), 2);
    expectProtocolError(r(0x21, ...le32(0x7ffffff0), 0x20, 0), 2);
  });

  it("restarts cleanly when a record is cut anywhere", () => {
    const input = bytes(0xc3, 4, 0, 0x21, ...le32(1000), 2, 0, 0x20, ...le32(9), 0);
    const r = createTokenReader("lz4", { protocol: 31 });
    const c = new Cursor(input, 0, 0);
    const events: TokenEvent[] = [];
    while (events.at(-1)?.kind !== "end") {
      const pos = c.pos;
      try {
        events.push(r.next(c));
      } catch (e) {
        expect(e).toBeInstanceOf(NeedMore);
        expect(c.pos).toBe(pos);
        c.end++;
      }
    }
    expect(events).toEqual([
      { kind: "match", index: 3, count: 5 },
      { kind: "match", index: 1000, count: 3 },
      { kind: "match", index: 9, count: 1 },
      { kind: "end" },
    ]);
  });
});

describe("deflated data", () => {

  it("rejects corrupt, empty, final and unsynced data (RERR_STREAMIO)", () => {
    const read = (b: Uint8Array) => () => readAll(createTokenReader("zlibx", { protocol: 31 }), b);
    expectProtocolError(read(concat([packet(bytes(0xff, 0xff, 0xff)), bytes(0)])), 12);
    expectProtocolError(read(bytes(0x40, 0x00, 0)), 12);
    // A whole deflate stream (final block) is not what rsync sends.
    const d1 = new Deflate({ raw: true });
    d1.push(new TextEncoder().encode("hello hello hello"), true);
    expectProtocolError(read(concat([packet(d1.result), bytes(0)])), 12);
    // A sync flush whose marker was left on: the token does not sit at a sync point.
    const d2 = new Deflate({ raw: true });
    d2.push(new TextEncoder().encode("hello hello hello"), Z_SYNC_FLUSH);
    const z = concat(d2.chunks);
    expect(Array.from(z.subarray(-4))).toEqual([0, 0, 0xff, 0xff]);
    expectProtocolError(read(concat([packet(z), bytes(0)])), 12, /lost sync/);
    expect(readAll(createTokenReader("zlibx", { protocol: 31 }), concat([packet(z.subarray(0, -4)), bytes(0)])).events).toEqual([
      { kind: "literal", data: new TextEncoder().encode("hello hello hello") },
      { kind: "end" },
    ]);
  });

  it("streams the output of a highly compressed packet in bounded pieces", () => {
    const w = createTokenWriter("zlibx", { protocol: 31, level: 9 });
    const out = new Writer();
    const zeros = new Uint8Array(8 << 20);
    w.literal(zeros, out);
    w.end(out);
    const b = out.take();
    expect(b.length).toBeLessThan(16_400);
    const r = createTokenReader("zlibx", { protocol: 31 });
    const c = new Cursor(b);
    let total = 0;
    let n = 0;
    for (;;) {
      const ev = r.next(c);
      if (ev.kind === "end") break;
      expect(ev.kind).toBe("literal");
      if (ev.kind === "literal") {
        expect(ev.data.length).toBeLessThanOrEqual(CHUNK_SIZE);
        expect(ev.data.every((x) => x === 0)).toBe(true);
        total += ev.data.length;
        n++;
      }
    }
    expect(total).toBe(zeros.length);
    expect(n).toBeGreaterThanOrEqual(zeros.length / CHUNK_SIZE);
  });

  it("zlib: matched data is owed before the next token, and required by the writer", () => {
    const w = createTokenWriter("zlib", { protocol: 31 });
    expect(w.needsMatchData).toBe(true);
    expect(() => w.match(0, undefined, new Writer())).toThrow(/needs the matched block/);
    expect(createTokenWriter("zlibx", { protocol: 31 }).needsMatchData).toBe(false);
    const r = createTokenReader("zlib", { protocol: 31 });
    expect(r.needsMatchData).toBe(true);
    const c = new Cursor(bytes(0xc0, 1, 0, 0x20, ...le32(9), 0));
    expect(r.next(c)).toEqual({ kind: "match", index: 0, count: 2 });
    r.seeMatch(new Uint8Array(100));
    expect(() => r.next(c)).toThrow(/seeMatch/);
    r.seeMatch(new Uint8Array(100));
    expect(() => r.seeMatch(new Uint8Array(1))).toThrow(/without a pending/);
    expect(r.next(c)).toEqual({ kind: "match", index: 9, count: 1 });
  });

});

/** A DEFLATED_DATA packet around `data` (at most 16383 bytes). */
const packet = (data: Uint8Array): Uint8Array => bytes(0x40 | (data.length >> 8), data.length & 0xff, ...data);

/** Every event until the end; literal sizes are checked against CHUNK_SIZE as they come, and
 *  only their total is kept. */
function drain(r: TokenReader, input: Uint8Array): { literal: number; events: number } {
  const c = new Cursor(input);
  let literal = 0;
  let events = 0;
  for (;;) {
    const ev = r.next(c);
    events++;
    if (ev.kind === "end") return { literal, events };
    if (ev.kind === "literal") {
      expect(ev.data.length).toBeLessThanOrEqual(CHUNK_SIZE);
      literal += ev.data.length;
    }
  }
}

describe("compression libraries", () => {
  it("zstd-napi and lz4-napi load here, so every compression is offered", () => {
    expect(compressionUnavailable("zstd"), "zstd-napi did not load (npm install builds it: it needs python3, make and a C++ compiler)").toBeUndefined();
    expect(compressionUnavailable("lz4")).toBeUndefined();
    expect(availableCompressions()).toEqual(["zstd", "lz4", "zlibx", "zlib"]);
  });
});

describe("zstd data (one stream for the whole session)", () => {
  // zstd frame format (RFC 8878): magic, frame header descriptor 0 (no content size, not
  // single-segment), window descriptor; then blocks with a 3-byte header
  // (last | type << 1 | size << 3); an RLE block (type 1) repeats one byte `size` times.
  const frameHead = (windowDescriptor: number) => [0x28, 0xb5, 0x2f, 0xfd, 0x00, windowDescriptor];
  const rleBlock = (size: number, last = false) => {
    const h = (size << 3) | (1 << 1) | (last ? 1 : 0);
    return [h & 0xff, (h >>> 8) & 0xff, h >>> 16, 0x61];
  };

  it("keeps one stream across files: a later file's data may refer back into an earlier one", () => {
    const w = createTokenWriter("zstd", { protocol: 31 });
    const out = new Writer();
    let x = 7;
    const text = new Uint8Array(10_000).map(() => 97 + ((x = (x * 1103515245 + 12345) >>> 0) >>> 27));
    w.literal(text, out);
    w.end(out);
    const first = out.take();
    w.literal(text, out);
    w.end(out);
    const second = out.take();
    // The second copy is a back-reference: far smaller than the first.
    expect(second.length * 5).toBeLessThan(first.length);
    const r = createTokenReader("zstd", { protocol: 31 });
    expect(drain(r, first).literal).toBe(text.length);
    expect(drain(r, second).literal).toBe(text.length);
    // A fresh reader cannot make sense of the second file alone.
    expect(() => drain(createTokenReader("zstd", { protocol: 31 }), second)).toThrow(ProtocolError);
  });

  it("flushes at every token after literal data and at the end, never ending the frame", () => {
    const w = createTokenWriter("zstd", { protocol: 31 });
    const out = new Writer();
    w.literal(new TextEncoder().encode("hello"), out);
    // Nothing yet: zstd holds small input back until a flush.
    expect(out.take().length).toBe(0);
    w.match(3, undefined, out);
    const b = out.take();
    expect(b[0]! & 0xc0).toBe(0x40);
    const r = createTokenReader("zstd", { protocol: 31 });
    const c = new Cursor(b);
    expect(r.next(c)).toEqual({ kind: "literal", data: new TextEncoder().encode("hello") });
    // Two tokens in a row: no flush (and no packet) between them.
    w.match(4, undefined, out);
    w.match(9, undefined, out);
    w.end(out);
    const rest = out.take();
    expect(Array.from(rest)).toEqual([0xc3, 1, 0, 0x85, 0]);
  });

  it("streams a small packet that decodes to 512 MiB in bounded pieces", () => {
    // 4095 RLE blocks of 128 KiB each fit in one packet.
    const blocks: number[] = [];
    for (let i = 0; i < 4094; i++) blocks.push(...rleBlock(1 << 17));
    const frame = Uint8Array.from([...frameHead(0x58), ...blocks]);
    expect(frame.length).toBeLessThanOrEqual(16383);
    const { literal, events } = drain(createTokenReader("zstd", { protocol: 31 }), concat([packet(frame), bytes(0)]));
    expect(literal).toBe(4094 * (1 << 17));
    expect(events).toBeGreaterThan(literal / CHUNK_SIZE);
  });

  it("rejects malformed data and oversized windows (RERR_STREAMIO)", () => {
    const read = (...frame: number[]) => () => drain(createTokenReader("zstd", { protocol: 31 }), concat([packet(Uint8Array.from(frame)), bytes(0)]));
    expectProtocolError(read(1, 2, 3, 4, 5, 6, 7, 8), 12, /ZSTD/);
    // Block type 3 is reserved.
    expectProtocolError(read(...frameHead(0x58), 0x07, 0, 0), 12);
    // A window of 2^41 bytes: more than rsync's (and our) 2^27 limit.
    expectProtocolError(read(...frameHead(0xf8), ...rleBlock(10, true)), 12, /memory|window/i);
    // An RLE block larger than the 128 KiB block maximum.
    expectProtocolError(read(...frameHead(0x58), ...rleBlock((1 << 17) + 1, true)), 12);
  });

  it("fails only with ProtocolError (or waits for more) on garbage", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 4 }), fc.boolean(), (pieces, magic) => {
        const parts = pieces.map((p, i) => packet(i === 0 && magic ? concat([Uint8Array.from(frameHead(0x58)), p]) : p));
        try {
          drain(createTokenReader("zstd", { protocol: 31 }), concat([...parts, bytes(0)]));
        } catch (e) {
          if (!(e instanceof ProtocolError) && !(e instanceof NeedMore)) throw e;
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe("lz4 data (one raw block per packet)", () => {
  it("splits incompressible input until each block fits a packet", () => {
    const w = createTokenWriter("lz4", { protocol: 31 });
    const out = new Writer();
    let x = 12345;
    const noise = new Uint8Array(100_000).map(() => ((x = (x * 1103515245 + 12345) >>> 0) >>> 24));
    w.literal(noise, out);
    w.end(out);
    const b = out.take();
    const c = new Cursor(b);
    let n = 0;
    while (b[c.pos] !== 0) {
      const len = ((b[c.pos]! & 0x3f) << 8) | b[c.pos + 1]!;
      expect(b[c.pos]! & 0xc0).toBe(0x40);
      c.pos += 2 + len;
      n++;
    }
    expect(n).toBeGreaterThan(100_000 / 16383);
    const r = createTokenReader("lz4", { protocol: 31 });
    const got: Uint8Array[] = [];
    const cur = new Cursor(b);
    for (let ev = r.next(cur); ev.kind !== "end"; ev = r.next(cur)) if (ev.kind === "literal") got.push(ev.data);
    expect(concat(got)).toEqual(noise);
  });

  it("refuses a block that decodes to more than rsync's output room (RERR_STREAMIO)", () => {
    const big = lz4Lib().compressSync(Buffer.alloc(LZ4_OUT_SIZE + 1, 7)).subarray(4);
    expect(big.length).toBeLessThan(16383);
    expectProtocolError(() => drain(createTokenReader("lz4", { protocol: 31 }), concat([packet(big), bytes(0)])), 12, /uncompress failed/);
    const fits = lz4Lib().compressSync(Buffer.alloc(LZ4_OUT_SIZE, 7)).subarray(4);
    expect(drain(createTokenReader("lz4", { protocol: 31 }), concat([packet(fits), bytes(0)])).literal).toBe(LZ4_OUT_SIZE);
  });

  it("fails only with ProtocolError on garbage, never with more than the output room", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 200 }), (block) => {
        try {
          expect(drain(createTokenReader("lz4", { protocol: 31 }), concat([packet(block), bytes(0)])).literal).toBeLessThanOrEqual(LZ4_OUT_SIZE);
        } catch (e) {
          expect(e).toBeInstanceOf(ProtocolError);
          expect((e as ProtocolError).exitCode).toBe(12);
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe("compression levels (token.c init_compression_level)", () => {
  it("zlib: default 6 (also for -1), clamped to 1..9, and 0 turns compression off", () => {
    for (const c of ["zlib", "zlibx"] as const) {
      expect(initCompressionLevel(c, undefined)).toEqual({ compression: c, level: 6 });
      expect(initCompressionLevel(c, -1)).toEqual({ compression: c, level: 6 });
      expect(initCompressionLevel(c, -5)).toEqual({ compression: c, level: 1 });
      expect(initCompressionLevel(c, 42)).toEqual({ compression: c, level: 9 });
      expect(initCompressionLevel(c, 0)).toEqual({ compression: "none", level: 0 });
      expect(initCompressionLevel(c, -0x80000000)).toEqual({ compression: c, level: 6 });
    }
    expect(() => createTokenWriter("zlibx", { protocol: 31, level: 0 })).toThrow(/turns zlibx off/);
  });

  it("zstd: default 3 (also for 0), clamped to libzstd's range, negative levels allowed; lz4: 0", () => {
    expect(initCompressionLevel("zstd", undefined)).toEqual({ compression: "zstd", level: 3 });
    expect(initCompressionLevel("zstd", 0)).toEqual({ compression: "zstd", level: 3 });
    expect(initCompressionLevel("zstd", -7)).toEqual({ compression: "zstd", level: -7 });
    expect(initCompressionLevel("zstd", 99)).toEqual({ compression: "zstd", level: 22 });
    expect(initCompressionLevel("zstd", -1_000_000)).toEqual({ compression: "zstd", level: -131072 });
    expect(initCompressionLevel("lz4", 9)).toEqual({ compression: "lz4", level: 0 });
  });

  it("a higher zstd level compresses better", () => {
    const text = new TextEncoder().encode(Array.from({ length: 20_000 }, (_, i) => `row ${i * 7919 % 10007} value ${i % 97}\n`).join(""));
    const size = (level: number) => {
      const w = createTokenWriter("zstd", { protocol: 31, level });
      const out = new Writer();
      w.literal(text, out);
      w.end(out);
      return out.take().length;
    };
    expect(size(19)).toBeLessThan(size(-5));
  });
});

// ---------------------------------------------------------------------------------------------
// Round trips

type Op = { lit: Uint8Array } | { blk: number } | { end: true };

/** Literal runs merged, runs expanded to single blocks: what the receiver rebuilds from. */
function normalize(ops: Op[]): string[] {
  const out: string[] = [];
  let lit: number[] = [];
  const flush = () => {
    if (lit.length) out.push(`L${Buffer.from(lit).toString("base64")}`);
    lit = [];
  };
  for (const op of ops) {
    if ("lit" in op) lit.push(...op.lit);
    else {
      flush();
      out.push("blk" in op ? `B${op.blk}` : "E");
    }
  }
  flush();
  return out;
}

const BLOCK = 64;
const basis = new Uint8Array(BLOCK * 300).map((_, i) => (i * 7 + (i >> 6)) & 0xff);
const blockData = (i: number): Uint8Array => basis.subarray(i * BLOCK, (i + 1) * BLOCK);

const literalArb = fc.oneof(
  fc.uint8Array({ minLength: 1, maxLength: 300 }),
  fc.integer({ min: 1, max: 70_000 }).map((n) => new Uint8Array(n).map((_, i) => (i % 13) * 3)),
  fc.integer({ min: 0, max: 250 }).map((i) => basis.slice(i * BLOCK + 5, i * BLOCK + 40)),
);
const opsArb: fc.Arbitrary<Op[]> = fc.oneof(
  literalArb.map((lit): Op[] => [{ lit }]),
  fc.integer({ min: 0, max: 299 }).map((blk): Op[] => [{ blk }]),
  fc
    .tuple(fc.integer({ min: 0, max: 290 }), fc.integer({ min: 2, max: 8 }))
    .map(([s, n]): Op[] => Array.from({ length: n }, (_, k) => ({ blk: s + k }))),
);
const fileArb = fc.array(opsArb, { maxLength: 25 }).map((a) => a.flat());

describe.each([
  ["none", false],
  ["zlibx", false],
  ["zlib", false],
  ["zlib", true],
  ["lz4", false],
  ["zstd", false],
] as const)("%s round trip (exact zlib history: %s)", (c, exactZlibHistory) => {
  it("writer then reader, over several files, with input cut at random points", () => {
    fc.assert(
      fc.property(fc.array(fileArb, { minLength: 1, maxLength: 3 }), fc.constantFrom(30, 31), fc.integer(), (files, protocol, seed) => {
        const w = createTokenWriter(c, { protocol, exactZlibHistory });
        const out = new Writer();
        const ops: Op[] = [];
        for (const f of files) {
          for (const op of f) {
            if ("lit" in op) w.literal(op.lit, out);
            else if ("blk" in op) w.match(op.blk, blockData(op.blk), out);
            ops.push(op);
          }
          w.end(out);
          ops.push({ end: true });
        }
        const stream = out.take();

        const r = createTokenReader(c, { protocol });
        let s = seed >>> 0 || 1;
        const cur = new Cursor(stream, 0, 0);
        const got: Op[] = [];
        let ends = 0;
        while (ends < files.length) {
          const pos = cur.pos;
          let ev: TokenEvent;
          try {
            ev = r.next(cur);
          } catch (e) {
            if (!(e instanceof NeedMore)) throw e;
            expect(cur.pos).toBe(pos);
            expect(cur.end).toBeLessThan(stream.length);
            s = (s * 1103515245 + 12345) >>> 0;
            cur.end = Math.min(stream.length, cur.end + 1 + (s % 5000));
            continue;
          }
          if (ev.kind === "literal") {
            expect(ev.data.length).toBeLessThanOrEqual(CHUNK_SIZE);
            got.push({ lit: ev.data });
          } else if (ev.kind === "end") {
            ends++;
            got.push({ end: true });
          } else {
            for (let i = ev.index; i < ev.index + ev.count; i++) {
              got.push({ blk: i });
              r.seeMatch(blockData(i));
            }
          }
        }
        expect(cur.pos).toBe(stream.length);
        expect(normalize(got)).toEqual(normalize(ops));
      }),
      { numRuns: 40 },
    );
  });
});

