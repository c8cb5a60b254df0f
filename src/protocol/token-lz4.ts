// token.c send_compressed_token / recv_compressed_token: the `lz4` token format. The token
// records are those of token-run.ts; each DEFLATED_DATA packet is one self-contained LZ4 block
// of at most 16383 literal bytes (no history between packets, no sync marks).
import type { TokenEvent, TokenReader, TokenWriter } from "./token.js";
import { lz4CompressBlock, lz4CompressBound, lz4DecompressBlock } from "./token-lz4-block.js";
import { CHUNK_SIZE, DEFLATED_DATA, END_FLAG, MAX_DATA_COUNT, RunEncoder, peekRunToken } from "./token-run.js";
import { Cursor, NeedMore, Writer } from "./wire.js";

/** token.c: the receiver's output room per packet, MAX(LZ4_compressBound(CHUNK_SIZE), MAX_DATA_COUNT+2). */
const LZ4_OUT_SIZE = Math.max(lz4CompressBound(CHUNK_SIZE), MAX_DATA_COUNT + 2);

class Lz4TokenReader implements TokenReader {
  readonly needsMatchData = false;
  private readonly dbuf = new Uint8Array(LZ4_OUT_SIZE);
  private rxToken = 0;
  /** Decoded bytes of the current packet not handed out yet (a packet may exceed CHUNK_SIZE). */
  private pendOff = 0;
  private pendEnd = 0;

  next(c: Cursor): TokenEvent {
    if (this.pendOff < this.pendEnd) return this.takePending();
    for (;;) {
      c.need(1);
      const flag = c.buf[c.pos]!;
      if ((flag & 0xc0) === DEFLATED_DATA) {
        c.need(2);
        const n = ((flag & 0x3f) << 8) | c.buf[c.pos + 1]!;
        c.need(2 + n);
        const len = lz4DecompressBlock(c.buf.subarray(c.pos + 2, c.pos + 2 + n), this.dbuf);
        c.pos += 2 + n;
        this.pendOff = 0;
        this.pendEnd = len;
        // An empty block carries nothing (rsync would mistake it for the end): report it as
        // nothing rather than look further and risk having to undo the packet.
        return len === 0 ? { kind: "literal", data: new Uint8Array(0) } : this.takePending();
      }
      if (flag === END_FLAG) {
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

  private takePending(): TokenEvent {
    const n = Math.min(CHUNK_SIZE, this.pendEnd - this.pendOff);
    const data = this.dbuf.slice(this.pendOff, this.pendOff + n);
    this.pendOff += n;
    return { kind: "literal", data };
  }

  seeMatch(): void {}
}

class Lz4TokenWriter implements TokenWriter {
  readonly needsMatchData = false;
  private readonly runs = new RunEncoder();
  private readonly held = new Uint8Array(MAX_DATA_COUNT);
  private heldLen = 0;
  private open = false;
  private readonly obuf = new Uint8Array(2 + lz4CompressBound(MAX_DATA_COUNT));
  private readonly table = new Int32Array(1 << 12);

  literal(data: Uint8Array, out: Writer): void {
    if (data.length === 0) return;
    if (!this.open) {
      this.runs.beforeLiteral(out);
      this.open = true;
      this.heldLen = 0;
    }
    let off = 0;
    while (off < data.length) {
      const n = Math.min(MAX_DATA_COUNT - this.heldLen, data.length - off);
      this.held.set(data.subarray(off, off + n), this.heldLen);
      this.heldLen += n;
      off += n;
      if (this.heldLen === MAX_DATA_COUNT) {
        this.send(this.held, out);
        this.heldLen = 0;
      }
    }
  }

  match(index: number, _blockData: Uint8Array | undefined, out: Writer): void {
    this.runs.token(index, out);
    this.closeLiteral(out);
  }

  end(out: Writer): void {
    this.runs.end(out);
    this.closeLiteral(out);
    out.byte(END_FLAG);
  }

  private closeLiteral(out: Writer): void {
    if (!this.open) return;
    if (this.heldLen > 0) this.send(this.held.subarray(0, this.heldLen), out);
    this.heldLen = 0;
    this.open = false;
  }

  /** token.c: compress a piece; if its block would not fit a packet, halve the piece. */
  private send(data: Uint8Array, out: Writer): void {
    let off = 0;
    while (off < data.length) {
      let take = data.length - off;
      for (;;) {
        const clen = lz4CompressBlock(data.subarray(off, off + take), this.obuf.subarray(2), this.table);
        if (clen <= MAX_DATA_COUNT) {
          this.obuf[0] = DEFLATED_DATA + (clen >>> 8);
          this.obuf[1] = clen & 0xff;
          out.bytes(this.obuf.subarray(0, clen + 2));
          break;
        }
        take >>>= 1;
      }
      off += take;
    }
  }
}

export function createLz4TokenReader(): TokenReader {
  return new Lz4TokenReader();
}

export function createLz4TokenWriter(): TokenWriter {
  return new Lz4TokenWriter();
}
