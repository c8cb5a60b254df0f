// The wasm SIMD kernels (src/delta/wasm-simd.ts) against the references: get_checksum1 against
// the scalar weakChecksum, XXH3-128's long form and its streaming against hash-wasm's XXH3-128.
import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { createXXHash128 } from "hash-wasm";
import { beforeAll, describe, expect, it } from "vitest";
import { createBlockSummer, initChecksums } from "../src/delta/checksum.js";
import { weakChecksum } from "../src/delta/rolling.js";
import { FILTER_MUL, SimdBuffer, Xxh128Stream } from "../src/delta/wasm-simd.js";

const hex = (u: Uint8Array): string => Buffer.from(u).toString("hex");

/** XXH3-128 with rsync's seed (int32, sign-extended), low64 then high64 little-endian. */
async function xxh128Ref(seed: number): Promise<(d: Uint8Array) => Uint8Array> {
  const h = await createXXHash128(seed >>> 0, seed < 0 ? 0xffffffff : 0);
  return (d) => h.init().update(d).digest("binary").reverse();
}

beforeAll(() => initChecksums(["xxh128"]));

describe("SimdBuffer.sum (checksum.c get_checksum1)", () => {
  it("equals the scalar sum at any offset and length", () => {
    const sb = new SimdBuffer(300_000);
    const data = randomBytes(300_000);
    sb.bytes.set(data);
    fc.assert(
      fc.property(fc.nat(299_999), fc.nat(300_000), (off, n) => {
        const len = n % (300_000 - off + 1);
        expect(sb.sum(off, len)).toBe(weakChecksum(data, off, len));
      }),
      { numRuns: 400 },
    );
    for (const fill of [0x7f, 0x80, 0xff, 0x00]) {
      const d = new Uint8Array(131_072).fill(fill);
      sb.bytes.set(d);
      for (const len of [0, 1, 31, 32, 33, 131_072]) expect(sb.sum(0, len)).toBe(weakChecksum(d, 0, len));
    }
  });

  it("keeps its contents when it grows", () => {
    const sb = new SimdBuffer(1000);
    const d = randomBytes(1000);
    sb.bytes.set(d);
    sb.reserve(5_000_000);
    expect(sb.bytes.length).toBeGreaterThanOrEqual(5_000_000);
    expect(hex(sb.bytes.subarray(0, 1000))).toBe(hex(d));
    expect(sb.sum(0, 1000)).toBe(weakChecksum(d, 0, 1000));
  });
});

describe("SimdBuffer.scan (match.c hash_search's rolling step)", () => {
  it("stops where the scalar roll first meets a set filter bit, with the same sum", () => {
    const F = 4096; // a 32768-bit filter in front of the data
    const sb = new SimdBuffer(F + 200_000);
    const data = randomBytes(200_000);
    sb.bytes.set(data, F);
    const sd = new Int8Array(data.buffer, data.byteOffset, data.length);
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5000 }), fc.nat(100_000), fc.integer({ min: 0, max: 400 }), fc.nat(), (k, start, density, seed) => {
        const filter = new Uint32Array(F / 4);
        let x = seed | 1;
        for (let i = 0; i < density; i++) {
          x = Math.imul(x ^ (x >>> 15), 0x2c1b3c6d) | 1;
          filter[(x >>> 0) % filter.length] |= 1 << (x & 31);
        }
        sb.bytes.set(new Uint8Array(filter.buffer), 0);
        const fshift = 32 - 15;
        const end = Math.min(start + 50_000, data.length - k);
        // the scalar definition
        let sum = weakChecksum(data, start, k);
        let s1 = sum & 0xffff;
        let s2 = sum >>> 16;
        let off = start;
        for (; off < end; off++) {
          const v = (s1 & 0xffff) | (s2 << 16);
          const f = Math.imul(v, FILTER_MUL) >>> fshift;
          if (filter[f >>> 5]! & (1 << (f & 31))) break;
          const o = sd[off]!;
          s1 = (s1 - o + sd[off + k]!) | 0;
          s2 = (s2 - Math.imul(k, o) + s1) | 0;
        }
        sum = ((s1 & 0xffff) | (s2 << 16)) >>> 0;
        const got = sb.scan(F + start, F + end, k, weakChecksum(data, start, k), 0, fshift) - F;
        expect(got).toBe(off);
        expect(sb.lastSum).toBe(sum);
        if (off < end) expect(sum).toBe(weakChecksum(data, off, k)); // the rolled sum is the window's
      }),
      { numRuns: 150 },
    );
  });
});

