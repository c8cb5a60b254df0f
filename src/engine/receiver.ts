// The receiver (receiver.c recv_files / receive_data): reads the sender's answers — index,
// item flags, the echoed sum head, tokens, whole-file checksum — rebuilds each file from
// literal data and blocks of the basis into a temp file, verifies it, and renames it into place.
import * as fs from "node:fs";
import { createFileSummer } from "../delta/checksum.js";
import { isReg } from "../protocol/fileentry.js";
import { decodeVstring } from "../protocol/handshake.js";
import { NDX_DEL_STATS, NDX_DONE, readDelStats } from "../protocol/ndx.js";
import { readSumHead, type SumHead } from "../protocol/sumhead.js";
import { createTokenReader } from "../protocol/token.js";
import { ProtocolError } from "../protocol/wire.js";
import { fdTarget, setAttrs, wantedMode, wantedOwner } from "./attrs.js";
import { destName, reportError, throwIfAborted, type ReceiveContext } from "./context.js";
import type { HandedSource } from "./handoff.js";
import { nativeAddon } from "./native.js";
import { ITEM_BASIS_TYPE_FOLLOWS, ITEM_MISSING_DATA, ITEM_TRANSFER, ITEM_XNAME_FOLLOWS } from "./itemize.js";

const WRITE_BUF = 256 * 1024;
/** Handed files: copied in line up to SYNC_COPY_MAX, else through the thread pool. */
const COPY_BUF = 256 * 1024;
const SYNC_COPY_MAX = 64 * 1024;
const ASYNC_COPY_BUF = 1 << 20;
/** Files whose bytes may be in copy at once (each holds a buffer and two descriptors). */
const MAX_IN_FLIGHT = 4;
const BASIS_WINDOW = 256 * 1024;
const MAXPATHLEN = 1024;

/** What the receiver tells the generator as it goes (rsync's MSG_DONE / MSG_REDO / MSG_SUCCESS). */
export interface ReceiverSignals {
  phaseDone(phase: number): void;
  redo(ndx: number): void;
  fileDone(ndx: number, ok: boolean): void;
}

export interface ReceiverResult {
  peerRead: number;
  peerWritten: number;
  totalSize: number;
  flistBuildTime: number;
  flistXferTime: number;
}

/** Reads one index from the sender, skipping deletion stats (rsync.c read_ndx_and_attrs). */
async function readNdx(ctx: ReceiveContext): Promise<number> {
  for (;;) {
    const ndx = await ctx.conn.in.read((c) => ctx.ndxIn.read(c));
    if (ndx === NDX_DEL_STATS) {
      await ctx.conn.in.read(readDelStats);
      continue;
    }
    if (ndx >= 0 || ndx === NDX_DONE) return ndx;
    throw new ProtocolError(`Invalid file index: ${ndx} (-1 - ${ctx.files.length - 1})`);
  }
}

