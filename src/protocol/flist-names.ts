// File-list names: the checks a receiver applies to names from an untrusted sender
// (flist.c recv_file_entry: clean_fname(CFN_REFUSE_DOT_DOT_DIRS), leading '/' only with
// --relative, MAXPATHLEN), and UTF-8 conversion both ways.
import { RERR_UNSUPPORTED } from "./errcode.js";
import { ProtocolError } from "./wire.js";

/**
 * MAXPATHLEN as a Linux rsync has it (sys/param.h: PATH_MAX, 4096; rsync.h's 1024 is only a
 * fallback): a received name is at most MAXPATHLEN - 1 bytes, a link target too.
 */
export const MAXPATHLEN = 4096;

const utf8Fatal = new TextDecoder("utf-8", { fatal: true });
const utf8Lossy = new TextDecoder("utf-8");
const utf8Encoder = new TextEncoder();

export function encodeUtf8(s: string): Uint8Array {
  return utf8Encoder.encode(s);
}

/** For messages: a name's bytes shown readably even when they are not valid UTF-8. */
export function showName(bytes: Uint8Array): string {
  return JSON.stringify(utf8Lossy.decode(bytes));
}

/** Lossy decoding for user/group names (only ever compared with local names). */
export function decodeLossy(bytes: Uint8Array): string {
  return utf8Lossy.decode(bytes);
}

function unsafe(why: string, bytes: Uint8Array): ProtocolError {
  return new ProtocolError(`ABORTING due to unsafe pathname from sender (${why}): ${showName(bytes)}`, RERR_UNSUPPORTED);
}

/**
 * Validate a received name and decode it. Accepted: '/'-separated components that are not
 * empty, "." or ".."; the whole name "." (the transfer root); with `relativePaths` one leading
 * '/' (rsync -R of an absolute path: it is stripped after sorting), including "/.".
 */
export function checkReceivedName(bytes: Uint8Array, relativePaths: boolean): string {
  const n = bytes.length;
  if (n === 0) throw unsafe("empty name", bytes);
  if (n >= MAXPATHLEN) throw unsafe(`longer than ${MAXPATHLEN - 1} bytes`, bytes);
  let start = 0;
  if (bytes[0] === 0x2f) {
    if (!relativePaths) throw unsafe("absolute path", bytes);
    start = 1;
  }
  // The root alone: "." or, with -R, "/.".
  const rootOnly = n - start === 1 && bytes[start] === 0x2e;
  if (!rootOnly) {
    let compStart = start;
    for (let i = start; i <= n; i++) {
      const b = i < n ? bytes[i]! : 0x2f;
      if (b === 0) throw unsafe("NUL byte", bytes);
      if (b !== 0x2f) continue;
      const len = i - compStart;
      if (len === 0) throw unsafe("empty path component", bytes);
      if (bytes[compStart] === 0x2e && (len === 1 || (len === 2 && bytes[compStart + 1] === 0x2e))) {
        throw unsafe(len === 1 ? '"." component' : '".." component', bytes);
      }
      compStart = i + 1;
    }
  }
  try {
    return utf8Fatal.decode(bytes);
  } catch {
    throw new ProtocolError(
      `file list name is not valid UTF-8 (non-UTF-8 names are unsupported): ${showName(bytes)}`,
      RERR_UNSUPPORTED,
    );
  }
}
