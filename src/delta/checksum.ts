// Strong checksums (checksum.c): the per-block sum (get_checksum2), the whole-file transfer
// sum (sum_init / sum_update / sum_end) and the --checksum file sum (file_checksum).
//
// Digests are returned in rsync's wire byte order: md4/md5/sha1 as the digest bytes, xxh*
// as the 64-bit value(s) little-endian (SIVAL64; xxh128 = low64 then high64).
import type { Hash } from "node:crypto";
import { createRequire } from "node:module";
import type { IHasher } from "hash-wasm";
import { SimdBuffer, Xxh128Stream } from "./wasm-simd.js";

/** Names rsync negotiates and accepts in --checksum-choice (checksum.c valid_checksums). */
export type ChecksumName = "xxh128" | "xxh3" | "xxh64" | "md5" | "md4" | "sha1" | "none";

/**
 * The checksum actually in use (lib/md-defines.h CSUM_*). Besides the named ones:
 * - "md4-old": CSUM_MD4_OLD, the implied checksum of protocols 27..29 (whole-file sum seeded);
 * - "md5-old-seed": the implied md5 of protocol >= 30 when the peer lacks the checksum-seed
 *   order fix (compat flag CF_CHKSUM_SEED_FIX, 'C'): block sums put the seed AFTER the data.
 */
export type ChecksumType = ChecksumName | "md4-old" | "md5-old-seed";

/** rsync's preference order (checksum.c valid_checksums, strongest first). */
export const CHECKSUM_NAMES: readonly ChecksumName[] = ["xxh128", "xxh3", "xxh64", "md5", "md4", "sha1", "none"];

/** checksum.c csum_len_for_type (not the flist form, which differs only for protocol < 21). */
export function checksumDigestLength(type: ChecksumType): number {
  switch (type) {
    case "none":
      return 1;
    case "md4":
    case "md4-old":
    case "md5":
    case "md5-old-seed":
    case "xxh128":
      return 16;
    case "sha1":
      return 20;
    case "xxh64":
    case "xxh3":
      return 8;
  }
}

/** The name rsync reports and negotiates for a type. */
export function checksumName(type: ChecksumType): ChecksumName {
  return type === "md4-old" ? "md4" : type === "md5-old-seed" ? "md5" : type;
}

/**
 * checksum.c parse_csum_name with no name (or "auto"): protocols 27..29 use CSUM_MD4_OLD;
 * 30+ use md5 — the built-in one with the old seed order unless the seed fix was agreed.
 */
export function defaultChecksum(protocol: number, properSeedOrder = true): ChecksumType {
  if (protocol >= 30) return properSeedOrder ? "md5" : "md5-old-seed";
  if (protocol >= 27) return "md4-old";
  throw new RangeError(`protocol ${protocol} is not supported`);
}

/** checksum.c parse_csum_name: a name (case-insensitive, "xxhash" = xxh64) or "auto". */
export function parseChecksumName(name: string, protocol: number, properSeedOrder = true): ChecksumType {
  const n = name.toLowerCase();
  if (n === "auto") return defaultChecksum(protocol, properSeedOrder);
  if (n === "xxhash") return "xxh64";
  if ((CHECKSUM_NAMES as readonly string[]).includes(n)) return n as ChecksumName;
  throw new Error(`unknown checksum name: ${name}`);
}

export interface ChecksumChoice {
  /** Transfer checksum: block sums and the whole-file sum (xfer_sum_nni). */
  xfer: ChecksumType;
  /** --checksum (-c) file sum (file_sum_nni). */
  file: ChecksumType;
}

/**
 * checksum.c parse_checksum_choice: a negotiated name wins; else --checksum-choice "X" or
 * "X,Y" (transfer, file); else the protocol default. Note an explicit "md4" is CSUM_MD4 at
 * every protocol (unseeded whole-file sum), unlike the implied "md4-old".
 */
export function resolveChecksumChoice(opts: {
  protocol: number;
  negotiated?: string | undefined;
  choice?: string | undefined;
  properSeedOrder?: boolean | undefined;
}): ChecksumChoice {
  const { protocol } = opts;
  const pso = opts.properSeedOrder ?? true;
  if (opts.negotiated) {
    const t = parseChecksumName(opts.negotiated, protocol, pso);
    return { xfer: t, file: t };
  }
  const choice = opts.choice ?? "auto";
  const comma = choice.indexOf(",");
  if (comma >= 0) {
    return {
      xfer: parseChecksumName(choice.slice(0, comma), protocol, pso),
      file: parseChecksumName(choice.slice(comma + 1), protocol, pso),
    };
  }
  const t = parseChecksumName(choice, protocol, pso);
  return { xfer: t, file: t };
}

