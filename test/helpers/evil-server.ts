// A scriptable fake `rsync --server --sender` for hostile-peer tests. It plays a valid pull
// session the way rsync's server sender does (compat.c setup_protocol, main.c do_server_sender,
// flist.c send_file_list, sender.c send_files, main.c handle_stats / read_final_goodbye) with
// krsync's own protocol encoders, and deviates where the script says: garbage instead of a
// version, raw file-list entries, bad indices, lying sum heads, huge literals, cut connections,
// stray multiplex frames, silence.
//
// Run as a separate process behind the remote-shell stand-in (fakersh.sh): the client's
// --rsync-path is `node .../evil-server.js`, the server arguments follow; the script is the JSON
// file named by $EVIL_SCRIPT. Each run appends JSON lines to script.log (if given): its pid, the
// client's protocol and capabilities, every request it read.
import { appendFileSync, readFileSync } from "node:fs";
import { checksumDigestLength, createFileSummer, createFlistSummer, initChecksums, resolveChecksumChoice, type ChecksumType } from "../../src/delta/checksum.js";
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, S_IFSOCK, FLAG_CONTENT_DIR, FLAG_TOP_DIR, type FileEntry } from "../../src/protocol/fileentry.js";
import { FileListEncoder, type FlistContext } from "../../src/protocol/flist.js";
import { sortFileList } from "../../src/protocol/flist-sort.js";
import {
  CF_CHKSUM_SEED_FIX,
  CF_ID0_NAMES,
  CF_INPLACE_PARTIAL_DIR,
  CF_SAFE_FLIST,
  CF_SYMLINK_TIMES,
  CF_VARINT_FLIST_FLAGS,
  CF_AVOID_XATTR_OPTIM,
  decodeVstring,
  encodeVersion,
  encodeVstring,
} from "../../src/protocol/handshake.js";
import { encodeIdLists } from "../../src/protocol/idlist.js";
import { InputQueue } from "../../src/protocol/input.js";
import { encodeFrame, MsgCode, MuxDecoder } from "../../src/protocol/mux.js";
import { NDX_DEL_STATS, NDX_DONE, NdxReader, NdxWriter } from "../../src/protocol/ndx.js";
import { readSumHead, writeSumHead, type SumHead } from "../../src/protocol/sumhead.js";
import { CHUNK_SIZE } from "../../src/protocol/token.js";
import { Cursor, Writer } from "../../src/protocol/wire.js";

// ---- the script ----

/** One token of a hand-made answer (token.c simple_send_token). */
export type EvilToken =
  | { lit: string }
  | { litHex: string }
  /** A literal header claiming `len` bytes, followed by only `send` bytes (default: all). */
  | { litLen: number; send?: number }
  | { block: number }
  | { end: true }
  /** Bytes as they are: a compressed token stream for a client with a fixed --zc (this
   *  server compresses nothing). `decodes`: what they decode to, `count` times `byte`, for the
   *  whole-file checksum. */
  | { rawHex: string; decodes?: [byte: number, count: number] };

export type EvilAction =
  /** Bytes straight onto stdout (not framed). */
  | { do: "raw"; hex: string }
  /** Bytes in a DATA frame. */
  | { do: "data"; hex: string }
  /** A message frame; `len` overrides the length in the header (payload still `text`). */
  | { do: "msg"; code: number; text?: string; int?: number; len?: number }
  /** A frame header with any tag (7 + code) and length, no payload. */
  | { do: "header"; tag: number; len: number }
  /** An index: `ndx`, or the sorted position of the entry called `name`. */
  | { do: "ndx"; ndx?: number; name?: string }
  /** A transfer answer: ndx (or `name`'s; default: the request's), iflags (default: the
   *  request's, else ITEM_TRANSFER), sum head (default: the request's echo), tokens, the
   *  whole-file checksum ("good" = of the literal bytes sent, "bad" = flipped, "omit"). */
  | { do: "transfer"; ndx?: number; name?: string; iflags?: number; sumHead?: [number, number, number, number]; tokens: EvilToken[]; sum?: "good" | "bad" | "omit" }
  /** The normal answer to the request being handled (only in `answer`). */
  | { do: "answer" }
  | { do: "exit"; code?: number }
  /** Stop sending; ignore stdin's end (a frozen peer). Ends itself after `hangMs`. */
  | { do: "hang" }
  | { do: "sleep"; ms: number }
  /** Stop / start reading the client's stream (its writes then block on a full pipe). */
  | { do: "pauseInput" }
  | { do: "resumeInput" };

