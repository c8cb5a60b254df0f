// rsync's command line (options.c long_options + parse_arguments, parsed the way popt does it)
// turned into TransferOptions plus the rest of the command line.
//
// popt rules kept here: short options bundle (-avz), a short option's value is the rest of the
// word (-essh, -B1024, also -e=ssh) or else the next word whatever it looks like; long options
// match exactly (no abbreviations) and take --opt=value or --opt value; "--" ends options; "-"
// is an argument; options and arguments may be interleaved. Integer values are C strtoll base 0
// (so 0x1e and 036 are 30, "" is 0). Errors name the last word consumed, as poptBadOption does.

import { readFileSync } from "node:fs";
import { defaultTransferOptions, MAX_PROTOCOL, MIN_PROTOCOL, type TransferOptions } from "../protocol/options.js";
import { RERR_FILEIO, RERR_PROTOCOL, RERR_SYNTAX, RERR_UNSUPPORTED, strerror, UsageError } from "../protocol/errcode.js";

export { UsageError } from "../protocol/errcode.js";

import type { KubeOptions } from "../kube/options.js";
export type { KubeOptions };

export interface CommandLine {
  options: TransferOptions;
  /** Non-option arguments: sources..., then the destination (if any). */
  args: string[];
  kube: KubeOptions;
  /** --help, or rsync's old meaning of a lone -h. Nothing else is checked once this is set. */
  help: boolean;
  /** --version / -V. Option errors are still reported first; post-processing is skipped. */
  version: boolean;
  progress: boolean;
  /** rsync human_readable: 1 by default, +1 per -h, 0 with --no-h. */
  humanReadable: number;
  /** -4 / -6: passed to ssh as -4 / -6 (main.c do_cmd). */
  addressFamily: 4 | 6 | undefined;
}

export interface ParseIo {
  /** Reads an --exclude-from / --include-from file ("-" = stdin). Defaults to the filesystem. */
  readFile?: (path: string) => string;
}

// checksum.c valid_checksums_items / compat.c valid_compressions_items (rsync 3.5.0's lists).
const RSYNC_CHECKSUMS = ["xxh128", "xxh3", "xxh64", "xxhash", "md5", "md4", "sha1", "none"];
// Every one of them is implemented; whether zstd's and lz4's libraries load is the engine's
// question (engine/setup.ts checkCompressChoice), asked before a transfer starts.
const RSYNC_COMPRESSIONS = ["zstd", "lz4", "zlibx", "zlib", "none"];

// rsync.h MAX_BLOCK_SIZE / OLD_MAX_BLOCK_SIZE
const MAX_BLOCK_SIZE = 1 << 17;
const OLD_MAX_BLOCK_SIZE = 1 << 29;
const INT_MAX = 0x7fffffff;
const INT_MIN = -0x80000000;
const PROGRAM = "krsync";

type Kind = "none" | "string" | "int";

interface Spec {
  long?: string;
  short?: string;
  kind: Kind;
  /** Absent: rsync has the option but krsync does not support it. */
  run?: (st: State, value: string | number) => void;
}

// The parse state, in rsync's own terms (options.c globals) until post-processing.
class State {
  o: TransferOptions = defaultTransferOptions();
  kube: KubeOptions = {};
  verbose = 0;
  humanReadable = 1;
  recurse = false;
  xferDirs = -1; // -1 unset, 0 --no-dirs, 2 -d
  relative = false;
  oneFileSystem = 0;
  appendMode = false;
  deleteMode = false;
  deleteBefore = false;
  deleteDuring = 0; // 1 --del/--delete-during, 2 --delete-delay
  deleteAfter = false;
  doCompression = 0;
  compressChoice: string | null = null;
  compressLevel: number | undefined = undefined;
  checksumChoice: string | null = null;
  wholeFile = -1;
  keepPartial = false;
  itemize = 0;
  doProgress = false;
  listOnlyExplicit = false;
  bwlimit = 0;
  protocol = MAX_PROTOCOL; // options.c protocol_version before negotiation
  protocolGiven = false;
  fCount = 0;
  versionCount = 0;
  help = false;
  addressFamily: 4 | 6 | undefined = undefined;
  constructor(readonly io: Required<ParseIo>) {}
}

function S(long: string | undefined, short: string | undefined, kind: Kind, run?: Spec["run"]): Spec {
  const s: Spec = { kind };
  if (long !== undefined) s.long = long;
  if (short !== undefined) s.short = short;
  if (run) s.run = run;
  return s;
}
/** A flag: --long / -s. */
const F = (long: string | undefined, short: string | undefined, f?: (st: State) => void): Spec =>
  S(long, short, "none", f ? (st) => f(st) : undefined);
/** An option rsync has and krsync refuses. */
const U = (long: string, short?: string, kind: Kind = "none"): Spec => S(long, short, kind);
/** A negation that asks for what krsync already does (the feature is off by default). */
const NOOP = (long: string): Spec => F(long, undefined, () => {});
const str = (long: string, short: string | undefined, f: (st: State, v: string) => void): Spec =>
  S(long, short, "string", (st, v) => f(st, v as string));
const int = (long: string, short: string | undefined, f: (st: State, v: number) => void): Spec =>
  S(long, short, "int", (st, v) => f(st, v as number));

function addFilterRule(st: State, rule: string): void {
  if (rule !== "") st.o.filters.push(rule);
}

