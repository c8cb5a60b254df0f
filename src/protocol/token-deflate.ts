// token.c send_deflated_token / recv_deflated_token / see_deflate_token: the `zlib` and
// `zlibx` token formats. Literal data is one raw deflate stream per file (window 2^15,
// memLevel 8), sync-flushed before every token and at the end, with each flush's trailing
// empty stored block (00 00 ff ff) left off the wire; the compressed bytes travel in
// DEFLATED_DATA packets of at most 16383 bytes between the token records of token-run.ts.
// For `zlib` (not `zlibx`) the bytes of every matched block also enter the history on both
// sides, as if they had been sent as literal data, so later literals may refer back into them
// (see WindowTail).
import { createRequire } from "node:module";
import type * as Pako from "pako";
import type { TokenEvent, TokenReader, TokenWriter } from "./token.js";
import {
  CHUNK_SIZE,
  DEFLATED_DATA,
  END_FLAG,
  MAX_DATA_COUNT,
  RERR_STREAMIO,
  RunEncoder,
  peekPacket,
  peekRunToken,
} from "./token-run.js";
import { Cursor, NeedMore, ProtocolError, Writer } from "./wire.js";

/** token.c AVAIL_OUT_SIZE(CHUNK_SIZE): the output room rsync gives one deflate/inflate call. */
const AVAIL_OUT = Math.floor((CHUNK_SIZE * 1001) / 1000) + 16;
/** token.c: matched data is fed to the history in pieces of at most 0xffff (a stored block). */
const MAX_STORED = 0xffff;
/** The 4 bytes a sync flush ends with (LEN/NLEN of an empty stored block). */
const SYNC_MARKER = Uint8Array.of(0, 0, 0xff, 0xff);
const Z_DEFLATED = 8;
const Z_STREAM_END = 1;
const WINDOW_BITS = -15; // raw deflate, 32 KiB window
const MEM_LEVEL = 8;
const Z_DEFAULT_STRATEGY = 0;
/** The deflate window: older history can never be referred to. */
const WINDOW_SIZE = 1 << 15;
// zlib.h's return and flush codes.
const Z_OK = 0;
const Z_BUF_ERROR = -5;
const Z_NO_FLUSH = 0;
const Z_SYNC_FLUSH = 2;

/** pako, loaded on first use: setting up its module costs every run start-up time, and only
 *  the zlib and zlibx token formats need it. */
let pakoLib: typeof Pako | undefined;
function pako(): typeof Pako {
  return (pakoLib ??= createRequire(import.meta.url)("pako") as typeof Pako);
}

interface InflateInternals {
  mode: number;
  bits: number;
}

/** pako keeps zlib's inflate state machine; its "waiting for a stored block's LEN/NLEN at a
 *  byte boundary" mode (zlib inflateSyncPoint) is found by running a sync flush through it. */
let storedModeValue: number | undefined;
function storedMode(): number {
  return (storedModeValue ??= findStoredMode());
}
function findStoredMode(): number {
  const { ZStream, zlibDeflate, zlibDeflateInit2, zlibInflate, zlibInflateInit2 } = pako();
  const d = new ZStream();
  zlibDeflateInit2(d, 6, Z_DEFLATED, WINDOW_BITS, MEM_LEVEL, Z_DEFAULT_STRATEGY, true);
  d.input = Uint8Array.of(1, 2, 3);
  d.next_in = 0;
  d.avail_in = 3;
  d.output = new Uint8Array(64);
  d.next_out = 0;
  d.avail_out = 64;
  zlibDeflate(d, Z_SYNC_FLUSH);
  const i = new ZStream();
  zlibInflateInit2(i, WINDOW_BITS);
  i.input = d.output.subarray(0, d.next_out - 4);
  i.next_in = 0;
  i.avail_in = d.next_out - 4;
  i.output = new Uint8Array(64);
  i.next_out = 0;
  i.avail_out = 64;
  zlibInflate(i, Z_NO_FLUSH);
  return (i.state as InflateInternals).mode;
}

function streamError(msg: string): ProtocolError {
  return new ProtocolError(msg, RERR_STREAMIO);
}

/**
 * Matched data owed to a zlib history. token.c feeds every matched block to the deflater /
 * inflater (see_deflate_token), in pieces of at most 0xffff bytes; before protocol 31 every
 * piece repeats the block's first bytes instead of advancing (a quirk both sides share). Only
 * the newest 32 KiB of history can ever be referred to, so we keep just that and add it as a
 * preset dictionary (allowed at any block boundary of a raw stream) when literal data next
 * needs it: the window then holds exactly what rsync's would.
 */
