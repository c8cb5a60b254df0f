// The sender's file list (flist.c send_file_list / send_directory / make_file): an lstat walk
// of the source arguments, then the list in file-list order on the wire (send_file_entry via
// FileListEncoder), the end marker with io_error, the uid/gid name lists and, below protocol
// 30, the io_error int. Only metadata is kept; file contents are read only for -c sums.
//
// The sender's filter rules decide what is walked (make_file's is_excluded, with each directory's
// dir-merge files pushed while it is listed). With -R names keep their path and the directories
// leading to them are sent first (send_implied_dirs). With inc-recursion the same walker lists
// one directory at a time (flist.c FLAG_DIVERT_DIRS, send1extra): engine/flist-inc.ts drives it
// (not combined with -R: the push offers no inc-recursion then).
import * as fs from "node:fs";
import { constants as C } from "node:fs";
import * as path from "node:path";
import { createFlistSummer, type ChecksumType } from "../delta/checksum.js";
import {
  FLAG_CONTENT_DIR,
  FLAG_IMPLIED_DIR,
  FLAG_TOP_DIR,
  isDevice,
  isDir,
  isLink,
  isReg,
  isSpecial,
  type FileEntry,
} from "../protocol/fileentry.js";
import { devMajor, devMinor, FileListEncoder, flistSafe, type FlistContext } from "../protocol/flist.js";
import { sortAndCleanFileList } from "../protocol/flist-sort.js";
import { MAXPATHLEN } from "../protocol/flist-names.js";
import { UsageError } from "../protocol/errcode.js";
import { encodeIdLists } from "../protocol/idlist.js";
import { MsgCode } from "../protocol/mux.js";
import type { FilterList, FilterRule } from "../protocol/filter.js";
import type { TransferOptions } from "../protocol/options.js";
import type { Connection } from "./connection.js";
import { IOERR_GENERAL, IOERR_VANISHED } from "./context.js";
import { statPath, type LocalStat } from "./destination.js";
import type { SyncEvents } from "./events.js";
import { treeFilterList } from "./filters.js";

/** A file-list entry as the sender keeps it: where it is on disk, and what it was. */
export interface SendEntry extends FileEntry {
  /** Absolute path on disk. */
  path: string;
  /** Real path of the directory the argument was taken from (the transfer root). */
  root: string;
  /** dev/ino at walk time. */
  dev: bigint;
  ino: bigint;
}

export interface FlistBuildOptions {
  protocol: number;
  opts: TransferOptions;
  /** --checksum sum type (file_sum_nni). */
  fileSum: ChecksumType;
  events: SyncEvents;
  /** Base for relative arguments (default: process.cwd()). */
  cwd?: string;
  /** The sender's filter rules (command-line rules of a client, or those a server received). */
  rules?: readonly FilterRule[];
}

export interface BuiltFileList {
  /** Sorted (flist.c f_name_cmp), duplicates removed: position = ndx. */
  files: SendEntry[];
  /** io_error bits (IOERR_*) met while walking. */
  ioError: number;
  buildTimeMs: number;
  /** stats.total_size: regular files and symlinks (flist.c send_file_entry). */
  totalSize: number;
  /** A transfer error happened while walking (the run ends with exit 23). */
  xferError: boolean;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });
const SUM_READ = 1 << 20;

/** /etc/passwd or /etc/group as id -> name (uidlist.c add_uid uses getpwuid/getgrgid). */
function readNames(file: string): Map<number, string> {
  const m = new Map<number, string>();
  let text = "";
  try {
    text = fs.readFileSync(file, "utf8");
  } catch {
    return m;
  }
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const f = line.split(":");
    const id = Number(f[2]);
    if (f[0] && Number.isInteger(id) && !m.has(id)) m.set(id, f[0]);
  }
  return m;
}

/** Local account names by id, looked up lazily. */
export class IdNames {
  private users: Map<number, string> | null = null;
  private groups: Map<number, string> | null = null;
  user(id: number): string | undefined {
    return (this.users ??= readNames("/etc/passwd")).get(id);
  }
  group(id: number): string | undefined {
    return (this.groups ??= readNames("/etc/group")).get(id);
  }
}

