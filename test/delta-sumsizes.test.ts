import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  MAX_BLOCK_SIZE,
  OLD_MAX_BLOCK_SIZE,
  SUM_LENGTH,
  sumHeadFileLength,
  sumSizes,
  validateSumHead,
} from "../src/delta/sumsizes.js";
import { ProtocolError } from "../src/protocol/wire.js";

/** An independent statement of the rule: ⌊√len⌋ rounded down to a multiple of 8, 700..max. */
function expectedBlength(len: number, protocol: number): number {
  if (len <= 700 * 700) return 700;
  const max = protocol < 30 ? OLD_MAX_BLOCK_SIZE : MAX_BLOCK_SIZE;
  const c = 2 ** Math.floor(Math.log2(len) / 2);
  if (c >= max) return max;
  let r = BigInt(Math.floor(Math.sqrt(len)));
  const L = BigInt(len);
  while (r * r > L) r--;
  while ((r + 1n) * (r + 1n) <= L) r++;
  return Math.max(Number(r) & ~7, 700);
}

describe("sumSizes (generator.c sum_sizes_sqroot)", () => {
  it("uses 700-byte blocks up to 700² bytes", () => {
    expect(sumSizes(0, 31, { digestLength: 16 })).toEqual({ count: 0, blength: 700, s2length: 2, remainder: 0 });
    expect(sumSizes(1, 31, { digestLength: 16 })).toEqual({ count: 1, blength: 700, s2length: 2, remainder: 1 });
    expect(sumSizes(700, 31, { digestLength: 16 })).toEqual({ count: 1, blength: 700, s2length: 2, remainder: 0 });
    expect(sumSizes(5000, 31, { digestLength: 16 })).toEqual({ count: 8, blength: 700, s2length: 2, remainder: 100 });
    expect(sumSizes(490000, 31, { digestLength: 16 }).blength).toBe(700);
    expect(sumSizes(490001, 31, { digestLength: 16 }).blength).toBe(700);
  });

  it("takes √len rounded down to a multiple of 8, capped per protocol", () => {
    expect(sumSizes(1_000_000, 31, { digestLength: 16 }).blength).toBe(1000);
    expect(sumSizes(3_145_728, 31, { digestLength: 16 }).blength).toBe(1768);
    expect(sumSizes(2 ** 40, 30, { digestLength: 16 }).blength).toBe(MAX_BLOCK_SIZE);
    expect(sumSizes(2 ** 40, 29, { digestLength: 16 }).blength).toBe(2 ** 20);
    expect(sumSizes(2 ** 52, 29, { digestLength: 16 }).blength).toBe(2 ** 26);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 47 }), fc.integer({ min: 27, max: 32 }), (len, p) => {
        const h = sumSizes(len, p, { digestLength: 16 });
        expect(h.blength).toBe(expectedBlength(len, p));
        expect(h.remainder).toBe(len % h.blength);
        expect(h.count).toBe(Math.ceil(len / h.blength));
        expect(sumHeadFileLength(h)).toBe(len);
        expect(h.s2length).toBeGreaterThanOrEqual(2);
        expect(h.s2length).toBeLessThanOrEqual(16);
      }),
      { numRuns: 2000 },
    );
  });

  it("honours --block-size", () => {
    expect(sumSizes(10_000, 31, { digestLength: 16, blockSize: 1024 })).toEqual({
      count: 10,
      blength: 1024,
      s2length: 2,
      remainder: 784,
    });
    expect(sumSizes(1_000_000_000, 29, { digestLength: 16, blockSize: 1 << 20 }).blength).toBe(1 << 20);
  });

  it("s2length: the length formula, never above the digest; SUM_LENGTH in the redo phase", () => {
    // b = 10 + 2·26 - 13 = 49 → (49 + 1 - 32 + 7) / 8 = 3
    expect(sumSizes(100_000_000, 31, { digestLength: 16 }).s2length).toBe(3);
    expect(sumSizes(2 ** 40, 31, { digestLength: 16 }).s2length).toBe(6);
    expect(sumSizes(2 ** 40, 31, { digestLength: 16, csumLength: SUM_LENGTH }).s2length).toBe(16);
    expect(sumSizes(2 ** 40, 31, { digestLength: 8, csumLength: SUM_LENGTH }).s2length).toBe(8);
    expect(sumSizes(2 ** 40, 31, { digestLength: 1 }).s2length).toBe(1);
    // A tiny user block on a huge file lengthens the strong sum.
    expect(sumSizes(2 ** 42, 29, { digestLength: 16, blockSize: 8192 }).s2length).toBe(7);
  });

  it("refuses a block count beyond int32", () => {
    expect(() => sumSizes(2 ** 50, 31, { digestLength: 16, blockSize: 700 })).toThrow(RangeError);
  });
});

describe("validateSumHead (io.c read_sum_head)", () => {
  const ok = { count: 10, blength: 700, s2length: 2, remainder: 100 };
  it("accepts sane heads", () => {
    expect(() => validateSumHead(ok, 31, 16)).not.toThrow();
    expect(() => validateSumHead({ count: 0, blength: 0, s2length: 0, remainder: 0 }, 31, 16)).not.toThrow();
    expect(() => validateSumHead({ ...ok, blength: OLD_MAX_BLOCK_SIZE, remainder: 0 }, 29, 16)).not.toThrow();
  });
  it.each([
    [{ ...ok, count: -1 }, 31, 16, /count/],
    [{ ...ok, count: 1 << 30 }, 31, 16, /count/],
    [{ ...ok, blength: MAX_BLOCK_SIZE + 1 }, 31, 16, /block length/],
    [{ ...ok, blength: OLD_MAX_BLOCK_SIZE + 1 }, 29, 16, /block length/],
    [{ ...ok, blength: -5 }, 31, 16, /block length/],
    [{ ...ok, blength: 0, remainder: 0 }, 31, 16, /zero block length/],
    [{ ...ok, s2length: 17 }, 31, 16, /checksum length/],
    [{ ...ok, s2length: 9 }, 31, 8, /checksum length/],
    [{ ...ok, s2length: -1 }, 31, 16, /checksum length/],
    [{ ...ok, remainder: 701 }, 31, 16, /remainder/],
    [{ ...ok, remainder: -1 }, 31, 16, /remainder/],
  ])("rejects %o (protocol %i, digest %i)", (h, p, d, re) => {
    expect(() => validateSumHead(h, p, d)).toThrow(ProtocolError);
    expect(() => validateSumHead(h, p, d)).toThrow(re);
  });
  it("takes a caller's count limit", () => {
    expect(() => validateSumHead(ok, 31, 16, { maxCount: 9 })).toThrow(/too large/);
  });
});