class WindowTail {
  // Appended to until full, then cut back to its newest window's worth: each byte moves at
  // most once.
  private readonly buf = new Uint8Array(2 * WINDOW_SIZE);
  private len = 0;

  constructor(private readonly protocol: number) {}

  addBlock(block: Uint8Array): void {
    let left = block.length;
    while (left > 0) {
      const n = Math.min(left, MAX_STORED);
      const off = this.protocol >= 31 ? block.length - left : 0;
      this.add(block.subarray(off, off + n));
      left -= n;
    }
  }

  private add(piece: Uint8Array): void {
    const h = this.buf;
    if (piece.length >= WINDOW_SIZE) {
      h.set(piece.subarray(piece.length - WINDOW_SIZE));
      this.len = WINDOW_SIZE;
      return;
    }
    if (this.len + piece.length > h.length) {
      h.copyWithin(0, this.len - WINDOW_SIZE, this.len);
      this.len = WINDOW_SIZE;
    }
    h.set(piece, this.len);
    this.len += piece.length;
  }

  /** The owed bytes (oldest first, at most a window's worth), or null; empty afterwards. */
  take(): Uint8Array | null {
    if (this.len === 0) return null;
    const out = this.buf.subarray(Math.max(0, this.len - WINDOW_SIZE), this.len);
    this.len = 0;
    return out;
  }

  clear(): void {
    this.len = 0;
  }
}

/** token.c recv_deflated_token + see_deflate_token. */
class DeflateTokenReader implements TokenReader {
  readonly needsMatchData: boolean;
  private readonly strm = new (pako().ZStream)();
  private readonly cbuf = new Uint8Array(MAX_DATA_COUNT);
  private readonly dbuf = new Uint8Array(CHUNK_SIZE);
  private readonly tail: WindowTail;
  /** The last block of the previous run (token.c rx_token). */
  private rxToken = 0;
  /** The inflater may still hold output for the current packet (token.c r_inflating). */
  private inflating = false;
  /** Data was inflated since the last sync point (token.c r_inflated). */
  private afterData = false;
  /** Matched blocks whose data the caller still owes via seeMatch. */
  private unseen = 0;

  constructor(mode: "zlib" | "zlibx", protocol: number) {
    this.needsMatchData = mode === "zlib";
    this.tail = new WindowTail(protocol);
    if (pako().zlibInflateInit2(this.strm, WINDOW_BITS) !== Z_OK) throw new Error("inflate init failed");
  }

  next(c: Cursor): TokenEvent {
    if (this.unseen > 0) throw new Error(`seeMatch() owed for ${this.unseen} matched block(s)`);
    if (this.inflating) {
      const ev = this.inflateSome();
      if (ev) return ev;
    }
    let consumed = false;
    for (;;) {
      let flag: number;
      try {
        c.need(1);
        flag = c.buf[c.pos]!;
        if ((flag & 0xc0) === DEFLATED_DATA) {
          const n = peekPacket(c);
          if (n === 0) throw streamError("inflate returned -5 (empty compressed packet)");
          this.cbuf.set(c.buf.subarray(c.pos + 2, c.pos + 2 + n));
          c.pos += 2 + n;
          consumed = true;
          const owed = this.tail.take();
          if (owed && pako().zlibInflateSetDictionary(this.strm, owed) !== Z_OK) throw new Error("inflateSetDictionary failed");
          const s = this.strm;
          s.input = this.cbuf;
          s.next_in = 0;
          s.avail_in = n;
          this.inflating = true;
          this.afterData = true;
          const ev = this.inflateSome();
          if (ev) return ev;
          continue;
        }
        if (flag === END_FLAG) {
          this.endOfData();
          c.pos += 1;
          pako().zlibInflateReset(this.strm);
          this.tail.clear();
          this.rxToken = 0;
          return { kind: "end" };
        }
        const t = peekRunToken(c, this.rxToken);
        this.endOfData();
        c.pos = t.end;
        this.rxToken = t.index + t.count - 1;
        if (this.needsMatchData) this.unseen = t.count;
        return { kind: "match", index: t.index, count: t.count };
      } catch (e) {
        // A packet already taken is committed: report it (as nothing) rather than undo it.
        if (e instanceof NeedMore && consumed) return { kind: "literal", data: new Uint8Array(0) };
        throw e;
      }
    }
  }

