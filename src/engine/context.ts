// State shared by the generator and the receiver of one transfer (the two halves of rsync's
// receiving side, which here run as two tasks in one process).
import type { ChecksumType } from "../delta/checksum.js";
import type { FileEntry } from "../protocol/fileentry.js";
import type { NdxReader, NdxWriter } from "../protocol/ndx.js";
import type { TransferOptions } from "../protocol/options.js";
import type { FilterList } from "../protocol/filter.js";
import type { SumHead } from "../protocol/sumhead.js";
import type { TokenCompression, TokenReader } from "../protocol/token.js";
import type { Connection } from "./connection.js";
import type { Destination } from "./destination.js";
import type { SourceHandoff } from "./handoff.js";
import type { SyncEvents, TransferStats } from "./events.js";
import type { OwnerMap } from "./owners.js";

// rsync.h IOERR_* bits of io_error (defined with the file list, which carries them).
export { IOERR_DEL_LIMIT, IOERR_GENERAL, IOERR_VANISHED } from "../protocol/flist.js";

export interface ReceiveContext {
  conn: Connection;
  protocol: number;
  opts: TransferOptions;
  seed: number;
  xferSum: ChecksumType;
  fileSum: ChecksumType;
  xferSumLen: number;
  compression: TokenCompression;
  symlinkTimes: boolean;
  /** The sorted file list; null where a duplicate was cleared (flist_sort_and_clean). */
  files: (FileEntry | null)[];
  dest: Destination;
  /** Single-file destination name (main.c get_local_name), replacing the entry's own name. */
  localName: string | undefined;
  events: SyncEvents;
  stats: TransferStats;
  owners: OwnerMap;
  ndxIn: NdxReader;
  ndxOut: NdxWriter;
  signal: AbortSignal | undefined;
  dfltPerms: number;
  /** io_error bits reported by the peer or found locally. */
  ioError: number;
  /** Errors that make the run a partial transfer (exit 23). */
  partial: boolean;
  /** Temp files in flight, removed on abort. */
  temps: Set<string>;
  /** Group leader ndx for hard-linked entries (from the file list). */
  hlinkLeader: Map<number, number>;
  /** The connection's token reader (token.c keeps its state across files). */
  tokenReader?: TokenReader;
  /** main.c get_local_name made the destination directory (its "." is itemized as created). */
  rootCreated: boolean;
  /** The receiver's filter rules (--delete protection), or null without rules. */
  filters: FilterList | null;
  /** The sum head the generator sent for each requested file: the sender must echo it. */
  sentHeads: Map<number, SumHead>;
  /** In-process local copy: source files the sender handed over instead of streaming them. */
  handoff?: SourceHandoff | undefined;
}

/** The destination name of entry ndx. */
export function destName(ctx: ReceiveContext, ndx: number): string {
  return ctx.localName ?? ctx.files[ndx]!.name;
}

export function reportError(ctx: ReceiveContext, text: string): void {
  ctx.partial = true;
  ctx.events.message?.("error", text);
}

export function throwIfAborted(ctx: ReceiveContext): void {
  if (ctx.signal?.aborted) throw new AbortedError();
}

export class AbortedError extends Error {
  readonly exitCode = 20;
  constructor() {
    super("received SIGINT, SIGTERM, or SIGHUP");
    this.name = "AbortedError";
  }
}
