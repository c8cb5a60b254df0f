// Deterministic "nasty" trees for differential tests against native rsync.
//
// buildNastyTree(dir, { variant: 'base' }) builds a tree full of edge cases (odd names, block
// boundary sizes, every kind of symlink, hard-link groups, specials, odd modes and mtimes,
// foreign owners when root). mutateTree(dir) turns a base tree into the 'mutated' variant in place,
// the way a developer's tree changes between two syncs. Everything is derived from a seeded PRNG
// keyed by path, so two builds (in any directory) produce identical snapshots.
//
// Mtimes are set with utimensat to the nanosecond, without following symlinks or opening
// specials: python3's os.utime(ns=...) in one process when available, else `touch -h -d @S.N`
// per distinct time. Node's utimes takes a double and cannot express nanoseconds exactly.

import { execFileSync } from "node:child_process";
import {
  chmodSync,
  closeSync,
  existsSync,
  lchownSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  writeSync,
  ftruncateSync,
  fstatSync,
  utimesSync,
  lutimesSync,
} from "node:fs";
import { join } from "node:path";

export type TreeVariant = "base" | "mutated";

export interface NastyTreeOptions {
  variant: TreeVariant;
  /** Include root-only entries: char/block devices, foreign owners, 0000/0111 files. */
  root: boolean;
  /** Size of big/big.bin in MiB (plus 17 bytes); default 40. 0 leaves the file out. */
  bigFileMB?: number;
}

// ---------------------------------------------------------------------------------------------
// Seeded PRNG (sfc32) and content generators

export class Prng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: string) {
    const h = (salt: number): number => {
      let x = (0x811c9dc5 ^ salt) >>> 0;
      for (const byte of Buffer.from(seed, "utf8")) {
        x ^= byte;
        x = Math.imul(x, 0x01000193) >>> 0;
      }
      return x;
    };
    this.a = h(1);
    this.b = h(2);
    this.c = h(3);
    this.d = h(4) | 1;
    for (let i = 0; i < 16; i++) this.next();
  }

  /** Next uint32. */
  next(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor((this.next() / 0x1_0000_0000) * n);
  }

  bytes(n: number): Buffer {
    const words = new Uint32Array(Math.ceil(n / 4));
    for (let i = 0; i < words.length; i++) words[i] = this.next();
    return Buffer.from(words.buffer, 0, n);
  }
}

/** Incompressible bytes, a function of (key, n) only. */
export function randomContent(key: string, n: number): Buffer {
  return new Prng(`bytes:${key}`).bytes(n);
}

const WORDS = (
  "the quick brown fox jumps over lazy dog rsync delta block checksum rolling file list " +
  "generator receiver sender protocol hard link symlink device socket fifo mtime owner group"
).split(" ");

/** Compressible, line-structured text of exactly n bytes. */
export function textContent(key: string, n: number): Buffer {
  const rng = new Prng(`text:${key}`);
  const parts: string[] = [];
  let len = 0;
  while (len < n) {
    const lineWords = 3 + rng.int(9);
    const line: string[] = [];
    for (let i = 0; i < lineWords; i++) line.push(WORDS[rng.int(WORDS.length)]!);
    const s = line.join(" ") + "\n";
    parts.push(s);
    len += s.length;
  }
  return Buffer.from(parts.join(""), "latin1").subarray(0, n);
}

// ---------------------------------------------------------------------------------------------
// Well-known paths and times (tests use these to predict rsync behaviour)

const SEC = 1_000_000_000n;

/** Times in nanoseconds since the epoch. */
export const NASTY_TIMES = {
  y1960: -315_619_200n * SEC, // 1960-01-01T00:00:00Z
  y1960frac: -123_456_789n * SEC - 987_654_321n, // 1966, negative with nanoseconds
  beforeEpoch: -1n * SEC + 250_000_000n, // -0.75 s
  epoch: 0n,
  int31max: 2_147_483_647n * SEC, // 2038-01-19, last signed-32 second
  int31: 2_147_483_648n * SEC, // first second past signed 32-bit
  uint32max: 4_294_967_295n * SEC + 999_999_999n,
  uint32: 4_294_967_296n * SEC, // 2106: wraps to 0 in 32 bits
  huge5e9: 5_000_000_000n * SEC + 123_456_789n, // 2128
  nsec1: 1_600_000_000n * SEC + 1n,
  nsec999: 1_600_000_000n * SEC + 999_999_999n,
} as const;

export const NASTY_PATHS = {
  big: "big/big.bin",
  /** Files/dirs/links whose mtime is before 1970 or beyond 2^32 s (protocols < 30 mangle them). */
  mtimeOutOfU32: [
    "times/y1960",
    "times/y1960frac",
    "times/beforeEpoch",
    "times/uint32",
    "times/huge5e9",
    "times/olddir",
    "times/hugedir",
  ],
  /** Symlinks with an mtime of their own. */
  symlinkWithTime: ["times/link1960", "times/linkhuge", "links/rel"],
  /** Mutation: content differs, size and mtime identical: only --checksum sees it. */
  sameSizeSameMtime: "work/same-size-same-mtime.txt",
  /** Mutation: only the nanoseconds of the mtime change (rsync's quick check looks at seconds). */
  nsecOnly: "times/nsec-only",
  /** Mutation: split off its hard-link group with identical content and mtime. */
  splitSameContent: ["hardlinks/split-a", "hardlinks/split-b"],
  /** Mutation: split off its group, identical (empty) content, new mtime. */
  splitEmptyNewMtime: ["hardlinks/empty-a", "hardlinks/empty-b"],
  renamedFrom: "work/rename-me.dat",
  renamedTo: "work/renamed.dat",
} as const;

