import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { createBlockSummer, initChecksums, type BlockSummer } from "../src/delta/checksum.js";
import { applyTokens, BlockMatcher, BlockSumsReader, CHUNK_SIZE, type BlockSums, type MatchToken } from "../src/delta/match.js";
import { weakChecksum } from "../src/delta/rolling.js";
import { sumSizes, type SumHead } from "../src/delta/sumsizes.js";
import { Cursor, Writer } from "../src/protocol/wire.js";

let summer: BlockSummer;
beforeAll(async () => {
  await initChecksums();
  summer = await createBlockSummer("md5", 31, 0x5eed);
});

/** What the generator sends: weak sum + truncated strong sum per block of the basis. */
function makeSums(basis: Uint8Array, head: SumHead, bs: BlockSummer = summer): BlockSums {
  const sum1 = new Uint32Array(head.count);
  const sum2 = new Uint8Array(head.count * head.s2length);
  for (let i = 0; i < head.count; i++) {
    const off = i * head.blength;
    const len = Math.min(head.blength, basis.length - off);
    sum1[i] = weakChecksum(basis, off, len);
    sum2.set(bs(basis, off, len).subarray(0, head.s2length), i * head.s2length);
  }
  return { sum1, sum2 };
}

function headFor(len: number, blength: number, s2length: number): SumHead {
  const remainder = len % blength;
  return { count: Math.ceil(len / blength), blength, s2length, remainder };
}

function runMatcher(
  head: SumHead,
  sums: BlockSums,
  source: Uint8Array,
  pieces: number[],
  opts: { inplace?: boolean } = {},
): MatchToken[] {
  const m = new BlockMatcher(head, sums, summer, opts);
  const out: MatchToken[] = [];
  let p = 0;
  let j = 0;
  while (p < source.length) {
    const n = Math.max(1, pieces.length ? pieces[j++ % pieces.length]! : source.length);
    out.push(...m.push(source.subarray(p, p + n)));
    p += n;
  }
  out.push(...m.finish());
  return out;
}

/** The receiver with --inplace: blocks are copied from the file as it is being rewritten. */
function applyInplace(basis: Uint8Array, head: SumHead, tokens: MatchToken[]): Uint8Array {
  const file = new Uint8Array(basis.length * 4 + (1 << 16));
  file.set(basis);
  let w = 0;
  for (const t of tokens) {
    if (t.kind === "literal") {
      file.set(t.data, w);
      w += t.data.length;
    } else {
      const off = t.index * head.blength;
      const len = t.index === head.count - 1 && head.remainder ? head.remainder : head.blength;
      file.copyWithin(w, off, off + len);
      w += len;
    }
  }
  return file.subarray(0, w);
}

type Edit =
  | { op: "insert"; at: number; data: Uint8Array }
  | { op: "delete"; at: number; len: number }
  | { op: "move"; from: number; len: number; to: number }
  | { op: "dup"; from: number; len: number; to: number };

function applyEdits(basis: Uint8Array, edits: Edit[]): Uint8Array {
  let b = Buffer.from(basis);
  for (const e of edits) {
    const n = b.length;
    if (e.op === "insert") {
      const at = n ? e.at % (n + 1) : 0;
      b = Buffer.concat([b.subarray(0, at), e.data, b.subarray(at)]);
    } else if (n === 0) {
      continue;
    } else if (e.op === "delete") {
      const at = e.at % n;
      b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(n, at + e.len))]);
    } else {
      const from = e.from % n;
      const piece = Buffer.from(b.subarray(from, Math.min(n, from + e.len)));
      const rest = e.op === "move" ? Buffer.concat([b.subarray(0, from), b.subarray(from + piece.length)]) : b;
      const to = e.to % (rest.length + 1);
      b = Buffer.concat([rest.subarray(0, to), piece, rest.subarray(to)]);
    }
  }
  return b;
}

