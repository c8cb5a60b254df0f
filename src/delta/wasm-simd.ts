// WebAssembly SIMD kernels over bytes kept in a wasm memory, for the sender's hot path:
// - checksum.c get_checksum1, the weak sum of a whole block (match.c hash_search starts a
//   fresh window after each match);
// - XXH3-128 of inputs over 240 bytes (the long form), the strong block sum and whole-file sum
//   rsync negotiates first. Shorter inputs stay with hash-wasm (checksum.ts).
// The module is assembled here from its instructions (no build step, no binary blob).
//
// sum(p, len) -> (s1 & 0xffff) | (s2 << 16) over the signed bytes at [p, p+len).
// Only the low 16 bits of s1 and s2 are kept, so wrapping i16 lanes are exact. In 16-byte
// steps t over n bytes (x[16t+j], lane j = 0..15): column sums c[j] = Σ_t x[16t+j] and
// prefix sums p[j] = Σ_t (c[j] after step t); then s1 = Σ c[j] and
// s2 = Σ_i (n - i)·x[i] = 16·Σ p[j] - Σ j·c[j] (i32x4.dot_i16x8_s against 0..15). Four adds
// and a sign-extension per 8 bytes. The tail (< 32 bytes) goes byte by byte: s1 += x; s2 += s1.
//
// XXH3 (xxhash.h XXH3_hashLong_128b_internal) with the 192-byte secret: 64-byte stripes
// accumulate into eight u64 lanes (acc[i^1] += data[i]; acc[i] += lo32(data[i]^key[i]) ·
// hi32(data[i]^key[i])), the key moving on 8 bytes a stripe; every 16 stripes (a 1 KiB block)
// the accumulators are scrambled with the secret's last 64 bytes; the last stripe of the input
// uses the secret at 192-64-7; two merges of the accumulators give the low and high halves.

interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
  Memory: new (desc: { initial: number; maximum?: number }) => WasmMemory;
}
const WA = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

// ---- a minimal encoder of the binary format ----

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

