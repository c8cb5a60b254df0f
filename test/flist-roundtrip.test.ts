// Round trips FileListEncoder -> FileListDecoder at protocols 27-32 over generated lists of every
// entry type and option combination, with inc-recursion sub-lists, id lists and byte-at-a-time
// (restartable) decoding.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  FLAG_CONTENT_DIR,
  FLAG_HLINKED,
  FLAG_IMPLIED_DIR,
  FLAG_MOD_NSEC,
  FLAG_TOP_DIR,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFREG,
  S_IFSOCK,
  isDevice,
  isDir,
  isLink,
  isReg,
  isSpecial,
  type FileEntry,
} from "../src/protocol/fileentry.js";
import {
  CF_ID0_NAMES,
  CF_INC_RECURSE,
  CF_SAFE_FLIST,
  CF_VARINT_FLIST_FLAGS,
  FileListDecoder,
  FileListEncoder,
  flistIncRecurse,
  flistSafe,
  type FlistContext,
  type FlistEnd,
} from "../src/protocol/flist.js";
import { applyIdNames, decodeIdLists, encodeIdLists, type IdListContext } from "../src/protocol/idlist.js";
import { Cursor, NeedMore, Writer } from "../src/protocol/wire.js";

type Kind = "reg" | "dir" | "lnk" | "chr" | "blk" | "fifo" | "sock";
const TYPE: Record<Kind, number> = {
  reg: S_IFREG,
  dir: S_IFDIR,
  lnk: S_IFLNK,
  chr: S_IFCHR,
  blk: S_IFBLK,
  fifo: S_IFIFO,
  sock: S_IFSOCK,
};

interface Spec {
  parent: number; // < 0: top level, else the parent-th most recent directory
  kind: Kind;
  comp: string;
  perms: number;
  size: number;
  mtime: number;
  nsec: number;
  uid: number;
  gid: number;
  major: number;
  minor: number;
  target: number[];
  sum: number[];
  group: number; // hard-link group, -1 none
  dirFlags: number;
}

const COMPS = ["a", "b", "é", "日本語", "x y", "-x", "~t", ".h", "🙂", "a.b", "L".repeat(300), "M".repeat(200)];

const specArb = (p: number): fc.Arbitrary<Spec> =>
  fc.record({
    parent: fc.integer({ min: -2, max: 4 }),
    kind: fc.constantFrom<Kind>("reg", "reg", "reg", "dir", "dir", "lnk", "chr", "blk", "fifo", "sock"),
    comp: fc.constantFrom(...COMPS),
    perms: fc.integer({ min: 0, max: 0o7777 }),
    size: fc.oneof(fc.integer({ min: 0, max: 70000 }), fc.integer({ min: 0, max: 2 ** 44 })),
    mtime:
      p >= 30
        ? fc.oneof(fc.constantFrom(0, 1_700_000_000), fc.integer({ min: -(2 ** 40), max: 2 ** 40 }))
        : fc.oneof(fc.constantFrom(0, 1_700_000_000), fc.integer({ min: -(2 ** 31), max: 2 ** 33 })),
    nsec: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 999_999_999 })),
    uid: fc.oneof(fc.constantFrom(0, 1, 1000), fc.integer({ min: 0, max: 0xffffffff })),
    gid: fc.oneof(fc.constantFrom(0, 1, 1000), fc.integer({ min: 0, max: 0xffffffff })),
    major: p < 28 ? fc.integer({ min: 0, max: 0xfff }) : fc.oneof(fc.constantFrom(0, 8), fc.integer({ min: 0, max: 0x7fffffff })),
    minor: p < 28 ? fc.integer({ min: 0, max: 0xfffff }) : fc.oneof(fc.constantFrom(0, 3, 255, 256), fc.integer({ min: 0, max: 0x7fffffff })),
    target: fc.array(fc.integer({ min: 1, max: 255 }), { minLength: 1, maxLength: 40 }),
    sum: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 16, maxLength: 16 }),
    group: fc.oneof(fc.constant(-1), fc.constant(-1), fc.integer({ min: 0, max: 3 })),
    dirFlags: fc.constantFrom(0, FLAG_CONTENT_DIR, FLAG_TOP_DIR | FLAG_CONTENT_DIR, FLAG_IMPLIED_DIR),
  });

interface Options {
  preserveUid: boolean;
  preserveGid: boolean;
  preserveLinks: boolean;
  preserveDevices: boolean;
  preserveSpecials: boolean;
  preserveHardLinks: boolean;
  alwaysChecksum: boolean;
  numericIds: boolean;
  compat: number;
  withRoot: boolean;
  ioError: number;
}