// exclude.c parse_rule_tok with XFLG_OLD_PREFIXES: only "- " / "+ " prefixes, and a lone "!"
// clears the list; anything else is a pattern of the option's own kind. Stored in rule syntax.
function oldStyleRule(pattern: string, include: boolean): string {
  if (pattern === "") return "";
  if (pattern.startsWith("- ") || pattern.startsWith("+ ") || pattern === "!") return pattern;
  return (include ? "+ " : "- ") + pattern;
}

// exclude.c parse_filter_file: lines end at \n, \r or \r\n; empty lines and lines starting
// with ';' or '#' are skipped; each line is an old-style include/exclude.
function readFilterFile(st: State, file: string, include: boolean): void {
  if (file === "") return;
  let text: string;
  try {
    text = st.io.readFile(file);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new UsageError(
      `${PROGRAM}: [client] failed to open ${include ? "in" : "ex"}clude file ${file}: ${strerror(err)}`,
      RERR_FILEIO,
    );
  }
  for (const line of text.split(/\r\n|\r|\n/)) {
    if (line === "" || line[0] === ";" || line[0] === "#") continue;
    addFilterRule(st, oldStyleRule(line, include));
  }
}

// options.c long_options, in its order. Every rsync option is listed so that an option krsync
// lacks is refused by name instead of being reported as unknown.
const TABLE: Spec[] = [
  F("help", undefined, (st) => (st.help = true)),
  F("version", "V", (st) => st.versionCount++),
  F("verbose", "v", (st) => st.verbose++),
  F("no-verbose", undefined, (st) => (st.verbose = 0)),
  F("no-v", undefined, (st) => (st.verbose = 0)),
  U("info", undefined, "string"),
  U("debug", undefined, "string"),
  U("stderr", undefined, "string"),
  U("msgs2stderr"),
  U("no-msgs2stderr"),
  F("quiet", "q", (st) => (st.o.quiet = true)),
  F("motd", undefined, (st) => (st.o.motd = true)),
  F("no-motd", undefined, (st) => (st.o.motd = false)),
  F("stats", undefined, (st) => (st.o.stats = true)),
  F("human-readable", "h", (st) => st.humanReadable++),
  F("no-human-readable", undefined, (st) => (st.humanReadable = 0)),
  F("no-h", undefined, (st) => (st.humanReadable = 0)),
  F("dry-run", "n", (st) => (st.o.dryRun = true)),
  F("archive", "a", (st) => {
    // options.c case 'a': -rlptgoD
    st.recurse = true;
    st.o.links = st.o.perms = st.o.times = st.o.group = st.o.owner = true;
    st.o.devices = st.o.specials = true;
  }),
  F("recursive", "r", (st) => (st.recurse = true)),
  F("no-recursive", undefined, (st) => (st.recurse = false)),
  F("no-r", undefined, (st) => (st.recurse = false)),
  F("inc-recursive", undefined, (st) => (st.o.incRecursive = true)),
  F("no-inc-recursive", undefined, (st) => (st.o.incRecursive = false)),
  F("i-r", undefined, (st) => (st.o.incRecursive = true)),
  F("no-i-r", undefined, (st) => (st.o.incRecursive = false)),
  F("dirs", "d", (st) => (st.xferDirs = 2)),
  F("no-dirs", undefined, (st) => (st.xferDirs = 0)),
  F("no-d", undefined, (st) => (st.xferDirs = 0)),
  U("old-dirs"),
  U("old-d"),
  F("perms", "p", (st) => (st.o.perms = true)),
  F("no-perms", undefined, (st) => (st.o.perms = false)),
  F("no-p", undefined, (st) => (st.o.perms = false)),
  U("executability", "E"),
  U("acls", "A"),
  NOOP("no-acls"),
  NOOP("no-A"),
  U("xattrs", "X"),
  NOOP("no-xattrs"),
  NOOP("no-X"),
  F("times", "t", (st) => (st.o.times = true)),
  F("no-times", undefined, (st) => (st.o.times = false)),
  F("no-t", undefined, (st) => (st.o.times = false)),
  U("atimes", "U"),
  NOOP("no-atimes"),
  NOOP("no-U"),
  U("open-noatime"),
  NOOP("no-open-noatime"),
  U("crtimes", "N"),
  NOOP("no-crtimes"),
  NOOP("no-N"),
  U("omit-dir-times", "O"),
  NOOP("no-omit-dir-times"),
  NOOP("no-O"),
  U("omit-link-times", "J"),
  NOOP("no-omit-link-times"),
  NOOP("no-J"),
  U("modify-window", "@", "int"),
  U("super"),
  NOOP("no-super"),
  U("fake-super"),
  F("owner", "o", (st) => (st.o.owner = true)),
  F("no-owner", undefined, (st) => (st.o.owner = false)),
  F("no-o", undefined, (st) => (st.o.owner = false)),
  F("group", "g", (st) => (st.o.group = true)),
  F("no-group", undefined, (st) => (st.o.group = false)),
  F("no-g", undefined, (st) => (st.o.group = false)),
  F(undefined, "D", (st) => (st.o.devices = st.o.specials = true)),
  F("no-D", undefined, (st) => (st.o.devices = st.o.specials = false)),
  F("devices", undefined, (st) => (st.o.devices = true)),
  F("no-devices", undefined, (st) => (st.o.devices = false)),
  U("copy-devices"),
  U("write-devices"),
  NOOP("no-write-devices"),
  F("specials", undefined, (st) => (st.o.specials = true)),
  F("no-specials", undefined, (st) => (st.o.specials = false)),
  U("drop-D"),
  NOOP("no-drop-D"),
  U("confine-root", undefined, "string"),
  F("links", "l", (st) => (st.o.links = true)),
  F("no-links", undefined, (st) => (st.o.links = false)),
  F("no-l", undefined, (st) => (st.o.links = false)),
  U("copy-links", "L"),
  U("copy-unsafe-links"),
  U("safe-links"),
  U("insecure-links"),
  NOOP("no-insecure-links"),
  U("munge-links"),
  NOOP("no-munge-links"),
  U("copy-dirlinks", "k"),
  U("keep-dirlinks", "K"),
  F("hard-links", "H", (st) => (st.o.hardLinks = true)),
  F("no-hard-links", undefined, (st) => (st.o.hardLinks = false)),
  F("no-H", undefined, (st) => (st.o.hardLinks = false)),
  F("relative", "R", (st) => (st.relative = true)),
  F("no-relative", undefined, (st) => (st.relative = false)),
  F("no-R", undefined, (st) => (st.relative = false)),
  F("implied-dirs", undefined, (st) => (st.o.impliedDirs = true)),
  F("no-implied-dirs", undefined, (st) => (st.o.impliedDirs = false)),
  F("i-d", undefined, (st) => (st.o.impliedDirs = true)),
  F("no-i-d", undefined, (st) => (st.o.impliedDirs = false)),
  U("chmod", undefined, "string"),
  F("ignore-times", "I", (st) => (st.o.ignoreTimes = true)),
  F("size-only", undefined, (st) => (st.o.sizeOnly = true)),
  F("one-file-system", "x", (st) => st.oneFileSystem++),
  F("no-one-file-system", undefined, (st) => (st.oneFileSystem = 0)),
  F("no-x", undefined, (st) => (st.oneFileSystem = 0)),
  U("update", "u"),
  U("existing"),
  U("ignore-non-existing"),
  U("ignore-existing"),
  U("max-size", undefined, "string"),
  U("min-size", undefined, "string"),
  U("max-alloc", undefined, "string"),
  F("sparse", "S", (st) => (st.o.sparse = true)),
  F("no-sparse", undefined, (st) => (st.o.sparse = false)),
  F("no-S", undefined, (st) => (st.o.sparse = false)),
  U("preallocate"),
  F("inplace", undefined, (st) => (st.o.inplace = true)),
  F("no-inplace", undefined, (st) => (st.o.inplace = false)),
  F("append", undefined, (st) => (st.appendMode = true)),
  U("append-verify"),
  F("no-append", undefined, (st) => (st.appendMode = false)),
  F("del", undefined, (st) => (st.deleteDuring = 1)),
  F("delete", undefined, (st) => (st.deleteMode = true)),
  F("delete-before", undefined, (st) => (st.deleteBefore = true)),
  F("delete-during", undefined, (st) => (st.deleteDuring = 1)),
  F("delete-delay", undefined, (st) => (st.deleteDuring = 2)),
  F("delete-after", undefined, (st) => (st.deleteAfter = true)),
  F("delete-excluded", undefined, (st) => (st.o.deleteExcluded = true)),
  U("delete-missing-args"),
  U("ignore-missing-args"),
  U("remove-sent-files"),
  U("remove-source-files"),
  F("force", undefined, (st) => (st.o.force = true)),
  F("no-force", undefined, (st) => (st.o.force = false)),
  U("ignore-errors"),
  NOOP("no-ignore-errors"),
  U("max-delete", undefined, "int"),
  F(undefined, "F", (st) => {
    // options.c case 'F': first -F adds a per-directory merge of .rsync-filter, the second
    // also hides the .rsync-filter files themselves.
    st.fCount++;
    if (st.fCount === 1) addFilterRule(st, ": /.rsync-filter");
    else if (st.fCount === 2) addFilterRule(st, "- .rsync-filter");
  }),
  str("filter", "f", (st, v) => addFilterRule(st, v)),
  str("exclude", undefined, (st, v) => addFilterRule(st, oldStyleRule(v, false))),
  str("include", undefined, (st, v) => addFilterRule(st, oldStyleRule(v, true))),
  str("exclude-from", undefined, (st, v) => readFilterFile(st, v, false)),
  str("include-from", undefined, (st, v) => readFilterFile(st, v, true)),
  U("cvs-exclude", "C"),
  F("whole-file", "W", (st) => (st.wholeFile = 1)),
  F("no-whole-file", undefined, (st) => (st.wholeFile = 0)),
  F("no-W", undefined, (st) => (st.wholeFile = 0)),
  F("checksum", "c", (st) => (st.o.checksum = true)),
  F("no-checksum", undefined, (st) => (st.o.checksum = false)),
  F("no-c", undefined, (st) => (st.o.checksum = false)),
  str("checksum-choice", undefined, (st, v) => (st.checksumChoice = v)),
  str("cc", undefined, (st, v) => (st.checksumChoice = v)),
  str("block-size", "B", (st, v) => {
    // The limit follows the protocol given so far (options.c OPT_BLOCK_SIZE).
    const max = st.protocol < 30 ? OLD_MAX_BLOCK_SIZE : MAX_BLOCK_SIZE;
    const size = parseSizeArg(v, "b", "block-size", 0, max, false);
    st.o.blockSize = size === 0 ? undefined : size;
  }),
  U("compare-dest", undefined, "string"),
  U("copy-dest", undefined, "string"),
  U("link-dest", undefined, "string"),
  U("fuzzy", "y"),
  NOOP("no-fuzzy"),
  NOOP("no-y"),
  F("compress", "z", (st) => st.doCompression++),
  F("old-compress", undefined, (st) => (st.compressChoice = "zlib")),
  F("new-compress", undefined, (st) => (st.compressChoice = "zlibx")),
  F("no-compress", undefined, (st) => ((st.doCompression = 0), (st.compressChoice = null))),
  F("no-z", undefined, (st) => ((st.doCompression = 0), (st.compressChoice = null))),
  str("compress-choice", undefined, (st, v) => (st.compressChoice = v)),
  str("zc", undefined, (st, v) => (st.compressChoice = v)),
  str("skip-compress", undefined, (st, v) => (st.o.skipCompress = v)),
  int("compress-level", undefined, (st, v) => (st.compressLevel = v)),
  int("zl", undefined, (st, v) => (st.compressLevel = v)),
  U("compress-threads", undefined, "int"),
  U("zt", undefined, "int"),
  F(undefined, "P", (st) => ((st.doProgress = true), (st.keepPartial = true))),
  F("progress", undefined, (st) => (st.doProgress = true)),
  F("no-progress", undefined, (st) => (st.doProgress = false)),
  F("partial", undefined, (st) => (st.keepPartial = true)),
  F("no-partial", undefined, (st) => (st.keepPartial = false)),
  U("partial-dir", undefined, "string"),
  U("delay-updates"),
  NOOP("no-delay-updates"),
  U("prune-empty-dirs", "m"),
  NOOP("no-prune-empty-dirs"),
  NOOP("no-m"),
  U("log-file", undefined, "string"),
  U("log-file-format", undefined, "string"),
  U("out-format", undefined, "string"),
  U("log-format", undefined, "string"),
  F("itemize-changes", "i", (st) => st.itemize++),
  F("no-itemize-changes", undefined, (st) => (st.itemize = 0)),
  F("no-i", undefined, (st) => (st.itemize = 0)),
  str("bwlimit", undefined, (st, v) => {
    // options.c OPT_BWLIMIT: a size in KiB by default, at least 512 bytes or 0 for none.
    const size = parseSizeArg(v, "K", "bwlimit", 512, -1, true);
    const kib = Math.floor((size + 512) / 1024);
    if (kib > INT_MAX) throw new UsageError(`${PROGRAM}: --bwlimit=${v} is too large`);
    st.bwlimit = kib;
  }),
  F("no-bwlimit", undefined, (st) => (st.bwlimit = 0)),
  U("backup", "b"),
  NOOP("no-backup"),
  U("backup-dir", undefined, "string"),
  U("suffix", undefined, "string"),
  F("list-only", undefined, (st) => (st.listOnlyExplicit = true)),
  U("read-batch", undefined, "string"),
  U("write-batch", undefined, "string"),
  U("only-write-batch", undefined, "string"),
  U("files-from", undefined, "string"),
  U("from0", "0"),
  NOOP("no-from0"),
  U("old-args"),
  NOOP("no-old-args"),
  U("secluded-args", "s"),
  NOOP("no-secluded-args"),
  U("protect-args"),
  NOOP("no-protect-args"),
  NOOP("no-s"),
  U("trust-sender"),
  F("numeric-ids", undefined, (st) => (st.o.numericIds = true)),
  F("no-numeric-ids", undefined, (st) => (st.o.numericIds = false)),
  U("usermap", undefined, "string"),
  U("groupmap", undefined, "string"),
  U("chown", undefined, "string"),
  int("timeout", undefined, (st, v) => (st.o.timeout = v)),
  F("no-timeout", undefined, (st) => (st.o.timeout = 0)),
  int("contimeout", undefined, (st, v) => (st.o.contimeout = v)),
  F("no-contimeout", undefined, (st) => (st.o.contimeout = 0)),
  U("fsync"),
  U("stop-after", undefined, "string"),
  U("time-limit", undefined, "string"),
  U("stop-at", undefined, "string"),
  str("rsh", "e", (st, v) => (st.o.rsh = v)),
  str("rsync-path", undefined, (st, v) => (st.o.rsyncPath = v)),
  U("temp-dir", "T", "string"),
  U("iconv", undefined, "string"),
  NOOP("no-iconv"),
  F("ipv4", "4", (st) => (st.addressFamily = 4)),
  F("ipv6", "6", (st) => (st.addressFamily = 6)),
  U("8-bit-output", "8"),
  NOOP("no-8-bit-output"),
  NOOP("no-8"),
  U("mkpath"),
  NOOP("no-mkpath"),
  U("qsort"),
  U("copy-as", undefined, "string"),
  U("address", undefined, "string"),
  int("port", undefined, (st, v) => (st.o.port = v)),
  U("sockopts", undefined, "string"),
  str("password-file", undefined, (st, v) => (st.o.passwordFile = v)),
  U("early-input", undefined, "string"),
  F("blocking-io", undefined, (st) => (st.o.blockingIo = true)),
  F("no-blocking-io", undefined, (st) => (st.o.blockingIo = false)),
  U("outbuf", undefined, "string"),
  U("remote-option", "M", "string"),
  int("protocol", undefined, (st, v) => ((st.protocol = v), (st.protocolGiven = true))),
  U("checksum-seed", undefined, "int"),
  U("server"),
  U("sender"),
  U("config", undefined, "string"),
  U("daemon"),
  U("dparam", undefined, "string"),
  U("detach"),
  U("no-detach"),
  // krsync's own options for Kubernetes targets.
  str("namespace", undefined, (st, v) => (st.kube.namespace = v)),
  str("container", undefined, (st, v) => (st.kube.container = v)),
  str("context", undefined, (st, v) => (st.kube.context = v)),
  str("kubeconfig", undefined, (st, v) => (st.kube.kubeconfig = v)),
  int("pod-wait", undefined, (st, v) => {
    if (v < 0) throw new UsageError(`${PROGRAM}: --pod-wait=${v} must not be negative`);
    st.kube.podWait = v;
  }),
  F("all-pods", undefined, (st) => (st.kube.allPods = true)),
  F("no-all-pods", undefined, (st) => (st.kube.allPods = false)),
  str("remote-tmp", undefined, (st, v) => (st.kube.remoteTmp = v)),
];

