// Whole-file and --checksum sums against native rsync: its %C log escape (log.c) prints the
// sender's whole-file sum of each transferred file (or, with -c, the file-list sum); for the
// non-canonical md4-old (protocols 27-29 by default) we find the sum in a --write-batch file,
// which records the sender's stream: each file's tokens end with int32 0 and then its sum.
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CHECKSUM_NAMES,
  createFileSummer,
  createFlistSummer,
  initChecksums,
  parseChecksumName,
  sumAsHex,
  type ChecksumType,
} from "../src/delta/checksum.js";
import { assertOk, runRsync } from "./helpers/rsync.js";

let tmp: string;
let src: string;
const files: Record<string, Buffer> = {
  empty: Buffer.alloc(0),
  one: Buffer.from("x"),
  b64: randomBytes(64),
  b700: randomBytes(700),
  b70000: randomBytes(70_000),
  b3m: randomBytes(3 * 1024 * 1024 + 17),
};

beforeAll(async () => {
  await initChecksums();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "krsync-csum-"));
  src = path.join(tmp, "src");
  fs.mkdirSync(src);
  for (const [n, d] of Object.entries(files)) fs.writeFileSync(path.join(src, n), d);
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

let runNo = 0;
const freshDst = (): string => path.join(tmp, `dst${runNo++}`);

/** `rsync -a --out-format='%C %n' …` → name → the %C field (trimmed; "" when blank). */
async function percentC(args: string[]): Promise<Map<string, string>> {
  const r = assertOk(await runRsync(["-a", "--out-format=%C|%n", ...args, `${src}/`, `${freshDst()}/`]));
  const m = new Map<string, string>();
  for (const line of r.stdout.split("\n")) {
    const bar = line.indexOf("|");
    if (bar >= 0) m.set(line.slice(bar + 1), line.slice(0, bar).trim());
  }
  return m;
}

function fileSum(type: ChecksumType, protocol: number, seed: number, d: Uint8Array): Uint8Array {
  const f = createFileSummer(type, protocol, seed);
  // Feed in uneven pieces, as matched() does.
  for (let i = 0; i < d.length; i += 7000) f.update(d.subarray(i, i + 7000));
  return f.digest();
}

const PROTOCOLS = [27, 28, 29, 30, 31, 32];

describe("whole-file transfer sums match rsync's %C", () => {
  for (const protocol of PROTOCOLS) {
    it(`protocol ${protocol}, every --checksum-choice`, async () => {
      for (const name of CHECKSUM_NAMES) {
        // --checksum-choice is honoured below protocol 30 too (passed to the server as an option).
        const out = await percentC([`--protocol=${protocol}`, `--checksum-choice=${name}`]);
        const type = parseChecksumName(name, protocol);
        for (const [n, d] of Object.entries(files)) {
          const want = sumAsHex(type, fileSum(type, protocol, 0, d)) ?? "";
          expect({ protocol, name, file: n, sum: out.get(n) }).toEqual({ protocol, name, file: n, sum: want });
        }
      }
    });
  }

  it("protocol >= 30 without a choice negotiates xxh128 between two 3.5.0s", async () => {
    const out = await percentC(["--protocol=31"]);
    for (const [n, d] of Object.entries(files)) expect(out.get(n)).toBe(sumAsHex("xxh128", fileSum("xxh128", 31, 0, d)));
  });

  it("protocols 27-29 by default use md4-old, which %C leaves blank", async () => {
    const out = await percentC(["--protocol=29"]);
    for (const n of Object.keys(files)) expect(out.get(n)).toBe("");
  });
});

describe("--checksum (-c) file sums match rsync's %C", () => {
  for (const protocol of PROTOCOLS) {
    it(`protocol ${protocol}`, async () => {
      for (const name of CHECKSUM_NAMES) {
        if (name === "none") continue; // rsync: "Invalid checksum-choice for --checksum"
        // xfer,file: a different transfer checksum must not matter.
        const out = await percentC([`--protocol=${protocol}`, "-c", `--checksum-choice=md5,${name}`]);
        const type = parseChecksumName(name, protocol);
        for (const [n, d] of Object.entries(files)) {
          const f = createFlistSummer(type);
          f.update(d);
          expect({ protocol, name, file: n, sum: out.get(n) }).toEqual({
            protocol,
            name,
            file: n,
            sum: sumAsHex(type, f.digest()),
          });
        }
      }
    });
  }
});

/** Read protocol and checksum seed from a batch file's header (io.c start_write_batch). */
function batchHeader(b: Buffer): { protocol: number; seed: number } {
  // int32 stream flags, int32 protocol, varint compat flags (>= 30), int32 seed
  const protocol = b.readInt32LE(4);
  let p = 8;
  if (protocol >= 30) {
    if (b[p]! >= 0x80) throw new Error("multi-byte compat flags not expected");
    p += 1;
  }
  return { protocol, seed: b.readInt32LE(p) };
}

describe("seeded md4-old whole-file sums (protocols 27-29) found in a --write-batch stream", () => {
  for (const protocol of [27, 28, 29]) {
    for (const seedArg of [undefined, 12345, -987654]) {
      it(`protocol ${protocol}, seed ${seedArg ?? "random"}`, async () => {
        const batch = path.join(tmp, `batch${runNo++}`);
        const args = [`--protocol=${protocol}`, `--write-batch=${batch}`];
        if (seedArg !== undefined) args.push(`--checksum-seed=${seedArg}`);
        assertOk(await runRsync(["-a", ...args, `${src}/`, `${freshDst()}/`]));
        const b = fs.readFileSync(batch);
        const { protocol: p, seed } = batchHeader(b);
        expect(p).toBe(protocol);
        if (seedArg !== undefined) expect(seed).toBe(seedArg);
        for (const [n, d] of Object.entries(files)) {
          const sum = fileSum("md4-old", protocol, seed, d);
          const marker = Buffer.concat([Buffer.alloc(4), sum]); // end token, then the sum
          expect({ n, found: b.indexOf(marker) >= 0 }).toEqual({ n, found: true });
          // The unseeded digest must not be what rsync sent.
          const plain = fileSum("md4", protocol, seed, d);
          expect(b.indexOf(Buffer.concat([Buffer.alloc(4), plain]))).toBe(-1);
        }
      });
    }
  }

  it("protocol 30+ batches use md5 (old-style choice), unseeded", async () => {
    const batch = path.join(tmp, `batch${runNo++}`);
    assertOk(await runRsync(["-a", "--protocol=31", `--write-batch=${batch}`, `${src}/`, `${freshDst()}/`]));
    const b = fs.readFileSync(batch);
    for (const d of Object.values(files)) {
      const marker = Buffer.concat([Buffer.alloc(4), fileSum("md5", 31, 1, d)]);
      expect(b.indexOf(marker)).toBeGreaterThanOrEqual(0);
    }
  });
});