const optionsArb: fc.Arbitrary<Options> = fc.record({
  preserveUid: fc.boolean(),
  preserveGid: fc.boolean(),
  preserveLinks: fc.boolean(),
  preserveDevices: fc.boolean(),
  preserveSpecials: fc.boolean(),
  preserveHardLinks: fc.boolean(),
  alwaysChecksum: fc.boolean(),
  numericIds: fc.boolean(),
  compat: fc.subarray([CF_INC_RECURSE, CF_SAFE_FLIST, CF_VARINT_FLIST_FLAGS, CF_ID0_NAMES]).map((a) => a.reduce((x, y) => x | y, 0)),
  withRoot: fc.boolean(),
  ioError: fc.constantFrom(0, 0, 1, 2, 5),
});

const userName = (uid: number): string | undefined => (uid % 3 === 1 ? undefined : `user${uid}`);
const groupName = (gid: number): string | undefined => (gid % 3 === 2 ? undefined : `grp${gid}`);

interface Plan {
  ctx: FlistContext;
  /** The lists as sent (wire order), with each sub-list's parent dir name. */
  lists: { parentDir: string; entries: FileEntry[] }[];
}

/** Build entries the way rsync's sender would produce them for these options. */
function plan(p: number, o: Options, specs: Spec[]): Plan {
  const compat = p >= 30 ? o.compat : 0;
  const ctx: FlistContext = {
    protocol: p,
    compatFlags: compat,
    recursive: true,
    preserveUid: o.preserveUid,
    preserveGid: o.preserveGid,
    preserveLinks: o.preserveLinks,
    preserveDevices: o.preserveDevices,
    preserveSpecials: o.preserveSpecials,
    preserveHardLinks: o.preserveHardLinks,
    alwaysChecksum: o.alwaysChecksum,
    checksumLength: 16,
    numericIds: o.numericIds,
    ndxStart: flistIncRecurse({ protocol: p, compatFlags: compat }) ? 1 : 0,
  };
  // Names: a tree; skip kinds the sender would not send with these options.
  const names: (string | null)[] = [];
  const used = new Set<string>();
  const entries: (FileEntry & { parentIdx: number; group: number })[] = [];
  const idxOf: number[] = [];
  const dirs: number[] = [];
  specs.forEach((s, i) => {
    names.push(null);
    if (s.kind === "lnk" && !o.preserveLinks) return;
    if ((s.kind === "chr" || s.kind === "blk") && !o.preserveDevices) return;
    if ((s.kind === "fifo" || s.kind === "sock") && !o.preserveSpecials) return;
    const parentIdx = s.parent < 0 || dirs.length === 0 ? -1 : dirs[dirs.length - 1 - (s.parent % dirs.length)]!;
    const prefix = parentIdx >= 0 ? `${names[parentIdx]}/` : "";
    const name = `${prefix}${s.comp}${i}`;
    if (Buffer.byteLength(name) > 1023 || used.has(name)) return;
    used.add(name);
    names[i] = name;
    const mode = TYPE[s.kind] | s.perms;
    const e: FileEntry & { parentIdx: number; group: number } = {
      name,
      mode,
      size: isDevice(mode) || isSpecial(mode) ? 0 : s.size,
      mtime: s.mtime,
      mtimeNsec: s.nsec,
      flags: s.kind === "dir" ? s.dirFlags : 0,
      parentIdx,
      group: -1,
    };
    if (o.preserveUid) {
      e.uid = s.uid;
      const n = userName(s.uid);
      if (n) e.userName = n;
    }
    if (o.preserveGid) {
      e.gid = s.gid;
      const n = groupName(s.gid);
      if (n) e.groupName = n;
    }
    if (isDevice(mode)) {
      e.rdevMajor = s.major;
      e.rdevMinor = s.minor;
    }
    if (isLink(mode)) e.linkTarget = Uint8Array.from(s.target);
    if (isReg(mode) && o.alwaysChecksum) e.checksum = Uint8Array.from(s.sum);
    // Hard links: protocol >= 28 any non-dir in a group; 27 every regular file.
    if (o.preserveHardLinks) {
      if (p >= 28 ? !isDir(mode) && s.group >= 0 : isReg(mode)) {
        e.group = s.group >= 0 && (p >= 28 || isReg(mode)) ? s.group : 100 + i;
      }
    }
    idxOf[i] = entries.length;
    entries.push(e);
    if (s.kind === "dir") dirs.push(i);
  });
  // Members of a group share the first member's attributes (they are one inode).
  const firstOfGroup = new Map<number, FileEntry>();
  for (const e of entries) {
    if (e.group < 0) continue;
    const f = firstOfGroup.get(e.group);
    if (!f) {
      firstOfGroup.set(e.group, e);
    } else {
      if (isDir(e.mode) !== isDir(f.mode)) {
        e.group = -1;
        continue;
      }
      for (const k of ["mode", "size", "mtime", "mtimeNsec", "uid", "gid", "userName", "groupName", "rdevMajor", "rdevMinor", "linkTarget", "checksum"] as const) {
        if (f[k] === undefined) delete e[k];
        else (e as unknown as Record<string, unknown>)[k] = f[k];
      }
      if (p < 28 && !isReg(e.mode)) e.group = -1;
    }
  }
  for (const e of entries) {
    if (e.group >= 0) {
      e.hlinkDev = 7 + (e.group % 2);
      e.hlinkIno = 1000 + e.group;
    }
  }
  const strip = (e: FileEntry & { parentIdx: number; group: number }): FileEntry => {
    const { parentIdx: _p, group: _g, ...rest } = e;
    return rest;
  };
  const root: FileEntry[] = o.withRoot
    ? [{ name: ".", mode: S_IFDIR | 0o755, size: 4096, mtime: 5, mtimeNsec: 0, flags: FLAG_TOP_DIR | FLAG_CONTENT_DIR, ...(o.preserveUid ? { uid: 0, userName: "user0" } : {}), ...(o.preserveGid ? { gid: 0, groupName: "grp0" } : {}) }]
    : [];
  if (!flistIncRecurse(ctx)) return { ctx, lists: [{ parentDir: "", entries: [...root, ...entries.map(strip)] }] };
  // Inc-recursion: the top level first, then one sub-list per directory (in creation order).
  const lists: Plan["lists"] = [{ parentDir: "", entries: [...root, ...entries.filter((e) => e.parentIdx < 0).map(strip)] }];
  specs.forEach((s, i) => {
    if (names[i] === null || s.kind !== "dir" || idxOf[i] === undefined) return;
    const dirName = names[i]!;
    lists.push({ parentDir: dirName, entries: entries.filter((e) => e.parentIdx === i).map(strip) });
  });
  return { ctx, lists };
}

