// The sender (sender.c send_files, match.c match_sums): answers each request of the peer's
// generator — index, item flags, the sum head and block sums of its basis — with the echoed
// request, the delta of our file against those blocks as tokens, and the whole-file checksum;
// then the phase ends, the stats a server sends (main.c handle_stats) and the final goodbye
// (main.c read_final_goodbye). Files are read in pieces: memory stays bounded per file.
import * as fs from "node:fs";
import { constants as C } from "node:fs";
import { createBlockSummer, createFileSummer, type BlockSummer, type ChecksumType, type FileSummer } from "../delta/checksum.js";
import { BlockMatcher, BlockSumsReader, type MatchToken } from "../delta/match.js";
import { SimdBuffer } from "../delta/wasm-simd.js";
import { sumHeadFileLength } from "../delta/sumsizes.js";
import { isDir, isLink, isDevice, isSpecial, isReg } from "../protocol/fileentry.js";
import { MAXPATHLEN } from "../protocol/flist-names.js";
import { MsgCode } from "../protocol/mux.js";
import { NDX_DEL_STATS, NDX_DONE, NdxReader, NdxWriter, readDelStats } from "../protocol/ndx.js";
import type { TransferOptions } from "../protocol/options.js";
import { readSumHead, writeSumHead, type SumHead } from "../protocol/sumhead.js";
import { createTokenWriter, type TokenCompression, type TokenWriter } from "../protocol/token.js";
import { Cursor, NeedMore, ProtocolError, type Writer } from "../protocol/wire.js";
import type { Connection } from "./connection.js";
import { AbortedError, IOERR_GENERAL, IOERR_VANISHED } from "./context.js";
import type { SyncEvents, TransferStats } from "./events.js";
import { errText, type BuiltFileList, type SendEntry } from "./flist-build.js";
import type { SourceHandoff } from "./handoff.js";
import type { SenderLists } from "./flist-inc.js";
import type { SetupResult } from "./setup.js";
import {
  ITEM_BASIS_TYPE_FOLLOWS,
  ITEM_IS_NEW,
  ITEM_MISSING_DATA,
  ITEM_TRANSFER,
  ITEM_XNAME_FOLLOWS,
  itemizeString,
  type ItemKind,
} from "./itemize.js";

/** rsync.h FNAMECMP_FNAME: the basis is the destination file itself. */
const FNAMECMP_FNAME = 0x80;
/** How much of a source file is read at a time. */
const READ_PIECE = 1 << 20;
/** The checksum field of a handed file (rsync.h MAX_DIGEST_LEN bytes at most). */
const NO_SUM = new Uint8Array(64);
/** The matcher's buffer: room for several pieces, so it is seldom compacted. */
const MATCH_BUFFER = 8 * READ_PIECE;
/** Files above this size have their start hashed while the block sums arrive. */
const PREHASH_MIN = 1 << 20;
/** Pieces read and matched between two turns of the event loop (reads are synchronous). */
const PIECES_PER_TURN = 16;

export interface SenderContext {
  conn: Connection;
  protocol: number;
  opts: TransferOptions;
  seed: number;
  xferSum: ChecksumType;
  xferSumLen: number;
  compression: TokenCompression;
  /** The sorted file list as sent: position = ndx (without inc-recursion). */
  files: readonly SendEntry[];
  /** With inc-recursion: the lists, sent as the receiver goes (`files` is then unused). */
  lists?: SenderLists | undefined;
  events: SyncEvents;
  stats: TransferStats;
  /** io_error bits (the walk's, then ours). */
  ioError: number;
  /** A transfer error was reported (the run ends with exit 23). */
  xferError: boolean;
  /** We run as the server: deletion stats are passed on, our stats are sent at the end. */
  amServer: boolean;
  signal?: AbortSignal | undefined;
  /** In-process local copy: whole files are handed to the receiver instead of streamed. */
  handoff?: SourceHandoff | undefined;
}


/** io.c read_vstring, bounded by MAXPATHLEN. Restartable. */
function readXname(c: Cursor): Uint8Array {
  const start = c.pos;
  try {
    let len = c.byte();
    if (len & 0x80) len = (len & 0x7f) * 0x100 + c.byte();
    if (len >= MAXPATHLEN) throw new ProtocolError(`over-long vstring received (${len} > ${MAXPATHLEN - 1})`);
    return c.bytes(len).slice();
  } catch (e) {
    c.pos = start;
    throw e;
  }
}