const BY_LONG = new Map<string, Spec>();
const BY_SHORT = new Map<string, Spec>();
for (const s of TABLE) {
  if (s.long !== undefined) BY_LONG.set(s.long, s);
  if (s.short !== undefined) BY_SHORT.set(s.short, s);
}

function optionName(s: Spec): string {
  if (s.long === undefined) return `-${s.short}`;
  return s.short !== undefined ? `--${s.long} (-${s.short})` : `--${s.long}`;
}

// popt poptParseInteger: strtoll(val, &end, 0) and the whole value must be consumed; then the
// int range check of POPT_ARG_INT. Returns a popt error string or the value.
function parsePoptInt(val: string): number | "invalid numeric value" | "number too large or too small" {
  let i = 0;
  while (i < val.length && " \t\n\v\f\r".includes(val[i]!)) i++;
  let neg = false;
  if (val[i] === "+" || val[i] === "-") neg = val[i++] === "-";
  let base = 10;
  if (val[i] === "0" && (val[i + 1] === "x" || val[i + 1] === "X") && /[0-9a-fA-F]/.test(val[i + 2] ?? "")) {
    base = 16;
    i += 2;
  } else if (val[i] === "0") base = 8;
  const digitsStart = i;
  let n = 0n;
  for (; i < val.length; i++) {
    const d = parseInt(val[i]!, 36);
    if (Number.isNaN(d) || d >= base) break;
    n = n * BigInt(base) + BigInt(d);
  }
  // strtoll sets end to the start of the string when no digits were read.
  const end = i === digitsStart ? 0 : i;
  if (end !== val.length) return "invalid numeric value";
  if (neg) n = -n;
  if (n > BigInt(INT_MAX) || n < BigInt(INT_MIN)) return "number too large or too small";
  return Number(n);
}

