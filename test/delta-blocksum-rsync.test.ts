// Block sums (get_checksum2) and the sender side of a delta against a real `rsync --server`
// receiver. This test plays a minimal client sender: it sends a one-file list, reads the
// generator's sum head and block sums for the basis (phase 1, short strong sums), answers with
// our tokens and a deliberately wrong whole-file sum, which makes the receiver ask for the file
// again with full-length strong sums (the redo phase, csum_length = SUM_LENGTH); those are
// compared byte for byte with ours, and the second answer (correct sum) must rebuild the file.
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  checksumDigestLength,
  createBlockSummer,
  createFileSummer,
  initChecksums,
  type ChecksumType,
} from "../src/delta/checksum.js";
import { BlockMatcher, BlockSumsReader, type MatchToken } from "../src/delta/match.js";
import { weakChecksum } from "../src/delta/rolling.js";
import { SUM_LENGTH, sumSizes, type SumHead } from "../src/delta/sumsizes.js";
import { NDX_DONE, NdxReader, NdxWriter } from "../src/protocol/ndx.js";
import { Cursor, NeedMore, Writer } from "../src/protocol/wire.js";
import { rsyncPath } from "./helpers/env.js";

let tmp: string;
beforeAll(async () => {
  await initChecksums();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "krsync-blocksum-"));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const MSG_DATA = 0;
const MPLEX_BASE = 7;
const ITEM_BASIS_TYPE_FOLLOWS = 1 << 11;
const ITEM_XNAME_FOLLOWS = 1 << 12;

/** A byte stream from the server, demultiplexed once multiplexing starts. */
class ServerStream {
  private raw = Buffer.alloc(0);
  private data = Buffer.alloc(0);
  private muxed = false;
  private waiter: (() => void) | null = null;
  messages: string[] = [];
  closed = false;