function sleb64(n: bigint): number[] {
  const out: number[] = [];
  for (;;) {
    const b = Number(n & 0x7fn);
    n >>= 7n;
    if ((n === 0n && (b & 0x40) === 0) || (n === -1n && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

const sleb = (n: number): number[] => sleb64(BigInt(n));
const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];
const name = (s: string): number[] => vec([...Buffer.from(s, "utf8")].map((b) => [b]));

const I32 = 0x7f;
const V128 = 0x7b;
/** Function indices of the module, and the XXH3 secret's size (XXH_SECRET_DEFAULT_SIZE). */
const FN_STRIPES = 1;
const FN_MERGE_ACCS = 4;
const FN_FOLD = 5;
const SECRET_SIZE = 192;

// Core instructions.
const block = [0x02, 0x40];
const loop = [0x03, 0x40];
const end = [0x0b];
const br = (d: number) => [0x0c, ...uleb(d)];
const brIf = (d: number) => [0x0d, ...uleb(d)];
const get = (i: number) => [0x20, ...uleb(i)];
const set = (i: number) => [0x21, ...uleb(i)];
const i32c = (v: number) => [0x41, ...sleb(v | 0)];
const i32load8s = [0x2c, 0x00, 0x00];
const i32add = [0x6a];
const i32and = [0x71];
const i32or = [0x72];
const i32shl = [0x74];
const i32geu = [0x4f];
const i32sub = [0x6b];
const i32eqz = [0x45];
const i32ltu = [0x49];
const i32mul = [0x6c];
const i32shru = [0x76];
const i32load = (offset: number) => [0x28, 0x02, ...uleb(offset)];
const i32store = (offset: number) => [0x36, 0x02, ...uleb(offset)];
const call = (f: number) => [0x10, ...uleb(f)];
const i64load = (offset: number) => [0x29, 0x00, ...uleb(offset)];
const i64store = (offset: number) => [0x37, 0x00, ...uleb(offset)];
const i64c = (v: bigint) => [0x42, ...sleb64(BigInt.asIntN(64, v))];
const i64add = [0x7c];
const i64mul = [0x7e];
const i64and = [0x83];
const i64or = [0x84];
const i64xor = [0x85];
const i64shl = [0x86];
const i64shru = [0x88];
const i64extendU = [0xad];
// SIMD instructions (prefix 0xfd, then the opcode as a LEB128).
const simd = (op: number, ...imm: number[]) => [0xfd, ...uleb(op), ...imm];
const v128load = (offset: number) => simd(0x00, 0x00, ...uleb(offset));
const v128store = (offset: number) => simd(0x0b, 0x00, ...uleb(offset));
const v128const = (lanes16: number[]) => simd(0x0c, ...lanes16.flatMap((v) => [v & 0xff, (v >> 8) & 0xff]));
const i32x4lane = (l: number) => simd(0x1b, l);
const i32x4ExtaddI16s = simd(0x7e);
const i16x8ExtendLowS = simd(0x87);
const i16x8ExtendHighS = simd(0x88);
const i32x4add = simd(0xae);
const i16x8add = simd(0x8e);
const i32x4dot = simd(0xba);
const i8x16shuffle = (lanes: number[]) => simd(0x0d, ...lanes);
const v128xor = simd(0x51);
const i64x2splat = simd(0x12);
const i64x2shru = simd(0xcd);
const i64x2add = simd(0xce);
const i64x2mul = simd(0xd5);
const i64x2ExtmulLowU = simd(0xde);

// sum(p, len): params 0 p, 1 len; locals 2 end32, 3 end, 4 s1, 5 s2, 6 x (i32);
// 7 cLo, 8 cHi, 9 pLo, 10 pHi, 11 v (v128).
const P = 0, LEN = 1, END32 = 2, END = 3, S1 = 4, S2 = 5, X = 6, CLO = 7, CHI = 8, PLO = 9, PHI = 10, V = 11;

/** Σ of the four i32 lanes of what is on the stack (leaves one i32). */
const hsumTop = (tmp: number) => [...set(tmp), ...get(tmp), ...i32x4lane(0), ...get(tmp), ...i32x4lane(1), ...i32add, ...get(tmp), ...i32x4lane(2), ...i32add, ...get(tmp), ...i32x4lane(3), ...i32add];

/** One 16-byte step: the column sums take the bytes, the prefix sums take the column sums. */
const step16 = (offset: number) => [
  ...get(P), ...v128load(offset), ...set(V),
  ...get(CLO), ...get(V), ...i16x8ExtendLowS, ...i16x8add, ...set(CLO),
  ...get(CHI), ...get(V), ...i16x8ExtendHighS, ...i16x8add, ...set(CHI),
  ...get(PLO), ...get(CLO), ...i16x8add, ...set(PLO),
  ...get(PHI), ...get(CHI), ...i16x8add, ...set(PHI),
];

const sumBody = (): number[] => [
  ...vec([
    [5, I32],
    [5, V128],
  ]),
  // end = p + len; end32 = p + (len & ~31)
  ...get(P), ...get(LEN), ...i32add, ...set(END),
  ...get(P), ...get(LEN), ...i32c(~31), ...i32and, ...i32add, ...set(END32),
  ...block, ...loop,
  ...get(P), ...get(END32), ...i32geu, ...brIf(1),
  ...step16(0),
  ...step16(16),
  ...get(P), ...i32c(32), ...i32add, ...set(P),
  ...br(0),
  ...end, ...end,
  // s1 = Σ c; s2 = 16·Σ p − Σ j·c[j] (lanes j = 0..15 of the 16-byte steps)
  ...get(CLO), ...get(CHI), ...i16x8add, ...i32x4ExtaddI16s, ...hsumTop(V), ...set(S1),
  ...get(PLO), ...get(PHI), ...i16x8add, ...i32x4ExtaddI16s, ...hsumTop(V), ...i32c(4), ...i32shl,
  ...get(CLO), ...v128const([0, 1, 2, 3, 4, 5, 6, 7]), ...i32x4dot,
  ...get(CHI), ...v128const([8, 9, 10, 11, 12, 13, 14, 15]), ...i32x4dot,
  ...i32x4add, ...hsumTop(V), ...i32sub, ...set(S2),
  // the tail, byte by byte
  ...block, ...loop,
  ...get(P), ...get(END), ...i32geu, ...brIf(1),
  ...get(P), ...i32load8s, ...set(X),
  ...get(S1), ...get(X), ...i32add, ...set(S1),
  ...get(S2), ...get(S1), ...i32add, ...set(S2),
  ...get(P), ...i32c(1), ...i32add, ...set(P),
  ...br(0),
  ...end, ...end,
  ...get(S1), ...i32c(0xffff), ...i32and, ...get(S2), ...i32c(16), ...i32shl, ...i32or,
  ...end,
];

// scan(p, end, k, sum, filter, fshift): match.c hash_search's rolling step over the window
// [p, p+k), moved on a byte at a time while the weak sum's bit in the filter bitmap (hashed
// as the matcher hashes it, Math.imul(sum, FILTER_MUL) >>> fshift) is clear. Returns where it
// stopped (a set bit, or end) and leaves the packed sum there at OUT.
// params 0 p, 1 end, 2 k, 3 sum, 4 filter, 5 fshift; locals 6 s1, 7 s2, 8 o, 9 f (i32).
export const FILTER_MUL = 0x85ebca6b;
const scanBody = (): number[] => {
  const [p, endp, k, sum, filt, fshift, s1, s2, o, f] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  return [
    ...vec([[4, I32]]),
    ...get(sum), ...i32c(0xffff), ...i32and, ...set(s1),
    ...get(sum), ...i32c(16), ...i32shru, ...set(s2),
    ...block, ...loop,
    ...get(p), ...get(endp), ...i32geu, ...brIf(1),
    // sum = (s1 & 0xffff) | (s2 << 16); stop at a set filter bit
    ...get(s1), ...i32c(0xffff), ...i32and, ...get(s2), ...i32c(16), ...i32shl, ...i32or,
    ...i32c(FILTER_MUL), ...i32mul, ...get(fshift), ...i32shru, ...set(f),
    ...get(filt), ...get(f), ...i32c(5), ...i32shru, ...i32c(2), ...i32shl, ...i32add, ...i32load(0),
    ...get(f), ...i32c(31), ...i32and, ...i32shru, ...i32c(1), ...i32and,
    ...brIf(1),
    // roll: s1 += in - out; s2 += s1 - k·out
    ...get(p), ...i32load8s, ...set(o),
    ...get(s1), ...get(o), ...i32sub, ...get(p), ...get(k), ...i32add, ...i32load8s, ...i32add, ...set(s1),
    ...get(s2), ...get(k), ...get(o), ...i32mul, ...i32sub, ...get(s1), ...i32add, ...set(s2),
    ...get(p), ...i32c(1), ...i32add, ...set(p),
    ...br(0),
    ...end, ...end,
    ...i32c(OUT),
    ...get(s1), ...i32c(0xffff), ...i32and, ...get(s2), ...i32c(16), ...i32shl, ...i32or,
    ...i32store(0),
    ...get(p),
    ...end,
  ];
};

// ---- XXH3 ----

const I64 = 0x7e;
const PRIME32_1 = 0x9e3779b1n;
const PRIME64_1 = 0x9e3779b185ebca87n;
const PRIME64_2 = 0xc2b2ae3d27d4eb4fn;
const M32 = 0xffffffffn;

/** i32 lanes 0 and 2 (the low halves of both u64 lanes), 1 and 3 (the high), and the u64 swap. */
const LO32 = [0, 1, 2, 3, 8, 9, 10, 11, 0, 1, 2, 3, 8, 9, 10, 11];
const HI32 = [4, 5, 6, 7, 12, 13, 14, 15, 4, 5, 6, 7, 12, 13, 14, 15];
const SWAP64 = [8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7];

// stripes(p, n, secret, accp): n stripes from p, the key at secret + 8·stripe (XXH3_accumulate).
// params 0 p, 1 n, 2 secret, 3 accp; locals 4..7 the accumulators, 8 d, 9 dk (v128).
const stripesBody = (): number[] => {
  const [p, n, sec, accp, a, d, dk] = [0, 1, 2, 3, 4, 8, 9];
  const lane = (j: number) => [
    ...get(p), ...v128load(16 * j), ...set(d),
    ...get(d), ...get(sec), ...v128load(16 * j), ...v128xor, ...set(dk),
    ...get(a + j),
    ...get(dk), ...get(dk), ...i8x16shuffle(LO32), ...get(dk), ...get(dk), ...i8x16shuffle(HI32), ...i64x2ExtmulLowU,
    ...get(d), ...get(d), ...i8x16shuffle(SWAP64), ...i64x2add,
    ...i64x2add, ...set(a + j),
  ];
  return [
    ...vec([[6, V128]]),
    ...[0, 1, 2, 3].flatMap((j) => [...get(accp), ...v128load(16 * j), ...set(a + j)]),
    ...block, ...loop,
    ...get(n), ...i32eqz, ...brIf(1),
    ...[0, 1, 2, 3].flatMap(lane),
    ...get(p), ...i32c(64), ...i32add, ...set(p),
    ...get(sec), ...i32c(8), ...i32add, ...set(sec),
    ...get(n), ...i32c(1), ...i32sub, ...set(n),
    ...br(0),
    ...end, ...end,
    ...[0, 1, 2, 3].flatMap((j) => [...get(accp), ...get(a + j), ...v128store(16 * j)]),
    ...end,
  ];
};

// blocks(p, nb, secret, accp): nb blocks of 16 stripes, each followed by XXH3_scrambleAcc
// (acc ^= acc >> 47; acc ^= key; acc *= PRIME32_1) with the key at secret + 128.
const blocksBody = (): number[] => {
  const [p, nb, sec, accp, a] = [0, 1, 2, 3, 4];
  const scramble = (j: number) => [
    ...get(accp),
    ...get(accp), ...v128load(16 * j), ...set(a),
    ...get(a), ...get(a), ...i32c(47), ...i64x2shru, ...v128xor,
    ...get(sec), ...v128load(128 + 16 * j), ...v128xor,
    ...i64c(PRIME32_1), ...i64x2splat, ...i64x2mul,
    ...v128store(16 * j),
  ];
  return [
    ...vec([[1, V128]]),
    ...block, ...loop,
    ...get(nb), ...i32eqz, ...brIf(1),
    ...get(p), ...i32c(16), ...get(sec), ...get(accp), ...call(FN_STRIPES),
    ...[0, 1, 2, 3].flatMap(scramble),
    ...get(p), ...i32c(1024), ...i32add, ...set(p),
    ...get(nb), ...i32c(1), ...i32sub, ...set(nb),
    ...br(0),
    ...end, ...end,
    ...end,
  ];
};

// fold(a, b): XXH3_mul128_fold64, the 128-bit product's halves xored, from 32-bit pieces.
// params 0 a, 1 b; locals 2 lolo, 3 hilo, 4 lohi, 5 hihi, 6 cross (i64).
const foldBody = (): number[] => {
  const [a, b, lolo, hilo, lohi, hihi, cross] = [0, 1, 2, 3, 4, 5, 6];
  const lo = (x: number) => [...get(x), ...i64c(M32), ...i64and];
  const hi = (x: number) => [...get(x), ...i64c(32n), ...i64shru];
  return [
    ...vec([[5, I64]]),
    ...lo(a), ...lo(b), ...i64mul, ...set(lolo),
    ...hi(a), ...lo(b), ...i64mul, ...set(hilo),
    ...lo(a), ...hi(b), ...i64mul, ...set(lohi),
    ...hi(a), ...hi(b), ...i64mul, ...set(hihi),
    ...hi(lolo), ...lo(hilo), ...i64add, ...get(lohi), ...i64add, ...set(cross),
    // lower = (cross << 32) | lo(lolo); upper = hi(hilo) + hi(cross) + hihi
    ...get(cross), ...i64c(32n), ...i64shl, ...lo(lolo), ...i64or,
    ...hi(hilo), ...hi(cross), ...i64add, ...get(hihi), ...i64add,
    ...i64xor,
    ...end,
  ];
};

// mergeAccs(accp, secret, start): start + Σ fold(acc pair ^ key pair), then XXH3_avalanche.
// params 0 accp, 1 secret, 2 start (i64); local 3 r (i64).
const mergeAccsBody = (): number[] => {
  const [accp, sec, start, r] = [0, 1, 2, 3];
  const pair = (i: number) => [
    ...get(accp), ...i64load(16 * i), ...get(sec), ...i64load(16 * i), ...i64xor,
    ...get(accp), ...i64load(16 * i + 8), ...get(sec), ...i64load(16 * i + 8), ...i64xor,
    ...call(FN_FOLD), ...get(r), ...i64add, ...set(r),
  ];
  return [
    ...vec([[1, I64]]),
    ...get(start), ...set(r),
    ...[0, 1, 2, 3].flatMap(pair),
    ...get(r), ...get(r), ...i64c(37n), ...i64shru, ...i64xor, ...set(r),
    ...get(r), ...i64c(0x165667919e3779f9n), ...i64mul, ...set(r),
    ...get(r), ...get(r), ...i64c(32n), ...i64shru, ...i64xor,
    ...end,
  ];
};

// merge128(accp, secret, lenLo, lenHi, out): out = low64 ‖ high64, little-endian
// (XXH3_hashLong_128b_internal's converge step). params 0..4; local 5 len (i64).
const merge128Body = (): number[] => {
  const [accp, sec, lenLo, lenHi, out, len] = [0, 1, 2, 3, 4, 5];
  return [
    ...vec([[1, I64]]),
    ...get(lenLo), ...i64extendU, ...get(lenHi), ...i64extendU, ...i64c(32n), ...i64shl, ...i64or, ...set(len),
    ...get(out),
    ...get(accp), ...get(sec), ...i32c(11), ...i32add, ...get(len), ...i64c(PRIME64_1), ...i64mul, ...call(FN_MERGE_ACCS),
    ...i64store(0),
    ...get(out),
    ...get(accp), ...get(sec), ...i32c(SECRET_SIZE - 64 - 11), ...i32add,
    ...get(len), ...i64c(PRIME64_2), ...i64mul, ...i64c(-1n), ...i64xor, ...call(FN_MERGE_ACCS),
    ...i64store(8),
    ...end,
  ];
};

function moduleBytes(): Uint8Array {
  const t = (params: number[], results: number[]) => [0x60, ...vec(params.map((x) => [x])), ...vec(results.map((x) => [x]))];
  const types = [
    t([I32, I32], [I32]),
    t([I32, I32, I32, I32], []),
    t([I32, I32, I32, I32, I32], []),
    t([I32, I32, I64], [I64]),
    t([I64, I64], [I64]),
    t([I32, I32, I32, I32, I32, I32], [I32]),
  ];
  // function index → type index, body
  const funcs: [number, number[]][] = [
    [0, sumBody()],
    [1, stripesBody()],
    [1, blocksBody()],
    [2, merge128Body()],
    [3, mergeAccsBody()],
    [4, foldBody()],
    [5, scanBody()],
  ];
  const exp = (n: string, f: number) => [...name(n), 0x00, ...uleb(f)];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec(types)),
    ...section(2, vec([[...name("env"), ...name("mem"), 0x02, 0x00, 0x01]])), // memory, min 1 page
    ...section(3, vec(funcs.map(([ty]) => uleb(ty)))),
    ...section(7, vec([exp("sum", 0), exp("stripes", FN_STRIPES), exp("blocks", 2), exp("merge128", 3), exp("scan", 6)])),
    ...section(10, vec(funcs.map(([, body]) => [...uleb(body.length), ...body]))),
  ]);
}

