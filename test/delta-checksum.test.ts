import { createHash, randomBytes } from "node:crypto";
import { createMD4, createXXHash128, createXXHash3, createXXHash64 } from "hash-wasm";
import { beforeAll, describe, expect, it } from "vitest";
import {
  checksumDigestLength,
  createBlockSummer,
  createFileSummer,
  createFlistSummer,
  defaultChecksum,
  initChecksums,
  parseChecksumName,
  resolveChecksumChoice,
  sumAsHex,
  type ChecksumType,
} from "../src/delta/checksum.js";

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const le32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
};
const cat = (...p: Uint8Array[]): Buffer => Buffer.concat(p);

async function md4(d: Uint8Array): Promise<Uint8Array> {
  return (await createMD4()).init().update(d).digest("binary");
}
const node = (alg: string, d: Uint8Array): Uint8Array => createHash(alg).update(d).digest();
/** xxh digests in rsync's byte order: the value(s) little-endian. */
async function xxh(kind: "xxh64" | "xxh3" | "xxh128", d: Uint8Array, seed: number): Promise<Uint8Array> {
  const lo = seed >>> 0;
  const hi = seed < 0 ? 0xffffffff : 0;
  const h = kind === "xxh64" ? await createXXHash64(lo, hi) : kind === "xxh3" ? await createXXHash3(lo, hi) : await createXXHash128(lo, hi);
  return h.init().update(d).digest("binary").reverse();
}

beforeAll(() => initChecksums());

describe("names, lengths, defaults (checksum.c)", () => {
  it("digest lengths", () => {
    const want: Record<ChecksumType, number> = {
      xxh128: 16, xxh3: 8, xxh64: 8, md5: 16, md4: 16, sha1: 20, none: 1, "md4-old": 16, "md5-old-seed": 16,
    };
    for (const [t, n] of Object.entries(want)) expect(checksumDigestLength(t as ChecksumType)).toBe(n);
  });
  it("implied checksum per protocol", () => {
    expect(defaultChecksum(27)).toBe("md4-old");
    expect(defaultChecksum(28)).toBe("md4-old");
    expect(defaultChecksum(29)).toBe("md4-old");
    expect(defaultChecksum(30)).toBe("md5");
    expect(defaultChecksum(32)).toBe("md5");
    expect(defaultChecksum(31, false)).toBe("md5-old-seed");
    expect(() => defaultChecksum(26)).toThrow();
  });
  it("parse_csum_name / parse_checksum_choice", () => {
    expect(parseChecksumName("XXHASH", 31)).toBe("xxh64");
    expect(parseChecksumName("auto", 29)).toBe("md4-old");
    expect(parseChecksumName("md4", 29)).toBe("md4"); // explicit md4 is CSUM_MD4, not MD4_OLD
    expect(() => parseChecksumName("crc32", 31)).toThrow(/unknown checksum name/);
    expect(resolveChecksumChoice({ protocol: 31, choice: "xxh3,md5" })).toEqual({ xfer: "xxh3", file: "md5" });
    expect(resolveChecksumChoice({ protocol: 31, negotiated: "xxh128", choice: "md5" })).toEqual({ xfer: "xxh128", file: "xxh128" });
    expect(resolveChecksumChoice({ protocol: 28 })).toEqual({ xfer: "md4-old", file: "md4-old" });
    expect(resolveChecksumChoice({ protocol: 30, properSeedOrder: false })).toEqual({ xfer: "md5-old-seed", file: "md5-old-seed" });
  });
});

