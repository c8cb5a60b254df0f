// The sender against the real rsync binary: krsync pushes to `rsync --server` (a receiver)
// through a local remote-shell stand-in at every protocol 27..32, and each result is compared
// with what native rsync pushing the same tree from the same starting state produces — trees
// byte for byte with modes, mtimes (to the nanosecond: rsync sets them), owners, link
// targets and hard-link groups — and with the bytes each moves on the wire.
import { chmodSync, mkdirSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { PassThrough } from "node:stream";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { sync } from "../src/api.js";
import { parseCommandLine } from "../src/cli/options.js";
import { isRoot, rsyncPath, testBigFileMB, tmpDir } from "./helpers/env.js";
import { FAKE_HOST, parseStats, push, rshArg, wireBytes } from "./helpers/rsync.js";
import { diffSnapshots, snapshotTree, type DiffOptions } from "./helpers/snapshot.js";
import { buildNastyTree } from "./helpers/tree.js";
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
    },
  });
  return { ...r, messages };
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
