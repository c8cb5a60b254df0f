// Test-only: read the file lists out of a native rsync batch file (--write-batch=FILE).
//
// Batch layout (batch.c write_stream_flags, io.c start_write_batch): int32 stream flags (bit i =
// flag_ptr[i]: 0 -r, 1 -o, 2 -g, 3 -l, 4 -D (devices), 5 -H, 6 -c, 7 -d (29+), 8 -z (29+), 9
// iconv, 10 -A, 11 -X, 12 --inplace, 13 --append, 14 --append-verify (30+)), int32 protocol,
// varint compat_flags (protocol >= 30), int32 checksum seed, then a verbatim copy of the data the
// sender wrote (when the sender writes the batch, as in a local copy) -- unmultiplexed, starting
// with the file list. With --write-batch rsync negotiates md5 (30+) / md4 as the file sum, so
// -c sums are 16 bytes.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { isDir, type FileEntry } from "../../src/protocol/fileentry.js";
import { FileListDecoder, flistIncRecurse, CF_ID0_NAMES, type FlistContext } from "../../src/protocol/flist.js";
import { sortFileList } from "../../src/protocol/flist-sort.js";
import { decodeIdLists, type IdLists } from "../../src/protocol/idlist.js";
import { NDX_DONE, NDX_FLIST_EOF, NDX_FLIST_OFFSET, NdxReader } from "../../src/protocol/ndx.js";
import { Cursor } from "../../src/protocol/wire.js";
import { rsyncPath } from "./env.js";

export const BATCH_RECURSE = 1 << 0;
export const BATCH_UID = 1 << 1;
export const BATCH_GID = 1 << 2;
export const BATCH_LINKS = 1 << 3;
export const BATCH_DEVICES = 1 << 4;
export const BATCH_HLINKS = 1 << 5;
export const BATCH_CHECKSUM = 1 << 6;

export interface BatchHeader {
  streamFlags: number;
  protocol: number;
  compatFlags: number;
  checksumSeed: number;
}

export interface BatchList {
  ndxStart: number;
  /** dir_ndx this sub-list belongs to (-1 for the first list) and that dir's name. */
  dirNdx: number;
  parentDir: string;
  /** Entries in wire order. */
  wire: FileEntry[];
  ioError: number;
  /** Byte range of the list in the batch, end marker included. */
  start: number;
  end: number;
}

export interface BatchFileLists {
  header: BatchHeader;
  ctx: FlistContext;
  lists: BatchList[];
  /** Without inc-recursion: the id lists after the file list, and (protocol < 30) io_error. */
  idLists?: IdLists;
  /** Byte range of the id lists. */
  idListRange?: [number, number];
  ioErrorWord?: number;
  decoder: FileListDecoder;
  /** Offset in the batch where the parse stopped. */
  end: number;
}

export function readBatchHeader(c: Cursor): BatchHeader {
  const streamFlags = c.int32();
  const protocol = c.int32();
  const compatFlags = protocol >= 30 ? c.varint() : 0;
  const checksumSeed = c.int32();
  return { streamFlags, protocol, compatFlags, checksumSeed };
}

export interface BatchReadOptions {
  /** Not in the stream flags: --specials (on with -a / -D). */
  preserveSpecials: boolean;
  numericIds?: boolean;
  relativePaths?: boolean;
}

