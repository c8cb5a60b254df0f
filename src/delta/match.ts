// The sender's block search (match.c build_hash_table / hash_search / matched), streaming:
// the source file is pushed in pieces and the token stream comes out as literal runs
// (chunks of at most CHUNK_SIZE, as token.c simple_send_token sends them) and block indices.
// Memory stays bounded by about three block lengths plus two chunks, plus the pieces taken in
// between two searches (the buffer is compacted when the next piece does not fit).
import type { SumHead } from "../protocol/sumhead.js";
import { Cursor, ProtocolError } from "../protocol/wire.js";
import type { BlockSummer } from "./checksum.js";
import { weakHashBits, weakHashSlot } from "./rolling.js";
import { FILTER_MUL, SimdBuffer } from "./wasm-simd.js";
import { validateSumHead, type SumHeadLimits } from "./sumsizes.js";

/** rsync.h CHUNK_SIZE: the largest literal token. */
export const CHUNK_SIZE = 32 * 1024;
/** match.c MAX_CHAIN_LEN: candidates with the same weak sum tried at one offset. */
export const MAX_CHAIN_LEN = 1024;
/** How much pushed input is taken in at a time (bounds the buffer). */
const FEED_PIECE = 256 * 1024;

export type MatchToken = { kind: "literal"; data: Uint8Array } | { kind: "block"; index: number };

/** The receiver's block sums: weak sum per block, strong sums truncated to s2length. */
export interface BlockSums {
  sum1: Uint32Array;
  /** count × s2length bytes, block i at i·s2length. */
  sum2: Uint8Array;
}

/**
 * Reads the count × (int32 sum1 + s2length bytes) that follow a sum head (sender.c
 * receive_sums). Incremental: each read() takes every complete entry available and never
 * consumes a partial one, so it never throws NeedMore. Storage grows with the data that
 * actually arrives, not with the peer's count.
 */
export class BlockSumsReader {
  private sum1: Uint32Array;
  private sum2: Uint8Array;
  private n = 0;
  private readonly head: SumHead;

  constructor(head: SumHead, protocol: number, xferSumLen: number, limits?: SumHeadLimits) {
    validateSumHead(head, protocol, xferSumLen, limits);
    this.head = head;
    const first = Math.min(head.count, 4096);
    this.sum1 = new Uint32Array(first);
    this.sum2 = new Uint8Array(first * head.s2length);
  }

  get done(): boolean {
    return this.n === this.head.count;
  }

  /** Consume complete entries; returns true once all count entries are in. */
  read(c: Cursor): boolean {
    const s2 = this.head.s2length;
    const entry = 4 + s2;
    while (this.n < this.head.count && c.remaining >= entry) {
      if (this.n === this.sum1.length) this.grow();
      this.sum1[this.n] = c.uint32();
      this.sum2.set(c.bytes(s2), this.n * s2);
      this.n++;
    }
    return this.done;
  }

  private grow(): void {
    const cap = Math.min(this.head.count, this.sum1.length * 2);
    const a = new Uint32Array(cap);
    a.set(this.sum1);
    const b = new Uint8Array(cap * this.head.s2length);
    b.set(this.sum2);
    this.sum1 = a;
    this.sum2 = b;
  }

  sums(): BlockSums {
    if (!this.done) throw new ProtocolError("block sums incomplete");
    return { sum1: this.sum1.subarray(0, this.n), sum2: this.sum2.subarray(0, this.n * this.head.s2length) };
  }
}

export interface MatcherOptions {
  /** sender.c updating_basis_file (--inplace): the receiver rewrites the basis in place, so a
   *  block may only be used at or after its own offset (or where it already sits). */
  inplace?: boolean;
  /** The buffer the source is kept in (one per caller, reused file after file; a matcher
   *  makes its own without it). Only one live matcher may use it at a time. */
  buffer?: SimdBuffer;
}

export interface MatchStats {
  matches: number;
  hashHits: number;
  falseAlarms: number;
  literalBytes: number;
  matchedBytes: number;
}

/** A free table slot. */
const EMPTY = -1;
/** A slot whose blocks were all dropped (--inplace); probing continues past it. */
const DRAINED = -2;

export class BlockMatcher {
  readonly stats: MatchStats = { matches: 0, hashHits: 0, falseAlarms: 0, literalBytes: 0, matchedBytes: 0 };