let compiled: object | null = null;

const PAGE = 64 * 1024;
// The memory's head: the secret in use, the accumulators, the digest; data from DATA on.
const SECRET = 0;
const ACC = 192;
const OUT = 256;
const DATA = 512;

/** xxhash.h XXH3_kSecret, the default secret (taken from FARSH). */
const K_SECRET = new Uint8Array([
  0xb8, 0xfe, 0x6c, 0x39, 0x23, 0xa4, 0x4b, 0xbe, 0x7c, 0x01, 0x81, 0x2c, 0xf7, 0x21, 0xad, 0x1c,
  0xde, 0xd4, 0x6d, 0xe9, 0x83, 0x90, 0x97, 0xdb, 0x72, 0x40, 0xa4, 0xa4, 0xb7, 0xb3, 0x67, 0x1f,
  0xcb, 0x79, 0xe6, 0x4e, 0xcc, 0xc0, 0xe5, 0x78, 0x82, 0x5a, 0xd0, 0x7d, 0xcc, 0xff, 0x72, 0x21,
  0xb8, 0x08, 0x46, 0x74, 0xf7, 0x43, 0x24, 0x8e, 0xe0, 0x35, 0x90, 0xe6, 0x81, 0x3a, 0x26, 0x4c,
  0x3c, 0x28, 0x52, 0xbb, 0x91, 0xc3, 0x00, 0xcb, 0x88, 0xd0, 0x65, 0x8b, 0x1b, 0x53, 0x2e, 0xa3,
  0x71, 0x64, 0x48, 0x97, 0xa2, 0x0d, 0xf9, 0x4e, 0x38, 0x19, 0xef, 0x46, 0xa9, 0xde, 0xac, 0xd8,
  0xa8, 0xfa, 0x76, 0x3f, 0xe3, 0x9c, 0x34, 0x3f, 0xf9, 0xdc, 0xbb, 0xc7, 0xc7, 0x0b, 0x4f, 0x1d,
  0x8a, 0x51, 0xe0, 0x4b, 0xcd, 0xb4, 0x59, 0x31, 0xc8, 0x9f, 0x7e, 0xc9, 0xd9, 0x78, 0x73, 0x64,
  0xea, 0xc5, 0xac, 0x83, 0x34, 0xd3, 0xeb, 0xc3, 0xc5, 0x81, 0xa0, 0xff, 0xfa, 0x13, 0x63, 0xeb,
  0x17, 0x0d, 0xdd, 0x51, 0xb7, 0xf0, 0xda, 0x49, 0xd3, 0x16, 0x55, 0x26, 0x29, 0xd4, 0x68, 0x9e,
  0x2b, 0x16, 0xbe, 0x58, 0x7d, 0x47, 0xa1, 0xfc, 0x8f, 0xf8, 0xb8, 0xd1, 0x7a, 0xd0, 0x31, 0xce,
  0x45, 0xcb, 0x3a, 0x8f, 0x95, 0x16, 0x04, 0x28, 0xaf, 0xd7, 0xfb, 0xca, 0xbb, 0x4b, 0x40, 0x7e,
]);