// ---- hash engines ----

type WasmKind = "md4" | "md5" | "sha1" | "xxh64" | "xxh3" | "xxh128";

/** A wasm hasher shared by the summers of one kind; `owner` holds its live state. */
interface Slot {
  h: IHasher;
  owner: WasmFileSummer | null;
}

const slots = new Map<WasmKind, Slot>();

type HashWasm = typeof import("hash-wasm");
const require = createRequire(import.meta.url);

type NodeCrypto = typeof import("node:crypto");
let cryptoLib: NodeCrypto | undefined;
/** node:crypto, loaded when md5, sha1 or a daemon's auth digest is first needed (importing it
 *  costs every run start-up time, most runs agree on xxh128). */
const nodeCrypto = (): NodeCrypto => (cryptoLib ??= require("node:crypto") as NodeCrypto);

/** One algorithm's bundle of hash-wasm, loaded when first needed (the package's main bundle
 *  holds every algorithm: a start-up cost paid before the first byte moves). */
function hashWasm<K extends keyof HashWasm>(bundle: string, name: K): HashWasm[K] {
  return (require(`hash-wasm/dist/${bundle}.umd.min.js`) as Pick<HashWasm, K>)[name];
}

async function createWasm(kind: WasmKind, seed: number): Promise<IHasher> {
  // xxh* take rsync's int32 seed as an unsigned 64-bit value, so a negative seed is
  // sign-extended (XXH64(buf, len, checksum_seed)).
  const lo = seed >>> 0;
  const hi = seed < 0 ? 0xffffffff : 0;
  switch (kind) {
    case "md4":
      return hashWasm("md4", "createMD4")();
    case "md5":
      return hashWasm("md5", "createMD5")();
    case "sha1":
      return hashWasm("sha1", "createSHA1")();
    case "xxh64":
      return hashWasm("xxhash64", "createXXHash64")(lo, hi);
    case "xxh3":
      return hashWasm("xxhash3", "createXXHash3")(lo, hi);
    case "xxh128":
      return hashWasm("xxhash128", "createXXHash128")(lo, hi);
  }
}

const loading = new Map<WasmKind, Promise<void>>();

function wasmKindOf(type: ChecksumType): WasmKind | null {
  switch (type) {
    case "none":
      return null;
    case "md4":
    case "md4-old":
      return "md4";
    case "md5":
    case "md5-old-seed":
      return "md5";
    default:
      return type;
  }
}

/**
 * Load the wasm hashers (once each). Needed before any summer of those types is created;
 * without arguments every type is loaded. Each costs start-up time and memory, so a transfer
 * loads only the ones it negotiated.
 */
export function initChecksums(types?: readonly ChecksumType[]): Promise<void> {
  const kinds: WasmKind[] = types
    ? [...new Set(types.map(wasmKindOf).filter((k): k is WasmKind => k !== null))]
    : ["md4", "md5", "sha1", "xxh64", "xxh3", "xxh128"];
  return Promise.all(
    kinds.map((k) => {
      let p = loading.get(k);
      if (!p) {
        p = createWasm(k, 0).then((h) => {
          slots.set(k, { h, owner: null });
        });
        loading.set(k, p);
      }
      return p;
    }),
  ).then(() => undefined);
}

function slot(kind: WasmKind): Slot {
  const s = slots.get(kind);
  if (!s) throw new Error("initChecksums() has not completed");
  return s;
}

/** Take a shared hasher for a one-shot digest: park the current owner's state first. */
function oneShot(s: Slot): IHasher {
  if (s.owner) {
    s.owner.state = s.h.save();
    s.owner = null;
  }
  return s.h.init();
}

/** hash-wasm gives xxh digests big-endian (canonical); rsync sends them little-endian. */
function reverseInPlace(d: Uint8Array): Uint8Array {
  for (let i = 0, j = d.length - 1; i < j; i++, j--) {
    const t = d[i]!;
    d[i] = d[j]!;
    d[j] = t;
  }
  return d;
}

function seedBytes(seed: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, seed >>> 0, true); // SIVAL: little-endian
  return b;
}