export async function runReceiver(ctx: ReceiveContext, sig: ReceiverSignals): Promise<ReceiverResult> {
  const { conn, protocol } = ctx;
  const maxPhase = protocol >= 29 ? 2 : 1;
  let phase = 0;
  const sent = new Set<number>(); // FLAG_FILE_SENT: a second arrival is the redo
  // Files whose wire part is read but whose bytes are still being copied (handed files):
  // at most MAX_IN_FLIGHT, all finished before a phase ends (their redos belong to it).
  const inFlight = new Set<Promise<void>>();
  let failed: { error: unknown } | null = null;
  const drain = async () => {
    while (inFlight.size > 0) await Promise.race(inFlight);
    if (failed) throw failed.error;
  };
  try {
    await receiveAll();
  } catch (e) {
    await Promise.allSettled(inFlight);
    throw e;
  }

  async function receiveAll(): Promise<void> {
    for (;;) {
      throwIfAborted(ctx);
      if (failed) throw failed.error;
      const ndx = await readNdx(ctx);
      if (ndx === NDX_DONE) {
        await drain();
        if (++phase > maxPhase) break;
        sig.phaseDone(phase);
        continue;
      }
      if (ndx >= ctx.files.length) {
        throw new ProtocolError(`Invalid file index: ${ndx} (-1 - ${ctx.files.length - 1})`);
      }
      let iflags = ITEM_TRANSFER | ITEM_MISSING_DATA;
      if (protocol >= 29) iflags = await conn.in.read((c) => c.int16());
      if (iflags & ITEM_BASIS_TYPE_FOLLOWS) {
        const t = await conn.in.read((c) => c.byte());
        if (t !== 0x80) throw new ProtocolError(`unexpected basis type ${t} for index ${ndx}`);
      }
      if (iflags & ITEM_XNAME_FOLLOWS) {
        await conn.in.read((c) => decodeVstring(c, MAXPATHLEN));
      }
      if (!(iflags & ITEM_TRANSFER)) continue;
      if (phase === 2) throw new ProtocolError("got transfer request in phase 2");
      const file = ctx.files[ndx];
      if (!file) throw new ProtocolError(`refusing transfer of cleared file index ${ndx}`);
      if (!isReg(file.mode)) {
        throw new ProtocolError(`received request to transfer non-regular file: ${ndx}`);
      }
      const redoing = sent.has(ndx);
      sent.add(ndx);
      ctx.stats.transferredFiles++;
      ctx.stats.totalTransferredSize += file.size;
      let wireDone!: () => void;
      const wire = new Promise<void>((resolve) => (wireDone = resolve));
      const done = receiveFile(ctx, ndx, redoing, wireDone);
      await Promise.race([wire, done]);
      const settled: Promise<void> = done.then(
        (ok) => {
          inFlight.delete(settled);
          if (ok === "redo") sig.redo(ndx);
          else sig.fileDone(ndx, ok === "ok");
        },
        (e: unknown) => {
          inFlight.delete(settled);
          failed ??= { error: e };
        },
      );
      inFlight.add(settled);
      while (inFlight.size >= MAX_IN_FLIGHT) await Promise.race(inFlight);
    }
    await drain();
  }

  // Below protocol 29 there is no second phase: what the generator waits for is over too.
  if (phase <= 2) sig.phaseDone(2);

  // main.c handle_stats: the sender's totals (read and written swap meaning here).
  const peer = await conn.in.read((c) => {
    const start = c.pos;
    try {
      const written = c.varlong30(protocol, 3);
      const read = c.varlong30(protocol, 3);
      const size = c.varlong30(protocol, 3);
      let build = 0;
      let xfer = 0;
      if (protocol >= 29) {
        build = c.varlong30(protocol, 3);
        xfer = c.varlong30(protocol, 3);
      }
      return { peerWritten: written, peerRead: read, totalSize: size, flistBuildTime: build, flistXferTime: xfer };
    } catch (e) {
      c.pos = start;
      throw e;
    }
  });
  sig.phaseDone(3);
  if (protocol >= 31) {
    // main.c read_final_goodbye: the sender echoes our last phase's NDX_DONE.
    const ndx = await readNdx(ctx);
    if (ndx !== NDX_DONE) throw new ProtocolError(`Invalid packet at end of run (${ndx})`);
  }
  return peer;
}

type ReceiveOutcome = "ok" | "redo" | "failed";

// One file is read off the wire at a time: its basis window (and, written in line, its write
// buffer) is reused file after file.
let sharedWriteBuf: Buffer | null = null;
let sharedBasisBuf: Buffer | null = null;

/**
 * Write buffers of streamed files whose writes go through the thread pool (write-behind): the
 * receiver goes on reading the stream — the rest of the file, the next file — while the bytes
 * already received are written. At most `max` buffers are taken at once (a little over, for
 * one step of the caller, who then waits for room()).
 */
class WriteBehind {
  private readonly free: Buffer[] = [];
  private taken = 0;
  private waiters: (() => void)[] = [];

  constructor(private readonly max: number) {}

  get full(): boolean {
    return this.taken >= this.max;
  }

  take(): Buffer {
    this.taken++;
    return this.free.pop() ?? Buffer.allocUnsafe(WRITE_BUF);
  }

  give(b: Buffer): void {
    this.taken--;
    this.free.push(b);
    if (!this.full) for (const w of this.waiters.splice(0)) w();
  }

  /** Resolves when a buffer may be taken again. */
  room(): Promise<void> {
    return this.full ? new Promise((resolve) => this.waiters.push(resolve)) : Promise.resolve();
  }
}

