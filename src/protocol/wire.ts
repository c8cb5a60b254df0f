// rsync's integer encodings (io.c read_int/read_varint/read_varlong/read_longint and their
// writers). Pure: decoding reads from a Cursor over bytes already received and throws
// NeedMore when a record is not complete yet; encoding appends to a Writer.

/** Thrown by a decoder when the bytes it needs have not arrived yet; the caller retries later. */
export class NeedMore extends Error {
  constructor() {
    super("need more input");
  }
}
/** The one NeedMore instance: thrown often, so never allocated per throw. */
export const NEED_MORE = new NeedMore();

/** A malformed or out-of-range value from the peer (rsync's RERR_PROTOCOL / RERR_STREAMIO). */
export class ProtocolError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 12) {
    super(message);
    this.name = "ProtocolError";
    this.exitCode = exitCode;
  }
}

// io.c int_byte_extra: how many bytes follow a varint's first byte, indexed by byte/4.
const INT_BYTE_EXTRA = new Uint8Array(64);
for (let i = 0x80 / 4; i < 0xc0 / 4; i++) INT_BYTE_EXTRA[i] = 1;
// (C0 - FF)/4: 2 x8, 3 x4, 4 x2, 5, 6
for (let i = 0; i < 16; i++) INT_BYTE_EXTRA[0xc0 / 4 + i] = i < 8 ? 2 : i < 12 ? 3 : i < 14 ? 4 : i === 14 ? 5 : 6;

const TWO32 = 0x1_0000_0000;

export class Cursor {
  buf: Uint8Array;
  pos: number;
  end: number;
  private view: DataView;

  constructor(buf: Uint8Array, pos = 0, end = buf.length) {
    this.buf = buf;
    this.pos = pos;
    this.end = end;
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  need(n: number): void {
    if (this.end - this.pos < n) throw NEED_MORE;
  }

  byte(): number {
    if (this.pos >= this.end) throw NEED_MORE;
    return this.buf[this.pos++]!;
  }

  int16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos, true);
    this.pos += 2;
    return v;
  }

  int32(): number {
    this.need(4);
    const v = this.view.getInt32(this.pos, true);
    this.pos += 4;
    return v;
  }

  uint32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  /** Bytes as a view into the input (valid until the input buffer is compacted). */
  bytes(n: number): Uint8Array {
    this.need(n);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  /** io.c read_varint */
  varint(): number {
    const ch = this.byte();
    const extra = INT_BYTE_EXTRA[ch >> 2]!;
    if (extra === 0) return ch;
    if (extra >= 5) throw new ProtocolError("Overflow in read_varint()", 13);
    this.need(extra);
    const b = [0, 0, 0, 0, 0];
    for (let i = 0; i < extra; i++) b[i] = this.buf[this.pos++]!;
    const bit = 1 << (8 - extra);
    b[extra] = ch & (bit - 1);
    return (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) | 0;
  }

  /** io.c read_varlong with min_bytes; values beyond 2^53 are refused. */
  varlong(minBytes: number): number {
    this.need(minBytes);
    const first = this.buf[this.pos]!;
    const extra = INT_BYTE_EXTRA[first >> 2]!;
    if (minBytes + extra > 9) throw new ProtocolError("Overflow in read_varlong()", 13);
    this.need(minBytes + extra);
    const b = new Uint8Array(9);
    b.set(this.buf.subarray(this.pos + 1, this.pos + minBytes), 0);
    this.pos += minBytes;
    if (extra) {
      const bit = 1 << (8 - extra);
      b.set(this.buf.subarray(this.pos, this.pos + extra), minBytes - 1);
      this.pos += extra;
      b[minBytes + extra - 1] = first & (bit - 1);
    } else {
      b[minBytes - 1] = first;
    }
    return int64FromLE(b);
  }

  /** io.c read_longint: int32, or -1 followed by a 64-bit value. */
  longint(): number {
    this.need(4);
    const v = this.view.getInt32(this.pos, true);
    if (v !== -1) {
      this.pos += 4;
      return v;
    }
    this.need(12);
    this.pos += 4;
    const lo = this.view.getUint32(this.pos, true);
    const hi = this.view.getInt32(this.pos + 4, true);
    this.pos += 8;
    return joinInt64(lo, hi);
  }

  /** io.c read_varint30: varint from protocol 30, else int32. */
  varint30(protocol: number): number {
    return protocol < 30 ? this.int32() : this.varint();
  }

  /** io.c read_varlong30: varlong from protocol 30, else longint. */
  varlong30(protocol: number, minBytes: number): number {
    return protocol < 30 ? this.longint() : this.varlong(minBytes);
  }
}