/** flist.c name_type: NORMAL_NAME, DOTDIR_NAME ("dir/", ".", ".."), SLASH_ENDING_NAME (-R "dir/"). */
type NameType = "normal" | "dotdir" | "slash";

interface SourceName {
  /** The directory the name is taken from (relative to the cwd, or absolute). */
  dir: string;
  /** The name as it goes into the list. */
  name: string;
  nameType: NameType;
  /** -R: the source began "./" (the transfer root is then sent as an implied dir). */
  impliedDot: boolean;
}

/** flist.c send_file_list without -R: "dir/name" is sent as "name" from "dir". */
function plainArg(raw: string): SourceName {
  let fbuf = raw;
  let nameType: NameType = "normal";
  // A trailing slash means the directory's contents ("dir/" -> "dir/."); so do "." and "..".
  if (fbuf === "" || fbuf.endsWith("/")) {
    fbuf = fbuf === "./" ? "." : fbuf + ".";
    nameType = "dotdir";
  } else if (fbuf === ".." || fbuf.endsWith("/..")) {
    fbuf += "/.";
    nameType = "dotdir";
  } else if (fbuf === "." || fbuf.endsWith("/.")) {
    nameType = "dotdir";
  }
  const slash = fbuf.lastIndexOf("/");
  const dir = slash < 0 ? "." : slash === 0 ? "/" : fbuf.slice(0, slash);
  let name = slash < 0 ? fbuf : fbuf.slice(slash + 1);
  name = name.replace(/\/+/g, "/");
  if (name === "") {
    name = ".";
    nameType = "dotdir";
  }
  return { dir, name, nameType, impliedDot: false };
}

/**
 * flist.c send_file_list with -R: the path is sent as given, from the cwd, or from the part
 * before a "/./" marker; cleaned as clean_fname(CFN_KEEP_TRAILING_SLASH |
 * CFN_DROP_TRAILING_DOT_DIR) does ("//" and "." parts go; a leading '/' stays and the
 * receiver strips it). A trailing slash only makes a symlink followed; ".." is refused.
 */
export function relativeArg(raw: string): SourceName {
  let dir = ".";
  let fn = raw;
  const mark = raw.indexOf("/./");
  if (mark >= 0) {
    dir = mark === 0 ? "/" : raw.slice(0, mark);
    fn = raw.slice(mark + 3).replace(/^\/+/, "");
  }
  const impliedDot = fn.startsWith("./") && fn.length > 2;
  const anchored = fn.startsWith("/");
  const parts = fn.split("/").filter((p) => p !== "" && p !== ".");
  let name: string;
  let nameType: NameType = "normal";
  if (parts.length === 0) {
    name = anchored ? "/." : ".";
    nameType = "dotdir";
  } else {
    name = (anchored ? "/" : "") + parts.join("/");
    // A kept trailing slash: something ("/", "/.") follows the last part.
    if (/\/\.?$/.test(fn)) nameType = "slash";
  }
  if (parts.includes("..")) throw new UsageError(`found ".." dir in relative path: ${name}`);
  return { dir, name, nameType, impliedDot };
}

export class Walker {
  private entries: SendEntry[] = [];
  ioError = 0;
  /** An error that makes the run partial (log.c FERROR_XFER). */
  xferError = false;
  private filesystemDev = 0n;
  private readonly names = new IdNames();
  /** The filter list of each transfer root (the directory an argument is taken from). */
  private readonly filterLists = new Map<string, FilterList | null>();
  private filters: FilterList | null = null;
  /** send_implied_dirs' lastpath: the directories sent for the previous -R source. */
  private lastImplied = "";
  private impliedDotSent = false;
  /** The filter lists whose root level was entered for a dot-dir argument (inc-recursion). */
  private readonly rootEntered = new Set<FilterList>();

  /** `divert`: inc-recursion, a directory's subdirectories are listed later (FLAG_DIVERT_DIRS). */
  constructor(
    private readonly o: FlistBuildOptions,
    private readonly divert = false,
  ) {}

  /** The entries walked since the last take(), in walk order. */
  take(): SendEntry[] {
    const e = this.entries;
    this.entries = [];
    return e;
  }

