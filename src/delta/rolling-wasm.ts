// checksum.c get_checksum1 in WebAssembly SIMD, over bytes kept in a wasm memory: the sum of a
// whole block is the sender's main cost after each match (match.c hash_search starts a fresh
// window there), and 128-bit lanes do it several times faster than a scalar loop.
//
// The module is assembled here from its instructions (no build step, no binary blob):
//   sum(p, len) -> (s1 & 0xffff) | (s2 << 16) over the signed bytes at [p, p+len).
// 32 bytes a step: s2 += 32·s1 + Σ (32 - j)·x[j];  s1 += Σ x[j]. Lane-wise, acc1 holds the
// partial s1, accP the sum of acc1 before each step (s2's 32·s1 terms), accW the weighted
// sums (i32x4.dot_i16x8_s against weights 32..1); wrapping i32 arithmetic keeps the low 16
// bits exact. The tail (< 32 bytes) goes byte by byte: s1 += x; s2 += s1.

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

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];
const name = (s: string): number[] => vec([...Buffer.from(s, "utf8")].map((b) => [b]));

const I32 = 0x7f;
const V128 = 0x7b;

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
// SIMD instructions (prefix 0xfd, then the opcode as a LEB128).
const simd = (op: number, ...imm: number[]) => [0xfd, ...uleb(op), ...imm];
const v128load = (offset: number) => simd(0x00, 0x00, ...uleb(offset));
const v128const = (lanes16: number[]) => simd(0x0c, ...lanes16.flatMap((v) => [v & 0xff, (v >> 8) & 0xff]));
const i32x4lane = (l: number) => simd(0x1b, l);
const i16x8ExtaddI8s = simd(0x7c);
const i32x4ExtaddI16s = simd(0x7e);
const i16x8ExtendLowS = simd(0x87);
const i16x8ExtendHighS = simd(0x88);
const i32x4shl = simd(0xab);
const i32x4add = simd(0xae);
const i32x4dot = simd(0xba);

// sum(p, len): params 0 p, 1 len; locals 2 end32, 3 end, 4 s1, 5 s2, 6 x (i32);
// 7 acc1, 8 accP, 9 accW, 10 v0, 11 v1, 12..15 the weights 32..1 (v128).
const P = 0, LEN = 1, END32 = 2, END = 3, S1 = 4, S2 = 5, X = 6, ACC1 = 7, ACCP = 8, ACCW = 9, V0 = 10, V1 = 11, W32 = 12, W16 = 14;

/** Σ of the four i32 lanes of local `l`. */
const hsum = (l: number) => [...get(l), ...i32x4lane(0), ...get(l), ...i32x4lane(1), ...i32add, ...get(l), ...i32x4lane(2), ...i32add, ...get(l), ...i32x4lane(3), ...i32add];

const weights = (hi: number) => v128const([hi, hi - 1, hi - 2, hi - 3, hi - 4, hi - 5, hi - 6, hi - 7]);

/** Weighted dots of 16 bytes in local `v` against weights w..w-15. */
const dots = (v: number, w: number) => [
  ...get(v), ...i16x8ExtendLowS, ...get(w), ...i32x4dot,
  ...get(v), ...i16x8ExtendHighS, ...get(w + 1), ...i32x4dot,
  ...i32x4add,
];
/** The four lane sums (of four bytes each) of the 16 bytes in local `v`. */
const quads = (v: number) => [...get(v), ...i16x8ExtaddI8s, ...i32x4ExtaddI16s];

const sumBody = [
  ...vec([
    [5, I32],
    [9, V128],
  ]),
  // end = p + len; end32 = p + (len & ~31)
  ...get(P), ...get(LEN), ...i32add, ...set(END),
  ...get(P), ...get(LEN), ...i32c(~31), ...i32and, ...i32add, ...set(END32),
  ...weights(32), ...set(W32), ...weights(24), ...set(W32 + 1),
  ...weights(16), ...set(W16), ...weights(8), ...set(W16 + 1),
  ...block, ...loop,
  ...get(P), ...get(END32), ...i32geu, ...brIf(1),
  ...get(P), ...v128load(0), ...set(V0),
  ...get(P), ...v128load(16), ...set(V1),
  // accP += acc1; acc1 += Σ x; accW += Σ (32 - j)·x[j]
  ...get(ACCP), ...get(ACC1), ...i32x4add, ...set(ACCP),
  ...get(ACC1), ...quads(V0), ...quads(V1), ...i32x4add, ...i32x4add, ...set(ACC1),
  ...get(ACCW), ...dots(V0, W32), ...dots(V1, W16), ...i32x4add, ...i32x4add, ...set(ACCW),
  ...get(P), ...i32c(32), ...i32add, ...set(P),
  ...br(0),
  ...end, ...end,
  // s1 = Σ acc1; s2 = 32·Σ accP + Σ accW
  ...hsum(ACC1), ...set(S1),
  ...get(ACCP), ...i32c(5), ...i32x4shl, ...set(ACCP),
  ...hsum(ACCP), ...hsum(ACCW), ...i32add, ...set(S2),
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

function moduleBytes(): Uint8Array {
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec([[0x60, ...vec([[I32], [I32]]), ...vec([[I32]])]])), // (i32 i32) -> i32
    ...section(2, vec([[...name("env"), ...name("mem"), 0x02, 0x00, 0x01]])), // memory, min 1 page
    ...section(3, vec([[0]])),
    ...section(7, vec([[...name("sum"), 0x00, 0x00]])),
    ...section(10, vec([[...uleb(sumBody.length), ...sumBody]])),
  ]);
}

let compiled: object | null = null;

const PAGE = 64 * 1024;

/**
 * A growable byte buffer in a wasm memory, with get_checksum1 over any range of it.
 * Growing keeps the contents but replaces `bytes` (views taken earlier go stale).
 */
export class WeakSumBuffer {
  private readonly mem: WasmMemory;
  private readonly sumFn: (p: number, len: number) => number;
  bytes: Uint8Array;

  constructor(initialBytes = PAGE) {
    compiled ??= new WA.Module(moduleBytes());
    this.mem = new WA.Memory({ initial: Math.max(1, Math.ceil(initialBytes / PAGE)) });
    const inst = new WA.Instance(compiled, { env: { mem: this.mem } });
    this.sumFn = inst.exports.sum as (p: number, len: number) => number;
    this.bytes = new Uint8Array(this.mem.buffer);
  }

  /** Make room for at least n bytes. */
  reserve(n: number): void {
    if (n <= this.bytes.length) return;
    this.mem.grow(Math.ceil((n - this.bytes.length) / PAGE));
    this.bytes = new Uint8Array(this.mem.buffer);
  }

  /** get_checksum1 over bytes[off, off+len) as uint32. */
  sum(off: number, len: number): number {
    return this.sumFn(off, len) >>> 0;
  }
}