/** Write-behind buffers of one receiver: 8 × 256 KiB in flight at most. */
const WRITE_BEHIND_BUFFERS = 8;
const writeBehind = new WriteBehind(WRITE_BEHIND_BUFFERS);

/**
 * Writes bytes sequentially (or at offsets with --inplace / -S), coalescing small pieces. With
 * `behind`, full buffers are written on the thread pool at their offsets (pwrite): drain()
 * waits for them, and nothing may close the descriptor before settle().
 */
class OutputFile {
  private buf: Buffer;
  private len = 0;
  private bufStart = 0;
  offset = 0;
  private readonly writes = new Set<Promise<void>>();
  private failure: Error | null = null;

  constructor(
    readonly fd: number | null,
    private readonly sparse: boolean,
    private readonly behind: WriteBehind | null = null,
  ) {
    this.buf = behind && fd !== null ? behind.take() : (sharedWriteBuf ??= Buffer.allocUnsafe(WRITE_BUF));
  }

  /** The write-behind buffers are all taken: wait for room() before writing more. */
  get mustWait(): boolean {
    return this.behind !== null && this.behind.full;
  }

  room(): Promise<void> {
    return this.behind ? this.behind.room() : Promise.resolve();
  }

  /** Every write so far done; throws the first write error. */
  async drain(): Promise<void> {
    this.flush();
    while (this.writes.size > 0) await Promise.all(this.writes);
    this.release();
    if (this.failure) throw this.failure;
  }

  /** Every write so far finished, failed or not (before the descriptor is closed). */
  async settle(): Promise<void> {
    while (this.writes.size > 0) await Promise.all(this.writes);
    this.len = 0; // what was not flushed is not kept
    this.release();
  }

  /** The buffer being filled goes back to the pool. */
  private release(): void {
    if (this.behind && this.fd !== null && this.len === 0 && this.buf.length > 0) {
      this.behind.give(this.buf);
      this.buf = Buffer.alloc(0);
    }
  }

  /** buf[0, n) to the file at pos on the thread pool; buf goes back to the pool after. */
  private submit(buf: Buffer, n: number, pos: number): void {
    const fd = this.fd!;
    const behind = this.behind!;
    const p = new Promise<void>((resolve) => {
      const step = (done: number) => {
        fs.write(fd, buf, done, n - done, pos + done, (e, w) => {
          if (e) this.failure ??= e;
          else if (done + w < n) return step(done + w);
          this.writes.delete(p);
          behind.give(buf);
          resolve();
        });
      };
      step(0);
    });
    this.writes.add(p);
  }

  write(data: Uint8Array): void {
    if (this.fd === null) {
      this.offset += data.length;
      return;
    }
    if (this.len + data.length > this.buf.length) this.flush();
    if (data.length >= this.buf.length) {
      this.writeAt(data, this.offset);
      this.offset += data.length;
      this.bufStart = this.offset;
      return;
    }
    if (this.len === 0) this.bufStart = this.offset;
    this.buf.set(data, this.len);
    this.len += data.length;
    this.offset += data.length;
  }

  /** Write `data` at once, without copying it into the buffer (it is the caller's to reuse). */
  writeNow(data: Uint8Array): void {
    this.flush();
    if (this.fd !== null) this.writeAt(data, this.offset);
    this.offset += data.length;
    this.bufStart = this.offset;
  }

  /** Advance without writing (inplace: the bytes there are already right). */
  skip(n: number): void {
    this.flush();
    this.offset += n;
    this.bufStart = this.offset;
  }

  flush(): void {
    if (this.len === 0) return;
    const n = this.len;
    this.len = 0;
    if (this.behind && this.fd !== null) {
      if (this.failure) throw this.failure;
      const full = this.buf;
      this.buf = this.behind.take();
      this.submit(full, n, this.bufStart);
    } else {
      this.writeAt(this.buf.subarray(0, n), this.bufStart);
    }
    this.bufStart = this.offset;
  }

  private writeAll(data: Uint8Array, from: number, to: number, pos: number): void {
    let done = from;
    while (done < to) done += fs.writeSync(this.fd!, data, done, to - done, pos + done - from);
  }