  private readonly count: number;
  private readonly blength: number;
  private readonly s2length: number;
  private readonly lastLen: number;
  /** Weak sums as int32 (the same bits as the wire's uint32). */
  private readonly sum1: Int32Array;
  private readonly sum2: Uint8Array;
  private readonly summer: BlockSummer;
  private readonly inplace: boolean;
  private readonly sameOffset: Uint8Array | null;
  // Open-addressing table keyed on the exact weak sum: keys[h] and heads[h] (first block of
  // that sum, or EMPTY / DRAINED); chain[i] = next block with the same sum, descending.
  private readonly keys: Int32Array;
  private readonly heads: Int32Array;
  private readonly chain: Int32Array;
  private readonly shift: number;
  private readonly mask: number;
  /** A bitmap of (hashed) weak sums present, small enough to stay in cache: most offsets
   *  are rejected by one bit test before touching the table. It sits at the front of wbuf's
   *  data (the rolling search runs there), the source bytes after it. */
  private readonly filterBytes: number;
  private readonly fshift: number;
  /** Bytes needed beyond an offset before it is searched without knowing the file length. */
  private readonly lookahead: number;

  // Buffered source bytes: absolute offsets [bufStart, bufEnd) live at buf[0 ..], in wbuf's
  // wasm memory (buf and sbuf are views of it, renewed when it grows).
  private readonly wbuf: SimdBuffer;
  private buf: Uint8Array;
  private sbuf: Int8Array;
  private bufStart = 0;
  private bufEnd = 0;
  /** Committed bytes not yet searched. */
  private fresh = 0;

  // match.c hash_search state.
  private offset = 0;
  private lastMatch = 0;
  private k = 0;
  private s1 = 0;
  private s2 = 0;
  private sumValid = false;
  /** Table slot of the current weak sum, set when the hot loop finds candidates. */
  private slot = 0;
  private wantI = 0;
  private alignedOffset = 0;
  private alignedI = 0;
  private finished = false;
  private out: MatchToken[] = [];

  constructor(head: SumHead, sums: BlockSums, blockSummer: BlockSummer, opts: MatcherOptions = {}) {
    this.count = head.count;
    this.blength = head.blength;
    this.s2length = head.s2length;
    this.lastLen = head.count > 0 && head.remainder !== 0 ? head.remainder : head.blength;
    if (sums.sum1.length < head.count || sums.sum2.length < head.count * head.s2length)
      throw new ProtocolError("block sums shorter than the sum head's count");
    this.sum1 = new Int32Array(sums.sum1.buffer, sums.sum1.byteOffset, head.count);
    this.sum2 = sums.sum2;
    this.summer = blockSummer;
    this.inplace = opts.inplace ?? false;
    this.sameOffset = this.inplace ? new Uint8Array(head.count) : null;
    this.lookahead = 2 * head.blength + CHUNK_SIZE + 1;

    // match.c build_hash_table: chains run from the highest block index down.
    const bits = head.count > 0 ? weakHashBits(head.count) : 1;
    this.shift = 32 - bits;
    this.mask = (1 << bits) - 1;
    this.keys = new Int32Array(1 << bits);
    this.heads = new Int32Array(1 << bits).fill(EMPTY);
    this.chain = new Int32Array(head.count);
    let fbits = 16;
    while (fbits < 23 && 2 ** fbits < head.count * 32) fbits++;
    this.fshift = 32 - fbits;
    const filter = new Uint32Array(1 << (fbits - 5));
    for (let i = 0; i < head.count; i++) {
      const sum = this.sum1[i]!;
      const f = Math.imul(sum, FILTER_MUL) >>> this.fshift;
      filter[f >>> 5]! |= 1 << (f & 31);
      let h = weakHashSlot(sum, bits);
      while (this.heads[h] !== EMPTY && this.keys[h] !== sum) h = (h + 1) & this.mask;
      this.keys[h] = sum;
      this.chain[i] = this.heads[h]!;
      this.heads[h] = i;
    }
    this.wbuf = opts.buffer ?? new SimdBuffer();
    this.filterBytes = filter.byteLength;
    this.wbuf.reserve(this.filterBytes + 64 * 1024);
    this.wbuf.bytes.set(new Uint8Array(filter.buffer), 0);
    this.buf = this.wbuf.bytes.subarray(this.filterBytes);
    this.sbuf = new Int8Array(this.buf.buffer, this.buf.byteOffset, this.buf.length);
  }

