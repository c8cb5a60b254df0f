// Local copies (no host on either side): krsync's sender and receiver in one process over
// in-memory streams. Each result is compared byte for byte (mtimes to the nanosecond; to the
// microsecond when native/ is not built, see snapshot.ts krsyncMtimes) with
// native `rsync -aHS` copying the same tree from the same starting state; and no rsync binary
// may run.
import childProcess from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  appendFileSync,
  closeSync,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  lutimesSync,
  truncateSync,
  utimesSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { syncBuiltinESMExports } from "node:module";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { sync } from "../src/api.js";
import { parseCommandLine } from "../src/cli/options.js";
import { SourceHandoff, type HandedSource } from "../src/engine/handoff.js";
import { runLocal } from "../src/engine/local.js";
import { defaultTransferOptions, type TransferOptions } from "../src/protocol/options.js";
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

/** The options `krsync ARGS` would run with (as api.sync fills them in). */
function optionsOf(args: string[]): TransferOptions {
  const cl = parseCommandLine([...args, "src/", "dst/"]);
  const given = Object.fromEntries(Object.entries(cl.options).filter(([, v]) => v !== undefined));
  return { ...defaultTransferOptions(), ...given } as TransferOptions;
}

/** A handoff that does something to a source file as the receiver takes it over. */
class MeddlingHandoff extends SourceHandoff {
  taken: string[] = [];
  constructor(private readonly meddle: (path: string) => void) {
    super();
  }
  override take(ndx: number): HandedSource | undefined {
    const src = super.take(ndx);
    if (src) {
      const path = readlinkSync(`/proc/self/fd/${src.fd}`);
      this.taken.push(path);
      this.meddle(path);
    }
    return src;
  }
}

async function runLocalWith(args: string[], src: string, dst: string, handoff?: SourceHandoff, signal?: AbortSignal) {
  const messages: string[] = [];
  const r = await runLocal({
    opts: optionsOf(args),
    sources: [`${src}/`],
    destination: `${dst}/`,
    events: { message: (level, text) => messages.push(`${level}: ${text}`) },
    ...(handoff ? { handoff } : {}),
    ...(signal ? { signal } : {}),
  });
  return { ...r, messages };
}

const openFds = () => readdirSync("/proc/self/fd").length;

/** Past mtimes on a new tree's directories and symlinks (files keep theirs), bottom up. */
function settleTimes(dir: string): void {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) settleTimes(p);
    else if (e.isSymbolicLink()) lutimesSync(p, 1_600_000_000, 1_600_000_000);
  }
  utimesSync(dir, 1_600_000_000, 1_600_000_000);
}

