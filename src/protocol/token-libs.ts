// The libraries behind the `zstd` and `lz4` token formats, both native Node-API modules:
// zstd-napi (libzstd's streaming API: ZSTD_compressStream2 with ZSTD_e_flush, one
// ZSTD_decompressStream context per session) and lz4-napi (lz4_flex's raw block codec). Each is
// loaded on first use and may be missing — zstd-napi is an optional dependency that is built
// or fetched at install time, lz4-napi ships a binary per platform — and a missing one only
// means that choice is not offered in negotiation and an explicit --zc for it is refused.
import { createRequire } from "node:module";
import type { TokenCompression } from "./token.js";

/** ZSTD_compressStream2 / ZSTD_decompressStream: [return value, bytes written, bytes read]. */
export type ZstdStreamResult = [returnValue: number, dstProduced: number, srcConsumed: number];

export interface ZstdCCtx {
  setParameter(param: number, value: number): void;
  compressStream2(dst: Uint8Array, src: Uint8Array, endOp: number): ZstdStreamResult;
}

export interface ZstdDCtx {
  setParameter(param: number, value: number): void;
  decompressStream(dst: Uint8Array, src: Uint8Array): ZstdStreamResult;
}

/** The part of zstd-napi's `binding` module krsync uses. */
export interface ZstdLib {
  CCtx: new () => ZstdCCtx;
  DCtx: new () => ZstdDCtx;
  CParameter: { compressionLevel: number };
  DParameter: { windowLogMax: number };
  EndDirective: { continue: number; flush: number };
  minCLevel(): number;
  maxCLevel(): number;
  defaultCLevel(): number;
}

/** lz4-napi: raw LZ4 blocks behind a 4-byte little-endian size (lz4_flex *_size_prepended). */
export interface Lz4Lib {
  compressSync(data: Buffer): Buffer;
  /** The size in front is the room given to the decoder: a block decoding to more fails. */
  uncompressSync(data: Buffer): Buffer;
}

const load = createRequire(import.meta.url);

type Loaded<T> = { lib: T; error?: undefined } | { lib?: undefined; error: string };

const MODULES = { zstd: "zstd-napi/binding", lz4: "lz4-napi" } as const;
const loaded: { zstd?: Loaded<ZstdLib>; lz4?: Loaded<Lz4Lib> } = {};

function tryLoad<K extends keyof typeof MODULES>(name: K): NonNullable<(typeof loaded)[K]> {
  let got = loaded[name];
  if (!got) {
    try {
      got = { lib: load(MODULES[name]) } as NonNullable<(typeof loaded)[K]>;
    } catch (e) {
      const why = (e as Error).message.split("\n")[0];
      got = { error: `the ${MODULES[name].split("/")[0]} module could not be loaded (${why})` };
    }
    loaded[name] = got;
  }
  return got!;
}

/** zstd-napi's binding; throws (with the reason) when it is not installed or does not load. */
export function zstdLib(): ZstdLib {
  const z = tryLoad("zstd");
  if (!z.lib) throw new Error(`zstd is not available: ${z.error}`);
  return z.lib;
}

/** lz4-napi; throws (with the reason) when it is not installed or does not load. */
export function lz4Lib(): Lz4Lib {
  const z = tryLoad("lz4");
  if (!z.lib) throw new Error(`lz4 is not available: ${z.error}`);
  return z.lib;
}

/** Why `c` cannot be used here, or undefined when it can (loads its library to find out). */
export function compressionUnavailable(c: TokenCompression): string | undefined {
  if (c !== "zstd" && c !== "lz4") return undefined;
  return tryLoad(c).error;
}

/** compat.c valid_compressions_items: the compressions with a token format, in rsync's
 *  (strongest-first) order. */
export const COMPRESSION_NAMES: readonly TokenCompression[] = ["zstd", "lz4", "zlibx", "zlib"];

/** COMPRESSION_NAMES less those whose library is missing: what this side offers. */
export function availableCompressions(): TokenCompression[] {
  return COMPRESSION_NAMES.filter((c) => compressionUnavailable(c) === undefined);
}
