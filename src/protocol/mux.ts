// Multiplexed I/O (io.c, rsync.h enum msgcode): every frame is a 4-byte little-endian header
// ((MPLEX_BASE + code) << 24 | length) and `length` payload bytes. DATA frames carry the
// protocol stream; the others carry messages. Frames may cut records anywhere, and an empty
// DATA frame is a keepalive.
import { ProtocolError } from "./wire.js";

export const MPLEX_BASE = 7;
export const MAX_FRAME = 0xffffff;

export enum MsgCode {
  DATA = 0,
  ERROR_XFER = 1,
  INFO = 2,
  ERROR = 3,
  WARNING = 4,
  ERROR_SOCKET = 5,
  LOG = 6,
  CLIENT = 7,
  ERROR_UTF8 = 8,
  REDO = 9,
  STATS = 10,
  IO_ERROR = 22,
  IO_TIMEOUT = 33,
  NOOP = 42,
  ERROR_EXIT = 86,
  SUCCESS = 100,
  DELETED = 101,
  NO_SEND = 102,
}

const KNOWN = new Set<number>(Object.values(MsgCode).filter((v): v is number => typeof v === "number"));

export function encodeFrameHeader(code: MsgCode, length: number, out: Uint8Array, off = 0): void {
  if (length < 0 || length > MAX_FRAME) throw new RangeError(`frame length ${length}`);
  const h = (((MPLEX_BASE + code) << 24) | length) >>> 0;
  out[off] = h & 0xff;
  out[off + 1] = (h >>> 8) & 0xff;
  out[off + 2] = (h >>> 16) & 0xff;
  out[off + 3] = h >>> 24;
}

/** One whole frame (header + payload) as bytes. */
export function encodeFrame(code: MsgCode, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + payload.length);
  encodeFrameHeader(code, payload.length, out);
  out.set(payload, 4);
  return out;
}

export interface MuxHandlers {
  /** Protocol stream bytes, in order; pieces are views valid only during the call. */
  data(piece: Uint8Array): void;
  /** A complete non-DATA message. */
  message(code: MsgCode, payload: Uint8Array): void;
}

/**
 * Splits a multiplexed byte stream into DATA pieces and messages. DATA payloads are passed on
 * as they arrive (never buffered whole); message payloads (at most 16 MiB by the header format,
 * and bounded further by `maxMessage`) are collected before delivery.
 */
export class MuxDecoder {
  private header = new Uint8Array(4);
  private headerLen = 0;
  private code: MsgCode = MsgCode.DATA;
  private left = 0; // payload bytes still expected for the current frame
  private msg: Uint8Array | null = null;
  private msgLen = 0;

  constructor(
    private readonly handlers: MuxHandlers,
    private readonly maxMessage = 1 << 20,
  ) {}

  get inFrame(): boolean {
    return this.headerLen > 0 || this.left > 0;
  }

  push(chunk: Uint8Array): void {
    let pos = 0;
    const n = chunk.length;
    while (pos < n) {
      if (this.left === 0 && this.msg === null) {
        // Reading a header.
        while (this.headerLen < 4 && pos < n) this.header[this.headerLen++] = chunk[pos++]!;
        if (this.headerLen < 4) return;
        this.headerLen = 0;
        const h = this.header;
        const tag = h[3]!;
        const len = h[0]! | (h[1]! << 8) | (h[2]! << 16);
        const code = tag - MPLEX_BASE;
        if (code < 0 || !KNOWN.has(code)) {
          throw new ProtocolError(`unexpected tag ${tag - MPLEX_BASE} in multiplexed stream`);
        }
        this.code = code as MsgCode;
        if (code === MsgCode.DATA) {
          this.left = len;
          continue;
        }
        if (len > this.maxMessage) throw new ProtocolError(`message of ${len} bytes is too long (code ${code})`);
        if (len === 0) {
          this.handlers.message(this.code, new Uint8Array(0));
          continue;
        }
        this.msg = new Uint8Array(len);
        this.msgLen = 0;
        this.left = len;
        continue;
      }
      const take = Math.min(this.left, n - pos);
      if (this.msg === null) {
        this.handlers.data(chunk.subarray(pos, pos + take));
      } else {
        this.msg.set(chunk.subarray(pos, pos + take), this.msgLen);
        this.msgLen += take;
      }
      pos += take;
      this.left -= take;
      if (this.left === 0 && this.msg !== null) {
        const m = this.msg;
        this.msg = null;
        this.handlers.message(this.code, m);
      }
    }
  }
}