/** What the decoder must return for an entry the encoder was given. */
function expected(p: number, ctx: FlistContext, e: FileEntry, wireNdx: number, firstNdx: Map<string, number>, inDelHier: { v: boolean }): FileEntry {
  const x: FileEntry = {
    name: e.name,
    mode: e.mode,
    size: isDevice(e.mode) || isSpecial(e.mode) ? 0 : e.size,
    mtime: p >= 30 ? e.mtime : ((e.mtime % 2 ** 32) + 2 ** 32) % 2 ** 32,
    mtimeNsec: p >= 31 ? e.mtimeNsec : 0,
    flags: 0,
  };
  if (x.mtimeNsec) x.flags |= FLAG_MOD_NSEC;
  if (isDir(e.mode)) {
    if (p >= 30) {
      if (e.flags & FLAG_CONTENT_DIR) x.flags |= FLAG_CONTENT_DIR | (e.flags & FLAG_TOP_DIR);
      else if (e.flags & FLAG_IMPLIED_DIR) x.flags |= FLAG_IMPLIED_DIR;
    } else if (e.flags & FLAG_TOP_DIR) {
      x.flags |= FLAG_TOP_DIR | FLAG_CONTENT_DIR;
      inDelHier.v = true;
    } else if (inDelHier.v) {
      x.flags |= FLAG_CONTENT_DIR;
    }
  }
  const inc = flistIncRecurse(ctx);
  if (ctx.preserveUid) {
    x.uid = e.uid ?? 0;
    if (e.userName && !ctx.numericIds && (inc || x.uid !== 0 || (ctx.compatFlags & CF_ID0_NAMES && p >= 30))) x.userName = e.userName;
  }
  if (ctx.preserveGid) {
    x.gid = e.gid ?? 0;
    if (e.groupName && !ctx.numericIds && (inc || x.gid !== 0 || (ctx.compatFlags & CF_ID0_NAMES && p >= 30))) x.groupName = e.groupName;
  }
  if (isDevice(e.mode)) {
    x.rdevMajor = e.rdevMajor;
    x.rdevMinor = e.rdevMinor;
  }
  if (isLink(e.mode)) x.linkTarget = e.linkTarget;
  if (isReg(e.mode) && ctx.alwaysChecksum) x.checksum = e.checksum;
  if (ctx.preserveHardLinks && e.hlinkDev !== undefined) {
    if (!isDir(e.mode)) x.flags |= FLAG_HLINKED;
    if (p >= 30) {
      const key = `${e.hlinkDev}:${e.hlinkIno}`;
      if (!firstNdx.has(key)) firstNdx.set(key, wireNdx);
      x.hlinkFirstNdx = firstNdx.get(key)!;
    } else {
      x.hlinkDev = e.hlinkDev;
      x.hlinkIno = e.hlinkIno;
    }
  }
  return x;
}