/** Parse every file list in the batch (stops at NDX_FLIST_EOF, or after the one list). */
export function readBatchFileLists(buf: Uint8Array, opts: BatchReadOptions): BatchFileLists {
  const c = new Cursor(buf);
  const header = readBatchHeader(c);
  const f = header.streamFlags;
  const p = header.protocol;
  const ctx: FlistContext = {
    protocol: p,
    compatFlags: header.compatFlags,
    recursive: (f & BATCH_RECURSE) !== 0,
    preserveUid: (f & BATCH_UID) !== 0,
    preserveGid: (f & BATCH_GID) !== 0,
    preserveLinks: (f & BATCH_LINKS) !== 0,
    preserveDevices: (f & BATCH_DEVICES) !== 0,
    preserveSpecials: opts.preserveSpecials,
    preserveHardLinks: (f & BATCH_HLINKS) !== 0,
    alwaysChecksum: (f & BATCH_CHECKSUM) !== 0,
    checksumLength: 16,
    numericIds: opts.numericIds ?? false,
    relativePaths: opts.relativePaths ?? false,
    ndxStart: flistIncRecurse({ protocol: p, compatFlags: header.compatFlags }) ? 1 : 0,
  };
  const inc = flistIncRecurse(ctx);
  const dec = new FileListDecoder(ctx);
  const lists: BatchList[] = [];
  const dirNames: string[] = []; // the receiver's dir_flist: each list's dirs, sorted
  const readList = (ndxStart: number, dirNdx: number, parentDir: string): void => {
    const wire: FileEntry[] = [];
    const start = c.pos;
    for (;;) {
      const r = dec.decode(c);
      if ("end" in r) {
        lists.push({ ndxStart, dirNdx, parentDir, wire, ioError: r.ioError, start, end: c.pos });
        break;
      }
      wire.push(r);
    }
    if (inc) {
      // flist.c recv_file_list: this list's dirs are appended to dir_flist and that segment sorted.
      const stripped = (n: string): string => (ctx.relativePaths ? n.replace(/^\/+/, "") || "." : n);
      for (const d of sortFileList(wire.filter((e) => isDir(e.mode)), p)) dirNames.push(stripped(d.name));
    }
  };

  readList(ctx.ndxStart, -1, "");
  let idLists: IdLists | undefined;
  let idListRange: [number, number] | undefined;
  let ioErrorWord: number | undefined;
  if (!inc) {
    const idStart = c.pos;
    idLists = decodeIdLists(c, {
      protocol: p,
      preserveUid: ctx.preserveUid,
      preserveGid: ctx.preserveGid,
      numericIds: ctx.numericIds === true,
      incRecurse: false,
      id0Names: p >= 30 && (header.compatFlags & CF_ID0_NAMES) !== 0,
    });
    idListRange = [idStart, c.pos];
    if (p < 30) ioErrorWord = c.int32();
  } else {
    const ndxr = new NdxReader(p);
    for (;;) {
      const ndx = ndxr.read(c);
      if (ndx === NDX_FLIST_EOF) break;
      if (ndx === NDX_DONE) continue;
      if (ndx > NDX_FLIST_OFFSET) {
        throw new Error(`batch: ndx ${ndx} at offset ${c.pos} (file data is not parsed by this helper)`);
      }
      const dirNdx = NDX_FLIST_OFFSET - ndx;
      const prev = lists[lists.length - 1]!;
      const start = prev.ndxStart + prev.wire.length + 1;
      const parent = dirNames[dirNdx];
      if (parent === undefined) throw new Error(`batch: dir_ndx ${dirNdx} unknown`);
      dec.beginList(start, parent);
      readList(start, dirNdx, parent);
    }
  }
  return { header, ctx, lists, idLists, idListRange, ioErrorWord, decoder: dec, end: c.pos };
}

/** Run native rsync with --write-batch (extra args first, then src and dst); returns the batch bytes. */
export function writeBatch(batchFile: string, args: string[], srcs: string[], dst: string): { batch: Uint8Array; output: string } {
  const output = execFileSync(rsyncPath, [...args, `--write-batch=${batchFile}`, ...srcs, dst], {
    stdio: ["ignore", "pipe", "pipe"],
    encoding: "utf8",
    maxBuffer: 64 << 20,
  });
  return { batch: new Uint8Array(readFileSync(batchFile)), output };
}

export interface DebugFlistLine {
  ndx: number;
  /** f_name plus '/' for dirs; "" for a cleared slot. */
  name: string;
  mode: number;
  len: number;
  flags: number;
}

/** The receiver's lists as rsync prints them with --debug=FLIST3 (flist.c output_flist), after sorting. */
export function parseDebugFlist(output: string): DebugFlistLine[] {
  const re = /\[[Rr]eceiver\] i=(\d+) (\d*) ([\s\S]*?) mode=0([0-7]+) len=([\d,]+)(?: uid=\d+)?(?: gid=\(?\d+\)?)? flags=([0-9a-f]+)\n/g;
  const out: DebugFlistLine[] = [];
  for (const m of output.matchAll(re)) {
    out.push({
      ndx: Number(m[1]),
      // rsync shows control characters as \#ooo
      name: m[3]!.replace(/\\#([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))),
      mode: parseInt(m[4]!, 8),
      len: Number(m[5]!.replace(/,/g, "")),
      flags: parseInt(m[6]!, 16),
    });
  }
  return out;
}
