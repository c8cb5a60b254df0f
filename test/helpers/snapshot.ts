// Snapshots of a directory tree for byte-exact comparison of two sync results: every entry's type,
// permission bits (setuid/setgid/sticky included), size, mtime in ns, owner, link target, content
// hash, device number and hard-link group. The top directory itself is the entry ".".

import { createHash } from "node:crypto";
import { closeSync, lstatSync, openSync, readSync, readdirSync, readlinkSync, type BigIntStats } from "node:fs";
import { timeSetter } from "../../src/engine/attrs.js";

export type EntryType = "file" | "dir" | "symlink" | "fifo" | "socket" | "chr" | "blk";

export interface SnapEntry {
  type: EntryType;
  /** Permission bits incl. setuid/setgid/sticky (mode & 0o7777). */
  mode: number;
  size: number;
  mtimeNs: bigint;
  /** Only with snapshotTree(..., { atimes: true }). */
  atimeNs?: bigint;
  /** null when the snapshot was taken with owners: false. */
  uid: number | null;
  gid: number | null;
  linkTarget: string | null;
  /** Hex SHA-256 of a regular file's content ("unreadable: CODE" if it could not be read). */
  sha256: string | null;
  /** Device number (Linux dev_t) of char/block devices, else null. */
  rdev: bigint | null;
  /** Sorted rel paths of all non-dir entries in the snapshot sharing this inode; null if alone. */
  hardLinkGroup: readonly string[] | null;
}

export type Snapshot = Map<string, SnapEntry>;