/** XXH3_INIT_ACC, as the accumulators' bytes. */
const INIT_ACC = (() => {
  const b = new Uint8Array(64);
  const dv = new DataView(b.buffer);
  const init = [0xc2b2ae3dn, PRIME64_1, PRIME64_2, 0x165667b19e3779f9n, 0x85ebca77c2b2ae63n, 0x85ebca77n, 0x27d4eb2f165667c5n, PRIME32_1];
  init.forEach((v, i) => dv.setBigUint64(8 * i, v, true));
  return b;
})();

const secrets = new Map<number, Uint8Array>();

/** XXH3_initCustomSecret for a seed (0: the default secret). rsync's int32 seed is
 *  sign-extended to 64 bits (XXH3_128bits_withSeed(buf, len, checksum_seed)). */
function secretFor(seed: number): Uint8Array {
  let s = secrets.get(seed);
  if (s) return s;
  s = K_SECRET.slice();
  if (seed !== 0) {
    const dv = new DataView(s.buffer);
    const s64 = BigInt.asUintN(64, BigInt(seed));
    for (let i = 0; i < SECRET_SIZE; i += 16) {
      dv.setBigUint64(i, BigInt.asUintN(64, dv.getBigUint64(i, true) + s64), true);
      dv.setBigUint64(i + 8, BigInt.asUintN(64, dv.getBigUint64(i + 8, true) - s64), true);
    }
  }
  secrets.set(seed, s);
  return s;
}

