// The argv a client gives the remote `rsync --server ...` (options.c server_options, then
// main.c do_cmd's "." and the remote paths through safe_arg). Pure.

import type { TransferOptions } from "./options.js";

/**
 * The capability letters after "e." (options.c maybe_add_e_option) other than 'i':
 * L symlink times, s symlink iconv, f safe flist, x no xattr optimisation, C checksum-seed order
 * fix, I inplace partial dir, v varint flist flags + negotiated strings, u uid/gid 0 names.
 */
export const CLIENT_CAPABILITIES = "LsfxCIvu";

export interface ServerArgsContext {
  /** The local (client) side sends the files: the server is then the receiver (no --sender). */
  amSender: boolean;
  /** The protocol the client will announce (--protocol or its newest). */
  protocol: number;
  /** The paths on the remote side: the sources of a pull, or the destination of a push. */
  remotePaths: string[];
  /**
   * How the words reach the remote rsync. "shell" (the default, and what rsync does): through a
   * remote shell, so file names get safe_arg's backslash escapes. "none": the words become the
   * remote argv directly (no shell), so only a leading "-" is defused.
   */
  quoting?: "shell" | "none";
}

// options.c safe_arg
const SHELL_CHARS = "!#$&;|<>(){}\"'` \t\n\r\\";
const WILD_CHARS = "*?[]";

/**
 * options.c safe_arg(NULL, arg) for a file name (unprotected args, not --old-args): shell
 * characters are backslash-escaped but wildcards are left for the remote shell to expand (a
 * backslash already before a wildcard stays single); a leading "-" becomes "./-"; a leading "~"
 * is escaped when receiving a name with no "/" (or with -R and no "/./"), so the remote shell
 * cannot expand it to some other path.
 */
export function safeFileArg(arg: string, amSender: boolean, relative: boolean): string {
  let out = arg[0] === "-" ? "./" : "";
  if (arg[0] === "~" && !amSender && ((relative && !arg.includes("/./")) || !arg.includes("/"))) out += "\\";
  for (let i = 0; i < arg.length; i++) {
    const c = arg[i]!;
    if (c === "\\") {
      const n = arg[i + 1];
      if (!(n !== undefined && WILD_CHARS.includes(n))) out += "\\";
    } else if (SHELL_CHARS.includes(c)) out += "\\";
    out += c;
  }
  return out;
}

/** options.c safe_arg(opt, arg) for an option's value: shell characters and wildcards escaped. */
export function safeOptionArg(opt: string, arg: string, quoting: "shell" | "none" = "shell"): string {
  if (quoting === "none") return `${opt}=${arg}`;
  let out = `${opt}=`;
  for (const c of arg) {
    if (c === "\\" || WILD_CHARS.includes(c) || SHELL_CHARS.includes(c)) out += "\\";
    out += c;
  }
  return out;
}

/** compat.c set_allow_inc_recurse, as a client: may the 'i' capability be offered? */
export function allowIncRecurse(opts: TransferOptions, amSender: boolean): boolean {
  if (!opts.incRecursive || !opts.recursive) return false;
  if (!amSender && (opts.deleteTiming === "before" || opts.deleteTiming === "after")) return false;
  return true;
}

/**
 * options.c server_options + main.c do_cmd: the words after the remote rsync program
 * ("--server", ..., ".", paths...). The caller prepends the --rsync-path command.
 */
