// The filter matcher against native rsync: for many filter sets, (a) the names a sender-side
// FilterList admits walking a tree vs what `rsync -r --list-only` lists, (b) what a
// receiver-side FilterList protects from --delete vs what `rsync -r --delete` leaves in a
// destination with extra files, (c) the rule strings the client sends vs the bytes native rsync
// puts on the wire (pull and push, protocols 27-32), (d) krsync as the sender (a push to
// `rsync --server` and a local copy) against native rsync doing the same: the resulting trees.

import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseCommandLine } from "../src/cli/options.js";
import { FilterList, parseFilterRules, wireFilterRules } from "../src/protocol/filter.js";
import { UsageError } from "../src/protocol/errcode.js";
import { sync } from "../src/api.js";
import { rsyncPath, tmpDir } from "./helpers/env.js";
import { FAKE_HOST, rshArg } from "./helpers/rsync.js";
import { diffSnapshots, snapshotTree } from "./helpers/snapshot.js";

// ------------------------------------------------------------------------------------ trees

const base = tmpDir("krsync-filter-");
const src = join(base, "src");
const dstTemplate = join(base, "dst-template");

function put(root: string, rel: string, content = `${rel}\n`): void {
  const p = join(root, rel);
  mkdirSync(join(p, ".."), { recursive: true });
  writeFileSync(p, content);
}

const SRC_FILES = [
  "a.c",
  "b.h",
  "c.o",
  "keep.o",
  "core",
  ".hidden",
  "tilde~",
  "#hash",
  ".#lock",
  ",comma",
  "with space.txt",
  "br[ack]et.c",
  "back\\slash.c",
  "x?y",
  "star*name",
  "UPPER.TXT",
  "Mixed9.c",
  "café.txt",
  "file.bak",
  "foo",
  "dir1/a.c",
  "dir1/a.o",
  "dir1/README",
  "dir1/sub/deep.c",
  "dir1/sub/deep.o",
  "dir1/sub/x.h",
  "dir2/keep/x.c",
  "dir2/keep/x.o",
  "dir2/tmp/t1",
  "dir2/tmp/t2.c",
  "dir2/a.c",
  "dir2/foo/bar.c",
  "build/obj/x.o",
  "build/obj/y.o",
  "build/out.c",
  "CVS/Entries",
  ".git/config",
  ".git/objects/o1",
  "deep/a/b/c/d.txt",
  "deep/a/b/c/e.c",
  "deep/a/x.c",
  "deep/a/b/sub/s.c",
  "dir with space/f.c",
  "dir with space/g h.o",
  "[brackets]/inner.c",
  "sub/a.c",
  "sub/sub/a.c",
  "tmp/top.c",
];

// Per-directory merge files in the source.
const SRC_MERGE: Record<string, string> = {
  ".rsync-filter": "+ keep.o\n- *.o\n# a comment\n; another\n- /core\n- tmp/\n",
  "dir1/.rsync-filter": "+ a.o\r\n- README\r\n- /sub/deep.c\r\ndir-merge .nested\r\n",
  "dir1/sub/.rsync-filter": "clear\n- x.h\n",
  "dir1/sub/.nested": "- deep.*\n",
  "dir2/.rsync-filter": "- /a.c\n+ foo/\n- f*\n",
  "dir2/keep/.rsync-filter": "- *.c\n",
  "deep/.rsync-filter": "- b/c/\n",
  ".words": "-_*.h +_*.c\n-_x?y",
  "dir1/.words": "+_*.o -_*.c",
  ".excl": "Mixed9.c\n*.txt\n",
  "dir2/.excl": "t1\n",
  ".incl": "*.c\n",
  ".cvsignore": "*.h foo\n",
  "dir2/.cvsignore": "!\na.c\n",
  "deep/.nested": "- x.c\n",
  // "merge NAME" inside a per-dir file: a bare NAME is opened from the transfer root.
  "dir2/.mrg": "merge inc1\nmerge keep/inc2\n",
  inc1: "- x.c\n",
  "dir2/inc1": "- a.c\n",
  "dir2/keep/inc2": "- x.o\n",
};

// A parent-directory merge file, seen only by a dir-merge name with a path (-F).
const PARENT_MERGE = "- UPPER.TXT\n- dir1/a.c\n";