  /** One bounded step of inflating the current packet; null once it yields nothing more. */
  private inflateSome(): TokenEvent | null {
    const s = this.strm;
    s.output = this.dbuf;
    s.next_out = 0;
    s.avail_out = this.dbuf.length;
    const r = pako().zlibInflate(s, Z_NO_FLUSH);
    const n = s.next_out;
    if (r === Z_BUF_ERROR && n === 0) {
      this.inflating = false;
      return null;
    }
    if (r !== Z_OK) {
      throw streamError(r === Z_STREAM_END ? "inflate: unexpected end of deflate stream" : `inflate returned ${r} (${n} bytes)`);
    }
    if (s.avail_in === 0 && s.avail_out !== 0) this.inflating = false;
    if (n === 0) return null;
    return { kind: "literal", data: this.dbuf.slice(0, n) };
  }

  /** token.c r_inflated: after data, a token or the end must sit at a sync point, whose
   *  4-byte marker the sender left off and we put back. */
  private endOfData(): void {
    if (!this.afterData) return;
    const st = this.strm.state as InflateInternals;
    if (st.mode !== storedMode() || st.bits !== 0) throw streamError("decompressor lost sync!");
    this.feed(SYNC_MARKER, SYNC_MARKER.length);
    this.afterData = false;
  }

  private feed(input: Uint8Array, len: number): void {
    const s = this.strm;
    s.input = input;
    s.next_in = 0;
    s.avail_in = len;
    do {
      s.output = this.dbuf;
      s.next_out = 0;
      s.avail_out = this.dbuf.length;
      const r = pako().zlibInflate(s, Z_SYNC_FLUSH);
      if (r !== Z_OK && r !== Z_BUF_ERROR) throw streamError(`inflate (token) returned ${r}`);
    } while (s.avail_in !== 0 || s.avail_out === 0);
  }

  /** token.c see_deflate_token (see WindowTail). */
  seeMatch(blockData: Uint8Array): void {
    if (!this.needsMatchData) return;
    if (this.unseen === 0) throw new Error("seeMatch() without a pending matched block");
    this.unseen--;
    this.tail.addBlock(blockData);
  }
}

/** token.c send_deflated_token, with the calls of rsync's matcher (literal run, then token)
 *  spread over literal() / match() / end(). */
class DeflateTokenWriter implements TokenWriter {
  readonly needsMatchData: boolean;
  private readonly strm = new (pako().ZStream)();
  private readonly runs = new RunEncoder();
  /** Packet buffer: 2 header bytes, then up to MAX_DATA_COUNT compressed bytes. */
  private readonly obuf = new Uint8Array(MAX_DATA_COUNT + 2);
  /** Literal input not yet given to deflate: rsync feeds a literal run in CHUNK_SIZE pieces
   *  and flushes with the last one, so the latest piece waits until we know it is not last. */
  private readonly held = new Uint8Array(CHUNK_SIZE);
  private heldLen = 0;
  /** Literal data is being sent (an rsync send_token call is under way). */
  private open = false;
  /** This call has reached its flushing deflate (token.c flush != Z_NO_FLUSH). */
  private flushing = false;
  /** zlib: matched data owed to the deflater's history. */
  private readonly tail: WindowTail;
  private readonly discard: Uint8Array<ArrayBuffer>;

  constructor(
    mode: "zlib" | "zlibx",
    private readonly protocol: number,
    /** 1..9 (token.ts initCompressionLevel) */
    level: number,
    private readonly exactHistory: boolean,
  ) {
    this.needsMatchData = mode === "zlib";
    this.tail = new WindowTail(protocol);
    this.discard = new Uint8Array(this.needsMatchData && exactHistory ? AVAIL_OUT : 0);
    // zlib's classic hash, so the output is byte-for-byte what rsync's zlib produces.
    if (pako().zlibDeflateInit2(this.strm, level, Z_DEFLATED, WINDOW_BITS, MEM_LEVEL, Z_DEFAULT_STRATEGY, true) !== Z_OK) {
      throw new Error("compression init failed");
    }
  }

