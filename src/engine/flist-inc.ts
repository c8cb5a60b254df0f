// The sender's file lists with incremental recursion (flist.c send_file_list with inc_recurse,
// send_extra_file_list, send1extra; sender.c send_files). The first list holds the arguments
// and the entries of the dot-dir arguments; every directory in a list then gets a sub-list of
// its own entries, announced by NDX_FLIST_OFFSET - its index in the receiver's dir_flist (the
// directories of every list sent so far, each list's in sorted order). Sub-lists go depth
// first (a directory's children before its next sibling) and only as far ahead of the
// receiver's generator as the look-ahead asks; the lists it has finished (its NDX_DONE per
// list) are dropped, so memory follows what is in flight, not the size of the tree.
//
// A list's ndx_start is the previous list's ndx_start + its length + 1 (the first: 1), and
// ndx_start - 1 names the directory the list holds the contents of (the generator asks for it
// to touch up that directory). Wire order is sorted order here, so the hard-link references of
// protocol >= 30 (wire positions) are the sorted positions. Duplicate directories from several
// arguments are one entry with several sources, listed together (rsync's FLAG_DUPLICATE).
import { isDir, isLink, isReg, isSpecial, isDevice } from "../protocol/fileentry.js";
import { FileListEncoder, flistSafe } from "../protocol/flist.js";
import { RERR_UNSUPPORTED } from "../protocol/errcode.js";
import { MsgCode } from "../protocol/mux.js";
import { NDX_FLIST_EOF, NDX_FLIST_OFFSET, NdxWriter } from "../protocol/ndx.js";
import { ProtocolError, Writer } from "../protocol/wire.js";
import type { TransferStats } from "./events.js";
import { finishList, senderFlistContext, Walker, type FlistBuildOptions, type SendEntry, type SendFlistContext } from "./flist-build.js";

/** rsync.h MIN_FILECNT_LOOKAHEAD: files kept listed beyond the generator's current list. */
export const MIN_FILECNT_LOOKAHEAD = 1000;
/** rsync.h MAX_FILECNT_LOOKAHEAD: how far ahead lists are sent while the peer is quiet. */
export const MAX_FILECNT_LOOKAHEAD = 10000;

/** One list sent and not yet finished by the receiver. */
interface LiveList {
  ndxStart: number;
  files: SendEntry[];
  /** The directory whose contents it holds (ndx_start - 1), null for a first list without ".". */
  parent: SendEntry | null;
}

/** A list as walked and sorted, with the sources of its directories by name. */
interface Listed {
  files: SendEntry[];
  sources: Map<string, SendEntry[]>;
}

/** A directory whose sub-list is still to be sent. */
interface PendingDir {
  entry: SendEntry;
  /** Its index in the receiver's dir_flist. */
  dirNdx: number;
  /** Where it is on disk: one per argument that has it. */
  sources: SendEntry[];
}

/** What the sender asks of its file lists (sender.c send_files, rsync.c read_ndx_and_attrs). */
export interface SenderLists {
  /** The index writer of the sender's output (the sub-list announcements share its state). */
  readonly ndx: NdxWriter;
  /** io_error bits and transfer errors of the walk so far. */
  readonly ioError: number;
  readonly xferError: boolean;
  /** The entry a request names (switching the current list), or a ProtocolError. */
  entry(ndx: number): SendEntry;
  /** send_extra_file_list(MIN_FILECNT_LOOKAHEAD) */
  fill(): Promise<void>;
  /** The peer is quiet: one more list if the look-ahead allows it. True when one was sent. */
  idle(): Promise<boolean>;
  /** NDX_DONE: drop the oldest list; true when lists remain (the NDX_DONE is echoed and the
   *  phase goes on), false when none was live (a phase ends). `freed` gets its ndx range. */
  listDone(freed: (from: number, to: number) => void): boolean;
}

export interface IncListsContext extends SendFlistContext {
  build: FlistBuildOptions;
  stats: TransferStats;
}

export class IncrementalFileLists implements SenderLists {
  readonly ndx: NdxWriter;
  private readonly walker: Walker;
  private readonly enc: FileListEncoder;
  private readonly safe: boolean;
  private readonly lists: LiveList[] = [];
  /** Position in `lists` of the list the last request was in (rsync's cur_flist). */
  private cur = 0;
  /** Files in live lists, and in those up to and including the current one (file_total,
   *  file_old_total): their difference is the look-ahead. */
  private total = 0;
  private oldTotal = 0;
  private nextNdxStart = 1;
  private dirCount = 0;
  /** Depth-first stack of sibling queues (flist.c's dir_flist tree walk). */
  private readonly pending: PendingDir[][] = [];
  private eof = false;
  private readonly out = new Writer(64 * 1024);
  /** io_error as of the last list sent (send_extra_file_list's save_io_error). */
  private ioSent = 0;