interface Request {
  ndx: number;
  /** The entry it names (for the parent directory of a sub-list: that directory). */
  file: SendEntry;
  iflags: number;
  basisType: number;
  xname: Uint8Array | null;
}

const kindOf = (mode: number): ItemKind =>
  isDir(mode) ? "d" : isLink(mode) ? "L" : isDevice(mode) ? "D" : isSpecial(mode) ? "S" : "f";

/** Recent pieces of the source, for the bytes of matched blocks (zlib feeds them to deflate). */
class SourceWindow {
  private pieces: { start: number; data: Uint8Array }[] = [];
  add(start: number, data: Uint8Array): void {
    this.pieces.push({ start, data });
  }
  /** Drop pieces that end at or before `pos`. */
  trim(pos: number): void {
    while (this.pieces.length > 0 && this.pieces[0]!.start + this.pieces[0]!.data.length <= pos) this.pieces.shift();
  }
  get(off: number, len: number): Uint8Array {
    const out = new Uint8Array(len);
    let got = 0;
    for (const p of this.pieces) {
      const pEnd = p.start + p.data.length;
      if (pEnd <= off + got || p.start >= off + len) continue;
      const from = off + got - p.start;
      const n = Math.min(p.data.length - from, len - got);
      out.set(p.data.subarray(from, from + n), got);
      got += n;
      if (got === len) return out;
    }
    throw new Error(`matched block at ${off} is no longer buffered`);
  }
}

/** A Sender for a connection set up as `setup`, sending `files`. */
export function senderFor(
  conn: Connection,
  setup: SetupResult,
  list: BuiltFileList,
  run: {
    opts: TransferOptions;
    events: SyncEvents;
    stats: TransferStats;
    amServer: boolean;
    signal?: AbortSignal | undefined;
    handoff?: SourceHandoff | undefined;
    lists?: SenderLists | undefined;
  },
): Sender {
  return new Sender({
    conn,
    protocol: setup.protocol,
    opts: run.opts,
    seed: setup.seed,
    xferSum: setup.sums.xfer,
    xferSumLen: setup.xferSumLen,
    compression: setup.compression,
    files: list.files,
    events: run.events,
    stats: run.stats,
    ioError: list.ioError,
    xferError: list.xferError,
    amServer: run.amServer,
    signal: run.signal,
    handoff: run.handoff,
    lists: run.lists,
  });
}

export class Sender {
  private readonly ndxIn: NdxReader;
  private readonly ndxOut: NdxWriter;
  private readonly tokens: TokenWriter;
  private blockSummer: BlockSummer | null = null;
  /** One read buffer for every file (its consumers copy what they keep). */
  private readonly readBuf = Buffer.allocUnsafe(READ_PIECE);
  /** The matcher's source buffer, shared by the files in turn. */
  private matchBuf: SimdBuffer | null = null;
  /** FLAG_FILE_SENT: a second request for a file is its redo. */
  private readonly sent = new Set<number>();

  constructor(readonly ctx: SenderContext) {
    this.ndxIn = new NdxReader(ctx.protocol);
    this.ndxOut = ctx.lists?.ndx ?? new NdxWriter(ctx.protocol);
    this.tokens = createTokenWriter(ctx.compression, { protocol: ctx.protocol, level: ctx.opts.compressLevel });
  }

  private throwIfAborted(): void {
    if (this.ctx.signal?.aborted) throw new AbortedError();
  }

  /**
   * The next index from the peer. With inc-recursion a quiet peer may be waiting for a list:
   * while nothing has arrived, more lists go out (io.c's extra_flist_sending_enabled), and
   * what is queued is flushed before waiting.
   */
  private async readNdx(): Promise<number> {
    const { conn, lists } = this.ctx;
    const decode = (c: Cursor) => this.ndxIn.read(c);
    if (lists) {
      for (;;) {
        const v = conn.in.tryRead(decode);
        if (v !== undefined) return v;
        if (!(await lists.idle())) break;
        this.takeListErrors();
        await conn.maybeFlush();
        await nextTurn(); // let the peer's bytes in
      }
      await conn.flush();
    }
    return conn.in.read(decode);
  }