function joinInt64(lo: number, hi: number): number {
  const v = hi * TWO32 + lo;
  if (!Number.isSafeInteger(v)) throw new ProtocolError("64-bit value out of range");
  return v;
}

function int64FromLE(b: Uint8Array): number {
  const lo = (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
  const hi = (b[4]! | (b[5]! << 8) | (b[6]! << 16) | (b[7]! << 24)) | 0;
  return joinInt64(lo, hi);
}

/** A growable output buffer for encoding records. */
export class Writer {
  buf: Uint8Array;
  len = 0;

  constructor(capacity = 256) {
    this.buf = new Uint8Array(capacity);
  }

  private reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const nb = new Uint8Array(cap);
    nb.set(this.buf.subarray(0, this.len));
    this.buf = nb;
  }

  byte(v: number): this {
    this.reserve(1);
    this.buf[this.len++] = v & 0xff;
    return this;
  }

  int16(v: number): this {
    this.reserve(2);
    this.buf[this.len++] = v & 0xff;
    this.buf[this.len++] = (v >>> 8) & 0xff;
    return this;
  }

  int32(v: number): this {
    this.reserve(4);
    const b = this.buf;
    b[this.len++] = v & 0xff;
    b[this.len++] = (v >>> 8) & 0xff;
    b[this.len++] = (v >>> 16) & 0xff;
    b[this.len++] = (v >>> 24) & 0xff;
    return this;
  }

  bytes(data: Uint8Array): this {
    this.reserve(data.length);
    this.buf.set(data, this.len);
    this.len += data.length;
    return this;
  }

  /** io.c write_varint */
  varint(x: number): this {
    const b = [0, x & 0xff, (x >>> 8) & 0xff, (x >>> 16) & 0xff, (x >>> 24) & 0xff];
    let cnt = 4;
    while (cnt > 1 && b[cnt] === 0) cnt--;
    const bit = 1 << (7 - cnt + 1);
    if (b[cnt]! >= bit) {
      cnt++;
      b[0] = ~(bit - 1) & 0xff;
    } else if (cnt > 1) {
      b[0] = (b[cnt]! | ~(bit * 2 - 1)) & 0xff;
    } else {
      b[0] = b[1]!;
    }
    for (let i = 0; i < cnt; i++) this.byte(b[i]!);
    return this;
  }

  /** io.c write_varlong */
  varlong(x: number, minBytes: number): this {
    const b = new Array<number>(9).fill(0);
    const [lo, hi] = splitInt64(x);
    b[1] = lo & 0xff;
    b[2] = (lo >>> 8) & 0xff;
    b[3] = (lo >>> 16) & 0xff;
    b[4] = (lo >>> 24) & 0xff;
    b[5] = hi & 0xff;
    b[6] = (hi >>> 8) & 0xff;
    b[7] = (hi >>> 16) & 0xff;
    b[8] = (hi >>> 24) & 0xff;
    let cnt = 8;
    while (cnt > minBytes && b[cnt] === 0) cnt--;
    const bit = 1 << (7 - cnt + minBytes);
    if (b[cnt]! >= bit) {
      cnt++;
      b[0] = ~(bit - 1) & 0xff;
    } else if (cnt > minBytes) {
      b[0] = (b[cnt]! | ~(bit * 2 - 1)) & 0xff;
    } else {
      b[0] = b[cnt]!;
    }
    for (let i = 0; i < cnt; i++) this.byte(b[i]!);
    return this;
  }

  /** io.c write_longint */
  longint(x: number): this {
    if (x >= 0 && x <= 0x7fffffff) return this.int32(x);
    const [lo, hi] = splitInt64(x);
    return this.int32(-1).int32(lo).int32(hi);
  }

  varint30(x: number, protocol: number): this {
    return protocol < 30 ? this.int32(x) : this.varint(x);
  }

  varlong30(x: number, protocol: number, minBytes: number): this {
    return protocol < 30 ? this.longint(x) : this.varlong(x, minBytes);
  }

  /** The bytes written so far (a copy, so the writer can be reused). */
  take(): Uint8Array {
    const out = this.buf.slice(0, this.len);
    this.len = 0;
    return out;
  }
}

function splitInt64(x: number): [number, number] {
  const lo = x % TWO32;
  const loU = lo < 0 ? lo + TWO32 : lo;
  const hi = Math.floor(x / TWO32);
  return [loU >>> 0, hi | 0];
}
