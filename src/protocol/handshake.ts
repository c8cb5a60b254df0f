// Connection set-up after the remote command starts (compat.c setup_protocol):
// version exchange, compat flags (protocol >= 30), checksum/compression negotiation
// (negotiate_the_strings), checksum seed.
import { Cursor, ProtocolError, Writer } from "./wire.js";
import { MAX_PROTOCOL, MIN_PROTOCOL } from "./options.js";

// compat.c CF_* bits, sent by the server as a varint (a byte before 'v' existed).
export const CF_INC_RECURSE = 1 << 0;
export const CF_SYMLINK_TIMES = 1 << 1;
export const CF_SYMLINK_ICONV = 1 << 2;
export const CF_SAFE_FLIST = 1 << 3;
export const CF_AVOID_XATTR_OPTIM = 1 << 4;
export const CF_CHKSUM_SEED_FIX = 1 << 5;
export const CF_INPLACE_PARTIAL_DIR = 1 << 6;
export const CF_VARINT_FLIST_FLAGS = 1 << 7;
export const CF_ID0_NAMES = 1 << 8;

/** rsync.h MAX_NSTR_STRLEN: the longest negotiation string accepted. */
export const MAX_NSTR_STRLEN = 256;

export function encodeVersion(protocol: number): Uint8Array {
  return new Writer(4).int32(protocol).take();
}

/** The peer's protocol, checked against what rsync accepts at all (compat.c MIN/MAX). */
export function decodeRemoteVersion(c: Cursor): number {
  const v = c.int32();
  if (v < 20 || v > 40) {
    throw new ProtocolError("protocol version mismatch -- is your shell clean?", 2);
  }
  return v;
}

export function agreeProtocol(ours: number, remote: number): number {
  const p = Math.min(ours, remote);
  if (p < MIN_PROTOCOL) {
    throw new ProtocolError(`remote rsync speaks protocol ${remote}; krsync needs at least ${MIN_PROTOCOL}`, 2);
  }
  return Math.min(p, MAX_PROTOCOL);
}

/** io.c write_vstring: 1-byte length, or 0x80|hi then lo for lengths above 0x7f. */
export function encodeVstring(s: string, out: Writer): void {
  const b = new TextEncoder().encode(s);
  if (b.length > 0x7fff) throw new RangeError("vstring too long");
  if (b.length > 0x7f) out.byte((b.length >> 8) | 0x80);
  out.byte(b.length & 0xff);
  out.bytes(b);
}

/** io.c read_vstring, bounded by MAX_NSTR_STRLEN. */
export function decodeVstring(c: Cursor, max = MAX_NSTR_STRLEN): string {
  let len = c.byte();
  if (len & 0x80) len = (len & 0x7f) * 0x100 + c.byte();
  if (len >= max) throw new ProtocolError(`over-long vstring received (${len} > ${max - 1})`);
  return new TextDecoder().decode(c.bytes(len));
}

/**
 * compat.c parse_negotiate_str: of the names the peer offered, pick the one ranked best in
 * our own list (both sides apply the same rule to their own list, so honest peers that list
 * in rsync's strongest-first order agree). Undefined when nothing is shared.
 */
export function chooseNegotiated(ourList: readonly string[], peerList: string): string | undefined {
  let best: string | undefined;
  let bestRank = Infinity;
  for (const tok of peerList.split(" ")) {
    if (!tok) continue;
    const rank = ourList.indexOf(tok);
    if (rank >= 0 && rank < bestRank) {
      best = tok;
      bestRank = rank;
      if (rank === 0) break;
    }
  }
  return best;
}

export interface CompatInfo {
  flags: number;
  incRecurse: boolean;
  varintFlistFlags: boolean;
  safeFlist: boolean;
  checksumSeedFix: boolean;
  id0Names: boolean;
  symlinkTimes: boolean;
}

export function compatInfo(protocol: number, flags: number): CompatInfo {
  return {
    flags,
    incRecurse: (flags & CF_INC_RECURSE) !== 0,
    varintFlistFlags: (flags & CF_VARINT_FLIST_FLAGS) !== 0,
    safeFlist: (flags & CF_SAFE_FLIST) !== 0 || protocol >= 31,
    checksumSeedFix: (flags & CF_CHKSUM_SEED_FIX) !== 0,
    id0Names: (flags & CF_ID0_NAMES) !== 0,
    symlinkTimes: (flags & CF_SYMLINK_TIMES) !== 0,
  };
}