  /** The walk's errors of the lists sent since, for this run's io_error and exit. */
  private takeListErrors(): void {
    const { ctx } = this;
    if (!ctx.lists) return;
    ctx.ioError |= ctx.lists.ioError;
    if (ctx.lists.xferError) ctx.xferError = true;
  }

  /** The entry a request names; a ProtocolError for one we never sent. */
  private fileAt(ndx: number): SendEntry {
    const { lists, files } = this.ctx;
    if (lists) return lists.entry(ndx);
    const f = files[ndx];
    if (!f) throw new ProtocolError(`Invalid file index: ${ndx} (${NDX_DONE} - ${files.length - 1}) [sender]`);
    return f;
  }

  /** A finished list's files: a later request for one of its indices is no redo. */
  private forget(from: number, to: number): void {
    if (to - from < this.sent.size) {
      for (let n = from; n < to; n++) this.sent.delete(n);
    } else {
      for (const n of this.sent) if (n >= from && n < to) this.sent.delete(n);
    }
  }

  /** send_extra_file_list(MIN_FILECNT_LOOKAHEAD) */
  private async fillLists(): Promise<void> {
    if (!this.ctx.lists) return;
    await this.ctx.lists.fill();
    this.takeListErrors();
  }

  /** rsync.c read_ndx_and_attrs: the next request, or NDX_DONE. */
  private async readRequest(): Promise<Request | number> {
    const { conn, protocol, files, lists } = this.ctx;
    for (;;) {
      const ndx = await this.readNdx();
      if (ndx === NDX_DONE) return NDX_DONE;
      if (ndx === NDX_DEL_STATS) {
        const d = await conn.in.read(readDelStats);
        const s = this.ctx.stats;
        [s.deletedFiles, s.deletedDirs, s.deletedSymlinks, s.deletedDevices, s.deletedSpecials] = [d[0]!, d[1]!, d[2]!, d[3]!, d[4]!];
        if (this.ctx.amServer) {
          // A server sender passes them on to the client receiver.
          const w = conn.scratch;
          this.ndxOut.write(NDX_DEL_STATS, w);
          for (const v of d) w.varint(v);
          conn.writeScratch();
        }
        continue;
      }
      // A sender takes no other negative index (not even the receiver's NDX_FLIST_*).
      if (ndx < 0) throw new ProtocolError(`Invalid file index: ${ndx} (${NDX_DONE} - ${files.length - 1}) [sender]`);
      const iflags = protocol >= 29 ? await conn.in.read((c) => c.int16()) : ITEM_TRANSFER | ITEM_MISSING_DATA;
      // The protocol-29 keep-alive: an index one past the list with ITEM_IS_NEW.
      if (protocol < 30 && !lists && ndx === files.length && iflags === ITEM_IS_NEW) continue;
      const f = this.fileAt(ndx);
      const basisType = iflags & ITEM_BASIS_TYPE_FOLLOWS ? await conn.in.read((c) => c.byte()) : FNAMECMP_FNAME;
      const xname = iflags & ITEM_XNAME_FOLLOWS ? await conn.in.read(readXname) : null;
      if (iflags & ITEM_TRANSFER && !isReg(f.mode)) {
        throw new ProtocolError(`received request to transfer non-regular file: ${ndx} [sender]`);
      }
      return { ndx, iflags, basisType, xname, file: f };
    }
  }

  /** sender.c write_ndx_and_attrs */
  private writeRequest(r: Request, w: Writer): void {
    this.ndxOut.write(r.ndx, w);
    if (this.ctx.protocol < 29) return;
    w.int16(r.iflags & 0xffff);
    if (r.iflags & ITEM_BASIS_TYPE_FOLLOWS) w.byte(r.basisType);
    if (r.iflags & ITEM_XNAME_FOLLOWS) {
      const x = r.xname ?? new Uint8Array(0);
      if (x.length > 0x7f) w.byte((x.length >> 8) | 0x80);
      w.byte(x.length & 0xff);
      w.bytes(x);
    }
  }