  private warn(text: string): void {
    this.o.events.message?.("warning", text);
  }
  private error(text: string): void {
    this.ioError |= IOERR_GENERAL;
    this.xferError = true;
    this.o.events.message?.("error", text);
  }
  private info(text: string): void {
    this.o.events.message?.("info", text);
  }

  /** flist.c send_file_list: one source argument. */
  async arg(raw: string): Promise<void> {
    const { opts } = this.o;
    const cwd = this.o.cwd ?? process.cwd();
    const { dir, name: fn, nameType, impliedDot } = opts.relative ? relativeArg(raw) : plainArg(raw);
    const dirAbs = path.resolve(cwd, dir);
    let root: string;
    try {
      root = fs.realpathSync(dirAbs);
    } catch (e) {
      this.error(`rsync: [sender] change_dir "${dirAbs}" failed: ${errText(e)}`);
      return;
    }
    if (!this.filterLists.has(root)) this.filterLists.set(root, treeFilterList(this.o.rules ?? [], "sender", root, opts, this.o.protocol));
    this.filters = this.filterLists.get(root)!;
    // With -R a source named "./x" makes the transfer root "." an implied dir (once a run).
    if (impliedDot && !this.impliedDotSent) {
      this.impliedDotSent = true;
      this.impliedDotDir(root);
    }
    // An absolute name (-R without "/./") is taken from "/": the sender reads it there.
    const entryRoot = fn.startsWith("/") ? "/" : root;
    const abs = path.resolve(root, fn);
    let st: LocalStat;
    try {
      // A dot-dir or a slash-ending name follows a symlink (link_stat with follow_dirlinks).
      st = statPath(abs, nameType !== "normal");
    } catch (e) {
      // A transfer error (exit 23); io_error only when the arg may exist (deletions go on).
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") this.ioError |= IOERR_GENERAL;
      this.xferError = true;
      this.o.events.message?.("error", `rsync: [sender] link_stat "${fullName(cwd, raw, fn)}" failed: ${errText(e)}`);
      return;
    }
    // A dot-dir is never excluded; another argument is (silently) by the sender's rules.
    if (nameType !== "dotdir" && this.filters?.check(fn, isDir(st.mode)) === "exclude") return;
    if (isDir(st.mode) && !opts.dirs && !opts.recursive) {
      this.info(`skipping directory ${fn}`);
      return;
    }
    // flist.c: with -R the directories leading to the name go first (from protocol 30 always,
    // flagged as implied; below it only with --implied-dirs), their dir-merge files in effect.
    const above: string[] = [];
    const slash = fn.lastIndexOf("/");
    if (opts.relative && (opts.impliedDirs || this.o.protocol >= 30) && slash > 0) {
      this.sendImpliedDirs(fn, slash, entryRoot);
      for (let i = fn.indexOf("/", 1); i > 0 && i <= slash; i = fn.indexOf("/", i + 1)) above.push(fn.slice(0, i));
    }
    for (const d of above) this.filters?.enterDir(d);
    try {
      this.filesystemDev = st.dev;
      if (opts.recursive || (opts.dirs && nameType !== "normal")) {
        const e = this.make(fn, abs, entryRoot, st, FLAG_TOP_DIR | FLAG_CONTENT_DIR, false);
        if (e && isDir(e.mode)) {
          if (!this.divert) await this.enterDirectory(fn === "." ? "" : fn, fn, abs, entryRoot);
          else if (nameType === "dotdir") {
            // send_file_list with inc_recurse: a dot-dir's own entries go in the first list
            // (the root's dir-merge rules loaded once, at depth 0); other dirs get sub-lists.
            if (this.filters && !this.rootEntered.has(this.filters)) {
              this.rootEntered.add(this.filters);
              this.filters.changeDir("", 0);
            }
            await this.directory(fn, abs, entryRoot);
          }
        }
      } else {
        this.make(fn, abs, entryRoot, st, 0, false);
      }
    } finally {
      for (let i = above.length; i-- > 0; ) this.filters?.leaveDir(above[i]!);
    }
  }

  /** flist.c send_file_list: the "." sent (as an implied dir) for a "-R ./name" source. */
  private impliedDotDir(root: string): void {
    const { opts } = this.o;
    const st = this.statOrReport(root, false);
    if (!st) return;
    if (!opts.dirs && !opts.recursive) {
      this.info("skipping directory .");
      return;
    }
    this.make(".", root, root, st, FLAG_IMPLIED_DIR, true);
  }

