import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { RollingChecksum, sum2hash, weakChecksum, weakHashBits, weakHashSlot } from "../src/delta/rolling.js";

/** The definition, literally: s1 = Σ x, s2 = Σ (len-i)·x over signed chars. */
function reference(buf: Uint8Array, off: number, len: number): number {
  let s1 = 0n;
  let s2 = 0n;
  for (let i = 0; i < len; i++) {
    const x = BigInt((buf[off + i]! << 24) >> 24);
    s1 += x;
    s2 += BigInt(len - i) * x;
  }
  return Number((s1 & 0xffffn) | ((s2 & 0xffffn) << 16n));
}

describe("weakChecksum (checksum.c get_checksum1)", () => {
  it("matches the definition on random data, offsets and lengths", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 3000 }), fc.nat(), fc.nat(), (buf, a, b) => {
        const off = buf.length ? a % buf.length : 0;
        const len = buf.length - off ? b % (buf.length - off + 1) : 0;
        expect(weakChecksum(buf, off, len)).toBe(reference(buf, off, len));
      }),
      { numRuns: 500 },
    );
  });

  it("treats bytes as signed chars and is not Adler-32", () => {
    expect(weakChecksum(new Uint8Array([0xff]), 0, 1)).toBe(0xffffffff); // s1 = s2 = -1
    expect(weakChecksum(new Uint8Array([1, 2, 3]), 0, 3)).toBe(6 | (10 << 16));
    expect(weakChecksum(new Uint8Array(0), 0, 0)).toBe(0);
    // 0x80 = -128: s1 = -128, s2 = -128·2 + -128·1 = -384
    expect(weakChecksum(new Uint8Array([0x80, 0x80]), 0, 2)).toBe((((-256 & 0xffff) | (-384 << 16)) >>> 0));
  });

  it("handles large blocks without losing bits", () => {
    const buf = new Uint8Array(1 << 17).fill(0x7f);
    expect(weakChecksum(buf, 0, buf.length)).toBe(reference(buf, 0, buf.length));
    buf.fill(0x80);
    expect(weakChecksum(buf, 0, buf.length)).toBe(reference(buf, 0, buf.length));
  });
});

describe("RollingChecksum (match.c)", () => {
  it("rolling equals recomputing at every offset, and rollOut shrinks the window", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 2000 }), fc.integer({ min: 1, max: 800 }), (buf, w) => {
        const k = Math.min(w, buf.length);
        const r = new RollingChecksum().init(buf, 0, k);
        let off = 0;
        for (; off + k < buf.length; off++) {
          expect(r.value).toBe(weakChecksum(buf, off, k));
          r.roll(buf[off]!, buf[off + k]!);
        }
        // The file's end: the window shrinks by one each step.
        for (; off < buf.length; off++) {
          expect(r.value).toBe(weakChecksum(buf, off, buf.length - off));
          r.rollOut(buf[off]!);
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe("hash slot helpers", () => {
  it("sizes tables and keeps slots in range", () => {
    expect(weakHashBits(0)).toBe(10);
    expect(1 << weakHashBits(100_000)).toBeGreaterThanOrEqual(200_000);
    for (const s of [0, 1, 0xffffffff, 0x12345678]) {
      const slot = weakHashSlot(s, 16);
      expect(slot).toBeGreaterThanOrEqual(0);
      expect(slot).toBeLessThan(1 << 16);
    }
    expect(sum2hash(0x00020003)).toBe(5);
  });
});