/** The memories of live buffers, to recognise data that already sits in one. */
const owners = new WeakMap<ArrayBuffer, SimdBuffer>();

type Fn4 = (a: number, b: number, c: number, d: number) => void;

/**
 * A growable byte buffer in a wasm memory, with the SIMD kernels over any range of it.
 * Growing keeps the contents but replaces `bytes` (views taken earlier go stale).
 */
export class SimdBuffer {
  private readonly mem: WasmMemory;
  private readonly sumFn: (p: number, len: number) => number;
  private readonly stripesFn: Fn4;
  private readonly blocksFn: Fn4;
  private readonly merge128Fn: (accp: number, sec: number, lenLo: number, lenHi: number, out: number) => void;
  private readonly scanFn: (p: number, end: number, k: number, sum: number, filter: number, fshift: number) => number;
  private all: Uint8Array;
  private words: Int32Array;
  private seed: number | null = null;
  /** The data area. */
  bytes: Uint8Array;

  constructor(initialBytes = PAGE) {
    compiled ??= new WA.Module(moduleBytes());
    this.mem = new WA.Memory({ initial: Math.max(1, Math.ceil((DATA + initialBytes) / PAGE)) });
    const x = new WA.Instance(compiled, { env: { mem: this.mem } }).exports;
    this.sumFn = x.sum as (p: number, len: number) => number;
    this.stripesFn = x.stripes as Fn4;
    this.blocksFn = x.blocks as Fn4;
    this.merge128Fn = x.merge128 as (accp: number, sec: number, lenLo: number, lenHi: number, out: number) => void;
    this.scanFn = x.scan as (p: number, end: number, k: number, sum: number, filter: number, fshift: number) => number;
    this.all = new Uint8Array(this.mem.buffer);
    this.words = new Int32Array(this.mem.buffer);
    this.bytes = this.all.subarray(DATA);
    owners.set(this.mem.buffer, this);
  }

