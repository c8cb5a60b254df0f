// A local copy (no host on either side): the same two halves as a remote transfer, connected
// in-process by a pair of in-memory streams — krsync's client receiver (generator + receiver,
// runPull) on one end, krsync's sender playing the server sender on the other (main.c
// start_server → do_server_sender). No rsync binary is involved.
import { PassThrough } from "node:stream";
import { CLIENT_CAPABILITIES } from "../protocol/serverargs.js";
import { MAX_PROTOCOL, type TransferOptions } from "../protocol/options.js";
import { ProtocolError } from "../protocol/wire.js";
import { runPull, type PullResult } from "./client.js";
import { Connection, type ByteStream } from "./connection.js";
import { AbortedError } from "./context.js";
import { emptyStats, type SyncEvents, type TransferStats } from "./events.js";
import { receivedRules } from "./filters.js";
import { exitFor, sendList, senderMessages, watchTimeout, type PeerState } from "./push.js";
import { SourceHandoff } from "./handoff.js";
import { senderFor } from "./sender.js";
import { serverSetup, startMultiplex } from "./setup.js";

/** rsync.h MAXPATHLEN bound on one received filter rule (exclude.c recv_filter_list). */
const MAX_RULE = 4096;
/** In-memory pipe buffer per direction. */
const PIPE_BUFFER = 1 << 20;

export interface LocalRequest {
  opts: TransferOptions;
  sources: string[];
  destination: string;
  protocol?: number;
  events: SyncEvents;
  signal?: AbortSignal;
  timeoutSec?: number;
  cwd?: string;
  /** Where whole files pass from the sender to the receiver (default: a new SourceHandoff). */
  handoff?: SourceHandoff;
}

export interface ServerSenderRequest {
  opts: TransferOptions;
  sources: string[];
  protocol: number;
  /** The client's capability letters (what it would send after "e."). */
  clientInfo: string;
  events: SyncEvents;
  signal?: AbortSignal | undefined;
  timeoutSec?: number | undefined;
  cwd?: string | undefined;
  /** An in-process receiver takes whole files by hand (engine/handoff.ts). */
  handoff?: SourceHandoff | undefined;
}

export interface ServerSenderResult {
  exitCode: number;
  stats: TransferStats;
}

/** main.c start_server + do_server_sender over a ByteStream. */
export async function runServerSender(stream: ByteStream, req: ServerSenderRequest): Promise<ServerSenderResult> {
  const { opts } = req;
  const conn = new Connection(stream);
  const stop = watchTimeout(conn, req.timeoutSec, "sender");
  const abort = () => conn.fail(new AbortedError());
  req.signal?.addEventListener("abort", abort, { once: true });
  try {
    const stats = emptyStats();
    const setup = await serverSetup(conn, { protocol: req.protocol, opts, clientInfo: req.clientInfo });
    const { protocol } = setup;
    stats.protocol = protocol;
    stats.compression = setup.compression;
    const peer: PeerState = { error: false, exit: undefined, ioError: 0 };
    senderMessages(conn, req.events, peer);
    startMultiplex(conn, "server-sender", protocol);

    // exclude.c recv_filter_list: a server sender reads the client's rules and walks with them.
    const lines: Uint8Array[] = [];
    for (;;) {
      const len = await conn.in.read((c) => c.int32());
      if (len === 0) break;
      if (len < 0 || len >= MAX_RULE) throw new ProtocolError(`filter rule length ${len} out of range`);
      if (lines.length >= 100_000) throw new ProtocolError("too many filter rules");
      lines.push((await conn.in.readBytes(len)).slice());
    }
    const list = await sendList(conn, setup, { ...req, rules: receivedRules(lines, protocol) }, stats);
    // An empty list still runs the phases: krsync's client receiver goes through them.
    const sender = senderFor(conn, setup, list, {
      opts,
      events: req.events,
      stats,
      amServer: true,
      signal: req.signal,
      handoff: req.handoff,
    });
    await sender.run();
    await sender.finish();
    stats.totalRead = conn.bytesIn;
    stats.totalWritten = conn.bytesOut;
    await conn.end();
    return { exitCode: exitFor(sender.ctx.ioError, sender.ctx.xferError), stats };
  } finally {
    stop();
    req.signal?.removeEventListener("abort", abort);
  }
}

/** Two in-memory pipes as the two ends of one connection. */
export function streamPair(): { client: ByteStream; server: ByteStream; destroy: (e?: Error) => void } {
  const up = new PassThrough({ highWaterMark: PIPE_BUFFER }); // client -> server
  const down = new PassThrough({ highWaterMark: PIPE_BUFFER }); // server -> client
  return {
    client: { input: down, output: up },
    server: { input: up, output: down },
    destroy: (e) => {
      up.destroy(e);
      down.destroy(e);
    },
  };
}

/** rsync's local copy: whole files by default (options.c: whole_file for a local transfer). */
export async function runLocal(req: LocalRequest): Promise<PullResult> {
  // (generator.c do_generator: --append always takes the delta path)
  const opts: TransferOptions = { ...req.opts, wholeFile: req.opts.wholeFile ?? !req.opts.append };
  const protocol = req.protocol ?? opts.protocol ?? MAX_PROTOCOL;
  const pair = streamPair();
  // Both roles are here: whole files go from the sender's descriptor to the receiver's temp
  // file directly, not through the token stream.
  const handoff = req.handoff ?? new SourceHandoff();
  // The receiving side reports the items (as rsync's local copy shows them: ">f...").
  const senderEvents: SyncEvents = { ...req.events };
  delete senderEvents.item;
  delete senderEvents.fileList;
  delete senderEvents.stats;
  delete senderEvents.deleted;
  const serverP = runServerSender(pair.server, {
    opts,
    sources: req.sources,
    protocol,
    clientInfo: protocol >= 30 ? CLIENT_CAPABILITIES : "",
    events: senderEvents,
    signal: req.signal,
    timeoutSec: req.timeoutSec,
    cwd: req.cwd,
    handoff,
  });
  const clientP = runPull(pair.client, {
    opts,
    destination: req.destination,
    protocol,
    sentNegotiation: protocol >= 30,
    events: req.events,
    ...(req.signal ? { signal: req.signal } : {}),
    timeoutSec: req.timeoutSec ?? 0,
    handoff,
    trustSender: true,
  });
  // One side failing must not leave the other waiting for bytes that never come; the run ends
  // when both have (each removes its own temp files and descriptors on the way out).
  const failure: { failed: boolean; error?: unknown } = { failed: false };
  const watch = <T>(p: Promise<T>): Promise<T | null> =>
    p.catch((e: unknown) => {
      if (!failure.failed) Object.assign(failure, { failed: true, error: e });
      handoff.close();
      pair.destroy();
      return null;
    });
  const [server, client] = await Promise.all([watch(serverP), watch(clientP)]);
  handoff.close();
  if (failure.failed || !server || !client) throw failure.error;
  let exitCode = client.exitCode;
  if (server.exitCode !== 0 && (exitCode === 0 || (exitCode === 24 && server.exitCode === 23))) exitCode = server.exitCode;
  return { exitCode, stats: client.stats };
}
