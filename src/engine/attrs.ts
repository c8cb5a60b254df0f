// Setting and comparing file attributes on the receiving side (rsync.c set_file_attrs,
// generator.c itemize / unchanged_attrs).
import * as fs from "node:fs";
import type { LocalStat } from "./destination.js";
import { errnoError, nativeAddon } from "./native.js";
import type { FileEntry } from "../protocol/fileentry.js";
import { isDir, isLink } from "../protocol/fileentry.js";
import type { TransferOptions } from "../protocol/options.js";
import {
  ITEM_REPORT_GROUP,
  ITEM_REPORT_OWNER,
  ITEM_REPORT_PERMS,
  ITEM_REPORT_TIME,
} from "./itemize.js";
import type { OwnerMap } from "./owners.js";

const CHMOD_BITS = 0o7777;

export const amRoot = typeof process.getuid === "function" && process.getuid() === 0;
const myGroups = new Set<number>(typeof process.getgroups === "function" ? process.getgroups() : []);

export function currentUmask(): number {
  const m = process.umask(0);
  process.umask(m);
  return m;
}

/** rsync.c dest_mode: the mode a file gets when permissions are not preserved. */
export function destMode(flistMode: number, statMode: number, dfltPerms: number, exists: boolean): number {
  if (exists) return (flistMode & ~CHMOD_BITS) | (statMode & CHMOD_BITS);
  return flistMode & (~CHMOD_BITS | dfltPerms);
}

export interface WantedOwner {
  uid: number | undefined;
  gid: number | undefined;
}

export function wantedOwner(f: FileEntry, opts: TransferOptions, owners: OwnerMap): WantedOwner {
  const uid = opts.owner && amRoot && f.uid !== undefined ? owners.uid(f.uid, f.userName) : undefined;
  let gid: number | undefined;
  if (opts.group && f.gid !== undefined) {
    const g = owners.gid(f.gid, f.groupName);
    if (amRoot || myGroups.has(g)) gid = g;
  }
  return { uid, gid };
}

/** generator.c itemize's attribute bits for an existing item versus the wanted entry. */
export function attrChanges(
  f: FileEntry,
  st: LocalStat,
  opts: TransferOptions,
  own: WantedOwner,
  mode: number,
  symlinkTimes: boolean,
): number {
  let iflags = 0;
  const link = isLink(f.mode);
  if (opts.times && (!link || symlinkTimes) && st.mtime !== f.mtime) {
    iflags |= ITEM_REPORT_TIME;
  }
  if (opts.perms && !link && (st.mode & CHMOD_BITS) !== (mode & CHMOD_BITS)) iflags |= ITEM_REPORT_PERMS;
  if (own.uid !== undefined && st.uid !== own.uid) iflags |= ITEM_REPORT_OWNER;
  if (own.gid !== undefined && st.gid !== own.gid) iflags |= ITEM_REPORT_GROUP;
  return iflags;
}

/** How this process sets file times. */
export interface TimeSetter {
  /** True when native/ loaded: times are set with utimensat/futimens. */
  native: boolean;
  /** The finest mtime step that is set exactly: 1 ns with the addon, 1000 ns through Node's fs. */
  resolutionNs: 1 | 1000;
  /** Why the addon is not used (empty when it is). */
  reason: string;
}

const nativeTimes = nativeAddon.addon;

export const timeSetter: TimeSetter = Object.freeze({
  native: nativeTimes !== null,
  resolutionNs: nativeTimes ? 1 : 1000,
  reason: nativeAddon.reason,
});

function checkTime(sec: number, nsec: number): void {
  if (!Number.isSafeInteger(sec) || !Number.isInteger(nsec) || nsec < 0 || nsec > 999_999_999) {
    throw new RangeError(`file time out of range: ${sec}.${nsec}`);
  }
}

/**
 * utimes argument for seconds + nanoseconds when Node's fs sets the time (no addon): fs keeps
 * microseconds (libuv truncates) and turns a negative *number* into "now", but takes a numeric
 * string as it is: so a string, aimed at the middle of the wanted microsecond to survive the
 * double's rounding.
 */
function timeArg(sec: number, nsec: number): string {
  if (nsec === 0) return String(sec);
  // libuv keeps whole microseconds, truncating toward zero: aim half a microsecond away from it.
  const usec = sec * 1e6 + Math.floor(nsec / 1000);
  return String((usec + (usec >= 0 ? 0.5 : -0.5)) / 1e6);
}

