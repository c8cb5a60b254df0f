// The sender against the real rsync binary: krsync pushes to `rsync --server` (a receiver)
// through a local remote-shell stand-in at every protocol 27..32, and each result is compared
// with what native rsync pushing the same tree from the same starting state produces — trees
// byte for byte with modes, mtimes (to the nanosecond: rsync sets them), owners, link
// targets and hard-link groups — and with the bytes each moves on the wire.
import { chmodSync, existsSync, mkdirSync, realpathSync, rmSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { PassThrough } from "node:stream";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { sync } from "../src/api.js";
import { parseCommandLine } from "../src/cli/options.js";
import { isRoot, rsyncPath, testBigFileMB, tmpDir } from "./helpers/env.js";
import { FAKE_HOST, parseStats, push, rshArg, wireBytes } from "./helpers/rsync.js";
import { diffSnapshots, snapshotTree, type DiffOptions } from "./helpers/snapshot.js";
import { addWideExtras, buildNastyTree, buildWideTree } from "./helpers/tree.js";
import { COMPRESSION_CASES, runCompressionCase, textTrees } from "./helpers/compression.js";
import { nsecMtimeCases } from "./helpers/nsec-times.js";
import { Connection } from "../src/engine/connection.js";
import { emptyStats } from "../src/engine/events.js";
import type { SendEntry } from "../src/engine/flist-build.js";
import { Sender } from "../src/engine/sender.js";
import { BandwidthLimiter } from "../src/engine/push.js";
import { Writable } from "node:stream";
import { NdxWriter } from "../src/protocol/ndx.js";
import { defaultTransferOptions } from "../src/protocol/options.js";
import { Writer } from "../src/protocol/wire.js";
import { initChecksums } from "../src/delta/checksum.js";

const ROOT = isRoot();
const BIG_MB = testBigFileMB(40);
const PROTOCOLS = [27, 28, 29, 30, 31, 32] as const;

async function krsyncPush(args: string[], src: string, dst: string, hooks: { onSender?: () => void } = {}) {
  const cl = parseCommandLine([...args, "-e", rshArg(), `--rsync-path=${rsyncPath}`, `${src}/`, `${FAKE_HOST}:${dst}/`]);
  const messages: string[] = [];
  // Itemized events as rsync's -i lines ("%i %n") and its deletions.
  const items: string[] = [];
  let flisted = false;
  const r = await sync({
    ...cl.options,
    source: cl.args.slice(0, -1),
    destination: cl.args[cl.args.length - 1]!,
    events: {
      message: (level, text) => messages.push(`${level}: ${text}`),
      fileList: () => {
        if (!flisted) hooks.onSender?.();
        flisted = true;
      },
      item: (it) => items.push(`${it.itemize} ${it.name}`),
      deleted: (name) => items.push(`*deleting   ${name}`),
    },
  });
  return { ...r, messages, items };
}

const CMP: DiffOptions = { owners: ROOT };

function compare(expected: string, actual: string, opts: DiffOptions = CMP): string[] {
  return diffSnapshots(snapshotTree(expected, { owners: ROOT }), snapshotTree(actual, { owners: ROOT }), opts);
}

const errorsOf = (messages: string[]) => messages.filter((m) => m.startsWith("error"));

let base: string;
let mutated: string;

beforeAll(() => {
  const w = tmpDir("push-src-");
  base = join(w, "base");
  mutated = join(w, "mutated");
  buildNastyTree(base, { variant: "base", root: ROOT, bigFileMB: BIG_MB });
  buildNastyTree(mutated, { variant: "mutated", root: ROOT, bigFileMB: BIG_MB });
});

describe.each(PROTOCOLS)("push at protocol %i", (protocol) => {
  const opts = ["-aHS", `--protocol=${protocol}`];
  let nativeDir: string;
  let krsyncDir: string;

  it("initial push equals native rsync's", async () => {
    const w = tmpDir(`push-${protocol}-`);
    nativeDir = join(w, "native");
    krsyncDir = join(w, "krsync");
    const n = await push(base, nativeDir, [...opts, "--stats"]);
    expect(n.code, n.stderr).toBe(0);
    const k = await krsyncPush(opts, base, krsyncDir);
    expect(errorsOf(k.messages)).toEqual([]);
    expect(k.exitCode).toBe(0);
    expect(compare(nativeDir, krsyncDir)).toEqual([]);
  });

  it("delta push of the mutated tree with --delete equals native rsync's, within 10% of its wire bytes", async () => {
    const n = await push(mutated, nativeDir, [...opts, "--delete", "--stats"]);
    expect(n.code, n.stderr).toBe(0);
    const k = await krsyncPush([...opts, "--delete"], mutated, krsyncDir);
    expect(errorsOf(k.messages)).toEqual([]);
    expect(k.exitCode).toBe(0);
    expect(compare(nativeDir, krsyncDir)).toEqual([]);
    const nativeWire = wireBytes(parseStats(n.stdout));
    const ours = k.stats.totalRead + k.stats.totalWritten;
    expect(ours).toBeLessThanOrEqual(nativeWire * 1.1);
  });
});

describe.each([31, 32] as const)("nanosecond mtimes, push at protocol %i", (protocol) => {
  nsecMtimeCases(protocol, krsyncPush, push);
});

describe("push options against native rsync (protocol 32)", () => {
  const cases: [string, string[]][] = [
    ["-z", ["-aH", "-z"]],
    ["--zc=zlib", ["-aH", "--zc=zlib"]],
    ["--zc=zlibx", ["-aH", "--zc=zlibx"]],
    ["--zc=lz4", ["-aH", "--zc=lz4"]],
    ["-c", ["-aHc"]],
    ["--inplace", ["-aH", "--inplace"]],
    ["--whole-file", ["-aHW"]],
    ["--append", ["-aH", "--append"]],
    ["--size-only", ["-aH", "--size-only"]],
    ["-I", ["-aHI"]],
    ["--numeric-ids", ["-aH", "--numeric-ids"]],
    ["no -H", ["-a"]],
    ["-r only", ["-r"]],
    ["-d (no recursion)", ["-dlptgoD"]],
    ["-x", ["-aHx"]],
    ["-n (dry run)", ["-aHn"]],
    ["--bwlimit", ["-aH", "--bwlimit=100000"]],
    ...["md4", "md5", "sha1", "xxh64", "xxh3", "xxh128"].map((c): [string, string[]] => [`--cc=${c}`, ["-aH", `--cc=${c}`]]),
  ];
  it.each(cases)("%s: delta push over the base copy equals native rsync's", async (_name, args) => {
    const w = tmpDir("pushopt-");
    const nativeDir = join(w, "native");
    const krsyncDir = join(w, "krsync");
    // Both start from the same old copy.
    const first = await push(base, nativeDir, ["-aH"]);
    expect(first.code, first.stderr).toBe(0);
    const second = await push(base, krsyncDir, ["-aH"]);
    expect(second.code, second.stderr).toBe(0);
    const n = await push(mutated, nativeDir, [...args, "--delete", "--stats"]);
    expect(n.code, n.stderr).toBe(0);
    const k = await krsyncPush([...args, "--delete"], mutated, krsyncDir);
    expect(errorsOf(k.messages)).toEqual([]);
    expect(k.exitCode).toBe(0);
    // Without -t the mtimes are the receiver's clock.
    const cmp = args.includes("-r") ? { ...CMP, ignore: (_rel: string, f: string) => f === "mtime" } : CMP;
    expect(compare(nativeDir, krsyncDir, cmp)).toEqual([]);
    const nativeWire = wireBytes(parseStats(n.stdout));
    expect(k.stats.totalRead + k.stats.totalWritten).toBeLessThanOrEqual(nativeWire * 1.1 + 2048);
  });

  it.each([27, 29, 30])("--append and -c at protocol %i equal native rsync's", async (protocol) => {
    for (const extra of [["--append"], ["-c"], ["--inplace"]]) {
      const w = tmpDir("pushold-");
      const nativeDir = join(w, "native");
      const krsyncDir = join(w, "krsync");
      expect((await push(base, nativeDir, ["-aH"])).code).toBe(0);
      expect((await push(base, krsyncDir, ["-aH"])).code).toBe(0);
      const args = ["-aH", "--delete", `--protocol=${protocol}`, ...extra];
      const n = await push(mutated, nativeDir, [...args, "--stats"]);
      expect(n.code, n.stderr).toBe(0);
      const k = await krsyncPush(args, mutated, krsyncDir);
      expect(errorsOf(k.messages)).toEqual([]);
      expect(k.exitCode).toBe(0);
      expect(compare(nativeDir, krsyncDir), extra.join(" ")).toEqual([]);
    }
  });
});

describe("push edge cases", () => {
  it("a source file that vanishes before it is sent: rsync's warning and exit 24", async () => {
    const w = tmpDir("pushvanish-");
    const src = join(w, "src");
    mkdirSync(src);
    writeFileSync(join(src, "keep.txt"), "keep\n");
    writeFileSync(join(src, "gone.txt"), "soon gone\n");
    const k = await krsyncPush(["-a"], src, join(w, "dst"), { onSender: () => rmSync(join(src, "gone.txt")) });
    expect(k.exitCode).toBe(24);
    expect(k.messages.some((m) => /^warning: file has vanished: ".*gone\.txt"$/.test(m)), k.messages.join("\n")).toBe(true);
    expect(snapshotTree(join(w, "dst")).has("keep.txt")).toBe(true);
  });

  it("reports the receiver's deletions (directories with their slash) as rsync does", async () => {
    const w = tmpDir("pushdel-");
    const src = join(w, "src");
    mkdirSync(src);
    writeFileSync(join(src, "a.txt"), "a\n");
    mkdirSync(join(w, "dst", "old-dir"), { recursive: true });
    writeFileSync(join(w, "dst", "old.txt"), "old\n");
    const cl = parseCommandLine(["-ai", "--delete", "-e", rshArg(), `--rsync-path=${rsyncPath}`, `${src}/`, `${FAKE_HOST}:${join(w, "dst")}/`]);
    const deleted: string[] = [];
    const items: string[] = [];
    const r = await sync({
      ...cl.options,
      source: cl.args.slice(0, -1),
      destination: cl.args[cl.args.length - 1]!,
      events: { deleted: (n) => deleted.push(n), item: (it) => items.push(`${it.itemize} ${it.name}`) },
    });
    expect(r.exitCode).toBe(0);
    expect(deleted.sort()).toEqual(["old-dir/", "old.txt"]);
    expect(items).toContain("<f+++++++++ a.txt");
  });

  it("an unreadable source file is an error (exit 23), the rest arrives", async () => {
    if (ROOT) return; // root reads anything
    const w = tmpDir("pushperm-");
    const src = join(w, "src");
    mkdirSync(src);
    writeFileSync(join(src, "ok.txt"), "ok\n");
    writeFileSync(join(src, "secret.txt"), "no\n");
    chmodSync(join(src, "secret.txt"), 0);
    const k = await krsyncPush(["-a"], src, join(w, "dst"));
    expect(k.exitCode).toBe(23);
  });
});

describe("push compression against native rsync", () => {
  let trees: { base: string; mutated: string };
  beforeAll(() => {
    trees = textTrees();
  });
  it.each(COMPRESSION_CASES)("protocol %i %j: initial and delta pushes equal native rsync's (%s), each within a tenth of its wire bytes", async (...c) => {
    await runCompressionCase({ native: push, krsync: krsyncPush, compare }, trees, c);
  });
});

// ---- incremental recursion: a tree of hundreds of directories, many sub-lists ----

/** Native rsync's -i lines, without the " -> target" / " => link" tails. */
const nativeItems = (stdout: string): string[] =>
  stdout
    .split("\n")
    .filter((l) => /^([<>ch.*][fdLDS+]|\*deleting)/.test(l))
    .map((l) => l.replace(/ (->|=>) .*$/, ""))
    .sort();

describe("incremental recursion (push to rsync --server, a tree of hundreds of directories)", () => {
  let wideBase: string;
  let wideMutated: string;
  beforeAll(() => {
    const w = tmpDir("push-wide-");
    wideBase = join(w, "base");
    wideMutated = join(w, "mutated");
    buildWideTree(wideBase, "base");
    buildWideTree(wideMutated, "mutated");
  });

  const within10 = (ours: number, native: number, what: string) => {
    expect(ours, `${what}: ${ours} vs native ${native}`).toBeLessThanOrEqual(native * 1.1);
    expect(ours, `${what}: ${ours} vs native ${native}`).toBeGreaterThanOrEqual(native * 0.9);
  };

  describe.each([
    [27, false],
    [29, false],
    [30, false],
    [30, true],
    [31, false],
    [31, true],
    [32, false],
    [32, true],
  ] as const)("protocol %i, --no-inc-recursive: %s", (protocol, noInc) => {
    const mode = noInc ? ["--no-inc-recursive"] : [];
    const opts = ["-aH", `--protocol=${protocol}`, ...mode];
    const incUsed = protocol >= 30 && !noInc;
    // Before 29 a dir-merge rule is "too modern": a plain exclude stands in.
    const FILTER = protocol >= 29 ? "--filter=dir-merge .rsync-filter" : "--exclude=*.tmp";

    it("initial push, then -c, --delete (during) with a dir-merge filter, a dry run's itemized lines, then the delta push: each equals native rsync's, within 10% of its wire bytes", async () => {
      const w = tmpDir(`push-wide-${protocol}-`);
      const nativeDir = join(w, "native");
      const krsyncDir = join(w, "krsync");

      // 1. Initial push with the filter.
      const n1 = await push(wideBase, nativeDir, [...opts, FILTER, "--stats"]);
      expect(n1.code, n1.stderr).toBe(0);
      const k1 = await krsyncPush([...opts, FILTER], wideBase, krsyncDir);
      expect(errorsOf(k1.messages)).toEqual([]);
      expect(k1.exitCode).toBe(0);
      // compat.c CF_INC_RECURSE: granted by the receiver exactly when offered at 30+.
      expect(k1.stats.incRecurse).toBe(incUsed);
      expect(compare(nativeDir, krsyncDir)).toEqual([]);
      expect(snapshotTree(krsyncDir).has("t2/s3/scratch.tmp")).toBe(false);
      expect(snapshotTree(krsyncDir).has("t4/s1/skip-me")).toBe(protocol < 29);
      within10(k1.stats.totalRead + k1.stats.totalWritten, wireBytes(parseStats(n1.stdout)), "initial");

      // 2. Extra files in both destinations (one protected by the receiver's filter rule).
      addWideExtras(nativeDir);
      addWideExtras(krsyncDir);

      // 3. A dry run with -i and --delete: the same itemized lines, nothing changed.
      const dry = [...opts, FILTER, "--delete", "-n", "-i"];
      const n2 = await push(wideMutated, nativeDir, dry);
      expect(n2.code, n2.stderr).toBe(0);
      const k2 = await krsyncPush(dry, wideMutated, krsyncDir);
      expect(errorsOf(k2.messages)).toEqual([]);
      expect(k2.exitCode).toBe(0);
      // Below 29 a generator sends the sender no item flags: nothing to compare.
      if (protocol >= 29) {
        expect(k2.items.length).toBeGreaterThan(100);
        expect([...k2.items].sort()).toEqual(nativeItems(n2.stdout));
      }
      expect(compare(nativeDir, krsyncDir)).toEqual([]);

      // 4. -c over the same start (changes found by checksum), --delete during, the filter.
      const cargs = [...opts, FILTER, "--delete", "-c"];
      const n3 = await push(wideMutated, nativeDir, [...cargs, "--stats"]);
      expect(n3.code, n3.stderr).toBe(0);
      const k3 = await krsyncPush(cargs, wideMutated, krsyncDir);
      expect(errorsOf(k3.messages)).toEqual([]);
      expect(k3.exitCode).toBe(0);
      expect(k3.stats.incRecurse).toBe(incUsed);
      expect(compare(nativeDir, krsyncDir)).toEqual([]);
      const snap = snapshotTree(krsyncDir);
      expect(snap.has("t1/s0/extra.txt")).toBe(false);
      expect(snap.has("t3/extra-dir")).toBe(false);
      expect(snap.has("t2/s3/keep-me.tmp")).toBe(true);
      expect(snap.has("t0/s0/brand-new/deeper/n.txt")).toBe(true);
      within10(k3.stats.totalRead + k3.stats.totalWritten, wireBytes(parseStats(n3.stdout)), "-c --delete");

      // 5. Back to the base tree: a delta push (mtimes and sizes decide), --delete.
      const dargs = [...opts, FILTER, "--delete"];
      const n4 = await push(wideBase, nativeDir, [...dargs, "--stats"]);
      expect(n4.code, n4.stderr).toBe(0);
      const k4 = await krsyncPush(dargs, wideBase, krsyncDir);
      expect(errorsOf(k4.messages)).toEqual([]);
      expect(k4.exitCode).toBe(0);
      expect(compare(nativeDir, krsyncDir)).toEqual([]);
      within10(k4.stats.totalRead + k4.stats.totalWritten, wireBytes(parseStats(n4.stdout)), "delta --delete");
    });
  });

  it.each([
    ["--delete-before", ["--delete-before"]],
    ["--delete-after", ["--delete-after"]],
  ])("%s: the receiver turns inc-recursion off, and the push still equals native rsync's", async (_n, extra) => {
    const w = tmpDir("push-wide-off-");
    const nativeDir = join(w, "native");
    const krsyncDir = join(w, "krsync");
    const args = ["-aH", ...extra];
    const n = await push(wideMutated, nativeDir, args);
    expect(n.code, n.stderr).toBe(0);
    const k = await krsyncPush(args, wideMutated, krsyncDir);
    expect(errorsOf(k.messages)).toEqual([]);
    expect(k.exitCode).toBe(0);
    expect(k.stats.incRecurse).toBe(false);
    expect(compare(nativeDir, krsyncDir)).toEqual([]);
  });

  it.each([
    ["a directory named without its slash (the first list holds it alone)", (tree: string) => [tree]],
    ["one file (the first list holds it alone, no directory follows)", (tree: string) => [join(tree, "top.txt")]],
    ["a file and a directory", (tree: string) => [join(tree, "top.txt"), join(tree, "t4")]],
  ] as const)("%s: equals native rsync's", async (_n, sources) => {
    const w = tmpDir("push-args-");
    const nativeDir = join(w, "native");
    const krsyncDir = join(w, "krsync");
    const { runRsync } = await import("./helpers/rsync.js");
    const srcs = sources(wideBase);
    const n = await runRsync(["-e", rshArg(), `--rsync-path=${rsyncPath}`, "-aH", ...srcs, `${FAKE_HOST}:${nativeDir}/`]);
    expect(n.code, n.stderr).toBe(0);
    const k = await sync({ ...parseCommandLine(["-aH", "src", "dst"]).options, source: srcs, destination: `${FAKE_HOST}:${krsyncDir}/`, rsh: rshArg(), rsyncPath });
    expect(k.exitCode).toBe(0);
    expect(k.stats.incRecurse).toBe(true);
    // The destination directory itself is made by the receiver, not sent: its mtime is its own.
    expect(compare(nativeDir, krsyncDir, { ...CMP, ignore: (rel, f) => rel === "." && f === "mtime" })).toEqual([]);
  });

  it("two source directories with a directory in common: its sub-list merges both, as native rsync's", async () => {
    const w = tmpDir("push-two-");
    for (const s of ["a", "b"]) {
      mkdirSync(join(w, s, "common", "deep"), { recursive: true });
      writeFileSync(join(w, s, "common", `${s}.txt`), `${s}\n`);
      writeFileSync(join(w, s, "common", "deep", `${s}-deep.txt`), `${s}\n`);
      mkdirSync(join(w, s, `only-${s}`));
      writeFileSync(join(w, s, `only-${s}`, "x"), "x\n");
    }
    writeFileSync(join(w, "a", "common", "both.txt"), "from a\n");
    writeFileSync(join(w, "b", "common", "both.txt"), "from b\n");
    for (const s of ["a", "b"]) {
      for (const rel of ["common/a.txt", "common/b.txt", "common/both.txt", "common/deep/a-deep.txt", "common/deep/b-deep.txt", `only-${s}/x`, `only-${s}`, "common/deep", "common", "."]) {
        if (existsSync(join(w, s, rel))) utimesSync(join(w, s, rel), 1_600_000_000, 1_600_000_000);
      }
    }
    const nativeDir = join(w, "native");
    const krsyncDir = join(w, "krsync");
    const { runRsync } = await import("./helpers/rsync.js");
    const n = await runRsync(["-e", rshArg(), `--rsync-path=${rsyncPath}`, "-a", `${w}/a/`, `${w}/b/`, `${FAKE_HOST}:${nativeDir}/`]);
    expect(n.code, n.stderr).toBe(0);
    const k = await sync({ ...parseCommandLine(["-a", "src", "dst"]).options, source: [`${w}/a/`, `${w}/b/`], destination: `${FAKE_HOST}:${krsyncDir}/`, rsh: rshArg(), rsyncPath });
    expect(k.exitCode).toBe(0);
    expect(k.stats.incRecurse).toBe(true);
    expect(compare(nativeDir, krsyncDir)).toEqual([]);
    expect(snapshotTree(krsyncDir).has("common/deep/b-deep.txt")).toBe(true);
  });
});

// ---- the sender facing a hostile generator (no rsync involved) ----

const ITEM_TRANSFER = 1 << 15;

function entry(root: string, name: string, mode: number, size: number): SendEntry {
  return { name, mode, size, mtime: 0, mtimeNsec: 0, flags: 0, path: join(root, name), root, dev: 0n, ino: 0n };
}

/** Run a Sender over a scripted request stream; returns what it wrote and how it ended. */
async function scripted(protocol: number, files: SendEntry[], script: (w: Writer, ndx: NdxWriter) => void) {
  await initChecksums();
  const toSender = new PassThrough();
  const fromSender = new PassThrough();
  const out: Buffer[] = [];
  fromSender.on("data", (b: Buffer) => out.push(b));
  const conn = new Connection({ input: toSender, output: fromSender });
  const messages: string[] = [];
  const sender = new Sender({
    conn,
    protocol,
    opts: defaultTransferOptions(),
    seed: 1,
    xferSum: "md5",
    xferSumLen: 16,
    compression: "none",
    files,
    events: { message: (level, text) => messages.push(`${level}: ${text}`) },
    stats: emptyStats(),
    ioError: 0,
    xferError: false,
    amServer: false,
  });
  const w = new Writer();
  script(w, new NdxWriter(protocol));
  toSender.end(Buffer.from(w.take()));
  const result = await sender.run().then(
    () => null,
    (e: Error & { exitCode?: number }) => e,
  );
  return { result, written: Buffer.concat(out), messages, ctx: sender.ctx };
}

describe("the sender refuses bad requests", () => {
  let root: string;
  let files: SendEntry[];
  beforeAll(() => {
    root = realpathSync(tmpDir("sender-bad-"));
    mkdirSync(join(root, "src"));
    writeFileSync(join(root, "src", "a.txt"), "hello\n");
    files = [entry(root, "src", 0o40755, 4096), entry(root, "src/a.txt", 0o100644, 6)];
  });
  const head = (w: Writer, count: number, blength: number, s2: number, rem: number) => w.int32(count).int32(blength).int32(s2).int32(rem);

  it.each([27, 29, 31])("an index we never sent (protocol %i): protocol error, exit 12", async (p) => {
    const r = await scripted(p, files, (w, n) => {
      n.write(7, w);
      if (p >= 29) w.int16(ITEM_TRANSFER);
    });
    expect(r.result).toMatchObject({ name: "ProtocolError", exitCode: 12, message: expect.stringMatching(/Invalid file index: 7/) });
  });

  it("a transfer request for a directory: protocol error", async () => {
    const r = await scripted(31, files, (w, n) => {
      n.write(0, w);
      w.int16(ITEM_TRANSFER);
    });
    expect(r.result).toMatchObject({ exitCode: 12, message: expect.stringMatching(/non-regular file: 0/) });
  });

  it.each([
    ["a negative block count", [-1, 700, 2, 0], /Invalid checksum count/],
    ["an absurd block count", [1 << 27, 700, 2, 0], /Invalid checksum count/],
    ["a block length over the maximum", [1, (1 << 17) + 1, 2, 0], /Invalid block length/],
    ["a checksum longer than the digest", [1, 700, 17, 0], /Invalid checksum length/],
    ["a remainder longer than the block", [1, 700, 2, 701], /Invalid remainder length/],
  ] as const)("%s in the sum head: protocol error before anything is read", async (_n, h, re) => {
    const r = await scripted(31, files, (w, n) => {
      n.write(1, w);
      w.int16(ITEM_TRANSFER);
      head(w, h[0], h[1], h[2], h[3]);
    });
    expect(r.result).toMatchObject({ exitCode: 12, message: expect.stringMatching(re) });
    expect(r.written.length).toBe(0);
  });

  it("a file whose parent became a symlink out of the tree is not read", async () => {
    const outside = join(root, "outside");
    mkdirSync(outside);
    writeFileSync(join(outside, "secret.txt"), "TOP-SECRET-CONTENT");
    // src2/ was a directory at walk time; now it points outside the transfer root.
    const treeRoot = join(root, "tree");
    mkdirSync(treeRoot);
    symlinkSync(outside, join(treeRoot, "src2"));
    const list = [entry(treeRoot, "src2", 0o40755, 4096), entry(treeRoot, "src2/secret.txt", 0o100644, 18)];
    const r = await scripted(31, list, (w, n) => {
      n.write(1, w);
      w.int16(ITEM_TRANSFER);
      head(w, 0, 0, 0, 0);
      n.write(-1, w);
      n.write(-1, w);
      n.write(-1, w);
    });
    expect(r.result).toBe(null);
    expect(r.written.includes(Buffer.from("TOP-SECRET"))).toBe(false);
    expect(r.messages.some((m) => /outside the transfer root/.test(m)), r.messages.join("\n")).toBe(true);
    expect(r.ctx.ioError & 1).toBe(1);
  });

  it("a good request is answered with the echo, the data and the checksum", async () => {
    const r = await scripted(31, files, (w, n) => {
      n.write(1, w);
      w.int16(ITEM_TRANSFER);
      head(w, 0, 0, 0, 0);
      n.write(-1, w);
      n.write(-1, w);
      n.write(-1, w);
    });
    expect(r.result).toBe(null);
    expect(r.written.includes(Buffer.from("hello\n"))).toBe(true);
  });
});

describe("--bwlimit", () => {
  it("holds writes to the rate (token bucket in front of the peer)", async () => {
    let got = 0;
    const sink = new Writable({
      write(chunk: Buffer, _e, cb) {
        got += chunk.length;
        cb();
      },
    });
    const lim = new BandwidthLimiter(sink, 1000); // 1000 KiB/s
    const t0 = Date.now();
    lim.write(Buffer.alloc(400 * 1024));
    await new Promise<void>((r) => lim.end(r));
    const ms = Date.now() - t0;
    expect(got).toBe(400 * 1024);
    expect(ms).toBeGreaterThanOrEqual(330); // 400 KiB at 1000 KiB/s: 0.4 s
    expect(ms).toBeLessThan(2000);
  });
});
