// The receiving side's view of the destination tree. Every name comes from an untrusted peer,
// so paths are resolved only below the destination root, never through a symlink: each parent
// directory is checked (or created by us) before anything is written in it. New content goes
// to a temp name in the target's directory and is renamed into place.
import { constants as C, promises as fsp, type BigIntStats, type Stats } from "node:fs";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as path from "node:path";
import { ProtocolError } from "../protocol/wire.js";

export class DestinationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DestinationError";
  }
}

export class Destination {
  /** Directories (relative names, "" = root) known to be real directories of ours. */
  private realDirs = new Set<string>([""]);

  constructor(readonly root: string) {}

  /** Absolute path for a checked relative name ("." is the root). */
  abs(rel: string): string {
    if (rel === "." || rel === "") return this.root;
    return path.join(this.root, rel);
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
    if (key === "") this.realDirs.add("");
  }

  /**
   * Make sure every directory above `rel` is a real directory (no symlink) inside the root.
   * Throws DestinationError naming the offending component otherwise.
   */
  async checkParents(rel: string): Promise<void> {
    const parent = Destination.parentOf(rel === "." ? "" : rel);
    if (this.realDirs.has(parent)) return;
    const parts = parent.split("/");
    let cur = "";
    for (const part of parts) {
      cur = cur ? `${cur}/${part}` : part;
      if (this.realDirs.has(cur)) continue;
      let st: Stats;
      try {
        st = await fsp.lstat(this.abs(cur));
      } catch {
        throw new DestinationError(`parent directory ${cur} is missing`);
      }
      if (st.isSymbolicLink()) throw new DestinationError(`refusing to write through symlink ${cur}`);
      if (!st.isDirectory()) throw new DestinationError(`parent ${cur} is not a directory`);
      this.realDirs.add(cur);
    }
  }

  async lstat(rel: string): Promise<LocalStat | null> {
    try {
      return localStat(await fsp.lstat(this.abs(rel), { bigint: true }));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT" || (e as NodeJS.ErrnoException).code === "ENOTDIR") return null;
      throw e;
    }
  }

  /** A temp name beside `rel` (receiver.c get_tmpname: ".NAME.XXXXXX", name shortened to fit). */
  tempName(rel: string): string {
    const dir = Destination.parentOf(rel);
    let base = rel.slice(dir ? dir.length + 1 : 0);
    const maxBase = 255 - 1 - 7;
    if (Buffer.byteLength(base) > maxBase) {
      base = Buffer.from(base).subarray(0, maxBase).toString("utf8").replace(/\uFFFD+$/, "");
    }
    const suffix = randomBytes(6).toString("base64").replace(/[+/=]/g, "_").slice(0, 6);
    const name = `.${base}.${suffix}`;
    return dir ? `${dir}/${name}` : name;
  }

  /** Open a new temp file exclusively (never follows a symlink). */
  async createTemp(rel: string): Promise<{ tmp: string; fh: fsp.FileHandle }> {
    for (let i = 0; ; i++) {
      const tmp = this.tempName(rel);
      try {
        const fh = await fsp.open(this.abs(tmp), C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
        return { tmp, fh };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "EEXIST" && i < 10) continue;
        throw e;
      }
    }
  }

  /** Open an existing regular file as a delta basis, refusing symlinks. */
  async openBasis(rel: string): Promise<fsp.FileHandle | null> {
    try {
      const fh = await fsp.open(this.abs(rel), C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
      const st = await fh.stat();
      if (!st.isFile()) {
        await fh.close();
        return null;
      }
      return fh;
    } catch {
      return null;
    }
  }

  /** Open the destination file itself for --inplace writing. */
  async openInplace(rel: string): Promise<fsp.FileHandle> {
    return fsp.open(this.abs(rel), C.O_RDWR | C.O_CREAT | C.O_NOFOLLOW, 0o600);
  }

  async rename(fromRel: string, toRel: string): Promise<void> {
    await fsp.rename(this.abs(fromRel), this.abs(toRel));
  }

  async unlinkQuiet(rel: string): Promise<void> {
    try {
      await fsp.unlink(this.abs(rel));
    } catch {
      /* already gone */
    }
  }

  /** Remove whatever is at rel (recursively for a directory), as delete.c delete_item does. */
  async removeAny(rel: string): Promise<void> {
    await fsp.rm(this.abs(rel), { recursive: true, force: true });
    this.forgetDir(rel);
  }

  async mkdir(rel: string, mode: number): Promise<void> {
    await fsp.mkdir(this.abs(rel), { mode });
    this.markDir(rel);
  }

  async readdir(rel: string): Promise<string[]> {
    return fsp.readdir(this.abs(rel));
  }

  /** Create a symlink atomically: at a temp name, then renamed over rel. */
  async symlink(rel: string, target: string): Promise<void> {
    const tmp = this.tempName(rel);
    await fsp.symlink(target, this.abs(tmp));
    try {
      await fsp.rename(this.abs(tmp), this.abs(rel));
    } catch (e) {
      await this.unlinkQuiet(tmp);
      throw e;
    }
  }

  /** Create a hard link atomically (temp name, then rename). */
  async link(existingRel: string, rel: string): Promise<void> {
    const tmp = this.tempName(rel);
    await fsp.link(this.abs(existingRel), this.abs(tmp));
    try {
      await fsp.rename(this.abs(tmp), this.abs(rel));
    } catch (e) {
      await this.unlinkQuiet(tmp);
      throw e;
    }
  }

  /** mknod for devices, FIFOs and sockets (Node has no mknod: the system's mknod/mkfifo). */
  async mknod(rel: string, mode: number, major: number, minor: number): Promise<void> {
    const tmp = this.tempName(rel);
    const type = mode & 0o170000;
    const perm = (mode & 0o7777).toString(8);
    const args =
      type === 0o010000 || type === 0o140000
        ? ["-m", perm, this.abs(tmp), "p"]
        : ["-m", perm, this.abs(tmp), type === 0o060000 ? "b" : "c", String(major), String(minor)];
    await new Promise<void>((resolve, reject) =>
      execFile("mknod", args, (err, _o, stderr) => (err ? reject(new Error(String(stderr).trim() || err.message)) : resolve())),
    );
    try {
      await fsp.rename(this.abs(tmp), this.abs(rel));
    } catch (e) {
      await this.unlinkQuiet(tmp);
      throw e;
    }
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

/** Modes from the wire are checked before use. */
export function checkMode(mode: number): void {
  if (mode < 0 || mode > 0o177777) throw new ProtocolError(`invalid mode ${mode.toString(8)}`);
}
