// The sum head that precedes a file's block checksums (io.c read_sum_head / write_sum_head).
import { Cursor, ProtocolError, Writer } from "./wire.js";

export interface SumHead {
  count: number;
  blength: number;
  s2length: number;
  remainder: number;
}

export const MAX_BLOCK_SIZE = 1 << 17; // rsync.h, protocol >= 30
export const OLD_MAX_BLOCK_SIZE = 1 << 29; // protocol < 30

/** Upper bound on block count we accept: a sum head can never describe more blocks than a
 *  file of 2^47 bytes at the smallest block size would have. */
const MAX_SUM_COUNT = 1 << 28;

export function readSumHead(c: Cursor, protocol: number, xferSumLen: number): SumHead {
  const start = c.pos;
  try {
    const count = c.int32();
    const blength = c.int32();
    const s2length = c.int32();
    const remainder = c.int32();
    validateSumHead({ count, blength, s2length, remainder }, protocol, xferSumLen);
    return { count, blength, s2length, remainder };
  } catch (e) {
    c.pos = start;
    throw e;
  }
}

export function validateSumHead(h: SumHead, protocol: number, xferSumLen: number): void {
  const maxBlength = protocol < 30 ? OLD_MAX_BLOCK_SIZE : MAX_BLOCK_SIZE;
  if (h.count < 0 || h.count > MAX_SUM_COUNT) throw new ProtocolError(`Invalid checksum count ${h.count}`);
  if (h.blength < 0 || h.blength > maxBlength) throw new ProtocolError(`Invalid block length ${h.blength}`);
  if (h.count && h.blength === 0) throw new ProtocolError("Invalid zero block length");
  if (h.s2length < 0 || h.s2length > xferSumLen) throw new ProtocolError(`Invalid checksum length ${h.s2length}`);
  if (h.remainder < 0 || h.remainder > h.blength) throw new ProtocolError(`Invalid remainder length ${h.remainder}`);
}

export function writeSumHead(h: SumHead, out: Writer): void {
  out.int32(h.count).int32(h.blength).int32(h.s2length).int32(h.remainder);
}

export const NULL_SUM_HEAD: SumHead = { count: 0, blength: 0, s2length: 0, remainder: 0 };
