// Local copies (no host on either side): krsync's sender and receiver in one process over
// in-memory streams. Each result is compared byte for byte (mtimes to the nanosecond; to the
// microsecond when native/ is not built, see snapshot.ts krsyncMtimes) with
// native `rsync -aHS` copying the same tree from the same starting state; and no rsync binary
// may run.
import childProcess from "node:child_process";
import { existsSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { syncBuiltinESMExports } from "node:module";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { sync } from "../src/api.js";
import { parseCommandLine } from "../src/cli/options.js";
import { isRoot, testBigFileMB, tmpDir } from "./helpers/env.js";
import { localCopy, runRsync } from "./helpers/rsync.js";
import { diffSnapshots, snapshotTree, type DiffOptions } from "./helpers/snapshot.js";
import { buildNastyTree } from "./helpers/tree.js";
import { nsecMtimeCases } from "./helpers/nsec-times.js";

const ROOT = isRoot();
const BIG_MB = testBigFileMB(40);
const PROTOCOLS = [27, 28, 29, 30, 31, 32] as const;

// Every way of starting a program, watched: a local copy must start no rsync.
const started: string[] = [];
const methods = ["spawn", "spawnSync", "execFile", "execFileSync", "exec", "execSync", "fork"] as const;
const cp = childProcess as unknown as Record<string, (...a: unknown[]) => unknown>;
const originals = new Map<string, (...a: unknown[]) => unknown>();

async function krsyncLocal(args: string[], src: string, dst: string, hooks: { onList?: () => void } = {}) {
  const cl = parseCommandLine([...args, `${src}/`, `${dst}/`]);
  const messages: string[] = [];
  const savedPath = process.env.PATH;
  process.env.PATH = noRsyncPath; // no rsync to be found on it either
  const before = started.length;
  try {
    const r = await sync({
      ...cl.options,
      source: cl.args.slice(0, -1),
      destination: cl.args[cl.args.length - 1]!,
      events: {
        message: (level, text) => messages.push(`${level}: ${text}`),
        fileList: () => hooks.onList?.(),
      },
    });
    return { ...r, messages, rsyncRuns: started.slice(before).filter((c) => /(^|\/)rsync$/.test(c.split(" ")[1] ?? "")) };
  } finally {
    process.env.PATH = savedPath;
  }
}

const CMP: DiffOptions = { krsyncMtimes: true, owners: ROOT };

function compare(expected: string, actual: string, opts: DiffOptions = CMP): string[] {
  return diffSnapshots(snapshotTree(expected, { owners: ROOT }), snapshotTree(actual, { owners: ROOT }), opts);
}

const errorsOf = (messages: string[]) => messages.filter((m) => m.startsWith("error"));

let base: string;
let mutated: string;
/** A PATH with the tools a receiver may run (mknod) and no rsync. */
let noRsyncPath = "";

beforeAll(() => {
  for (const m of methods) {
    const orig = cp[m]!;
    originals.set(m, orig);
    cp[m] = vi.fn((...a: unknown[]) => {
      started.push(`${m} ${String(a[0])} ${Array.isArray(a[1]) ? a[1].join(" ") : ""}`);
      return orig.apply(childProcess, a);
    });
  }
  syncBuiltinESMExports();
  noRsyncPath = tmpDir("local-bin-");
  for (const tool of ["mknod"]) {
    for (const dir of ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]) {
      if (existsSync(join(dir, tool))) {
        symlinkSync(join(dir, tool), join(noRsyncPath, tool));
        break;
      }
    }
  }
  const w = tmpDir("local-src-");
  base = join(w, "base");
  mutated = join(w, "mutated");
  buildNastyTree(base, { variant: "base", root: ROOT, bigFileMB: BIG_MB });
  buildNastyTree(mutated, { variant: "mutated", root: ROOT, bigFileMB: BIG_MB });
});

afterAll(() => {
  for (const [m, f] of originals) cp[m] = f;
  syncBuiltinESMExports();
});

describe.each(PROTOCOLS)("local copy at protocol %i", (protocol) => {
  const opts = ["-aHS", `--protocol=${protocol}`];
  let nativeDir: string;
  let krsyncDir: string;

  it("initial copy equals native rsync's, and runs no rsync", async () => {
    const w = tmpDir(`local-${protocol}-`);
    nativeDir = join(w, "native");
    krsyncDir = join(w, "krsync");
    const n = await localCopy(base, nativeDir, opts);
    expect(n.code, n.stderr).toBe(0);
    const k = await krsyncLocal(opts, base, krsyncDir);
    expect(errorsOf(k.messages)).toEqual([]);
    expect(k.exitCode).toBe(0);
    expect(k.rsyncRuns).toEqual([]);
    expect(compare(nativeDir, krsyncDir)).toEqual([]);
  });

  it("the mutated tree with --delete over the copy equals native rsync's", async () => {
    const n = await localCopy(mutated, nativeDir, [...opts, "--delete"]);
    expect(n.code, n.stderr).toBe(0);
    const k = await krsyncLocal([...opts, "--delete"], mutated, krsyncDir);
    expect(errorsOf(k.messages)).toEqual([]);
    expect(k.exitCode).toBe(0);
    expect(k.rsyncRuns).toEqual([]);
    expect(compare(nativeDir, krsyncDir)).toEqual([]);
  });
});