  /** Feed the next bytes of the source file; returns the tokens that are now final.
   *  `onData` sees the bytes as they are taken in (valid only during the call). */
  push(data: Uint8Array, onData?: (copy: Uint8Array) => void): MatchToken[] {
    for (let p = 0; p < data.length; p += FEED_PIECE) {
      const n = Math.min(data.length - p, FEED_PIECE);
      this.input(n).set(data.subarray(p, p + n));
      this.commit(n);
      this.searchFresh(onData);
    }
    return this.take();
  }

  /**
   * Room for the next n source bytes, right after those committed, for a caller that reads
   * the file straight into the matcher's buffer: fill it, commit() what is there, run(). The
   * room stays put until the next input() (only input() moves or grows the buffer), so the
   * next piece may be read into it while the previous one is searched.
   */
  input(n: number): Uint8Array {
    if (this.finished) throw new Error("input() after finish()");
    let at = this.bufEnd - this.bufStart;
    if (at + n > this.buf.length) {
      // Keep bytes from lastMatch on (all the search can still reach), at the front.
      const from = this.lastMatch - this.bufStart;
      if (from > 0) {
        this.buf.copyWithin(0, from, at);
        this.bufStart = this.lastMatch;
        at -= from;
      }
      if (at + n > this.buf.length) {
        this.wbuf.reserve(this.filterBytes + Math.max(at + n, this.buf.length * 2));
        this.buf = this.wbuf.bytes.subarray(this.filterBytes);
        this.sbuf = new Int8Array(this.buf.buffer, this.buf.byteOffset, this.buf.length);
      }
    }
    return this.buf.subarray(at, at + n);
  }

  /** The first n bytes of the last input() room are the source's next bytes. */
  commit(n: number): void {
    this.bufEnd += n;
    this.fresh += n;
  }

  /** Search what was committed; returns the tokens that are now final. `onData` sees the
   *  committed bytes where they sit (in wasm memory: kernels take them in place). */
  run(onData?: (bytes: Uint8Array) => void): MatchToken[] {
    this.searchFresh(onData);
    return this.take();
  }

  private searchFresh(onData: ((bytes: Uint8Array) => void) | undefined): void {
    const at = this.bufEnd - this.bufStart;
    if (this.fresh > 0) onData?.(this.buf.subarray(at - this.fresh, at));
    this.fresh = 0;
    this.process(false);
  }

  /** The source is complete: search the tail and flush the last literal. */
  finish(): MatchToken[] {
    if (this.finished) throw new Error("finish() called twice");
    if (this.fresh > 0) throw new Error("finish() with committed bytes not run()");
    this.finished = true;
    this.process(true);
    // matched(len, -1): the remaining literal, then the end token (written by the caller).
    this.literal(this.bufEnd);
    return this.take();
  }

  private take(): MatchToken[] {
    const t = this.out;
    this.out = [];
    return t;
  }

  /** Emit lastMatch..to as literal chunks (token.c simple_send_token). */
  private literal(to: number): void {
    let from = this.lastMatch;
    if (to <= from) return;
    this.stats.literalBytes += to - from;
    while (from < to) {
      const n = Math.min(CHUNK_SIZE, to - from);
      const p = from - this.bufStart;
      this.out.push({ kind: "literal", data: this.buf.slice(p, p + n) });
      from += n;
    }
    this.lastMatch = to;
  }

  /** match.c matched(offset, i) for a block: literal up to offset, then block i. */
  private matchedBlock(offset: number, i: number): void {
    this.literal(offset);
    this.out.push({ kind: "block", index: i });
    const len = i === this.count - 1 ? this.lastLen : this.blength;
    this.stats.matchedBytes += len;
    this.stats.matches++;
    this.lastMatch = offset + len;
  }

