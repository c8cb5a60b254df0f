// Checks block geometry (generator.c sum_sizes_sqroot) and weak block sums (get_checksum1)
// against native rsync's generator, through its --debug=deltasum output.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { weakChecksum } from "../src/delta/rolling.js";
import { sumSizes } from "../src/delta/sumsizes.js";
import { rsyncPath } from "./helpers/env.js";

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "krsync-sums-"));
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** Run rsync, collecting stdout+stderr; stop it (its whole process group) once `until` matches. */
function runUntil(args: string[], until?: RegExp, timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(rsyncPath, args, { stdio: ["ignore", "pipe", "pipe"], detached: true });
    let text = "";
    let done = false;
    const stop = (): void => {
      if (!done && child.pid) {
        done = true;
        try {
          process.kill(-child.pid, "SIGKILL");
        } catch {
          /* already gone */
        }
      }
    };
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`timeout: rsync ${args.join(" ")}\n${text}`));
    }, timeoutMs);
    const onData = (b: Buffer): void => {
      text += b.toString("utf8");
      if (until && until.test(text)) stop();
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("error", reject);
    child.on("close", () => {
      clearTimeout(timer);
      resolve(text);
    });
  });
}

const HEAD_RE = /count=(\d+) rem=(\d+) blength=(\d+) s2length=(\d+) flength=(\d+)/;

let caseNo = 0;
/** Make dst/f (the basis) of `len` bytes (sparse unless content is given) and a different src/f. */
function prepare(len: number, content?: Uint8Array): { src: string; dst: string } {
  const dir = path.join(tmp, `c${caseNo++}`);
  fs.mkdirSync(path.join(dir, "s"), { recursive: true });
  fs.mkdirSync(path.join(dir, "d"));
  const dst = path.join(dir, "d", "f");
  if (content) fs.writeFileSync(dst, content);
  else {
    fs.writeFileSync(dst, "");
    fs.truncateSync(dst, len);
  }
  fs.writeFileSync(path.join(dir, "s", "f"), "a different source\n");
  return { src: path.join(dir, "s", "f"), dst };
}

async function rsyncSumHead(len: number, protocol: number, blockSize?: number) {
  const { src, dst } = prepare(len);
  // --msgs2stderr: the generator's debug lines come at once instead of with its buffered data.
  const args = [`--protocol=${protocol}`, "-I", "--no-whole-file", "--debug=deltasum2", "--msgs2stderr"];
  if (blockSize) args.push(`--block-size=${blockSize}`);
  const out = await runUntil([...args, src, dst], HEAD_RE);
  const m = HEAD_RE.exec(out);
  if (!m) throw new Error(`no sum head in rsync output:\n${out}`);
  return { count: +m[1]!, remainder: +m[2]!, blength: +m[3]!, s2length: +m[4]!, flength: +m[5]! };
}

const SIZES = [
  1, 699, 700, 701, 1400, 490_000, 490_001, 490_008, 1_000_000, 3_145_728, 123_456_789, 2 ** 31 + 5,
  17_179_869_187,
];
// Sparse bases: rsync is stopped as soon as its generator has printed the sum head. Above 2^34
// bytes protocol < 30 goes past protocol 30's 128 KiB block cap.
const BIG_SIZES = [2 ** 36 + 12_345, 2 ** 40, 5_000_000_000_000];

describe("sum head geometry matches native rsync's generator", () => {
  for (const protocol of [27, 28, 29, 30, 31, 32]) {
    it(`protocol ${protocol}`, async () => {
      for (const len of [...SIZES, ...BIG_SIZES]) {
        const got = await rsyncSumHead(len, protocol);
        expect(got.flength).toBe(len);
        // Phase 1 (csum_length 2); the digest is at least 8 bytes for every checksum used here.
        const want = sumSizes(len, protocol, { digestLength: 16 });
        expect({ len, ...want }).toEqual({
          len,
          count: got.count,
          blength: got.blength,
          s2length: got.s2length,
          remainder: got.remainder,
        });
      }
    });
  }

  it("with --block-size", async () => {
    for (const [len, protocol, b] of [
      [10_000, 31, 1024],
      [3_000_000, 32, 4096],
      [2 ** 40, 29, 1 << 20],
      [2 ** 40, 27, 1 << 24],
      [2 ** 36, 30, 8192],
      [123_457, 28, 999],
    ] as const) {
      const got = await rsyncSumHead(len, protocol, b);
      const want = sumSizes(len, protocol, { digestLength: 16, blockSize: b });
      expect({ len, ...want }).toEqual({
        len,
        count: got.count,
        blength: got.blength,
        s2length: got.s2length,
        remainder: got.remainder,
      });
    }
  });
});

describe("weak block sums match native rsync's generator", () => {
  it.each([1, 699, 700, 701, 70_000, 3_000_000])("basis of %i random bytes", async (len) => {
    const basis = randomBytes(len);
    const { src, dst } = prepare(len, basis);
    const out = await runUntil(["-I", "--no-whole-file", "--debug=deltasum3", src, dst]);
    const chunks = [...out.matchAll(/^chunk\[(\d+)\] offset=(\d+) len=(\d+) sum1=([0-9a-f]{8})$/gm)];
    const head = sumSizes(len, 32, { digestLength: 16 });
    expect(chunks.length).toBe(head.count);
    for (const m of chunks) {
      const [i, off, n] = [+m[1]!, +m[2]!, +m[3]!];
      expect(off).toBe(i * head.blength);
      expect(weakChecksum(basis, off, n).toString(16).padStart(8, "0")).toBe(m[4]);
    }
  });
});