  constructor(readonly proc: ChildProcessWithoutNullStreams) {
    proc.stdout.on("data", (b: Buffer) => {
      this.raw = Buffer.concat([this.raw, b]);
      this.pump();
    });
    proc.stderr.on("data", (b: Buffer) => this.messages.push(`stderr: ${b.toString()}`));
    proc.on("close", () => {
      this.closed = true;
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  private pump(): void {
    if (this.muxed) {
      while (this.raw.length >= 4) {
        const h = this.raw.readUInt32LE(0);
        const len = h & 0xffffff;
        if (this.raw.length < 4 + len) break;
        const tag = (h >>> 24) - MPLEX_BASE;
        const payload = this.raw.subarray(4, 4 + len);
        this.raw = this.raw.subarray(4 + len);
        if (tag === MSG_DATA) this.data = Buffer.concat([this.data, payload]);
        else this.messages.push(`msg ${tag}: ${payload.toString()}`);
      }
    } else {
      this.data = Buffer.concat([this.data, this.raw]);
      this.raw = Buffer.alloc(0);
    }
    this.wake();
  }

  /** From here on the server's output is multiplexed (its bytes not yet read are frames). */
  startMux(): void {
    this.raw = Buffer.concat([this.data, this.raw]);
    this.data = Buffer.alloc(0);
    this.muxed = true;
    this.pump();
  }

  /** Run a decoder over the data so far; wait for more while it throws NeedMore. */
  async read<T>(decode: (c: Cursor) => T): Promise<T> {
    for (;;) {
      const c = new Cursor(this.data);
      try {
        const v = decode(c);
        this.data = this.data.subarray(c.pos);
        return v;
      } catch (e) {
        if (!(e instanceof NeedMore)) throw e;
      }
      if (this.closed) throw new Error(`server closed early:\n${this.messages.join("\n")}`);
      await new Promise<void>((r) => (this.waiter = r));
    }
  }
}

interface Attrs {
  ndx: number;
  iflags: number;
  extra: Uint8Array; // basis type / xname bytes, echoed back
}

async function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return cond();
}

interface Case {
  protocol: number;
  choice?: string; // --checksum-choice sent to the server
  type: ChecksumType; // what that means
  seedFix: boolean; // send 'C' in the capability string (protocol >= 30)
  seed: number;
}

async function transfer(tc: Case, basis: Buffer, source: Buffer): Promise<void> {
  const dir = path.join(tmp, `t${Math.random().toString(36).slice(2)}`);
  fs.mkdirSync(path.join(dir, "d"), { recursive: true });
  const dst = path.join(dir, "d", "f");
  fs.writeFileSync(dst, basis);
  const { protocol } = tc;
  const args = ["--server", `-Ie.Lsfx${tc.seedFix ? "C" : ""}`, `--checksum-seed=${tc.seed}`];
  if (tc.choice) args.push(`--checksum-choice=${tc.choice}`);
  args.push(".", `${path.join(dir, "d")}/`);
  const proc = spawn(rsyncPath, args, { stdio: ["pipe", "pipe", "pipe"] });
  const s = new ServerStream(proc);
  const send = (w: Writer): void => {
    const b = w.take();
    if (protocol >= 30) {
      // client → server is multiplexed from protocol 30 (main.c client_run)
      const h = Buffer.alloc(4);
      h.writeUInt32LE(((MPLEX_BASE + MSG_DATA) << 24) | b.length);
      proc.stdin.write(Buffer.concat([h, b]));
    } else proc.stdin.write(b);
  };
  try {
    // compat.c setup_protocol
    proc.stdin.write(new Writer().int32(protocol).take());
    const remote = await s.read((c) => c.int32());
    expect(remote).toBe(32);
    if (protocol >= 30) await s.read((c) => c.varint());
    const seed = await s.read((c) => c.int32());
    expect(seed).toBe(tc.seed);
    s.startMux();

    // flist.c send_file_entry for one regular file "f", then the end of the list.
    const w = new Writer();
    w.byte((1 << 3) | (1 << 4)); // XMIT_SAME_UID | XMIT_SAME_GID
    w.byte(1).bytes(Buffer.from("f"));
    if (protocol >= 30) w.varlong(source.length, 3).varlong(1_700_000_000, 4);
    else w.longint(source.length).int32(1_700_000_000);
    w.int32(0o100644);
    w.byte(0);
    if (protocol < 30) w.int32(0); // io_error
    send(w);

    const ndxIn = new NdxReader(protocol);
    const ndxOut = new NdxWriter(protocol);
    const digestLen = checksumDigestLength(tc.type);
    const blockSummer = await createBlockSummer(tc.type, protocol, seed);

    const readAttrs = (c: Cursor): Attrs => {
      const ndx = ndxIn.read(c);
      if (ndx === NDX_DONE || protocol < 29) return { ndx, iflags: 0, extra: new Uint8Array(0) };
      const start = c.pos;
      const iflags = c.int16();
      const x0 = c.pos;
      if (iflags & ITEM_BASIS_TYPE_FOLLOWS) c.byte();
      if (iflags & ITEM_XNAME_FOLLOWS) {
        let len = c.byte();
        if (len & 0x80) len = ((len & 0x7f) << 8) | c.byte();
        c.bytes(len);
      }
      void start;
      return { ndx, iflags, extra: c.buf.slice(x0, c.pos) };
    };
    const readHead = (c: Cursor): SumHead => ({ count: c.int32(), blength: c.int32(), s2length: c.int32(), remainder: c.int32() });

    const roundTrip = async (phase: number): Promise<void> => {
      const attrs = await s.read(readAttrs);
      expect(attrs.ndx).toBeGreaterThanOrEqual(0);
      const head = await s.read(readHead);
      const want = sumSizes(basis.length, protocol, {
        digestLength: digestLen,
        csumLength: phase === 0 ? undefined : SUM_LENGTH,
      });
      expect(head).toEqual(want);
      const reader = new BlockSumsReader(head, protocol, digestLen);
      await s.read((c) => {
        reader.read(c);
        if (!reader.done) throw new NeedMore();
      });
      const sums = reader.sums();
      // Our sums of the basis, byte for byte.
      for (let i = 0; i < head.count; i++) {
        const off = i * head.blength;
        const len = Math.min(head.blength, basis.length - off);
        expect(sums.sum1[i]).toBe(weakChecksum(basis, off, len));
        const ours = Buffer.from(blockSummer(basis, off, len).subarray(0, head.s2length));
        const theirs = Buffer.from(sums.sum2.subarray(i * head.s2length, (i + 1) * head.s2length));
        if (!ours.equals(theirs)) expect({ block: i, ours: ours.toString("hex") }).toEqual({ block: i, ours: theirs.toString("hex") });
      }
      if (phase === 1) expect(head.s2length).toBe(Math.min(SUM_LENGTH, digestLen));

      // sender.c: echo ndx/attrs and the sum head, then the tokens and the file sum.
      const out = new Writer();
      ndxOut.write(attrs.ndx, out);
      if (protocol >= 29) out.int16(attrs.iflags).bytes(attrs.extra);
      out.int32(head.count).int32(head.blength).int32(head.s2length).int32(head.remainder);
      const m = new BlockMatcher(head, sums, blockSummer);
      const fsum = createFileSummer(tc.type, protocol, seed);
      const tokens: MatchToken[] = [];
      for (let p = 0; p < source.length; p += 50_000) {
        const piece = source.subarray(p, p + 50_000);
        fsum.update(piece);
        tokens.push(...m.push(piece));
      }
      tokens.push(...m.finish());
      for (const t of tokens) {
        if (t.kind === "literal") out.int32(t.data.length).bytes(t.data);
        else out.int32(-(t.index + 1));
      }
      out.int32(0);
      const digest = Buffer.from(fsum.digest());
      if (phase === 0) digest[0] ^= 0xff; // force the redo phase
      out.bytes(digest);
      send(out);
      if (phase === 0) expect(m.stats.matches).toBeGreaterThan(0);
    };

    await roundTrip(0);
    // End of phase 0 from the generator; our echo starts the redo phase.
    expect(await s.read((c) => ndxIn.read(c))).toBe(NDX_DONE);
    const w2 = new Writer();
    ndxOut.write(NDX_DONE, w2);
    send(w2);
    await roundTrip(1);
    const ok = await waitFor(() => fs.existsSync(dst) && fs.readFileSync(dst).equals(source), 10_000);
    if (!ok) throw new Error(`receiver did not rebuild the file:\n${s.messages.join("\n")}`);
  } finally {
    proc.kill("SIGKILL");
  }
}

function pair(): { basis: Buffer; source: Buffer } {
  const basis = randomBytes(150_000);
  const source = Buffer.concat([
    basis.subarray(0, 40_000),
    randomBytes(1234),
    basis.subarray(40_000, 90_000),
    basis.subarray(100_000),
    Buffer.from("tail"),
  ]);
  return { basis, source };
}

const CASES: Case[] = [];
for (const seed of [1, 0x5a5a5a5a, -424242]) {
  for (const protocol of [30, 31, 32]) {
    for (const name of ["md4", "md5", "sha1", "xxh64", "xxh3", "xxh128"] as const)
      CASES.push({ protocol, choice: name, type: name, seedFix: true, seed });
    CASES.push({ protocol, type: "md5", seedFix: true, seed }); // implied md5, seed order fixed
    CASES.push({ protocol, type: "md5-old-seed", seedFix: false, seed }); // implied md5, old order
  }
  for (const protocol of [27, 28, 29]) {
    CASES.push({ protocol, type: "md4-old", seedFix: false, seed });
    for (const name of ["md4", "md5", "xxh128"] as const) CASES.push({ protocol, choice: name, type: name, seedFix: false, seed });
  }
}

describe("block sums and tokens against a real rsync receiver", () => {
  it.each(CASES)("protocol $protocol, $type (choice $choice, seed $seed, C=$seedFix)", async (tc) => {
    const { basis, source } = pair();
    await transfer(tc, basis, source);
  });
});
