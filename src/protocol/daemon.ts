// The rsync daemon's text exchange before the binary protocol (clientserver.c
// exchange_protocols / start_inband_exchange, authenticate.c auth_client): the greeting lines,
// the protocol they agree on, the daemon's status lines, the challenge response, and how the
// server arguments are sent. Pure: no I/O, no roles.
import { chooseNegotiated } from "./handshake.js";
import { RERR_STARTCLIENT } from "./errcode.js";

/** The daemon's TCP port when none is given (rsync.h RSYNC_PORT). */
export const RSYNC_PORT = 873;

/**
 * The longest line accepted from a daemon, '\n' included. rsync reads these lines into a
 * BIGPATHBUFLEN buffer; a daemon is untrusted, so krsync bounds each line to 4 KiB.
 */
export const MAX_DAEMON_LINE = 4096;

/** How many MOTD / module-list lines a daemon may send before its status line. */
export const MAX_MOTD_LINES = 4096;

/** rsync's subprotocol for a released protocol (rsync.h SUBPROTOCOL_VERSION): krsync's too. */
export const OUR_SUBPROTOCOL = 0;

/** checksum.c valid_auth_checksums_items: the daemon-auth digests, strongest first. */
export const AUTH_DIGESTS = ["sha512", "sha256", "sha1", "md5", "md4"] as const;
export type AuthDigest = (typeof AUTH_DIGESTS)[number];

/** A failure of the text exchange; rsync's start_inband_exchange returns -1, so the client
 *  exits with RERR_STARTCLIENT unless said otherwise. `bare`: print the text as it is (an
 *  @ERROR line from the daemon), not after "krsync: ". */
export class DaemonError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = RERR_STARTCLIENT,
    readonly bare = false,
  ) {
    super(message);
    this.name = "DaemonError";
  }
}

/** compat.c output_daemon_greeting: "@RSYNCD: <protocol>.<sub> <auth digest list>\n". */
export function daemonGreeting(protocol: number): string {
  return `@RSYNCD: ${protocol}.${OUR_SUBPROTOCOL} ${AUTH_DIGESTS.join(" ")}\n`;
}

export interface DaemonGreeting {
  protocol: number;
  sub: number;
  /** The daemon's auth digest names (everything after the version), if it sent any. */
  digests: string | undefined;
}

/** clientserver.c exchange_protocols, the client's reading of the daemon's greeting line. */
export function parseDaemonGreeting(line: string): DaemonGreeting {
  // sscanf("@RSYNCD: %d.%d"): the version must be there; the subprotocol may be missing.
  const m = /^@RSYNCD: *([+-]?\d+)(?:\.([+-]?\d+))?/.exec(line);
  if (!m) throw new DaemonError(`server sent "${line}" rather than greeting`);
  const protocol = Number(m[1]);
  let sub = m[2] === undefined ? -1 : Number(m[2]);
  if (sub < 0) {
    if (protocol >= 30) throw new DaemonError(`the server omitted the subprotocol value: ${line}`);
    sub = 0;
  }
  // The digest list starts after the first space past "@RSYNCD: " (strchr(buf + 9, ' ')).
  const space = line.indexOf(" ", 9);
  const digests = space < 0 ? undefined : line.slice(space + 1);
  if (digests === undefined && protocol > 31) throw new DaemonError(`the server omitted the digest name list: ${line}`);
  return { protocol, sub, digests };
}

/** clientserver.c exchange_protocols: the protocol spoken, from ours and the daemon's. */
export function agreeDaemonProtocol(ours: number, remote: number, remoteSub: number, ourSub = OUR_SUBPROTOCOL): number {
  if (ours > remote) return remoteSub ? remote - 1 : remote;
  if (ours === remote && remoteSub !== ourSub) return ours - 1;
  return ours;
}

/** What one line from the daemon after the module request means (start_inband_exchange). */
export type DaemonLine =
  | { kind: "authreqd"; challenge: string }
  | { kind: "ok" }
  | { kind: "exit" }
  | { kind: "error"; text: string }
  | { kind: "motd"; text: string };