  private writeAt(data: Uint8Array, pos: number): void {
    if (!this.sparse) {
      this.writeAll(data, 0, data.length, pos);
      return;
    }
    // fileio.c write_sparse: runs of zeros become holes (seek past them).
    let i = 0;
    const n = data.length;
    while (i < n) {
      let j = i;
      while (j < n && data[j] === 0) j++;
      if (j - i >= 1024 || j === n) {
        i = j;
        continue;
      }
      let k = j;
      while (k < n) {
        if (data[k] === 0) {
          let z = k;
          while (z < n && data[z] === 0) z++;
          if (z - k >= 1024 || z === n) break;
          k = z;
        } else k++;
      }
      this.writeAll(data, i, k, pos + i);
      i = k;
    }
  }
}

/** Reads basis blocks through a window so runs of matched blocks cost few reads. */
class BasisReader {
  private win = (sharedBasisBuf ??= Buffer.allocUnsafe(BASIS_WINDOW));
  private winStart = 0;
  private winLen = 0;
  constructor(
    private readonly fd: number,
    private readonly size: number,
  ) {}

  read(offset: number, len: number): Uint8Array {
    if (offset >= this.winStart && offset + len <= this.winStart + this.winLen) {
      return this.win.subarray(offset - this.winStart, offset - this.winStart + len);
    }
    const want = Math.max(len, Math.min(BASIS_WINDOW, this.size - offset));
    if (want > this.win.length) this.win = Buffer.allocUnsafe(want);
    let got = 0;
    while (got < want) {
      const n = fs.readSync(this.fd, this.win, got, want - got, offset + got);
      if (n === 0) break;
      got += n;
    }
    // Past the basis's end (it shrank under us): the missing bytes read as zeros and the
    // whole-file checksum sends the file to the redo phase.
    if (got < want) this.win.fill(0, got, want);
    this.winStart = offset;
    this.winLen = want;
    return this.win.subarray(0, len);
  }
}

/**
 * One requested file. `wireDone` is called once nothing more of this file is to be read from
 * the stream: the receiver then reads the next request while a handed file is still copied.
 */