  /** make_file's readlink_stat for an entry found without a walk (vanished: a warning). */
  private statOrReport(abs: string, follow: boolean): LocalStat | null {
    try {
      return statPath(abs, follow);
    } catch (e) {
      this.readError(abs, e);
      return null;
    }
  }

  /**
   * flist.c send_implied_dirs: each directory on the way to `fname` (up to its last '/', at
   * `limit`) that the previous source's did not already send, unfiltered, following symlinks
   * (copy_links), flagged FLAG_IMPLIED_DIR (XMIT_TOP_DIR | XMIT_NO_CONTENT_DIR at protocol 30+).
   */
  private sendImpliedDirs(fname: string, limit: number, root: string): void {
    const last = this.lastImplied;
    // Skip the leading directories this path has in common with the last one sent.
    let start = 0;
    for (let i = 0; ; i++) {
      if (i === limit) {
        if (i === last.length || last[i] === "/") return;
        break;
      }
      if (last[i] !== fname[i]) break;
      if (fname[i] === "/") start = i;
    }
    const dirs: string[] = [];
    for (let i = fname.indexOf("/", start + 1); i > 0 && i < limit; i = fname.indexOf("/", i + 1)) dirs.push(fname.slice(0, i));
    dirs.push(fname.slice(0, limit));
    for (const d of dirs) {
      const abs = path.resolve(root, d);
      const st = this.statOrReport(abs, true);
      if (st) this.make(d, abs, root, st, FLAG_IMPLIED_DIR, false);
    }
    this.lastImplied = fname.slice(0, limit);
  }

  /** flist.c make_file + send_file_name for one entry (st already known). */
  private make(name: string, abs: string, root: string, st: LocalStat, flags: number, filtered: boolean): SendEntry | null {
    const { opts, protocol } = this.o;
    if (Buffer.byteLength(name) >= MAXPATHLEN) {
      this.error(`skipping overly long name: ${name}`);
      return null;
    }
    if (isDir(st.mode)) {
      if (filtered && opts.oneFileSystem && st.dev !== this.filesystemDev && flags & FLAG_CONTENT_DIR && !(flags & FLAG_TOP_DIR)) {
        flags &= ~FLAG_CONTENT_DIR; // a mount point: sent, not entered
      }
    } else {
      flags &= ~FLAG_CONTENT_DIR;
    }
    if (filtered && this.filters?.check(name, isDir(st.mode)) === "exclude") return null;
    const e: SendEntry = {
      name,
      mode: st.mode,
      size: isDevice(st.mode) || isSpecial(st.mode) ? 0 : st.size,
      mtime: st.mtime,
      mtimeNsec: st.mtimeNsec,
      flags,
      path: abs,
      root,
      dev: st.dev,
      ino: st.ino,
    };
    if (opts.owner) {
      e.uid = st.uid;
      if (!opts.numericIds) {
        const n = this.names.user(st.uid);
        if (n !== undefined) e.userName = n;
      }
    }
    if (opts.group) {
      e.gid = st.gid;
      if (!opts.numericIds) {
        const n = this.names.group(st.gid);
        if (n !== undefined) e.groupName = n;
      }
    }
    if (isDevice(st.mode)) {
      e.rdevMajor = devMajor(st.rdev);
      e.rdevMinor = devMinor(st.rdev);
    }
    if (isLink(st.mode) && opts.links) {
      let target: Buffer;
      try {
        target = fs.readlinkSync(abs, { encoding: "buffer" });
      } catch (e2) {
        this.readError(abs, e2);
        return null;
      }
      if (target.length === 0) {
        this.error(`skipping symlink with 0-length value: ${name}`);
        return null;
      }
      e.linkTarget = new Uint8Array(target);
    }
    // hlink.c: the sender's dev/ino for -H (protocol >= 28: non-dirs linked more than once).
    if (opts.hardLinks && (protocol >= 28 ? !isDir(st.mode) && st.nlink > 1 : isReg(st.mode))) {
      e.hlinkDev = Number(st.dev);
      e.hlinkIno = Number(st.ino);
    }
    this.entries.push(e);
    return e;
  }