  /** The buffer whose data area `view` lies in, if any. */
  static holding(view: Uint8Array): SimdBuffer | undefined {
    const b = owners.get(view.buffer as ArrayBuffer);
    return b && view.byteOffset >= DATA ? b : undefined;
  }

  /** Make room for at least n bytes. */
  reserve(n: number): void {
    if (n <= this.bytes.length) return;
    this.mem.grow(Math.ceil((n - this.bytes.length) / PAGE));
    this.all = new Uint8Array(this.mem.buffer);
    this.words = new Int32Array(this.mem.buffer);
    this.bytes = this.all.subarray(DATA);
    owners.set(this.mem.buffer, this);
  }

  /**
   * The rolling search from data offset `off` (window of k bytes, weak sum `sum`) up to `end`:
   * stops at the first offset whose sum has its bit set in the filter at data offset `filter`
   * (FILTER_MUL hashing, `fshift`), or at end. Returns that offset; `lastSum` is the sum there.
   */
  scan(off: number, end: number, k: number, sum: number, filter: number, fshift: number): number {
    return this.scanFn(DATA + off, DATA + end, k, sum, DATA + filter, fshift) - DATA;
  }

  get lastSum(): number {
    return this.words[OUT >> 2]! >>> 0;
  }

  /** get_checksum1 over bytes[off, off+len) as uint32. */
  sum(off: number, len: number): number {
    return this.sumFn(DATA + off, len) >>> 0;
  }