export function serverArgs(opts: TransferOptions, ctx: ServerArgsContext): string[] {
  const { amSender, protocol } = ctx;
  const quoting = ctx.quoting ?? "shell";
  const args: string[] = ["--server"];
  if (!amSender) args.push("--sender");

  // What compression the server is told about (options.c do_compression after parse):
  // 'z' means zlib or negotiation; a fixed choice goes as a long option.
  const choice = opts.compressChoice;
  const zlibFlag = choice === "zlib" || (choice === undefined && opts.compress);
  const inplace = opts.inplace || opts.append;

  let bundle = "-";
  bundle += "v".repeat(Math.min(opts.verbose, 9));
  if (opts.quiet) bundle += "q";
  if (opts.dryRun) bundle += "n";
  if (opts.links) bundle += "l";
  const dirsOnly = opts.dirs && !opts.recursive;
  if (dirsOnly) bundle += "d";
  if (opts.wholeFile === true) bundle += "W";
  if (opts.hardLinks) bundle += "H";
  if (opts.owner) bundle += "o";
  if (opts.group) bundle += "g";
  if (opts.devices) bundle += "D"; // --specials is sent apart when it differs
  if (opts.times) bundle += "t";
  if (opts.perms) bundle += "p";
  if (opts.recursive) bundle += "r";
  if (opts.checksum) bundle += "c";
  if (opts.ignoreTimes) bundle += "I";
  if (opts.relative) bundle += "R";
  if (opts.oneFileSystem) bundle += "x";
  if (opts.sparse) bundle += "S";
  if (zlibFlag) bundle += "z";
  // options.c maybe_add_e_option: from protocol 30 (as announced), "e." + capabilities.
  if (protocol >= 30) bundle += "e." + (allowIncRecurse(opts, amSender) ? "i" : "") + CLIENT_CAPABILITIES;
  if (bundle.length > 1) args.push(bundle);

  if (opts.listOnly === "explicit") args.push("--list-only");
  // A server receiver deleting with -d but not -r must be told -r is off.
  if (dirsOnly && opts.delete && amSender) args.push("--no-r");
  // A level alone still turns compression on ("auto"), so it is always passed on.
  if (opts.compressLevel !== undefined) args.push(`--compress-level=${opts.compressLevel}`);
  if (opts.devices) {
    if (!opts.specials) args.push("--no-specials");
  } else if (opts.specials) args.push("--specials");

  // The server (receiver) needs to know a little about the client's output format.
  if (amSender && (opts.itemize || opts.verbose > 0 || opts.progress)) {
    if (opts.itemize && opts.itemizeUnchanged) args.push("--log-format=%i%I");
    else if (opts.itemize) args.push("--log-format=%i");
    else if (opts.verbose === 0) args.push("--log-format=X");
  }

  if (opts.blockSize) args.push(`-B${opts.blockSize}`);
  if (opts.timeout > 0) args.push(`--timeout=${opts.timeout}`);
  if (opts.bwlimit) args.push(`--bwlimit=${opts.bwlimit}`);
  if (opts.checksumChoice !== undefined) args.push(safeOptionArg("--checksum-choice", opts.checksumChoice, quoting));
  if (choice === "zlibx") args.push("--new-compress");
  else if (choice === "zlib") args.push("--old-compress");
  else if (choice !== undefined) args.push(safeOptionArg("--compress-choice", choice, quoting));

  if (amSender) {
    if (opts.delete) {
      const t = opts.deleteTiming;
      if (t !== undefined) args.push(`--delete-${t}`);
      else if (!opts.deleteExcluded) args.push("--delete");
      if (opts.deleteExcluded) args.push("--delete-excluded");
    }
    if (opts.force) args.push("--force");
    if (opts.sizeOnly) args.push("--size-only");
    if (opts.stats) args.push("--stats");
  }

  // A receiving client tells the sender which suffixes not to compress.
  if (!amSender && opts.skipCompress !== undefined) args.push(safeOptionArg("--skip-compress", opts.skipCompress, quoting));

  if (opts.partial && !inplace && amSender) args.push("--partial");
  if (opts.numericIds) args.push("--numeric-ids");

  // options.c: the receiver skips the implied dirs a sender flags (protocol >= 30); below 30 a
  // server sender is told not to send them.
  if (opts.relative && !opts.impliedDirs && (!amSender || protocol >= 30)) args.push("--no-implied-dirs");

  if (opts.append) args.push("--append");
  else if (opts.inplace) {
    args.push("--inplace");
    // Works around old receivers' --inplace --sparse bug; only for an explicit --no-W.
    if (opts.sparse && opts.wholeFile === false && amSender) args.push("--no-W");
  }

  args.push(".");
  for (const p of ctx.remotePaths) {
    if (quoting === "shell") args.push(safeFileArg(p, amSender, opts.relative));
    else args.push(p[0] === "-" ? "./" + p : p);
  }
  return args;
}
