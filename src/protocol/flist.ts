// The file list on the wire (flist.c send_file_entry / recv_file_entry and the loops of
// send_file_list / recv_file_list), protocols 27-32.
//
// Both codecs carry rsync's cross-entry compression state (previous name, mode, mtime, uid, gid,
// rdev, dev): it lives for the whole transfer, across the incremental-recursion sub-lists, so one
// encoder / decoder serves every list of a connection (call beginList() for each sub-list).
//
// Wire order is the sender's walk order. The receiver keeps the entries, then sorts them
// (flist-sort.ts); file indices (ndx) exchanged afterwards are positions in the SORTED list plus
// the list's ndx_start. The one exception is the hard-link reference of protocol >= 30, which is
// a position in WIRE order plus ndx_start (send_file_entry is handed flist->used).
//
// Not supported (the caller must not negotiate them): --acls, --xattrs, --atimes, --crtimes,
// --iconv, --copy-devices, --sanitize-paths; filter checks of received names are the caller's.
import { RERR_MALLOC, RERR_PROTOCOL, RERR_UNSUPPORTED } from "./errcode.js";
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
  S_IFMT,
  S_IFREG,
  S_IFSOCK,
  isDevice,
  isDir,
  isLink,
  isReg,
  isSpecial,
  type FileEntry,
} from "./fileentry.js";
import { MAXPATHLEN, checkReceivedName, decodeLossy, encodeUtf8, showName } from "./flist-names.js";
import { Cursor, NeedMore, ProtocolError, Writer } from "./wire.js";
import { CF_INC_RECURSE, CF_SAFE_FLIST, CF_VARINT_FLIST_FLAGS } from "./handshake.js";

// rsync.h XMIT_* (the wire bits of an entry's flags)
export const XMIT_TOP_DIR = 1 << 0;
export const XMIT_SAME_MODE = 1 << 1;
export const XMIT_SAME_RDEV_pre28 = 1 << 2; // protocol 27
export const XMIT_EXTENDED_FLAGS = 1 << 2; // protocol >= 28
export const XMIT_SAME_UID = 1 << 3;
export const XMIT_SAME_GID = 1 << 4;
export const XMIT_SAME_NAME = 1 << 5;
export const XMIT_LONG_NAME = 1 << 6;
export const XMIT_SAME_TIME = 1 << 7;
export const XMIT_SAME_RDEV_MAJOR = 1 << 8; // devices, protocol >= 28
export const XMIT_NO_CONTENT_DIR = 1 << 8; // dirs, protocol >= 30
export const XMIT_HLINKED = 1 << 9; // non-dirs, protocol >= 28
export const XMIT_SAME_DEV_pre30 = 1 << 10; // protocol 28-29
export const XMIT_USER_NAME_FOLLOWS = 1 << 10; // protocol >= 30
export const XMIT_RDEV_MINOR_8_pre30 = 1 << 11; // protocol 28-29
export const XMIT_GROUP_NAME_FOLLOWS = 1 << 11; // protocol >= 30
export const XMIT_HLINK_FIRST = 1 << 12; // protocol >= 30, with XMIT_HLINKED
export const XMIT_IO_ERROR_ENDLIST = 1 << 12; // end marker (safe flist), with XMIT_EXTENDED_FLAGS
export const XMIT_MOD_NSEC = 1 << 13; // protocol >= 31

// compat.c CF_* flags are owned by handshake.ts; the file list reads several of them.
export {
  CF_INC_RECURSE,
  CF_SYMLINK_TIMES,
  CF_SYMLINK_ICONV,
  CF_SAFE_FLIST,
  CF_AVOID_XATTR_OPTIM,
  CF_CHKSUM_SEED_FIX,
  CF_INPLACE_PARTIAL_DIR,
  CF_VARINT_FLIST_FLAGS,
  CF_ID0_NAMES,
} from "./handshake.js";

// rsync.h IOERR_*
export const IOERR_GENERAL = 1 << 0;
export const IOERR_VANISHED = 1 << 1;
export const IOERR_DEL_LIMIT = 1 << 2;
export const IOERR_VALID_MASK = IOERR_GENERAL | IOERR_VANISHED | IOERR_DEL_LIMIT;

/** rsync.h MAX_WIRE_NSEC */
const MAX_WIRE_NSEC = 999_999_999;