  private process(final: boolean): void {
    const len = this.bufEnd; // the file length, when final
    if (this.count === 0) {
      // match_sums without sums: literal data in CHUNK_SIZE pieces.
      while (this.bufEnd - this.lastMatch > CHUNK_SIZE) this.literal(this.lastMatch + CHUNK_SIZE);
      return;
    }
    if (final && len === 0) return;
    const end = final ? len + 1 - this.lastLen : Number.MAX_SAFE_INTEGER;
    const limit = final ? end : this.bufEnd - this.lookahead + 1; // search offsets < limit
    const blength = this.blength;
    const flushAt = blength + CHUNK_SIZE;
    const keys = this.keys;
    const heads = this.heads;
    const shift = this.shift;
    const mask = this.mask;
    const wbuf = this.wbuf;
    const fshift = this.fshift;

    let off = this.offset;
    while (off < limit) {
      if (!this.sumValid) {
        // A fresh window at the start and after each match.
        this.k = Math.min(blength, len - off);
        const sum = this.wbuf.sum(this.filterBytes + off - this.bufStart, this.k);
        this.s1 = sum & 0xffff;
        this.s2 = sum >>> 16;
        this.sumValid = true;
      }
      // Hot loop over offsets where the window has a next byte and no literal flush is due:
      // test the weak sum, roll it on. Anything else takes the general step below.
      const sb = this.sbuf;
      const base = this.bufStart;
      const k = this.k;
      let stop = Math.min(limit, this.lastMatch + flushAt);
      if (final) stop = Math.min(stop, len - k);
      let s1 = this.s1;
      let s2 = this.s2;
      let hit = false;
      const fb = this.filterBytes;
      while (off < stop) {
        // In wasm, up to the next offset whose sum may be in the table.
        off = wbuf.scan(fb + off - base, fb + stop - base, k, (s1 & 0xffff) | (s2 << 16), 0, fshift) - fb + base;
        const sum = wbuf.lastSum | 0;
        s1 = sum & 0xffff;
        s2 = sum >>> 16;
        if (off >= stop) break;
        let h = Math.imul(sum, 0x9e3779b1) >>> shift;
        let hd: number;
        while ((hd = heads[h]!) !== EMPTY && keys[h] !== sum) h = (h + 1) & mask;
        if (hd >= 0) {
          this.slot = h;
          hit = true;
          break;
        }
        // The filter's false alarm: roll past it.
        const p = off - base;
        const o = sb[p]!;
        s1 = (s1 - o + sb[p + k]!) | 0;
        s2 = (s2 - Math.imul(k, o) + s1) | 0;
        off++;
      }
      this.s1 = s1 & 0xffff;
      this.s2 = s2 & 0xffff;
      this.offset = off;
      if (off >= limit) break;
      // The general step (match.c, one offset): candidates, then roll, flush, shrink at EOF.
      if ((hit || this.hasCandidates()) && this.search(final, len)) {
        off = this.offset;
        this.sumValid = false;
        continue;
      }
      this.rollOne(final, len, end);
      off = this.offset;
    }
    this.offset = off;
  }

  /** Whether the current weak sum has blocks in the table (sets this.slot). */
  private hasCandidates(): boolean {
    const sum = (this.s1 & 0xffff) | (this.s2 << 16);
    let h = weakHashSlot(sum, 32 - this.shift);
    let hd: number;
    while ((hd = this.heads[h]!) !== EMPTY && this.keys[h] !== sum) h = (h + 1) & this.mask;
    this.slot = h;
    return hd >= 0;
  }

  /** match.c null_hash: drop the window's first byte, add the next, maybe flush literal. */
  private rollOne(final: boolean, len: number, end: number): void {
    const off = this.offset;
    const p = off - this.bufStart;
    const o = this.sbuf[p]!;
    const k = this.k;
    let s1 = (this.s1 - o) | 0;
    let s2 = (this.s2 - Math.imul(k, o)) | 0;
    if (!final || off + k < len) {
      s1 = (s1 + this.sbuf[p + k]!) | 0;
      s2 = (s2 + s1) | 0;
    } else {
      this.k = k - 1;
    }
    this.s1 = s1 & 0xffff;
    this.s2 = s2 & 0xffff;
    if (off - this.lastMatch >= this.blength + CHUNK_SIZE && end - off > CHUNK_SIZE)
      this.literal(off - this.blength);
    this.offset = off + 1;
  }

  private strongAt(off: number, l: number): Uint8Array {
    return this.summer(this.buf, off - this.bufStart, l);
  }