// Extra names in the destination (not in the source).
const DST_EXTRA = [
  "extra.o",
  "extra.c",
  "extra.h",
  "old.bak",
  "dir1/old.o",
  "dir1/sub/old.c",
  "dir1/sub/old.o",
  "dir2/tmp/old",
  "build/obj/stale.o",
  "CVS/Root",
  "gone/x.o",
  "gone/y.c",
  "gone/keep.o",
  "gone/sub/z.o",
  "gone/sub/z.c",
  "gone2/a.c",
  "gone2/deep/p.o",
  "deep/a/b/c/old.txt",
  "dir with space/old h.o",
  "[brackets]/old.c",
  "core.old",
  ".git/extra",
];
const DST_MERGE: Record<string, string> = {
  ".rsync-filter": "- *.o\n- extra.c\n",
  "gone/.rsync-filter": "- y.c\n",
  "gone2/.rsync-filter": "-p *.o\n",
  "dir1/.rsync-filter": "- old.o\n",
  ".cvsignore": "extra.h\n",
};

function buildTrees(): void {
  for (const f of SRC_FILES) put(src, f);
  for (const [f, c] of Object.entries(SRC_MERGE)) put(src, f, c);
  writeFileSync(join(base, ".rsync-filter"), PARENT_MERGE);
  // The destination starts as part of the source plus extras.
  for (const f of SRC_FILES.filter((_, i) => i % 3 !== 0)) put(dstTemplate, f, "old\n");
  for (const f of DST_EXTRA) put(dstTemplate, f);
  for (const [f, c] of Object.entries(DST_MERGE)) put(dstTemplate, f, c);
  // Top-level merge files named on the command line.
  writeFileSync(join(base, "rules.txt"), "# merged\n+ dir1/\n+ dir1/sub/\n+ *.c\n- *\n");
  writeFileSync(join(base, "excludes.txt"), "*.o\r\n; comment\r\n/deep\r\n+ keep.o\n");
  writeFileSync(join(base, "includes.txt"), "*/\n*.c\n- *.h\n");
  writeFileSync(join(base, "nested-merge.txt"), "- *.h\nmerge " + join(base, "rules.txt") + "\n");
}
buildTrees();

// ----------------------------------------------------------------------- simulations (ours)

function readerFor(root: string, overlay?: { root: string; has: (rel: string) => boolean }) {
  return (path: string): Uint8Array | null => {
    let abs = path.startsWith("/") ? path : join(root, path);
    if (overlay && !path.startsWith("/") && overlay.has(path)) abs = join(overlay.root, path);
    try {
      return readFileSync(abs);
    } catch {
      return null;
    }
  };
}

function entries(dir: string): { name: string; isDir: boolean }[] {
  let list;
  try {
    list = readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  return list.map((e) => ({ name: e.name, isDir: e.isDirectory() })).sort((a, b) => (a.name < b.name ? -1 : 1));
}

const child = (dir: string, name: string): string => (dir === "" ? name : `${dir}/${name}`);

/** The names a sender lists: an excluded dir is not descended. */
function senderWalk(root: string, fl: FilterList): Map<string, boolean> {
  const out = new Map<string, boolean>([[".", true]]);
  const walk = (dir: string): void => {
    fl.enterDir(dir);
    const dirs: string[] = [];
    for (const e of entries(join(root, dir))) {
      const p = child(dir, e.name);
      if (fl.check(p, e.isDir) === "exclude") continue;
      out.set(p, e.isDir);
      if (e.isDir) dirs.push(p);
    }
    for (const d of dirs) walk(d);
    fl.leaveDir(dir);
  };
  walk("");
  return out;
}

/** What a receiver's --delete removes from `root` given the sender's names (generator.c delete_in_dir). */
function simulateDelete(root: string, sent: Map<string, boolean>, fl: FilterList): Set<string> {
  const deleted = new Set<string>();
  // delete.c delete_dir_contents: perishable rules do not protect inside a dir being removed.
  const removeDir = (dir: string): boolean => {
    fl.enterDir(dir);
    let emptied = true;
    for (const e of entries(join(root, dir))) {
      const p = child(dir, e.name);
      if (fl.check(p, e.isDir, true) === "exclude") {
        emptied = false;
        continue;
      }
      if (e.isDir && !removeDir(p)) emptied = false;
      else deleted.add(p);
    }
    fl.leaveDir(dir);
    return emptied;
  };
  const walk = (dir: string): void => {
    fl.enterDir(dir);
    const ents = entries(join(root, dir));
    for (const e of ents) {
      const p = child(dir, e.name);
      if (sent.has(p)) continue;
      if (fl.check(p, e.isDir) === "exclude") continue;
      if (!e.isDir || removeDir(p)) deleted.add(p);
    }
    for (const e of ents) {
      const p = child(dir, e.name);
      if (e.isDir && sent.get(p) === true) walk(p);
    }
    fl.leaveDir(dir);
  };
  walk("");
  return deleted;
}

function treePaths(root: string): Set<string> {
  const out = new Set<string>(["."]);
  const walk = (dir: string): void => {
    for (const e of entries(join(root, dir))) {
      const p = child(dir, e.name);
      out.add(p);
      if (e.isDir) walk(p);
    }
  };
  walk("");
  return out;
}

// --------------------------------------------------------------------------- native rsync

function unescapeName(s: string): string {
  // log.c filtered_fwrite: bytes it cannot print come out as \#ooo
  const bytes: number[] = [];
  const raw = Buffer.from(s, "utf8");
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === 0x5c && raw[i + 1] === 0x23 && i + 4 < raw.length + 0 && /^[0-7]{3}$/.test(raw.subarray(i + 2, i + 5).toString())) {
      bytes.push(parseInt(raw.subarray(i + 2, i + 5).toString(), 8));
      i += 4;
    } else bytes.push(raw[i]!);
  }
  return Buffer.from(bytes).toString("utf8");
}