async function receiveFile(ctx: ReceiveContext, ndx: number, redoing: boolean, wireDone: () => void): Promise<ReceiveOutcome> {
  const { conn, opts, dest } = ctx;
  const file = ctx.files[ndx]!;
  const name = destName(ctx, ndx);
  const head: SumHead = await conn.in.read((c) => readSumHead(c, ctx.protocol, ctx.xferSumLen));
  // The sender echoes the sum head we sent (sender.c): anything else is not our basis.
  const sent = ctx.sentHeads.get(ndx);
  if (!opts.dryRun) {
    if (!sent) throw new ProtocolError(`the sender sent index ${ndx} (${name}), which was not requested`);
    if (sent.count !== head.count || sent.blength !== head.blength || sent.s2length !== head.s2length || sent.remainder !== head.remainder) {
      throw new ProtocolError(`the sender's sum head for ${name} does not match the one requested`);
    }
    ctx.sentHeads.delete(ndx);
  }

  // The sender answered on the wire and handed the file over (an in-process local copy).
  const handed = ctx.handoff?.take(ndx);
  let basis: { fd: number; size: number } | null = null;
  let out: number | null = null;
  let tmp: string | null = null;
  let failure: string | null = null;
  let interrupted = true;
  let writer: OutputFile | null = null;
  const dry = opts.dryRun;
  // options.c: --append implies --inplace; its skip applies outside the redo (append_mode < 0).
  const inplace = opts.inplace || opts.append;
  const appending = opts.append && !redoing;
  try {
    if (!dry) {
      try {
        dest.checkParents(name);
        if (head.count > 0 && !inplace) basis = dest.openBasis(name);
        if (inplace) {
          out = dest.openInplace(name);
        } else {
          const t = dest.createTemp(name);
          tmp = t.tmp;
          out = t.fd;
          ctx.temps.add(tmp);
        }
      } catch (e) {
        failure = `mkstemp "${name}" failed: ${(e as Error).message}`;
      }
    }
    // A streamed file's bytes are written behind (thread pool) while the stream is read on;
    // not in place (its blocks are read back from the file being written) nor sparse.
    writer = new OutputFile(out, opts.sparse && !inplace, !handed && !inplace && !opts.sparse ? writeBehind : null);
    const basisReader =
      inplace && out !== null
        ? new BasisReader(out, fs.fstatSync(out).size)
        : basis
          ? new BasisReader(basis.fd, basis.size)
          : null;
    const tokens = (ctx.tokenReader ??= createTokenReader(ctx.compression, { protocol: ctx.protocol }));
    const summer = handed ? null : createFileSummer(ctx.xferSum, ctx.protocol, ctx.seed);
    if (appending && summer && head.count > 0) {
      // receiver.c receive_data: the kept length is the sum head's; below protocol 30 (append
      // verify) it is part of the whole-file checksum. New data goes after it.
      const kept = head.count * head.blength - (head.remainder ? head.blength - head.remainder : 0);
      if (ctx.protocol < 30 && basisReader) {
        for (let off = 0; off < kept; off += BASIS_WINDOW) summer.update(basisReader.read(off, Math.min(BASIS_WINDOW, kept - off)));
      }
      writer.skip(kept);
    }
    for (;;) {
      const ev = await conn.in.read((c) => tokens.next(c));
      if (ev.kind === "end") break;
      if (!summer) throw new ProtocolError(`the sender sent data for ${name}, which it handed over`);
      if (ev.kind === "literal") {
        if (ev.data.length === 0) continue;
        summer.update(ev.data);
        ctx.stats.literalData += ev.data.length;
        writer.write(ev.data);
        if (writer.mustWait) await writer.room();
        continue;
      }
      if (ev.index < 0 || ev.count < 1 || ev.index + ev.count > head.count) {
        throw new ProtocolError(`block index ${ev.index + ev.count - 1} out of range for ${name} (${head.count} blocks)`);
      }
      for (let k = 0; k < ev.count; k++) {
        const i = ev.index + k;
        const off = i * head.blength;
        const len = i === head.count - 1 && head.remainder !== 0 ? head.remainder : head.blength;
        ctx.stats.matchedData += len;
        if (!basisReader) {
          if (failure || dry) {
            // Nothing to copy from: keep the stream in step, the file is not kept anyway.
            if (tokens.needsMatchData) tokens.seeMatch(new Uint8Array(len));
            writer.offset += len;
            continue;
          }
          throw new ProtocolError(`sender referenced block ${i} of ${name}, which has no basis`);
        }
        const block = basisReader.read(off, len);
        summer.update(block);
        if (tokens.needsMatchData) tokens.seeMatch(block);
        if (inplace && off === writer.offset) writer.skip(len);
        else writer.write(block);
        // Per block, not per token: one run token may stand for thousands of blocks.
        if (writer.mustWait) await writer.room();
      }
    }
    writer.flush();
    const sum = await conn.in.readBytes(ctx.xferSumLen);
    let shortRead = false;
    if (handed) {
      ctx.stats.literalData += handed.size;
      wireDone();
      if (out !== null) shortRead = await copyHanded(ctx, handed, writer, opts.sparse || opts.inplace);
    } else {
      // The next request is read while this file's last writes finish.
      wireDone();
      await writer.drain();
    }
    interrupted = false;
    // A handed file never passed through the stream: its checksum field is not one (see
    // handoff.ts); a short read stands for the sender's failed checksum (match.c).
    const verified = summer
      ? Buffer.compare(Buffer.from(sum), Buffer.from(summer.digest().subarray(0, ctx.xferSumLen))) === 0
      : !shortRead;
    if (failure) {
      reportError(ctx, `krsync: ${failure}`);
      return "failed";
    }
    if (dry) return "ok";
    if (inplace) fs.ftruncateSync(out!, writer.offset);
    else if (opts.sparse && writer.offset > 0) fs.ftruncateSync(out!, writer.offset);
    if (!verified) {
      if (!redoing) {
        if (opts.verbose > 0 || opts.itemize) {
          ctx.events.message?.("warning", `WARNING: ${name} failed verification -- update discarded (will try again).`);
        }
        return "redo";
      }
      reportError(ctx, `ERROR: ${name} failed verification -- update discarded.`);
      return "failed";
    }
    // rsync.c finish_transfer: attributes on the temp file, then the rename.
    const own = wantedOwner(file, opts, ctx.owners);
    const existing = inplace ? null : dest.lstat(name);
    const mode = wantedMode(file, opts, existing && isReg(existing.mode) ? existing : null, ctx.dfltPerms);
    setAttrs(
      fdTarget(out!),
      null,
      { own, mode: mode ?? (existing && isReg(existing.mode) ? existing.mode : undefined), mtime: opts.times ? { sec: file.mtime, nsec: file.mtimeNsec } : undefined },
      true,
    );
    fs.closeSync(out!);
    out = null;
    if (tmp) {
      if (existing && (existing.mode & 0o170000) === 0o040000) {
        reportError(ctx, `krsync: recv_files: ${name} is a directory`);
        return "failed";
      }
      dest.rename(tmp, name);
      ctx.temps.delete(tmp);
      tmp = null;
    }
    return "ok";
  } finally {
    if (handed) closeQuiet(handed.fd);
    if (basis) closeQuiet(basis.fd);
    // --partial keeps what arrived of an interrupted transfer under the real name, with an
    // mtime of 0 so that the next run does not take it for up to date (receiver.c, rsync.c).
    let keep = false;
    if (tmp && out !== null && writer && opts.partial && interrupted) {
      try {
        await writer.drain();
        keep = writer.offset > 0;
        if (keep) fs.futimesSync(out, 0, 0);
      } catch {
        keep = false;
      }
    }
    // No write may still be pending on the descriptor when it is closed (its number could be
    // reused by the next open).
    if (writer) await writer.settle();
    if (out !== null) closeQuiet(out);
    if (tmp) {
      if (keep) {
        try {
          dest.rename(tmp, name);
        } catch {
          dest.unlinkQuiet(tmp);
        }
      } else {
        dest.unlinkQuiet(tmp);
      }
      ctx.temps.delete(tmp);
    }
    throwIfAborted(ctx);
  }
}

