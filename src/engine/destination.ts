// The receiving side's view of the destination tree. Every name comes from an untrusted peer,
// so paths are resolved only below the destination root, never through a symlink: each parent
// directory is checked (or created by us) before anything is written in it. New content goes
// to a temp name in the target's directory and is renamed into place.
//
// Metadata calls are synchronous on purpose: one lstat/chmod/rename costs a few microseconds
// as a direct call but tens through the thread pool, and a transfer makes several per file.
import * as fs from "node:fs";
import { constants as C, type BigIntStats } from "node:fs";
import { execFileSync } from "node:child_process";
import { constants as osConstants } from "node:os";
import * as path from "node:path";
import { ProtocolError } from "../protocol/wire.js";
import { errnoError, nativeAddon } from "./native.js";

export class DestinationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DestinationError";
  }
}

/** What the receiving side needs of an lstat, with exact nanoseconds. */
export interface LocalStat {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  mtimeNsec: number;
  dev: bigint;
  ino: bigint;
  nlink: number;
  rdev: number;
}

export function localStat(st: BigIntStats): LocalStat {
  const ns = st.mtimeNs;
  let sec = ns / 1_000_000_000n;
  let nsec = ns % 1_000_000_000n;
  if (nsec < 0n) {
    nsec += 1_000_000_000n;
    sec -= 1n;
  }
  return {
    mode: Number(st.mode),
    uid: Number(st.uid),
    gid: Number(st.gid),
    size: Number(st.size),
    mtime: Number(sec),
    mtimeNsec: Number(nsec),
    dev: st.dev,
    ino: st.ino,
    nlink: Number(st.nlink),
    rdev: Number(st.rdev),
  };
}

const nativeStat = nativeAddon.addon?.stat?.bind(nativeAddon.addon);
const statOut = new Float64Array(13);
const big64 = (hi: number, lo: number): bigint => (hi === 0 ? BigInt(lo) : (BigInt(hi) << 32n) | BigInt(lo));

/**
 * lstat (or stat, following a symlink) of an absolute path as a LocalStat; throws Node's error
 * (ENOENT, ...). Through the addon when it is there (native/stat.c: no Stats object per call —
 * the walk and the generator stat every file), else fs with bigint times.
 */
export function statPath(abs: string, follow: boolean): LocalStat {
  const st = statOrErrno(abs, follow);
  if (typeof st === "number") throw errnoError(st, follow ? "stat" : "lstat", abs);
  return st;
}

/** statPath, with null where nothing is there (ENOENT, ENOTDIR) instead of an error. */
export function statPathOrNull(abs: string, follow: boolean): LocalStat | null {
  const st = statOrErrno(abs, follow);
  if (typeof st !== "number") return st;
  if (st === ENOENT || st === ENOTDIR) return null;
  throw errnoError(st, follow ? "stat" : "lstat", abs);
}

const { ENOENT, ENOTDIR } = osConstants.errno;

function statOrErrno(abs: string, follow: boolean): LocalStat | number {
  if (!nativeStat) {
    try {
      const st = follow ? fs.statSync(abs, { bigint: true, throwIfNoEntry: false }) : fs.lstatSync(abs, { bigint: true, throwIfNoEntry: false });
      return st ? localStat(st) : ENOENT;
    } catch (e) {
      const errno = (e as NodeJS.ErrnoException).errno;
      if (typeof errno !== "number") throw e;
      return -errno;
    }
  }
  const e = nativeStat(abs, follow, statOut);
  if (e !== 0) return e;
  const o = statOut;
  return {
    mode: o[0]!,
    uid: o[1]!,
    gid: o[2]!,
    size: o[3]!,
    mtime: o[4]!,
    mtimeNsec: o[5]!,
    dev: big64(o[6]!, o[7]!),
    ino: big64(o[8]!, o[9]!),
    nlink: o[10]!,
    rdev: o[11]! * 2 ** 32 + o[12]!,
  };
}

let tempCounter = 0;

export class Destination {
  /** Directories (relative names, "" = root) known to be real directories of ours. */
  private realDirs = new Set<string>([""]);
  /** Directories this run created: nothing below them existed before. */
  private newDirs = new Set<string>();

  constructor(readonly root: string) {}

