// Shared pieces of rsync's compressed token streams (token.c): the flag bytes and the
// encoding of runs of consecutive matched blocks, used alike by the zlib, zlibx, zstd and lz4
// formats.
import { RERR_PROTOCOL } from "./errcode.js";
import type { TokenEvent } from "./token.js";
import { Cursor, NeedMore, NEED_MORE, ProtocolError, Writer } from "./wire.js";

/** rsync.h CHUNK_SIZE: the most literal data one token carries (and our per-event bound). */
export const CHUNK_SIZE = 32 * 1024;

// token.c flag bytes of a compressed stream
export const END_FLAG = 0x00; // end of this file's tokens
export const TOKEN_LONG = 0x20; // + int32 block index
export const TOKENRUN_LONG = 0x21; // + int32 block index + 16-bit run count
export const DEFLATED_DATA = 0x40; // + 6 high bits of length, then a length byte, then data
export const TOKEN_REL = 0x80; // + 6-bit offset from the previous run's last block
export const TOKENRUN_REL = 0xc0; // the same, + 16-bit run count

/** token.c MAX_DATA_COUNT: a DEFLATED_DATA packet's length fits in 14 bits. */
export const MAX_DATA_COUNT = 16383;
/** token.c MAX_TOKEN_INDEX: the largest block index a compressed stream may name. */
export const MAX_TOKEN_INDEX = 0x7ffffffe;
/** token.c: a run is cut before it would span 65536 blocks (its count is 16 bits). */
const MAX_RUN_SPAN = 65536;

// token.c exits with RERR_PROTOCOL on a bad token number, RERR_STREAMIO on a decompression failure.
export { RERR_PROTOCOL, RERR_STREAMIO } from "./errcode.js";

function invalidToken(): ProtocolError {
  return new ProtocolError("invalid token number in compressed stream", RERR_PROTOCOL);
}

/**
 * Sender-side run state (token.c last_token / run_start / last_run_end). A run of
 * consecutive block indices is announced lazily, once the next token (or literal data, or the
 * end) shows it is over.
 */
export class RunEncoder {
  /** -1: nothing sent in this file yet; -2: literal data since the last token; else the last token. */
  lastToken = -1;
  private runStart = 0;
  private lastRunEnd = 0;

  /** Literal data is about to be sent: the pending run (if any) must go first. */
  beforeLiteral(out: Writer): void {
    if (this.lastToken === -1) this.lastRunEnd = 0;
    else if (this.lastToken >= 0) this.flushRun(out);
    this.lastToken = -2;
  }

  /** Block `index` matched. */
  token(index: number, out: Writer): void {
    if (!Number.isInteger(index) || index < 0 || index > MAX_TOKEN_INDEX) {
      throw new RangeError(`block index out of range: ${index}`);
    }
    if (this.lastToken === -1) {
      this.lastRunEnd = 0;
      this.runStart = index;
    } else if (this.lastToken === -2) {
      this.runStart = index;
    } else if (index !== this.lastToken + 1 || index >= this.runStart + MAX_RUN_SPAN) {
      this.flushRun(out);
      this.runStart = index;
    }
    this.lastToken = index;
  }

  /** End of the file: the pending run goes out; the state starts afresh for the next file. */
  end(out: Writer): void {
    if (this.lastToken >= 0) this.flushRun(out);
    this.lastToken = -1;
  }

  // token.c: relative form when the run starts 0..63 blocks after the previous run's last
  // block, else the absolute index; a run count follows when the run has more than one block.
  private flushRun(out: Writer): void {
    const r = this.runStart - this.lastRunEnd;
    const n = this.lastToken - this.runStart;
    if (r >= 0 && r <= 63) {
      out.byte((n === 0 ? TOKEN_REL : TOKENRUN_REL) + r);
    } else {
      out.byte(n === 0 ? TOKEN_LONG : TOKENRUN_LONG);
      out.int32(this.runStart);
    }
    if (n !== 0) out.byte(n & 0xff).byte(n >>> 8);
    this.lastRunEnd = this.lastToken;
  }
}

/** The DEFLATED_DATA packet whose flag byte is at c.pos: its data length, once all of it has
 *  arrived (NeedMore until then, the cursor unmoved). The data starts at c.pos + 2. */
export function peekPacket(c: Cursor): number {
  c.need(2);
  const n = ((c.buf[c.pos]! & 0x3f) << 8) | c.buf[c.pos + 1]!;
  c.need(2 + n);
  return n;
}

/** A decoded token record: `count` consecutive blocks from `index`. */
export interface RunToken {
  index: number;
  count: number;
  /** Cursor position just after the record. */
  end: number;
}

/**
 * token.c recv_compressed_token_num: decode the token record whose flag byte is at c.pos,
 * relative to `rxToken` (the previous run's last block, 0 at file start). Pure: reads from
 * the cursor without moving it, throws NeedMore if the record is incomplete.
 */
export function peekRunToken(c: Cursor, rxToken: number): RunToken {
  let p = c.pos;
  const need = (n: number): void => {
    if (c.end - p < n) throw NEED_MORE;
  };
  need(1);
  let flag = c.buf[p++]!;
  let index: number;
  if (flag & TOKEN_REL) {
    const incr = flag & 0x3f;
    if (rxToken > MAX_TOKEN_INDEX - incr) throw invalidToken();
    index = rxToken + incr;
    flag >>= 6;
  } else {
    // Any flag below 0x40 other than END_FLAG is read as a long token; bit 0 says "run".
    need(4);
    index = (c.buf[p]! | (c.buf[p + 1]! << 8) | (c.buf[p + 2]! << 16) | (c.buf[p + 3]! << 24)) | 0;
    p += 4;
    if (index < 0 || index > MAX_TOKEN_INDEX) throw invalidToken();
  }
  let run = 0;
  if (flag & 1) {
    need(2);
    run = c.buf[p]! | (c.buf[p + 1]! << 8);
    p += 2;
    if (run <= 0 || index > MAX_TOKEN_INDEX - run) throw invalidToken();
  }
  return { index, count: run + 1, end: p };
}

/**
 * Receiver-side run state (token.c rx_token) for the formats whose records need nothing else
 * (zstd, lz4): decodes the record at c.pos that is not DEFLATED_DATA — the end of the file or a
 * run of matched blocks — and moves the cursor past it (NeedMore leaves both as they were).
 */
export class RunDecoder {
  /** The last block of the previous run; 0 at each file's start. */
  private rxToken = 0;

  next(c: Cursor): TokenEvent {
    if (c.buf[c.pos] === END_FLAG) {
      c.pos += 1;
      this.rxToken = 0;
      return { kind: "end" };
    }
    const t = peekRunToken(c, this.rxToken);
    c.pos = t.end;
    this.rxToken = t.index + t.count - 1;
    return { kind: "match", index: t.index, count: t.count };
  }
}
