// Connection set-up shared by every role (compat.c setup_protocol): the version exchange, the
// compat flags a server sends from protocol 30, negotiate_the_strings, the checksum seed the
// server picks, and which directions are multiplexed (main.c client_run / start_server).
import { checksumDigestLength, initChecksums, resolveChecksumChoice, CHECKSUM_NAMES, type ChecksumChoice } from "../delta/checksum.js";
import {
  agreeProtocol,
  chooseNegotiated,
  compatInfo,
  decodeRemoteVersion,
  decodeVstring,
  encodeVersion,
  encodeVstring,
  CF_AVOID_XATTR_OPTIM,
  CF_CHKSUM_SEED_FIX,
  CF_ID0_NAMES,
  CF_INPLACE_PARTIAL_DIR,
  CF_SAFE_FLIST,
  CF_SYMLINK_TIMES,
  CF_VARINT_FLIST_FLAGS,
  type CompatInfo,
} from "../protocol/handshake.js";
import { compressionEnabled, type TransferOptions } from "../protocol/options.js";
import { initCompressionLevel, type TokenCompression } from "../protocol/token.js";
import { availableCompressions, compressionUnavailable, COMPRESSION_NAMES } from "../protocol/token-libs.js";
import { RERR_UNSUPPORTED } from "../protocol/errcode.js";
import { ProtocolError, Writer } from "../protocol/wire.js";
import type { Connection } from "./connection.js";

/** Checksum names krsync offers (rsync's order, strongest first). */
export const SETUP_CHECKSUMS: readonly string[] = CHECKSUM_NAMES;

export interface SetupRequest {
  /** The protocol we announce. */
  protocol: number;
  opts: TransferOptions;
  /** The protocol already agreed in a daemon's text greeting (clientserver.c
   *  exchange_protocols): compat.c setup_protocol then skips the binary version exchange. */
  agreedProtocol?: number | undefined;
}

export interface ServerSetupRequest extends SetupRequest {
  /** The capability letters the client sent after "e." (options.c maybe_add_e_option). */
  clientInfo: string;
  /** Checksum seed to use (default: compat.c's time ^ pid << 6). */
  seed?: number;
}

export interface SetupResult {
  /** The protocol both sides speak. */
  protocol: number;
  /** compat_flags and what they mean (protocol >= 30), else null. */
  compat: CompatInfo | null;
  /** The file data's compression: negotiated or fixed, after token.c init_compression_level
   *  (zlib at --compress-level=0 is no compression). */
  compression: TokenCompression;
  seed: number;
  sums: ChecksumChoice;
  /** Digest length of the transfer checksum (xfer_sum_len). */
  xferSumLen: number;
}

/**
 * compat.c parse_compress_choice for a fixed --zc: refuse a choice this side cannot use (its
 * library is missing). Nothing is loaded unless compression is on.
 */
export function checkCompressChoice(opts: TransferOptions): void {
  const choice = opts.compressChoice;
  if (!compressionEnabled(opts) || choice === undefined || choice === "none") return;
  if (!(COMPRESSION_NAMES as readonly string[]).includes(choice)) {
    throw new ProtocolError(`unknown compress name: ${choice}`, RERR_UNSUPPORTED);
  }
  const why = compressionUnavailable(choice as TokenCompression);
  if (why) throw new ProtocolError(`--compress-choice=${choice} cannot be used: ${why}`, RERR_UNSUPPORTED);
}

/** Each side writes its protocol, reads the peer's; the lower one is spoken. */
async function exchangeVersions(conn: Connection, ours: number): Promise<number> {
  conn.write(encodeVersion(ours));
  await conn.flush();
  // While the peer answers, the hasher a modern peer is most likely to agree on loads; the
  // one agreed on (finish) is loaded before the setup returns.
  const [, theirs] = await Promise.all([initChecksums(["xxh128"]), conn.in.read(decodeRemoteVersion)]);
  return agreeProtocol(ours, theirs);
}

/** compat.c setup_protocol as a client: version, compat flags, negotiation, seed. */
export async function clientSetup(conn: Connection, req: SetupRequest): Promise<SetupResult> {
  const { opts } = req;
  let protocol: number;
  if (req.agreedProtocol !== undefined) {
    protocol = agreeProtocol(req.agreedProtocol, req.agreedProtocol);
  } else protocol = await exchangeVersions(conn, req.protocol);
  let compat: CompatInfo | null = null;
  if (protocol >= 30) compat = compatInfo(protocol, await conn.in.read((c) => c.varint()));
  const neg = await negotiate(conn, req, compat?.varintFlistFlags ?? false);
  const seed = await conn.in.read((c) => c.int32());
  return await finish(protocol, compat, neg, seed, opts);
}