  constructor(private readonly ctx: IncListsContext) {
    this.ndx = new NdxWriter(ctx.protocol);
    this.walker = new Walker(ctx.build, true);
    const fctx = senderFlistContext(ctx, 1);
    this.enc = new FileListEncoder(fctx);
    this.safe = flistSafe(fctx);
  }

  get ioError(): number {
    return this.walker.ioError;
  }
  get xferError(): boolean {
    return this.walker.xferError;
  }
  /** NDX_FLIST_EOF has been sent. */
  get finished(): boolean {
    return this.eof;
  }

  /** flist.c send_file_list: the first list; returns its length. */
  async sendFirst(args: readonly string[]): Promise<number> {
    const { stats } = this.ctx;
    const t0 = Date.now();
    for (const a of args) await this.walker.arg(a);
    const listed = await this.finish(this.walker.take());
    const { files } = listed;
    stats.flistBuildTime = Math.max(1, Date.now() - t0);
    const t1 = Date.now();
    // The first list has ndx_start 1; dir_flist[0] is its "." when it has one (parent_ndx 0).
    const parent = files.length > 0 && files[0]!.name === "." && isDir(files[0]!.mode) ? files[0]! : null;
    await this.sendList(files, parent, true);
    stats.flistXferTime = Math.max(0, Date.now() - t1);
    this.oldTotal = this.total;
    // The top-level directories (not a "."), in sorted order, are the first to get sub-lists.
    this.enqueue(listed, true);
    if (this.pending.length === 0) this.endOfLists();
    // One entry only: one more list, so the receiver can tell a one-file transfer (main.c).
    else if (this.total === 1) await this.sendExtra(1);
    await this.ctx.conn.flush();
    return files.length;
  }

  async fill(): Promise<void> {
    await this.sendExtra(MIN_FILECNT_LOOKAHEAD);
  }

  async idle(): Promise<boolean> {
    if (this.eof || this.total - this.oldTotal >= MAX_FILECNT_LOOKAHEAD) return false;
    await this.sendExtra(this.total - this.oldTotal + 1);
    return true;
  }