  /** Absolute path for a checked relative name ("." is the root). */
  abs(rel: string): string {
    if (rel === "." || rel === "") return this.root;
    return this.root + path.sep + rel;
  }

  static parentOf(rel: string): string {
    const i = rel.lastIndexOf("/");
    return i < 0 ? "" : rel.slice(0, i);
  }

  markDir(rel: string): void {
    this.realDirs.add(rel === "." ? "" : rel);
  }

  forgetDir(rel: string): void {
    const key = rel === "." ? "" : rel;
    for (const d of this.realDirs) {
      if (d === key || d.startsWith(key + "/")) this.realDirs.delete(d);
    }
    this.newDirs.delete(key);
    if (key === "") this.realDirs.add("");
  }

  /**
   * Make sure every directory above `rel` is a real directory (no symlink) inside the root.
   * Throws DestinationError naming the offending component otherwise.
   */
  checkParents(rel: string): void {
    const parent = Destination.parentOf(rel === "." ? "" : rel);
    if (this.realDirs.has(parent)) return;
    const parts = parent.split("/");
    let cur = "";
    for (const part of parts) {
      cur = cur ? `${cur}/${part}` : part;
      if (this.realDirs.has(cur)) continue;
      const st = fs.lstatSync(this.abs(cur), { throwIfNoEntry: false });
      if (!st) throw new DestinationError(`parent directory ${cur} is missing`);
      if (st.isSymbolicLink()) throw new DestinationError(`refusing to write through symlink ${cur}`);
      if (!st.isDirectory()) throw new DestinationError(`parent ${cur} is not a directory`);
      this.realDirs.add(cur);
    }
  }

  /** Is anything at `rel` (a symlink counts, a dangling one too)? */
  exists(rel: string): boolean {
    return fs.lstatSync(this.abs(rel), { throwIfNoEntry: false }) !== undefined;
  }

  /**
   * util.c make_path with MKP_DROP_NAME: create each missing directory above `rel` (mode 0777
   * less the umask), never through a symlink: an existing component must be a real directory.
   */
  makeParents(rel: string): void {
    const parent = Destination.parentOf(rel === "." ? "" : rel);
    if (this.realDirs.has(parent)) return;
    let cur = "";
    for (const part of parent.split("/")) {
      cur = cur ? `${cur}/${part}` : part;
      if (this.realDirs.has(cur)) continue;
      const st = fs.lstatSync(this.abs(cur), { throwIfNoEntry: false });
      if (!st) this.mkdir(cur, 0o777);
      else if (st.isSymbolicLink()) throw new DestinationError(`refusing to write through symlink ${cur}`);
      else if (!st.isDirectory()) throw new DestinationError(`parent ${cur} is not a directory`);
      else this.realDirs.add(cur);
    }
  }

  /** lstat, or null when nothing is there (known without a call below a directory we made). */
  lstat(rel: string): LocalStat | null {
    if (this.newDirs.has(Destination.parentOf(rel)) && !this.newDirs.has(rel) && rel !== "." && rel !== "") {
      // Only what this run put there can exist: ask the file system after all if it might.
      if (!this.touched.has(rel)) return null;
    }
    return statPathOrNull(this.abs(rel), false);
  }

  /** Names this run created inside new directories (so lstat must look). */
  private touched = new Set<string>();

  private created(rel: string): void {
    if (this.newDirs.has(Destination.parentOf(rel))) this.touched.add(rel);
  }

  /** A temp name beside `rel` (receiver.c get_tmpname: ".NAME.XXXXXX", name shortened to fit). */
  tempName(rel: string): string {
    const dir = Destination.parentOf(rel);
    let base = rel.slice(dir ? dir.length + 1 : 0);
    const maxBase = 255 - 1 - 7;
    if (Buffer.byteLength(base) > maxBase) {
      base = Buffer.from(base).subarray(0, maxBase).toString("utf8").replace(/\uFFFD+$/, "");
    }
    tempCounter = (tempCounter + 1 + Math.floor(Math.random() * 1000)) % 2176782336;
    const suffix = tempCounter.toString(36).padStart(6, "0");
    const name = `.${base}.${suffix}`;
    return dir ? `${dir}/${name}` : name;
  }

