// Block-checksum geometry (generator.c sum_sizes_sqroot) and the bounds a sender applies to a
// sum head received from the peer (io.c read_sum_head).
import type { SumHead } from "../protocol/sumhead.js";
import { ProtocolError } from "../protocol/wire.js";

export type { SumHead } from "../protocol/sumhead.js";

/** rsync.h BLOCK_SIZE: the block length for files up to BLOCK_SIZE² bytes. */
export const BLOCK_SIZE = 700;
/** rsync.h MAX_BLOCK_SIZE (protocol >= 30). */
export const MAX_BLOCK_SIZE = 1 << 17;
/** rsync.h OLD_MAX_BLOCK_SIZE (protocol < 30). */
export const OLD_MAX_BLOCK_SIZE = 1 << 29;
/** rsync.h SUM_LENGTH: the strong-sum length of the redo phase (csum_length = SUM_LENGTH). */
export const SUM_LENGTH = 16;
/** rsync.h SHORT_SUM_LENGTH: csum_length of the first pass. */
export const SHORT_SUM_LENGTH = 2;
/** rsync.h BLOCKSUM_BIAS */
const BLOCKSUM_BIAS = 10;

/** The largest block length for a protocol (options.c --block-size, io.c read_sum_head). */
export function maxBlockSize(protocol: number): number {
  return protocol < 30 ? OLD_MAX_BLOCK_SIZE : MAX_BLOCK_SIZE;
}

export interface SumSizesOptions {
  /** --block-size (-B); 0 or undefined = choose from the file length. */
  blockSize?: number;
  /** Digest length of the transfer checksum (xfer_sum_len). */
  digestLength: number;
  /** csum_length: SHORT_SUM_LENGTH (2) in the first pass, SUM_LENGTH (16) in the redo phase. */
  csumLength?: number;
}

/** floor(log2(x)) for a positive bigint. */
function log2Floor(x: bigint): number {
  return x.toString(2).length - 1;
}

/**
 * generator.c sum_sizes_sqroot for protocols 27..32. Throws RangeError when the block count
 * would not fit rsync's int32 (the generator then skips the file).
 */
export function sumSizes(fileLen: number, protocol: number, opts: SumSizesOptions): SumHead {
  if (!Number.isSafeInteger(fileLen) || fileLen < 0) throw new RangeError(`bad file length ${fileLen}`);
  const csumLength = opts.csumLength ?? SHORT_SUM_LENGTH;
  const maxS2length = Math.min(SUM_LENGTH, opts.digestLength);
  const len = BigInt(fileLen);

  let blength: number;
  if (opts.blockSize) {
    blength = opts.blockSize;
  } else if (fileLen <= BLOCK_SIZE * BLOCK_SIZE) {
    blength = BLOCK_SIZE;
  } else {
    const maxBlength = maxBlockSize(protocol);
    // c = 2^floor(log4(len)): the highest bit the square root can have.
    const c0 = 2 ** Math.floor(log2Floor(len) / 2);
    if (c0 >= maxBlength) {
      blength = maxBlength;
    } else {
      // Bitwise square root, stopping at the 8s bit: a multiple of 8, rounded down.
      let b = 0;
      for (let c = c0; c >= 8; c /= 2) {
        b += c;
        if (len < BigInt(b) * BigInt(b)) b -= c;
      }
      blength = Math.max(b, BLOCK_SIZE);
    }
  }

  let s2length: number;
  if (csumLength === SUM_LENGTH) {
    s2length = maxS2length;
  } else {
    // b = BLOCKSUM_BIAS + 2·log2(len) - log2(blength) (not below 0); then
    // s2length = (b + 1 - 32 + 7) / 8 in C's truncating division.
    let b = BLOCKSUM_BIAS + (fileLen > 0 ? 2 * log2Floor(len) : 0);
    for (let c = blength >> 1; c && b; c >>= 1) b--;
    s2length = Math.trunc((b + 1 - 32 + 7) / 8);
    s2length = Math.max(s2length, csumLength);
    s2length = Math.min(s2length, maxS2length);
  }

  const remainder = fileLen % blength;
  const count = Math.floor(fileLen / blength) + (remainder !== 0 ? 1 : 0);
  if (count > 0x7fffffff) throw new RangeError(`block count ${count} overflows int32`);
  return { count, blength, s2length, remainder };
}

export interface SumHeadLimits {
  /** Refuse more blocks than this (we must not trust the peer's count for allocation). */
  maxCount?: number;
}

/** Default cap on a received block count: 2^26 blocks (over 8 TiB at 128 KiB blocks). */
export const DEFAULT_MAX_SUM_COUNT = 1 << 26;

/**
 * io.c read_sum_head bounds, for a sum head from an untrusted peer. `xferSumLen` is the
 * transfer checksum's digest length. Throws ProtocolError naming the bad field.
 */
export function validateSumHead(
  head: SumHead,
  protocol: number,
  xferSumLen: number,
  limits: SumHeadLimits = {},
): void {
  const maxCount = limits.maxCount ?? DEFAULT_MAX_SUM_COUNT;
  const { count, blength, s2length, remainder } = head;
  if (!Number.isInteger(count) || count < 0) throw new ProtocolError(`Invalid checksum count ${count}`);
  if (count > maxCount) throw new ProtocolError(`Invalid checksum count ${count} (too large)`);
  if (!Number.isInteger(blength) || blength < 0 || blength > maxBlockSize(protocol))
    throw new ProtocolError(`Invalid block length ${blength}`);
  if (count && blength === 0) throw new ProtocolError("Invalid zero block length");
  if (!Number.isInteger(s2length) || s2length < 0 || s2length > xferSumLen)
    throw new ProtocolError(`Invalid checksum length ${s2length}`);
  if (!Number.isInteger(remainder) || remainder < 0 || remainder > blength)
    throw new ProtocolError(`Invalid remainder length ${remainder}`);
}

/** Length of the basis that a sum head describes (sender.c receive_sums flength). */
export function sumHeadFileLength(head: SumHead): number {
  if (head.count === 0) return 0;
  return (head.count - 1) * head.blength + (head.remainder !== 0 ? head.remainder : head.blength);
}