describe("local copy: whole files handed from the sender to the receiver", () => {
  it("the bytes do not pass through the stream, and the tree equals native rsync's", async () => {
    const w = tmpDir("localhand-");
    const src = join(w, "src");
    mkdirSync(join(src, "sub"), { recursive: true });
    writeFileSync(join(src, "big.bin"), randomBytes(3 << 20));
    writeFileSync(join(src, "sub", "small.txt"), "small\n");
    writeFileSync(join(src, "empty"), "");
    settleTimes(src);
    const handoff = new MeddlingHandoff(() => {});
    const k = await runLocalWith(["-a"], src, join(w, "krsync"), handoff);
    expect(errorsOf(k.messages)).toEqual([]);
    expect(k.exitCode).toBe(0);
    expect(handoff.taken.map((p) => p.slice(src.length + 1)).sort()).toEqual(["big.bin", "empty", "sub/small.txt"]);
    expect(k.stats.literalData).toBe((3 << 20) + 6);
    // What the receiver read from the stream: requests' echoes, not the 3 MiB.
    expect(k.stats.totalRead).toBeLessThan(16 * 1024);
    expect((await localCopy(src, join(w, "native"), ["-a"])).code).toBe(0);
    expect(compare(join(w, "native"), join(w, "krsync"))).toEqual([]);
  });

  // Both sizes: small files are copied in line, bigger ones through the thread pool.
  it.each([30_000, 700_000])("a file (%i bytes) that shrinks after the sender opened it is discarded and sent again, as rsync redoes a short read", async (size) => {
    const w = tmpDir("localshrink-");
    const src = join(w, "src");
    mkdirSync(src);
    const file = join(src, "shrinks.bin");
    writeFileSync(file, randomBytes(size));
    writeFileSync(join(src, "other.txt"), "other\n");
    utimesSync(file, 1_600_000_000, 1_600_000_000);
    const handoff = new MeddlingHandoff((p) => {
      if (p === file && statSync(file).size > 1000) truncateSync(file, 1000);
    });
    const k = await runLocalWith(["-a", "-v"], src, join(w, "dst"), handoff);
    expect(errorsOf(k.messages)).toEqual([]);
    expect(k.exitCode).toBe(0);
    expect(k.messages).toContain("warning: WARNING: shrinks.bin failed verification -- update discarded (will try again).");
    // The redo is streamed: the file was handed once.
    expect(handoff.taken.filter((p) => p === file)).toHaveLength(1);
    const out = join(w, "dst", "shrinks.bin");
    expect(readFileSync(out).equals(readFileSync(file))).toBe(true);
    // The mtime is the one the file list carried (the next run sees the change).
    expect(lstatSync(out).mtimeMs).toBe(1_600_000_000_000);
    expect(readdirSync(join(w, "dst")).sort()).toEqual(["other.txt", "shrinks.bin"]);
  });

  it("a file that grows after the sender opened it arrives at the length the sender saw, as rsync sends it", async () => {
    const w = tmpDir("localgrow-");
    const src = join(w, "src");
    mkdirSync(src);
    const file = join(src, "grows.log");
    const start = randomBytes(100_000);
    writeFileSync(file, start);
    const handoff = new MeddlingHandoff((p) => {
      if (p === file) appendFileSync(file, "more lines\n".repeat(1000));
    });
    const k = await runLocalWith(["-a", "-v"], src, join(w, "dst"), handoff);
    expect(errorsOf(k.messages)).toEqual([]);
    expect(k.messages.filter((m) => m.includes("failed verification"))).toEqual([]);
    expect(k.exitCode).toBe(0);
    expect(readFileSync(join(w, "dst", "grows.log")).equals(start)).toBe(true);
  });

  it("-S keeps the holes native rsync -S makes; without -S both write the zeros", async () => {
    const w = tmpDir("localsparse-");
    const src = join(w, "src");
    mkdirSync(src);
    const fd = openSync(join(src, "holes.img"), "w");
    writeSync(fd, randomBytes(8192), 0, 8192, 0);
    writeSync(fd, randomBytes(8192), 0, 8192, 4 << 20);
    closeSync(fd);
    writeFileSync(join(src, "zeros.bin"), Buffer.alloc(2 << 20)); // all zeros, no holes
    settleTimes(src);
    for (const args of [["-a", "-S"], ["-a"]]) {
      const tag = args.join("");
      const k = await runLocalWith(args, src, join(w, `krsync${tag}`));
      expect(k.exitCode).toBe(0);
      expect((await localCopy(src, join(w, `native${tag}`), args)).code).toBe(0);
      expect(compare(join(w, `native${tag}`), join(w, `krsync${tag}`))).toEqual([]);
      for (const name of ["holes.img", "zeros.bin"]) {
        const blocks = (d: string) => lstatSync(join(w, d, name)).blocks;
        expect(blocks(`krsync${tag}`), `${tag} ${name}`).toBe(blocks(`native${tag}`));
      }
    }
    expect(lstatSync(join(w, "krsync-a-S", "holes.img")).blocks).toBeLessThan(lstatSync(join(w, "krsync-a", "holes.img")).blocks);
  });

  it("hard links, --inplace and a second run over the copy still equal native rsync's", async () => {
    const w = tmpDir("localhandopts-");
    const src = join(w, "src");
    mkdirSync(join(src, "d"), { recursive: true });
    writeFileSync(join(src, "d", "a"), randomBytes(300_000));
    writeFileSync(join(src, "d", "b"), "b\n");
    symlinkSync("a", join(src, "d", "to-a"));
    // hard links: a group of three
    for (const n of ["h1", "h2", "h3"]) {
      if (n === "h1") writeFileSync(join(src, n), randomBytes(50_000));
      else linkSync(join(src, "h1"), join(src, n));
    }
    settleTimes(src);
    for (const args of [["-aH"], ["-aH", "--inplace"]]) {
      const tag = args.join("");
      const k = await runLocalWith(args, src, join(w, `k${tag}`));
      expect(errorsOf(k.messages)).toEqual([]);
      expect((await localCopy(src, join(w, `n${tag}`), args)).code).toBe(0);
      expect(compare(join(w, `n${tag}`), join(w, `k${tag}`))).toEqual([]);
      // changed content of the same size and a newer mtime: replaced in the existing copy
      writeFileSync(join(src, "d", "a"), randomBytes(300_000));
      utimesSync(join(src, "d", "a"), 1_700_000_000, 1_700_000_000);
      const k2 = await runLocalWith(args, src, join(w, `k${tag}`));
      expect(k2.exitCode).toBe(0);
      expect((await localCopy(src, join(w, `n${tag}`), args)).code).toBe(0);
      expect(compare(join(w, `n${tag}`), join(w, `k${tag}`))).toEqual([]);
    }
  });

  it.each([20_000, 400_000])("an aborted copy (files of %i bytes) leaves no descriptor open and no temp file behind", async (size) => {
    const w = tmpDir("localabort-");
    const src = join(w, "src");
    mkdirSync(src);
    for (let i = 0; i < 100; i++) writeFileSync(join(src, `f${String(i).padStart(3, "0")}`), randomBytes(size));
    const before = openFds();
    const ac = new AbortController();
    const handoff = new MeddlingHandoff(() => {
      if (handoff.taken.length === 20) ac.abort();
    });
    await expect(runLocalWith(["-a"], src, join(w, "dst"), handoff, ac.signal)).rejects.toThrow();
    expect(openFds()).toBe(before);
    expect(readdirSync(join(w, "dst")).filter((n) => n.startsWith("."))).toEqual([]);
  });
});