/** Mtime of a regular file / special, by path (base and mutated variants differ by days). */
function fileMtime(rel: string, variant: TreeVariant): bigint {
  const rng = new Prng(`mtime:${variant}:${rel}`);
  const base = variant === "base" ? 1_600_000_000 : 1_700_000_000;
  const sec = BigInt(base + rng.int(30_000_000));
  const nsec = rng.int(4) === 0 ? 0n : BigInt(rng.int(1_000_000_000));
  return sec * SEC + nsec;
}

function dirMtime(rel: string, variant: TreeVariant): bigint {
  const rng = new Prng(`dirmtime:${variant}:${rel}`);
  const base = variant === "base" ? 1_550_000_000 : 1_710_000_000;
  return BigInt(base + rng.int(30_000_000)) * SEC + BigInt(rng.int(1_000_000_000));
}

function touchArg(ns: bigint): string {
  const neg = ns < 0n;
  const a = neg ? -ns : ns;
  return `@${neg ? "-" : ""}${a / SEC}.${(a % SEC).toString().padStart(9, "0")}`;
}

// ---------------------------------------------------------------------------------------------
// Builder: records modes/owners/times and applies them in the right order

interface Owner {
  uid: number;
  gid: number;
}

class TreeWriter {
  private readonly times = new Map<string, bigint>();
  private readonly dirModes = new Map<string, number>();
  /** Dirs whose entries changed (mutation): they get a new mtime at the end. */
  readonly touchedDirs = new Set<string>();

  constructor(
    readonly top: string,
    readonly variant: TreeVariant,
  ) {}

  abs(rel: string): string {
    return rel === "." ? this.top : join(this.top, rel);
  }

  private touchParent(rel: string): void {
    this.touchedDirs.add(rel.includes("/") ? rel.slice(0, rel.lastIndexOf("/")) : ".");
  }

  private owner(rel: string, o?: Owner): void {
    if (o) lchownSync(this.abs(rel), o.uid, o.gid);
  }

  dir(rel: string, mode = 0o755, opts: { mtime?: bigint; owner?: Owner } = {}): void {
    mkdirSync(this.abs(rel), { recursive: true });
    this.touchParent(rel);
    this.owner(rel, opts.owner);
    this.dirModes.set(rel, mode);
    this.times.set(rel, opts.mtime ?? dirMtime(rel, this.variant));
  }

  file(
    rel: string,
    content: Buffer,
    mode = 0o644,
    opts: { mtime?: bigint; owner?: Owner; sparseHole?: number } = {},
  ): void {
    const p = this.abs(rel);
    this.touchParent(rel);
    if (opts.sparseHole) {
      // data, a hole of sparseHole bytes, data
      const fd = openSync(p, "w");
      const half = content.length >> 1;
      writeSync(fd, content, 0, half, 0);
      writeSync(fd, content, half, content.length - half, half + opts.sparseHole);
      closeSync(fd);
    } else {
      writeFileSync(p, content);
    }
    this.owner(rel, opts.owner); // chown before chmod: chown clears setuid/setgid
    chmodSync(p, mode);
    this.times.set(rel, opts.mtime ?? fileMtime(rel, this.variant));
  }

  symlink(rel: string, target: string, opts: { mtime?: bigint; owner?: Owner } = {}): void {
    symlinkSync(target, this.abs(rel));
    this.touchParent(rel);
    this.owner(rel, opts.owner);
    this.times.set(rel, opts.mtime ?? fileMtime(rel, this.variant));
  }

  hardlink(rel: string, existing: string): void {
    linkSync(this.abs(existing), this.abs(rel));
    this.touchParent(rel);
  }

  fifo(rel: string, mode = 0o644, opts: { mtime?: bigint; owner?: Owner } = {}): void {
    execFileSync("mkfifo", ["-m", "600", "--", this.abs(rel)]);
    this.touchParent(rel);
    this.owner(rel, opts.owner);
    chmodSync(this.abs(rel), mode);
    this.times.set(rel, opts.mtime ?? fileMtime(rel, this.variant));
  }

  device(
    rel: string,
    kind: "c" | "b",
    major: number,
    minor: number,
    mode = 0o640,
    opts: { mtime?: bigint; owner?: Owner } = {},
  ): void {
    execFileSync("mknod", ["--", this.abs(rel), kind, String(major), String(minor)]);
    this.touchParent(rel);
    this.owner(rel, opts.owner);
    chmodSync(this.abs(rel), mode);
    this.times.set(rel, opts.mtime ?? fileMtime(rel, this.variant));
  }

  /** Remove any entry (recursively). */
  remove(rel: string): void {
    rmSync(this.abs(rel), { recursive: true, force: false });
    this.touchParent(rel);
    for (const k of [...this.times.keys()]) if (k === rel || k.startsWith(rel + "/")) this.times.delete(k);
  }

  rename(from: string, to: string): void {
    renameSync(this.abs(from), this.abs(to));
    this.touchParent(from);
    this.touchParent(to);
  }

  setMtime(rel: string, ns: bigint): void {
    this.times.set(rel, ns);
  }

  chmod(rel: string, mode: number): void {
    if (lstatSync(this.abs(rel)).isDirectory()) this.dirModes.set(rel, mode);
    else chmodSync(this.abs(rel), mode);
  }