  private useSeed(seed: number): void {
    if (this.seed === seed) return;
    this.all.set(secretFor(seed), SECRET);
    this.seed = seed;
  }

  /** XXH3-128 with this seed of len > 240 bytes at `view`[off..] (a view into this buffer):
   *  low64 then high64, little-endian, as rsync sends it. */
  xxh128Long(view: Uint8Array, off: number, len: number, seed: number): Uint8Array {
    if (len <= 240) throw new RangeError("xxh128Long: input of 240 bytes or less");
    this.useSeed(seed);
    const p = view.byteOffset + off;
    this.all.set(INIT_ACC, ACC);
    const nb = Math.floor((len - 1) / 1024);
    this.blocksFn(p, nb, SECRET, ACC);
    this.stripesFn(p + nb * 1024, (len - 1 - nb * 1024) >> 6, SECRET, ACC);
    this.stripesFn(p + len - 64, 1, SECRET + SECRET_SIZE - 64 - 7, ACC);
    this.merge128Fn(ACC, SECRET, len >>> 0, Math.floor(len / 2 ** 32), OUT);
    return this.all.slice(OUT, OUT + 16);
  }

  /** Streaming steps (Xxh128Stream): nb blocks at `view`[off..] (a view into this buffer)
   *  into the given accumulators. */
  blocks(acc: Uint8Array, view: Uint8Array, off: number, nb: number, seed: number): void {
    this.useSeed(seed);
    this.all.set(acc, ACC);
    this.blocksFn(view.byteOffset + off, nb, SECRET, ACC);
    acc.set(this.all.subarray(ACC, ACC + 64));
  }

