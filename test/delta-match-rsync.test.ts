// The block search against native rsync's sender: with the same basis sums (the receiver's
// weak sums, and strong sums under the connection's checksum and seed, cut to s2length),
// our matcher must pick the same blocks at the same offsets as match.c, which prints each
// match with --debug=deltasum2 ("match at OFFSET last_match=… j=BLOCK …").
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBlockSummer, initChecksums, parseChecksumName, type ChecksumType } from "../src/delta/checksum.js";
import { BlockMatcher, type MatchToken } from "../src/delta/match.js";
import { weakChecksum } from "../src/delta/rolling.js";
import { sumSizes } from "../src/delta/sumsizes.js";
import { checksumDigestLength } from "../src/delta/checksum.js";
import { assertOk, runRsync } from "./helpers/rsync.js";

let tmp: string;
beforeAll(async () => {
  await initChecksums();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "krsync-match-"));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

let n = 0;
async function rsyncMatches(basis: Uint8Array, source: Uint8Array, args: string[]): Promise<Array<[number, number]>> {
  const dir = path.join(tmp, `m${n++}`);
  fs.mkdirSync(path.join(dir, "s"), { recursive: true });
  fs.mkdirSync(path.join(dir, "d"));
  fs.writeFileSync(path.join(dir, "s", "f"), source);
  fs.writeFileSync(path.join(dir, "d", "f"), basis);
  const r = assertOk(
    await runRsync(["-I", "--no-whole-file", "--debug=deltasum2", ...args, path.join(dir, "s", "f"), path.join(dir, "d", "f")]),
  );
  expect(Buffer.from(fs.readFileSync(path.join(dir, "d", "f"))).equals(Buffer.from(source))).toBe(true);
  return [...r.stdout.matchAll(/^match at (\d+) last_match=\d+ j=(\d+) len=\d+ n=\d+$/gm)].map((m) => [+m[1]!, +m[2]!]);
}

async function ourMatches(
  basis: Uint8Array,
  source: Uint8Array,
  type: ChecksumType,
  protocol: number,
  seed: number,
  inplace: boolean,
): Promise<Array<[number, number]>> {
  const head = sumSizes(basis.length, protocol, { digestLength: checksumDigestLength(type) });
  const summer = await createBlockSummer(type, protocol, seed);
  const sum1 = new Uint32Array(head.count);
  const sum2 = new Uint8Array(head.count * head.s2length);
  for (let i = 0; i < head.count; i++) {
    const off = i * head.blength;
    const len = Math.min(head.blength, basis.length - off);
    sum1[i] = weakChecksum(basis, off, len);
    sum2.set(summer(basis, off, len).subarray(0, head.s2length), i * head.s2length);
  }
  const m = new BlockMatcher(head, { sum1, sum2 }, summer, { inplace });
  const tokens: MatchToken[] = [];
  for (let p = 0; p < source.length; p += 10_000) tokens.push(...m.push(source.subarray(p, p + 10_000)));
  tokens.push(...m.finish());
  const out: Array<[number, number]> = [];
  let pos = 0;
  for (const t of tokens) {
    if (t.kind === "literal") pos += t.data.length;
    else {
      out.push([pos, t.index]);
      pos += t.index === head.count - 1 && head.remainder ? head.remainder : head.blength;
    }
  }
  expect(pos).toBe(source.length);
  return out;
}

const cat = (...p: Uint8Array[]): Buffer => Buffer.concat(p);

/** Basis/source pairs that exercise shifts, duplicates, moved blocks and zero runs. */
function scenarios(): Array<{ name: string; basis: Buffer; source: Buffer }> {
  const a = randomBytes(300_000);
  const zeros = Buffer.alloc(50_000);
  const withZeros = cat(a.subarray(0, 100_000), zeros, a.subarray(100_000, 200_000), zeros, a.subarray(200_000));
  return [
    { name: "insertions and deletions", basis: a, source: cat(a.subarray(0, 1000), randomBytes(37), a.subarray(1000, 150_000), a.subarray(150_500, 300_000), randomBytes(5)) },
    { name: "moved and duplicated regions", basis: a, source: cat(a.subarray(200_000), a.subarray(0, 100_000), a.subarray(50_000, 120_000), a.subarray(100_000, 200_000)) },
    { name: "zero runs (identical blocks)", basis: withZeros, source: cat(randomBytes(3), withZeros.subarray(0, 160_000), Buffer.alloc(777), withZeros.subarray(160_000)) },
    { name: "zeros shifted in place", basis: withZeros, source: cat(withZeros.subarray(0, 90_000), Buffer.alloc(1234), withZeros.subarray(90_000, 400_000)) },
    { name: "unchanged", basis: a, source: a },
    { name: "large literal stretch", basis: a, source: cat(a.subarray(0, 10_000), randomBytes(150_000), a.subarray(10_000)) },
  ];
}

describe("block matches agree with native rsync's sender", () => {
  const cases: Array<{ protocol: number; choice?: string }> = [
    { protocol: 32 }, // negotiated xxh128
    { protocol: 31, choice: "md5" },
    { protocol: 30, choice: "md4" },
    { protocol: 32, choice: "sha1" },
    { protocol: 32, choice: "xxh64" },
    { protocol: 31, choice: "xxh3" },
    { protocol: 29 }, // md4-old
    { protocol: 28 },
    { protocol: 27, choice: "md5" },
  ];
  for (const { protocol, choice } of cases) {
    for (const inplace of [false, true]) {
      it(`protocol ${protocol}, ${choice ?? "default"} checksum${inplace ? ", --inplace" : ""}`, async () => {
        const type = choice ? parseChecksumName(choice, protocol) : protocol >= 30 ? "xxh128" : "md4-old";
        for (const seed of [1, 0x7abcdef0 | 0, -123456]) {
          for (const { name, basis, source } of scenarios()) {
            const args = [`--protocol=${protocol}`, `--checksum-seed=${seed}`];
            if (choice) args.push(`--checksum-choice=${choice}`);
            if (inplace) args.push("--inplace");
            const want = await rsyncMatches(basis, source, args);
            const got = await ourMatches(basis, source, type, protocol, seed, inplace);
            expect({ name, seed, count: got.length }).toEqual({ name, seed, count: want.length });
            expect(got).toEqual(want);
          }
        }
      });
    }
  }
});