  /** Apply dir modes, then all mtimes (non-dirs first, dirs last, "." last of all). */
  finish(): void {
    for (const d of this.touchedDirs) {
      if (!this.times.has(d) && existsSync(this.abs(d))) this.times.set(d, dirMtime(d, this.variant));
    }
    for (const [rel, mode] of this.dirModes) chmodSync(this.abs(rel), mode);
    const isDirRel = (rel: string): boolean => lstatSync(this.abs(rel)).isDirectory();
    const entries = [...this.times.entries()].filter(([rel]) => existsSync(this.abs(rel)) || isLinkAt(this.abs(rel)));
    const nonDirs = entries.filter(([rel]) => !isDirRel(rel));
    const dirs = entries.filter(([rel]) => isDirRel(rel));
    dirs.sort((a, b) => depth(b[0]) - depth(a[0]));
    applyTimes(nonDirs.map(([rel, ns]) => [this.abs(rel), ns]));
    applyTimes(dirs.map(([rel, ns]) => [this.abs(rel), ns]));
  }
}

function isLinkAt(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

function depth(rel: string): number {
  return rel === "." ? -1 : rel.split("/").length;
}

/** Set atime=mtime=ns on each path without following symlinks (utimensat, exact to the ns). */
function applyTimes(list: Array<[string, bigint]>): void {
  if (list.length === 0) return;
  const py = pythonForTimes();
  if (py) {
    // one process for all paths: os.utime(ns=...) takes integer nanoseconds
    const script =
      "import json,os,sys\n" +
      "for p,t in json.load(sys.stdin):\n" +
      " t=int(t); os.utime(p, ns=(t,t), follow_symlinks=False)\n";
    execFileSync(py, ["-c", script], { input: JSON.stringify(list.map(([p, ns]) => [p, ns.toString()])) });
    return;
  }
  const byTime = new Map<bigint, string[]>();
  for (const [p, ns] of list) {
    const l = byTime.get(ns);
    if (l) l.push(p);
    else byTime.set(ns, [p]);
  }
  for (const [ns, paths] of byTime) {
    for (let i = 0; i < paths.length; i += 200) {
      execFileSync("touch", ["-h", "-c", "-d", touchArg(ns), "--", ...paths.slice(i, i + 200)]);
    }
  }
}

let pythonChecked: string | null | undefined;

/** A python3 to set times in one process (KRSYNC_TEST_TOUCH=1 forces `touch`), else null. */
function pythonForTimes(): string | null {
  if (pythonChecked !== undefined) return pythonChecked;
  pythonChecked = null;
  if (process.env.KRSYNC_TEST_TOUCH) return null;
  for (const c of ["/usr/bin/python3", "python3"]) {
    try {
      execFileSync(c, ["-c", "import os; os.utime"], { stdio: "ignore" });
      pythonChecked = c;
      break;
    } catch {
      // try the next one
    }
  }
  return pythonChecked;
}

// ---------------------------------------------------------------------------------------------
// The base tree

const ROOT_OWNER: Owner = { uid: 0, gid: 0 };
const FOREIGN: Owner = { uid: 12345, gid: 54321 };
const DAEMON: Owner = { uid: 1, gid: 1 }; // Debian: daemon:x:1:1
const BIN: Owner = { uid: 2, gid: 2 }; // Debian: bin:x:2:2

/** 20 levels under deep/, each component 30+ bytes. */
export const DEEP_DIR = Array.from({ length: 20 }, (_, i) => `level-${String(i + 1).padStart(2, "0")}-${"x".repeat(10)}`)
  .reduce((acc, c) => `${acc}/${c}`, "deep");

/** Names (one path component each) that stress quoting, encoding and length. */
export const ODD_NAMES: readonly string[] = [
  "with space.txt",
  " leading space",
  "trailing space ",
  "\u00e9.txt", // é NFC
  "e\u0301.txt", // é NFD: a different name on Linux
  "caf\u00e9 cr\u00e8me br\u00fbl\u00e9e.txt",
  "\u65e5\u672c\u8a9e\u30c6\u30ad\u30b9\u30c8.txt",
  "\u{1f600} emoji.bin",
  "quote'single",
  'quote"double',
  "back\\slash",
  "dollar$HOME",
  "`tick`",
  "star*?[x]",
  "semi;amp&pipe|gt>lt<",
  "paren(1){2}",
  "hash#bang!",
  "new\nline",
  "tab\there",
  "cr\rreturn",
  "-leading-dash",
  "--rsync-option",
  "h:colon",
  ".hidden",
  "...",
  "~tilde",
  "a".repeat(251) + ".txt", // 255 bytes
  "\u00fc".repeat(127) + "x", // 255 bytes, 2-byte chars
  "\u8a9e".repeat(85), // 255 bytes, 3-byte chars
  "\u{1f600}".repeat(63) + "abc", // 255 bytes, 4-byte chars
];

export const BOUNDARY_SIZES: readonly number[] = [
  0, 1, 699, 700, 701, 1400, 489_999, 490_000, 490_001, 490_008, 1_048_576 + 3,
];

function buildBase(w: TreeWriter, opts: NastyTreeOptions): void {
  const root = opts.root;
  const bigMB = opts.bigFileMB ?? 40;
  const t = (rel: string, n: number): Buffer => textContent(rel, n);
  const r = (rel: string, n: number): Buffer => randomContent(rel, n);

  w.dir(".", 0o755);
  w.file("VARIANT", Buffer.from("base\n"));
  w.file("plain.txt", t("plain.txt", 5000));

  // names
  w.dir("names");
  ODD_NAMES.forEach((n, i) => w.file(`names/${n}`, i % 2 ? r(`names/${n}`, 100 + i * 37) : t(`names/${n}`, 50 + i * 41)));
  w.dir("names/dir with space");
  w.file("names/dir with space/inner file", t("inner", 333));
  w.dir("names/e\u0301-nfd-dir");
  w.file("names/e\u0301-nfd-dir/\u00e9-nfc-inside", t("nfdnfc", 10));
  const longDir = "names/" + "d".repeat(255);
  w.dir(longDir);
  w.file(`${longDir}/${"f".repeat(255)}`, t("longlong", 77));

  // deep
  {
    let p = "";
    for (const c of DEEP_DIR.split("/")) {
      p = p ? `${p}/${c}` : c;
      w.dir(p);
    }
    w.file(`${DEEP_DIR}/leaf.txt`, t("leaf", 1234));
    w.dir(`${DEEP_DIR}/empty-at-bottom`);
  }

  // empty things
  w.dir("empty");
  w.file("empty/empty-file", Buffer.alloc(0));
  w.dir("empty/empty-dir");
  w.dir("empty/nested-empty/a/b/c");
  for (const d of ["empty/nested-empty", "empty/nested-empty/a", "empty/nested-empty/a/b"]) w.dir(d);

  // sizes around block boundaries (700-byte blocks up to 490000 = 700^2 bytes)
  w.dir("sizes");
  for (const n of BOUNDARY_SIZES) w.file(`sizes/s${n}`, r(`sizes/s${n}`, n));
  w.file("sizes/sparse", r("sparse", 64 * 1024), 0o644, { sparseHole: 1 << 20 });
  w.file("sizes/zeros-1M", Buffer.alloc(1 << 20));

  // big
  w.dir("big");
  if (bigMB > 0) w.file(NASTY_PATHS.big, r("big", Math.round(bigMB * 1024 * 1024) + 17));

  // symlinks
  w.dir("links");
  w.symlink("links/rel", "../plain.txt");
  w.symlink("links/abs", "/usr/bin/env");
  w.symlink("links/abs-dangling", "/nonexistent/krsync/abs");
  w.symlink("links/dangling", "does-not-exist");
  w.symlink("links/todir", "../deep");
  w.symlink("links/dot", ".");
  w.symlink("links/dotdot", "..");
  w.symlink("links/escape", "../../../../../../etc/passwd");
  w.symlink("links/escape-rel", "../../outside-the-tree/file");
  w.symlink("links/long", Array.from({ length: 20 }, (_, i) => `component-${i}-${"L".repeat(86)}`).join("/"));
  w.symlink("links/link2link", "rel");
  w.symlink("links/chain3", "link2link");
  w.symlink("links/self", "self");
  w.symlink("links/spaces", "../names/with space.txt");
  w.symlink("links/nfd", "../names/e\u0301.txt");
  w.symlink("links/newline", "../names/new\nline");
  w.symlink("links/with space", "target with space");

  // hard links
  w.dir("hardlinks");
  w.file("hardlinks/pair-a", t("pair", 4000));
  w.hardlink("hardlinks/pair-b", "hardlinks/pair-a");
  w.file("hardlinks/trio-1", r("trio", 70_001));
  w.hardlink(`${DEEP_DIR}/trio-2`, "hardlinks/trio-1");
  w.hardlink("names/trio-3", "hardlinks/trio-1");
  w.file("hardlinks/split-a", t("split", 3000));
  w.hardlink("hardlinks/split-b", "hardlinks/split-a");
  w.file("hardlinks/join-a", t("join-a", 2000));
  w.file("hardlinks/join-b", t("join-b", 2100));
  w.file("hardlinks/empty-a", Buffer.alloc(0));
  w.hardlink("hardlinks/empty-b", "hardlinks/empty-a");
  w.file("hardlinks/changing-a", r("changing", 9000));
  w.hardlink("sizes/changing-b", "hardlinks/changing-a");

  // specials
  w.dir("special");
  w.fifo("special/fifo", 0o644);
  w.fifo("special/fifo-0600", 0o600);
  if (root) {
    w.device("special/chr", "c", 1, 3, 0o666);
    w.device("special/chr-big", "c", 254, 70_000, 0o600);
    w.device("special/blk", "b", 8, 1, 0o660);
    w.device("special/blk-minor300", "b", 7, 300, 0o640);
  }

  // modes
  w.dir("modes");
  const modeFiles: Array<[string, number]> = [
    ["m4755", 0o4755],
    ["m2755", 0o2755],
    ["m6711", 0o6711],
    ["m1644", 0o1644],
    ["m0444", 0o444],
    ["m0600", 0o600],
    ["m0777", 0o777],
    ["m0640", 0o640],
  ];
  if (root) modeFiles.push(["m0000", 0o000], ["m0111", 0o111], ["m0200", 0o200]);
  for (const [n, m] of modeFiles) w.file(`modes/${n}`, t(`modes/${n}`, 200), m);
  w.dir("modes/d1777", 0o1777);
  w.file("modes/d1777/inside", t("d1777", 10));
  w.dir("modes/d0700", 0o700);
  w.file("modes/d0700/inside", t("d0700", 10));
  w.dir("modes/d2755", 0o2755);
  w.file("modes/d2755/inside", t("d2755", 10));
  w.dir("modes/d0711", 0o711);
  w.dir("modes/d0555", 0o555); // read-only dir (empty)

  // times
  w.dir("times");
  for (const [k, ns] of Object.entries(NASTY_TIMES)) w.file(`times/${k}`, t(`times/${k}`, 64), 0o644, { mtime: ns });
  w.file(NASTY_PATHS.nsecOnly, t("nsec-only", 99), 0o644, { mtime: 1_650_000_000n * SEC + 111_111_111n });
  w.dir("times/olddir", 0o755, { mtime: NASTY_TIMES.y1960 });
  w.file("times/olddir/x", t("olddir-x", 5));
  w.dir("times/hugedir", 0o755, { mtime: NASTY_TIMES.huge5e9 });
  w.symlink("times/link1960", "y1960", { mtime: NASTY_TIMES.y1960 + 5n });
  w.symlink("times/linkhuge", "huge5e9", { mtime: NASTY_TIMES.huge5e9 + 7n });

  // owners (root only)
  if (root) {
    w.dir("owners", 0o755);
    w.file("owners/u12345", t("u12345", 100), 0o644, { owner: FOREIGN });
    w.file("owners/daemon", t("daemon", 100), 0o644, { owner: DAEMON });
    w.file("owners/bin", t("bin", 100), 0o640, { owner: BIN });
    w.file("owners/daemon-uid-foreign-gid", t("dufg", 100), 0o644, { owner: { uid: DAEMON.uid, gid: FOREIGN.gid } });
    w.file("owners/setuid-daemon", t("sud", 100), 0o4755, { owner: DAEMON });
    w.dir("owners/foreign-dir", 0o750, { owner: FOREIGN });
    w.file("owners/foreign-dir/root-file", t("rf", 10), 0o644, { owner: ROOT_OWNER });
    w.symlink("owners/foreign-link", "u12345", { owner: FOREIGN });
    w.fifo("owners/bin-fifo", 0o644, { owner: BIN });
    w.device("owners/daemon-chr", "c", 1, 7, 0o644, { owner: DAEMON });
  }

  // a developer's working dir (targets of most mutations)
  w.dir("work");
  w.dir("work/src");
  w.file("work/src/main.c", t("main.c", 20_000));
  w.file("work/src/util.c", t("util.c", 8_000));
  w.file("work/src/old.c", t("old.c", 3_000));
  w.dir("work/build");
  w.dir("work/build/obj");
  w.file("work/build/obj/main.o", r("main.o", 30_000));
  w.file("work/build/obj/util.o", r("util.o", 12_000));
  w.file("work/build/app", r("app", 50_000), 0o755);
  w.file("work/README", t("README", 1500));
  w.file("work/log.txt", t("log", 100_000));
  w.file("work/data.bin", r("data", 2_000_000));
  w.file(NASTY_PATHS.renamedFrom, r("rename-me", 300_000));
  w.file("work/script.sh", t("script", 400), 0o644);
  w.file("work/touched.txt", t("touched", 900));
  w.file(NASTY_PATHS.sameSizeSameMtime, t("same-size", 5000));

  // entries that change type in the mutated variant
  w.dir("typechange");
  w.file("typechange/f2d", t("f2d", 10));
  w.dir("typechange/d2f");
  w.file("typechange/d2f/a", t("d2f-a", 10));
  w.dir("typechange/d2f/sub");
  w.file("typechange/d2f/sub/b", t("d2f-b", 10));
  w.file("typechange/f2l", t("f2l", 10));
  w.symlink("typechange/l2f", "../plain.txt");
  w.dir("typechange/d2l");
  w.file("typechange/d2l/c", t("d2l-c", 10));
  w.symlink("typechange/l2d", "elsewhere");
  w.file("typechange/f2fifo", t("f2fifo", 10));
}

// ---------------------------------------------------------------------------------------------
// The mutation

function mutate(w: TreeWriter, root: boolean): void {
  const t = (rel: string, n: number): Buffer => textContent(`mut:${rel}`, n);
  const r = (rel: string, n: number): Buffer => randomContent(`mut:${rel}`, n);
  const abs = (rel: string): string => w.abs(rel);
  const editAt = (rel: string, spots: Array<[number, number]>): void => {
    const fd = openSync(abs(rel), "r+");
    for (const [off, len] of spots) writeSync(fd, r(`${rel}@${off}`, len), 0, len, off);
    closeSync(fd);
    w.setMtime(rel, fileMtime(rel, "mutated"));
  };
  const append = (rel: string, n: number): void => {
    const fd = openSync(abs(rel), "a");
    writeSync(fd, r(`${rel}+append`, n));
    closeSync(fd);
    w.setMtime(rel, fileMtime(rel, "mutated"));
  };
  const truncate = (rel: string, n: number): void => {
    const fd = openSync(abs(rel), "r+");
    ftruncateSync(fd, n);
    closeSync(fd);
    w.setMtime(rel, fileMtime(rel, "mutated"));
  };
  const mtimeOf = (rel: string): bigint => lstatSync(abs(rel), { bigint: true }).mtimeNs;

  writeFileSync(abs("VARIANT"), "mutated\n"); // same size: give it a new mtime too
  w.setMtime("VARIANT", fileMtime("VARIANT", "mutated"));

  // edits in the middle of big files, appends, truncation
  if (existsSync(abs(NASTY_PATHS.big))) {
    const size = fstatSize(abs(NASTY_PATHS.big));
    editAt(NASTY_PATHS.big, [
      [Math.floor(size * 0.3), 4096],
      [Math.floor(size * 0.5) + 1, 3000],
      [Math.floor(size * 0.8) + 7, 4096],
    ]);
  }
  editAt("work/data.bin", [[1_000_003, 2048]]);
  append("work/data.bin", 50_000);
  editAt("sizes/s1048579", [[524_288, 100]]);
  append("sizes/s490000", 1);
  append("work/README", 321);
  truncate("work/log.txt", 30_000);
  truncate("sizes/s701", 700);
  editAt("work/src/main.c", [[10_000, 200]]);

  // deleted files and dirs
  w.remove("work/src/old.c");
  w.remove("work/build");
  w.remove("sizes/s1");
  w.remove("names/quote'single");
  w.remove("empty/nested-empty/a/b/c");
  w.remove(`${DEEP_DIR}/empty-at-bottom`);

  // new files and dirs
  w.file("work/src/new.c", t("new.c", 6_000));
  w.dir("work/newdir");
  w.dir("work/newdir/sub");
  w.file("work/newdir/sub/file.txt", t("newdir-file", 777));
  w.dir("newtop", 0o750);
  w.file("names/new file \u00fc.txt", t("new-u", 50));
  w.file("names/nfd-new-e\u0301", t("nfd-new", 51));
  w.symlink("links/new-link", "../work/src/new.c");
  w.fifo("special/new-fifo", 0o640);

  // renamed file (same content and mtime, new name)
  w.rename(NASTY_PATHS.renamedFrom, NASTY_PATHS.renamedTo);
  w.setMtime(NASTY_PATHS.renamedTo, mtimeOf(NASTY_PATHS.renamedTo));

  // type changes
  w.remove("typechange/f2d");
  w.dir("typechange/f2d");
  w.file("typechange/f2d/child", t("f2d-child", 20));
  w.remove("typechange/d2f");
  w.file("typechange/d2f", t("d2f-now-file", 30));
  w.remove("typechange/f2l");
  w.symlink("typechange/f2l", "../plain.txt");
  w.remove("typechange/l2f");
  w.file("typechange/l2f", t("l2f-now-file", 40));
  w.remove("typechange/d2l");
  w.symlink("typechange/d2l", "../work");
  w.remove("typechange/l2d");
  w.dir("typechange/l2d");
  w.remove("typechange/f2fifo");
  w.fifo("typechange/f2fifo");

  // mode-only and mtime-only changes
  w.chmod("work/script.sh", 0o755);
  w.chmod("modes/m0640", 0o600);
  w.chmod("modes/d0700", 0o750);
  w.setMtime("work/touched.txt", fileMtime("work/touched.txt", "mutated"));
  w.setMtime("links/dangling", fileMtime("links/dangling", "mutated"));
  w.setMtime(NASTY_PATHS.nsecOnly, mtimeOf(NASTY_PATHS.nsecOnly) + 555_555_555n);

  // symlink retargeted
  w.remove("links/rel");
  w.symlink("links/rel", "../work/README", { mtime: fileMtime("links/rel", "base") });

  // same size, same mtime, different content: only --checksum notices
  {
    const rel = NASTY_PATHS.sameSizeSameMtime;
    const keep = mtimeOf(rel);
    const old = readFileSync(abs(rel));
    const neu = Buffer.from(old);
    neu.write("CHANGED!", 2500, "latin1");
    writeFileSync(abs(rel), neu);
    w.setMtime(rel, keep);
  }

  // hard-link group membership
  w.hardlink("hardlinks/pair-c", "hardlinks/pair-a"); // 2 -> 3 members
  w.remove("names/trio-3"); // 3 -> 2 members
  {
    // split with identical content and mtime
    const rel = NASTY_PATHS.splitSameContent[1];
    const keep = mtimeOf(rel);
    const data = readFileSync(abs(rel));
    w.remove(rel);
    w.file(rel, data, 0o644, { mtime: keep });
  }
  w.remove("hardlinks/join-b"); // two files become one group
  w.hardlink("hardlinks/join-b", "hardlinks/join-a");
  editAt("hardlinks/changing-a", [[100, 50]]); // shared inode: both members change
  w.remove("hardlinks/empty-b");
  w.file("hardlinks/empty-b", Buffer.alloc(0), 0o644, { mtime: fileMtime("hardlinks/empty-b", "mutated") });

  if (root) {
    lchownSync(abs("owners/u12345"), 23456, 54321);
    lchownSync(abs("owners/bin"), BIN.uid, DAEMON.gid);
    chmodSync(abs("owners/bin"), 0o640);
    w.remove("special/chr");
    w.device("special/chr", "c", 1, 5, 0o666);
    w.setMtime("special/chr", fileMtime("special/chr", "base"));
  }
}

function fstatSize(p: string): number {
  const fd = openSync(p, "r");
  try {
    return fstatSync(fd).size;
  } finally {
    closeSync(fd);
  }
}

// ---------------------------------------------------------------------------------------------
// Public API

/**
 * Build the tree into `dir` (created if missing; must be empty). Deterministic: the same options
 * give the same snapshot in any directory (owners are the caller's when `root` is false).
 */
export function buildNastyTree(dir: string, opts: NastyTreeOptions): void {
  if (opts.root && !(typeof process.getuid === "function" && process.getuid() === 0)) {
    throw new Error("buildNastyTree: root: true needs uid 0 (chown, mknod)");
  }
  mkdirSync(dir, { recursive: true });
  const w = new TreeWriter(dir, "base");
  buildBase(w, opts);
  w.finish();
  if (opts.variant === "mutated") mutateTree(dir, { root: opts.root });
}

/**
 * Turn a base tree into the mutated variant in place. `root` defaults to whether the base tree
 * was built with root-only entries.
 */
export function mutateTree(dir: string, opts: { root?: boolean } = {}): void {
  const marker = join(dir, "VARIANT");
  if (!existsSync(marker) || readFileSync(marker, "utf8") !== "base\n") {
    throw new Error(`mutateTree: ${dir} is not a base nasty tree`);
  }
  const root = opts.root ?? existsSync(join(dir, "owners"));
  const w = new TreeWriter(dir, "mutated");
  mutate(w, root);
  w.finish();
}

// ---------------------------------------------------------------------------------------------
// A small tree of nanosecond mtimes a double of seconds cannot hold

/**
 * Mtimes (ns) of buildNsecTree's entries: none is representable as a double of seconds (at
 * these epochs a double resolves ~240 ns), so only a nanosecond time setter reproduces them.
 */
export const NSEC_TREE_TIMES: ReadonlyMap<string, bigint> = new Map([
  [".", 1_700_000_009n * SEC + 999_999_999n],
  ["a.txt", 1_700_000_000n * SEC + 123_456_789n],
  ["one-ns.bin", 1_700_000_000n * SEC + 1n],
  ["last-ns.bin", 1_700_000_000n * SEC + 999_999_999n],
  ["before-1970.txt", -1_000_000_000n * SEC - 123_456_789n],
  ["year-2128.txt", 5_000_000_000n * SEC + 123_456_789n],
  ["d", 1_700_000_000n * SEC + 987_654_321n],
  ["d/e.txt", 1_699_999_999n * SEC + 555_555_555n],
  ["d/link", 1_700_000_002n * SEC + 222_222_222n],
  ["d/dangling", 1_700_000_003n * SEC + 333_333_333n],
  ["d/pipe", 1_700_000_004n * SEC + 444_444_444n],
  ["d/sub", 1_234_567_890n * SEC + 123_456_789n],
  ["d/sub/big.bin", 1_700_000_005n * SEC + 555_555_557n],
]);

/** Files, directories, symlinks and a fifo with the mtimes of NSEC_TREE_TIMES. */
export function buildNsecTree(dir: string): void {
  mkdirSync(dir, { recursive: true });
  const w = new TreeWriter(dir, "base");
  const t = (rel: string): { mtime: bigint } => ({ mtime: NSEC_TREE_TIMES.get(rel)! });
  w.dir("d", 0o755, t("d"));
  w.dir("d/sub", 0o750, t("d/sub"));
  for (const rel of ["a.txt", "before-1970.txt", "year-2128.txt", "d/e.txt"]) w.file(rel, textContent(rel, 3000), 0o644, t(rel));
  for (const rel of ["one-ns.bin", "last-ns.bin"]) w.file(rel, randomContent(rel, 777), 0o600, t(rel));
  w.file("d/sub/big.bin", randomContent("d/sub/big.bin", 300_000), 0o644, t("d/sub/big.bin"));
  w.symlink("d/link", "e.txt", t("d/link"));
  w.symlink("d/dangling", "../nowhere", t("d/dangling"));
  w.fifo("d/pipe", 0o644, t("d/pipe"));
  w.setMtime(".", NSEC_TREE_TIMES.get(".")!);
  w.finish();
}

/** Change buildNsecTree's files so that a second run sends deltas, with new nanosecond mtimes. */
export function mutateNsecTree(dir: string): Map<string, bigint> {
  const w = new TreeWriter(dir, "mutated");
  const times = new Map(NSEC_TREE_TIMES);
  const big = join(dir, "d/sub/big.bin");
  const fd = openSync(big, "r+");
  writeSync(fd, randomContent("nsec-change", 4096), 0, 4096, 100_000);
  closeSync(fd);
  times.set("d/sub/big.bin", 1_700_000_100n * SEC + 100_000_001n);
  writeFileSync(join(dir, "a.txt"), textContent("a.txt changed", 3100));
  times.set("a.txt", 1_700_000_100n * SEC + 876_543_211n);
  for (const rel of ["d/sub/big.bin", "a.txt"]) w.setMtime(rel, times.get(rel)!);
  for (const rel of ["d/sub", "d", "."]) w.setMtime(rel, times.get(rel)!);
  w.finish();
  return times;
}

// ---------------------------------------------------------------------------------------------
// A wide and deep tree: hundreds of directories, so an incremental-recursion sender needs many
// sub-lists (and more entries than its look-ahead)

/** What buildWideTree makes: shape knobs for tests. */
export const WIDE_TREE = { top: 6, mid: 4, low: 3, leaf: 2, filesPerDir: 4, chain: 18 } as const;

/**
 * A deterministic tree of ~300 directories and ~1500 entries: nested directories with files,
 * hard links across directories (-H), symlinks (one dangling), empty directories, a deep chain,
 * and per-directory `.rsync-filter` files (for a dir-merge rule) excluding "*.tmp" below t2 and
 * "skip-*" directories below t4/s1. The "mutated" variant edits, grows, shrinks and removes
 * files, removes a subtree, adds new directories and links, and retargets a symlink. Mtimes are
 * whole seconds, set after the contents.
 */
export function buildWideTree(dir: string, variant: TreeVariant): void {
  const T = WIDE_TREE;
  const mutated = variant === "mutated";
  const dirs: string[] = [];
  const files: string[] = [];
  const links: string[] = [];
  const edited = new Set<string>();
  const mkdir = (rel: string) => {
    mkdirSync(join(dir, rel), { recursive: true });
    const parts = rel.split("/");
    for (let i = 1; i <= parts.length; i++) {
      const d = parts.slice(0, i).join("/");
      if (!dirs.includes(d)) dirs.push(d);
    }
  };
  const file = (rel: string, key: string, size: number) => {
    writeFileSync(join(dir, rel), size > 2000 ? randomContent(key, size) : textContent(key, size));
    files.push(rel);
  };
  mkdirSync(dir, { recursive: true });
  file("top.txt", "top", 120);
  const fill = (d: string) => {
    for (let i = 0; i < T.filesPerDir; i++) {
      const rel = `${d}/f${i}.txt`;
      const rng = new Prng(`size:${rel}`);
      let size = rng.int(1800);
      let key = rel;
      if (mutated && rng.int(7) === 0) {
        key += ":edited"; // same size, new content (and a newer mtime)
        edited.add(rel);
      }
      if (mutated && rng.int(11) === 0) size += 300; // grown
      if (mutated && rng.int(13) === 0) continue; // removed
      file(rel, key, size);
    }
    if (mutated && new Prng(`new:${d}`).int(9) === 0) file(`${d}/new.txt`, `${d}:new`, 77);
  };
  for (let a = 0; a < T.top; a++) {
    const ta = `t${a}`;
    mkdir(ta);
    fill(ta);
    for (let b = 0; b < T.mid; b++) {
      const sb = `${ta}/s${b}`;
      if (mutated && a === 5 && b === 3) continue; // a whole subtree removed
      mkdir(sb);
      fill(sb);
      for (let c = 0; c < T.low; c++) {
        const uc = `${sb}/u${c}`;
        mkdir(uc);
        fill(uc);
        for (let d = 0; d < T.leaf; d++) {
          const vd = `${uc}/v${d}`;
          mkdir(vd);
          fill(vd);
        }
      }
    }
  }
  if (mutated) {
    mkdir("t0/s0/brand-new/deeper");
    file("t0/s0/brand-new/deeper/n.txt", "n", 500);
  }
  // Larger files, for the delta (a changed block in the mutated one).
  const big = (rel: string) => {
    const data = randomContent(rel, 200_000);
    if (mutated) data.fill(7, 100_000, 100_500);
    writeFileSync(join(dir, rel), data);
    files.push(rel);
  };
  big("t1/big.bin");
  big("t3/s2/u0/big.bin");
  // Hard links across directories, and one inside a directory.
  const hl = (from: string, to: string) => linkSync(join(dir, from), join(dir, to));
  file("t0/group-a.txt", "group-a", 333);
  hl("t0/group-a.txt", "t3/s1/u2/v1/hl-a1.txt");
  hl("t0/group-a.txt", "t5/hl-a2.txt");
  file("t2/s0/u1/group-b.bin", "group-b", 4321);
  hl("t2/s0/u1/group-b.bin", "t4/s3/u0/v0/hl-b1.bin");
  hl("t2/s0/u1/group-b.bin", "t2/s0/u1/hl-b2.bin");
  if (mutated) {
    file("t1/linked-new.txt", "linked-new", 99);
    hl("t1/linked-new.txt", "t4/hl-new.txt");
  }
  // Symlinks.
  const sl = (target: string, rel: string) => {
    symlinkSync(target, join(dir, rel));
    links.push(rel);
  };
  sl("../top.txt", "t0/to-top");
  sl(mutated ? "s1/f1.txt" : "s0/f0.txt", "t1/to-sub");
  sl("no-such-target", "t2/s2/dangling");
  sl("u0", "t3/s0/to-dir");
  // Empty directories.
  mkdir("t1/empty");
  mkdir("t2/s1/empty-a");
  mkdir("t2/s1/empty-b/empty-c");
  // A deep chain.
  let chain = "t5/chain";
  for (let i = 0; i < T.chain; i++) {
    chain += `/c${i}`;
    mkdir(chain);
    if (i % 4 === 0) file(`${chain}/leaf.txt`, chain, 50 + i);
  }
  // Dir-merge filter files and what they exclude.
  writeFileSync(join(dir, "t2/.rsync-filter"), "- *.tmp\n");
  files.push("t2/.rsync-filter");
  file("t2/s3/scratch.tmp", "tmp1", 40);
  file("t2/s3/u1/v0/more.tmp", "tmp2", 40);
  file("t0/kept.tmp", "tmp3", 40); // not below t2: sent
  writeFileSync(join(dir, "t4/s1/.rsync-filter"), "- skip-*/\n");
  files.push("t4/s1/.rsync-filter");
  mkdir("t4/s1/skip-me");
  file("t4/s1/skip-me/hidden.txt", "hidden", 30);
  mkdir("t4/s1/u0/skip-too");
  file("t4/s1/skip-file.txt", "skipfile", 30); // a file: not excluded by "skip-*/"

  // Mtimes: files and links, then directories deepest first.
  const mtime = (rel: string) => 1_600_000_000 + new Prng(`mtime:${rel}`).int(30_000_000);
  for (const f of files) {
    const t = mtime(f) + (edited.has(f) ? 1000 : 0);
    utimesSync(join(dir, f), t, t);
  }
  for (const l of links) lutimesSync(join(dir, l), mtime(l), mtime(l));
  for (const d of [...dirs].sort((x, y) => y.split("/").length - x.split("/").length)) utimesSync(join(dir, d), mtime(d), mtime(d));
  utimesSync(dir, mtime("."), mtime("."));
}

/** Files a destination holds that the wide tree has not (for --delete), one under a filter. */
export function addWideExtras(dest: string): void {
  for (const [rel, text] of [
    ["t1/s0/extra.txt", "extra\n"],
    ["t3/extra-dir/x/y.txt", "y\n"],
    ["t2/s3/keep-me.tmp", "protected by the receiver's dir-merge rule\n"],
    ["t5/chain/c0/c1/stale.txt", "stale\n"],
  ] as const) {
    mkdirSync(join(dest, rel, ".."), { recursive: true });
    writeFileSync(join(dest, rel), text);
    // The same times in every destination (the new entries and the directories they touched).
    const parts = rel.split("/");
    for (let i = parts.length; i > 0; i--) utimesSync(join(dest, ...parts.slice(0, i)), 1_650_000_000 + i, 1_650_000_000 + i);
  }
}