export interface FlistContext {
  protocol: number;
  /** compat_flags (CF_*) as negotiated; ignored below protocol 30. */
  compatFlags: number;
  /** -r: below protocol 30 the receiver infers FLAG_CONTENT_DIR from it (flist.c in_del_hier). */
  recursive: boolean;
  preserveUid: boolean; // -o
  preserveGid: boolean; // -g
  preserveLinks: boolean; // -l
  preserveDevices: boolean; // --devices
  preserveSpecials: boolean; // --specials
  preserveHardLinks: boolean; // -H
  alwaysChecksum: boolean; // -c
  /** flist_csum_len: the file-sum digest length (md4/md5/xxh128 16, xxh64/xxh3 8, sha1 20). */
  checksumLength: number;
  /** --numeric-ids: the sender sends no names (encoder). */
  numericIds?: boolean;
  /** -R: names may start with one '/' (stripped after sorting, see sortAndCleanFileList). */
  relativePaths?: boolean;
  /** --delete-missing-args: a mode-0 entry is allowed (a missing arg). */
  deleteMissingArgs?: boolean;
  /** The first list's ndx_start: 1 with inc-recursion, else 0 (flist.c flist_new). */
  ndxStart: number;
}

export interface FlistEnd {
  end: true;
  /** io_error carried by the end marker (masked with IOERR_VALID_MASK); 0 when none. */
  ioError: number;
}

export const flistIncRecurse = (ctx: Pick<FlistContext, "protocol" | "compatFlags">): boolean =>
  ctx.protocol >= 30 && (ctx.compatFlags & CF_INC_RECURSE) !== 0;
/** flist.c xfer_flags_as_varint */
export const flistVarintFlags = (ctx: Pick<FlistContext, "protocol" | "compatFlags">): boolean =>
  ctx.protocol >= 30 && (ctx.compatFlags & CF_VARINT_FLIST_FLAGS) !== 0;
/** compat.c use_safe_inc_flist: the end marker may carry io_error. */
export const flistSafe = (ctx: Pick<FlistContext, "protocol" | "compatFlags">): boolean =>
  ctx.protocol >= 31 || (ctx.protocol >= 30 && (ctx.compatFlags & CF_SAFE_FLIST) !== 0);

// Protocol 27 sends rdev as one int32 dev_t: the Linux/glibc encoding (sysmacros.h).
export function makedev(major: number, minor: number): number {
  return (((major & 0xfff) << 8) | (minor & 0xff) | ((minor & 0xfff00) << 12)) >>> 0;
}
export function devMajor(dev: number): number {
  return (dev >>> 8) & 0xfff;
}
export function devMinor(dev: number): number {
  return ((dev & 0xff) | ((dev >>> 12) & 0xfff00)) >>> 0;
}

const VALID_TYPES = new Set([S_IFREG, S_IFDIR, S_IFLNK, S_IFCHR, S_IFBLK, S_IFIFO, S_IFSOCK]);

/** recv_file_list: an entry's directory part (with -R, less one leading '/'). */
function dirPart(raw: Uint8Array, relativePaths: boolean): Uint8Array {
  const slash = raw.lastIndexOf(0x2f);
  if (slash < 0) return raw.subarray(0, 0);
  const start = relativePaths && slash > 0 && raw[0] === 0x2f ? 1 : 0;
  return raw.subarray(start, slash);
}

export class FileListDecoder {
  private readonly ctx: FlistContext;
  private readonly varintFlags: boolean;
  private readonly incRecurse: boolean;
  private readonly safe: boolean;

  // recv_file_entry's statics: they persist across every list of the transfer.
  private lastname: Uint8Array = new Uint8Array(0);
  private modtime = 0;
  private mode = 0;
  private uid = 0;
  private gid = 0;
  private rdev27 = 0; // protocol 27: whole dev_t
  private rdevMajor = 0;
  private devWire = 1; // protocol 28-29: dev + 1 as sent (starts at dev 0's value)
  private inDelHier = false; // protocol < 30 content-dir inference
  private delHierNameLen = 0;
  /** Wire ndx of every member sent with XMIT_HLINK_FIRST (protocol >= 30). */
  private readonly hlinkFirsts = new Set<number>();

  // The list being received.
  private ndxStart: number;
  private parentDir: Uint8Array = new Uint8Array(0);
  private list: FileEntry[] = [];
  private ended = false;