describe("XXH3-128, long inputs", () => {
  const data = randomBytes(1 << 20);
  const sb = new SimdBuffer(data.length);
  sb.bytes.set(data);

  for (const seed of [0, 0x1234, -5, 0x7fffffff, -0x80000000]) {
    it(`one-shot equals hash-wasm, seed ${seed}`, async () => {
      const ref = await xxh128Ref(seed);
      // around the stripe (64), block (1024) and last-stripe boundaries
      const lens = [241, 255, 256, 257, 319, 320, 1023, 1024, 1025, 1087, 1088, 1089, 2047, 2048, 2049, 31_616, 131_072, 700_001];
      for (const len of lens) {
        for (const off of [0, 1, 7, 333]) expect(hex(sb.xxh128Long(sb.bytes, off, len, seed))).toBe(hex(ref(data.subarray(off, off + len))));
      }
      fc.assert(
        fc.property(fc.nat(100_000), fc.integer({ min: 241, max: 200_000 }), (off, len) => {
          expect(hex(sb.xxh128Long(sb.bytes, off, len, seed))).toBe(hex(ref(data.subarray(off, off + len))));
        }),
        { numRuns: 100 },
      );
    });
  }

  it("refuses the short forms", () => {
    expect(() => sb.xxh128Long(sb.bytes, 0, 240, 0)).toThrow(RangeError);
  });

  it("streaming equals the one-shot hash of every byte, however the input is cut", async () => {
    const ref = await xxh128Ref(0);
    fc.assert(
      fc.property(fc.nat(600_000), fc.array(fc.integer({ min: 1, max: 70_000 }), { minLength: 1, maxLength: 30 }), (n, cuts) => {
        const len = n < 300_000 ? n % 3000 : n; // many short and mid-size totals too
        const s = new Xxh128Stream(0, ref);
        let p = 0;
        for (let i = 0; p < len; i++) {
          const k = Math.min(len - p, cuts[i % cuts.length]!);
          s.update(data.subarray(p, p + k));
          p += k;
        }
        expect(hex(s.digest())).toBe(hex(ref(data.subarray(0, len))));
      }),
      { numRuns: 200 },
    );
  });

  it("streaming straight from a SimdBuffer (summed in place) equals the one-shot hash", async () => {
    const ref = await xxh128Ref(0);
    fc.assert(
      fc.property(fc.nat(600_000), fc.array(fc.integer({ min: 1, max: 70_000 }), { minLength: 1, maxLength: 30 }), fc.boolean(), (n, cuts, mix) => {
        const len = n < 200_000 ? n % 5000 : n;
        const s = new Xxh128Stream(0, ref);
        let p = 0;
        for (let i = 0; p < len; i++) {
          const k = Math.min(len - p, cuts[i % cuts.length]!);
          // from the SimdBuffer, or (mixed in) from plain memory
          s.update(mix && i % 3 === 1 ? data.subarray(p, p + k) : sb.bytes.subarray(p, p + k));
          p += k;
        }
        expect(hex(s.digest())).toBe(hex(ref(data.subarray(0, len))));
      }),
      { numRuns: 200 },
    );
  });

  it("interleaved streams keep their own state", async () => {
    const ref = await xxh128Ref(0);
    const a = new Xxh128Stream(0, ref);
    const b = new Xxh128Stream(0, ref);
    for (let i = 0; i < 500_000; i += 10_001) {
      a.update(data.subarray(i, Math.min(500_000, i + 10_001)));
      b.update(data.subarray(500_000 + i, Math.min(1_000_000, 500_000 + i + 10_001)));
    }
    expect(hex(a.digest())).toBe(hex(ref(data.subarray(0, 500_000))));
    expect(hex(b.digest())).toBe(hex(ref(data.subarray(500_000, 1_000_000))));
  });

  it("the xxh128 block summer gives the same sums in place and from plain memory", async () => {
    const seed = 0x5eed;
    const ref = await xxh128Ref(seed);
    const summer = await createBlockSummer("xxh128", 31, seed);
    const plain = Uint8Array.from(data);
    for (const [off, len] of [[0, 100], [5, 240], [5, 241], [999, 31_616], [12_345, 131_072]] as const) {
      const want = hex(ref(data.subarray(off, off + len)));
      expect(hex(summer(sb.bytes, off, len))).toBe(want);
      expect(hex(summer(plain, off, len))).toBe(want);
    }
  });
});
