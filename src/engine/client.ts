// The client side of a pull (main.c client_run for a receiver): protocol set-up, the filter
// list, the file list, then generator and receiver together until the final goodbye.
import { checksumDigestLength, CHECKSUM_NAMES } from "../delta/checksum.js";
import { isDir, type FileEntry } from "../protocol/fileentry.js";
import { FileListDecoder, type FlistEnd } from "../protocol/flist.js";
import { sortAndCleanFileList } from "../protocol/flist-sort.js";
import { HardLinkMatcher } from "../protocol/flist-hlink.js";
import { decodeIdLists, applyIdNames } from "../protocol/idlist.js";
import { MsgCode } from "../protocol/mux.js";
import { NdxReader, NdxWriter } from "../protocol/ndx.js";
import type { TransferOptions } from "../protocol/options.js";
import { ProtocolError } from "../protocol/wire.js";
import { currentUmask } from "./attrs.js";
import { Connection, type ByteStream } from "./connection.js";
import { AbortedError, IOERR_GENERAL, IOERR_VANISHED, type ReceiveContext } from "./context.js";
import { Destination } from "./destination.js";
import { emptyStats, type SyncEvents, type TransferStats } from "./events.js";
import { Generator, type GeneratorWaits } from "./generator.js";
import type { SourceHandoff } from "./handoff.js";
import { OwnerMap } from "./owners.js";
import { runReceiver } from "./receiver.js";
import { checkRequestedNames } from "./requested.js";
import { encodeFilterList } from "../protocol/filter.js";
import { commandLineRules, treeFilterList } from "./filters.js";
import { clientSetup, startMultiplex } from "./setup.js";
import { promises as fsp } from "node:fs";
import * as path from "node:path";

/** Checksum names krsync offers (rsync's order). */
export const SUPPORTED_CHECKSUMS = CHECKSUM_NAMES;

export interface PullRequest {
  opts: TransferOptions;
  /** Local destination path as given (main.c get_local_name rules apply). */
  destination: string;
  /** Protocol we announce. */
  protocol: number;
  /** Over a daemon: the protocol its greeting agreed on (no binary version exchange). */
  agreedProtocol?: number | undefined;
  /** Whether we sent the 'v' capability (string negotiation, varint flags). */
  sentNegotiation: boolean;
  events: SyncEvents;
  signal?: AbortSignal;
  /** --timeout: fail when nothing arrives for this many seconds (0 = never). */
  timeoutSec?: number;
  /** The remote paths asked for: received names outside them are refused. */
  requested?: readonly string[];
  /** In-process local copy: the sender's handed source files (engine/handoff.ts). */
  handoff?: SourceHandoff;
  /** The sender's filtering is trusted (main.c: a local transfer sets trust_sender_filter). */
  trustSender?: boolean;
}

export interface PullResult {
  exitCode: number;
  stats: TransferStats;
}

export async function runPull(stream: ByteStream, req: PullRequest): Promise<PullResult> {
  const started = Date.now();
  const conn = new Connection(stream);
  let timer: NodeJS.Timeout | undefined;
  if (req.timeoutSec && req.timeoutSec > 0) {
    const limit = req.timeoutSec * 1000;
    timer = setInterval(() => {
      if (Date.now() - conn.lastActivity > limit) {
        conn.fail(new TimeoutError(`[Receiver] io timeout after ${req.timeoutSec} seconds -- exiting`));
      }
    }, Math.min(1000, limit));
    timer.unref();
  }
  try {
    return await pull(conn, req, started);
  } catch (e) {
    throw withPeerExit(e, conn);
  } finally {
    if (timer) clearInterval(timer);
  }
}

/** A failed run keeps the code of the peer's MSG_ERROR_EXIT, if one came (`peerExit`). */
export function withPeerExit(e: unknown, conn: Connection): unknown {
  if (conn.peerExit !== undefined && e instanceof Error) Object.assign(e, { peerExit: conn.peerExit });
  return e;
}

export class TimeoutError extends Error {
  readonly exitCode = 30;
  constructor(message: string) {
    super(message);
    this.name = "TimeoutError";
  }
}

