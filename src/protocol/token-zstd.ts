// token.c send_zstd_token / recv_zstd_token: the `zstd` token format. Literal data of the whole
// session is ONE zstd stream — one compression context on the sender, one decompression
// context on the receiver, never reset between files and never ended. The sender flushes it
// (ZSTD_e_flush) before every token that follows literal data and at each file's end, so the
// receiver can decode everything sent so far; the compressed bytes travel in DEFLATED_DATA
// packets of at most 16383 bytes between the token records of token-run.ts.
import type { TokenEvent, TokenReader, TokenWriter } from "./token.js";
import type { ZstdCCtx, ZstdDCtx, ZstdLib } from "./token-libs.js";
import {
  CHUNK_SIZE,
  DEFLATED_DATA,
  END_FLAG,
  MAX_DATA_COUNT,
  RERR_STREAMIO,
  RunDecoder,
  RunEncoder,
  peekPacket,
} from "./token-run.js";
import { Cursor, NeedMore, ProtocolError, Writer } from "./wire.js";

/** zstd.h ZSTD_WINDOWLOG_LIMIT_DEFAULT: rsync's decompression context refuses frames asking
 *  for a larger window than 2^27 bytes, and so do we (the bound on what a peer makes us hold). */
const WINDOW_LOG_MAX = 27;
const EMPTY = new Uint8Array(0);

function streamError(msg: string): ProtocolError {
  return new ProtocolError(msg, RERR_STREAMIO);
}

/** token.c recv_zstd_token. */
class ZstdTokenReader implements TokenReader {
  readonly needsMatchData = false;
  private readonly dctx: ZstdDCtx;
  private readonly cbuf = new Uint8Array(MAX_DATA_COUNT);
  /** Output room per step: each literal event is at most CHUNK_SIZE. */
  private readonly dbuf = new Uint8Array(CHUNK_SIZE);
  private inPos = 0;
  private inEnd = 0;
  /** The current packet may still yield output (token.c r_inflating). */
  private inflating = false;
  private readonly runs = new RunDecoder();

  constructor(lib: ZstdLib) {
    this.dctx = new lib.DCtx();
    this.dctx.setParameter(lib.DParameter.windowLogMax, WINDOW_LOG_MAX);
  }

  next(c: Cursor): TokenEvent {
    if (this.inflating) {
      const ev = this.inflateSome();
      if (ev) return ev;
    }
    let consumed = false;
    for (;;) {
      try {
        c.need(1);
        const flag = c.buf[c.pos]!;
        if ((flag & 0xc0) === DEFLATED_DATA) {
          const n = peekPacket(c);
          this.cbuf.set(c.buf.subarray(c.pos + 2, c.pos + 2 + n));
          c.pos += 2 + n;
          consumed = true;
          this.inPos = 0;
          this.inEnd = n;
          this.inflating = true;
          const ev = this.inflateSome();
          if (ev) return ev;
          continue;
        }
        // At a file's end the stream goes on into the next file: only the token numbering
        // starts again.
        return this.runs.next(c);
      } catch (e) {
        // A packet already taken is committed: report it (as nothing) rather than undo it.
        if (e instanceof NeedMore && consumed) return { kind: "literal", data: new Uint8Array(0) };
        throw e;
      }
    }
  }

  /** ZSTD_decompressStream on the current packet until it yields output (at most dbuf's
   *  worth) or is used up; null when it yields nothing more. The packet is done once its input
   *  is consumed and the output room was not filled (token.c). */
  private inflateSome(): TokenEvent | null {
    let idle = 0;
    for (;;) {
      let produced: number;
      let used: number;
      try {
        [, produced, used] = this.dctx.decompressStream(this.dbuf, this.cbuf.subarray(this.inPos, this.inEnd));
      } catch (e) {
        throw streamError(`ZSTD decompression failed: ${(e as Error).message}`);
      }
      this.inPos += used;
      if (this.inPos === this.inEnd && produced < this.dbuf.length) this.inflating = false;
      if (produced > 0) return { kind: "literal", data: this.dbuf.slice(0, produced) };
      if (!this.inflating) return null;
      // With input left and room to write, a step that does nothing ends a frame (the next
      // one starts on the following call); two in a row would never end.
      if (used === 0 && ++idle > 1) throw streamError("ZSTD decompression made no progress");
    }
  }

  seeMatch(): void {}
}

/** token.c send_zstd_token, with the calls of rsync's matcher (literal pieces with token -2,
 *  then the token) spread over literal() / match() / end(). */
class ZstdTokenWriter implements TokenWriter {
  readonly needsMatchData = false;
  private readonly runs = new RunEncoder();
  private readonly cctx: ZstdCCtx;
  private readonly continueOp: number;
  private readonly flushOp: number;
  /** Packet buffer: 2 header bytes, then up to MAX_DATA_COUNT compressed bytes. */
  private readonly obuf = new Uint8Array(2 + MAX_DATA_COUNT);
  /** Literal data went into the stream since its last flush (token.c flush_pending). */
  private open = false;

  constructor(lib: ZstdLib, level: number) {
    this.cctx = new lib.CCtx();
    this.cctx.setParameter(lib.CParameter.compressionLevel, level);
    this.continueOp = lib.EndDirective.continue;
    this.flushOp = lib.EndDirective.flush;
  }

  literal(data: Uint8Array, out: Writer): void {
    if (data.length === 0) return;
    if (!this.open) {
      this.runs.beforeLiteral(out);
      this.open = true;
    }
    this.compress(data, this.continueOp, out);
  }

  match(index: number, _blockData: Uint8Array | undefined, out: Writer): void {
    this.runs.token(index, out);
    this.flush(out);
  }

  end(out: Writer): void {
    this.runs.end(out);
    this.flush(out);
    out.byte(END_FLAG);
  }

  private flush(out: Writer): void {
    if (!this.open) return;
    this.compress(EMPTY, this.flushOp, out);
    this.open = false;
  }

  /** token.c's ZSTD_compressStream2 loop: each call's output (if any) is one packet; a
   *  continue step is done once its input is taken, a flush once nothing is left inside. */
  private compress(src: Uint8Array, op: number, out: Writer): void {
    const room = this.obuf.subarray(2);
    let pos = 0;
    for (;;) {
      const [left, produced, used] = this.cctx.compressStream2(room, src.subarray(pos), op);
      pos += used;
      if (produced > 0) {
        this.obuf[0] = DEFLATED_DATA + (produced >>> 8);
        this.obuf[1] = produced & 0xff;
        out.bytes(this.obuf.subarray(0, produced + 2));
      }
      if (op === this.flushOp ? left === 0 : pos === src.length) return;
    }
  }
}

export function createZstdTokenReader(lib: ZstdLib): TokenReader {
  return new ZstdTokenReader(lib);
}

export function createZstdTokenWriter(lib: ZstdLib, level: number): TokenWriter {
  return new ZstdTokenWriter(lib, level);
}