  /** Owner names learned from the wire (inline names with inc-recursion), sender's ids. */
  readonly userNames = new Map<number, string>();
  readonly groupNames = new Map<number, string>();

  constructor(ctx: FlistContext) {
    this.ctx = ctx;
    this.varintFlags = flistVarintFlags(ctx);
    this.incRecurse = flistIncRecurse(ctx);
    this.safe = flistSafe(ctx);
    this.ndxStart = ctx.ndxStart;
  }

  /**
   * Start the next (inc-recursion) sub-list. `parentDir` is the name, as sorted and stripped, of
   * the directory this list holds the contents of ("" for the first list); with inc-recursion
   * every entry must lie directly in it (flist.c recv_file_list "invalid path from sender").
   */
  beginList(ndxStart: number, parentDir = ""): void {
    this.ndxStart = ndxStart;
    this.parentDir = encodeUtf8(parentDir);
    this.list = [];
    this.ended = false;
  }

  /** Entries of the current list received so far, in wire order. */
  get entries(): readonly FileEntry[] {
    return this.list;
  }

  /**
   * Decode the next entry, or the list's end marker. Restartable: on NeedMore the cursor is put
   * back and no state has changed.
   */
  decode(c: Cursor): FileEntry | FlistEnd {
    if (this.ended) throw new Error("FileListDecoder: list already ended; call beginList()");
    const start = c.pos;
    try {
      return this.decodeOne(c);
    } catch (e) {
      if (e instanceof NeedMore) c.pos = start;
      throw e;
    }
  }

  private endList(err: number): FlistEnd {
    this.ended = true;
    return { end: true, ioError: err & IOERR_VALID_MASK };
  }