/**
 * Set a path's mtime to (sec, nsec) and its atime to now; `nofollow` sets a symlink's own
 * times (rsync.c set_file_attrs via syscall.c do_utimensat / do_lutimes). Exact to the
 * nanosecond with the addon, else to the microsecond.
 */
export function setPathMtime(p: string, nofollow: boolean, sec: number, nsec: number): void {
  checkTime(sec, nsec);
  if (nativeTimes) {
    const e = nativeTimes.utimensat(p, nofollow, 0, nativeTimes.UTIME_NOW, sec, nsec);
    if (e !== 0) throw errnoError(e, nofollow ? "lutime" : "utime", p);
    return;
  }
  const now = Date.now() / 1000;
  const m = timeArg(sec, nsec);
  if (nofollow) fs.lutimesSync(p, now, m);
  else fs.utimesSync(p, now, m);
}

/** setPathMtime for an open file (futimens). */
export function setFdMtime(fd: number, sec: number, nsec: number): void {
  checkTime(sec, nsec);
  if (nativeTimes) {
    const e = nativeTimes.futimens(fd, 0, nativeTimes.UTIME_NOW, sec, nsec);
    if (e !== 0) throw errnoError(e, "futime");
    return;
  }
  fs.futimesSync(fd, Date.now() / 1000, timeArg(sec, nsec));
}

export interface AttrTarget {
  chown(uid: number, gid: number): void;
  chmod(mode: number): void;
  /** Set the mtime (the atime becomes now). */
  setMtime(sec: number, nsec: number): void;
}

export function pathTarget(p: string, link: boolean): AttrTarget {
  return {
    chown: (u, g) => (link ? fs.lchownSync(p, u, g) : fs.chownSync(p, u, g)),
    chmod: (m) => {
      if (!link) fs.chmodSync(p, m);
    },
    setMtime: (sec, nsec) => setPathMtime(p, link, sec, nsec),
  };
}

export function fdTarget(fd: number): AttrTarget {
  return {
    chown: (u, g) => fs.fchownSync(fd, u, g),
    chmod: (m) => fs.fchmodSync(fd, m),
    setMtime: (sec, nsec) => setFdMtime(fd, sec, nsec),
  };
}

export interface SetAttrsWanted {
  own: WantedOwner;
  /** Permission bits to set, or undefined to leave them. */
  mode: number | undefined;
  /** Set mtime (seconds, nsec), or undefined to leave it. */
  mtime: { sec: number; nsec: number } | undefined;
}

/**
 * rsync.c set_file_attrs: owner first (chown may clear set-id bits), then permissions, then
 * times. `st` is the item's current state; only what differs is changed. With `accurate`
 * the nanoseconds count too (after a transfer or a checksum match), else whole seconds.
 */
export function setAttrs(t: AttrTarget, st: LocalStat | null, w: SetAttrsWanted, accurate: boolean): void {
  const uid = w.own.uid;
  const gid = w.own.gid;
  const chown = (uid !== undefined && st?.uid !== uid) || (gid !== undefined && st?.gid !== gid);
  if (chown) t.chown(uid ?? st?.uid ?? -1, gid ?? st?.gid ?? -1);
  // chown clears the set-id bits: permissions go on after it.
  if (w.mode !== undefined && (!st || chown || (st.mode & CHMOD_BITS) !== (w.mode & CHMOD_BITS))) {
    t.chmod(w.mode & CHMOD_BITS);
  }
  if (w.mtime) {
    const { sec, nsec } = w.mtime;
    // rsync.c same_mtime: accurate compares the nanoseconds, here as far as they can be set.
    const res = timeSetter.resolutionNs;
    const same = st !== null && st.mtime === sec && (!accurate || Math.floor(nsec / res) === Math.floor(st.mtimeNsec / res));
    if (!same) t.setMtime(sec, nsec);
  }
}

export function wantedMode(f: FileEntry, opts: TransferOptions, st: LocalStat | null, dfltPerms: number): number | undefined {
  if (isLink(f.mode)) return undefined;
  if (opts.perms) return f.mode & CHMOD_BITS;
  if (st) return undefined; // existing item keeps its permissions
  if (isDir(f.mode)) return destMode(f.mode, 0, dfltPerms, false) & CHMOD_BITS;
  return destMode(f.mode, 0, dfltPerms, false) & CHMOD_BITS;
}
