// File-list indices on the wire (io.c write_ndx / read_ndx). From protocol 30 they are
// diff-encoded against the previous positive / negative index; each direction keeps its own
// state, so a connection has one NdxReader and one NdxWriter.
import { Cursor, ProtocolError, Writer } from "./wire.js";

export const NDX_DONE = -1;
export const NDX_FLIST_EOF = -2;
export const NDX_DEL_STATS = -3;
export const NDX_FLIST_OFFSET = -101;

export class NdxReader {
  private prevPositive = -1;
  private prevNegative = 1;
  constructor(private readonly protocol: number) {}

  /** Restartable: state changes only after the whole index has been read. */
  read(c: Cursor): number {
    if (this.protocol < 30) return c.int32();
    const start = c.pos;
    try {
      let b0 = c.byte();
      let negative = false;
      if (b0 === 0xff) {
        negative = true;
        b0 = c.byte();
      } else if (b0 === 0) {
        return NDX_DONE;
      }
      const prev = negative ? this.prevNegative : this.prevPositive;
      let unum: number;
      if (b0 === 0xfe) {
        const b1 = c.byte();
        const b2 = c.byte();
        if (b1 & 0x80) {
          const b3 = c.byte();
          const b4 = c.byte();
          unum = (b2 | (b3 << 8) | (b4 << 16) | ((b1 & 0x7f) << 24)) >>> 0;
        } else {
          unum = (b1 << 8) + b2 + prev;
        }
      } else {
        unum = b0 + prev;
      }
      if (unum > 0x7fffffff) throw new ProtocolError(`Invalid file index: ${unum}`);
      if (negative) this.prevNegative = unum;
      else this.prevPositive = unum;
      return negative ? -unum : unum;
    } catch (e) {
      c.pos = start;
      throw e;
    }
  }
}

export class NdxWriter {
  private prevPositive = -1;
  private prevNegative = 1;
  constructor(private readonly protocol: number) {}

  write(ndx: number, out: Writer): void {
    if (this.protocol < 30) {
      out.int32(ndx);
      return;
    }
    let diff: number;
    if (ndx >= 0) {
      diff = ndx - this.prevPositive;
      this.prevPositive = ndx;
    } else if (ndx === NDX_DONE) {
      out.byte(0);
      return;
    } else {
      out.byte(0xff);
      ndx = -ndx;
      diff = ndx - this.prevNegative;
      this.prevNegative = ndx;
    }
    if (diff > 0 && diff < 0xfe) {
      out.byte(diff);
    } else if (diff < 0 || diff > 0x7fff) {
      out.byte(0xfe).byte((ndx >>> 24) | 0x80).byte(ndx).byte(ndx >>> 8).byte(ndx >>> 16);
    } else {
      out.byte(0xfe).byte(diff >>> 8).byte(diff);
    }
  }
}

/** io.c read_del_stats: the deletion counts after NDX_DEL_STATS (files, dirs, symlinks,
 *  devices, specials). Restartable. */
export function readDelStats(c: Cursor): number[] {
  const start = c.pos;
  try {
    return [c.varint(), c.varint(), c.varint(), c.varint(), c.varint()];
  } catch (e) {
    c.pos = start;
    throw e;
  }
}