// lib/compat.c do_big_num(num, 3, NULL): 1024-based units with two decimals from 1024 up.
function bigNum3(num: number): string {
  if (num < 1024) return String(num);
  let d = num / 1024;
  let units = "K";
  for (const u of ["M", "G", "T", "P"]) {
    if (d < 1024) break;
    d /= 1024;
    units = u;
  }
  return `${d.toFixed(2)}${units}`;
}

const SIZE_MAX_HALF = 2 ** 63 - 1;

/** options.c parse_size_arg: "<number>[.<frac>][bkmgtp][b|ib][+1|-1]"; throws rsync's message. */
export function parseSizeArg(
  arg: string,
  defSuffix: string,
  optName: string,
  minValue: number,
  maxValue: number,
  unlimited0: boolean,
): number {
  const fail = (err: string, minMax?: "min" | "max", limit = -1): never => {
    let msg = `${PROGRAM}: --${optName}=${arg} is ${err}`;
    if (minMax && limit >= 0) {
      msg += ` (${minMax}: ${bigNum3(limit)}${unlimited0 && minMax === "min" ? " or 0 for unlimited" : ""})`;
    }
    throw new UsageError(msg);
  };
  const sizeMax = maxValue >= 0 ? maxValue : SIZE_MAX_HALF;
  let p = 0;
  const isDigit = (c: string | undefined) => c !== undefined && c >= "0" && c <= "9";
  while (isDigit(arg[p])) p++;
  if (arg[p] === ".") for (p++; isDigit(arg[p]); p++);
  let suffix = defSuffix;
  if (p < arg.length && arg[p] !== "+" && arg[p] !== "-") suffix = arg[p++]!;
  const reps = { b: 0, k: 1, m: 2, g: 3, t: 4, p: 5 }[suffix.toLowerCase()];
  if (reps === undefined) return fail("invalid");
  let mult: number;
  if (arg[p] === "b" || arg[p] === "B") {
    mult = 1000;
    p++;
  } else if (p >= arg.length || arg[p] === "+" || arg[p] === "-") mult = 1024;
  else if (arg.slice(p, p + 2).toLowerCase() === "ib") {
    mult = 1024;
    p += 2;
  } else return fail("invalid");
  let size = 1;
  for (let r = 0; r < reps; r++) {
    if (size > sizeMax / mult) return fail("too large", "max", maxValue);
    size *= mult;
  }
  // strtod of the whole argument: a sign, digits and an optional fraction (none gives 0).
  const m = /^([+-]?)(\d*\.?\d*)/.exec(arg)!;
  const digits = m[2] === "" || m[2] === "." ? 0 : Number(m[2]);
  const dsize = m[1] === "-" ? -digits : digits;
  if (dsize < 0 || dsize > sizeMax / size || (maxValue < 0 && dsize >= sizeMax / size)) {
    return fail("too large", "max", maxValue);
  }
  size = Math.trunc(dsize * size);
  if ((arg[p] === "+" || arg[p] === "-") && arg[p + 1] === "1" && p !== 0) {
    size += arg[p] === "+" ? 1 : -1;
    p += 2;
  }
  if (p < arg.length) return fail("invalid");
  if (size < 0 || (maxValue >= 0 && size > maxValue)) return fail("too large", "max", maxValue);
  if (size < minValue && (!unlimited0 || size !== 0)) return fail("too small", "min", minValue);
  return size;
}