  private strongEq(d: Uint8Array, i: number): boolean {
    const s2 = this.s2length;
    const sum2 = this.sum2;
    const at = i * s2;
    for (let j = 0; j < s2; j++) if (d[j] !== sum2[at + j]) return false;
    return true;
  }

  /** The candidate loop of match.c hash_search at this.offset; true if a block matched. */
  private search(final: boolean, len: number): boolean {
    const offset0 = this.offset;
    let offset = offset0;
    let sum = (this.s1 & 0xffff) | (this.s2 << 16);
    const slot = this.slot;
    const blength = this.blength;
    const count = this.count;
    const l = final ? Math.min(blength, len - offset) : blength;
    const inplace = this.inplace;
    const sameOffset = this.sameOffset;
    let sum2: Uint8Array | null = null;
    let chainLen = 0;
    this.stats.hashHits++;

    let prev = -1; // chain predecessor (-1: the table slot)
    for (let i = this.heads[slot]!; i >= 0; ) {
      const nextI = this.chain[i]!;
      // --inplace: a block before our offset that is not already in place can never be used.
      if (inplace && i * blength < offset && !sameOffset![i]) {
        if (prev < 0) this.heads[slot] = nextI >= 0 ? nextI : DRAINED;
        else this.chain[prev] = nextI;
        i = nextI;
        continue;
      }
      prev = i;
      if (sum !== this.sum1[i]) {
        i = nextI;
        continue;
      }
      if (++chainLen > MAX_CHAIN_LEN) break;
      const blen = i === count - 1 ? this.lastLen : blength;
      if (l !== blen) {
        i = nextI;
        continue;
      }
      sum2 ??= this.strongAt(offset, l);
      if (!this.strongEq(sum2, i)) {
        this.stats.falseAlarms++;
        i = nextI;
        continue;
      }

      if (inplace) {
        // Prefer the block that already sits at this offset in the basis.
        while (this.alignedOffset < offset) {
          this.alignedOffset += blength;
          this.alignedI++;
        }
        const ai = this.alignedI;
        const ao = this.alignedOffset;
        let ok = true;
        if ((offset === ao || (sum === 0 && l === blength && ao + l <= len)) && ai < count) {
          if (i !== ai) {
            const alen = ai === count - 1 ? this.lastLen : blength;
            if (sum !== this.sum1[ai] || l !== alen || !this.strongEq(sum2, ai)) ok = false;
            else i = ai;
          }
          if (ok && offset !== ao) {
            // Zeros here are zeros further on in the basis: re-align with the basis copy.
            sum = this.wbuf.sum(this.filterBytes + ao - this.bufStart, l) | 0;
            if (sum !== this.sum1[i]) ok = false;
            else {
              sum2 = this.strongAt(ao, l);
              if (!this.strongEq(sum2, i)) ok = false;
              else offset = ao;
            }
          }
          if (ok) {
            sameOffset![i] = 1;
            this.wantI = i;
          }
        }
      }

      // check_want_i: prefer the block after the previous match (runs of adjacent blocks).
      const w = this.wantI;
      if (
        i !== w &&
        w < count &&
        (!inplace || w * blength >= offset || sameOffset![w]) &&
        sum === this.sum1[w] &&
        l === (w === count - 1 ? this.lastLen : blength) &&
        this.strongEq(sum2, w)
      ) {
        i = w;
      }
      this.wantI = i + 1;
      this.matchedBlock(offset, i);
      this.offset = this.lastMatch;
      return true;
    }
    return false;
  }
}

/** Rebuild the source from a basis and a token stream (what the receiver does). */
export function applyTokens(basis: Uint8Array, head: SumHead, tokens: Iterable<MatchToken>): Uint8Array {
  const parts: Uint8Array[] = [];
  let n = 0;
  for (const t of tokens) {
    let p: Uint8Array;
    if (t.kind === "literal") p = t.data;
    else {
      if (t.index < 0 || t.index >= head.count) throw new ProtocolError(`Invalid block index ${t.index}`);
      const start = t.index * head.blength;
      const blen = t.index === head.count - 1 && head.remainder ? head.remainder : head.blength;
      p = basis.subarray(start, start + blen);
    }
    parts.push(p);
    n += p.length;
  }
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