describe.each([31, 32] as const)("nanosecond mtimes, local copy at protocol %i", (protocol) => {
  nsecMtimeCases(protocol, krsyncLocal, localCopy);
});

describe("local copy options against native rsync", () => {
  const cases: [string, string[]][] = [
    ["--no-whole-file (delta)", ["-aH", "--no-whole-file"]],
    ["-c", ["-aHc"]],
    ["--inplace", ["-aH", "--inplace"]],
    ["--append", ["-aH", "--append"]],
    ["--append at protocol 29 (append-verify)", ["-aH", "--append", "--protocol=29"]],
    ["-z", ["-aH", "-z"]],
    ["no -H", ["-a"]],
  ];
  it.each(cases)("%s: the mutated tree over the base copy equals native rsync's", async (_name, args) => {
    const w = tmpDir("localopt-");
    const nativeDir = join(w, "native");
    const krsyncDir = join(w, "krsync");
    expect((await localCopy(base, nativeDir, ["-aH"])).code).toBe(0);
    expect((await localCopy(base, krsyncDir, ["-aH"])).code).toBe(0);
    const n = await localCopy(mutated, nativeDir, [...args, "--delete"]);
    expect(n.code, n.stderr).toBe(0);
    const k = await krsyncLocal([...args, "--delete"], mutated, krsyncDir);
    expect(errorsOf(k.messages)).toEqual([]);
    expect(k.exitCode).toBe(0);
    expect(compare(nativeDir, krsyncDir)).toEqual([]);
  });
});

describe("local copy compression (both ends in-process)", () => {
  const cases: [string[], string][] = [
    [["-z"], "zstd"],
    [["--zc=zstd", "--zl=-3"], "zstd"],
    [["--zc=lz4"], "lz4"],
    [["--zc=zlibx"], "zlibx"],
    [["--zc=zlib"], "zlib"],
    [["-z", "--protocol=29"], "zlib"],
    [["--zc=zstd", "--protocol=29"], "zstd"],
    [["--zc=zlib", "--zl=0"], "none"],
  ];
  it.each(cases)("%j: a delta copy of the mutated tree equals native rsync's (%s)", async (args, expected) => {
    const w = tmpDir("localz-");
    const nativeDir = join(w, "native");
    const krsyncDir = join(w, "krsync");
    expect((await localCopy(base, nativeDir, ["-aH"])).code).toBe(0);
    expect((await localCopy(base, krsyncDir, ["-aH"])).code).toBe(0);
    const n = await localCopy(mutated, nativeDir, ["-aH", "--no-whole-file", "--delete", ...args]);
    expect(n.code, n.stderr).toBe(0);
    const k = await krsyncLocal(["-aH", "--no-whole-file", "--delete", ...args], mutated, krsyncDir);
    expect(errorsOf(k.messages)).toEqual([]);
    expect(k.exitCode).toBe(0);
    expect(k.stats.compression).toBe(expected);
    expect(k.rsyncRuns).toEqual([]);
    expect(compare(nativeDir, krsyncDir)).toEqual([]);
  });
});

describe("local copy edge cases", () => {
  it("two sources without trailing slashes land as directories of their own, like rsync's", async () => {
    const w = tmpDir("localnoslash-");
    const nat = await runRsync(["-aH", base, mutated, join(w, "native") + "/"]);
    expect(nat.code, nat.stderr).toBe(0);
    const cl = parseCommandLine(["-aH", base, mutated, join(w, "krsync") + "/"]);
    const r = await sync({ ...cl.options, source: cl.args.slice(0, -1), destination: cl.args[cl.args.length - 1]! });
    expect(r.exitCode).toBe(0);
    // The destination directory itself is not in the list: each run made it at its own time.
    expect(compare(join(w, "native"), join(w, "krsync"), { ...CMP, ignoreRootDirMtime: true })).toEqual([]);
  });

  it("a source file that vanishes before it is sent: rsync's warning and exit 24", async () => {
    const w = tmpDir("localvanish-");
    const src = join(w, "src");
    mkdirSync(src);
    writeFileSync(join(src, "keep.txt"), "keep\n");
    writeFileSync(join(src, "gone.txt"), "soon gone\n");
    const k = await krsyncLocal(["-a"], src, join(w, "dst"), { onList: () => rmSync(join(src, "gone.txt")) });
    expect(k.messages.some((m) => /^warning: file has vanished: ".*gone\.txt"$/.test(m)), k.messages.join("\n")).toBe(true);
    expect(k.exitCode).toBe(24);
    expect(snapshotTree(join(w, "dst")).has("keep.txt")).toBe(true);
  });

  it("a missing source argument is an error (exit 23)", async () => {
    const w = tmpDir("localmissing-");
    const cl = parseCommandLine(["-a", join(w, "nope"), join(w, "dst") + "/"]);
    const messages: string[] = [];
    const r = await sync({
      ...cl.options,
      source: cl.args.slice(0, -1),
      destination: cl.args[cl.args.length - 1]!,
      events: { message: (level, text) => messages.push(`${level}: ${text}`) },
    });
    expect(r.exitCode).toBe(23);
    expect(messages.some((m) => /link_stat ".*nope" failed: No such file or directory \(2\)/.test(m)), messages.join("\n")).toBe(true);
  });
});