function lookupName(list: readonly string[], name: string): string | undefined {
  const lower = name.toLowerCase();
  return list.find((n) => n === lower);
}

// checksum.c parse_checksum_choice / parse_csum_name: "auto", or one name, or "xfer,file".
function checkChecksumChoice(st: State): void {
  const cc = st.checksumChoice;
  if (cc === null || cc.toLowerCase() === "auto" || cc.toLowerCase() === "auto,auto") {
    st.checksumChoice = null;
    return;
  }
  const comma = cc.indexOf(",");
  const parts = comma < 0 ? [cc] : [cc.slice(0, comma), cc.slice(comma + 1)];
  const canon: string[] = [];
  parts.forEach((part, idx) => {
    if (part.toLowerCase() === "auto") {
      canon.push("auto");
      return;
    }
    const name = lookupName(RSYNC_CHECKSUMS, part);
    // parse_csum_name prints the rest of the string from this name on.
    if (name === undefined) throw new UsageError(`unknown checksum name: ${idx === 0 ? cc : part}`, RERR_UNSUPPORTED);
    canon.push(name === "xxhash" ? "xxh64" : name);
  });
  if (canon[0] === "none") st.wholeFile = 1; // no transfer checksum: only whole files
  st.checksumChoice = canon.join(",");
}