async function pull(conn: Connection, req: PullRequest, started: number): Promise<PullResult> {
  const { opts } = req;
  const stats = emptyStats();

  // compat.c setup_protocol (engine/setup.ts).
  const { protocol, compat, compression, seed, sums, xferSumLen } = await clientSetup(conn, {
    protocol: req.protocol,
    opts,
    agreedProtocol: req.agreedProtocol,
  });
  stats.protocol = protocol;
  stats.compression = compression;
  // compat.c setup_protocol: inc-recursion the client did not offer ('i' is never sent for a pull).
  if (compat?.incRecurse) {
    throw new ProtocolError("Incompatible options specified for inc-recursive connection (the server turned on incremental recursion, which was not offered)", 1);
  }

  // io.c: the server's output is multiplexed; ours from protocol 30.
  const ctxBox: { ctx?: ReceiveContext } = {};
  let peerError = false;
  let peerExit: number | undefined;
  conn.onMessage((code, payload) => {
    const text = Buffer.from(payload).toString("utf8");
    switch (code) {
      case MsgCode.INFO:
      case MsgCode.CLIENT:
        req.events.message?.("info", text.replace(/\n$/, ""));
        break;
      case MsgCode.WARNING:
        req.events.message?.("warning", text.replace(/\n$/, ""));
        break;
      case MsgCode.ERROR_XFER:
        peerError = true;
        req.events.message?.("error", text.replace(/\n$/, ""));
        break;
      case MsgCode.ERROR:
      case MsgCode.ERROR_SOCKET:
      case MsgCode.ERROR_UTF8:
        peerError = true;
        req.events.message?.("error", text.replace(/\n$/, ""));
        break;
      case MsgCode.LOG:
        break;
      case MsgCode.IO_ERROR:
        if (payload.length === 4 && ctxBox.ctx) ctxBox.ctx.ioError |= Buffer.from(payload).readInt32LE(0);
        else if (payload.length === 4) earlyIoError |= Buffer.from(payload).readInt32LE(0);
        break;
      case MsgCode.ERROR_EXIT:
        if (payload.length === 4) peerExit = Buffer.from(payload).readInt32LE(0);
        break;
      case MsgCode.NO_SEND:
        // sender.c send_files: the sender could not open the file; nothing will arrive for it.
        if (payload.length === 4) noSend(Buffer.from(payload).readInt32LE(0));
        break;
      case MsgCode.NOOP:
      case MsgCode.DATA:
        break;
      default:
        // REDO, STATS, SUCCESS, DELETED, NO_SEND are not sent to a client receiver.
        break;
    }
  });
  let earlyIoError = 0;
  let noSend: (ndx: number) => void = () => {};
  startMultiplex(conn, "client-receiver", protocol);

  // exclude.c send_filter_list: the receiver sends the rules meant for the sender.
  const rules = commandLineRules(opts, protocol);
  const filterList = encodeFilterList(rules, protocol, { role: "receiver", deleteMode: opts.delete, deleteExcluded: opts.deleteExcluded });
  if (filterList) conn.write(filterList);
  await conn.flush();

  // flist.c recv_file_list
  const flistCtx = {
    protocol,
    compatFlags: compat?.flags ?? 0,
    recursive: opts.recursive,
    preserveUid: opts.owner,
    preserveGid: opts.group,
    preserveLinks: opts.links,
    preserveDevices: opts.devices,
    preserveSpecials: opts.specials,
    preserveHardLinks: opts.hardLinks,
    alwaysChecksum: opts.checksum,
    checksumLength: checksumDigestLength(sums.file),
    numericIds: opts.numericIds,
    relativePaths: opts.relative,
    ndxStart: 0,
  };
  const decoder = new FileListDecoder(flistCtx);
  decoder.beginList(0, "");
  const tFlist = Date.now();
  let ioError = earlyIoError;
  const wire: FileEntry[] = [];
  const flistStart = conn.in.consumed;
  for (;;) {
    const e = await conn.in.read((c) => decoder.decode(c));
    if ((e as FlistEnd).end) {
      ioError |= (e as FlistEnd).ioError;
      break;
    }
    wire.push(e as FileEntry);
    if (wire.length > 50_000_000) throw new ProtocolError("file list too long");
  }
  const idLists = await conn.in.read((c) =>
    decodeIdLists(c, {
      protocol,
      preserveUid: opts.owner,
      preserveGid: opts.group,
      numericIds: opts.numericIds,
      incRecurse: false,
      id0Names: compat?.id0Names ?? false,
    }),
  );
  applyIdNames(wire, idLists);
  if (protocol < 30) ioError |= await conn.in.read((c) => c.int32());
  stats.flistSize = conn.in.consumed - flistStart;
  const files = sortAndCleanFileList(wire, protocol, { stripRoot: opts.relative }).files;
  if (req.requested) checkRequestedNames(files.flatMap((f) => (f ? [f.name] : [])), req.requested, opts.relative);
  stats.flistXferTime = Date.now() - tFlist;
  req.events.fileList?.(files.length);
  for (const f of files) {
    if (!f) continue;
    stats.numFiles++;
    if (isDir(f.mode)) stats.numDirs++;
    else if ((f.mode & 0o170000) === 0o100000) {
      stats.numRegFiles++;
      stats.totalSize += f.size;
    } else if ((f.mode & 0o170000) === 0o120000) stats.numSymlinks++;
    else if ((f.mode & 0o170000) === 0o020000 || (f.mode & 0o170000) === 0o060000) stats.numDevices++;
    else stats.numSpecials++;
  }

  const { root, localName, created: rootCreated } = await localDestination(req.destination, files, opts, req.events);
  // The receiver's own view of the rules: they protect names from --delete, and no name the
  // sender was told to exclude may arrive (flist.c "rejecting excluded file-list name").
  const filters = treeFilterList(rules, "receiver", root, opts, protocol);
  if (filters && !filters.trustSender && !req.trustSender) {
    for (const f of files) {
      if (f && f.name !== "." && filters.checkSentRules(f.name, isDir(f.mode)) === "exclude") {
        throw new ProtocolError(`rejecting excluded file-list name: ${f.name}`, 4);
      }
    }
  }
  const ctx: ReceiveContext = {
    conn,
    protocol,
    opts,
    seed,
    xferSum: sums.xfer,
    fileSum: sums.file,
    xferSumLen,
    compression,
    symlinkTimes: true,
    files,
    rootCreated,
    dest: new Destination(root),
    localName,
    events: req.events,
    stats,
    owners: new OwnerMap(opts.numericIds),
    ndxIn: new NdxReader(protocol),
    ndxOut: new NdxWriter(protocol),
    signal: req.signal,
    dfltPerms: 0o777 & ~currentUmask(),
    ioError,
    partial: false,
    temps: new Set(),
    hlinkLeader: opts.hardLinks ? hardLinkLeaders(files, protocol) : new Map(),
    sentHeads: new Map(),
    filters,
    handoff: req.handoff,
  };
  ctxBox.ctx = ctx;

  // The generator and receiver talk through these (rsync's MSG_DONE / MSG_REDO / MSG_SUCCESS).
  const phaseWaiters = new Map<number, { p: Promise<void>; resolve: () => void }>();
  const phasesDone = new Set<number>();
  const phaseSlot = (n: number) => {
    let s = phaseWaiters.get(n);
    if (!s) {
      let resolve!: () => void;
      const p = new Promise<void>((r) => (resolve = r));
      s = { p, resolve };
      phaseWaiters.set(n, s);
    }
    return s;
  };
  const redoQueue: number[] = [];
  let redoWake: (() => void) | null = null;
  const done = new Map<number, { p: Promise<boolean>; resolve: (ok: boolean) => void }>();
  const doneSlot = (ndx: number) => {
    let s = done.get(ndx);
    if (!s) {
      let resolve!: (ok: boolean) => void;
      const p = new Promise<boolean>((r) => (resolve = r));
      s = { p, resolve };
      done.set(ndx, s);
    }
    return s;
  };
  const waits: GeneratorWaits = {
    phase: (n) => phaseSlot(n).p,
    phaseDone: (n) => phasesDone.has(n),
    takeRedo: () => redoQueue.shift(),
    redoOrPhase: (n) =>
      new Promise<void>((resolve) => {
        redoWake = resolve;
        void phaseSlot(n).p.then(resolve);
      }),
    fileDone: (ndx) => doneSlot(ndx).p,
  };
  // Whoever waits for a file the sender will not send (a hard-link leader) stops waiting.
  noSend = (ndx) => {
    if (ndx >= 0 && ndx < files.length) doneSlot(ndx).resolve(false);
  };
  const generator = new Generator(ctx, waits);

  const abort = () => {
    conn.fail(new AbortedError());
  };
  req.signal?.addEventListener("abort", abort, { once: true });
  try {
    const recvP = runReceiver(ctx, {
      phaseDone: (n) => {
        phasesDone.add(n);
        phaseSlot(n).resolve();
      },
      redo: (ndx) => {
        redoQueue.push(ndx);
        const w = redoWake;
        redoWake = null;
        w?.();
      },
      fileDone: (ndx, ok) => doneSlot(ndx).resolve(ok),
    });
    // If the receiver fails, the generator must not wait for it forever.
    const recvFail = recvP.then(
      () => undefined,
      (e) => {
        for (let n = 1; n <= 3; n++) {
          phasesDone.add(n);
          phaseSlot(n).resolve();
        }
        throw e;
      },
    );
    const genP = generator.run();
    const [peer] = await Promise.all([recvP, genP, recvFail]);
    stats.peerRead = peer.peerRead;
    stats.peerWritten = peer.peerWritten;
    stats.flistBuildTime = peer.flistBuildTime;
    if (peer.flistXferTime) stats.flistXferTime = peer.flistXferTime;
  } finally {
    req.signal?.removeEventListener("abort", abort);
    for (const t of ctx.temps) await ctx.dest.unlinkQuiet(t);
  }
  stats.totalRead = conn.bytesIn;
  stats.totalWritten = conn.bytesOut;
  stats.elapsedMs = Date.now() - started;
  await conn.end();
  req.events.stats?.(stats);

  let exitCode = 0;
  if (ctx.partial || peerError || ctx.ioError & IOERR_GENERAL) exitCode = 23;
  else if (ctx.ioError & IOERR_VANISHED) exitCode = 24;
  if (peerExit !== undefined && peerExit !== 0 && exitCode === 0) exitCode = peerExit;
  return { exitCode, stats };
}

