// The client side of a push (main.c client_run for a sender): set-up, the filter list when the
// receiver wants one, our file list, then send_files and the final goodbye. Transport-agnostic:
// it runs over any ByteStream to an `rsync --server` receiver.
import { Writable } from "node:stream";
import { checksumDigestLength } from "../delta/checksum.js";
import { encodeFilterList, type FilterRule } from "../protocol/filter.js";
import { MsgCode } from "../protocol/mux.js";
import type { TransferOptions } from "../protocol/options.js";
import { Connection, type ByteStream } from "./connection.js";
import { TimeoutError, withPeerExit } from "./client.js";
import { AbortedError, IOERR_DEL_LIMIT, IOERR_GENERAL, IOERR_VANISHED } from "./context.js";
import { emptyStats, type SyncEvents, type TransferStats } from "./events.js";
import { commandLineRules } from "./filters.js";
import { buildFileList, sendFileList, type BuiltFileList, type FlistBuildOptions, type SendFlistContext } from "./flist-build.js";
import { countFiles, IncrementalFileLists } from "./flist-inc.js";
import { allowIncRecurse } from "../protocol/serverargs.js";
import { RERR_SYNTAX } from "../protocol/errcode.js";
import { ProtocolError } from "../protocol/wire.js";
import { senderFor } from "./sender.js";
import { clientSetup, startMultiplex, type SetupResult } from "./setup.js";

export interface PushRequest {
  opts: TransferOptions;
  /** Local source arguments, as given (trailing slashes matter). */
  sources: string[];
  /** Protocol we announce. */
  protocol: number;
  /** Over a daemon: the protocol its greeting agreed on (no binary version exchange). */
  agreedProtocol?: number | undefined;
  events: SyncEvents;
  signal?: AbortSignal;
  /** --timeout seconds (0 = never). */
  timeoutSec?: number;
  /** Base for relative sources (default: process.cwd()). */
  cwd?: string;
}

export interface PushResult {
  exitCode: number;
  stats: TransferStats;
}

/** What the sending side learned from the peer's messages. */
export interface PeerState {
  error: boolean;
  exit: number | undefined;
  ioError: number;
}

/** io.c read_msg_buf as a sender sees the peer's messages. */
export function senderMessages(conn: Connection, events: SyncEvents, peer: PeerState): void {
  conn.onMessage((code, payload) => {
    const text = () => Buffer.from(payload).toString("utf8").replace(/\n$/, "");
    const int = () => (payload.length === 4 ? Buffer.from(payload).readInt32LE(0) : undefined);
    switch (code) {
      case MsgCode.INFO:
      case MsgCode.CLIENT:
        events.message?.("info", text());
        break;
      case MsgCode.WARNING:
        events.message?.("warning", text());
        break;
      case MsgCode.ERROR_XFER:
      case MsgCode.ERROR:
      case MsgCode.ERROR_SOCKET:
      case MsgCode.ERROR_UTF8:
        peer.error = true;
        events.message?.("error", text());
        break;
      case MsgCode.IO_ERROR:
        peer.ioError |= int() ?? 0;
        break;
      case MsgCode.ERROR_EXIT:
        peer.exit = int();
        break;
      case MsgCode.DELETED: {
        // log.c log_delete: the receiver tells a client sender what it removed; a
        // directory's name comes with its trailing NUL.
        const raw = text();
        const nul = raw.indexOf("\0");
        events.deleted?.(nul >= 0 ? raw.slice(0, nul) + "/" : raw);
        break;
      }
      default:
        // NOOP, DATA keep-alives; SUCCESS/NO_SEND/REDO/STATS concern other roles.
        break;
    }
  });
}

/** main.c exit_cleanup's rule for a run's own errors. */
export function exitFor(ioError: number, xferError: boolean): number {
  if (ioError & IOERR_DEL_LIMIT) return 25;
  if (ioError & IOERR_VANISHED && !(ioError & IOERR_GENERAL) && !xferError) return 24;
  if (ioError & (IOERR_GENERAL | IOERR_VANISHED) || xferError) return 23;
  return 0;
}

/** --bwlimit: a token bucket in front of the peer's input (io.c sleep_for_bwlimit). */
export class BandwidthLimiter extends Writable {
  private readonly rate: number;
  private readonly piece: number;
  private readonly started = Date.now();
  private sent = 0;

  constructor(
    private readonly out: Writable,
    kibPerSec: number,
  ) {
    super({ highWaterMark: 64 * 1024 });
    this.rate = kibPerSec * 1024;
    this.piece = Math.max(1024, Math.floor(this.rate / 10));
    out.on("error", (e) => this.destroy(e));
    out.on("close", () => {
      if (!this.destroyed) this.destroy();
    });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    void this.pass(chunk).then(() => cb(), cb);
  }

  private async pass(chunk: Buffer): Promise<void> {
    for (let off = 0; off < chunk.length; off += this.piece) {
      const part = chunk.subarray(off, Math.min(chunk.length, off + this.piece));
      // Where the clock should be after these bytes at the allowed rate.
      const due = this.started + ((this.sent + part.length) * 1000) / this.rate;
      const wait = due - Date.now();
      if (wait > 10) await new Promise((r) => setTimeout(r, wait));
      this.sent += part.length;
      if (!this.out.write(part)) await new Promise<void>((r) => this.out.once("drain", r));
    }
  }

  override _final(cb: (e?: Error | null) => void): void {
    this.out.end(cb);
  }
}

/** The stream with --bwlimit applied to what we write. */
export function limitedStream(stream: ByteStream, opts: TransferOptions): ByteStream {
  if (!opts.bwlimit || opts.bwlimit <= 0) return stream;
  return { input: stream.input, output: new BandwidthLimiter(stream.output, opts.bwlimit) };
}