// compat.c parse_compress_choice (first call) and the do_compression fix-up after it.
function checkCompressChoice(st: State): void {
  if (st.compressChoice === null && st.doCompression > 1) st.compressChoice = "zlibx";
  const choice = st.compressChoice;
  if (choice !== null && choice.toLowerCase() !== "auto") {
    const name = lookupName(RSYNC_COMPRESSIONS, choice);
    if (name === undefined) throw new UsageError(`unknown compress name: ${choice}`, RERR_UNSUPPORTED);
    // "none" stays as the choice (and is sent as --compress-choice=none): nothing is compressed.
    st.doCompression = name === "none" ? 0 : 1;
    st.compressChoice = name;
  } else st.compressChoice = null;
}

function badOption(word: string, why: string): UsageError {
  return new UsageError(`${PROGRAM}: ${word}: ${why}`);
}

/**
 * Parses an rsync-style command line (without the program name) the way rsync's
 * parse_arguments does, into TransferOptions plus the remaining arguments.
 * Throws UsageError with rsync's wording for anything rsync rejects, and names the options
 * rsync has but krsync does not support.
 */
export function parseCommandLine(argv: readonly string[], io: ParseIo = {}): CommandLine {
  const st = new State({ readFile: io.readFile ?? ((p) => readFileSync(p === "-" ? 0 : p, "utf8")) });
  const args: string[] = [];
  let next = 0;
  let restAreArgs = false;

  const apply = (spec: Spec, value: string | undefined, lastWord: string): void => {
    let v: string | number = "";
    if (spec.kind !== "none") {
      if (value === undefined) throw badOption(lastWord, "missing argument");
      if (spec.kind === "int") {
        const n = parsePoptInt(value);
        if (typeof n === "string") throw badOption(lastWord, n);
        v = n;
      } else v = value;
    }
    if (!spec.run) throw new UsageError(`${PROGRAM} does not support ${optionName(spec)}`);
    spec.run(st, v);
  };

  parse: while (next < argv.length) {
    const word = argv[next++]!;
    if (restAreArgs || word[0] !== "-" || word === "-") {
      args.push(word);
      continue;
    }
    if (word === "--") {
      restAreArgs = true;
      continue;
    }
    if (word[1] === "-") {
      const body = word.slice(2);
      const eq = body.indexOf("=");
      const name = eq < 0 ? body : body.slice(0, eq);
      const spec = BY_LONG.get(name);
      if (!spec) throw badOption(word, "unknown option");
      let value: string | undefined;
      let last = word;
      if (spec.kind === "none") {
        if (eq >= 0) throw badOption(word, "option does not take an argument");
      } else if (eq >= 0) value = body.slice(eq + 1);
      else if (next < argv.length) value = last = argv[next++]!;
      apply(spec, value, last);
    } else {
      let rest = word.slice(1);
      while (rest !== "") {
        const spec = BY_SHORT.get(rest[0]!);
        rest = rest.slice(1);
        if (!spec) throw badOption(word, "unknown option");
        let value: string | undefined;
        let last = word;
        if (spec.kind === "none") {
          if (rest[0] === "=") throw badOption(word, "option does not take an argument");
        } else {
          if (rest !== "") value = rest[0] === "=" ? rest.slice(1) : rest;
          else if (next < argv.length) value = last = argv[next++]!;
          rest = "";
        }
        apply(spec, value, last);
      }
    }
    // options.c OPT_HELP: usage is printed and rsync exits as soon as --help is seen.
    if (st.help) break parse;
  }

  const result = (): CommandLine => ({
    options: st.o,
    args,
    kube: st.kube,
    help: st.help,
    version: st.versionCount > 0,
    progress: st.doProgress,
    humanReadable: st.humanReadable,
    addressFamily: st.addressFamily,
  });
  if (st.help || st.versionCount > 0) return result();

  finish(st, args, argv.length);
  return result();
}