/**
 * main.c get_local_name: where the received names go. An existing directory is the root; a
 * single non-directory may be written under the destination's own name; otherwise the
 * destination directory is created.
 */
async function localDestination(
  destination: string,
  files: (FileEntry | null)[],
  opts: TransferOptions,
  events: SyncEvents,
): Promise<{ root: string; localName: string | undefined; created: boolean }> {
  const dest = path.resolve(destination);
  const trailingSlash = /[/\\]$/.test(destination);
  let st: import("node:fs").Stats | null = null;
  try {
    st = await fsp.stat(dest);
  } catch {
    st = null;
  }
  if (st) {
    if (st.isDirectory()) return { root: dest, localName: undefined, created: false };
    if (files.length > 1) {
      throw new DestinationSelectError("ERROR: destination must be a directory when copying more than 1 file");
    }
    return { root: path.dirname(dest), localName: path.basename(dest), created: false };
  }
  if (files.length === 1 && files[0] && !isDir(files[0].mode) && !trailingSlash) {
    return { root: path.dirname(dest), localName: path.basename(dest), created: false };
  }
  if (!opts.dryRun) {
    await fsp.mkdir(dest, { recursive: false }).catch(async (e: NodeJS.ErrnoException) => {
      if (e.code === "ENOENT") await fsp.mkdir(dest, { recursive: true });
      else throw e;
    });
  }
  // (the name as given, its final slash lopped off)
  if (opts.verbose > 0 || opts.itemize) events.message?.("info", `created directory ${destination.replace(/(.)\/+$/, "$1")}`);
  return { root: dest, localName: undefined, created: true };
}

/** hlink.c match_hard_links: each hard-linked entry's group leader (the first after sorting). */
function hardLinkLeaders(files: (FileEntry | null)[], protocol: number): Map<number, number> {
  const infos = new HardLinkMatcher(protocol, false).match(files, 0);
  const m = new Map<number, number>();
  infos.forEach((info, ndx) => {
    if (info) m.set(ndx, info.leader);
  });
  return m;
}

export class DestinationSelectError extends Error {
  readonly exitCode = 3;
}