/** Fail the connection when nothing moves for --timeout seconds. */
export function watchTimeout(conn: Connection, timeoutSec: number | undefined, who: string): () => void {
  if (!timeoutSec || timeoutSec <= 0) return () => {};
  const limit = timeoutSec * 1000;
  const timer = setInterval(() => {
    if (Date.now() - conn.lastActivity > limit) conn.fail(new TimeoutError(`[${who}] io timeout after ${timeoutSec} seconds -- exiting`));
  }, Math.min(1000, limit));
  timer.unref();
  return () => clearInterval(timer);
}

type ListRequest = { opts: TransferOptions; sources: string[]; events: SyncEvents; cwd?: string | undefined; rules: readonly FilterRule[] };

/** What the file-list code needs of a set-up connection and a request. */
function listContexts(conn: Connection, setup: SetupResult, req: ListRequest): { send: SendFlistContext; build: FlistBuildOptions } {
  const { protocol } = setup;
  return {
    send: {
      conn,
      protocol,
      compatFlags: setup.compat?.flags ?? 0,
      opts: req.opts,
      checksumLength: checksumDigestLength(setup.sums.file),
      id0Names: setup.compat?.id0Names ?? false,
    },
    build: { protocol, opts: req.opts, fileSum: setup.sums.file, events: req.events, rules: req.rules, ...(req.cwd ? { cwd: req.cwd } : {}) },
  };
}

/** Build and send the file list; returns it with its wire size in the stats. */
export async function sendList(conn: Connection, setup: SetupResult, req: ListRequest, stats: TransferStats): Promise<BuiltFileList> {
  const { send, build } = listContexts(conn, setup, req);
  const list = await buildFileList(req.sources, build, send.checksumLength);
  const t0 = Date.now();
  const before = conn.bytesOut;
  await sendFileList(list, send);
  stats.flistSize = conn.bytesOut - before;
  stats.flistBuildTime = list.buildTimeMs;
  stats.flistXferTime = Math.max(0, Date.now() - t0);
  stats.totalSize = list.totalSize;
  countFiles(list.files, stats);
  req.events.fileList?.(list.files.length);
  return list;
}

/** Inc-recursion: the first list now, the others as the receiver goes (flist-inc.ts). */
async function sendFirstList(conn: Connection, setup: SetupResult, req: ListRequest, stats: TransferStats): Promise<IncrementalFileLists> {
  const { send, build } = listContexts(conn, setup, req);
  const lists = new IncrementalFileLists({ ...send, build, stats });
  const count = await lists.sendFirst(req.sources);
  req.events.fileList?.(count, true);
  return lists;
}

export async function runPush(stream: ByteStream, req: PushRequest): Promise<PushResult> {
  const started = Date.now();
  const { opts } = req;
  const conn = new Connection(limitedStream(stream, opts));
  const stop = watchTimeout(conn, req.timeoutSec, "sender");
  const abort = () => conn.fail(new AbortedError());
  req.signal?.addEventListener("abort", abort, { once: true });
  try {
    const stats = emptyStats();
    const setup = await clientSetup(conn, { protocol: req.protocol, opts, agreedProtocol: req.agreedProtocol });
    const { protocol } = setup;
    stats.protocol = protocol;
    stats.compression = setup.compression;
    const peer: PeerState = { error: false, exit: undefined, ioError: 0 };
    senderMessages(conn, req.events, peer);
    startMultiplex(conn, "client-sender", protocol);

    // exclude.c send_filter_list: a client sender sends its rules only when the receiver wants
    // them (for --delete); it walks its tree with them either way.
    const rules = commandLineRules(opts, protocol);
    const filterList = encodeFilterList(rules, protocol, { role: "sender", deleteMode: opts.delete, deleteExcluded: opts.deleteExcluded });
    if (filterList) conn.write(filterList);
    // compat.c: the receiver grants inc-recursion only when we offered it.
    const incRecurse = setup.compat?.incRecurse ?? false;
    if (incRecurse && !(req.protocol >= 30 && allowIncRecurse(opts, true))) {
      throw new ProtocolError("Incompatible options specified for inc-recursive connection.", RERR_SYNTAX);
    }
    stats.incRecurse = incRecurse;
    let list: BuiltFileList;
    let lists: IncrementalFileLists | undefined;
    if (incRecurse) {
      lists = await sendFirstList(conn, setup, { ...req, rules }, stats);
      list = { files: [], ioError: lists.ioError, xferError: lists.xferError, buildTimeMs: stats.flistBuildTime, totalSize: stats.totalSize };
    } else {
      list = await sendList(conn, setup, { ...req, rules }, stats);
    }

    const sender = senderFor(conn, setup, list, { opts, events: req.events, stats, amServer: false, signal: req.signal, lists });
    await sender.run();
    // main.c handle_stats: a client sender neither sends nor reads stats.
    await sender.finish();
    stats.totalRead = conn.bytesIn;
    stats.totalWritten = conn.bytesOut;
    stats.elapsedMs = Date.now() - started;
    await conn.end();
    req.events.stats?.(stats);
    const sctx = sender.ctx;
    let exitCode = exitFor(sctx.ioError | peer.ioError, sctx.xferError);
    if (exitCode === 0 && peer.error) exitCode = 23;
    if (exitCode === 0 && peer.exit !== undefined && peer.exit !== 0) exitCode = peer.exit;
    return { exitCode, stats };
  } catch (e) {
    throw withPeerExit(e, conn);
  } finally {
    stop();
    req.signal?.removeEventListener("abort", abort);
  }
}