  /** The end of a long input: the tail's stripes from data offset `off` (tailLen bytes, with
   *  64 bytes of history before it when tailLen < 64), the last stripe, the merge. */
  finish(acc: Uint8Array, off: number, tailLen: number, total: number, seed: number): Uint8Array {
    this.useSeed(seed);
    this.all.set(acc, ACC);
    const p = DATA + off;
    this.stripesFn(p, (tailLen - 1) >> 6, SECRET, ACC);
    this.stripesFn(p + tailLen - 64, 1, SECRET + SECRET_SIZE - 64 - 7, ACC);
    this.merge128Fn(ACC, SECRET, total >>> 0, Math.floor(total / 2 ** 32), OUT);
    return this.all.slice(OUT, OUT + 16);
  }
}

let streamBuf: SimdBuffer | null = null;
/** What one update hands to the kernels at a time. */
const STREAM_SLICE = 1 << 20;

/**
 * XXH3-128 of a stream (equal to the one-shot hash of all its bytes): whole 1 KiB blocks are
 * summed as soon as a byte follows them; the rest (and the 64 bytes before it) waits for the
 * end. Inputs of 240 bytes or less are handed to `short` (the other length forms).
 * Several streams may be live: each update is done in one go on a shared buffer.
 */
export class Xxh128Stream {
  private readonly acc = INIT_ACC.slice();
  /** 64 bytes of history, then the unsummed tail (≤ 1 KiB between updates). */
  private keep = new Uint8Array(64 + 1024);
  private tailLen = 0;
  private total = 0;

  constructor(
    private readonly seed: number,
    private readonly short: (data: Uint8Array) => Uint8Array,
  ) {}

  update(data: Uint8Array): void {
    const holder = SimdBuffer.holding(data);
    // Data in wasm memory is summed where it sits, once the carried tail is a whole block.
    const head = holder ? Math.min(data.length, 1024 - this.tailLen) : data.length;
    for (let i = 0; i < head; i += STREAM_SLICE) this.copied(data.subarray(i, Math.min(head, i + STREAM_SLICE)));
    if (head === data.length) return;
    const rest = data.subarray(head);
    // The tail (1 KiB now) has a byte after it: sum it, then whole blocks of rest in place.
    const sb = (streamBuf ??= new SimdBuffer(64 + 1024 + STREAM_SLICE));
    sb.bytes.set(this.keep);
    sb.blocks(this.acc, sb.bytes, 64, 1, this.seed);
    const nb = Math.floor((rest.length - 1) / 1024);
    holder!.blocks(this.acc, rest, 0, nb, this.seed);
    const end = nb * 1024;
    if (nb > 0) this.keep.set(rest.subarray(end - 64, end));
    else this.keep.copyWithin(0, 1024, 1024 + 64);
    this.keep.set(rest.subarray(end), 64);
    this.tailLen = rest.length - end;
    this.total += rest.length;
  }

  /** Whole blocks summed from a copy in the shared buffer (the tail kept for later). */
  private copied(data: Uint8Array): void {
    const avail = this.tailLen + data.length;
    const nb = avail > 0 ? Math.floor((avail - 1) / 1024) : 0;
    this.total += data.length;
    if (nb === 0) {
      this.keep.set(data, 64 + this.tailLen);
      this.tailLen = avail;
      return;
    }
    const sb = (streamBuf ??= new SimdBuffer(64 + 1024 + STREAM_SLICE));
    const b = sb.bytes;
    b.set(this.keep.subarray(64, 64 + this.tailLen), 64);
    b.set(data, 64 + this.tailLen);
    sb.blocks(this.acc, b, 64, nb, this.seed);
    const end = 64 + nb * 1024;
    this.keep.set(b.subarray(end - 64, 64 + avail));
    this.tailLen = avail - nb * 1024;
  }

  digest(): Uint8Array {
    if (this.total <= 240) return this.short(this.keep.subarray(64, 64 + this.tailLen));
    const sb = (streamBuf ??= new SimdBuffer(64 + 1024 + STREAM_SLICE));
    sb.bytes.set(this.keep.subarray(0, 64 + this.tailLen));
    return sb.finish(this.acc, 64, this.tailLen, this.total, this.seed);
  }
}