  private readError(abs: string, e: unknown): void {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") {
      this.ioError |= IOERR_VANISHED;
      this.warn(`file has vanished: "${abs}"`);
    } else {
      this.error(`rsync: [sender] readlink_stat("${abs}") failed: ${errText(e)}`);
    }
  }

  /** flist.c send_directory: the directory's entries, then (with -r) its subdirectories. */
  private async directory(name: string, abs: string, root: string): Promise<void> {
    const { opts } = this.o;
    let names: Buffer[];
    try {
      names = fs.readdirSync(abs, { encoding: "buffer" });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") {
        this.ioError |= IOERR_VANISHED;
        this.warn(`file has vanished: "${abs}"`);
        return;
      }
      this.error(`rsync: [sender] opendir "${abs}" failed: ${errText(e)}`);
      return;
    }
    const flags = opts.recursive ? FLAG_CONTENT_DIR : 0;
    const subdirs: SendEntry[] = [];
    for (const raw of names) {
      let base: string;
      try {
        base = utf8.decode(raw);
      } catch {
        this.error(`cannot send file with a non-UTF-8 name in ${name}: ${JSON.stringify(raw.toString("latin1"))}`);
        continue;
      }
      const child = name === "." ? base : name === "/." ? `/${base}` : `${name}/${base}`;
      const childAbs = path.join(abs, base);
      let st: LocalStat;
      try {
        st = statPath(childAbs, false);
      } catch (e) {
        // make_file: an excluded name that cannot be read is not reported.
        if (this.filters && (this.filters.check(child, false) === "exclude" || this.filters.check(child, true) === "exclude")) continue;
        this.readError(childAbs, e);
        continue;
      }
      const e = this.make(child, childAbs, root, st, flags, true);
      if (e && isDir(e.mode) && e.flags & FLAG_CONTENT_DIR) subdirs.push(e);
    }
    if (!opts.recursive || this.divert) return;
    for (const d of subdirs) await this.enterDirectory(d.name, d.name, d.path, root);
  }

  /**
   * flist.c send1extra: the entries of directory `dir` (as listed, relative to its root) from
   * each of its sources (one per transfer root that has it), with the rules of its place in the
   * tree (change_local_filter_dir at its depth).
   */
  async subdirectory(dir: string, sources: readonly SendEntry[]): Promise<void> {
    const depth = dir.split("/").length;
    const seen = new Set<string>();
    for (const src of sources) {
      this.filters = this.filterLists.get(src.root) ?? null;
      this.filters?.changeDir(dir, depth);
      // A mount point under -x is listed but not entered; the same directory twice, once.
      if (!(src.flags & FLAG_CONTENT_DIR) || seen.has(src.path)) continue;
      seen.add(src.path);
      this.filesystemDev = src.dev;
      await this.directory(dir, src.path, src.root);
    }
  }

  /** flist.c send_if_directory: the directory's dir-merge rules apply while it is listed. */
  private async enterDirectory(relDir: string, name: string, abs: string, root: string): Promise<void> {
    const filters = this.filters;
    if (!filters) return this.directory(name, abs, root);
    filters.enterDir(relDir);
    try {
      await this.directory(name, abs, root);
    } finally {
      filters.leaveDir(relDir);
    }
  }
}

/** rsyserr's "strerror (errno)" from a Node error. */
export function errText(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  const m = /^[A-Z]+: (.*?),/.exec(err.message ?? "");
  const text = m ? m[1]! : (err.message ?? String(e));
  return `${text.charAt(0).toUpperCase()}${text.slice(1)} (${err.errno !== undefined ? Math.abs(err.errno) : 0})`;
}

function fullName(cwd: string, raw: string, fn: string): string {
  return path.isAbsolute(raw) ? raw : path.join(cwd, raw === "" ? fn : raw);
}