function rsyncRun(args: string[], cwd = base): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(rsyncPath, args, { cwd, encoding: "buffer", env: { ...process.env, CVSIGNORE: "", HOME: base } });
  return { code: r.status ?? -1, stdout: r.stdout.toString("utf8"), stderr: r.stderr.toString("utf8") };
}

function nativeList(args: string[]): Set<string> {
  const r = rsyncRun(["-r", "-8", "--list-only", ...args, `${src}/`]);
  if (r.code !== 0) throw new Error(`rsync --list-only ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
  const out = new Set<string>();
  for (const line of r.stdout.split("\n")) {
    if (line === "") continue;
    const m = /^(\S+) +([\d,]+) (\S+) (\S+) (.*)$/.exec(line);
    if (!m) throw new Error(`unparsed --list-only line: ${line}`);
    out.add(unescapeName(m[5]!));
  }
  return out;
}

const fakeRsh = join(import.meta.dirname, "helpers", "fakersh.sh");

let caseNo = 0;
/** Native --delete into a copy of the destination template; "pull" makes the native client the receiver. */
function nativeDelete(args: string[], mode: "local" | "pull"): { before: string; after: Set<string> } {
  const dst = join(base, `dst-${++caseNo}`);
  const before = join(base, `before-${caseNo}`);
  execFileSync("cp", ["-a", dstTemplate, dst]);
  execFileSync("cp", ["-a", dstTemplate, before]);
  const from = mode === "pull" ? ["-e", fakeRsh, `fake:${src}/`] : [`${src}/`];
  const r = rsyncRun(["-r", "--delete", ...args, ...from, `${dst}/`]);
  if (r.code !== 0) throw new Error(`rsync --delete ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
  return { before, after: treePaths(dst) };
}

/** Our side of (b): the sender's names, then what a receiver's FilterList lets --delete remove. */
function modelDelete(before: string, filters: string[], o: { deleteExcluded: boolean; cvsExclude?: boolean; deleteAfter?: boolean }): Set<string> {
  const env = { home: base, cvsIgnore: "" };
  const common = { deleteExcluded: o.deleteExcluded, cvsExclude: o.cvsExclude ?? false, ...env };
  const rules = parseFilterRules(filters, { readFile: readerFor(base), deleteExcluded: o.deleteExcluded, ...env });
  const sent = senderWalk(src, new FilterList(rules, "sender", { rootDir: src, readMergeFile: readerFor(src), ...common }));
  // --delete-after reads the per-dir files as the transfer left them.
  const overlay = o.deleteAfter ? { root: src, has: (p: string) => sent.has(p) } : undefined;
  const fl = new FilterList(rules, "receiver", { rootDir: before, readMergeFile: readerFor(before, overlay), ...common });
  const deleted = simulateDelete(before, sent, fl);
  const expected = new Set([...treePaths(before)].filter((p) => !deleted.has(p)));
  for (const p of sent.keys()) expected.add(p);
  return expected;
}

// ----------------------------------------------------------------------------- the cases

interface Case {
  name: string;
  args: string[];
  /** Also run the --delete comparison with these extra options (default: [[]]). */
  deleteVariants?: string[][];
  /** Also compare a pull (native client as the receiver, over a remote shell). */
  pull?: boolean;
}

const Fp = (p: string): string => join(base, p);

const CASES: Case[] = [
  { name: "unanchored *.o", args: ["--exclude=*.o"] },
  { name: "anchored file", args: ["--exclude=/a.c"] },
  { name: "anchored nested", args: ["--exclude=/dir1/sub/deep.c"], pull: true },
  { name: "infix slash", args: ["--exclude=dir1/sub"] },
  { name: "infix slash, two levels", args: ["--exclude=a/b/c"] },
  { name: "dir only", args: ["--exclude=sub/"] },
  { name: "dir only wildcard", args: ["--exclude=dir*/"] },
  { name: "everything that is a dir", args: ["--exclude=*/"] },
  { name: "star with dot", args: ["--exclude=deep.*"] },
  { name: "double star infix", args: ["--exclude=**/sub/*.c"] },
  { name: "double star prefix, no slash", args: ["--exclude=**.o"] },
  { name: "double star prefix file", args: ["--exclude=**/deep.c"] },
  { name: "trailing double star", args: ["--exclude=dir1/**"] },
  { name: "triple star suffix", args: ["--exclude=dir2/***"], pull: true },
  { name: "include dir/*** then exclude all", args: ["--include=deep/***", "--exclude=*"] },
  { name: "class upper", args: ["--exclude=[[:upper:]]*"] },
  { name: "class digit inside", args: ["--exclude=*[[:digit:]]*"] },
  { name: "class space", args: ["--exclude=*[[:space:]]*"] },
  { name: "class punct start", args: ["--exclude=[[:punct:]]*"] },
  { name: "range negated", args: ["--exclude=[!a-m]*.c"] },
  { name: "caret negation", args: ["--exclude=[^.]*"] },
  { name: "question mark", args: ["--exclude=?.?"] },
  { name: "question mark multibyte", args: ["--exclude=caf?.txt", "--exclude=caf??.t*"] },
  { name: "escaped brackets", args: ["--exclude=br\\[ack\\]et.c"] },
  { name: "literal brackets dir", args: ["--exclude=\\[brackets\\]/"] },
  { name: "bracket class matching literal", args: ["--exclude=[[]brackets]"] },
  { name: "literal backslash (no wildcard)", args: ["--exclude=back\\slash.c"] },
  { name: "escaped backslash with wildcard", args: ["--exclude=back\\\\slash*"] },
  { name: "escaped question", args: ["--exclude=x\\?y"] },
  { name: "escaped star", args: ["--exclude=star\\*name"] },
  { name: "name with space", args: ["--exclude=with space.txt", "--exclude=g h.o"] },
  { name: "dir with space anchored", args: ["--exclude=/dir with space/"] },
  { name: "dotfiles", args: ["--filter=- .*"] },
  { name: "include c, dirs, exclude rest", args: ["--include=*/", "--include=*.c", "--exclude=*"], pull: true },
  { name: "same via --filter", args: ["--filter=+ */", "--filter=+ *.c", "--filter=- *"] },
  { name: "word rule names", args: ["--filter=include */", "--filter=include *.h", "--filter=exclude *"] },
  { name: "include without dirs", args: ["--include=*.c", "--exclude=*"] },
  { name: "first match wins", args: ["--exclude=*.o", "--include=keep.o"] },
  { name: "first match wins reversed", args: ["--include=keep.o", "--exclude=*.o"] },
  { name: "negated dir rule", args: ["--filter=-! */"], pull: true },
  { name: "negated pattern", args: ["--filter=-! *.c", "--filter=+ *"] },
  { name: "negation with comma", args: ["--filter=+ */", "--filter=-,! *.c"] },
  { name: "underscore separator", args: ["--filter=-_*.h", "--filter=+_*"] },
  { name: "clear", args: ["--exclude=*.o", "--filter=!", "--exclude=*.c"], pull: true },
  { name: "clear word", args: ["--exclude=*.o", "--filter=clear", "--exclude=*.h"] },
  { name: "hide and show", args: ["--filter=S keep.o", "--filter=H *.o", "--filter=hide b.h"], pull: true },
  { name: "sender-only modifier", args: ["--filter=-s *.o"], pull: true },
  { name: "receiver-only modifier", args: ["--filter=-r *.o"], pull: true },
  { name: "protect", args: ["--filter=P *.o", "--filter=protect extra.c"], pull: true },
  { name: "risk then protect", args: ["--filter=R keep*", "--filter=R *.c", "--filter=P *"], pull: true },
  { name: "perishable", args: ["--filter=-p *.o"], pull: true },
  { name: "xattr rule ignored for names", args: ["--filter=-x *.c", "--filter=- *.h"] },
  { name: "absolute path modifier", args: [`--filter=-/ ${src}/dir1/a.c`, `--filter=-/ ${src}/*/tmp`], pull: true },
  { name: "absolute path modifier, no slash", args: ["--filter=-/ a.c"] },
  { name: "cvs exclude rule", args: ["--filter=-C"], pull: true },
  { name: "cvs rule then include", args: ["--filter=-C", "--filter=+ *.o", "--filter=- *.h"] },
  { name: "include before cvs rule", args: ["--filter=+ keep.o", "--filter=-C"] },
  { name: "per-dir cvsignore", args: ["--filter=:C"] },
  { name: "-F", args: ["-F"], pull: true },
  { name: "-FF", args: ["-F", "-F"], pull: true },
  { name: "dir-merge without path (no parent scan)", args: ["--filter=: .rsync-filter"] },
  { name: "dir-merge word form", args: ["--filter=dir-merge /.rsync-filter"] },
  { name: "dir-merge no-inherit", args: ["--filter=:n .rsync-filter"], pull: true },
  { name: "dir-merge exclude-self", args: ["--filter=:e .rsync-filter"], pull: true },
  { name: "dir-merge twice is one", args: ["--filter=: .rsync-filter", "--filter=:n /x/.rsync-filter"] },
  { name: "dir-merge word-split", args: ["--filter=:w .words"], pull: true },
  { name: "dir-merge no-prefix excludes", args: ["--filter=:- .excl"] },
  { name: "dir-merge no-prefix includes", args: ["--filter=:+ .incl", "--filter=+ */", "--filter=- *"] },
  { name: "dir-merge in a dir-merge file", args: ["--filter=: .nested", "-F"] },
  { name: "dir-merge after excludes", args: ["--exclude=*.c", "-F"] },
  { name: "dir-merge ancestor via ..", args: ["--filter=: ../.rsync-filter"] },
  { name: "merge inside a dir-merge file", args: ["--filter=: .mrg"] },
  { name: "merge file", args: [`--filter=merge ${Fp("rules.txt")}`], pull: true },
  { name: "merge short form + exclude-self", args: [`--filter=.e ${Fp("rules.txt")}`] },
  { name: "nested merge", args: [`--filter=. ${Fp("nested-merge.txt")}`] },
  { name: "merge no-prefix", args: [`--filter=.- ${Fp("includes.txt")}`] },
  { name: "exclude-from", args: [`--exclude-from=${Fp("excludes.txt")}`] },
  { name: "include-from then exclude all", args: [`--include-from=${Fp("includes.txt")}`, "--exclude=*"] },
  { name: "delete-excluded", args: ["--exclude=*.o", "--exclude=/gone*"], deleteVariants: [[], ["--delete-excluded"]], pull: true },
  { name: "-F with delete-excluded", args: ["-F"], deleteVariants: [["--delete-excluded"], ["--delete-after"]], pull: true },
  { name: "protect with delete-excluded", args: ["--filter=P extra.*", "--exclude=*.o"], deleteVariants: [["--delete-excluded"]], pull: true },
];

describe("FilterList vs rsync -r --list-only (sender side)", () => {
  it("has at least 40 filter sets", () => expect(CASES.length).toBeGreaterThanOrEqual(40));
  for (const c of CASES) {
    it(c.name, () => {
      const expected = nativeList(c.args);
      const cl = parseCommandLine(["-r", ...c.args, `${src}/`, "dst/"], {});
      const rules = parseFilterRules(cl.options.filters, { readFile: readerFor(base), home: base, cvsIgnore: "" });
      const fl = new FilterList(rules, "sender", { rootDir: src, readMergeFile: readerFor(src), home: base, cvsIgnore: "" });
      const got = new Set(senderWalk(src, fl).keys());
      expect([...got].sort()).toEqual([...expected].sort());
    });
  }
});

describe("FilterList vs rsync -r --delete (receiver side)", () => {
  for (const c of CASES) {
    for (const extra of c.deleteVariants ?? [[]]) {
      const args = [...extra, ...c.args];
      for (const mode of ["local", "pull"] as const) {
        if (mode === "pull" && !c.pull) continue;
        it(`${mode}: ${c.name}${extra.length ? ` ${extra.join(" ")}` : ""}`, () => {
          const { before, after } = nativeDelete(args, mode);
          const o = parseCommandLine(["-r", "--delete", ...args, `${src}/`, "dst/"], {}).options;
          const expected = modelDelete(before, o.filters, { deleteExcluded: o.deleteExcluded, deleteAfter: extra.includes("--delete-after") });
          expect([...after].sort()).toEqual([...expected].sort());
        });
      }
    }
  }

  // The -C option (krsync's command line does not take it yet; the module does).
  const CVS_CASES: { args: string[]; mode: "local" | "pull" }[] = [
    { args: [], mode: "local" },
    { args: [], mode: "pull" },
    { args: ["--exclude=*.c"], mode: "pull" },
    { args: ["--delete-excluded"], mode: "pull" },
    { args: ["--delete-excluded", "--exclude=*.c"], mode: "pull" },
  ];
  for (const cc of CVS_CASES) {
    it(`${cc.mode}: -C ${cc.args.join(" ")}`, () => {
      const { before, after } = nativeDelete(["-C", ...cc.args], cc.mode);
      const o = parseCommandLine(["-r", "--delete", ...cc.args, `${src}/`, "dst/"], {}).options;
      const expected = modelDelete(before, o.filters, { deleteExcluded: o.deleteExcluded, cvsExclude: true });
      expect([...after].sort()).toEqual([...expected].sort());
    });
  }
});

describe("krsync's sender walks with the rules as native rsync's does (push and local copy)", () => {
  const senderCases = CASES.flatMap((c) => (c.deleteVariants ?? [[]]).map((extra) => ({ name: c.name, args: [...extra, ...c.args] })));
  const modes = ["local", "push"] as const;
  for (const c of senderCases) {
    for (const mode of modes) {
      for (const protocol of mode === "push" ? [27, 32] : [32]) {
        it(`${mode} p${protocol}: ${c.name} ${c.args.filter((a) => a.startsWith("--delete")).join(" ")}`, async () => {
          const n = ++caseNo;
          const nativeDst = join(base, `snd-native-${n}`);
          const ourDst = join(base, `snd-krsync-${n}`);
          execFileSync("cp", ["-a", dstTemplate, nativeDst]);
          execFileSync("cp", ["-a", dstTemplate, ourDst]);
          const args = ["-a", "--delete", `--protocol=${protocol}`, ...c.args];
          const remote = (d: string) => (mode === "push" ? ["-e", fakeRsh, `${src}/`, `fake:${d}/`] : [`${src}/`, `${d}/`]);
          const r = rsyncRun([...args, ...remote(nativeDst)]);
          const oursRemote = mode === "push" ? ["-e", rshArg(), `--rsync-path=${rsyncPath}`, `${src}/`, `${FAKE_HOST}:${ourDst}/`] : [`${src}/`, `${ourDst}/`];
          const cl = parseCommandLine([...args, ...oursRemote], {});
          const messages: string[] = [];
          const saved = { HOME: process.env.HOME, CVSIGNORE: process.env.CVSIGNORE };
          process.env.HOME = base;
          process.env.CVSIGNORE = "";
          let code: number;
          try {
            const k = await sync({
              ...cl.options,
              source: cl.args.slice(0, -1),
              destination: cl.args[cl.args.length - 1]!,
              events: { message: (level, text) => messages.push(`${level}: ${text}`) },
            });
            code = k.exitCode;
          } catch (e) {
            code = (e as { exitCode?: number }).exitCode ?? -1;
            messages.push(`error: ${(e as Error).message}`);
          } finally {
            for (const [k, v] of Object.entries(saved)) {
              if (v === undefined) delete process.env[k];
              else process.env[k] = v;
            }
          }
          // Rules older protocols cannot carry fail alike (exit 2), before anything is written.
          expect(code, messages.join("\n")).toBe(r.code);
          if (r.code !== 0) {
            expect(r.stderr).toContain("filter rules are too modern for remote rsync.");
            expect(messages.join("\n")).toContain("filter rules are too modern for remote rsync.");
            return;
          }
          expect(messages.filter((m) => m.startsWith("error"))).toEqual([]);
          // A directory the transfer did not set (extra, or excluded) has the mtime its deletions left.
          const nativeSnap = snapshotTree(nativeDst);
          const srcSnap = snapshotTree(src);
          const untouched = (rel: string) => nativeSnap.get(rel)?.type === "dir" && nativeSnap.get(rel)?.mtimeNs !== srcSnap.get(rel)?.mtimeNs;
          const ignore = (rel: string, field: string) => field === "mtime" && untouched(rel);
          expect(diffSnapshots(nativeSnap, snapshotTree(ourDst), { krsyncMtimes: true, ignore })).toEqual([]);
        });
      }
    }
  }
});

describe("rule errors vs rsync's messages", () => {
  const BAD = [
    "foo",
    "p foo",
    "-",
    "+ ",
    "! x",
    "clear x",
    "-z foo",
    ":! x",
    "-e x",
    "-+ x",
    "P,s x",
    "H,r x",
    "-CC",
    "-C+",
    "exclude,foo",
    "merge",
    "hide",
    "-/",
    "merge /nonexistent-krsync-file",
    ".- /nonexistent-krsync-file",
    ".+ /nonexistent-krsync-file",
  ];
  for (const rule of BAD) {
    it(JSON.stringify(rule), () => {
      const r = rsyncRun(["-r", "--list-only", `--filter=${rule}`, `${src}/`]);
      expect(r.code).not.toBe(0);
      let ours: UsageError | null = null;
      try {
        parseFilterRules([rule], { readFile: readerFor(base) });
      } catch (e) {
        ours = e as UsageError;
      }
      expect(ours).toBeInstanceOf(UsageError);
      expect(ours!.message.replace(/^krsync: /, "rsync: ")).toBe(r.stderr.split("\n")[0]);
      expect(ours!.exitCode).toBe(r.code);
    });
  }

  it("a bad rule in a per-dir file (sender side)", () => {
    const root = join(base, "bad-perdir");
    put(root, "ok/x");
    put(root, "ok/.f", "- y\n+ fine\nbogus rule\n");
    const r = rsyncRun(["-r", "--list-only", "--filter=: .f", `${root}/`]);
    const fl = new FilterList(parseFilterRules([": .f"]), "sender", { rootDir: root, readMergeFile: readerFor(root) });
    fl.enterDir("");
    expect(() => fl.enterDir("ok")).toThrow(r.stderr.split("\n")[0]);
  });
});

// -------------------------------------------------------------------------- wire capture

/** A remote shell that records what the client writes to the remote rsync. */
function teeRsh(): string {
  const script = join(base, "tee-rsh.sh");
  if (!existsSync(script)) {
    // (no pipeline: the client waits for this process, which must not wait for the client's EOF)
    writeFileSync(script, '#!/bin/bash\nshift\nexec sh -c "$*" < <(exec tee "$TEE_LOG")\n');
    chmodSync(script, 0o755);
  }
  return script;
}

/** The filter list in a client's output stream: after the version and the negotiated strings. */
function capturedFilterList(bytes: Buffer, protocol: number): string[] | null {
  let i = 4; // int32 protocol version
  if (protocol >= 30) {
    // compat.c negotiate_the_strings: the checksum list (no -z here)
    const len = bytes[i]! & 0x80 ? ((bytes[i]! & 0x7f) << 8) | bytes[i + 1]! : bytes[i]!;
    i += (bytes[i]! & 0x80 ? 2 : 1) + len;
  }
  let data = bytes.subarray(i);
  if (protocol >= 30 && data.length >= 4 && data[3] === 7) {
    // multiplexed: gather MSG_DATA payloads
    const parts: Buffer[] = [];
    let k = 0;
    while (k + 4 <= data.length) {
      const h = data.readUInt32LE(k);
      const n = h & 0xffffff;
      if (h >>> 24 === 7) parts.push(data.subarray(k + 4, k + 4 + n));
      k += 4 + n;
    }
    data = Buffer.concat(parts);
  }
  const out: string[] = [];
  let k = 0;
  for (;;) {
    if (k + 4 > data.length) return null;
    const n = data.readInt32LE(k);
    k += 4;
    if (n === 0) return out;
    if (n < 0 || n > 5120 || k + n > data.length) return null;
    out.push(data.subarray(k, k + n).toString("utf8"));
    k += n;
  }
}

interface WireCase {
  name: string;
  args: string[];
  /** Give native rsync the -C option (krsync's command line lacks it; the module takes cvsExclude). */
  cvs?: boolean;
}

const WIRE_CASES: WireCase[] = [
  { name: "plain", args: ["--exclude=*.o", "--include=keep/", "--exclude=/core"] },
  { name: "prefixed-looking pattern", args: ["--filter=- - odd", "--filter=- + odd"] },
  { name: "sides", args: ["--filter=H *.h", "--filter=S *.c", "--filter=P *.o", "--filter=R keep*", "--filter=-sr both"] },
  { name: "modifiers", args: ["--filter=-! */", "--filter=-p perish", "--filter=-x user.*"] },
  { name: "dir-merge", args: ["-F", "-F", "--filter=:n- .excl", "--filter=:w+ .incl"] },
  { name: "cvs rule", args: ["--filter=-C", "--filter=:C"] },
  { name: "merge expanded", args: [`--filter=merge ${Fp("rules.txt")}`, `--filter=.e ${Fp("includes.txt")}`] },
  { name: "clear", args: ["--exclude=gone", "--filter=!", "--exclude=kept"] },
  { name: "-C option", args: [], cvs: true },
  { name: "-C option after rules", args: ["--exclude=*.x", "--filter=: .rsync-filter", "--filter=:- .cvsignore"], cvs: true },
];

describe("wireFilterRules vs native rsync's wire", () => {
  const log = join(base, "wire.bin");
  const rsh = teeRsh();
  const pullDst = join(base, "pull-dst");
  mkdirSync(pullDst, { recursive: true });
  for (const protocol of [27, 28, 29, 30, 31, 32]) {
    for (const wc of WIRE_CASES) {
      for (const dir of ["pull", "push"] as const) {
        for (const del of [[], ["--delete"], ["--delete", "--delete-excluded"]]) {
          const args = [`--protocol=${protocol}`, ...del, ...wc.args];
          it(`${dir} p${protocol} ${wc.name} ${del.join(" ")}`, () => {
            const cl = parseCommandLine(["-r", ...args, "a/", "b/"], {});
            const o = cl.options;
            let expected: string[] | null | Error;
            try {
              const rules = parseFilterRules(o.filters, { readFile: readerFor(base), deleteExcluded: o.deleteExcluded, protocol, home: base, cvsIgnore: "" });
              expected = wireFilterRules(rules, protocol, {
                role: dir === "pull" ? "receiver" : "sender",
                deleteMode: del.length > 0,
                deleteExcluded: o.deleteExcluded,
                cvsExclude: wc.cvs ?? false,
                home: base,
                cvsIgnore: "",
              });
            } catch (e) {
              expected = e as Error;
            }
            const remote = dir === "pull" ? [`fake:${src}/`, `${pullDst}/`] : [`${src}/`, `fake:${join(base, "push-dst")}/`];
            const r = spawnSync(rsyncPath, ["-r", "-n", "-e", rsh, ...(wc.cvs ? ["-C"] : []), ...args, ...remote], {
              encoding: "buffer",
              env: { ...process.env, TEE_LOG: log, HOME: base, CVSIGNORE: "" },
            });
            const stderr = r.stderr.toString();
            if (expected instanceof Error) {
              expect(stderr).toContain(expected.message);
              return;
            }
            expect(r.status, stderr).toBe(0);
            const got = capturedFilterList(readFileSync(log), protocol);
            if (expected === null) {
              // Nothing sent: what follows the set-up is the file list, not a list of rules.
              expect(got === null || got.length > 0 ? "no list" : "empty list").toBe("no list");
            } else expect(got).toEqual(expected);
          });
        }
      }
    }
  }
});


