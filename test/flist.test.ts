// Unit tests: hostile input to the file-list decoder, wire details, sorting, hard-link groups and
// id lists. (Round trips: flist-roundtrip.test.ts; native rsync: flist-batch.test.ts.)
import { describe, expect, it } from "vitest";
import {
  FLAG_CONTENT_DIR,
  FLAG_HLINKED,
  FLAG_IMPLIED_DIR,
  FLAG_TOP_DIR,
  S_IFDIR,
  S_IFLNK,
  S_IFREG,
  type FileEntry,
} from "../src/protocol/fileentry.js";
import {
  CF_INC_RECURSE,
  CF_SAFE_FLIST,
  CF_VARINT_FLIST_FLAGS,
  FileListDecoder,
  FileListEncoder,
  XMIT_EXTENDED_FLAGS,
  XMIT_HLINK_FIRST,
  XMIT_HLINKED,
  XMIT_IO_ERROR_ENDLIST,
  XMIT_LONG_NAME,
  XMIT_MOD_NSEC,
  XMIT_SAME_NAME,
  XMIT_TOP_DIR,
  type FlistContext,
} from "../src/protocol/flist.js";
import { HardLinkMatcher } from "../src/protocol/flist-hlink.js";
import { fNameCmp, sortAndCleanFileList, sortFileList } from "../src/protocol/flist-sort.js";
import { decodeIdLists, encodeIdLists, idListsSent, type IdListContext } from "../src/protocol/idlist.js";
import { Cursor, NeedMore, ProtocolError, Writer } from "../src/protocol/wire.js";

function ctxFor(protocol: number, over: Partial<FlistContext> = {}): FlistContext {
  return {
    protocol,
    compatFlags: protocol >= 30 ? CF_VARINT_FLIST_FLAGS | CF_SAFE_FLIST : 0,
    recursive: true,
    preserveUid: false,
    preserveGid: false,
    preserveLinks: true,
    preserveDevices: false,
    preserveSpecials: false,
    preserveHardLinks: true,
    alwaysChecksum: false,
    checksumLength: 16,
    ndxStart: 0,
    ...over,
  };
}

const file = (name: string, over: Partial<FileEntry> = {}): FileEntry => ({
  name,
  mode: S_IFREG | 0o644,
  size: 1,
  mtime: 100,
  mtimeNsec: 0,
  flags: 0,
  ...over,
});
const dir = (name: string, flags = FLAG_CONTENT_DIR): FileEntry => ({ name, mode: S_IFDIR | 0o755, size: 4096, mtime: 100, mtimeNsec: 0, flags });

/** A hand-built entry at protocol 32 (varint flags): flags, name, then the given tail. */
function rawEntry(w: Writer, xflags: number, name: Uint8Array, tail: (w: Writer) => void, l1 = 0): void {
  w.varint(xflags);
  if (xflags & XMIT_SAME_NAME) w.byte(l1);
  if (xflags & XMIT_LONG_NAME) w.varint(name.length);
  else w.byte(name.length);
  w.bytes(name);
  tail(w);
}
const regTail = (w: Writer): void => {
  w.varlong(1, 3);
  w.varlong(100, 4);
  w.int32(S_IFREG | 0o644);
};

function decodeAllBytes(ctx: FlistContext, bytes: Uint8Array): FileEntry[] {
  const d = new FileListDecoder(ctx);
  const c = new Cursor(bytes);
  const out: FileEntry[] = [];
  for (;;) {
    const r = d.decode(c);
    if ("end" in r) return out;
    out.push(r);
  }
}