  entry(ndx: number): SendEntry {
    const lists = this.lists;
    // Ranges [ndx_start - 1, ndx_start + used) are contiguous: find the last that starts at or
    // before ndx.
    let lo = 0;
    let hi = lists.length - 1;
    let at = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (lists[mid]!.ndxStart - 1 <= ndx) {
        at = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    const l = at >= 0 ? lists[at]! : undefined;
    if (!l || ndx >= l.ndxStart + l.files.length || (ndx === l.ndxStart - 1 && !l.parent)) {
      const first = lists.length > 0 ? lists[0]!.ndxStart - 1 : 0;
      const lastList = lists[lists.length - 1];
      const last = lastList ? lastList.ndxStart + lastList.files.length - 1 : -1;
      throw new ProtocolError(`File-list index ${ndx} not in ${first} - ${last} [sender]`);
    }
    if (at !== this.cur) {
      // rsync.c read_ndx_and_attrs: the look-ahead counts from the list being worked on.
      this.cur = at;
      let old = 0;
      for (let i = 0; i <= at; i++) old += lists[i]!.files.length;
      this.oldTotal = old;
    }
    return ndx === l.ndxStart - 1 ? l.parent! : l.files[ndx - l.ndxStart]!;
  }

  listDone(freed: (from: number, to: number) => void): boolean {
    const first = this.lists.shift();
    if (!first) return false;
    freed(first.ndxStart, first.ndxStart + first.files.length);
    this.total -= first.files.length;
    this.oldTotal = Math.max(0, this.oldTotal - first.files.length);
    if (this.cur > 0) this.cur--;
    else if (this.lists.length > 0) this.oldTotal = this.lists[0]!.files.length;
    if (this.lists.length > 0) return true;
    // The generator finishes its current list only once it knows no list follows.
    if (!this.eof) throw new ProtocolError("the receiver finished the last file list before the end of the lists [sender]");
    return false;
  }

  /** send_extra_file_list: sub-lists until `atLeast` files lie beyond the current list. */
  private async sendExtra(atLeast: number): Promise<void> {
    const { conn } = this.ctx;
    while (!this.eof && this.total - this.oldTotal < atLeast) {
      const d = this.nextDir();
      if (!d) {
        this.endOfLists();
        break;
      }
      this.ndx.write(NDX_FLIST_OFFSET - d.dirNdx, this.out);
      await this.walker.subdirectory(d.entry.name, d.sources);
      const listed = await this.finish(this.walker.take());
      this.enc.beginList(this.nextNdxStart);
      await this.sendList(listed.files, d.entry, false);
      this.enqueue(listed, false);
      if (this.pending.length === 0) this.endOfLists();
      await conn.maybeFlush();
    }
  }

  /** The next directory in depth-first order (flist.c: first child, else next sibling, else up). */
  private nextDir(): PendingDir | undefined {
    while (this.pending.length > 0) {
      const top = this.pending[this.pending.length - 1]!;
      const d = top.shift();
      if (top.length === 0) this.pending.pop();
      if (d) return d;
    }
    return undefined;
  }

  private endOfLists(): void {
    if (this.eof) return;
    this.ndx.write(NDX_FLIST_EOF, this.out);
    this.ctx.conn.write(this.out.take());
    this.eof = true;
  }

  /** Sorted, cleaned and summed; with every source of each directory name (dup dirs). */
  private async finish(raw: SendEntry[]): Promise<Listed> {
    const sources = new Map<string, SendEntry[]>();
    for (const e of raw) {
      if (!isDir(e.mode)) continue;
      const s = sources.get(e.name);
      if (s) s.push(e);
      else sources.set(e.name, [e]);
    }
    const { files, totalSize } = await finishList(raw, this.ctx.build, this.ctx.checksumLength);
    this.ctx.stats.totalSize += totalSize;
    return { files, sources };
  }

  /** add_dirs_to_tree: number the list's directories and queue them for sub-lists. */
  private enqueue({ files, sources }: Listed, first: boolean): void {
    const queue: PendingDir[] = [];
    for (const f of files) {
      if (!isDir(f.mode)) continue;
      const dirNdx = this.dirCount++;
      if (first && f.name === ".") continue; // in dir_flist, never given a sub-list
      queue.push({ entry: f, dirNdx, sources: sources.get(f.name) ?? [f] });
    }
    if (queue.length > 0) this.pending.push(queue);
  }

  /** One list on the wire: entries, the end marker (io_error when it changed), stats. */
  private async sendList(files: SendEntry[], parent: SendEntry | null, first: boolean): Promise<void> {
    const { conn, protocol, stats, opts } = this.ctx;
    const w = this.out;
    const ioBefore = this.ioSent;
    for (const f of files) {
      this.enc.encode(f, w);
      if (w.len >= 32 * 1024) {
        stats.flistSize += w.len;
        conn.write(w.take());
        await conn.maybeFlush();
      }
    }
    const ioError = this.walker.ioError;
    const changed = ioError !== ioBefore;
    if (changed && !this.safe && opts.delete && (opts.deleteTiming === undefined || opts.deleteTiming === "during" || opts.deleteTiming === "delay")) {
      // flist.c fatal_unsafe_io_error: an old receiver would delete what the error hid.
      throw new ProtocolError(
        `FATAL I/O ERROR: dying to avoid a --delete-${opts.deleteTiming === "delay" ? "delay" : "during"} issue with a pre-3.0.7 receiver.`,
        RERR_UNSUPPORTED,
      );
    }
    this.enc.end(w, changed ? ioError : 0);
    stats.flistSize += w.len;
    conn.write(w.take());
    this.ioSent = ioError;
    // A changed io_error also goes as a message: after the first list when its end could not
    // carry it, after a sub-list at protocol 30 (send_file_list, send_extra_file_list).
    if (changed && (first ? !this.safe : protocol === 30)) await conn.sendMessage(MsgCode.IO_ERROR, int32(ioError));
    this.lists.push({ ndxStart: this.nextNdxStart, files, parent });
    this.nextNdxStart += files.length + 1;
    this.total += files.length;
    countFiles(files, stats);
  }
}

/** The stats' file counts (flist.c send_file_entry's stats.num_*). */
export function countFiles(files: readonly SendEntry[], stats: TransferStats): void {
  for (const f of files) {
    stats.numFiles++;
    if (isDir(f.mode)) stats.numDirs++;
    else if (isReg(f.mode)) stats.numRegFiles++;
    else if (isLink(f.mode)) stats.numSymlinks++;
    else if (isDevice(f.mode)) stats.numDevices++;
    else if (isSpecial(f.mode)) stats.numSpecials++;
    else stats.numSpecials++;
  }
}

function int32(v: number): Uint8Array {
  const p = new Uint8Array(4);
  new DataView(p.buffer).setInt32(0, v, true);
  return p;
}
