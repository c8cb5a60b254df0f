// The pull engine against the real rsync binary: `rsync --server --sender` is spawned through a
// local remote-shell stand-in at every protocol 27..32, and each result is compared with what
// native rsync produces from the same starting state with the same options — trees byte for
// byte with modes, mtimes, owners, link targets and hard-link groups — and with the bytes each
// moves on the wire.
//
// krsync sets mtimes to the nanosecond with its native addon (native/, utimensat), and mtimes
// are compared exactly; without the addon it falls back to Node's fs, which keeps microseconds,
// and mtimes are compared to the microsecond (snapshot.ts krsyncMtimes).
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { sync } from "../src/api.js";
import { parseCommandLine } from "../src/cli/options.js";
import { isRoot, rsyncPath, testBigFileMB, tmpDir } from "./helpers/env.js";
import { FAKE_HOST, parseStats, pull, rshArg, wireBytes } from "./helpers/rsync.js";
import { diffSnapshots, snapshotTree, type DiffOptions } from "./helpers/snapshot.js";
import { buildNastyTree } from "./helpers/tree.js";
import { COMPRESSION_CASES, runCompressionCase, textTrees } from "./helpers/compression.js";
import { nsecMtimeCases } from "./helpers/nsec-times.js";

const ROOT = isRoot();
const BIG_MB = testBigFileMB(40);
const PROTOCOLS = [27, 28, 29, 30, 31, 32] as const;

async function krsyncPull(args: string[], src: string, dst: string) {
  const cl = parseCommandLine([...args, "-e", rshArg(), `--rsync-path=${rsyncPath}`, `${FAKE_HOST}:${src}/`, `${dst}/`]);
  const messages: string[] = [];
  const r = await sync({
    ...cl.options,
    source: cl.args.slice(0, -1),
    destination: cl.args[cl.args.length - 1]!,
    events: { message: (level, text) => messages.push(`${level}: ${text}`) },
  });
  return { ...r, messages };
}

const CMP: DiffOptions = { krsyncMtimes: true, owners: ROOT };

function compare(expected: string, actual: string, opts: DiffOptions = CMP): string[] {
  return diffSnapshots(snapshotTree(expected, { owners: ROOT }), snapshotTree(actual, { owners: ROOT }), opts);
}

let base: string;
let mutated: string;

beforeAll(() => {
  const w = tmpDir("pull-src-");
  base = join(w, "base");
  mutated = join(w, "mutated");
  buildNastyTree(base, { variant: "base", root: ROOT, bigFileMB: BIG_MB });
  buildNastyTree(mutated, { variant: "mutated", root: ROOT, bigFileMB: BIG_MB });
});

describe.each(PROTOCOLS)("pull at protocol %i", (protocol) => {
  const opts = ["-aHS", `--protocol=${protocol}`];
  let nativeDir: string;
  let krsyncDir: string;

  it("initial pull equals native rsync's", async () => {
    const w = tmpDir(`pull-${protocol}-`);
    nativeDir = join(w, "native");
    krsyncDir = join(w, "krsync");
    const n = await pull(base, nativeDir, [...opts, "--stats"]);
    expect(n.code, n.stderr).toBe(0);
    const k = await krsyncPull(opts, base, krsyncDir);
    expect(k.messages.filter((m) => m.startsWith("error"))).toEqual([]);
    expect(k.exitCode).toBe(0);
    expect(compare(nativeDir, krsyncDir)).toEqual([]);
  });

  it("delta pull of the mutated tree with --delete equals native rsync's, with no more wire bytes", async () => {
    const n = await pull(mutated, nativeDir, [...opts, "--delete", "--stats"]);
    expect(n.code, n.stderr).toBe(0);
    const k = await krsyncPull([...opts, "--delete"], mutated, krsyncDir);
    expect(k.messages.filter((m) => m.startsWith("error"))).toEqual([]);
    expect(k.exitCode).toBe(0);
    expect(compare(nativeDir, krsyncDir)).toEqual([]);
    const nativeWire = wireBytes(parseStats(n.stdout));
    const ours = k.stats.totalRead + k.stats.totalWritten;
    expect(ours).toBeLessThanOrEqual(nativeWire * 1.1);
  });
});

describe.each([31, 32] as const)("nanosecond mtimes, pull at protocol %i", (protocol) => {
  nsecMtimeCases(protocol, krsyncPull, pull);
});

describe("pull options against native rsync (protocol 32)", () => {
  const cases: [string, string[]][] = [
    ["-z", ["-aH", "-z"]],
    ["--zc=zlib", ["-aH", "--zc=zlib"]],
    ["--zc=zlibx", ["-aH", "--zc=zlibx"]],
    ["-c", ["-aHc"]],
    ["--inplace", ["-aH", "--inplace"]],
    ["--append", ["-aH", "--append"]],
    ["--append at protocol 29 (append-verify)", ["-aH", "--append", "--protocol=29"]],
    ["--whole-file", ["-aHW"]],
    ["--size-only", ["-aH", "--size-only"]],
    ["-I", ["-aHI"]],
    ["--numeric-ids", ["-aH", "--numeric-ids"]],
    ["no -H", ["-a"]],
    ["--exclude (protects from --delete)", ["-aH", "--exclude=*.bin", "--exclude=deep/", "--exclude=/work"]],
    ["--include/--exclude", ["-aH", "--include=*/", "--include=*.txt", "--exclude=*"]],
    ["--delete-excluded", ["-aH", "--exclude=*.txt", "--delete-excluded"]],
    ["-F with a .rsync-filter", ["-aHF"]],
    ...["md4", "md5", "sha1", "xxh64", "xxh3", "xxh128"].map((c): [string, string[]] => [`--cc=${c}`, ["-aH", `--cc=${c}`]]),
  ];
  it.each(cases)("%s: delta pull over the base copy equals native rsync's", async (_name, args) => {
    const w = tmpDir("pullopt-");
    const nativeDir = join(w, "native");
    const krsyncDir = join(w, "krsync");
    // Both start from the same old copy.
    const first = await pull(base, nativeDir, ["-aH"]);
    expect(first.code, first.stderr).toBe(0);
    const second = await pull(base, krsyncDir, ["-aH"]);
    expect(second.code, second.stderr).toBe(0);
    const n = await pull(mutated, nativeDir, [...args, "--delete", "--stats"]);
    expect(n.code, n.stderr).toBe(0);
    const k = await krsyncPull([...args, "--delete"], mutated, krsyncDir);
    expect(k.messages.filter((m) => m.startsWith("error"))).toEqual([]);
    expect(k.exitCode).toBe(0);
    expect(compare(nativeDir, krsyncDir)).toEqual([]);
    const nativeWire = wireBytes(parseStats(n.stdout));
    expect(k.stats.totalRead + k.stats.totalWritten).toBeLessThanOrEqual(nativeWire * 1.1 + 2048);
  });
});

describe("pull compression against native rsync", () => {
  let trees: { base: string; mutated: string };
  beforeAll(() => {
    trees = textTrees();
  });
  it.each(COMPRESSION_CASES)("protocol %i %j: initial and delta pulls equal native rsync's (%s), each within a tenth of its wire bytes", async (...c) => {
    await runCompressionCase({ native: pull, krsync: krsyncPull, compare }, trees, c);
  });
});