function rejects(ctx: FlistContext, build: (w: Writer) => void, msg: RegExp): void {
  const w = new Writer();
  build(w);
  w.varint(0).varint(0);
  let err: unknown;
  try {
    decodeAllBytes(ctx, w.take());
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(ProtocolError);
  expect((err as Error).message).toMatch(msg);
}

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

describe("decoder rejects unsafe or malformed entries", () => {
  const c32 = ctxFor(32);
  for (const bad of ["/etc/passwd", "..", "../x", "a/../b", "a/..", "a//b", "a/", "./a", "a/./b", "a/."]) {
    it(`name ${JSON.stringify(bad)}`, () => {
      rejects(c32, (w) => rawEntry(w, XMIT_TOP_DIR, enc(bad), regTail), /unsafe pathname/);
    });
  }
  it("NUL byte in a name", () => {
    rejects(c32, (w) => rawEntry(w, XMIT_TOP_DIR, Uint8Array.from([0x61, 0, 0x62]), regTail), /NUL/);
  });
  it("non-UTF-8 name", () => {
    rejects(c32, (w) => rawEntry(w, XMIT_TOP_DIR, Uint8Array.from([0x61, 0xff, 0x62]), regTail), /non-UTF-8 names are unsupported/);
  });
  it("shared prefix longer than the previous name", () => {
    rejects(c32, (w) => rawEntry(w, XMIT_SAME_NAME, enc("x"), regTail, 3), /shared name prefix 3/);
  });
  it("name longer than MAXPATHLEN - 1", () => {
    rejects(c32, (w) => rawEntry(w, XMIT_LONG_NAME, enc("a".repeat(4096)), regTail), /overflow/);
    // 4095 bytes is the limit and fine.
    const w = new Writer();
    rawEntry(w, XMIT_LONG_NAME, enc("a".repeat(4095)), regTail);
    w.varint(0).varint(0);
    expect(decodeAllBytes(c32, w.take())[0]!.name.length).toBe(4095);
  });
  it("'.' that is not a directory", () => {
    rejects(c32, (w) => rawEntry(w, XMIT_TOP_DIR, enc("."), regTail), /non-directory transfer-root/);
  });
  it("invalid mode and mode 0", () => {
    const tail = (mode: number) => (w: Writer) => {
      w.varlong(1, 3);
      w.varlong(100, 4);
      w.int32(mode);
    };
    rejects(c32, (w) => rawEntry(w, XMIT_TOP_DIR, enc("f"), tail(0o070644)), /invalid file mode/);
    rejects(c32, (w) => rawEntry(w, XMIT_TOP_DIR, enc("f"), tail(0)), /invalid file mode/);
    const w = new Writer();
    rawEntry(w, XMIT_TOP_DIR, enc("gone"), tail(0));
    w.varint(0).varint(0);
    expect(decodeAllBytes(ctxFor(32, { deleteMissingArgs: true }), w.take())[0]!.mode).toBe(0);
  });
  it("negative size", () => {
    const c29 = ctxFor(29);
    const w = new Writer();
    w.byte(XMIT_TOP_DIR).byte(1).bytes(enc("f"));
    w.int32(-1).int32(0xfffffff0).int32(-1); // longint -16
    w.int32(100).int32(S_IFREG | 0o644);
    w.byte(0).int32(0);
    expect(() => decodeAllBytes(c29, w.take())).toThrow(/file-length is negative/);
  });
  it("nanoseconds out of range", () => {
    rejects(c32, (w) => rawEntry(w, XMIT_TOP_DIR | XMIT_MOD_NSEC, enc("f"), (w) => {
      w.varlong(1, 3).varlong(100, 4).varint(1_000_000_000).int32(S_IFREG | 0o644);
    }), /modtime_nsec out of range/);
  });
  it("symlink target too long or with NUL", () => {
    const link = (target: Uint8Array) => (w: Writer) => {
      w.varlong(target.length, 3).varlong(100, 4).int32(S_IFLNK | 0o777);
      w.varint(target.length).bytes(target);
    };
    rejects(c32, (w) => rawEntry(w, XMIT_TOP_DIR, enc("l"), link(new Uint8Array(4096).fill(0x61))), /linkname_len=4096/);
    rejects(c32, (w) => rawEntry(w, XMIT_TOP_DIR, enc("l"), link(Uint8Array.from([0x61, 0]))), /NUL/);
  });
  it("hard-link references out of range or to a non-first member", () => {
    rejects(c32, (w) => rawEntry(w, XMIT_HLINKED, enc("f"), (w) => w.varint(0)), /hard-link reference out of range: 0 \(0\)/);
    rejects(c32, (w) => {
      rawEntry(w, XMIT_TOP_DIR, enc("a"), regTail);
      rawEntry(w, XMIT_HLINKED, enc("b"), (w) => w.varint(0));
    }, /not a group's first member/);
    rejects(c32, (w) => rawEntry(w, XMIT_HLINKED, enc("f"), (w) => w.varint(-1)), /out of range: -1/);
  });
  it("io-error end marker needs a safe file list", () => {
    const bytes = Uint8Array.from([(XMIT_EXTENDED_FLAGS | XMIT_IO_ERROR_ENDLIST) & 0xff, (XMIT_EXTENDED_FLAGS | XMIT_IO_ERROR_ENDLIST) >> 8, 3]);
    expect(() => new FileListDecoder(ctxFor(30, { compatFlags: 0 })).decode(new Cursor(bytes))).toThrow(/Invalid flist flag: 1004/);
    expect(new FileListDecoder(ctxFor(30, { compatFlags: CF_SAFE_FLIST })).decode(new Cursor(bytes))).toEqual({ end: true, ioError: 3 });
    expect(new FileListDecoder(ctxFor(31, { compatFlags: 0 })).decode(new Cursor(bytes))).toEqual({ end: true, ioError: 3 });
    // Invalid io_error bits are masked off (IOERR_VALID_MASK).
    expect(new FileListDecoder(ctxFor(32)).decode(new Cursor(Uint8Array.from([0, 0x7f])))).toEqual({ end: true, ioError: 7 });
  });
  it("inc-recursion: entries outside the sub-list's directory", () => {
    const ctx = ctxFor(32, { compatFlags: CF_VARINT_FLIST_FLAGS | CF_INC_RECURSE, ndxStart: 1 });
    rejects(ctx, (w) => rawEntry(w, XMIT_TOP_DIR, enc("a/b"), regTail), /invalid path from sender: a\/b/);
    const d = new FileListDecoder(ctx);
    d.beginList(5, "a");
    const w = new Writer();
    rawEntry(w, XMIT_TOP_DIR, enc("b/c"), regTail);
    expect(() => d.decode(new Cursor(w.take()))).toThrow(/invalid path from sender: b\/c/);
  });
  it("relative paths: one leading slash", () => {
    const ctx = ctxFor(32, { relativePaths: true });
    const w = new Writer();
    rawEntry(w, XMIT_TOP_DIR, enc("/."), (w) => w.varlong(0, 3).varlong(1, 4).int32(S_IFDIR | 0o755));
    rawEntry(w, XMIT_TOP_DIR, enc("/tmp/x"), regTail);
    w.varint(0).varint(0);
    expect(decodeAllBytes(ctx, w.take()).map((e) => e.name)).toEqual(["/.", "/tmp/x"]);
    rejects(ctx, (w) => rawEntry(w, XMIT_TOP_DIR, enc("//x"), regTail), /empty path component/);
    rejects(ctx, (w) => rawEntry(w, XMIT_TOP_DIR, enc("/"), regTail), /empty path component/);
  });
  it("decode after the end marker is a caller error", () => {
    const d = new FileListDecoder(ctxFor(32));
    const c = new Cursor(Uint8Array.from([0, 0, 0, 0]));
    expect(d.decode(c)).toEqual({ end: true, ioError: 0 });
    expect(() => d.decode(c)).toThrow(/beginList/);
  });
  it("NeedMore leaves the cursor and state untouched", () => {
    const ctx = ctxFor(32);
    const w = new Writer();
    const e = new FileListEncoder(ctx);
    e.encode(file("abc"), w);
    e.encode(file("abd"), w);
    const bytes = w.take();
    const d = new FileListDecoder(ctx);
    const c = new Cursor(bytes, 0, 3);
    expect(() => d.decode(c)).toThrow(NeedMore);
    expect(c.pos).toBe(0);
    c.end = bytes.length;
    expect((d.decode(c) as FileEntry).name).toBe("abc");
    expect((d.decode(c) as FileEntry).name).toBe("abd");
  });
});

describe("encoder wire details", () => {
  it("never writes a zero flag byte (protocols 27, 28 and varint flags)", () => {
    // A first entry whose uid, gid, mode and mtime all differ from the initial state has no flags.
    const owned = { preserveUid: true, preserveGid: true, preserveHardLinks: false };
    const first = (p: number, e: FileEntry, compat?: number): number[] => {
      const w = new Writer();
      new FileListEncoder(ctxFor(p, { ...owned, ...(compat !== undefined ? { compatFlags: compat } : {}) })).encode(
        { ...e, uid: 1, gid: 1, mtime: 5 },
        w,
      );
      return [...w.take().subarray(0, 2)];
    };
    expect(first(27, dir("d", 0))).toEqual([XMIT_LONG_NAME, 1]); // then an int32 name length
    expect(first(27, file("f"))).toEqual([XMIT_TOP_DIR, 1]);
    expect(first(28, dir("d", 0))).toEqual([XMIT_EXTENDED_FLAGS, 0]);
    expect(first(28, file("f"))).toEqual([XMIT_TOP_DIR, 1]);
    expect(first(32, dir("d", FLAG_CONTENT_DIR))).toEqual([XMIT_EXTENDED_FLAGS, 1]);
  });
  it("shares at most 255 bytes of prefix and sends long suffixes with XMIT_LONG_NAME", () => {
    const ctx = ctxFor(32);
    const a = `${"p".repeat(300)}/a`;
    const b = `${"p".repeat(300)}/b`;
    const w = new Writer();
    const e = new FileListEncoder(ctx);
    e.encode(file(a), w);
    e.encode(file(b), w);
    const bytes = w.take();
    const c = new Cursor(bytes);
    const x1 = c.varint();
    expect(x1 & XMIT_LONG_NAME).toBeTruthy();
    expect(decodeAllBytes(ctx, Uint8Array.from([...bytes, 0, 0])).map((x) => x.name)).toEqual([a, b]);
  });
  it("protocol >= 30: a later member in the same list is abbreviated to its first's index", () => {
    const ctx = ctxFor(30);
    const w = new Writer();
    const e = new FileListEncoder(ctx);
    e.encode(file("a", { size: 12345, hlinkDev: 1, hlinkIno: 2 }), w);
    const first = w.len;
    e.encode(file("b", { size: 12345, hlinkDev: 1, hlinkIno: 2 }), w);
    const bytes = w.take();
    const second = bytes.subarray(first);
    // flags, l1/l2 name, varint 0 (first member's ndx): nothing else.
    const c = new Cursor(second);
    const xf = c.varint();
    expect(xf & (XMIT_HLINKED | XMIT_HLINK_FIRST)).toBe(XMIT_HLINKED);
    expect(xf & XMIT_SAME_NAME).toBe(0);
    expect(c.byte()).toBe(1);
    expect(c.byte()).toBe(0x62);
    expect(c.varint()).toBe(0);
    expect(c.remaining).toBe(0);
    const got = decodeAllBytes(ctx, Uint8Array.from([...bytes, 0, 0]));
    expect(got[1]).toMatchObject({ name: "b", size: 12345, hlinkFirstNdx: 0, flags: FLAG_HLINKED });
  });
});

describe("f_name_cmp order", () => {
  const names = (l: FileEntry[]): string[] => l.map((e) => e.name);
  it("protocol >= 29: files before dirs, a dir right before its contents, '.' first", () => {
    const l = [dir("a"), file("b"), file("a/x"), dir("a-b"), file("a.b"), dir("."), dir("a/sub"), file("a/z"), file("-")];
    expect(names(sortFileList(l, 29))).toEqual([".", "-", "a.b", "b", "a-b", "a", "a/x", "a/z", "a/sub"]);
    expect(fNameCmp(file("zzz"), dir("a"), 30)).toBeLessThan(0);
    expect(fNameCmp(dir("a"), file("a"), 30)).toBeGreaterThan(0);
  });
  it("protocol < 29: plain byte order of the path", () => {
    const l = [dir("a"), file("b"), file("a/x"), dir("a-b"), file("a.b"), dir("."), file("-")];
    expect(names(sortFileList(l, 28))).toEqual(["-", ".", "a", "a-b", "a.b", "a/x", "b"]);
    expect(fNameCmp(dir("a"), file("a"), 28)).toBe(0);
  });
  it("compares UTF-8 bytes unsigned", () => {
    expect(names(sortFileList([file("\u00e9"), file("z"), file("\u{1f600}"), file("Z")], 31))).toEqual(["Z", "z", "\u00e9", "\u{1f600}"]);
  });
  it("is stable for equal names", () => {
    const a = file("x", { size: 1 });
    const b = file("x", { size: 2 });
    expect(sortFileList([a, b], 31)).toEqual([a, b]);
    expect(sortFileList([b, a], 31)).toEqual([b, a]);
  });
});

describe("flist_sort_and_clean", () => {
  it("drops later duplicates, keeping positions", () => {
    const r = sortAndCleanFileList([file("a", { size: 1 }), file("b"), file("a", { size: 2 })], 31);
    expect(r.files.map((e) => e && [e.name, e.size])).toEqual([["a", 1], null, ["b", 1]]);
    expect([r.low, r.high]).toEqual([0, 2]);
  });
  for (const p of [28, 31]) {
    it(`protocol ${p}: a dir wins over a non-dir of the same name`, () => {
      const r = sortAndCleanFileList([file("d"), dir("d"), file("e")], p);
      const kept = r.files.filter((e): e is FileEntry => e !== null);
      const want: string[][] = p < 29 ? [["d", "dir"], ["e", "file"]] : [["e", "file"], ["d", "dir"]];
      expect(kept.map((e) => [e.name, e.mode & S_IFDIR ? "dir" : "file"])).toEqual(want);
      expect(r.files.length).toBe(3);
      if (p < 29) expect(r.low).toBe(1); // the dropped file was the first entry
    });
  }
  it("merges the flags of duplicate dirs", () => {
    const r = sortAndCleanFileList([dir("d", FLAG_IMPLIED_DIR), dir("d", FLAG_TOP_DIR | FLAG_CONTENT_DIR)], 31);
    expect(r.files[0]!.flags).toBe(FLAG_TOP_DIR | FLAG_CONTENT_DIR);
    expect(r.files[1]).toBeNull();
    const r2 = sortAndCleanFileList([dir("d", FLAG_IMPLIED_DIR), dir("d", FLAG_IMPLIED_DIR)], 31);
    expect(r2.files[0]!.flags).toBe(FLAG_IMPLIED_DIR);
  });
  it("strips leading slashes after sorting (-R)", () => {
    const r = sortAndCleanFileList([file("/b"), dir("/."), file("a")], 31, { stripRoot: true });
    // sorted as "a" (a file at the top), "/." and "/b" (under the '/' path byte), then stripped
    expect(r.files.map((e) => e?.name)).toEqual(["a", ".", "b"]);
  });
  it("empty list", () => {
    expect(sortAndCleanFileList([], 31)).toEqual({ files: [], low: 0, high: -1 });
  });
});

describe("hard-link groups", () => {
  const hl = (name: string, g: number): FileEntry => file(name, { flags: FLAG_HLINKED, hlinkFirstNdx: g });
  it("protocol >= 30: chained in sorted order, led by the first sorted member; lone members unlinked", () => {
    // sorted: a(g3) b(g9) c(g3) d(g3) e(g5)
    const files = [hl("a", 3), hl("b", 9), hl("c", 3), hl("d", 3), hl("e", 5), file("f")];
    const info = new HardLinkMatcher(30, false).match(files, 0);
    expect(info[0]).toEqual({ leader: 0, prev: -1, first: true, last: false });
    expect(info[2]).toEqual({ leader: 0, prev: 0, first: false, last: false });
    expect(info[3]).toEqual({ leader: 0, prev: 2, first: false, last: true });
    expect(info[1]).toBeUndefined();
    expect(info[4]).toBeUndefined();
    expect(info[5]).toBeUndefined();
  });
  it("protocol 28-29: grouped by dev/ino", () => {
    const d = (name: string, dev: number, ino: number): FileEntry => file(name, { flags: FLAG_HLINKED, hlinkDev: dev, hlinkIno: ino });
    const info = new HardLinkMatcher(29, false).match([d("a", 1, 5), d("b", 2, 5), d("c", 1, 5), null, d("e", 2, 5)], 10);
    expect(info.map((i) => i && [i.leader, i.prev])).toEqual([[10, -1], [11, -1], [10, 10], undefined, [11, 11]]);
  });
  it("inc-recursion: a group continues in a later list", () => {
    const m = new HardLinkMatcher(31, true);
    const l1 = m.match([hl("a", 2), hl("x", 3)], 1);
    expect(l1[0]).toEqual({ leader: 1, prev: -1, first: true, last: true });
    expect(l1[1]).toEqual({ leader: 2, prev: -1, first: true, last: true }); // lone members stay linked
    const l2 = m.match([hl("d/b", 2), hl("d/c", 2)], 5);
    expect(l2[0]).toEqual({ leader: 1, prev: 1, first: false, last: false });
    expect(l2[1]).toEqual({ leader: 1, prev: 5, first: false, last: true });
    expect(l1[0]!.last).toBe(false);
    expect(() => m.match([hl("e/q", 4)], 9)).toThrow(/gnum 4 precedes flist start 9/);
  });
});

describe("id lists", () => {
  const ctx = (protocol: number, over: Partial<IdListContext> = {}): IdListContext => ({
    protocol,
    preserveUid: true,
    preserveGid: true,
    numericIds: false,
    incRecurse: false,
    id0Names: false,
    ...over,
  });
  it("when they are sent", () => {
    expect(idListsSent(ctx(29))).toEqual({ users: true, groups: true });
    expect(idListsSent(ctx(31, { incRecurse: true }))).toEqual({ users: false, groups: false });
    expect(idListsSent(ctx(29, { numericIds: true }))).toEqual({ users: false, groups: false });
    expect(idListsSent(ctx(29, { preserveGid: false }))).toEqual({ users: true, groups: false });
  });
  it("protocol 29 format: newest first, id 0 and nameless ids left out, int32 ids", () => {
    const w = new Writer();
    encodeIdLists(w, ctx(29, { preserveGid: false }), [{ id: 0, name: "root" }, { id: 1, name: "daemon" }, { id: 1234 }, { id: 2, name: "bin" }], []);
    const want = [2, 0, 0, 0, 3, ...enc("bin"), 1, 0, 0, 0, 6, ...enc("daemon"), 0, 0, 0, 0];
    expect([...w.take()]).toEqual(want);
  });
  it("protocol 30 with CF_ID0_NAMES: varint ids, then 0 and the name of id 0", () => {
    const c = ctx(30, { id0Names: true });
    const w = new Writer();
    encodeIdLists(w, c, [{ id: 300, name: "u" }], [{ id: 0, name: "wheel" }], { user: "root" });
    const bytes = w.take();
    expect([...bytes]).toEqual([0x81, 0x2c, 1, ...enc("u"), 0, 4, ...enc("root"), 0, 5, ...enc("wheel")]);
    const got = decodeIdLists(new Cursor(bytes), c);
    expect([...got.users]).toEqual([[300, "u"], [0, "root"]]);
    expect([...got.groups]).toEqual([[0, "wheel"]]);
  });
  it("decoding is restartable", () => {
    const c = ctx(29);
    const w = new Writer();
    encodeIdLists(w, c, [{ id: 5, name: "five" }], [{ id: 6, name: "six" }]);
    const bytes = w.take();
    for (let n = 0; n < bytes.length; n++) {
      const cur = new Cursor(bytes, 0, n);
      expect(() => decodeIdLists(cur, c)).toThrow(NeedMore);
      expect(cur.pos).toBe(0);
    }
    const all = decodeIdLists(new Cursor(bytes), c);
    expect([...all.users]).toEqual([[5, "five"]]);
    expect([...all.groups]).toEqual([[6, "six"]]);
  });
});