/** compat.c setup_protocol as a server: the client's capabilities decide the compat flags. */
export async function serverSetup(conn: Connection, req: ServerSetupRequest): Promise<SetupResult> {
  const { opts } = req;
  const protocol = await exchangeVersions(conn, req.protocol);
  let compat: CompatInfo | null = null;
  if (protocol >= 30) {
    const has = (ch: string) => req.clientInfo.includes(ch);
    // No inc-recursion is offered; symlink times can be set here.
    let flags = CF_SYMLINK_TIMES;
    if (has("f")) flags |= CF_SAFE_FLIST;
    if (has("x")) flags |= CF_AVOID_XATTR_OPTIM;
    if (has("C")) flags |= CF_CHKSUM_SEED_FIX;
    if (has("I")) flags |= CF_INPLACE_PARTIAL_DIR;
    if (has("u")) flags |= CF_ID0_NAMES;
    if (has("v")) flags |= CF_VARINT_FLIST_FLAGS;
    conn.write(new Writer(8).varint(flags).take());
    compat = compatInfo(protocol, flags);
  }
  const neg = await negotiate(conn, req, compat?.varintFlistFlags ?? false);
  const seed = (req.seed ?? (Math.floor(Date.now() / 1000) ^ (process.pid << 6))) | 0;
  conn.write(new Writer(4).int32(seed).take());
  await conn.flush();
  return await finish(protocol, compat, neg, seed, opts);
}

interface Negotiated {
  checksumName: string | undefined;
  compression: TokenCompression;
}

/** compat.c negotiate_the_strings: both sides send their lists, then read the peer's. */
async function negotiate(conn: Connection, req: SetupRequest, negotiated: boolean): Promise<Negotiated> {
  const { opts } = req;
  let checksumName: string | undefined;
  let compression: TokenCompression = "none";
  if (!negotiated) return { checksumName, compression };
  const w = new Writer();
  const sendSums = !opts.checksumChoice;
  const sendZ = compressionEnabled(opts) && !opts.compressChoice;
  // Only what can be loaded here is offered: a missing library leaves its name out.
  const compressions = sendZ ? availableCompressions() : [];
  if (sendSums) encodeVstring(SETUP_CHECKSUMS.join(" "), w);
  if (sendZ) encodeVstring(compressions.join(" "), w);
  conn.write(w.take());
  await conn.flush();
  if (sendSums) {
    const list = await conn.in.read((c) => decodeVstring(c));
    checksumName = chooseNegotiated(SETUP_CHECKSUMS, list);
    if (!checksumName) throw new ProtocolError(`Failed to negotiate a checksum choice (peer list: ${list})`, 4);
  }
  if (sendZ) {
    const list = await conn.in.read((c) => decodeVstring(c));
    const z = chooseNegotiated(compressions, list);
    if (!z) throw new ProtocolError(`Failed to negotiate a compression choice (peer list: ${list})`, 4);
    compression = z as TokenCompression;
  }
  return { checksumName, compression };
}

/** The agreed choices, with the hashers they use loaded (each costs start-up time: only these). */
async function finish(
  protocol: number,
  compat: CompatInfo | null,
  neg: Negotiated,
  seed: number,
  opts: TransferOptions,
): Promise<SetupResult> {
  let { compression } = neg;
  if (compressionEnabled(opts) && compression === "none") {
    // A fixed --zc, or zlib when nothing was negotiated (before protocol 30).
    checkCompressChoice(opts);
    compression = (opts.compressChoice ?? "zlib") as TokenCompression;
  }
  compression = initCompressionLevel(compression, opts.compressLevel).compression;
  const sums = resolveChecksumChoice({
    protocol,
    negotiated: neg.checksumName,
    choice: opts.checksumChoice,
    properSeedOrder: compat?.checksumSeedFix ?? false,
  });
  await initChecksums([sums.xfer, sums.file]);
  return { protocol, compat, compression, seed, sums, xferSumLen: checksumDigestLength(sums.xfer) };
}

export type Role = "client-receiver" | "client-sender" | "server-sender" | "server-receiver";

/**
 * io.c multiplexing per role: a server's output is multiplexed (protocol >= 23, all we speak);
 * a client's from protocol 30; a client reads multiplexed input (no --files-from here); a
 * server reads it from 30 (need_messages_from_generator).
 */
export function startMultiplex(conn: Connection, role: Role, protocol: number): void {
  const server = role.startsWith("server");
  if (server || protocol >= 30) conn.startMultiplexOut();
  if (!server || protocol >= 30) conn.startMultiplexIn();
}
