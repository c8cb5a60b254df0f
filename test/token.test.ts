import fc from "fast-check";
import { Deflate, Z_SYNC_FLUSH } from "pako";
import { describe, expect, it } from "vitest";
import { lz4CompressBlock, lz4CompressBound, lz4DecompressBlock } from "../src/protocol/token-lz4-block.js";
import {
  CHUNK_SIZE,
  createTokenReader,
  createTokenWriter,
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

  for (const c of ["zlibx", "zlib", "lz4"] as const) {
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
  const packet = (data: Uint8Array): Uint8Array => bytes(0x40 | (data.length >> 8), data.length & 0xff, ...data);

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

  it("rejects zstd clearly", () => {
    expect(() => createTokenReader("zstd", { protocol: 31 })).toThrow(/zstd/);
    expect(() => createTokenWriter("zstd", { protocol: 31 })).toThrow(/zstd/);
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

describe("lz4 blocks", () => {
  it("round-trip", () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.uint8Array({ maxLength: 20_000 }), fc.array(fc.constantFrom(0, 1, 2, 97), { maxLength: 20_000 }).map((a) => Uint8Array.from(a))),
        (src) => {
          const dst = new Uint8Array(lz4CompressBound(src.length));
          const n = lz4CompressBlock(src, dst);
          expect(n).toBeLessThanOrEqual(dst.length);
          const back = new Uint8Array(src.length);
          expect(lz4DecompressBlock(dst.subarray(0, n), back)).toBe(src.length);
          expect(back).toEqual(src);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("never writes past the output and fails only with ProtocolError on garbage", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 200 }), fc.integer({ min: 0, max: 300 }), (src, cap) => {
        const out = new Uint8Array(cap + 8).fill(0xee);
        try {
          const n = lz4DecompressBlock(src, out.subarray(0, cap));
          expect(n).toBeLessThanOrEqual(cap);
        } catch (e) {
          expect(e).toBeInstanceOf(ProtocolError);
        }
        expect(Array.from(out.subarray(cap))).toEqual(new Array(8).fill(0xee));
      }),
      { numRuns: 500 },
    );
  });
});