export function classifyDaemonLine(line: string): DaemonLine {
  if (line.startsWith("@RSYNCD: AUTHREQD ")) return { kind: "authreqd", challenge: line.slice(18) };
  if (line === "@RSYNCD: OK") return { kind: "ok" };
  if (line === "@RSYNCD: EXIT") return { kind: "exit" };
  if (line.startsWith("@ERROR")) return { kind: "error", text: line };
  // A MOTD line or a module listing: rsync cannot tell them apart either.
  return { kind: "motd", text: line };
}

/**
 * io.c read_line_old, for bytes already split at '\n': '\r' is dropped; a NUL byte ends the
 * exchange (read_line_old fails on it). Returns null for a line with a NUL.
 */
export function decodeDaemonLine(bytes: Uint8Array): string | null {
  if (bytes.includes(0)) return null;
  return Buffer.from(bytes.filter((b) => b !== 0x0d)).toString("latin1");
}

/**
 * compat.c negotiate_daemon_auth as a client: the daemon's list against ours (the same rule as
 * the other negotiated strings). A daemon that sent no list (before rsync 3.2) means md5 from
 * protocol 30 and the old seeded md4 before, which krsync does not compute.
 */
export function chooseAuthDigest(daemonList: string | undefined, protocol: number): AuthDigest {
  if (daemonList === undefined) {
    if (protocol >= 30) return "md5";
    throw new DaemonError("the daemon offers only the pre-3.2 md4 password digest, which krsync does not support", 4);
  }
  const name = chooseNegotiated(AUTH_DIGESTS, daemonList);
  if (!name) throw new DaemonError(`Failed to negotiate a daemon auth checksum choice (daemon list: ${daemonList})`, 4);
  return name as AuthDigest;
}

/** authenticate.c base64_encode without padding. */
export function base64NoPad(data: Uint8Array): string {
  return Buffer.from(data).toString("base64").replace(/=+$/, "");
}

/** authenticate.c generate_hash: what is hashed, the password then the challenge (unseeded). */
export function authHashInput(password: string, challenge: string): Uint8Array {
  return Buffer.concat([Buffer.from(password, "utf8"), Buffer.from(challenge, "latin1")]);
}

/**
 * authenticate.c auth_client: "USER base64(H(password ‖ challenge))\n", H the negotiated digest
 * (`digest` is H of authHashInput). An empty user is sent as "nobody".
 */
export function authResponse(user: string, digest: Uint8Array): string {
  return `${user || "nobody"} ${base64NoPad(digest)}\n`;
}

/** authenticate.c getpassf: the password is the file's first line (up to '\n' or '\r'). */
export function passwordFromFile(content: Uint8Array): string | undefined {
  const text = Buffer.from(content.subarray(0, 511)).toString("utf8");
  const first = text.split(/[\r\n]/).find((s) => s !== "");
  return first;
}

/**
 * start_inband_exchange: the remote paths as the daemon is sent them. A bare module name goes
 * as "MODULE/"; a leading "-" gets "./"; a " MODULE/" inside a path is written "[ ]MODULE/" so
 * the daemon cannot split the arg there.
 */
export function daemonPathArgs(module: string, args: readonly string[]): string[] {
  const split = ` ${module}/`;
  return args.map((arg) => {
    if (arg === module) return `${module}/`;
    let out = arg.startsWith("-") ? `./${arg}` : arg;
    if (module !== "" && out.includes(split)) out = out.split(split).join(`[ ]${module}/`);
    return out;
  });
}

/** start_inband_exchange: the request for a module, "" asks for the module list. */
export function moduleRequest(module: string): string {
  return `${module}\n`;
}

/**
 * start_inband_exchange: the server args after "@RSYNCD: OK" — NUL-terminated words ending
 * with an empty one from protocol 30 (rl_nulls), newline-terminated before.
 */
export function encodeDaemonArgs(args: readonly string[], protocol: number): Uint8Array {
  const end = protocol >= 30 ? "\0" : "\n";
  return Buffer.from(args.map((a) => a + end).join("") + end, "utf8");
}
