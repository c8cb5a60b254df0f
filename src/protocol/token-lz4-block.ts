// The LZ4 block format (lz4's lz4_Block_format.md), as rsync's `lz4` choice uses it: each
// DEFLATED_DATA packet is one independent block (LZ4_compress_default / LZ4_decompress_safe).
// A block is a series of sequences: a token byte (high nibble literal count, low nibble match
// length - 4; 15 means "more bytes follow, each adding up to 255"), the literals, a 2-byte
// little-endian match offset and the extra match length bytes. The last sequence has literals
// only; the last 5 bytes are always literals and no match starts within the last 12.
import { RERR_STREAMIO } from "./errcode.js";
import { ProtocolError } from "./wire.js";

const MIN_MATCH = 4;
const LAST_LITERALS = 5;
const MF_LIMIT = 12;
const HASH_LOG = 12;
const MAX_OFFSET = 65535;

/** LZ4_compressBound */
export function lz4CompressBound(n: number): number {
  return n + Math.floor(n / 255) + 16;
}

function hash4(src: Uint8Array, i: number): number {
  const v = src[i]! | (src[i + 1]! << 8) | (src[i + 2]! << 16) | (src[i + 3]! << 24);
  return Math.imul(v, 2654435761) >>> (32 - HASH_LOG);
}

function writeLength(dst: Uint8Array, op: number, len: number): number {
  while (len >= 255) {
    dst[op++] = 255;
    len -= 255;
  }
  dst[op++] = len;
  return op;
}

/** Compress `src` into one LZ4 block; returns its length. `dst` must hold lz4CompressBound. */
export function lz4CompressBlock(src: Uint8Array, dst: Uint8Array, table = new Int32Array(1 << HASH_LOG)): number {
  const n = src.length;
  table.fill(-1);
  let op = 0;
  let anchor = 0;
  const matchLimit = n - LAST_LITERALS;
  const mfLimit = n - MF_LIMIT;
  let ip = 0;
  while (ip < mfLimit) {
    const h = hash4(src, ip);
    const ref = table[h]!;
    table[h] = ip;
    if (
      ref < 0 ||
      ip - ref > MAX_OFFSET ||
      src[ref] !== src[ip] ||
      src[ref + 1] !== src[ip + 1] ||
      src[ref + 2] !== src[ip + 2] ||
      src[ref + 3] !== src[ip + 3]
    ) {
      ip++;
      continue;
    }
    // Extend the match forward (not into the last 5 bytes).
    let mlen = MIN_MATCH;
    while (ip + mlen < matchLimit && src[ref + mlen] === src[ip + mlen]) mlen++;
    const litLen = ip - anchor;
    const tokenPos = op++;
    dst[tokenPos] = (Math.min(litLen, 15) << 4) | Math.min(mlen - MIN_MATCH, 15);
    if (litLen >= 15) op = writeLength(dst, op, litLen - 15);
    dst.set(src.subarray(anchor, ip), op);
    op += litLen;
    const off = ip - ref;
    dst[op++] = off & 0xff;
    dst[op++] = off >>> 8;
    if (mlen - MIN_MATCH >= 15) op = writeLength(dst, op, mlen - MIN_MATCH - 15);
    ip += mlen;
    anchor = ip;
    // Index a position inside the match so that nearby repeats are found.
    if (ip - 2 < mfLimit && ip - 2 >= 0) table[hash4(src, ip - 2)] = ip - 2;
  }
  const litLen = n - anchor;
  dst[op++] = Math.min(litLen, 15) << 4;
  if (litLen >= 15) op = writeLength(dst, op, litLen - 15);
  dst.set(src.subarray(anchor, n), op);
  return op + litLen;
}

function corrupt(): ProtocolError {
  // token.c recv_compressed_token: "uncompress failed" is fatal (RERR_STREAMIO).
  return new ProtocolError("uncompress failed: malformed lz4 block", RERR_STREAMIO);
}

/** LZ4_decompress_safe: decode one block into `dst`, never writing past its end; returns the
 *  decoded length. Malformed input (or output that would not fit) throws ProtocolError. */
export function lz4DecompressBlock(src: Uint8Array, dst: Uint8Array): number {
  const iend = src.length;
  const cap = dst.length;
  let ip = 0;
  let op = 0;
  if (iend === 0) throw corrupt();
  for (;;) {
    const token = src[ip++]!;
    let lit = token >>> 4;
    if (lit === 15) {
      let b: number;
      do {
        if (ip >= iend) throw corrupt();
        b = src[ip++]!;
        lit += b;
      } while (b === 255);
    }
    if (ip + lit > iend || op + lit > cap) throw corrupt();
    dst.set(src.subarray(ip, ip + lit), op);
    ip += lit;
    op += lit;
    if (ip === iend) return op; // the last sequence ends with its literals
    if (ip + 2 > iend) throw corrupt();
    const off = src[ip]! | (src[ip + 1]! << 8);
    ip += 2;
    if (off === 0 || off > op) throw corrupt();
    let mlen = token & 15;
    if (mlen === 15) {
      let b: number;
      do {
        if (ip >= iend) throw corrupt();
        b = src[ip++]!;
        mlen += b;
      } while (b === 255);
    }
    mlen += MIN_MATCH;
    if (op + mlen > cap) throw corrupt();
    if (ip >= iend) throw corrupt(); // a block cannot end on a match
    let from = op - off;
    if (off >= mlen) {
      dst.copyWithin(op, from, from + mlen);
      op += mlen;
    } else {
      for (let k = 0; k < mlen; k++) dst[op++] = dst[from++]!;
    }
  }
}