// ---- block sums: get_checksum2 ----

/** Computes the full strong digest of data[off, off+len) (callers truncate to s2length). */
export type BlockSummer = (data: Uint8Array, off: number, len: number) => Uint8Array;

/** H(seed ‖ data) (or data ‖ seed) through node:crypto's one-shot hash. */
function nodeBlockSummer(alg: string, sb: Uint8Array, seeded: boolean, prepend = true): BlockSummer {
  const crypto = nodeCrypto();
  if (!seeded) return (data, off, len) => crypto.hash(alg, data.subarray(off, off + len), "buffer");
  let scratch = new Uint8Array(0);
  return (data, off, len) => {
    if (scratch.length < len + 4) scratch = new Uint8Array(len + 4);
    scratch.set(sb, prepend ? 0 : len);
    scratch.set(data.subarray(off, off + len), prepend ? 4 : 0);
    return crypto.hash(alg, scratch.subarray(0, len + 4), "buffer");
  };
}

/** Blocks from this size up hash faster through node:crypto than through wasm. */
const NODE_MD5_MIN = 8192;

/**
 * checksum.c get_checksum2 with the connection's checksum seed:
 * - md4 (also md4-old): MD4(data ‖ seed) — the seed (int32 LE) appended when nonzero;
 * - md5 and sha1: H(seed ‖ data), seed prepended when nonzero;
 * - md5-old-seed: MD5(data ‖ seed), seed appended when nonzero;
 * - xxh64 / xxh3 / xxh128: the seed is the hash seed.
 * Async because a seeded xxh hasher has to be instantiated; the summer itself is sync.
 */
export async function createBlockSummer(type: ChecksumType, protocol: number, seed: number): Promise<BlockSummer> {
  if (protocol < 27) throw new RangeError(`protocol ${protocol} is not supported`);
  await initChecksums([type]);
  seed |= 0;
  const sb = seedBytes(seed);
  switch (type) {
    case "none":
      // parse_checksum_choice forces whole-file transfers with "none": no block sums exist.
      throw new Error("checksum 'none' has no block sums (whole-file transfer is forced)");
    case "md4":
    case "md4-old": {
      const s = slot("md4");
      return (data, off, len) => {
        const h = oneShot(s).update(data.subarray(off, off + len));
        if (seed !== 0) h.update(sb);
        return h.digest("binary");
      };
    }
    case "md5":
    case "md5-old-seed": {
      const s = slot("md5");
      const prepend = type === "md5";
      const big = nodeBlockSummer("md5", sb, seed !== 0, prepend);
      return (data, off, len) => {
        if (len >= NODE_MD5_MIN) return big(data, off, len);
        const h = oneShot(s);
        if (seed !== 0 && prepend) h.update(sb);
        h.update(data.subarray(off, off + len));
        if (seed !== 0 && !prepend) h.update(sb);
        return h.digest("binary");
      };
    }
    case "sha1":
      return nodeBlockSummer("sha1", sb, seed !== 0);
    case "xxh64":
    case "xxh3":
    case "xxh128": {
      const h = seed === 0 ? null : await createWasm(type, seed);
      const s = slot(type);
      const small: BlockSummer = (data, off, len) => {
        const hh = h ? h.init() : oneShot(s);
        return reverseInPlace(hh.update(data.subarray(off, off + len)).digest("binary"));
      };
      if (type !== "xxh128") return small;
      // The long form in SIMD, in place when the data sits in a SimdBuffer (the matcher's).
      return (data, off, len) => {
        if (len <= 240) return small(data, off, len);
        const at = SimdBuffer.holding(data);
        if (at) return at.xxh128Long(data, off, len, seed);
        const sb = (blockScratch ??= new SimdBuffer(len));
        sb.reserve(len);
        sb.bytes.set(data.subarray(off, off + len));
        return sb.xxh128Long(sb.bytes, 0, len, seed);
      };
    }
  }
}

/** Where block sums of data outside any SimdBuffer are taken (the generator's reads). */
let blockScratch: SimdBuffer | null = null;

// ---- whole-file sums: sum_init / sum_update / sum_end, and file_checksum ----

export interface FileSummer {
  update(data: Uint8Array): void;
  /** The digest (checksumDigestLength bytes); the summer must not be used afterwards. */
  digest(): Uint8Array;
}