export interface EvilEntry {
  /** The name (UTF-8). Ignored with `raw`. */
  name?: string;
  /** A complete raw entry (flags included), in hex. Put raw entries last: the encoder's
   *  compression state does not see them. */
  raw?: string;
  /** f file (default), d dir, l symlink, p fifo, s socket, c / b device. */
  type?: "f" | "d" | "l" | "p" | "s" | "c" | "b";
  /** Permission bits (default 0644, dirs 0755). */
  perms?: number;
  /** A whole st_mode as sent (overrides type/perms). */
  fullMode?: number;
  /** Size sent in the file list (default: the content's length). */
  size?: number;
  mtime?: number;
  content?: string;
  /** Generated content of this many bytes (a pseudo-random 1 MiB block repeated). */
  bigSize?: number;
  /** Send the content as one literal token (header = whole length) instead of 32 KiB tokens. */
  oneLiteral?: boolean;
  /** Bytes per second for the content (throttled in 64 KiB steps). */
  rate?: number;
  /** Exit (code 0) after this many content bytes of the answer, mid-file. */
  cutAt?: number;
  /** Hang after this many content bytes of the answer, mid-file. */
  stallAt?: number;
  /** Send a bad whole-file checksum for the first N answers (default 0). */
  badSum?: number;
  target?: string;
  /** Hard-link group (same number = same dev/ino). */
  hlink?: number;
  uid?: number;
  gid?: number;
  /** Answer a request for this entry with these actions instead of the normal answer... */
  answer?: EvilAction[];
  /** ...for the first this many requests (default: all). */
  answerTimes?: number;
  /** Answer with MSG_NO_SEND (protocol >= 30), as rsync does for a file it cannot open. */
  noSend?: boolean;
  /** -c checksum override (hex). */
  checksumHex?: string;
}

export interface EvilScript {
  /** Protocol we announce (default 32). */
  version?: number;
  /** Before anything is written (garbage, an early exit...). */
  startup?: EvilAction[];
  /** After the version exchange (before compat flags). */
  afterVersion?: EvilAction[];
  /** compat_flags override (protocol >= 30). */
  compatFlags?: number;
  /** Our checksum list for the negotiation. */
  checksums?: string;
  seed?: number;
  /** After the seed, once our output is multiplexed, before the filter list is read. */
  afterSetup?: EvilAction[];
  entries: EvilEntry[];
  /** Replaces the file list's end marker (hex, raw DATA bytes); the id lists still follow. */
  flistEndHex?: string;
  flistIoError?: number;
  /** After the file list (and id lists) are sent. */
  afterFlist?: EvilAction[];
  /** After the first phase's NDX_DONE was read, before ours is echoed. */
  afterPhase1?: EvilAction[];
  /** Before the stats. */
  beforeStats?: EvilAction[];
  /** Exit code at the end of a completed session (default 0). */
  exitCode?: number;
  /** How long a hanging server lives on (default 120 s). */
  hangMs?: number;
  /** Log file (JSON lines). */
  log?: string;
}

// ---- plumbing ----

const script: EvilScript = JSON.parse(readFileSync(process.env.EVIL_SCRIPT ?? "", "utf8")) as EvilScript;
const args = process.argv.slice(2);