const editArb: fc.Arbitrary<Edit> = fc.oneof(
  fc.record({ op: fc.constant("insert" as const), at: fc.nat(), data: fc.uint8Array({ minLength: 1, maxLength: 300 }) }),
  fc.record({ op: fc.constant("delete" as const), at: fc.nat(), len: fc.integer({ min: 1, max: 400 }) }),
  fc.record({ op: fc.constant("move" as const), from: fc.nat(), len: fc.integer({ min: 1, max: 2000 }), to: fc.nat() }),
  fc.record({ op: fc.constant("dup" as const), from: fc.nat(), len: fc.integer({ min: 1, max: 2000 }), to: fc.nat() }),
);

/** Basis content: random bytes, low-entropy bytes (weak-sum collisions) or long runs. */
const basisArb = fc.oneof(
  fc.uint8Array({ maxLength: 12_000 }),
  fc.array(fc.constantFrom(0, 1, 255), { maxLength: 12_000 }).map((a) => Uint8Array.from(a)),
  fc.tuple(fc.integer({ min: 0, max: 12_000 }), fc.integer({ min: 0, max: 255 })).map(([n, v]) => new Uint8Array(n).fill(v)),
);

function checkTokens(tokens: MatchToken[], head: SumHead): void {
  for (const t of tokens) {
    if (t.kind === "literal") {
      expect(t.data.length).toBeGreaterThan(0);
      expect(t.data.length).toBeLessThanOrEqual(CHUNK_SIZE);
    } else {
      expect(t.index).toBeGreaterThanOrEqual(0);
      expect(t.index).toBeLessThan(head.count);
    }
  }
}