interface Encoded {
  bytes: Uint8Array;
  /** Byte offset where each list's entries start. */
  listStarts: number[];
  enc: FileListEncoder;
}

function encodeAll(pl: Plan, ioError: number): Encoded {
  const enc = new FileListEncoder(pl.ctx);
  const w = new Writer();
  const listStarts: number[] = [];
  let start = pl.ctx.ndxStart;
  pl.lists.forEach((l, i) => {
    if (i > 0) enc.beginList(start);
    listStarts.push(w.len);
    for (const e of l.entries) enc.encode(e, w);
    enc.end(w, ioError);
    start += l.entries.length + 1;
  });
  return { bytes: w.take(), listStarts, enc };
}

function decodeAll(pl: Plan, bytes: Uint8Array, byteAtATime: boolean): { lists: FileEntry[][]; ends: FlistEnd[]; dec: FileListDecoder; c: Cursor } {
  const dec = new FileListDecoder(pl.ctx);
  const c = new Cursor(bytes, 0, byteAtATime ? 0 : bytes.length);
  const lists: FileEntry[][] = [];
  const ends: FlistEnd[] = [];
  let start = pl.ctx.ndxStart;
  pl.lists.forEach((l, i) => {
    if (i > 0) dec.beginList(start, l.parentDir);
    const got: FileEntry[] = [];
    for (;;) {
      let r: FileEntry | FlistEnd;
      try {
        r = dec.decode(c);
      } catch (e) {
        if (!(e instanceof NeedMore) || c.end >= bytes.length) throw e;
        c.end++;
        continue;
      }
      if ("end" in r) {
        ends.push(r);
        break;
      }
      got.push(r);
    }
    lists.push(got);
    start += got.length + 1;
  });
  return { lists, ends, dec, c };
}

function checkRoundTrip(p: number, o: Options, specs: Spec[], byteAtATime: boolean): void {
  const pl = plan(p, o, specs);
  const { bytes, enc } = encodeAll(pl, o.ioError);
  const { lists, ends, c } = decodeAll(pl, bytes, byteAtATime);
  expect(c.pos).toBe(bytes.length);
  const inc = flistIncRecurse(pl.ctx);
  // Id lists follow the only list when there is no inc-recursion.
  if (!inc) {
    const idctx: IdListContext = {
      protocol: p,
      preserveUid: o.preserveUid,
      preserveGid: o.preserveGid,
      numericIds: o.numericIds,
      incRecurse: false,
      id0Names: p >= 30 && (pl.ctx.compatFlags & CF_ID0_NAMES) !== 0,
    };
    const w = new Writer();
    encodeIdLists(w, idctx, enc.users, enc.groups);
    const idBytes = w.take();
    const ic = new Cursor(idBytes);
    const ids = decodeIdLists(ic, idctx);
    expect(ic.pos).toBe(idBytes.length);
    applyIdNames(lists[0]!, ids);
  }
  const firstNdx = new Map<string, number>();
  const inDelHier = { v: false };
  let start = pl.ctx.ndxStart;
  pl.lists.forEach((l, li) => {
    const want = l.entries.map((e, i) => expected(p, pl.ctx, e, start + i, firstNdx, inDelHier));
    expect(lists[li]).toEqual(want);
    start += l.entries.length + 1;
  });
  const safe = flistSafe(pl.ctx);
  const wantErr = safe ? o.ioError : 0;
  for (const e of ends) expect(e).toEqual({ end: true, ioError: wantErr });
}

describe("file list round trip", () => {
  for (const p of [27, 28, 29, 30, 31, 32]) {
    it(`protocol ${p}: encoder -> decoder`, () => {
      fc.assert(
        fc.property(optionsArb, fc.array(specArb(p), { minLength: 1, maxLength: 60, size: "max" }), (o, specs) => {
          checkRoundTrip(p, o, specs, false);
        }),
        { numRuns: 200 },
      );
    });
    it(`protocol ${p}: byte-at-a-time decoding is restartable`, () => {
      fc.assert(
        fc.property(optionsArb, fc.array(specArb(p), { minLength: 1, maxLength: 15, size: "max" }), (o, specs) => {
          checkRoundTrip(p, o, specs, true);
        }),
        { numRuns: 40 },
      );
    });
  }
});
