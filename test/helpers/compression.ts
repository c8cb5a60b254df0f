// The compression matrix the pull and push interop tests run against native rsync, and the
// compressible tree they move: which algorithm each option set ends up with at each protocol
// (compat.c: names are negotiated from protocol 30 with the 'v' capability, strongest first; a
// fixed --zc works at any protocol; token.c init_compression_level: zlib at level 0 is no
// compression).
import { mkdirSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { expect } from "vitest";
import type { TransferStats } from "../../src/engine/events.js";
import { tmpDir } from "./env.js";
import { parseStats, wireBytes, type RunResult } from "./rsync.js";
import { randomContent, textContent } from "./tree.js";

export const COMPRESSION_CASES: [protocol: number, args: string[], expected: string][] = [
  [32, ["-z"], "zstd"],
  [32, ["--zc=zstd"], "zstd"],
  [32, ["--zc=lz4"], "lz4"],
  [32, ["--zc=zlibx"], "zlibx"],
  [32, ["-z", "--zl=9"], "zstd"],
  [32, ["-z", "--zl=-5"], "zstd"],
  [32, ["-z", "--zl=0"], "zstd"],
  [32, ["--zc=zlibx", "--zl=0"], "none"],
  [32, ["-z", "--skip-compress=txt/log/dat"], "zstd"],
  [31, ["-z"], "zstd"],
  [31, ["--zc=lz4"], "lz4"],
  [30, ["-z"], "zstd"],
  [30, ["--zc=lz4"], "lz4"],
  [29, ["-z"], "zlib"],
  [29, ["--zc=zstd"], "zstd"],
  [29, ["--zc=lz4"], "lz4"],
  [29, ["-z", "--zl=0"], "none"],
];

const OLD = 1_600_000_000;
const NEW = 1_700_000_000;

/**
 * A tree of compressible text (about 3 MiB in 40 files, plus one incompressible file) or its
 * mutated variant: lines changed inside most files (a delta with literal data between matched
 * blocks), one file grown, one new, one gone.
 */
export function buildTextTree(dir: string, variant: "base" | "mutated"): void {
  mkdirSync(join(dir, "logs"), { recursive: true });
  const files: [string, Buffer][] = [];
  for (let i = 0; i < 40; i++) {
    const name = i % 3 === 0 ? `logs/app-${i}.log` : `doc-${i}.txt`;
    let data = textContent(name, 20_000 + i * 3_000);
    if (variant === "mutated" && i % 4 !== 3) {
      // Replace a stretch in the middle and insert one near the start.
      const mid = Math.floor(data.length / 2);
      data = Buffer.concat([
        data.subarray(0, 1500),
        textContent(`ins:${name}`, 700),
        data.subarray(1500, mid),
        textContent(`mut:${name}`, 4000),
        data.subarray(mid + 3000),
      ]);
    }
    files.push([name, data]);
  }
  const big = textContent("big.dat", 1 << 20);
  files.push(["big.dat", variant === "mutated" ? Buffer.concat([big, textContent("big-tail", 200_000)]) : big]);
  files.push(["noise.bin", randomContent("noise.bin", 100_000)]);
  files.push([variant === "base" ? "gone.txt" : "new.txt", textContent(`only-${variant}`, 30_000)]);
  for (const [name, data] of files) {
    const p = join(dir, name);
    writeFileSync(p, data);
    const t = variant === "base" || name === "noise.bin" ? OLD : NEW;
    utimesSync(p, t, t);
  }
  for (const d of ["logs", "."]) utimesSync(join(dir, d), OLD, OLD);
}

export interface CompressionRun {
  /** Native rsync moving `src` to `dst` (a pull or a push, through the remote-shell stand-in). */
  native(src: string, dst: string, args: string[]): Promise<RunResult>;
  /** krsync doing the same. */
  krsync(args: string[], src: string, dst: string): Promise<{ exitCode: number; stats: TransferStats; messages: string[] }>;
  /** Differences between the trees native rsync and krsync made. */
  compare(expected: string, actual: string): string[];
}

/**
 * One compression case: an initial transfer of the base text tree, then a delta transfer of
 * the mutated one over it (each side's zstd stream runs on through every file of a session),
 * by native rsync and by krsync from the same start. Each must give the same tree, use the
 * expected compression and move within a tenth of native rsync's wire bytes.
 */
export async function runCompressionCase(
  run: CompressionRun,
  trees: { base: string; mutated: string },
  [protocol, args, expected]: (typeof COMPRESSION_CASES)[number],
): Promise<void> {
  const w = tmpDir("compress-");
  const nativeDir = join(w, "native");
  const krsyncDir = join(w, "krsync");
  const opts = ["-a", `--protocol=${protocol}`, "--no-whole-file", ...args];
  for (const [src, extra] of [[trees.base, []], [trees.mutated, ["--delete"]]] as const) {
    const n = await run.native(src, nativeDir, [...opts, ...extra, "--stats"]);
    expect(n.code, n.stderr).toBe(0);
    const k = await run.krsync([...opts, ...extra], src, krsyncDir);
    expect(k.messages.filter((m) => m.startsWith("error"))).toEqual([]);
    expect(k.exitCode).toBe(0);
    expect(k.stats.compression).toBe(expected);
    expect(run.compare(nativeDir, krsyncDir)).toEqual([]);
    const nativeWire = wireBytes(parseStats(n.stdout));
    const ours = k.stats.totalRead + k.stats.totalWritten;
    expect(Math.abs(ours - nativeWire), `${ours} bytes against native ${nativeWire}`).toBeLessThanOrEqual(nativeWire * 0.1);
  }
}

/** The base and mutated text trees, built once. */
export function textTrees(): { base: string; mutated: string } {
  const w = tmpDir("compress-src-");
  const trees = { base: join(w, "base"), mutated: join(w, "mutated") };
  buildTextTree(trees.base, "base");
  buildTextTree(trees.mutated, "mutated");
  return trees;
}