function log(ev: Record<string, unknown>): void {
  if (script.log) appendFileSync(script.log, JSON.stringify({ t: Date.now(), ...ev }) + "\n");
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const hex = (h: string) => Uint8Array.from(Buffer.from(h, "hex"));

let muxOut = false;
const out = process.stdout;
out.on("error", () => process.exit(0)); // the client went away
// rsync's client ends its remote shell child with SIGUSR1 (main.c / cleanup.c); rsync exits on it.
process.on("SIGUSR1", () => process.exit(19));

async function put(bytes: Uint8Array): Promise<void> {
  if (bytes.length === 0) return;
  if (!out.write(bytes)) await new Promise<void>((r) => out.once("drain", () => r()));
}

/** Protocol bytes: DATA frames once multiplexed (at most 64 KiB each here). */
async function send(bytes: Uint8Array): Promise<void> {
  if (!muxOut) return put(bytes);
  for (let off = 0; off < bytes.length; off += 65536) {
    await put(encodeFrame(MsgCode.DATA, bytes.subarray(off, Math.min(bytes.length, off + 65536))));
  }
}

async function sendW(w: Writer): Promise<void> {
  await send(w.take());
}

async function finish(code: number): Promise<never> {
  log({ ev: "exit", code });
  await new Promise<void>((r) => out.write(new Uint8Array(0), () => r()));
  process.exit(code);
}

let hanging = false;
async function hang(): Promise<never> {
  hanging = true;
  log({ ev: "hang" });
  setTimeout(() => process.exit(0), script.hangMs ?? 120_000);
  return new Promise<never>(() => {});
}

// Input: raw until the client multiplexes (protocol >= 30), then demultiplexed.
const raw = new InputQueue(undefined, 1 << 30);
let input: InputQueue = raw;
let demux: MuxDecoder | null = null;
process.stdin.on("data", (chunk: Buffer) => {
  if (demux) demux.push(chunk);
  else raw.push(chunk);
});
process.stdin.on("end", () => {
  if (hanging) return;
  input.finish();
});

function startMuxIn(): void {
  const data = new InputQueue(undefined, 1 << 30);
  const d = new MuxDecoder({ data: (p) => data.push(p.slice()), message: () => {} });
  const left = raw.tryRead((c: Cursor) => c.bytes(c.remaining).slice());
  demux = d;
  input = data;
  if (left && left.length) d.push(left);
}

// ---- the client's options (options.c server_options) ----

const bundle = args.find((a) => /^-[^-]/.test(a)) ?? "-";
const eAt = bundle.indexOf("e.");
const letters = eAt >= 0 ? bundle.slice(1, eAt) : bundle.slice(1);
const caps = eAt >= 0 ? bundle.slice(eAt + 2) : "";
const has = (ch: string) => letters.includes(ch);
const longOpt = (name: string) => args.some((a) => a === name);
const csumChoice = args.find((a) => a.startsWith("--checksum-choice="))?.slice(18);

// ---- content ----

const BLOCK = (() => {
  const b = Buffer.alloc(1 << 20);
  let x = 0x12345678;
  for (let i = 0; i < b.length; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b.writeInt32LE(x | 0, i);
  }
  return b;
})();

/** Generated content bytes [from, to). */
function bigPiece(from: number, to: number): Uint8Array {
  const o = from % BLOCK.length;
  if (o + (to - from) <= BLOCK.length) return BLOCK.subarray(o, o + (to - from));
  const res = Buffer.alloc(to - from);
  for (let i = 0; i < res.length; ) {
    const p = (from + i) % BLOCK.length;
    const n = Math.min(BLOCK.length - p, res.length - i);
    BLOCK.copy(res, i, p, p + n);
    i += n;
  }
  return res;
}

function entryContentLength(e: EvilEntry): number {
  if (e.bigSize !== undefined) return e.bigSize;
  return Buffer.byteLength(e.content ?? "");
}

function entryPiece(e: EvilEntry, from: number, to: number): Uint8Array {
  if (e.bigSize !== undefined) return bigPiece(from, to);
  return Buffer.from(e.content ?? "").subarray(from, to);
}

const TYPE_BITS: Record<string, number> = { f: S_IFREG, d: S_IFDIR, l: S_IFLNK, p: S_IFIFO, s: S_IFSOCK, c: S_IFCHR, b: S_IFBLK };

// ---- the session ----

async function runActions(list: EvilAction[] | undefined, ctx: Session, req?: Request): Promise<void> {
  for (const a of list ?? []) await runAction(a, ctx, req);
}

interface Request {
  ndx: number;
  iflags: number;
  head: SumHead;
  entry: EvilEntry;
}

interface Session {
  sorted: (FileEntry & { evil: EvilEntry })[];
  protocol: number;
  xfer: ChecksumType;
  seed: number;
  ndxOut: NdxWriter;
  answers: Map<number, number>;
}

async function runAction(a: EvilAction, s: Session, req?: Request): Promise<void> {
  switch (a.do) {
    case "raw":
      return put(hex(a.hex));
    case "data":
      return send(hex(a.hex));
    case "msg": {
      const payload = a.int !== undefined ? new Writer(4).int32(a.int).take() : Buffer.from(a.text ?? "");
      const frame = encodeFrame(a.code as MsgCode, payload);
      if (a.len !== undefined) {
        const h = (((7 + a.code) << 24) | (a.len & 0xffffff)) >>> 0;
        new DataView(frame.buffer).setUint32(0, h, true);
      }
      return put(frame);
    }
    case "header": {
      const b = new Uint8Array(4);
      new DataView(b.buffer).setUint32(0, ((a.tag << 24) | (a.len & 0xffffff)) >>> 0, true);
      return put(b);
    }
    case "ndx": {
      const w = new Writer();
      s.ndxOut.write(ndxFor(s, a), w);
      return sendW(w);
    }
    case "transfer": {
      const w = new Writer();
      s.ndxOut.write(a.ndx !== undefined || a.name !== undefined ? ndxFor(s, a) : req!.ndx, w);
      if (s.protocol >= 29) w.int16(a.iflags ?? req?.iflags ?? 0x8000);
      const h = req?.head;
      const [c, b, s2, r] = a.sumHead ?? (h ? [h.count, h.blength, h.s2length, h.remainder] : [0, 0, 0, 0]);
      w.int32(c).int32(b).int32(s2).int32(r);
      await sendW(w);
      const summer = createFileSummer(s.xfer, s.protocol, s.seed);
      for (const t of a.tokens) {
        if ("lit" in t || "litHex" in t) {
          const d = "lit" in t ? Buffer.from(t.lit) : hex(t.litHex);
          summer.update(d);
          await sendW(new Writer().int32(d.length).bytes(d));
        } else if ("litLen" in t) {
          await sendW(new Writer().int32(t.litLen));
          const n = t.send ?? t.litLen;
          for (let off = 0; off < n; off += 1 << 20) {
            const p = bigPiece(off, Math.min(n, off + (1 << 20)));
            summer.update(p);
            await send(p);
          }
        } else if ("rawHex" in t) {
          if (t.decodes) {
            const piece = Buffer.alloc(1 << 20, t.decodes[0]);
            for (let left = t.decodes[1]; left > 0; left -= piece.length) summer.update(piece.subarray(0, Math.min(left, piece.length)));
          }
          await send(hex(t.rawHex));
        } else if ("block" in t) {
          await sendW(new Writer().int32(-(t.block + 1)));
        } else {
          await sendW(new Writer().int32(0));
        }
      }
      const sum = summer.digest().slice(0, checksumDigestLength(s.xfer));
      if (a.sum === "bad") sum[0] ^= 0xff;
      if (a.sum !== "omit") await send(sum);
      return;
    }
    case "answer":
      if (!req) throw new Error("answer outside a request");
      return normalAnswer(s, req);
    case "exit":
      return finish(a.code ?? 0);
    case "hang":
      return hang();
    case "sleep":
      return sleep(a.ms);
    case "pauseInput":
      process.stdin.pause();
      return;
    case "resumeInput":
      process.stdin.resume();
      return;
  }
}

function ndxFor(s: Session, a: { ndx?: number; name?: string }): number {
  if (a.ndx !== undefined) return a.ndx;
  const i = s.sorted.findIndex((f) => f.name === a.name);
  if (i < 0) throw new Error(`no entry called ${a.name}`);
  return i;
}

/** sender.c send_files for one request: echo, the content as literal tokens, the file sum. */
async function normalAnswer(s: Session, req: Request): Promise<void> {
  const { entry: e } = req;
  const n = (s.answers.get(req.ndx) ?? 0) + 1;
  s.answers.set(req.ndx, n);
  const w = new Writer();
  s.ndxOut.write(req.ndx, w);
  if (s.protocol >= 29) w.int16(req.iflags);
  writeSumHead(req.head, w);
  await sendW(w);
  const total = entryContentLength(e);
  const summer = createFileSummer(s.xfer, s.protocol, s.seed);
  if (e.oneLiteral && total > 0) await sendW(new Writer().int32(total));
  const step = e.rate ? 65536 : 1 << 20;
  const t0 = Date.now();
  for (let off = 0; off < total; ) {
    const end = Math.min(total, off + step);
    if (e.cutAt !== undefined && end > e.cutAt) {
      if (e.cutAt > off) await sendLiteral(entryPiece(e, off, e.cutAt), !!e.oneLiteral);
      log({ ev: "cut", at: e.cutAt });
      return finish(0);
    }
    if (e.stallAt !== undefined && end > e.stallAt) {
      if (e.stallAt > off) await sendLiteral(entryPiece(e, off, e.stallAt), !!e.oneLiteral);
      log({ ev: "stall", at: e.stallAt });
      return hang();
    }
    const piece = entryPiece(e, off, end);
    summer.update(piece);
    await sendLiteral(piece, !!e.oneLiteral);
    off = end;
    if (e.rate) {
      const due = t0 + (off / e.rate) * 1000;
      if (due > Date.now()) await sleep(due - Date.now());
    }
  }
  await sendW(new Writer().int32(0));
  const sum = summer.digest().slice(0, checksumDigestLength(s.xfer));
  if (n <= (e.badSum ?? 0)) sum[0] ^= 0xff;
  await send(sum);
}

async function sendLiteral(piece: Uint8Array, headerSent: boolean): Promise<void> {
  if (headerSent) return send(piece);
  const w = new Writer(piece.length + 4 * Math.ceil(piece.length / CHUNK_SIZE));
  for (let off = 0; off < piece.length; off += CHUNK_SIZE) {
    const m = Math.min(CHUNK_SIZE, piece.length - off);
    w.int32(m).bytes(piece.subarray(off, off + m));
  }
  await sendW(w);
}

async function main(): Promise<void> {
  log({ ev: "start", pid: process.pid, args });
  await runActions(script.startup, null as unknown as Session);

  // compat.c setup_protocol: both sides write their version, then read the peer's.
  const ours = script.version ?? 32;
  await put(encodeVersion(ours));
  const remote = await raw.read((c) => c.int32());
  const protocol = Math.min(ours, remote);
  log({ ev: "version", remote, protocol, caps, letters });
  await runActions(script.afterVersion, null as unknown as Session);

  await initChecksums();
  let negotiated: string | undefined;
  let compat = 0;
  if (protocol >= 30) {
    compat = CF_SYMLINK_TIMES;
    if (caps.includes("f")) compat |= CF_SAFE_FLIST;
    if (caps.includes("x")) compat |= CF_AVOID_XATTR_OPTIM;
    if (caps.includes("C")) compat |= CF_CHKSUM_SEED_FIX;
    if (caps.includes("I")) compat |= CF_INPLACE_PARTIAL_DIR;
    if (caps.includes("u")) compat |= CF_ID0_NAMES;
    if (caps.includes("v")) compat |= CF_VARINT_FLIST_FLAGS;
    if (script.compatFlags !== undefined) compat = script.compatFlags;
    await put(new Writer().varint(compat).take());
    if (caps.includes("v")) {
      // compat.c negotiate_the_strings: our lists, then the client's.
      const mine = script.checksums ?? "xxh128 xxh3 xxh64 md5 md4 sha1 none";
      const w = new Writer();
      if (!csumChoice) encodeVstring(mine, w);
      if (has("z")) encodeVstring("zlibx zlib", w);
      await put(w.take());
      if (!csumChoice) {
        const theirs = await raw.read((c) => decodeVstring(c));
        const set = new Set(mine.split(" "));
        negotiated = theirs.split(" ").find((t) => set.has(t));
        log({ ev: "negotiated", theirs, negotiated });
      }
      if (has("z")) await raw.read((c) => decodeVstring(c));
    }
  }
  const seed = script.seed ?? 0x1234567;
  await put(new Writer().int32(seed).take());
  const sums = resolveChecksumChoice({
    protocol,
    negotiated,
    choice: csumChoice,
    properSeedOrder: (compat & CF_CHKSUM_SEED_FIX) !== 0,
  });
  const s: Session = { sorted: [], protocol, xfer: sums.xfer, seed, ndxOut: new NdxWriter(protocol), answers: new Map() };

  // main.c start_server: our output is multiplexed; the client's from protocol 30.
  muxOut = true;
  if (protocol >= 30) startMuxIn();
  await runActions(script.afterSetup, s);

  // exclude.c recv_filter_list
  for (;;) {
    const len = await input.read((c) => c.int32());
    if (len === 0) break;
    await input.readBytes(len);
  }

  // flist.c send_file_list
  const fctx: FlistContext = {
    protocol,
    compatFlags: compat,
    recursive: has("r"),
    preserveUid: has("o"),
    preserveGid: has("g"),
    preserveLinks: has("l"),
    preserveDevices: has("D"),
    preserveSpecials: has("D") && !longOpt("--no-specials"),
    preserveHardLinks: has("H"),
    alwaysChecksum: has("c"),
    checksumLength: checksumDigestLength(sums.file),
    numericIds: longOpt("--numeric-ids"),
    relativePaths: has("R"),
    ndxStart: 0,
  };
  const enc = new FileListEncoder(fctx);
  const w = new Writer();
  const sent: { entry: FileEntry; evil: EvilEntry }[] = [];
  for (const e of script.entries) {
    if (e.raw !== undefined) {
      w.bytes(hex(e.raw));
      continue;
    }
    const t = e.type ?? "f";
    const mode = e.fullMode ?? (TYPE_BITS[t]! | (e.perms ?? (t === "d" ? 0o755 : t === "l" ? 0o777 : 0o644)));
    const fe: FileEntry = {
      name: e.name ?? "x",
      mode,
      size: e.size ?? (t === "f" ? entryContentLength(e) : 0),
      mtime: e.mtime ?? 1_600_000_000,
      mtimeNsec: 0,
      flags: t === "d" ? (e.name === "." ? FLAG_TOP_DIR | FLAG_CONTENT_DIR : has("r") ? FLAG_CONTENT_DIR : 0) : 0,
      uid: e.uid ?? 0,
      gid: e.gid ?? 0,
    };
    if (t === "l") fe.linkTarget = Buffer.from(e.target ?? "");
    if (t === "c" || t === "b") {
      fe.rdevMajor = 1;
      fe.rdevMinor = 3;
    }
    if (e.hlink !== undefined) {
      fe.hlinkDev = 7;
      fe.hlinkIno = 1000 + e.hlink;
    }
    if (fctx.alwaysChecksum && t === "f") {
      if (e.checksumHex) fe.checksum = hex(e.checksumHex);
      else {
        const fs = createFlistSummer(sums.file);
        fs.update(entryPiece(e, 0, entryContentLength(e)));
        fe.checksum = fs.digest().slice(0, fctx.checksumLength);
      }
    }
    enc.encode(fe, w);
    sent.push({ entry: fe, evil: e });
    if (w.len > 1 << 20) await sendW(w);
  }
  if (script.flistEndHex !== undefined) w.bytes(hex(script.flistEndHex));
  else enc.end(w, script.flistIoError ?? 0);
  encodeIdLists(w, { protocol, preserveUid: fctx.preserveUid, preserveGid: fctx.preserveGid, numericIds: !!fctx.numericIds, incRecurse: false, id0Names: (compat & CF_ID0_NAMES) !== 0 }, enc.users, enc.groups);
  if (protocol < 30) w.int32(script.flistIoError ?? 0);
  await sendW(w);
  log({ ev: "flist", count: sent.length });
  // The ndx the client uses are positions in the sorted list.
  const sorted = sortFileList(
    sent.map((x) => Object.assign({}, x.entry, { evil: x.evil })),
    protocol,
  ) as (FileEntry & { evil: EvilEntry })[];
  s.sorted = sorted;
  await runActions(script.afterFlist, s);

  // sender.c send_files
  const ndxIn = new NdxReader(protocol);
  const maxPhase = protocol >= 29 ? 2 : 1;
  let phase = 0;
  for (;;) {
    const ndx = await input.read((c) => ndxIn.read(c));
    if (ndx === NDX_DEL_STATS) {
      const st = await input.read((c) => {
        const p = c.pos;
        try {
          return [c.varint(), c.varint(), c.varint(), c.varint(), c.varint()];
        } catch (e) {
          c.pos = p;
          throw e;
        }
      });
      const dw = new Writer();
      s.ndxOut.write(NDX_DEL_STATS, dw);
      for (const v of st) dw.varint(v);
      await sendW(dw);
      continue;
    }
    if (ndx === NDX_DONE) {
      phase++;
      log({ ev: "done", phase });
      if (phase === 1) await runActions(script.afterPhase1, s);
      if (phase > maxPhase) break;
      const dw = new Writer();
      s.ndxOut.write(NDX_DONE, dw);
      await sendW(dw);
      continue;
    }
    const iflags = protocol >= 29 ? await input.read((c) => c.int16()) : 0x18000;
    if (iflags & (1 << 11)) await input.read((c) => c.byte());
    if (iflags & (1 << 12)) await input.read((c) => decodeVstring(c, 4096));
    const f = sorted[ndx];
    if (!(iflags & 0x8000)) {
      const ew = new Writer();
      s.ndxOut.write(ndx, ew);
      if (protocol >= 29) ew.int16(iflags);
      await sendW(ew);
      continue;
    }
    const head = await input.read((c) => readSumHead(c, protocol, 64));
    if (head.count > 0) await input.readBytes(head.count * (4 + head.s2length));
    log({ ev: "request", ndx, name: f?.name, iflags, head });
    if (!f) throw new Error(`request for unknown ndx ${ndx}`);
    const req: Request = { ndx, iflags, head, entry: f.evil };
    if (f.evil.noSend && protocol >= 30) {
      await put(encodeFrame(MsgCode.NO_SEND, new Writer(4).int32(ndx).take()));
      continue;
    }
    const asked = (s.answers.get(-1 - ndx) ?? 0) + 1;
    s.answers.set(-1 - ndx, asked);
    if (f.evil.answer && asked <= (f.evil.answerTimes ?? Infinity)) await runActions(f.evil.answer, s, req);
    else await normalAnswer(s, req);
  }
  const dw = new Writer();
  s.ndxOut.write(NDX_DONE, dw);
  await sendW(dw);

  await runActions(script.beforeStats, s);
  // main.c handle_stats: total_read, total_written, total_size, flist build/xfer times.
  const sw = new Writer();
  sw.varlong30(1000, protocol, 3).varlong30(2000, protocol, 3).varlong30(3000, protocol, 3);
  if (protocol >= 29) sw.varlong30(0, protocol, 3).varlong30(0, protocol, 3);
  await sendW(sw);

  // main.c read_final_goodbye
  if (protocol < 29) await input.read((c) => c.int32());
  else {
    let i = await input.read((c) => ndxIn.read(c));
    if (protocol >= 31 && i === NDX_DONE) {
      const gw = new Writer();
      s.ndxOut.write(NDX_DONE, gw);
      await sendW(gw);
      i = await input.read((c) => ndxIn.read(c));
    }
    if (i !== NDX_DONE) {
      log({ ev: "bad-goodbye", ndx: i });
      await put(encodeFrame(MsgCode.ERROR, Buffer.from(`Invalid packet at end of run (${i}) [sender]\n`)));
      await finish(2);
    }
  }
  await finish(script.exitCode ?? 0);
}

main().catch((e: Error) => {
  // The client went away or sent something unexpected: log it, exit as rsync would.
  log({ ev: "error", message: e.message });
  if (process.env.EVIL_VERBOSE) process.stderr.write(`evil-server: ${e.message}\n`);
  process.exit(12);
});