  private decodeOne(c: Cursor): FileEntry | FlistEnd {
    const ctx = this.ctx;
    const p = ctx.protocol;

    // recv_file_list: the flags, or the end marker.
    let xflags: number;
    if (this.varintFlags) {
      xflags = c.varint();
      if (xflags === 0) return this.endList(c.varint());
    } else {
      xflags = c.byte();
      if (xflags === 0) return this.endList(0);
      if (p >= 28 && xflags & XMIT_EXTENDED_FLAGS) xflags |= c.byte() << 8;
      if (xflags === (XMIT_EXTENDED_FLAGS | XMIT_IO_ERROR_ENDLIST)) {
        if (!this.safe) throw new ProtocolError(`Invalid flist flag: ${xflags.toString(16)}`, RERR_PROTOCOL);
        return this.endList(c.varint());
      }
    }

    // The name: a prefix shared with the previous name, then the rest.
    const l1 = xflags & XMIT_SAME_NAME ? c.byte() : 0;
    const l2 = xflags & XMIT_LONG_NAME ? c.varint30(p) : c.byte();
    if (l1 > this.lastname.length) {
      throw new ProtocolError(
        `file list: shared name prefix ${l1} is longer than the previous name (${this.lastname.length})`,
        RERR_PROTOCOL,
      );
    }
    if (l2 < 0 || l2 >= MAXPATHLEN - l1) {
      throw new ProtocolError(`overflow: file list name length l1=${l1} l2=${l2} (max ${MAXPATHLEN - 1})`, RERR_MALLOC);
    }
    const raw = new Uint8Array(l1 + l2);
    raw.set(this.lastname.subarray(0, l1), 0);
    raw.set(c.bytes(l2), l1);
    const name = checkReceivedName(raw, ctx.relativePaths === true);

    let modtime = this.modtime;
    let mode = this.mode;
    let uid = this.uid;
    let gid = this.gid;
    let rdev27 = this.rdev27;
    let rdevMajor = this.rdevMajor;
    let devWire = this.devWire;
    let size: number;
    let nsec = 0;
    let userName: string | undefined;
    let groupName: string | undefined;
    let newUserName: string | undefined;
    let newGroupName: string | undefined;
    let rdevMinor = 0;
    let linkTarget: Uint8Array | undefined;
    let checksum: Uint8Array | undefined;
    let hlinkFirstNdx: number | undefined;
    let hlinkDev: number | undefined;
    let hlinkIno: number | undefined;
    const ndx = this.ndxStart + this.list.length;

    // Protocol >= 30: a non-first hard-link member names the first one (wire-order ndx); if
    // that is in this list, nothing else of the entry is sent.
    let first: FileEntry | undefined;
    let firstHlinkNdx = -1;
    if (p >= 30 && xflags & XMIT_HLINKED && !(xflags & XMIT_HLINK_FIRST)) {
      firstHlinkNdx = c.varint();
      if (firstHlinkNdx < 0 || firstHlinkNdx >= ndx) {
        throw new ProtocolError(`hard-link reference out of range: ${firstHlinkNdx} (${ndx})`, RERR_PROTOCOL);
      }
      if (!this.hlinkFirsts.has(firstHlinkNdx)) {
        throw new ProtocolError(`hard-link reference ${firstHlinkNdx} is not a group's first member`, RERR_PROTOCOL);
      }
      if (firstHlinkNdx >= this.ndxStart) first = this.list[firstHlinkNdx - this.ndxStart]!;
    }

    if (first) {
      size = first.size;
      modtime = first.mtime;
      nsec = first.mtimeNsec;
      mode = first.mode;
      if (ctx.preserveUid) {
        uid = first.uid ?? 0;
        userName = first.userName;
      }
      if (ctx.preserveGid) {
        gid = first.gid ?? 0;
        groupName = first.groupName;
      }
      if (isDevice(mode)) {
        rdevMajor = ctx.preserveDevices ? first.rdevMajor ?? 0 : rdevMajor;
        rdevMinor = first.rdevMinor ?? 0;
      }
      if (isLink(mode)) linkTarget = first.linkTarget;
      if (ctx.alwaysChecksum && isReg(mode)) checksum = first.checksum;
    } else {
      size = c.varlong30(p, 3);
      if (!(xflags & XMIT_SAME_TIME)) modtime = p >= 30 ? c.varlong(4) : c.uint32();
      if (xflags & XMIT_MOD_NSEC) {
        nsec = c.varint();
        if (nsec < 0 || nsec > MAX_WIRE_NSEC) {
          throw new ProtocolError(`wire value modtime_nsec out of range: ${nsec} not in [0,${MAX_WIRE_NSEC}]`, RERR_PROTOCOL);
        }
      }
      if (!(xflags & XMIT_SAME_MODE)) mode = c.int32() >>> 0;
      this.checkMode(mode, raw);

      if (ctx.preserveUid && !(xflags & XMIT_SAME_UID)) {
        uid = (p < 30 ? c.int32() : c.varint()) >>> 0;
        if (p >= 30 && xflags & XMIT_USER_NAME_FOLLOWS) {
          const len = c.byte();
          if (len > 0) newUserName = decodeLossy(c.bytes(len));
        }
      }
      if (ctx.preserveGid && !(xflags & XMIT_SAME_GID)) {
        gid = (p < 30 ? c.int32() : c.varint()) >>> 0;
        if (p >= 30 && xflags & XMIT_GROUP_NAME_FOLLOWS) {
          const len = c.byte();
          if (len > 0) newGroupName = decodeLossy(c.bytes(len));
        }
      }

      const dev = isDevice(mode);
      if ((ctx.preserveDevices && dev) || (ctx.preserveSpecials && isSpecial(mode) && p < 31)) {
        if (p < 28) {
          if (!(xflags & XMIT_SAME_RDEV_pre28)) rdev27 = c.int32() >>> 0;
          rdevMinor = devMinor(rdev27);
          if (dev) rdevMajor = devMajor(rdev27);
        } else {
          if (!(xflags & XMIT_SAME_RDEV_MAJOR)) rdevMajor = c.varint30(p) >>> 0;
          if (p >= 30) rdevMinor = c.varint() >>> 0;
          else rdevMinor = xflags & XMIT_RDEV_MINOR_8_pre30 ? c.byte() : c.int32() >>> 0;
        }
        size = 0;
      } else if (dev) {
        // A device while not preserving devices: no rdev on the wire, zeroed.
        size = 0;
      } else if (p < 28) {
        rdev27 = 0;
      }

      if (isLink(mode)) {
        if (ctx.preserveLinks) {
          const len = c.varint30(p);
          if (len < 0 || len + 1 > MAXPATHLEN) {
            throw new ProtocolError(`overflow: linkname_len=${len} for ${showName(raw)}`, RERR_MALLOC);
          }
          const t = c.bytes(len);
          if (t.includes(0)) throw new ProtocolError(`symlink target with a NUL byte: ${showName(raw)}`, RERR_PROTOCOL);
          linkTarget = t.slice();
        } else {
          linkTarget = new Uint8Array(0);
        }
      }
    }

    let flags = 0;
    const hlinked = ctx.preserveHardLinks && ((xflags & XMIT_HLINKED) !== 0 || (p < 28 && isReg(mode)));
    if (hlinked) {
      if (p >= 30) {
        hlinkFirstNdx = xflags & XMIT_HLINK_FIRST ? ndx : firstHlinkNdx;
      } else {
        if (!(xflags & XMIT_SAME_DEV_pre30)) devWire = c.longint();
        hlinkIno = c.longint();
        hlinkDev = devWire - 1;
      }
      if (!isDir(mode)) flags |= FLAG_HLINKED;
    }

    if (!first && ctx.alwaysChecksum && (isReg(mode) || p < 28)) {
      const sum = c.bytes(ctx.checksumLength);
      if (isReg(mode)) checksum = sum.slice();
    }

    // --- everything has been read: validate, then commit ---
    if (size < 0) throw new ProtocolError("Offset underflow: file-length is negative", RERR_UNSUPPORTED);
    const rootName = (raw.length === 1 && raw[0] === 0x2e) || (raw.length === 2 && raw[0] === 0x2f && raw[1] === 0x2e);
    if (rootName && !isDir(mode)) {
      throw new ProtocolError(`ERROR: rejecting non-directory transfer-root entry: ${name}`, RERR_PROTOCOL);
    }
    if (this.incRecurse) {
      const d = dirPart(raw, ctx.relativePaths === true);
      if (!bytesEqual(d, this.parentDir)) {
        throw new ProtocolError(`ABORTING due to invalid path from sender: ${name}`, RERR_UNSUPPORTED);
      }
    }

    let inDelHier = this.inDelHier;
    let delHierNameLen = this.delHierNameLen;
    if (isDir(mode)) {
      if (p >= 30) {
        if (!(xflags & XMIT_NO_CONTENT_DIR)) {
          if (xflags & XMIT_TOP_DIR) flags |= FLAG_TOP_DIR;
          flags |= FLAG_CONTENT_DIR;
        } else if (xflags & XMIT_TOP_DIR) {
          flags |= FLAG_IMPLIED_DIR;
        }
      } else if (xflags & XMIT_TOP_DIR) {
        // recv_file_entry: a top dir starts a "delete hierarchy"; dirs below it are content dirs.
        inDelHier = ctx.recursive;
        delHierNameLen = rootName ? 0 : raw.length;
        flags |= FLAG_TOP_DIR | FLAG_CONTENT_DIR;
      } else if (inDelHier) {
        if (
          !ctx.relativePaths ||
          delHierNameLen === 0 ||
          (l1 >= delHierNameLen && raw[delHierNameLen] === 0x2f)
        ) {
          flags |= FLAG_CONTENT_DIR;
        } else {
          inDelHier = false;
        }
      }
    }
    if (nsec !== 0) flags |= FLAG_MOD_NSEC;

    const entry: FileEntry = { name, mode, size, mtime: modtime, mtimeNsec: nsec, flags };
    if (ctx.preserveUid) {
      entry.uid = uid;
      const un = newUserName ?? userName ?? this.userNames.get(uid);
      if (un !== undefined) entry.userName = un;
    }
    if (ctx.preserveGid) {
      entry.gid = gid;
      const gn = newGroupName ?? groupName ?? this.groupNames.get(gid);
      if (gn !== undefined) entry.groupName = gn;
    }
    if (isDevice(mode)) {
      entry.rdevMajor = ctx.preserveDevices ? rdevMajor : 0;
      entry.rdevMinor = ctx.preserveDevices ? rdevMinor : 0;
    }
    if (linkTarget !== undefined) entry.linkTarget = linkTarget;
    if (checksum !== undefined) entry.checksum = checksum;
    if (hlinkFirstNdx !== undefined) entry.hlinkFirstNdx = hlinkFirstNdx;
    if (hlinkDev !== undefined) entry.hlinkDev = hlinkDev;
    if (hlinkIno !== undefined) entry.hlinkIno = hlinkIno;

    this.lastname = raw;
    this.modtime = modtime;
    this.mode = mode;
    this.uid = uid;
    this.gid = gid;
    this.rdev27 = rdev27;
    this.rdevMajor = rdevMajor;
    this.devWire = devWire;
    this.inDelHier = inDelHier;
    this.delHierNameLen = delHierNameLen;
    if (p >= 30 && xflags & XMIT_HLINKED && xflags & XMIT_HLINK_FIRST && !isDir(mode)) this.hlinkFirsts.add(ndx);
    if (newUserName !== undefined) this.userNames.set(uid, newUserName);
    if (newGroupName !== undefined) this.groupNames.set(gid, newGroupName);
    this.list.push(entry);
    return entry;
  }