// The post-processing of options.c parse_arguments, in its order.
function finish(st: State, args: string[], argc: number): void {
  const o = st.o;
  checkChecksumChoice(st);

  if (st.humanReadable > 1 && argc === 1) {
    // The old meaning of a lone -h: help.
    st.help = true;
    return;
  }

  checkCompressChoice(st);
  o.compress = st.doCompression !== 0 && st.compressChoice === null;
  o.compressChoice = st.compressChoice ?? undefined;
  o.compressLevel = st.compressLevel;
  o.checksumChoice = st.checksumChoice ?? undefined;

  if (st.oneFileSystem > 1) throw new UsageError(`${PROGRAM} does not support -xx (--one-file-system repeated)`);
  o.oneFileSystem = st.oneFileSystem > 0;

  o.verbose = st.verbose;
  o.itemize = st.itemize > 0;
  o.itemizeUnchanged = st.itemize > 1;
  o.progress = st.doProgress;
  o.recursive = st.recurse;
  o.relative = st.relative;

  if (args.length < 2) o.listOnly = st.listOnlyExplicit ? "explicit" : "implied";
  else o.listOnly = st.listOnlyExplicit ? "explicit" : false;

  // xfer_dirs: -r implies it; otherwise unset means "only when listing".
  if (st.recurse) st.xferDirs = 1;
  else if (st.xferDirs < 0) st.xferDirs = o.listOnly ? 1 : 0;
  o.dirs = st.xferDirs !== 0;

  if (Number(st.deleteBefore) + Number(st.deleteDuring !== 0) + Number(st.deleteAfter) > 1) {
    throw new UsageError(`${PROGRAM}: You may not combine multiple --delete-WHEN options.`);
  }
  if (st.deleteBefore || st.deleteDuring || st.deleteAfter || st.deleteMode || o.deleteExcluded) st.deleteMode = true;
  o.delete = st.deleteMode;
  o.deleteTiming = st.deleteBefore
    ? "before"
    : st.deleteDuring === 2
      ? "delay"
      : st.deleteDuring === 1
        ? "during"
        : st.deleteAfter
          ? "after"
          : undefined;
  if (!o.dirs && o.delete) {
    throw new UsageError(`${PROGRAM}: --delete does not work without --recursive (-r) or --dirs (-d).`);
  }

  // io.c set_io_timeout: a negative timeout means none.
  if (o.timeout < 0) o.timeout = 0;
  o.bwlimit = st.bwlimit === 0 ? undefined : st.bwlimit;

  if (st.appendMode) {
    if (st.wholeFile > 0) throw new UsageError(`${PROGRAM}: --append cannot be used with --whole-file`);
    o.inplace = true;
  }
  o.append = st.appendMode;
  // --inplace (and so --append) clears keep_partial for internal logic.
  o.partial = o.inplace ? false : st.keepPartial;
  o.wholeFile = st.wholeFile < 0 ? undefined : st.wholeFile > 0;

  if (st.protocolGiven) {
    // compat.c setup_protocol's wording, with krsync's range.
    if (st.protocol < MIN_PROTOCOL) {
      throw new UsageError(`--protocol must be at least ${MIN_PROTOCOL} on the Client.`, RERR_PROTOCOL);
    }
    if (st.protocol > MAX_PROTOCOL) {
      throw new UsageError(`--protocol must be no more than ${MAX_PROTOCOL} on the Client.`, RERR_PROTOCOL);
    }
    o.protocol = st.protocol;
  }

  if (args.length === 0) throw new UsageError("", RERR_SYNTAX, true);
}