describe("BlockMatcher", () => {
  it("tokens applied to the basis rebuild the source (random edits, block sizes, feeds)", () => {
    fc.assert(
      fc.property(
        basisArb,
        fc.array(editArb, { maxLength: 6 }),
        fc.constantFrom(1, 2, 7, 8, 64, 100, 700, 1000),
        fc.integer({ min: 1, max: 16 }),
        fc.array(fc.integer({ min: 1, max: 5000 }), { maxLength: 5 }),
        fc.boolean(),
        (basis, edits, blength, s2length, pieces, inplace) => {
          const source = applyEdits(basis, edits);
          const head = headFor(basis.length, blength, s2length);
          const sums = makeSums(basis, head);
          const tokens = runMatcher(head, sums, source, pieces, { inplace });
          checkTokens(tokens, head);
          if (inplace) expect(Buffer.from(applyInplace(basis, head, tokens)).equals(source)).toBe(true);
          else expect(Buffer.from(applyTokens(basis, head, tokens)).equals(source)).toBe(true);
        },
      ),
      { numRuns: 400 },
    );
  });

  it("sizes around block boundaries", () => {
    const blength = 64;
    for (const blen of [0, 1, 63, 64, 65, 127, 128, 129, 640, 641]) {
      for (const slen of [0, 1, 63, 64, 65, 128, 129, 700]) {
        const basis = randomBytes(blen);
        const source = Buffer.concat([basis.subarray(0, Math.min(blen, slen)), randomBytes(Math.max(0, slen - blen))]);
        const head = headFor(blen, blength, 4);
        const tokens = runMatcher(head, makeSums(basis, head), source, [13]);
        checkTokens(tokens, head);
        expect(Buffer.from(applyTokens(basis, head, tokens)).equals(source)).toBe(true);
      }
    }
  });

  it("an unchanged file is only block tokens, in order", () => {
    for (const len of [1, 699, 700, 701, 70_000, 1_000_003]) {
      const basis = randomBytes(len);
      const head = sumSizes(len, 31, { digestLength: 16 });
      const tokens = runMatcher(head, makeSums(basis, head), basis, [65536]);
      expect(tokens.map((t) => (t.kind === "block" ? t.index : -1))).toEqual([...Array(head.count).keys()]);
    }
  });

  it("identical blocks: the adjacent one is preferred (want_i)", () => {
    const basis = new Uint8Array(7000); // ten identical blocks of zeros
    const head = headFor(basis.length, 700, 2);
    const tokens = runMatcher(head, makeSums(basis, head), basis, []);
    expect(tokens).toEqual([...Array(10).keys()].map((index) => ({ kind: "block", index })));
  });

  it("literal data comes out in 32 KiB chunks and memory stays bounded", () => {
    const basis = randomBytes(420_000); // 600 whole blocks: a short last block only matches at EOF
    const source = Buffer.concat([randomBytes(500_000), basis, randomBytes(100_001)]);
    const head = sumSizes(basis.length, 31, { digestLength: 16 });
    const m = new BlockMatcher(head, makeSums(basis, head), summer);
    const tokens: MatchToken[] = [];
    let maxBuf = 0;
    for (let p = 0; p < source.length; p += 8192) {
      tokens.push(...m.push(source.subarray(p, p + 8192)));
      maxBuf = Math.max(maxBuf, (m as unknown as { buf: Uint8Array }).buf.length);
    }
    tokens.push(...m.finish());
    expect(Buffer.from(applyTokens(basis, head, tokens)).equals(source)).toBe(true);
    expect(maxBuf).toBeLessThanOrEqual(4 * head.blength + 2 * CHUNK_SIZE + 8192 + 65536);
    const lits = tokens.filter((t) => t.kind === "literal").map((t) => (t as { data: Uint8Array }).data.length);
    expect(lits.slice(0, 10)).toEqual(Array(10).fill(CHUNK_SIZE));
    expect(m.stats.matchedBytes).toBe(basis.length);
    expect(m.stats.literalBytes).toBe(600_001);
  });

  it("no block sums: all literal", () => {
    const source = randomBytes(100_000);
    const head = { count: 0, blength: 0, s2length: 0, remainder: 0 };
    const tokens = runMatcher(head, { sum1: new Uint32Array(0), sum2: new Uint8Array(0) }, source, [3000]);
    expect(tokens.map((t) => (t.kind === "literal" ? t.data.length : -1))).toEqual([32768, 32768, 32768, 1696]);
    expect(Buffer.from(applyTokens(new Uint8Array(0), head, tokens)).equals(source)).toBe(true);
  });

  it("rejects sums shorter than the head's count", () => {
    expect(() => new BlockMatcher(headFor(1400, 700, 2), { sum1: new Uint32Array(1), sum2: new Uint8Array(2) }, summer)).toThrow(
      /shorter/,
    );
  });
});

describe("BlockSumsReader (sender.c receive_sums)", () => {
  it("reads sums incrementally from arbitrary cuts", () => {
    const basis = randomBytes(50_000);
    const head = headFor(basis.length, 700, 3);
    const sums = makeSums(basis, head);
    const w = new Writer();
    for (let i = 0; i < head.count; i++) {
      w.int32(sums.sum1[i]! | 0);
      w.bytes(sums.sum2.subarray(i * 3, i * 3 + 3));
    }
    const wire = w.take();
    const r = new BlockSumsReader(head, 31, 16);
    let buf = new Uint8Array(0);
    for (let p = 0; p < wire.length; p += 37) {
      const nb = new Uint8Array(buf.length + Math.min(37, wire.length - p));
      nb.set(buf);
      nb.set(wire.subarray(p, p + 37), buf.length);
      const c = new Cursor(nb);
      r.read(c);
      buf = nb.slice(c.pos);
    }
    expect(r.done).toBe(true);
    expect(buf.length).toBe(0);
    const got = r.sums();
    expect(Array.from(got.sum1)).toEqual(Array.from(sums.sum1));
    expect(Buffer.from(got.sum2).equals(Buffer.from(sums.sum2))).toBe(true);
  });
  it("validates the head first", () => {
    expect(() => new BlockSumsReader({ count: 3, blength: 700, s2length: 20, remainder: 0 }, 31, 16)).toThrow(/checksum length/);
  });
});
