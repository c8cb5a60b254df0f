// rsync's exit codes (errcode.h RERR_*) and the words log.c rerr_names gives them.

export const RERR_OK = 0;
export const RERR_SYNTAX = 1; // syntax or usage error
export const RERR_PROTOCOL = 2; // protocol incompatibility
export const RERR_FILESELECT = 3; // errors selecting input/output files, dirs
export const RERR_UNSUPPORTED = 4; // requested action not supported
export const RERR_STARTCLIENT = 5; // error starting client-server protocol
export const RERR_SOCKETIO = 10; // error in socket IO
export const RERR_FILEIO = 11; // error in file IO
export const RERR_STREAMIO = 12; // error in rsync protocol data stream
export const RERR_MESSAGEIO = 13; // errors with program diagnostics
export const RERR_IPC = 14; // error in IPC code
export const RERR_CRASHED = 15; // sibling crashed
export const RERR_TERMINATED = 16; // sibling terminated abnormally
export const RERR_SIGNAL1 = 19; // status returned when sent SIGUSR1
export const RERR_SIGNAL = 20; // status returned when sent SIGINT, SIGTERM, SIGHUP
export const RERR_WAITCHILD = 21; // some error returned by waitpid()
export const RERR_MALLOC = 22; // error allocating core memory buffers
export const RERR_PARTIAL = 23; // partial transfer
export const RERR_VANISHED = 24; // file(s) vanished on sender side
export const RERR_DEL_LIMIT = 25; // skipped some deletes due to --max-delete
export const RERR_TIMEOUT = 30; // timeout in data send/receive
export const RERR_CONTIMEOUT = 35; // timeout waiting for daemon connection
export const RERR_CMD_FAILED = 124; // remote shell exited 255
export const RERR_CMD_KILLED = 125; // remote shell killed by a signal
export const RERR_CMD_RUN = 126; // remote command could not be run
export const RERR_CMD_NOTFOUND = 127; // remote command not found

// log.c rerr_names
const RERR_NAMES: ReadonlyMap<number, string> = new Map([
  [RERR_SYNTAX, "syntax or usage error"],
  [RERR_PROTOCOL, "protocol incompatibility"],
  [RERR_FILESELECT, "errors selecting input/output files, dirs"],
  [RERR_UNSUPPORTED, "requested action not supported"],
  [RERR_STARTCLIENT, "error starting client-server protocol"],
  [RERR_SOCKETIO, "error in socket IO"],
  [RERR_FILEIO, "error in file IO"],
  [RERR_STREAMIO, "error in rsync protocol data stream"],
  [RERR_MESSAGEIO, "errors with program diagnostics"],
  [RERR_IPC, "error in IPC code"],
  [RERR_CRASHED, "sibling process crashed"],
  [RERR_TERMINATED, "sibling process terminated abnormally"],
  [RERR_SIGNAL1, "received SIGUSR1"],
  [RERR_SIGNAL, "received SIGINT, SIGTERM, or SIGHUP"],
  [RERR_WAITCHILD, "waitpid() failed"],
  [RERR_MALLOC, "error allocating core memory buffers"],
  [RERR_PARTIAL, "some files/attrs were not transferred (see previous errors)"],
  [RERR_VANISHED, "some files vanished before they could be transferred"],
  [RERR_DEL_LIMIT, "the --max-delete limit stopped deletions"],
  [RERR_TIMEOUT, "timeout in data send/receive"],
  [RERR_CONTIMEOUT, "timeout waiting for daemon connection"],
  [RERR_CMD_FAILED, "remote shell failed"],
  [RERR_CMD_KILLED, "remote shell killed"],
  [RERR_CMD_RUN, "remote command could not be run"],
  [RERR_CMD_NOTFOUND, "remote command not found"],
]);

/** log.c rerr_name: the message for an exit code; log_exit falls back to "unexplained error". */
export function rerrName(code: number): string {
  return RERR_NAMES.get(code) ?? "unexplained error";
}

/**
 * The closing line rsync's log_exit prints for a non-zero exit, in krsync's spelling:
 * `krsync error: <message> (code N)` (rsync adds ` at file.c(line) [role=version]`).
 * RERR_VANISHED is only a warning in rsync, so it reads `krsync warning: ...`.
 * Returns "" for code 0 (log_exit prints nothing then).
 */
export function formatExitLine(code: number, program = "krsync"): string {
  if (code === RERR_OK) return "";
  const kind = code === RERR_VANISHED ? "warning" : "error";
  return `${program} ${kind}: ${rerrName(code)} (code ${code})`;
}

/**
 * A command-line problem, reported the way rsync reports it: `message` is the exact line to print
 * (rsync's wording, `krsync:` where rsync writes `rsync:`), then the process exits with `exitCode`
 * (RERR_SYNTAX unless rsync uses another code for that problem). `showUsage` asks the caller
 * to print the usage text first, as rsync does for a missing SRC/DEST.
 */
export class UsageError extends Error {
  readonly exitCode: number;
  readonly showUsage: boolean;
  constructor(message: string, exitCode: number = RERR_SYNTAX, showUsage = false) {
    super(message);
    this.name = "UsageError";
    this.exitCode = exitCode;
    this.showUsage = showUsage;
  }
}

// strerror's words for the errno values krsync reports, with Linux's numbers (rsyserr prints
// "text (errno)").
const ERRNO_TEXT: Readonly<Record<string, [string, number]>> = {
  ENOENT: ["No such file or directory", 2],
  EACCES: ["Permission denied", 13],
  EISDIR: ["Is a directory", 21],
  ENOTDIR: ["Not a directory", 20],
  ELOOP: ["Too many levels of symbolic links", 40],
  EPERM: ["Operation not permitted", 1],
  ENAMETOOLONG: ["File name too long", 36],
  ECONNREFUSED: ["Connection refused", 111],
  ECONNRESET: ["Connection reset by peer", 104],
  EPIPE: ["Broken pipe", 32],
  EHOSTUNREACH: ["No route to host", 113],
  ENETUNREACH: ["Network is unreachable", 101],
  ETIMEDOUT: ["Connection timed out", 110],
  EADDRNOTAVAIL: ["Cannot assign requested address", 99],
};

/** log.c rsyserr's "strerror (errno)" for a Node errno error. */
export function strerror(err: unknown): string {
  const e = err as NodeJS.ErrnoException | null;
  const known = e?.code ? ERRNO_TEXT[e.code] : undefined;
  if (known) return `${known[0]} (${known[1]})`;
  if (e && typeof e.errno === "number") return `${e.code ?? e.message} (${Math.abs(e.errno)})`;
  return e?.message ?? String(err);
}
