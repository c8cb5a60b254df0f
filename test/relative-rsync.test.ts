// -R / --relative with krsync as the sender, against native rsync: krsync pushing to
// `rsync --server` through the fake remote shell at protocols 27..32, and krsync's local copy
// (its own sender and receiver), each compared with native rsync doing the same push or copy
// from the same starting state — trees byte for byte (modes, mtimes, owners when root, link
// targets, hard-link groups) — and a -R push's wire bytes with native's.
import { chmodSync, linkSync, lutimesSync, mkdirSync, realpathSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { sync } from "../src/api.js";
import { parseCommandLine } from "../src/cli/options.js";
import { relativeArg } from "../src/engine/flist-build.js";
import { isRoot, rsyncPath, tmpDir } from "./helpers/env.js";
import { FAKE_HOST, parseStats, rshArg, runRsync, wireBytes } from "./helpers/rsync.js";
import { diffSnapshots, snapshotTree } from "./helpers/snapshot.js";
import { buildNastyTree } from "./helpers/tree.js";

const ROOT = isRoot();
const PROTOCOLS = [27, 29, 30, 31, 32] as const;

let src: string; // the cwd of every run: sources are named relative to it unless absolute

/** The source tree (fixed mtimes well in the past, so no run sees a same-second change). */
function buildSource(dir: string): void {
  const files: [string, string][] = [
    ["a/top", "top\n"],
    ["a/b/h", "h file\n"],
    ["a/b/c/f", "f in c\n"],
    ["a/b/c/f.o", "object\n"],
    ["a/b/c/d/g", "deep g\n"],
    ["a/b/c/b/inner", "a dir named b inside c\n"],
    ["a/x/y", "y in x\n"],
    ["a/x/b/z", "z in x/b\n"],
    ["p/q/r", "r\n"],
    // dir-merge files in directories above a -R source's top (-F)
    ["a/.rsync-filter", "- *.tmp\n"],
    ["a/b/.rsync-filter", "- skip*\n"],
    ["a/b/c/x.tmp", "excluded by a/.rsync-filter\n"],
    ["a/b/c/skipme", "excluded by a/b/.rsync-filter\n"],
  ];
  for (const [name, text] of files) {
    mkdirSync(join(dir, name, ".."), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  linkSync(join(dir, "a/b/c/f"), join(dir, "a/x/hard-f")); // a hard-link group across sources
  symlinkSync("f", join(dir, "a/b/c/sl")); // a symlink as the last element
  symlinkSync("b", join(dir, "a/dl")); // a symlinked directory inside a path
  chmodSync(join(dir, "a/b/h"), 0o600);
  chmodSync(join(dir, "a/x"), 0o750);
  chmodSync(join(dir, "a/b"), 0o711);
  // Deepest first: a directory's time is set after its contents are in place.
  const names = [...files.map(([n]) => n), "a/x/hard-f", "a/b/c/d", "a/b/c/b", "a/x/b", "a/b/c", "a/x", "a/b", "a", "p/q", "p", "."];
  let t = 1_500_000_000;
  for (const n of names) {
    t += 3607;
    utimesSync(join(dir, n), t, t);
  }
  lutimesSync(join(dir, "a/b/c/sl"), t + 11, t + 11);
  lutimesSync(join(dir, "a/dl"), t + 13, t + 13);
}

interface Case {
  name: string;
  args: string[];
  /** Sources; "@" at the start stands for the source tree's absolute path. */
  sources: string[];
  /** Run on the destination (it exists, empty) before both runs. */
  prep?: (dst: string) => void;
  /** Only at these protocols. */
  protocols?: readonly number[];
  /** The destination dir itself is in the list (its mtime is compared). */
  rootSent?: boolean;
  /** Directories neither side sets times on (made with default attributes). */
  untimed?: string[];
}

/** What --delete must leave alone and remove. */
function extras(dst: string): void {
  for (const n of ["a/b/c/extra", "a/b/c/d/extra-deep", "a/b/keep-in-implied", "a/keep-in-implied"]) {
    mkdirSync(join(dst, n, ".."), { recursive: true });
    writeFileSync(join(dst, n), "extra\n");
    utimesSync(join(dst, n), 1_200_000_000, 1_200_000_000);
  }
  mkdirSync(join(dst, "a/b/c/extra-dir/sub"), { recursive: true });
  for (const d of ["a/b/c/extra-dir/sub", "a/b/c/extra-dir"]) utimesSync(join(dst, d), 1_200_000_000, 1_200_000_000);
}

/** Parents already there, with other modes and times than the source's. */
function parents(dst: string): void {
  mkdirSync(join(dst, "a/b"), { recursive: true });
  chmodSync(join(dst, "a"), 0o700);
  chmodSync(join(dst, "a/b"), 0o755);
  utimesSync(join(dst, "a/b"), 1_000_000_000, 1_000_000_000);
  utimesSync(join(dst, "a"), 1_000_000_000, 1_000_000_000);
}

const CASES: Case[] = [
  { name: "-R a/b/c", args: ["-a"], sources: ["a/b/c"] },
  { name: "-R /abs/path/./x/y", args: ["-a"], sources: ["@/./a/b/c"] },
  { name: "-R /abs/path (no marker: the whole path)", args: ["-a"], sources: ["@/a/b/c"] },
  { name: "-R a/./b/c", args: ["-a"], sources: ["a/./b/c"] },
  { name: "-R a/./ (the marker at the end)", args: ["-a"], sources: ["a/./"], rootSent: true },
  { name: "-R ./a/b (the root as an implied dir)", args: ["-a"], sources: ["./a/b"], rootSent: true },
  { name: "-R a/b/c/. (a trailing dot)", args: ["-a"], sources: ["a/b/c/."] },
  { name: "-R a/b/ (a trailing slash)", args: ["-a"], sources: ["a/b/"] },
  { name: "-R a/dl/ (a trailing slash follows the symlink)", args: ["-a"], sources: ["a/dl/"] },
  { name: "-R a/dl (the symlink itself)", args: ["-a"], sources: ["a/dl"] },
  { name: "-R of a single file", args: ["-a"], sources: ["a/b/h"] },
  { name: "-R of a symlink inside a path", args: ["-a"], sources: ["a/b/c/sl"] },
  { name: "-R through a symlinked directory", args: ["-a"], sources: ["a/dl/c/f"] },
  { name: "-R with sources sharing prefixes", args: ["-a"], sources: ["a/b/c", "a/b/h", "a/x", "a/b", "p/q/r", "a/b/c/d"] },
  { name: "-R -r without -t/-p (the default modes and times)", args: ["-r"], sources: ["a/b/c", "a/x/y"] },
  { name: "-R without -r (files only; directories skipped)", args: ["-lpt"], sources: ["a/b/h", "a/b/c", "a/b/c/f"] },
  { name: "-R -d", args: ["-dlpt"], sources: ["a/b/", "a/x"] },
  { name: "-R --exclude b/", args: ["-a", "--exclude", "b/"], sources: ["a/b/c", "a/x", "a/b"] },
  { name: "-R --exclude *.o --exclude /a/x/b", args: ["-a", "--exclude=*.o", "--exclude=/a/x/b"], sources: ["a/b/c", "a/x"] },
  { name: "-R --delete with extras in the destination", args: ["-a", "--delete"], sources: ["a/b/c", "a/top"], prep: extras },
  { name: "-R --delete --exclude (protected extras)", args: ["-a", "--delete", "--exclude=extra*"], sources: ["a/b/c"], prep: extras },
  { name: "-R --delete-after", args: ["-a", "--delete-after"], sources: ["a/b/c", "a/top"], prep: extras },
  { name: "-R -H", args: ["-aH"], sources: ["a/b/c", "a/x"] },
  { name: "-R -F (the implied dirs' dir-merge files apply)", args: ["-a", "-F"], sources: ["a/b/c", "a/x"], protocols: [29, 30, 31, 32] },
  {
    name: "-R --no-implied-dirs a/b/c (parents missing)",
    args: ["-a", "--no-implied-dirs"],
    sources: ["a/b/c", "a/x/y"],
    protocols: [30, 31, 32],
    untimed: ["a", "a/b", "a/x"],
  },
  {
    name: "-R --no-implied-dirs a/b/c (parents there, left as they are)",
    args: ["-a", "--no-implied-dirs"],
    sources: ["a/b/c"],
    prep: parents,
    protocols: [30, 31, 32],
    untimed: ["a/b"], // left alone: its time is when a/b/c was made in it
  },
  { name: "-R a/b/c (parents there, set from the source)", args: ["-a"], sources: ["a/b/c"], prep: parents },
];

const sourcesOf = (c: Case): string[] => c.sources.map((s) => (s.startsWith("@") ? src + s.slice(1) : s));

/** A run of krsync in `cwd` (by default the source tree's directory (the cwd rsync's -R names are taken from). */
async function inDir<T>(cwd: string, fn: () => Promise<T>): Promise<T> {
  const saved = process.cwd();
  process.chdir(cwd);
  try {
    return await fn();
  } finally {
    process.chdir(saved);
  }
}

async function krsync(args: string[], cwd = src) {
  const cl = parseCommandLine(args);
  const messages: string[] = [];
  const r = await inDir(cwd, () =>
    sync({
      ...cl.options,
      source: cl.args.slice(0, -1),
      destination: cl.args[cl.args.length - 1]!,
      events: { message: (level, text) => messages.push(`${level}: ${text}`) },
    }),
  ).catch((e: Error & { exitCode?: number }) => ({ exitCode: e.exitCode ?? -1, stats: null, error: e.message }));
  return { ...r, messages };
}

const remote = (p: string) => [`--rsync-path=${rsyncPath}`, "-e", rshArg(), `${FAKE_HOST}:${p}`];

function compare(c: Case, expected: string, actual: string): string[] {
  const timed = c.args.some((a) => /^-[a-zA-Z]*[at]/.test(a));
  const untimed = new Set(c.untimed ?? []);
  return diffSnapshots(snapshotTree(expected, { owners: ROOT }), snapshotTree(actual, { owners: ROOT }), {
    owners: ROOT,
    krsyncMtimes: true,
    ignoreRootDirMtime: !c.rootSent,
    // The directories above the source tree (-R of an absolute path) change as tests run.
    ignore: (rel, f) => f === "mtime" && (!timed || untimed.has(rel) || `${src.slice(1)}/`.startsWith(`${rel}/`)),
  });
}

/** Both destinations from the same state; returns native's and krsync's runs. */
async function both(c: Case, protocol: number, mode: "push" | "local") {
  const w = tmpDir(`rel-${mode}-${protocol}-`);
  const nativeDir = join(w, "native");
  const krsyncDir = join(w, "krsync");
  for (const d of [nativeDir, krsyncDir]) {
    mkdirSync(d);
    c.prep?.(d);
  }
  const args = [...c.args, `--protocol=${protocol}`, "-R"];
  const sources = sourcesOf(c);
  const dest = (d: string) => (mode === "push" ? remote(d) : [d]);
  const n = await runRsync([...args, ...sources, ...dest(nativeDir)], { cwd: src });
  const destArgs = mode === "push" ? remote(krsyncDir) : [krsyncDir];
  const k = await krsync([...args, ...sources, ...destArgs]);
  return { n, k, nativeDir, krsyncDir };
}

beforeAll(() => {
  src = realpathSync(tmpDir("rel-src-"));
  buildSource(src);
});

describe("-R argument parsing (flist.c send_file_list)", () => {
  it.each([
    ["a/b/c", ".", "a/b/c", "normal", false],
    ["a/./b/c", "a", "b/c", "normal", false],
    ["/abs/./x/y", "/abs", "x/y", "normal", false],
    ["/./x", "/", "x", "normal", false],
    ["/abs/x", ".", "/abs/x", "normal", false],
    ["a//b///c/", ".", "a/b/c", "slash", false],
    ["a/b/.", ".", "a/b", "slash", false],
    ["a/./", "a", ".", "dotdir", false],
    ["./a/b", ".", "a/b", "normal", true],
    [".", ".", ".", "dotdir", false],
    ["/", ".", "/.", "dotdir", false],
    ["a/.//./b", "a", "b", "normal", true],
  ] as const)("%s -> from %s, %s (%s)", (raw, dir, name, nameType, impliedDot) => {
    expect(relativeArg(raw)).toEqual({ dir, name, nameType, impliedDot });
  });

  it('refuses ".." in the part that is sent (exit 1), allows it before the marker', () => {
    expect(() => relativeArg("a/../b")).toThrow(/found "\.\." dir in relative path: a\/\.\.\/b/);
    expect(() => relativeArg("x/./../b")).toThrow(/found "\.\." dir/);
    expect(relativeArg("../x/./b").dir).toBe("../x");
  });
});

const MODES = PROTOCOLS.flatMap((p) => [["push", p] as const, ["local copy", p] as const]);

describe.each(MODES)("-R %s at protocol %i equals native rsync's", (mode, protocol) => {
  it.each(CASES.filter((c) => !c.protocols || c.protocols.includes(protocol)).map((c) => [c.name, c] as const))("%s", async (_n, c) => {
    const { n, k, nativeDir, krsyncDir } = await both(c, protocol, mode === "push" ? "push" : "local");
    expect(n.code, n.stderr).toBe(0);
    expect(k.messages.filter((m) => m.startsWith("error")), JSON.stringify(k)).toEqual([]);
    expect(k.exitCode).toBe(0);
    expect(compare(c, nativeDir, krsyncDir)).toEqual([]);
  });
});

describe.each([29, 32] as const)("-R push of a larger tree at protocol %i", (protocol) => {
  // The same relative path ("t/tree") below two working directories: the base and the mutated tree.
  let baseCwd: string;
  let mutatedCwd: string;
  beforeAll(() => {
    const w = tmpDir(`rel-wire-${protocol}-`);
    baseCwd = join(w, "one");
    mutatedCwd = join(w, "two");
    buildNastyTree(join(baseCwd, "t", "tree"), { variant: "base", root: ROOT, bigFileMB: 4 });
    buildNastyTree(join(mutatedCwd, "t", "tree"), { variant: "mutated", root: ROOT, bigFileMB: 4 });
    // The implied directory "t" gets fixed, different mtimes (else whether the two builds fell
    // in one second decides what rsync's receiver does with it on the second push).
    utimesSync(join(baseCwd, "t"), 1_500_000_000, 1_500_000_000.25);
    utimesSync(join(mutatedCwd, "t"), 1_500_000_100, 1_500_000_100.5);
  });

  it("initial and --delete delta pushes equal native rsync's, within a tenth of its wire bytes", async () => {
    const w = tmpDir(`rel-wire-dst-${protocol}-`);
    const nativeDir = join(w, "native");
    const krsyncDir = join(w, "krsync");
    const args = ["-aHS", "-R", `--protocol=${protocol}`];
    for (const [cwd, extra] of [
      [baseCwd, []],
      [mutatedCwd, ["--delete"]],
    ] as const) {
      const n = await runRsync([...args, ...extra, "--stats", "t/tree", ...remote(nativeDir)], { cwd });
      expect(n.code, n.stderr).toBe(0);
      const k = await krsync([...args, ...extra, "t/tree", ...remote(krsyncDir)], cwd);
      expect(k.messages.filter((m) => m.startsWith("error"))).toEqual([]);
      expect(k.exitCode).toBe(0);
      expect(diffSnapshots(snapshotTree(nativeDir, { owners: ROOT }), snapshotTree(krsyncDir, { owners: ROOT }), { owners: ROOT, ignoreRootDirMtime: true })).toEqual([]);
      const nativeWire = wireBytes(parseStats(n.stdout));
      const ours = k.stats!.totalRead + k.stats!.totalWritten;
      expect(ours).toBeLessThanOrEqual(nativeWire * 1.1);
      expect(ours).toBeGreaterThanOrEqual(nativeWire * 0.9);
    }
  });
});
