// The remote-shell command line rsync builds (main.c do_cmd): the -e words, "-l USER",
// ssh's -4/-6, the host, the --rsync-path string as one word, then the server arguments.

import { UsageError } from "../protocol/errcode.js";

/** main.c do_cmd's default remote shell (RSYNC_RSH, else ssh). */
export const DEFAULT_RSH = "ssh";
/** The remote rsync command when --rsync-path is not given. */
export const DEFAULT_RSYNC_PATH = "rsync";

/**
 * main.c do_cmd: splits an -e / RSYNC_RSH string into words. Words are separated by spaces
 * (only ' ', not tabs); single or double quotes group, the other quote is literal inside them,
 * and a doubled quote inside quotes stands for one quote character. Backslashes are ordinary.
 */
export function splitRshCommand(cmd: string): string[] {
  const words: string[] = [];
  let i = 0;
  while (i < cmd.length) {
    if (cmd[i] === " ") {
      i++;
      continue;
    }
    let word = "";
    let quote = "";
    while (i < cmd.length && (cmd[i] !== " " || quote)) {
      const c = cmd[i]!;
      if (c === "'" || c === '"') {
        if (!quote) {
          quote = c;
          i++;
          continue;
        }
        if (c === quote) {
          if (cmd[i + 1] !== quote) {
            quote = "";
            i++;
            continue;
          }
          i++; // a doubled quote: keep one
        }
      }
      word += cmd[i]!;
      i++;
    }
    if (quote) throw new UsageError(`Missing trailing-${quote} in remote-shell command.`);
    words.push(word);
  }
  return words;
}

export interface RemoteShellSpec {
  /** -e / --rsh; else env RSYNC_RSH; else "ssh". */
  rsh?: string | undefined;
  env?: Readonly<Record<string, string | undefined>>;
  /** The part before the last "@" of USER@HOST, if any. */
  user?: string | undefined;
  host: string;
  /** --rsync-path: one word, interpreted by the remote shell (so "sudo rsync" works). */
  rsyncPath?: string | undefined;
  /** What follows the rsync path: serverArgs(...) or daemonOverShellArgs(). */
  serverArgs: readonly string[];
  /** -4 / -6: added for ssh only. */
  addressFamily?: 4 | 6 | undefined;
  /** A daemon reached over the remote shell (HOST::MODULE with -e): "-l USER" is then not
   *  added when the -e command already has its own "-l NAME". */
  daemon?: boolean;
}

/** The words after the rsync path for a daemon over a remote shell (main.c do_cmd). */
export function daemonOverShellArgs(): string[] {
  return ["--server", "--daemon", "."];
}

/** main.c do_cmd: rsh/remsh get --blocking-io unless told otherwise. */
export function impliesBlockingIo(rshWords: readonly string[]): boolean {
  const base = programBase(rshWords);
  return base === "rsh" || base === "remsh";
}

function programBase(words: readonly string[]): string {
  const prog = words[0] ?? "";
  return prog.slice(prog.lastIndexOf("/") + 1);
}

/**
 * main.c do_cmd: the full argv to spawn (argv[0] is the remote shell program):
 * `[rsh words] [-l USER] [-4|-6 for ssh] HOST RSYNC_PATH SERVER_ARGS...`.
 */
export function remoteShellArgv(spec: RemoteShellSpec): string[] {
  if (spec.host.startsWith("-")) {
    // main.c start_client
    throw new UsageError("Invalid remote host: hostnames may not start with '-'.");
  }
  const cmd = spec.rsh ?? spec.env?.["RSYNC_RSH"] ?? DEFAULT_RSH;
  const argv = splitRshCommand(cmd);
  let dashLSet = false;
  for (let i = 0; i < argv.length - 1; i++) {
    if (argv[i] === "-l" && argv[i + 1]![0] !== "-") dashLSet = true;
  }
  if (spec.user !== undefined && !(spec.daemon && dashLSet)) argv.push("-l", spec.user);
  if (programBase(argv) === "ssh" && spec.addressFamily !== undefined) argv.push(`-${spec.addressFamily}`);
  argv.push(spec.host, spec.rsyncPath ?? DEFAULT_RSYNC_PATH, ...spec.serverArgs);
  return argv;
}

/**
 * POSIX single-quoting of one word, for running the server command through `sh -c` where
 * there is no remote shell to split the words (e.g. an exec API that takes an argv).
 */
export function shellQuote(word: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return "'" + word.replace(/'/g, "'\\''") + "'";
}