  private checkMode(mode: number, raw: Uint8Array): void {
    if (mode === 0 && this.ctx.deleteMissingArgs) return;
    if (mode > 0o177777 || !VALID_TYPES.has(mode & S_IFMT)) {
      throw new ProtocolError(`invalid file mode 0${mode.toString(8)} for ${showName(raw)}`, RERR_PROTOCOL);
    }
  }
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** An owner id the encoder has met, with the name it had (rsync's uidlist/gidlist). */
export interface IdName {
  id: number;
  name?: string;
}

export class FileListEncoder {
  private readonly ctx: FlistContext;
  private readonly varintFlags: boolean;
  private readonly incRecurse: boolean;
  private readonly safe: boolean;

  // send_file_entry's statics (live for the whole transfer).
  private lastname: Uint8Array = new Uint8Array(0);
  private modtime = 0;
  private mode = 0;
  private uid = 0;
  private gid = 0;
  private rdev27 = 0;
  private rdevMajor = 0;
  private dev = 0;
  /** hlink.c idev_find: dev/ino -> wire ndx of the first member sent (protocol >= 30). */
  private readonly idev = new Map<string, number>();
  private readonly uidSeen = new Set<number>();
  private readonly gidSeen = new Set<number>();
  private readonly uidOrder: IdName[] = [];
  private readonly gidOrder: IdName[] = [];

  private ndxStart: number;
  private used = 0;

  constructor(ctx: FlistContext) {
    this.ctx = ctx;
    this.varintFlags = flistVarintFlags(ctx);
    this.incRecurse = flistIncRecurse(ctx);
    this.safe = flistSafe(ctx);
    this.ndxStart = ctx.ndxStart;
  }

  /** Start the next inc-recursion sub-list (its ndx_start = previous start + count + 1). */
  beginList(ndxStart: number): void {
    this.ndxStart = ndxStart;
    this.used = 0;
  }

  /** Entries encoded into the current list. */
  get count(): number {
    return this.used;
  }

  /** Owners met so far, in first-met order (for the id lists sent without inc-recursion). */
  get users(): readonly IdName[] {
    return this.uidOrder;
  }
  get groups(): readonly IdName[] {
    return this.gidOrder;
  }

  /** uidlist.c add_uid: the name to send the first time an id is met, else undefined. */
  private addId(seen: Set<number>, order: IdName[], id: number, name: string | undefined): string | undefined {
    if (seen.has(id)) return undefined;
    seen.add(id);
    const n = name !== undefined && name !== "" ? name : undefined;
    order.push(n !== undefined ? { id, name: n } : { id });
    return n;
  }

  /** flist.c send_file_entry */
  encode(entry: FileEntry, out: Writer): void {
    const ctx = this.ctx;
    const p = ctx.protocol;
    const mode = entry.mode;
    const dir = isDir(mode);
    const dev = isDevice(mode);
    const special = isSpecial(mode);
    const ndx = this.ndxStart + this.used;
    const nameBytes = encodeUtf8(entry.name);
    if (nameBytes.length === 0 || nameBytes.length >= MAXPATHLEN) {
      throw new Error(`file list: name length ${nameBytes.length} not in [1, ${MAXPATHLEN - 1}]: ${entry.name}`);
    }
    if (ctx.alwaysChecksum && isReg(mode) && entry.checksum?.length !== ctx.checksumLength) {
      throw new Error(`file list: ${entry.name} needs a ${ctx.checksumLength}-byte checksum with --checksum`);
    }

    let xflags = 0;
    if (dir) {
      if (p >= 30) {
        if (entry.flags & FLAG_CONTENT_DIR) xflags = entry.flags & FLAG_TOP_DIR;
        else if (entry.flags & FLAG_IMPLIED_DIR) xflags = XMIT_TOP_DIR | XMIT_NO_CONTENT_DIR;
        else xflags = XMIT_NO_CONTENT_DIR;
      } else {
        xflags = entry.flags & FLAG_TOP_DIR; // FLAG_TOP_DIR == XMIT_TOP_DIR
      }
    }

    if (mode === this.mode) xflags |= XMIT_SAME_MODE;
    else this.mode = mode;

    // rdev: (major, minor) to send for devices and (before 31) specials.
    let sendMajor = 0;
    let sendMinor = 0;
    if (ctx.preserveDevices && dev) {
      const major = entry.rdevMajor ?? 0;
      const minor = entry.rdevMinor ?? 0;
      if (p < 28) {
        const r = makedev(major, minor);
        if (r === this.rdev27) xflags |= XMIT_SAME_RDEV_pre28;
        else this.rdev27 = r;
      } else {
        if (major === this.rdevMajor) xflags |= XMIT_SAME_RDEV_MAJOR;
        else this.rdevMajor = major;
        if (p < 30 && minor <= 0xff) xflags |= XMIT_RDEV_MINOR_8_pre30;
      }
      sendMajor = major;
      sendMinor = minor;
    } else if (ctx.preserveSpecials && special && p < 31) {
      // Specials need no rdev: make the historical value cheap (the previous major, minor 0).
      if (p < 28) {
        xflags |= XMIT_SAME_RDEV_pre28;
      } else {
        xflags |= XMIT_SAME_RDEV_MAJOR;
        if (p < 30) xflags |= XMIT_RDEV_MINOR_8_pre30;
      }
      sendMajor = this.rdevMajor;
    } else if (p < 28) {
      this.rdev27 = 0;
    }

    const entryUid = entry.uid ?? 0;
    const entryGid = entry.gid ?? 0;
    let userName: string | undefined;
    let groupName: string | undefined;
    if (!ctx.preserveUid || (entryUid === this.uid && this.lastname.length > 0)) {
      xflags |= XMIT_SAME_UID;
    } else {
      this.uid = entryUid;
      if (!ctx.numericIds) {
        userName = this.addId(this.uidSeen, this.uidOrder, entryUid, entry.userName);
        if (this.incRecurse && userName !== undefined) xflags |= XMIT_USER_NAME_FOLLOWS;
      }
    }
    if (!ctx.preserveGid || (entryGid === this.gid && this.lastname.length > 0)) {
      xflags |= XMIT_SAME_GID;
    } else {
      this.gid = entryGid;
      if (!ctx.numericIds) {
        groupName = this.addId(this.gidSeen, this.gidOrder, entryGid, entry.groupName);
        if (this.incRecurse && groupName !== undefined) xflags |= XMIT_GROUP_NAME_FOLLOWS;
      }
    }

    if (entry.mtime === this.modtime) xflags |= XMIT_SAME_TIME;
    else this.modtime = entry.mtime;
    if (entry.mtimeNsec !== 0 && p >= 31) xflags |= XMIT_MOD_NSEC;

    let firstHlinkNdx = -1;
    const hlinked = ctx.preserveHardLinks && entry.hlinkDev !== undefined;
    if (hlinked) {
      const hdev = entry.hlinkDev!;
      if (p >= 30) {
        const key = `${hdev}:${entry.hlinkIno ?? 0}`;
        const f = this.idev.get(key);
        if (f === undefined) {
          this.idev.set(key, ndx);
          xflags |= XMIT_HLINK_FIRST;
        } else {
          firstHlinkNdx = f;
        }
      } else if (hdev === this.dev) {
        if (p >= 28) xflags |= XMIT_SAME_DEV_pre30;
      } else {
        this.dev = hdev;
      }
      xflags |= XMIT_HLINKED;
    }

    const last = this.lastname;
    let l1 = 0;
    while (l1 < last.length && l1 < nameBytes.length && nameBytes[l1] === last[l1] && l1 < 255) l1++;
    const l2 = nameBytes.length - l1;
    if (l1 > 0) xflags |= XMIT_SAME_NAME;
    if (l2 > 255) xflags |= XMIT_LONG_NAME;

    // A flags value of 0 (or a first byte of 0) would read as the end of the list; XMIT_TOP_DIR
    // means nothing on a non-dir, so it is the filler.
    if (this.varintFlags) {
      out.varint(xflags !== 0 ? xflags : XMIT_EXTENDED_FLAGS);
    } else if (p >= 28) {
      if (xflags === 0 && !dir) xflags |= XMIT_TOP_DIR;
      if (xflags & 0xff00 || xflags === 0) {
        xflags |= XMIT_EXTENDED_FLAGS;
        out.int16(xflags);
      } else {
        out.byte(xflags);
      }
    } else {
      if (!(xflags & 0xff)) xflags |= dir ? XMIT_LONG_NAME : XMIT_TOP_DIR;
      out.byte(xflags);
    }
    if (xflags & XMIT_SAME_NAME) out.byte(l1);
    if (xflags & XMIT_LONG_NAME) out.varint30(l2, p);
    else out.byte(l2);
    out.bytes(nameBytes.subarray(l1));

    this.lastname = nameBytes;
    this.used++;

    if (firstHlinkNdx >= 0) {
      out.varint(firstHlinkNdx);
      if (firstHlinkNdx >= this.ndxStart) return; // the receiver copies the rest from the first
    }

    out.varlong30(dev || special ? 0 : entry.size, p, 3);
    if (!(xflags & XMIT_SAME_TIME)) {
      if (p >= 30) out.varlong(entry.mtime, 4);
      else out.int32(entry.mtime | 0);
    }
    if (xflags & XMIT_MOD_NSEC) out.varint(entry.mtimeNsec);
    if (!(xflags & XMIT_SAME_MODE)) out.int32(mode);
    if (ctx.preserveUid && !(xflags & XMIT_SAME_UID)) {
      if (p < 30) out.int32(entryUid);
      else {
        out.varint(entryUid);
        if (xflags & XMIT_USER_NAME_FOLLOWS) writeName(out, userName!);
      }
    }
    if (ctx.preserveGid && !(xflags & XMIT_SAME_GID)) {
      if (p < 30) out.int32(entryGid);
      else {
        out.varint(entryGid);
        if (xflags & XMIT_GROUP_NAME_FOLLOWS) writeName(out, groupName!);
      }
    }
    if ((ctx.preserveDevices && dev) || (ctx.preserveSpecials && special && p < 31)) {
      if (p < 28) {
        if (!(xflags & XMIT_SAME_RDEV_pre28)) out.int32(this.rdev27);
      } else {
        if (!(xflags & XMIT_SAME_RDEV_MAJOR)) out.varint30(sendMajor, p);
        if (p >= 30) out.varint(sendMinor);
        else if (xflags & XMIT_RDEV_MINOR_8_pre30) out.byte(sendMinor);
        else out.int32(sendMinor);
      }
    }
    if (ctx.preserveLinks && isLink(mode)) {
      const t = entry.linkTarget ?? new Uint8Array(0);
      out.varint30(t.length, p);
      out.bytes(t);
    }
    if (hlinked && p < 30) {
      // Older protocols send dev + 1 so that it is never 0.
      if (!(xflags & XMIT_SAME_DEV_pre30)) out.longint(this.dev + 1);
      out.longint(entry.hlinkIno ?? 0);
    }
    if (ctx.alwaysChecksum && (isReg(mode) || p < 28)) {
      if (isReg(mode)) {
        out.bytes(entry.checksum!);
      } else {
        out.bytes(new Uint8Array(ctx.checksumLength)); // before 28: a useless set of nulls
      }
    }
  }

  /** flist.c write_end_of_flist: the end marker, carrying io_error when the peer allows it. */
  end(out: Writer, ioError: number): void {
    const send = ioError !== 0 && this.safe;
    if (this.varintFlags) {
      out.varint(0);
      out.varint(send ? ioError : 0);
    } else if (send) {
      out.int16(XMIT_EXTENDED_FLAGS | XMIT_IO_ERROR_ENDLIST);
      out.varint(ioError);
    } else {
      out.byte(0);
    }
  }
}

function writeName(out: Writer, name: string): void {
  let b = encodeUtf8(name);
  if (b.length > 255) b = b.subarray(0, 255);
  out.byte(b.length);
  out.bytes(b);
}
