// The inc-recursion sender's lists (engine/flist-inc.ts) without rsync: what it writes is read
// back with the protocol layer's decoder in incRecurse mode the way rsync's receiver reads it
// (recv_file_list, dir_flist, NDX_FLIST_OFFSET / NDX_FLIST_EOF); it sends only as far ahead as
// the look-ahead asks; and a Sender over it refuses indices outside the lists it has live.
import { linkSync, mkdirSync, realpathSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { beforeAll, describe, expect, it } from "vitest";
import { initChecksums } from "../src/delta/checksum.js";
import { Connection } from "../src/engine/connection.js";
import { emptyStats } from "../src/engine/events.js";
import { buildFileList, senderFlistContext } from "../src/engine/flist-build.js";
import { IncrementalFileLists, MIN_FILECNT_LOOKAHEAD } from "../src/engine/flist-inc.js";
import { Sender } from "../src/engine/sender.js";
import { isDir, type FileEntry } from "../src/protocol/fileentry.js";
import { CF_INC_RECURSE, CF_SAFE_FLIST, CF_VARINT_FLIST_FLAGS, FileListDecoder } from "../src/protocol/flist.js";
import { HardLinkMatcher } from "../src/protocol/flist-hlink.js";
import { sortAndCleanFileList } from "../src/protocol/flist-sort.js";
import { NDX_DONE, NDX_FLIST_EOF, NDX_FLIST_OFFSET, NdxReader, NdxWriter } from "../src/protocol/ndx.js";
import { defaultTransferOptions, type TransferOptions } from "../src/protocol/options.js";
import { Cursor, Writer } from "../src/protocol/wire.js";
import { tmpDir } from "./helpers/env.js";

const PROTOCOL = 31;
const FLAGS = CF_INC_RECURSE | CF_SAFE_FLIST | CF_VARINT_FLIST_FLAGS;
const ITEM_TRANSFER = 1 << 15;

/** 30 top dirs x 8 subdirs, 12 files each, hard links across them, symlinks, empty dirs. */
function buildTree(dir: string): void {
  mkdirSync(dir);
  writeFileSync(join(dir, "root.txt"), "root\n");
  for (let a = 0; a < 30; a++) {
    for (let b = 0; b < 8; b++) {
      const d = join(dir, `d${a}`, `s${b}`);
      mkdirSync(d, { recursive: true });
      for (let i = 0; i < 12; i++) writeFileSync(join(d, `f${i}`), `${a}/${b}/${i}\n`);
    }
    writeFileSync(join(dir, `d${a}`, "here.txt"), `${a}\n`);
    symlinkSync("here.txt", join(dir, `d${a}`, "link"));
  }
  mkdirSync(join(dir, "d3", "empty"));
  linkSync(join(dir, "d0", "s0", "f0"), join(dir, "d29", "s7", "hl0"));
  linkSync(join(dir, "d0", "s0", "f0"), join(dir, "d15", "hl1"));
  linkSync(join(dir, "root.txt"), join(dir, "d7", "s1", "hl-root"));
}

const OPTS: TransferOptions = { ...defaultTransferOptions(), recursive: true, links: true, perms: true, times: true, hardLinks: true };

function listsOver(src: string, opts: TransferOptions = OPTS) {
  const input = new PassThrough();
  const output = new PassThrough();
  const out: Buffer[] = [];
  output.on("data", (b: Buffer) => out.push(b));
  const conn = new Connection({ input, output });
  const stats = emptyStats();
  const lists = new IncrementalFileLists({
    conn,
    protocol: PROTOCOL,
    compatFlags: FLAGS,
    opts,
    checksumLength: 16,
    id0Names: false,
    build: { protocol: PROTOCOL, opts, fileSum: "md5", events: {} },
    stats,
  });
  return { lists, conn, input, bytes: () => Buffer.concat(out), stats };
}

interface ReadList {
  ndxStart: number;
  parent: string;
  files: FileEntry[];
}

/** rsync's receiver: the first list, then NDX_FLIST_OFFSET - dir_ndx / a sub-list, until EOF. */
function readLists(buf: Uint8Array, opts: TransferOptions): { lists: ReadList[]; eof: boolean } {
  const ctx = senderFlistContext({ protocol: PROTOCOL, compatFlags: FLAGS, opts, checksumLength: 16 }, 1);
  const dec = new FileListDecoder(ctx);
  const ndx = new NdxReader(PROTOCOL);
  const c = new Cursor(buf);
  const dirFlist: FileEntry[] = [];
  const lists: ReadList[] = [];
  let ndxStart = 1;
  let parent = "";
  for (;;) {
    const wire: FileEntry[] = [];
    for (;;) {
      const e = dec.decode(c);
      if ("end" in e) break;
      wire.push(e);
    }
    const sorted = sortAndCleanFileList(wire, PROTOCOL).files.filter((f): f is FileEntry => f !== null);
    for (const f of sorted) if (isDir(f.mode)) dirFlist.push(f);
    lists.push({ ndxStart, parent, files: sorted });
    ndxStart += wire.length + 1;
    if (c.remaining === 0) return { lists, eof: false };
    const n = ndx.read(c);
    if (n === NDX_FLIST_EOF) {
      expect(c.remaining).toBe(0);
      return { lists, eof: true };
    }
    const dirNdx = NDX_FLIST_OFFSET - n;
    expect(dirNdx).toBeGreaterThanOrEqual(0);
    expect(dirNdx).toBeLessThan(dirFlist.length);
    parent = dirFlist[dirNdx]!.name;
    dec.beginList(ndxStart, parent);
  }
}

let src: string;
beforeAll(async () => {
  await initChecksums();
  src = join(realpathSync(tmpDir("flist-inc-")), "src");
  buildTree(src);
});

describe("inc-recursion sub-lists through the decoder", () => {
  it("every entry once, each directory's contents in its own sub-list, depth first, hard links grouped across lists", async () => {
    const { lists, bytes, conn } = listsOver(src);
    await lists.sendFirst([`${src}/`]);
    while (!lists.finished) await lists.idle();
    await conn.flush();
    const { lists: got, eof } = readLists(bytes(), OPTS);
    expect(eof).toBe(true);

    // The first list: "." and the root's own entries (its directories get sub-lists).
    expect(got[0]!.files.map((f) => f.name)).toEqual(expect.arrayContaining([".", "root.txt", "d0", "d29"]));
    expect(got[0]!.files.every((f) => !f.name.includes("/"))).toBe(true);
    // One sub-list per directory but ".", each holding that directory's direct entries.
    const parents = got.slice(1).map((l) => l.parent);
    const allDirs = got.flatMap((l) => l.files.filter((f) => isDir(f.mode) && f.name !== ".").map((f) => f.name));
    expect([...parents].sort()).toEqual([...allDirs].sort());
    for (const l of got.slice(1)) for (const f of l.files) expect(f.name.slice(0, f.name.lastIndexOf("/"))).toBe(l.parent);
    // Depth first: a directory's children come right after it, before its next sibling.
    expect(parents.slice(0, 10)).toEqual(["d0", "d0/s0", "d0/s1", "d0/s2", "d0/s3", "d0/s4", "d0/s5", "d0/s6", "d0/s7", "d1"]);

    // The same entries as the whole list.
    const whole = await buildFileList([`${src}/`], { protocol: PROTOCOL, opts: OPTS, fileSum: "md5", events: {} }, 16);
    const names = got.flatMap((l) => l.files.map((f) => f.name)).sort();
    expect(names).toEqual(whole.files.map((f) => f.name).sort());

    // Hard links: every group has one leader, across lists.
    const m = new HardLinkMatcher(PROTOCOL, true);
    const leaderOf = new Map<string, number>();
    for (const l of got) {
      const info = m.match(l.files, l.ndxStart);
      l.files.forEach((f, i) => {
        if (info[i]) leaderOf.set(f.name, info[i]!.leader);
      });
    }
    const g1 = ["d0/s0/f0", "d15/hl1", "d29/s7/hl0"].map((n) => leaderOf.get(n));
    expect(new Set(g1).size).toBe(1);
    expect(g1[0]).toBeDefined();
    const g2 = ["root.txt", "d7/s1/hl-root"].map((n) => leaderOf.get(n));
    expect(new Set(g2).size).toBe(1);
    expect(g2[0]).not.toBe(g1[0]);
  });

  it("a non-dot-dir argument: the first list holds only it; its contents are the first sub-list", async () => {
    const { lists, bytes } = listsOver(src);
    const first = await lists.sendFirst([src]);
    expect(first).toBe(1);
    // One entry: one more list is sent at once (main.c: the receiver reads it to know).
    const { lists: got } = readLists(bytes(), OPTS);
    expect(got.length).toBe(2);
    expect(got[0]!.files.map((f) => f.name)).toEqual(["src"]);
    expect(got[1]!.parent).toBe("src");
    expect(got[1]!.files.map((f) => f.name)).toContain("src/root.txt");
  });

  it("lists go out as the receiver goes: the look-ahead, not the whole tree", async () => {
    const { lists, bytes, conn } = listsOver(src);
    await lists.sendFirst([`${src}/`]);
    await lists.fill();
    await conn.flush();
    const sent = readLists(bytes(), OPTS);
    const count = sent.lists.slice(1).reduce((n, l) => n + l.files.length, 0);
    expect(sent.eof).toBe(false);
    expect(count).toBeGreaterThanOrEqual(MIN_FILECNT_LOOKAHEAD);
    expect(count).toBeLessThan(MIN_FILECNT_LOOKAHEAD + 100);
    // The generator moves on to the last list sent and finishes the ones before it.
    const last = sent.lists[sent.lists.length - 1]!;
    lists.entry(last.ndxStart);
    let freed = 0;
    for (let i = 0; i < sent.lists.length - 1; i++) {
      expect(lists.listDone(() => freed++)).toBe(true);
    }
    expect(freed).toBe(sent.lists.length - 1);
    await lists.fill();
    await conn.flush();
    const more = readLists(bytes(), OPTS);
    expect(more.lists.length).toBeGreaterThan(sent.lists.length);
    // A freed list's index is gone; one beyond what was sent was never there.
    expect(() => lists.entry(5)).toThrow(/File-list index 5 not in/);
    const end = more.lists[more.lists.length - 1]!;
    expect(() => lists.entry(end.ndxStart + end.files.length + 3)).toThrow(expect.objectContaining({ name: "ProtocolError", exitCode: 12 }));
  });

  it("an index in a list not sent yet is refused, and so is the first list's ndx 0 without a '.'", async () => {
    const a = listsOver(src);
    const n = await a.lists.sendFirst([`${src}/`]);
    expect(() => a.lists.entry(n + 1)).toThrow(expect.objectContaining({ name: "ProtocolError", exitCode: 12 }));
    expect(a.lists.entry(0).name).toBe("."); // ndx_start - 1: the list's directory
    const b = listsOver(src);
    await b.lists.sendFirst([join(src, "d1"), join(src, "d2")]);
    expect(() => b.lists.entry(0)).toThrow(/File-list index 0 not in/);
  });
});

/** A Sender over inc-recursion lists, fed a scripted request stream. */
async function scripted(script: (w: Writer, ndx: NdxWriter) => void) {
  const { lists, conn, input } = listsOver(src);
  await lists.sendFirst([`${src}/`]);
  const sender = new Sender({
    conn,
    protocol: PROTOCOL,
    opts: OPTS,
    seed: 1,
    xferSum: "md5",
    xferSumLen: 16,
    compression: "none",
    files: [],
    lists,
    events: {},
    stats: emptyStats(),
    ioError: 0,
    xferError: false,
    amServer: false,
  });
  const w = new Writer();
  script(w, new NdxWriter(PROTOCOL));
  input.end(Buffer.from(w.take()));
  return sender.run().then(
    () => null,
    (e: Error & { exitCode?: number }) => e,
  );
}

describe("a hostile generator against the inc-recursion sender", () => {
  it("an index far beyond every list: protocol error, exit 12", async () => {
    const r = await scripted((w, n) => {
      n.write(1_000_000, w);
      w.int16(ITEM_TRANSFER);
    });
    expect(r).toMatchObject({ name: "ProtocolError", exitCode: 12, message: expect.stringMatching(/File-list index 1000000 not in/) });
  });

  it("a transfer request for a list's directory (ndx_start - 1): protocol error", async () => {
    const r = await scripted((w, n) => {
      n.write(0, w);
      w.int16(ITEM_TRANSFER);
    });
    expect(r).toMatchObject({ exitCode: 12, message: expect.stringMatching(/non-regular file: 0/) });
  });

  it("finishing every list before the last was sent: protocol error", async () => {
    const { lists } = listsOver(src);
    await lists.sendFirst([`${src}/`]);
    expect(lists.finished).toBe(false);
    expect(() => lists.listDone(() => {})).toThrow(expect.objectContaining({ exitCode: 12, message: expect.stringMatching(/finished the last file list before the end/) }));
  });

  it("a flood of NDX_DONE: the lists are all sent and dropped in turn, the run ends as rsync's does", async () => {
    const r = await scripted((w, n) => {
      for (let i = 0; i < 5000; i++) n.write(NDX_DONE, w);
    });
    expect(r).toBe(null);
  });

  it("the receiver's NDX_FLIST_EOF is no index a sender takes", async () => {
    const r = await scripted((w, n) => {
      n.write(NDX_FLIST_EOF, w);
    });
    expect(r).toMatchObject({ exitCode: 12, message: expect.stringMatching(/Invalid file index: -2/) });
  });
});