/** checksum.c file_checksum for -c (a read error leaves a zeroed sum, as rsync's does). */
async function fileChecksum(file: SendEntry, type: ChecksumType, len: number): Promise<Uint8Array> {
  const summer = createFlistSummer(type);
  let fh: fs.promises.FileHandle;
  try {
    fh = await fs.promises.open(file.path, C.O_RDONLY | C.O_NOFOLLOW);
  } catch {
    return new Uint8Array(len);
  }
  try {
    const buf = Buffer.allocUnsafe(Math.min(SUM_READ, Math.max(file.size, 1)));
    let pos = 0;
    while (pos < file.size) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, file.size - pos), pos);
      if (bytesRead === 0) break;
      summer.update(buf.subarray(0, bytesRead));
      pos += bytesRead;
    }
    return summer.digest().subarray(0, len);
  } catch {
    return new Uint8Array(len);
  } finally {
    await fh.close();
  }
}

/** flist_sort_and_clean for the sender, then the -c sums: the list as it is sent. */
export async function finishList(
  entries: readonly SendEntry[],
  o: FlistBuildOptions,
  checksumLength: number,
): Promise<{ files: SendEntry[]; totalSize: number }> {
  const files = sortAndCleanFileList(entries, o.protocol).files.filter((f): f is SendEntry => f !== null);
  let totalSize = 0;
  for (const f of files) {
    if (isReg(f.mode) || isLink(f.mode)) totalSize += f.size;
    if (o.opts.checksum && isReg(f.mode)) f.checksum = await fileChecksum(f, o.fileSum, checksumLength);
  }
  return { files, totalSize };
}

/** Walk the arguments and sort the list (flist.c send_file_list up to flist_sort_and_clean). */
export async function buildFileList(args: readonly string[], o: FlistBuildOptions, checksumLength: number): Promise<BuiltFileList> {
  const t0 = Date.now();
  const w = new Walker(o);
  for (const a of args) await w.arg(a);
  const { files, totalSize } = await finishList(w.take(), o, checksumLength);
  return { files, ioError: w.ioError, buildTimeMs: Math.max(1, Date.now() - t0), totalSize, xferError: w.xferError };
}

export interface SendFlistContext {
  conn: Connection;
  protocol: number;
  compatFlags: number;
  opts: TransferOptions;
  checksumLength: number;
  id0Names: boolean;
}

/** The encoder's view of a sender's options (ndx_start 1 with inc-recursion, flist.c flist_new). */
export function senderFlistContext(ctx: Omit<SendFlistContext, "conn" | "id0Names">, ndxStart: number): FlistContext {
  const { protocol, opts } = ctx;
  return {
    protocol,
    compatFlags: ctx.compatFlags,
    recursive: opts.recursive,
    preserveUid: opts.owner,
    preserveGid: opts.group,
    preserveLinks: opts.links,
    preserveDevices: opts.devices,
    preserveSpecials: opts.specials,
    preserveHardLinks: opts.hardLinks,
    alwaysChecksum: opts.checksum,
    checksumLength: ctx.checksumLength,
    numericIds: opts.numericIds,
    relativePaths: false,
    ndxStart,
  };
}

/** flist.c send_file_list from the entries on: entries, end marker, id lists, io_error. */
export async function sendFileList(list: BuiltFileList, ctx: SendFlistContext): Promise<void> {
  const { conn, protocol, opts } = ctx;
  const fctx = senderFlistContext(ctx, 0);
  const enc = new FileListEncoder(fctx);
  const w = conn.scratch;
  for (const f of list.files) {
    enc.encode(f, w);
    if (w.len >= 32 * 1024) {
      conn.writeScratch();
      await conn.maybeFlush();
    }
  }
  const safe = flistSafe(fctx);
  enc.end(w, list.ioError);
  const names = new IdNames();
  encodeIdLists(
    w,
    { protocol, preserveUid: opts.owner, preserveGid: opts.group, numericIds: opts.numericIds, incRecurse: false, id0Names: ctx.id0Names },
    enc.users,
    enc.groups,
    { user: names.user(0) ?? "", group: names.group(0) ?? "" },
  );
  if (protocol < 30) w.int32(list.ioError);
  conn.writeScratch();
  await conn.flush();
  // Protocol 30 without a safe list end: io_error goes as a message.
  if (protocol >= 30 && !safe && list.ioError) {
    const p = new Uint8Array(4);
    new DataView(p.buffer).setInt32(0, list.ioError, true);
    await conn.sendMessage(MsgCode.IO_ERROR, p);
  }
}