  private emit(r: Request, f: SendEntry): void {
    const ev = this.ctx.events.item;
    if (!ev) return;
    const kind = kindOf(f.mode);
    const item: Parameters<typeof ev>[0] = {
      name: isDir(f.mode) && f.name !== "." ? f.name + "/" : f.name === "." ? "./" : f.name,
      iflags: r.iflags,
      kind,
      transferred: (r.iflags & ITEM_TRANSFER) !== 0,
      itemize: itemizeString(r.iflags, kind, false),
    };
    if (f.linkTarget) item.linkTarget = Buffer.from(f.linkTarget).toString("utf8");
    if (r.xname && r.iflags & ITEM_XNAME_FOLLOWS && !isLink(f.mode)) item.hardLinkTo = Buffer.from(r.xname).toString("utf8");
    ev(item);
  }

  /** sender.c send_files: until the generator's last phase ends. */
  async run(): Promise<void> {
    const { ctx } = this;
    const { conn, protocol, opts, stats } = ctx;
    if (ctx.xferSum !== "none") this.blockSummer = await createBlockSummer(ctx.xferSum, protocol, ctx.seed);
    const maxPhase = protocol >= 29 ? 2 : 1;
    let phase = 0;
    const ioErrorAtStart = ctx.ioError;
    for (;;) {
      this.throwIfAborted();
      await this.fillLists();
      const r = await this.readRequest();
      if (r === NDX_DONE) {
        // sender.c: with inc-recursion each finished list ends with an NDX_DONE of its own; the
        // one that finishes the last list also ends the phase.
        if (ctx.lists?.listDone((from, to) => this.forget(from, to))) {
          this.ndxOut.write(NDX_DONE, conn.scratch);
          conn.writeScratch();
          continue;
        }
        if (++phase > maxPhase) break;
        this.ndxOut.write(NDX_DONE, conn.scratch);
        conn.writeScratch();
        await conn.flush();
        continue;
      }
      const req = r as Request;
      await this.fillLists();
      const f = req.file;
      this.emit(req, f);
      if (!(req.iflags & ITEM_TRANSFER)) {
        this.writeRequest(req, conn.scratch);
        conn.writeScratch();
        if (req.iflags & ITEM_IS_NEW) {
          // Each kind counts once (createdFiles is the regular files, as the report prints).
          if (isDir(f.mode)) stats.createdDirs++;
          else if (isLink(f.mode)) stats.createdSymlinks++;
          else if (isDevice(f.mode)) stats.createdDevices++;
          else if (isSpecial(f.mode)) stats.createdSpecials++;
          else stats.createdFiles++;
        }
        await conn.maybeFlush();
        continue;
      }
      if (phase === 2) throw new ProtocolError("got transfer request in phase 2 [sender]");
      const redo = this.sent.has(req.ndx);
      if (!redo && req.iflags & ITEM_IS_NEW) stats.createdFiles++;
      stats.transferredFiles++;
      stats.totalTransferredSize += f.size;
      if (opts.dryRun) {
        this.writeRequest(req, conn.scratch);
        conn.writeScratch();
        await conn.maybeFlush();
        continue;
      }
      await this.sendFile(req, f, redo);
      this.sent.add(req.ndx);
      await conn.maybeFlush();
    }
    if (ctx.ioError !== ioErrorAtStart && protocol >= 30) {
      await conn.sendMessage(MsgCode.IO_ERROR, int32Payload(ctx.ioError));
    }
    this.ndxOut.write(NDX_DONE, conn.scratch);
    conn.writeScratch();
    await conn.flush();
  }

  /** main.c handle_stats (a server sender sends its totals) and read_final_goodbye. */
  async finish(): Promise<void> {
    const { ctx } = this;
    const { conn, protocol, stats } = ctx;
    if (ctx.amServer) {
      const w = conn.scratch;
      const read = conn.bytesIn;
      const written = conn.bytesOut;
      w.varlong30(read, protocol, 3).varlong30(written, protocol, 3).varlong30(stats.totalSize, protocol, 3);
      if (protocol >= 29) w.varlong30(stats.flistBuildTime, protocol, 3).varlong30(stats.flistXferTime, protocol, 3);
      conn.writeScratch();
      await conn.flush();
    }
    let ndx: number;
    if (protocol < 29) ndx = await conn.in.read((c) => c.int32());
    else {
      ndx = await this.readGoodbye();
      if (protocol >= 31 && ndx === NDX_DONE) {
        this.ndxOut.write(NDX_DONE, conn.scratch);
        conn.writeScratch();
        await conn.flush();
        ndx = await this.readGoodbye();
      }
    }
    if (ndx !== NDX_DONE) throw new ProtocolError(`Invalid packet at end of run (${ndx}) [sender]`);
  }