describe("block sums (get_checksum2)", () => {
  const data = randomBytes(6000);
  const cases = [0, 1, 63, 64, 65, 700, 4096, 5000];
  for (const seed of [0, 0x12345678, -7]) {
    it(`seed ${seed}`, async () => {
      const s = le32(seed);
      const md4s = await createBlockSummer("md4", 31, seed);
      const md4o = await createBlockSummer("md4-old", 29, seed);
      const md5s = await createBlockSummer("md5", 31, seed);
      const md5o = await createBlockSummer("md5-old-seed", 31, seed);
      const sha1 = await createBlockSummer("sha1", 31, seed);
      const x64 = await createBlockSummer("xxh64", 31, seed);
      const x3 = await createBlockSummer("xxh3", 31, seed);
      const x128 = await createBlockSummer("xxh128", 31, seed);
      for (const len of cases) {
        const off = 17;
        const d = data.subarray(off, off + len);
        const withSeedAfter = seed ? cat(d, s) : d;
        const withSeedBefore = seed ? cat(s, d) : d;
        expect(hex(md4s(data, off, len))).toBe(hex(await md4(withSeedAfter)));
        expect(hex(md4o(data, off, len))).toBe(hex(await md4(withSeedAfter)));
        expect(hex(md5s(data, off, len))).toBe(hex(node("md5", withSeedBefore)));
        expect(hex(md5o(data, off, len))).toBe(hex(node("md5", withSeedAfter)));
        expect(hex(sha1(data, off, len))).toBe(hex(node("sha1", withSeedBefore)));
        expect(hex(x64(data, off, len))).toBe(hex(await xxh("xxh64", d, seed)));
        expect(hex(x3(data, off, len))).toBe(hex(await xxh("xxh3", d, seed)));
        expect(hex(x128(data, off, len))).toBe(hex(await xxh("xxh128", d, seed)));
      }
      // Large blocks take node:crypto's path for md5.
      const big = randomBytes(200_000);
      expect(hex(md5s(big, 5, 131072))).toBe(hex(node("md5", seed ? cat(s, big.subarray(5, 131077)) : big.subarray(5, 131077))));
      expect(hex(md5o(big, 5, 131072))).toBe(hex(node("md5", seed ? cat(big.subarray(5, 131077), s) : big.subarray(5, 131077))));
    });
  }
  it("refuses none", async () => {
    await expect(createBlockSummer("none", 31, 0)).rejects.toThrow(/whole-file/);
  });
  it("the xxh64 value goes little-endian (SIVAL64)", async () => {
    const x = await createBlockSummer("xxh64", 31, 0);
    // XXH64("") = 0xef46db3751d8e999
    expect(hex(x(new Uint8Array(0), 0, 0))).toBe("99e9d85137db46ef");
    expect(sumAsHex("xxh64", x(new Uint8Array(0), 0, 0))).toBe("ef46db3751d8e999");
  });
});

describe("whole-file sums (sum_init/sum_update/sum_end)", () => {
  const data = randomBytes(100_000);
  const feed = (f: { update(d: Uint8Array): void }, d: Uint8Array, step: number): void => {
    for (let i = 0; i < d.length; i += step) f.update(d.subarray(i, i + step));
  };
  it("md4-old is seeded (seed first, even 0); the others are not", async () => {
    for (const seed of [0, 99, -3]) {
      const f = createFileSummer("md4-old", 29, seed);
      feed(f, data, 777);
      expect(hex(f.digest())).toBe(hex(await md4(cat(le32(seed), data))));
      const g = createFileSummer("md4", 29, seed);
      feed(g, data, 64);
      expect(hex(g.digest())).toBe(hex(await md4(data)));
      for (const t of ["md5", "md5-old-seed"] as const) {
        const m = createFileSummer(t, 31, seed);
        feed(m, data, 1000);
        expect(hex(m.digest())).toBe(hex(node("md5", data)));
      }
      for (const t of ["xxh64", "xxh3", "xxh128"] as const) {
        const m = createFileSummer(t, 31, seed);
        feed(m, data, 3000);
        expect(hex(m.digest())).toBe(hex(await xxh(t, data, 0)));
      }
    }
    const n = createFileSummer("none", 31, 5);
    n.update(data);
    expect(hex(n.digest())).toBe("00");
  });

  it("interleaved summers sharing a wasm hasher keep their own state", async () => {
    const a = createFileSummer("xxh128", 31, 0);
    const b = createFileSummer("xxh128", 31, 0);
    const c = createFileSummer("md4-old", 28, 5);
    const d = createFileSummer("md4", 28, 5);
    const blk = await createBlockSummer("xxh128", 31, 0);
    const blk4 = await createBlockSummer("md4", 31, 0);
    const d1 = data.subarray(0, 50_000);
    const d2 = data.subarray(50_000);
    for (let i = 0; i < 50_000; i += 5000) {
      a.update(d1.subarray(i, i + 5000));
      blk(data, i, 700);
      b.update(d2.subarray(i, i + 5000));
      c.update(d1.subarray(i, i + 5000));
      blk4(data, i, 700);
      d.update(d2.subarray(i, i + 5000));
    }
    expect(hex(a.digest())).toBe(hex(await xxh("xxh128", d1, 0)));
    expect(hex(b.digest())).toBe(hex(await xxh("xxh128", d2, 0)));
    expect(hex(c.digest())).toBe(hex(await md4(cat(le32(5), d1))));
    expect(hex(d.digest())).toBe(hex(await md4(d2)));
  });

  it("--checksum file sums (file_checksum) are never seeded; none is refused", async () => {
    const f = createFlistSummer("md4-old");
    f.update(data);
    expect(hex(f.digest())).toBe(hex(await md4(data)));
    expect(() => createFlistSummer("none")).toThrow(/none/);
  });

  it("sum_as_hex", () => {
    const d = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(sumAsHex("xxh3", d)).toBe("0807060504030201");
    expect(sumAsHex("md5", new Uint8Array(16).fill(0xab))).toBe("ab".repeat(16));
    expect(sumAsHex("md4-old", new Uint8Array(16))).toBeNull();
    expect(sumAsHex("none", new Uint8Array(1))).toBeNull();
  });
});