/** Buffer for handed files copied in line (one at a time). */
let sharedCopyBuf: Buffer | null = null;
/** fs.read / fs.write through the thread pool, resolving to the byte count. */
const fsp = {
  read: (fd: number, b: Buffer, off: number, len: number, pos: number) =>
    new Promise<number>((resolve, reject) => fs.read(fd, b, off, len, pos, (e, n) => (e ? reject(e) : resolve(n)))),
  write: (fd: number, b: Buffer, off: number, len: number, pos: number) =>
    new Promise<number>((resolve, reject) => fs.write(fd, b, off, len, pos, (e, n) => (e ? reject(e) : resolve(n)))),
};
/** Buffers for handed files copied through the thread pool (one per file in flight). */
const copyBufs: Buffer[] = [];

/**
 * The bytes of a handed source file into the output, as the sender would have sent them:
 * `size` bytes from its start, zeros standing in for what a shrunken file no longer has
 * (sender.c / match.c). Resolves to true when the read came up short. Small files (and
 * sparse or in-place output, which goes through the writer) are copied with direct calls;
 * bigger ones in pieces through the thread pool, so that other files proceed meanwhile.
 */
function copyHanded(ctx: ReceiveContext, src: HandedSource, writer: OutputFile, viaWriter: boolean): boolean | Promise<boolean> {
  let pos = 0;
  if (!viaWriter && copyRange && writer.fd !== null) {
    // In the kernel (native/copy.c): no pass through a buffer here; a bigger file on the
    // thread pool, while this thread goes on with the sender's and generator's work.
    if (src.size > SYNC_COPY_MAX && copyRangeAsync) return copyInKernelAsync(ctx, copyRangeAsync, src, writer);
    pos = copyInKernel(copyRange, src, writer);
    if (pos < 0) return true; // the source came up short: zeros were written in its place
    if (pos === src.size) return false;
    // Not possible here (another file system, say): the rest through a buffer.
  }
  if (viaWriter || src.size - pos <= SYNC_COPY_MAX) {
    const buf = (sharedCopyBuf ??= Buffer.allocUnsafe(COPY_BUF));
    let short = false;
    for (; pos < src.size; ) {
      const want = Math.min(buf.length, src.size - pos);
      const got = short ? 0 : readFull(src.fd, buf, want, pos);
      if (got < want) {
        buf.fill(0, got, want);
        short = true;
      }
      writer.writeNow(buf.subarray(0, want));
      pos += want;
    }
    return short;
  }
  return copyHandedAsync(ctx, src, writer, pos);
}

