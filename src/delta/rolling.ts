// rsync's weak ("rolling") block checksum (checksum.c get_checksum1, rolled in match.c
// hash_search). Over the block's bytes read as SIGNED chars (CHAR_OFFSET is 0):
//   s1 = Σ x[i],  s2 = Σ (len - i) · x[i],  sum = (s1 & 0xffff) | (s2 << 16)   (uint32)
// It is not Adler-32: there is no modulus and s1 starts at 0.

/** checksum.c get_checksum1 over buf[off, off+len). */
export function weakChecksum(buf: Uint8Array, off: number, len: number): number {
  // A signed view over the same memory: the bytes are signed chars in rsync.
  const sb = new Int8Array(buf.buffer, buf.byteOffset + off, len);
  let s1 = 0;
  let s2 = 0;
  let i = 0;
  // Four bytes a step: s2 gains 4·s1 + 4a + 3b + 2c + d, s1 gains a+b+c+d.
  for (const n4 = len - 3; i < n4; i += 4) {
    const a = sb[i]!;
    const b = sb[i + 1]!;
    const c = sb[i + 2]!;
    const d = sb[i + 3]!;
    s2 = (s2 + 4 * s1 + 4 * a + 3 * b + 2 * c + d) | 0;
    s1 = (s1 + a + b + c + d) | 0;
  }
  for (; i < len; i++) {
    s1 = (s1 + sb[i]!) | 0;
    s2 = (s2 + s1) | 0;
  }
  return ((s1 & 0xffff) | (s2 << 16)) >>> 0;
}

/** Signed value of a byte as rsync's schar sees it. */
export function signedByte(b: number): number {
  return (b << 24) >> 24;
}

/**
 * The rolling form (match.c hash_search): drop the window's first byte and append the next.
 * Only the low 16 bits of s1 and s2 reach the sum, and the updates are ring operations, so
 * both are kept masked to 16 bits (small integers, never boxed).
 */
export class RollingChecksum {
  s1 = 0;
  s2 = 0;
  /** Current window length k (used to remove the outgoing byte's k-fold weight). */
  len = 0;

  /** Start over the window buf[off, off+len). */
  init(buf: Uint8Array, off: number, len: number): this {
    const sum = weakChecksum(buf, off, len);
    this.s1 = sum & 0xffff;
    this.s2 = sum >>> 16;
    this.len = len;
    return this;
  }

  /** match.c: s1 -= out; s2 -= k·out; s1 += in; s2 += s1 (bytes as unsigned 0..255). */
  roll(outByte: number, inByte: number): void {
    const o = (outByte << 24) >> 24;
    const n = (inByte << 24) >> 24;
    const s1 = (this.s1 - o + n) & 0xffff;
    this.s2 = (this.s2 - Math.imul(this.len, o) + s1) & 0xffff;
    this.s1 = s1;
  }

  /** match.c at the end of the file: drop the first byte and shrink the window by one. */
  rollOut(outByte: number): void {
    const o = (outByte << 24) >> 24;
    this.s1 = (this.s1 - o) & 0xffff;
    this.s2 = (this.s2 - Math.imul(this.len, o)) & 0xffff;
    this.len--;
  }

  get value(): number {
    return (this.s1 | (this.s2 << 16)) >>> 0;
  }
}

// ---- Hash table of the sender's search (match.c build_hash_table) ----
// rsync buckets blocks by (s1 + s2) & 0xffff or sum % tablesize, but which bucket a block sits
// in never changes which block is chosen: candidates are filtered on the full 32-bit sum and
// tried in descending block order. So the matcher keys an open-addressing table on the exact
// weak sum (a miss costs one probe, a hit is a true weak match) with slots from a
// multiplicative hash, which spreads the rolling sums' correlated low bits.

/** Bits of the matcher's table: ≥ 4 slots per block up to 2^20 blocks, ≥ 2 beyond. */
export function weakHashBits(count: number): number {
  const want = count <= 1 << 20 ? count * 4 : count * 2;
  let bits = 10;
  while (2 ** bits < want) bits++;
  return bits;
}

/** First probe slot of a weak sum in a table of 2^bits slots. */
export function weakHashSlot(sum: number, bits: number): number {
  return Math.imul(sum, 0x9e3779b1) >>> (32 - bits);
}

/** match.c SUM2HASH: rsync's own 16-bit bucket (kept for reference and tests). */
export function sum2hash(sum: number): number {
  return ((sum & 0xffff) + (sum >>> 16)) & 0xffff;
}