  private async readGoodbye(): Promise<number> {
    const r = await this.readRequest();
    return typeof r === "number" ? r : r.ndx;
  }

  /** The open of a file to send: never through a symlink, never outside its transfer root. */
  private openSource(f: SendEntry): { fd: number; size: number } | null {
    const { ctx } = this;
    let fd: number;
    try {
      fd = fs.openSync(f.path, C.O_RDONLY | C.O_NOFOLLOW);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") {
        ctx.ioError |= IOERR_VANISHED;
        ctx.events.message?.("warning", `file has vanished: "${f.path}"`);
      } else {
        ctx.ioError |= IOERR_GENERAL;
        ctx.xferError = true;
        ctx.events.message?.("error", `rsync: [sender] send_files failed to open "${f.path}": ${errText(e)}`);
      }
      return null;
    }
    const st = fs.fstatSync(fd, { bigint: true });
    // The inode listed by the walk (found under the root then) needs no more checking.
    if (st.dev === f.dev && st.ino === f.ino) return { fd, size: Number(st.size) };
    // Another one: a parent directory swapped for a symlink could lead the open elsewhere, so
    // check where the descriptor really is (Linux /proc; elsewhere O_NOFOLLOW stands alone).
    let real: string | null = null;
    try {
      real = fs.readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      real = null;
    }
    const root = f.root.endsWith("/") ? f.root : f.root + "/";
    if (real !== null && real.startsWith("/") && !real.startsWith(root)) {
      fs.closeSync(fd);
      ctx.ioError |= IOERR_GENERAL;
      ctx.xferError = true;
      ctx.events.message?.("error", `rsync: [sender] refusing to send "${f.path}": it resolves outside the transfer root (${real})`);
      return null;
    }
    return { fd, size: Number(st.size) };
  }

  private async noSend(ndx: number): Promise<void> {
    if (this.ctx.protocol >= 30) await this.ctx.conn.sendMessage(MsgCode.NO_SEND, int32Payload(ndx));
  }

  /** One file: sum head and block sums in, echo, tokens and the whole-file checksum out. */
  private async sendFile(req: Request, f: SendEntry, redo: boolean): Promise<void> {
    const { ctx } = this;
    const { conn, protocol, opts } = ctx;
    // --append sends only what follows the receiver's length (not in the redo); below
    // protocol 30 it is --append-verify: the kept part is checksummed too (compat.c).
    const append = opts.append && !redo;
    const appendVerify = append && protocol < 30;
    const head: SumHead = await conn.in.read((c) => readSumHead(c, protocol, ctx.xferSumLen));
    const sumsReader = !append && head.count > 0 ? new BlockSumsReader(head, protocol, ctx.xferSumLen) : null;
    // A whole file (no basis sums) of a first attempt may go by hand to an in-process
    // receiver; a redo is always streamed.
    const handoff = !append && !redo && head.count === 0 ? ctx.handoff : undefined;
    if (handoff?.full) {
      // The receiver frees room as it reads the requests already answered: let them go first.
      await conn.flush();
      await handoff.room();
    }
    // Made (the first time: its kernels assembled) while the sums are on their way.
    if (sumsReader) this.matchBuf ??= new SimdBuffer(MATCH_BUFFER);
    // The file is opened while the sums are still arriving; a file that cannot be sent still
    // has its sums read, to keep the stream in step.
    const src = this.openSource(f);
    let fd = src?.fd ?? null;
    try {
      if (handoff && src && handoff.offer(req.ndx, src)) {
        fd = null; // the receiver closes it
        this.writeRequest(req, conn.scratch);
        writeSumHead(head, conn.scratch);
        this.handedFile(src.size);
        return;
      }
      const len = src?.size ?? 0;
      const summer = createFileSummer(ctx.xferSum, ctx.protocol, ctx.seed);
      // While the generator is still sending sums we would only wait: hash the file's start
      // meanwhile (the match pass then skips what is already summed). Not for xxh128: summed in
      // place during the match pass it costs less than reading those bytes twice.
      const stop = { done: false };
      const early = fd !== null && sumsReader && len > PREHASH_MIN && ctx.xferSum !== "xxh128";
      const pre = early && fd !== null ? this.prehash(fd, len, summer, stop) : null;
      let matcher: BlockMatcher | null = null;
      if (sumsReader) {
        try {
          while (!sumsReader.done) {
            // Take every complete entry that is here; wait for more when none is.
            await conn.in.read((c) => {
              const at = c.pos;
              if (!sumsReader.read(c) && c.pos === at) throw new NeedMore();
              return true;
            });
          }
        } finally {
          stop.done = true;
        }
        if (!this.blockSummer) throw new ProtocolError(`block sums received for ${f.name} with checksum "none"`);
        // sender.c updating_basis_file: --inplace rewrites the basis itself.
        const inplace = (opts.inplace || opts.append) && (protocol >= 29 ? req.basisType === FNAMECMP_FNAME : true);
        matcher = new BlockMatcher(head, sumsReader.sums(), this.blockSummer, { inplace, buffer: this.matchBuf! });
      }
      const hashed = pre ? await pre : { to: 0, short: false };
      if (fd === null) {
        await this.noSend(req.ndx);
        return;
      }
      let start = 0;
      if (append) {
        if (len < f.size) {
          ctx.events.message?.("warning", `skipped diminished file: "${f.path}"`);
          await this.noSend(req.ndx);
          return;
        }
        start = Math.min(sumHeadFileLength(head), len);
      }
      this.writeRequest(req, conn.scratch);
      writeSumHead(head, conn.scratch);
      conn.writeScratch();
      await this.stream(fd, len, start, appendVerify, head, matcher, summer, hashed);
    } finally {
      if (fd !== null) fs.closeSync(fd);
    }
  }

  /**
   * The answer for a handed file: no literal data, the end token, and a checksum field of
   * zeros. The receiver reads the bytes from the descriptor itself and ignores that field:
   * with no transport between the read and the write there is nothing for a checksum to
   * verify, and the one fault the sender's checksum would carry — a file that shrank while it
   * was read (match.c) — the receiver sees as a short read and treats alike.
   */
  private handedFile(size: number): void {
    const { ctx } = this;
    const w = ctx.conn.scratch;
    this.tokens.end(w);
    w.bytes(NO_SUM.subarray(0, ctx.xferSumLen));
    ctx.conn.writeScratch();
    ctx.stats.literalData += size;
  }

  /** Sum the file from its start up to `len`, or until `stop.done`, in READ_PIECE steps. */
  private async prehash(fd: number, len: number, summer: FileSummer, stop: { done: boolean }): Promise<{ to: number; short: boolean }> {
    const buf = this.readBuf; // free: the match pass has not begun
    let pos = 0;
    let short = false;
    while (pos < len && !stop.done) {
      const want = Math.min(READ_PIECE, len - pos);
      let got = 0;
      try {
        got = readAt(fd, buf, 0, want, pos);
      } catch {
        got = 0;
      }
      if (got < want) {
        buf.fill(0, got, want);
        short = true;
      }
      summer.update(buf.subarray(0, want));
      pos += want;
      // The sums' arrival (stop.done) is seen between pieces.
      await nextTurn();
    }
    return { to: pos, short };
  }

  /** match.c match_sums over the file, piece by piece. */
  private async stream(
    fd: number,
    len: number,
    start: number,
    sumPrefix: boolean,
    head: SumHead,
    matcher: BlockMatcher | null,
    summer: FileSummer,
    hashed: { to: number; short: boolean },
  ): Promise<void> {
    const { ctx, tokens } = this;
    const { conn, stats } = ctx;
    const w = conn.scratch;
    const window = matcher && tokens.needsMatchData ? new SourceWindow() : null;
    let readError = hashed.short;
    let tokPos = start;
    const emit = (list: MatchToken[]) => {
      for (const t of list) {
        if (t.kind === "literal") {
          tokens.literal(t.data, w);
          tokPos += t.data.length;
        } else {
          const blen = t.index === head.count - 1 && head.remainder !== 0 ? head.remainder : head.blength;
          tokens.match(t.index, window ? window.get(tokPos, blen) : undefined, w);
          tokPos += blen;
        }
      }
      window?.trim(tokPos);
    };

    let pos = 0;
    // What the receiver already has (--append-verify sums it; --append skips it).
    if (start > 0) {
      if (sumPrefix && (await this.prehash(fd, start, summer, { done: false })).short) readError = true;
      pos = start;
    }
    // Each piece is read straight into the matcher's buffer, else into the read buffer (its
    // consumers copy what they keep before the next read); with a match-data window every
    // piece gets its own.
    const inPlace = matcher !== null && !window;
    const reuse = matcher === null ? this.readBuf : null;
    const readPiece = (at: number): { buf: Uint8Array; got: number; want: number } => {
      const want = Math.min(READ_PIECE, len - at);
      const buf = inPlace ? matcher.input(want) : (reuse ?? Buffer.allocUnsafe(want));
      let got = 0;
      while (got < want) {
        let n = 0;
        try {
          n = readAt(fd, buf, got, want - got, at + got);
        } catch {
          n = 0;
        }
        if (n === 0) break;
        got += n;
      }
      return { buf, got, want };
    };
    const sumPiece = (v: Uint8Array) => summer.update(v);
    let pieces = 0;
    while (pos < len) {
      // Signals and the peer's messages get their turn now and then.
      if (++pieces % PIECES_PER_TURN === 0) await nextTurn();
      this.throwIfAborted();
      const { buf, got, want } = readPiece(pos);
      if (got < want) {
        // The file shrank or failed under us: zeros stand in, and a bad checksum makes the
        // receiver discard the result (match.c: buf->status).
        buf.fill(0, got, want);
        readError = true;
      }
      const piece = buf.subarray(0, want);
      if (inPlace) matcher.commit(want);
      // Prehashed pieces are aligned: all or nothing. With a matcher the checksum is taken over
      // the bytes where it keeps them (wasm memory: summed in place).
      const sumIt = pos >= hashed.to;
      if (inPlace) {
        emit(matcher.run(sumIt ? sumPiece : undefined));
      } else if (matcher) {
        window!.add(pos, piece);
        emit(matcher.push(piece, sumIt ? sumPiece : undefined));
      } else {
        if (sumIt) summer.update(piece);
        tokens.literal(piece, w);
        stats.literalData += want;
      }
      pos += want;
      conn.writeScratch();
      await conn.maybeFlush();
    }
    if (matcher) {
      emit(matcher.finish());
      stats.literalData += matcher.stats.literalBytes;
      stats.matchedData += matcher.stats.matchedBytes;
    }
    tokens.end(w);
    let sum = summer.digest().subarray(0, ctx.xferSumLen);
    if (readError) {
      // match.c: all bits off (unless that is the sum: then the last 0 bit turned on).
      const zero = sum.every((b) => b === 0);
      sum = new Uint8Array(ctx.xferSumLen);
      if (zero) sum[sum.length - 1] = 1;
    }
    w.bytes(sum);
    conn.writeScratch();
  }
}

/**
 * A read at an offset, synchronous as rsync's own (match.c map_ptr): measured on a 2-core
 * machine, reads in the thread pool cost the push of a 1 GB file about 6% more wall time —
 * the pool's thread copies on the core the matcher runs on, and each hand-over is a wake-up.
 * The kernel's read-ahead keeps a sequential read ahead of the matcher.
 */
function readAt(fd: number, buf: Uint8Array, off: number, len: number, pos: number): number {
  return fs.readSync(fd, buf, off, len, pos);
}

/** One turn of the event loop (I/O callbacks and signal handlers run). */
function nextTurn(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

function int32Payload(v: number): Uint8Array {
  const p = new Uint8Array(4);
  new DataView(p.buffer).setInt32(0, v, true);
  return p;
}