/** copy_file_range, when the addon has it (and on the thread pool). */
const copyRange = nativeAddon.addon?.copyRange?.bind(nativeAddon.addon);
const copyRangeAsync = nativeAddon.addon?.copyRangeAsync?.bind(nativeAddon.addon);
/** Bytes per copy_file_range call (each is one synchronous call on this thread). */
const KERNEL_COPY_STEP = 16 << 20;
/** Bytes per thread-pool copy (an abort is noticed between two). */
const ASYNC_KERNEL_COPY_STEP = 64 << 20;

/**
 * Copies the handed file with copy_file_range. Returns how far it got (the caller goes on
 * from there with read/write when the call is refused), or -1 when the source ended before
 * `size`: the rest is then written as zeros, as the sender would have sent (match.c).
 */
function copyInKernel(copy: NonNullable<typeof copyRange>, src: HandedSource, writer: OutputFile): number {
  writer.flush();
  const out = writer.fd!;
  const start = writer.offset;
  let pos = 0;
  while (pos < src.size) {
    const n = copy(src.fd, pos, out, start + pos, Math.min(KERNEL_COPY_STEP, src.size - pos));
    if (n < 0) break;
    if (n === 0) {
      writer.skip(pos);
      zeroFill(writer, src.size - pos);
      return -1;
    }
    pos += n;
  }
  writer.skip(pos);
  return pos;
}

/** copyInKernel on the thread pool; resolves to true when the source came up short. */
async function copyInKernelAsync(
  ctx: ReceiveContext,
  copy: NonNullable<typeof copyRangeAsync>,
  src: HandedSource,
  writer: OutputFile,
): Promise<boolean> {
  writer.flush();
  const out = writer.fd!;
  const start = writer.offset;
  let pos = 0;
  while (pos < src.size) {
    throwIfAborted(ctx);
    const n = await copy(src.fd, pos, out, start + pos, Math.min(ASYNC_KERNEL_COPY_STEP, src.size - pos));
    if (n < 0) {
      // Refused (another file system, say): the rest through a buffer.
      writer.skip(pos);
      return copyHandedAsync(ctx, src, writer, pos);
    }
    if (n === 0) {
      writer.skip(pos);
      zeroFill(writer, src.size - pos);
      return true;
    }
    pos += n;
  }
  writer.skip(pos);
  return false;
}

/** Zeros where a shrunken source has no bytes left, as the sender would send them (match.c). */
function zeroFill(writer: OutputFile, n: number): void {
  const zeros = Buffer.alloc(Math.min(COPY_BUF, n));
  for (let left = n; left > 0; left -= zeros.length) writer.writeNow(zeros.subarray(0, Math.min(zeros.length, left)));
}

function readFull(fd: number, buf: Buffer, want: number, pos: number): number {
  let got = 0;
  while (got < want) {
    let n = 0;
    try {
      n = fs.readSync(fd, buf, got, want - got, pos + got);
    } catch {
      n = 0;
    }
    if (n === 0) break;
    got += n;
  }
  return got;
}

async function copyHandedAsync(ctx: ReceiveContext, src: HandedSource, writer: OutputFile, from: number): Promise<boolean> {
  const buf = copyBufs.pop() ?? Buffer.allocUnsafe(ASYNC_COPY_BUF);
  const out = writer.fd!;
  let short = false;
  try {
    for (let pos = from; pos < src.size; ) {
      throwIfAborted(ctx);
      const want = Math.min(buf.length, src.size - pos);
      let got = 0;
      while (!short && got < want) {
        let n = 0;
        try {
          n = await fsp.read(src.fd, buf, got, want - got, pos + got);
        } catch {
          n = 0;
        }
        if (n === 0) break;
        got += n;
      }
      if (got < want) {
        buf.fill(0, got, want);
        short = true;
      }
      for (let w = 0; w < want; ) w += await fsp.write(out, buf, w, want - w, pos + w);
      pos += want;
      writer.offset = pos; // what --partial keeps if the run stops here
    }
  } finally {
    copyBufs.push(buf);
  }
  return short;
}

function closeQuiet(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    /* already closed */
  }
}
