// token.c send_compressed_token / recv_compressed_token: the `lz4` token format. The token
// records are those of token-run.ts; each DEFLATED_DATA packet is one self-contained raw LZ4
// block (LZ4_compress_default / LZ4_decompress_safe) of at most 16383 literal bytes, with no
// history between packets and no sync marks. The block codec is lz4-napi's (token-libs.ts).
import type { TokenEvent, TokenReader, TokenWriter } from "./token.js";
import type { Lz4Lib } from "./token-libs.js";
import { CHUNK_SIZE, DEFLATED_DATA, END_FLAG, MAX_DATA_COUNT, RERR_STREAMIO, RunDecoder, RunEncoder, peekPacket } from "./token-run.js";
import { Cursor, ProtocolError, Writer } from "./wire.js";

/** lz4.h LZ4_COMPRESSBOUND */
const compressBound = (n: number): number => n + Math.floor(n / 255) + 16;
/** token.c: the receiver's output room per packet, MAX(LZ4_compressBound(CHUNK_SIZE), MAX_DATA_COUNT+2);
 *  a block that decodes to more is an error. */
export const LZ4_OUT_SIZE = Math.max(compressBound(CHUNK_SIZE), MAX_DATA_COUNT + 2);
/** The library's blocks carry their size in 4 bytes in front (lz4_flex *_size_prepended). */
const SIZE_PREFIX = 4;

class Lz4TokenReader implements TokenReader {
  readonly needsMatchData = false;
  /** The packet behind the size the decoder may produce. */
  private readonly inbuf = Buffer.alloc(SIZE_PREFIX + MAX_DATA_COUNT);
  private readonly runs = new RunDecoder();
  /** Decoded bytes of the current packet not handed out yet (a packet may exceed CHUNK_SIZE). */
  private pending: Uint8Array = new Uint8Array(0);
  private pendOff = 0;

  constructor(private readonly lib: Lz4Lib) {
    this.inbuf.writeUInt32LE(LZ4_OUT_SIZE, 0);
  }

  next(c: Cursor): TokenEvent {
    if (this.pendOff < this.pending.length) return this.takePending();
    c.need(1);
    const flag = c.buf[c.pos]!;
    if ((flag & 0xc0) === DEFLATED_DATA) {
      const n = peekPacket(c);
      this.inbuf.set(c.buf.subarray(c.pos + 2, c.pos + 2 + n), SIZE_PREFIX);
      let block: Uint8Array;
      try {
        block = this.lib.uncompressSync(this.inbuf.subarray(0, SIZE_PREFIX + n));
      } catch (e) {
        // token.c: "uncompress failed" is fatal (RERR_STREAMIO).
        throw new ProtocolError(`uncompress failed: ${(e as Error).message}`, RERR_STREAMIO);
      }
      c.pos += 2 + n;
      this.pending = block;
      this.pendOff = 0;
      // An empty block carries nothing (rsync would mistake it for the end): report it as
      // nothing rather than look further and risk having to undo the packet.
      return block.length === 0 ? { kind: "literal", data: new Uint8Array(0) } : this.takePending();
    }
    return this.runs.next(c);
  }

  /** The decoder's output is a fresh buffer per packet: views of it are handed out as they are. */
  private takePending(): TokenEvent {
    const n = Math.min(CHUNK_SIZE, this.pending.length - this.pendOff);
    const data = this.pending.subarray(this.pendOff, this.pendOff + n);
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
  private readonly head = new Uint8Array(2);

  constructor(private readonly lib: Lz4Lib) {}

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
        const piece = Buffer.from(data.buffer, data.byteOffset + off, take);
        const block = this.lib.compressSync(piece).subarray(SIZE_PREFIX);
        if (block.length <= MAX_DATA_COUNT) {
          this.head[0] = DEFLATED_DATA + (block.length >>> 8);
          this.head[1] = block.length & 0xff;
          out.bytes(this.head).bytes(block);
          break;
        }
        take >>>= 1;
      }
      off += take;
    }
  }
}

export function createLz4TokenReader(lib: Lz4Lib): TokenReader {
  return new Lz4TokenReader(lib);
}

export function createLz4TokenWriter(lib: Lz4Lib): TokenWriter {
  return new Lz4TokenWriter(lib);
}
