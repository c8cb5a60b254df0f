// rsync's token stream (token.c): one file's delta from sender to receiver, a sequence of
// literal data and references to blocks of the receiver's basis file, closed by an end mark.
// Uncompressed (simple_send_token / simple_recv_token): int32 n > 0 then n literal bytes,
// int32 -(i+1) for block i, int32 0 at the end. The compressed formats live in token-*.ts.
//
// Readers and writers keep state across files the way token.c does (the state returns to its
// start after each file's end, except zstd's stream, which spans the whole session), so a
// connection needs one reader (receiver) or one writer (sender) per direction.
import { Cursor, NeedMore, NEED_MORE, Writer } from "./wire.js";
import { CHUNK_SIZE } from "./token-run.js";
import { createDeflateTokenReader, createDeflateTokenWriter } from "./token-deflate.js";
import { createLz4TokenReader, createLz4TokenWriter } from "./token-lz4.js";
import { lz4Lib, zstdLib } from "./token-libs.js";
import { createZstdTokenReader, createZstdTokenWriter } from "./token-zstd.js";

export { CHUNK_SIZE } from "./token-run.js";

/** The compression choice negotiated for the file data (compat.c parse_compress_choice). */
export type TokenCompression = "none" | "zlib" | "zlibx" | "lz4" | "zstd";

export type TokenEvent =
  /** Literal bytes to append (at most CHUNK_SIZE; may be empty). Plain streams hand out a view
   *  of the input (InputQueue never rewrites bytes it has handed out); copy it to keep it. */
  | { kind: "literal"; data: Uint8Array }
  /** `count` consecutive basis blocks starting at block `index`. */
  | { kind: "match"; index: number; count: number }
  /** This file's tokens are over (the whole-file checksum follows on the wire). */
  | { kind: "end" };

export interface TokenReader {
  /**
   * The next event of the current file. Throws NeedMore (without moving the cursor or
   * changing any state) when the next record has not fully arrived; throws ProtocolError on
   * malformed input. Block indices are bounded only by token.c's MAX_TOKEN_INDEX: the caller
   * must check `index + count <= sum count` against its sum head (receiver.c receive_data).
   */
  next(c: Cursor): TokenEvent;
  /**
   * token.c see_token: with `needsMatchData`, hand over the bytes of every matched block, one
   * call per block in order, before the next `next()`. A no-op otherwise.
   */
  seeMatch(blockData: Uint8Array): void;
  readonly needsMatchData: boolean;
}

/** Encodes one file's delta at a time into `out`. Output is produced as it is ready (a
 *  compressed packet holds back up to 16 KiB): what one call appends grows with its input, so
 *  pass literal data in bounded pieces and drain `out` between calls. */
export interface TokenWriter {
  /** Literal data (any length; consecutive calls form one run of literal data). */
  literal(data: Uint8Array, out: Writer): void;
  /** Block `index` of the basis matched; `blockData` (its bytes) is required when `needsMatchData`. */
  match(index: number, blockData: Uint8Array | undefined, out: Writer): void;
  /** End of this file's tokens. */
  end(out: Writer): void;
  readonly needsMatchData: boolean;
}

export interface TokenOptions {
  /** Negotiated protocol version: before 31, zlib's matched-data feed has a quirk (token.c). */
  protocol: number;
  /** --compress-level as given (writers only; undefined = not given): the level used is
   *  initCompressionLevel's. */
  level?: number | undefined;
  /**
   * zlib writer: feed every matched block through the deflater the way rsync built against a
   * stock zlib does, reproducing its output byte for byte. Off by default: only the newest
   * 32 KiB of matched data is then added to the history, when literal data next needs it —
   * the receiver's window ends up the same, at a fraction of the cost.
   */
  exactZlibHistory?: boolean;
}

export function createTokenReader(compression: TokenCompression, opts: TokenOptions): TokenReader {
  switch (compression) {
    case "none":
      return new SimpleTokenReader();
    case "zlib":
    case "zlibx":
      return createDeflateTokenReader(compression, opts.protocol);
    case "lz4":
      return createLz4TokenReader(lz4Lib());
    case "zstd":
      return createZstdTokenReader(zstdLib());
  }
}