  /** Open a new temp file exclusively (never follows a symlink); returns its name and fd. */
  createTemp(rel: string): { tmp: string; fd: number } {
    for (let i = 0; ; i++) {
      const tmp = this.tempName(rel);
      try {
        const fd = fs.openSync(this.abs(tmp), C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
        this.created(tmp);
        return { tmp, fd };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "EEXIST" && i < 10) continue;
        throw e;
      }
    }
  }

  /** Open an existing regular file as a delta basis, refusing symlinks; null if there is none. */
  openBasis(rel: string): { fd: number; size: number } | null {
    let fd: number;
    try {
      fd = fs.openSync(this.abs(rel), C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
    } catch {
      return null;
    }
    const st = fs.fstatSync(fd);
    if (!st.isFile()) {
      fs.closeSync(fd);
      return null;
    }
    return { fd, size: st.size };
  }

  /** Open the destination file itself for --inplace writing. */
  openInplace(rel: string): number {
    const fd = fs.openSync(this.abs(rel), C.O_RDWR | C.O_CREAT | C.O_NOFOLLOW, 0o600);
    this.created(rel);
    return fd;
  }

  rename(fromRel: string, toRel: string): void {
    fs.renameSync(this.abs(fromRel), this.abs(toRel));
    this.touched.delete(fromRel);
    this.created(toRel);
  }

  unlinkQuiet(rel: string): void {
    try {
      fs.unlinkSync(this.abs(rel));
    } catch {
      /* already gone */
    }
    this.touched.delete(rel);
  }

  /** Remove whatever is at rel (recursively for a directory), as delete.c delete_item does. */
  removeAny(rel: string): void {
    fs.rmSync(this.abs(rel), { recursive: true, force: true });
    this.forgetDir(rel);
    this.touched.delete(rel);
  }

  mkdir(rel: string, mode: number): void {
    fs.mkdirSync(this.abs(rel), { mode });
    this.created(rel);
    this.markDir(rel);
    this.newDirs.add(rel === "." ? "" : rel);
  }

  readdir(rel: string): string[] {
    return fs.readdirSync(this.abs(rel));
  }

  /** Create a symlink atomically: at a temp name, then renamed over rel. */
  symlink(rel: string, target: string): void {
    const tmp = this.tempName(rel);
    fs.symlinkSync(target, this.abs(tmp));
    this.commitTemp(tmp, rel);
  }

  /** Create a hard link atomically (temp name, then rename). */
  link(existingRel: string, rel: string): void {
    const tmp = this.tempName(rel);
    fs.linkSync(this.abs(existingRel), this.abs(tmp));
    this.commitTemp(tmp, rel);
  }

  /**
   * mknod for devices and FIFOs, and a bound unix socket for sockets (as syscall.c do_mknod).
   * Node has neither call: the system's mknod, and python3 for a socket (libuv unlinks the
   * socket file of a closed server, so Node cannot leave one behind).
   */
  mknod(rel: string, mode: number, major: number, minor: number): void {
    const tmp = this.tempName(rel);
    const type = mode & 0o170000;
    const perm = (mode & 0o7777).toString(8);
    const quiet = { stdio: ["ignore", "ignore", "pipe"] as ("ignore" | "pipe")[] };
    if (type === 0o140000) {
      const bind = "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.bind(sys.argv[1])";
      execFileSync("python3", ["-c", bind, this.abs(tmp)], quiet);
      fs.chmodSync(this.abs(tmp), mode & 0o7777);
    } else {
      const args =
        type === 0o010000
          ? ["-m", perm, this.abs(tmp), "p"]
          : ["-m", perm, this.abs(tmp), type === 0o060000 ? "b" : "c", String(major), String(minor)];
      execFileSync("mknod", args, quiet);
    }
    this.commitTemp(tmp, rel);
  }

  private commitTemp(tmp: string, rel: string): void {
    try {
      fs.renameSync(this.abs(tmp), this.abs(rel));
    } catch (e) {
      this.unlinkQuiet(tmp);
      throw e;
    }
    this.created(rel);
  }
}

/** Modes from the wire are checked before use. */
export function checkMode(mode: number): void {
  if (mode < 0 || mode > 0o177777) throw new ProtocolError(`invalid mode ${mode.toString(8)}`);
}