/** The usage text: what krsync supports, in rsync's --help layout. */
export function helpText(): string {
  const rows: [string, string][] = [
    ["--verbose, -v", "increase verbosity"],
    ["--quiet, -q", "suppress non-error messages"],
    ["--checksum, -c", "skip based on checksum, not mod-time & size"],
    ["--archive, -a", "archive mode is -rlptgoD (no -A,-X,-U,-N,-H)"],
    ["--no-OPTION", "turn off an implied OPTION (e.g. --no-D)"],
    ["--recursive, -r", "recurse into directories"],
    ["--inc-recursive, --i-r", "enable incremental recursion"],
    ["--no-inc-recursive", "disable incremental recursion"],
    ["--relative, -R", "use relative path names"],
    ["--no-implied-dirs", "don't send implied directories with --relative"],
    ["--inplace", "update destination files in-place"],
    ["--append", "append data onto shorter files"],
    ["--dirs, -d", "transfer directories without recursing"],
    ["--links, -l", "copy symlinks as symlinks"],
    ["--hard-links, -H", "preserve hard links"],
    ["--perms, -p", "preserve permissions"],
    ["--owner, -o", "preserve owner (super-user only)"],
    ["--group, -g", "preserve group"],
    ["--devices", "preserve device files (super-user only)"],
    ["--specials", "preserve special files"],
    ["-D", "same as --devices --specials"],
    ["--times, -t", "preserve modification times"],
    ["--sparse, -S", "turn sequences of nulls into sparse blocks"],
    ["--dry-run, -n", "perform a trial run with no changes made"],
    ["--whole-file, -W", "copy files whole (w/o delta-xfer algorithm)"],
    ["--no-whole-file, --no-W", "use the delta-xfer algorithm"],
    ["--checksum-choice=STR", "choose the checksum algorithm (aka --cc)"],
    ["--one-file-system, -x", "don't cross filesystem boundaries"],
    ["--block-size=SIZE, -B", "force a fixed checksum block-size"],
    ["--rsh=COMMAND, -e", "specify the remote shell to use"],
    ["--rsync-path=PROGRAM", "specify the rsync to run on remote machine"],
    ["--del", "an alias for --delete-during"],
    ["--delete", "delete extraneous files from dest directories"],
    ["--delete-before", "receiver deletes before xfer, not during"],
    ["--delete-during", "receiver deletes during the transfer"],
    ["--delete-delay", "find deletions during, delete after"],
    ["--delete-after", "receiver deletes after transfer, not during"],
    ["--delete-excluded", "also delete excluded files from dest directories"],
    ["--force", "force deletion of directories even if not empty"],
    ["--partial", "keep partially transferred files"],
    ["--numeric-ids", "don't map uid/gid values by user/group name"],
    ["--timeout=SECONDS", "set I/O timeout in seconds"],
    ["--contimeout=SECONDS", "set daemon connection timeout in seconds"],
    ["--ignore-times, -I", "don't skip files that match size and time"],
    ["--size-only", "skip files that match in size"],
    ["--compress, -z", "compress file data during the transfer"],
    ["--compress-choice=STR", "choose the compression algorithm (aka --zc)"],
    ["--compress-level=NUM", "explicitly set compression level (aka --zl)"],
    ["--skip-compress=LIST", "skip compressing files with suffix in LIST"],
    ["--filter=RULE, -f", "add a file-filtering RULE"],
    ["-F", "same as --filter='dir-merge /.rsync-filter'"],
    ["", "repeated: --filter='- .rsync-filter'"],
    ["--exclude=PATTERN", "exclude files matching PATTERN"],
    ["--exclude-from=FILE", "read exclude patterns from FILE"],
    ["--include=PATTERN", "don't exclude files matching PATTERN"],
    ["--include-from=FILE", "read include patterns from FILE"],
    ["--blocking-io", "use blocking I/O for the remote shell"],
    ["--stats", "give some file-transfer stats"],
    ["--human-readable, -h", "output numbers in a human-readable format"],
    ["--progress", "show progress during transfer"],
    ["-P", "same as --partial --progress"],
    ["--itemize-changes, -i", "output a change-summary for all updates"],
    ["--list-only", "list the files instead of copying them"],
    ["--bwlimit=RATE", "limit socket I/O bandwidth"],
    ["--protocol=NUM", `force an older protocol version to be used (${MIN_PROTOCOL}-${MAX_PROTOCOL})`],
    ["--port=PORT", "specify double-colon alternate port number"],
    ["--password-file=FILE", "read daemon-access password from FILE"],
    ["--no-motd", "suppress daemon-mode MOTD"],
    ["--ipv4, -4", "prefer IPv4"],
    ["--ipv6, -6", "prefer IPv6"],
    ["--version, -V", "print the version + other info and exit"],
    ["--help, -h (*)", "show this help (* -h is help only on its own)"],
  ];
  const kube: [string, string][] = [
    ["--namespace=NS", "Kubernetes namespace for TYPE/NAME:PATH arguments"],
    ["--container=NAME", "container to run rsync in"],
    ["--context=NAME", "kubeconfig context to use"],
    ["--kubeconfig=FILE", "kubeconfig file to use"],
    ["--pod-wait=SECONDS", "wait up to SECONDS for a ready pod"],
    ["--all-pods", "sync with every pod of a workload, not just one"],
    ["--remote-tmp=DIR", "directory in the pod for krsync's helper files"],
  ];
  const fmt = (r: [string, string]) => (r[0] === "" ? " ".repeat(25) + r[1] : r[0].padEnd(24) + " " + r[1]);
  return [
    "Usage: krsync [OPTION]... SRC [SRC]... DEST",
    "  or   krsync [OPTION]... SRC [SRC]... [USER@]HOST:DEST",
    "  or   krsync [OPTION]... SRC [SRC]... [USER@]HOST::DEST",
    "  or   krsync [OPTION]... SRC [SRC]... rsync://[USER@]HOST[:PORT]/DEST",
    "  or   krsync [OPTION]... SRC [SRC]... [NAMESPACE/]TYPE/NAME:DEST",
    "  or   krsync [OPTION]... [USER@]HOST:SRC [DEST]",
    "  or   krsync [OPTION]... [USER@]HOST::SRC [DEST]",
    "  or   krsync [OPTION]... rsync://[USER@]HOST[:PORT]/SRC [DEST]",
    "  or   krsync [OPTION]... [NAMESPACE/]TYPE/NAME:SRC [DEST]",
    "  or   krsync bench [--quick] [--scenario NAME]... (krsync against native rsync; bench --help)",
    "TYPE is pod (po), deploy(ment), sts/statefulset, rs/replicaset, job or ds/daemonset.",
    "",
    "Options",
    ...rows.map(fmt),
    "",
    "Kubernetes options",
    ...kube.map(fmt),
    "",
  ].join("\n");
}