export function createTokenWriter(compression: TokenCompression, opts: TokenOptions): TokenWriter {
  const { compression: actual, level } = initCompressionLevel(compression, opts.level);
  if (actual !== compression) throw new RangeError(`--compress-level=${opts.level} turns ${compression} off: use no compression`);
  switch (compression) {
    case "none":
      return new SimpleTokenWriter();
    case "zlib":
    case "zlibx":
      return createDeflateTokenWriter(compression, opts.protocol, level, opts.exactZlibHistory);
    case "lz4":
      return createLz4TokenWriter(lz4Lib());
    case "zstd":
      return createZstdTokenWriter(zstdLib(), level);
  }
}

/** rsync.h CLVL_NOT_SPECIFIED: a --compress-level of INT_MIN counts as none given. */
const CLVL_NOT_SPECIFIED = -0x80000000;

/**
 * token.c init_compression_level, which both ends run on the level the client passed on
 * (--compress-level): the level the sender compresses at, clamped to the algorithm's range
 * without a word, and the compression itself — zlib's level 0 turns compression off.
 * zlib/zlibx: default 6 (also for -1), 1..9, 0 = off; zstd: default ZSTD_CLEVEL_DEFAULT (also
 * for 0), ZSTD_minCLevel()..ZSTD_maxCLevel(); lz4: always 0.
 */
export function initCompressionLevel(
  compression: TokenCompression,
  level: number | undefined,
): { compression: TokenCompression; level: number } {
  const given = level === undefined || level === CLVL_NOT_SPECIFIED ? undefined : level;
  let min: number, max: number, def: number;
  switch (compression) {
    case "none":
      return { compression, level: 0 };
    case "lz4":
      return { compression, level: 0 };
    case "zlib":
    case "zlibx":
      if (given === 0) return { compression: "none", level: 0 };
      [min, max, def] = [1, 9, 6];
      if (given === -1) return { compression, level: def };
      break;
    case "zstd": {
      const z = zstdLib();
      [min, max, def] = [z.minCLevel(), z.maxCLevel(), z.defaultCLevel()];
      if (given === 0) return { compression, level: def };
      break;
    }
  }
  if (given === undefined) return { compression, level: def };
  return { compression, level: Math.min(max, Math.max(min, given)) };
}

const END: TokenEvent = { kind: "end" };

/** token.c simple_recv_token. A literal's length can be anything up to 2^31-1: it is passed
 *  on in pieces as bytes arrive, the rest of the count kept as state. */
export class SimpleTokenReader implements TokenReader {
  readonly needsMatchData = false;
  private residue = 0;

  next(c: Cursor): TokenEvent {
    if (this.residue > 0) {
      const n = Math.min(this.residue, c.remaining, CHUNK_SIZE);
      if (n === 0) throw NEED_MORE;
      const data = c.bytes(n);
      this.residue -= n;
      return { kind: "literal", data };
    }
    c.need(4);
    const start = c.pos;
    const i = c.int32();
    if (i === 0) return END;
    if (i < 0) return { kind: "match", index: -(i + 1), count: 1 };
    // A literal header alone is no event: wait for at least one of its bytes, so that the
    // header and the state change are taken together.
    if (c.remaining === 0) {
      c.pos = start;
      throw NEED_MORE;
    }
    const n = Math.min(i, c.remaining, CHUNK_SIZE);
    const data = c.bytes(n);
    this.residue = i - n;
    return { kind: "literal", data };
  }

  seeMatch(): void {}
}

/** token.c simple_send_token: literal data goes in pieces of at most CHUNK_SIZE. */
export class SimpleTokenWriter implements TokenWriter {
  readonly needsMatchData = false;

  literal(data: Uint8Array, out: Writer): void {
    for (let off = 0; off < data.length; off += CHUNK_SIZE) {
      const n = Math.min(CHUNK_SIZE, data.length - off);
      out.int32(n).bytes(data.subarray(off, off + n));
    }
  }

  match(index: number, _blockData: Uint8Array | undefined, out: Writer): void {
    if (!Number.isInteger(index) || index < 0 || index > 0x7fffffff) {
      throw new RangeError(`block index out of range: ${index}`);
    }
    out.int32(-(index + 1));
  }

  end(out: Writer): void {
    out.int32(0);
  }
}