/** A file summer over a shared wasm hasher; its state is parked while another one runs. */
class WasmFileSummer implements FileSummer {
  state: Uint8Array | null = null;
  private started = false;
  private done = false;
  constructor(
    private readonly s: Slot,
    private readonly reverse: boolean,
  ) {}

  private take(): IHasher {
    if (this.done) throw new Error("file summer used after digest()");
    const s = this.s;
    if (s.owner !== this) {
      if (s.owner) s.owner.state = s.h.save();
      if (this.started && this.state) s.h.load(this.state);
      else s.h.init();
      this.started = true;
      this.state = null;
      s.owner = this;
    }
    return s.h;
  }

  update(data: Uint8Array): void {
    if (data.length) this.take().update(data);
  }

  digest(): Uint8Array {
    const d = this.take().digest("binary");
    this.s.owner = null;
    this.done = true;
    return this.reverse ? reverseInPlace(d) : d;
  }
}

class NodeFileSummer implements FileSummer {
  private readonly h: Hash;
  constructor(alg: string) {
    this.h = nodeCrypto().createHash(alg);
  }
  update(data: Uint8Array): void {
    this.h.update(data);
  }
  digest(): Uint8Array {
    return this.h.digest();
  }
}

const NONE_SUMMER: FileSummer = { update() {}, digest: () => new Uint8Array(1) };

/**
 * checksum.c sum_init(xfer_sum_nni, checksum_seed) … sum_end: the whole-file checksum the
 * sender appends after a file's tokens and the receiver verifies. Only md4-old is seeded
 * (the seed as int32 LE is hashed before the data, even when 0); every other type ignores
 * the seed (xxh* reset with seed 0). "none" yields one zero byte. Sync: initChecksums() first.
 */
export function createFileSummer(type: ChecksumType, protocol: number, seed: number): FileSummer {
  if (protocol < 27) throw new RangeError(`protocol ${protocol} is not supported`);
  switch (type) {
    case "none":
      return NONE_SUMMER;
    case "md4-old": {
      const f = new WasmFileSummer(slot("md4"), false);
      f.update(seedBytes(seed | 0));
      return f;
    }
    case "md4":
      return new WasmFileSummer(slot("md4"), false);
    case "md5":
    case "md5-old-seed":
      return new NodeFileSummer("md5");
    case "sha1":
      return new NodeFileSummer("sha1");
    case "xxh64":
    case "xxh3":
      return new WasmFileSummer(slot(type), true);
    case "xxh128": {
      const s = slot("xxh128");
      // Inputs of up to 240 bytes take XXH3's short forms (hash-wasm's).
      return new Xxh128Stream(0, (data) => reverseInPlace(oneShot(s).update(data).digest("binary")));
    }
  }
}

/**
 * checksum.c file_checksum: the --checksum (-c) sum of a file's content, with file_sum_nni.
 * Never seeded (md4-old is plain MD4 here). rsync refuses "none" for --checksum.
 */
export function createFlistSummer(type: ChecksumType): FileSummer {
  switch (type) {
    case "none":
      throw new Error("Invalid checksum-choice for --checksum: none");
    case "md4":
    case "md4-old":
      return new WasmFileSummer(slot("md4"), false);
    default:
      return createFileSummer(type, 30, 0);
  }
}

/**
 * util2.c sum_as_hex (log.c %C): md4, md5 and sha1 print their bytes in order, xxh* print the value
 * (bytes reversed); md4-old and none are not canonical (seeded / empty) and print nothing
 * (rsync pads the field with spaces).
 */
export function sumAsHex(type: ChecksumType, sum: Uint8Array): string | null {
  if (type === "md4-old" || type === "none") return null;
  const n = checksumDigestLength(type);
  const bytes = Array.from(sum.subarray(0, n));
  if (type === "xxh64" || type === "xxh3" || type === "xxh128") bytes.reverse();
  return bytes.map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * authenticate.c generate_hash: the one-shot unseeded digest a daemon's password challenge is
 * answered with (checksum.c valid_auth_checksums: sha512, sha256, sha1, md5, md4). md4 comes
 * from hash-wasm (Node's OpenSSL 3 may lack it), the others from node:crypto.
 */
export async function authDigest(name: "sha512" | "sha256" | "sha1" | "md5" | "md4", data: Uint8Array): Promise<Uint8Array> {
  if (name !== "md4") return nodeCrypto().hash(name, data, "buffer");
  await initChecksums(["md4"]);
  return oneShot(slot("md4")).update(data).digest("binary");
}