  literal(data: Uint8Array, out: Writer): void {
    if (data.length === 0) return;
    if (!this.open) {
      this.runs.beforeLiteral(out);
      this.addHistory();
      this.open = true;
      this.flushing = false;
      this.heldLen = 0;
      this.strm.avail_out = 0; // token.c: each call starts a fresh packet
    }
    let off = 0;
    while (off < data.length) {
      if (this.heldLen === CHUNK_SIZE) {
        this.pump(this.held, false, out);
        this.heldLen = 0;
      }
      const n = Math.min(CHUNK_SIZE - this.heldLen, data.length - off);
      this.held.set(data.subarray(off, off + n), this.heldLen);
      this.heldLen += n;
      off += n;
    }
  }

  match(index: number, blockData: Uint8Array | undefined, out: Writer): void {
    if (this.needsMatchData && !blockData) throw new Error("zlib token writer needs the matched block's data");
    this.runs.token(index, out);
    this.closeLiteral(out);
    if (this.needsMatchData) this.insert(blockData!);
  }

  end(out: Writer): void {
    this.runs.end(out);
    this.closeLiteral(out);
    out.byte(END_FLAG);
    pako().zlibDeflateReset(this.strm);
    this.tail.clear();
  }

  private closeLiteral(out: Writer): void {
    if (!this.open) return;
    this.pump(this.held.subarray(0, this.heldLen), true, out);
    this.open = false;
  }

  /** token.c's deflate loop for one input piece; `last` flushes (Z_SYNC_FLUSH) and leaves the
   *  flush's 4-byte marker off the wire. */
  private pump(piece: Uint8Array, last: boolean, out: Writer): void {
    const s = this.strm;
    const obuf = this.obuf;
    s.input = piece;
    s.next_in = 0;
    s.avail_in = piece.length;
    for (;;) {
      if (s.avail_out === 0) {
        s.output = obuf;
        s.next_out = 2;
        s.avail_out = MAX_DATA_COUNT;
        if (this.flushing) {
          // The previous packet kept back its last 4 bytes in case they were the marker.
          obuf.copyWithin(2, MAX_DATA_COUNT - 2, MAX_DATA_COUNT + 2);
          s.next_out += 4;
          s.avail_out -= 4;
        }
      }
      if (last) this.flushing = true;
      const r = pako().zlibDeflate(s, this.flushing ? Z_SYNC_FLUSH : Z_NO_FLUSH);
      if (r !== Z_OK) throw new Error(`deflate returned ${r}`);
      if (last || s.avail_out === 0) {
        let n = MAX_DATA_COUNT - s.avail_out;
        if (this.flushing) n -= 4;
        if (n > 0) {
          obuf[0] = DEFLATED_DATA + (n >>> 8);
          obuf[1] = n & 0xff;
          out.bytes(obuf.subarray(0, n + 2));
        }
      }
      if (s.avail_out === 0) continue;
      if (!last && s.avail_in !== 0) continue;
      return;
    }
  }

  /** token.c: a matched block enters the deflater's history without reaching the wire. */
  private insert(block: Uint8Array): void {
    if (!this.exactHistory) {
      this.tail.addBlock(block);
      return;
    }
    let left = block.length;
    while (left > 0) {
      const n = Math.min(left, MAX_STORED);
      this.insertByFlush(block, this.protocol >= 31 ? block.length - left : 0, n);
      left -= n;
    }
  }

  private addHistory(): void {
    const owed = this.tail.take();
    if (owed && pako().zlibDeflateSetDictionary(this.strm, owed) !== Z_OK) throw new Error("deflateSetDictionary failed");
  }

  /** rsync's way, byte for byte: built against a stock zlib (no Z_INSERT_ONLY) it deflates the
   *  block with a sync flush and drops the output. Slower, and only needed to reproduce rsync's
   *  exact bytes. */
  private insertByFlush(block: Uint8Array, off: number, n: number): void {
    const s = this.strm;
    s.input = block;
    s.next_in = off;
    s.avail_in = n;
    do {
      s.output = this.discard;
      s.next_out = 0;
      s.avail_out = this.discard.length;
      const r = pako().zlibDeflate(s, Z_SYNC_FLUSH);
      if (r !== Z_OK) throw new Error(`deflate on token returned ${r} (${s.avail_in} bytes left)`);
    } while (s.avail_in !== 0 || s.avail_out === 0);
  }
}

export function createDeflateTokenReader(mode: "zlib" | "zlibx", protocol: number): TokenReader {
  return new DeflateTokenReader(mode, protocol);
}

export function createDeflateTokenWriter(
  mode: "zlib" | "zlibx",
  protocol: number,
  level: number,
  exactHistory = false,
): TokenWriter {
  return new DeflateTokenWriter(mode, protocol, level, exactHistory);
}