export interface SnapshotOptions {
  /** Record uid/gid (default true). */
  owners?: boolean;
  /** Record atimes (default false). */
  atimes?: boolean;
  /** Leave out an entry (and, for a dir, everything below it). rel uses "/" and no "./". */
  ignore?: (rel: string) => boolean;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** A path component as a string: UTF-8 if valid, else bytes >= 0x80 written as \xNN. */
export function nameToString(b: Buffer): string {
  try {
    return utf8.decode(b);
  } catch {
    let s = "";
    for (const x of b) s += x < 0x80 ? String.fromCharCode(x) : `\\x${x.toString(16).padStart(2, "0")}`;
    return s;
  }
}

function typeOf(st: BigIntStats): EntryType {
  if (st.isFile()) return "file";
  if (st.isDirectory()) return "dir";
  if (st.isSymbolicLink()) return "symlink";
  if (st.isFIFO()) return "fifo";
  if (st.isSocket()) return "socket";
  if (st.isCharacterDevice()) return "chr";
  return "blk";
}

function sha256File(p: Buffer): string {
  let fd: number;
  try {
    fd = openSync(p, "r");
  } catch (e) {
    return `unreadable: ${(e as NodeJS.ErrnoException).code ?? String(e)}`;
  }
  try {
    const h = createHash("sha256");
    const buf = Buffer.allocUnsafe(1 << 20);
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
    return h.digest("hex");
  } finally {
    closeSync(fd);
  }
}

export function snapshotTree(dir: string, opts: SnapshotOptions = {}): Snapshot {
  const owners = opts.owners ?? true;
  const snap: Snapshot = new Map();
  const inodes = new Map<string, string[]>();
  const slash = Buffer.from("/");

  const visit = (abs: Buffer, rel: string): void => {
    const st = lstatSync(abs, { bigint: true });
    const type = typeOf(st);
    const e: SnapEntry = {
      type,
      mode: Number(st.mode & 0o7777n),
      size: Number(st.size),
      mtimeNs: st.mtimeNs,
      uid: owners ? Number(st.uid) : null,
      gid: owners ? Number(st.gid) : null,
      linkTarget: type === "symlink" ? nameToString(readlinkSync(abs, { encoding: "buffer" })) : null,
      sha256: type === "file" ? sha256File(abs) : null,
      rdev: type === "chr" || type === "blk" ? st.rdev : null,
      hardLinkGroup: null,
    };
    if (opts.atimes) e.atimeNs = st.atimeNs;
    snap.set(rel, e);
    if (type !== "dir" && st.nlink > 1n) {
      const key = `${st.dev}:${st.ino}`;
      const l = inodes.get(key);
      if (l) l.push(rel);
      else inodes.set(key, [rel]);
    }
    if (type === "dir") {
      const names = readdirSync(abs, { encoding: "buffer" });
      for (const n of names) {
        const childRel = rel === "." ? nameToString(n) : `${rel}/${nameToString(n)}`;
        if (opts.ignore?.(childRel)) continue;
        visit(Buffer.concat([abs, slash, n]), childRel);
      }
    }
  };
  visit(Buffer.from(dir), ".");

  for (const members of inodes.values()) {
    if (members.length < 2) continue;
    const group = Object.freeze([...members].sort());
    for (const m of members) snap.get(m)!.hardLinkGroup = group;
  }
  return snap;
}

// ---------------------------------------------------------------------------------------------
// Comparison

export type DiffField =
  | "presence"
  | "type"
  | "mode"
  | "size"
  | "content"
  | "mtime"
  | "atime"
  | "uid"
  | "gid"
  | "linkTarget"
  | "rdev"
  | "hardLinks";

export interface DiffOptions {
  /** Do not compare directory mtimes at all. */
  ignoreDirMtimes?: boolean;
  /** Do not compare the mtime of "." (the destination dir itself). */
  ignoreRootDirMtime?: boolean;
  /** Do not compare symlink mtimes. */
  ignoreSymlinkMtimes?: boolean;
  /** Compare mtimes in whole seconds only. */
  mtimeSecondsOnly?: boolean;
  /**
   * Compare mtimes as finely as krsync sets them: to the nanosecond when native/ (utimensat)
   * is loaded, else to the microsecond (the fallback through Node's fs, which keeps µs).
   */
  krsyncMtimes?: boolean;
  /** Compare uid/gid (default true; only where both snapshots recorded them). */
  owners?: boolean;
  /** Compare hard-link groups (default true). */
  hardLinks?: boolean;
  /** Compare permission bits (default true). */
  modes?: boolean;
  /** Skip one field of one entry; "presence" skips the entry entirely. */
  ignore?: (rel: string, field: DiffField) => boolean;
}

const SEC = 1_000_000_000n;
/** The mtime step krsync sets exactly in this process (src/engine/attrs.ts timeSetter). */
const KRSYNC_MTIME_STEP = BigInt(timeSetter.resolutionNs);
const floorDiv = (a: bigint, b: bigint): bigint => (a >= 0n ? a / b : -((-a + b - 1n) / b));

/** Show a path readably; control characters and quotes are escaped via JSON. */
export function showPath(rel: string): string {
  // eslint-disable-next-line no-control-regex
  return /[\u0000-\u001f\u007f"]/.test(rel) ? JSON.stringify(rel) : rel;
}

export function formatMtime(ns: bigint): string {
  let sec = ns / SEC;
  let nsec = ns % SEC;
  if (nsec < 0n) {
    sec -= 1n;
    nsec += SEC;
  }
  let iso: string;
  try {
    iso = new Date(Number(sec) * 1000).toISOString().replace(".000Z", "Z");
  } catch {
    iso = "out of Date range";
  }
  return `${sec}.${nsec.toString().padStart(9, "0")} (${iso})`;
}

function floorSec(ns: bigint): bigint {
  const s = ns / SEC;
  return ns < 0n && s * SEC !== ns ? s - 1n : s;
}

export function formatRdev(rdev: bigint): string {
  // Linux dev_t: major = bits 8-19 and 32-43, minor = bits 0-7 and 20-31
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return `${major},${minor}`;
}

const octal = (m: number): string => m.toString(8).padStart(4, "0");

/**
 * Differences between two snapshots as readable lines, "<what> of <path>: <expected> vs
 * <actual>", sorted by path. Empty when the trees match under the given options.
 */
export function diffSnapshots(expected: Snapshot, actual: Snapshot, opts: DiffOptions = {}): string[] {
  const out: string[] = [];
  const skip = (rel: string, f: DiffField): boolean => opts.ignore?.(rel, f) ?? false;
  const rels = [...new Set([...expected.keys(), ...actual.keys()])].sort();
  for (const rel of rels) {
    if (skip(rel, "presence")) continue;
    const a = expected.get(rel);
    const b = actual.get(rel);
    const p = showPath(rel);
    if (!a) {
      out.push(`unexpected ${b!.type} ${p}`);
      continue;
    }
    if (!b) {
      out.push(`missing ${a.type} ${p}`);
      continue;
    }
    if (a.type !== b.type) {
      if (!skip(rel, "type")) out.push(`type of ${p}: ${a.type} vs ${b.type}`);
      continue;
    }
    const line = (f: DiffField, what: string, x: string, y: string): void => {
      if (x !== y && !skip(rel, f)) out.push(`${what} of ${p}: ${x} vs ${y}`);
    };
    if (opts.modes ?? true) line("mode", "mode", octal(a.mode), octal(b.mode));
    if (a.type === "file") {
      line("size", "size", String(a.size), String(b.size));
      line("content", "content", String(a.sha256), String(b.sha256));
    }
    if (a.type === "symlink") line("linkTarget", "link target", JSON.stringify(a.linkTarget), JSON.stringify(b.linkTarget));
    if (a.type === "chr" || a.type === "blk") line("rdev", "rdev", formatRdev(a.rdev!), formatRdev(b.rdev!));
    const mtimeWanted =
      !(a.type === "dir" && opts.ignoreDirMtimes) &&
      !(rel === "." && opts.ignoreRootDirMtime) &&
      !(a.type === "symlink" && opts.ignoreSymlinkMtimes);
    if (mtimeWanted) {
      const same = opts.mtimeSecondsOnly
        ? floorSec(a.mtimeNs) === floorSec(b.mtimeNs)
        : opts.krsyncMtimes && KRSYNC_MTIME_STEP !== 1n
          ? floorDiv(a.mtimeNs, KRSYNC_MTIME_STEP) === floorDiv(b.mtimeNs, KRSYNC_MTIME_STEP)
          : a.mtimeNs === b.mtimeNs;
      if (!same && !skip(rel, "mtime")) out.push(`mtime of ${p}: ${formatMtime(a.mtimeNs)} vs ${formatMtime(b.mtimeNs)}`);
    }
    if (a.atimeNs !== undefined && b.atimeNs !== undefined && a.atimeNs !== b.atimeNs && !skip(rel, "atime")) {
      out.push(`atime of ${p}: ${formatMtime(a.atimeNs)} vs ${formatMtime(b.atimeNs)}`);
    }
    if ((opts.owners ?? true) && a.uid !== null && b.uid !== null) {
      line("uid", "uid", String(a.uid), String(b.uid));
      line("gid", "gid", String(a.gid), String(b.gid));
    }
    if (opts.hardLinks ?? true) {
      const g = (e: SnapEntry): string => (e.hardLinkGroup ? `[${e.hardLinkGroup.map(showPath).join(", ")}]` : "none");
      line("hardLinks", "hard links", g(a), g(b));
    }
  }
  return out;
}

/** A copy of a snapshot with `fn` applied to every entry (for modelling known rsync effects). */
export function mapSnapshot(snap: Snapshot, fn: (rel: string, e: SnapEntry) => SnapEntry | null): Snapshot {
  const out: Snapshot = new Map();
  for (const [rel, e] of snap) {
    const r = fn(rel, { ...e });
    if (r) out.set(rel, r);
  }
  return out;
}

/**
 * The mtime native rsync sets on the receiver for a source mtime `ns` at `protocol`:
 * protocol < 31 sends no nanoseconds (flist.c: XMIT_MOD_NSEC is protocol 31), and protocol < 30
 * sends the seconds as a 32-bit int (flist.c send_file_entry write_int(modtime) before varlong),
 * which the receiver reads back as unsigned: 1960 arrives as 2096, 5e9 s wraps to 1992. The
 * seconds are floor(ns / 1e9), also for negative times.
 */
export function mtimeAfterRsync(ns: bigint, protocol: number): bigint {
  let sec = floorSec(ns);
  if (protocol < 30) sec = BigInt.asUintN(32, sec);
  return protocol < 31 ? sec * SEC : ns;
}

/** What a source snapshot looks like after an rsync -a copy at `protocol` (mtimes only). */
export function expectAfterProtocol(snap: Snapshot, protocol: number): Snapshot {
  return mapSnapshot(snap, (_rel, e) => ({ ...e, mtimeNs: mtimeAfterRsync(e.mtimeNs, protocol) }));
}
