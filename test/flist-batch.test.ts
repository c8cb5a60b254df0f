// Golden tests against native rsync: its --write-batch file records the sender's stream, file
// lists included, byte for byte. For protocols 27-32 and several option sets we check that
// - the decoder reads every list and every attribute the tree has (lstat is the oracle),
// - the sorted, cleaned lists match rsync's receiver (--debug=FLIST3 prints them),
// - hard-link groups match the inodes,
// - the encoder, given the decoded entries, reproduces rsync's bytes exactly (lists, id lists).
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { md4 } from "hash-wasm";
import { beforeAll, describe, expect, it } from "vitest";
import {
  FLAG_CONTENT_DIR,
  FLAG_HLINKED,
  FLAG_IMPLIED_DIR,
  FLAG_MOD_NSEC,
  FLAG_TOP_DIR,
  isDevice,
  isDir,
  isLink,
  isReg,
  type FileEntry,
} from "../src/protocol/fileentry.js";
import { CF_ID0_NAMES, FileListEncoder, flistIncRecurse } from "../src/protocol/flist.js";
import { HardLinkMatcher } from "../src/protocol/flist-hlink.js";
import { sortAndCleanFileList } from "../src/protocol/flist-sort.js";
import { applyIdNames, encodeIdLists } from "../src/protocol/idlist.js";
import { Writer } from "../src/protocol/wire.js";
import { parseDebugFlist, readBatchFileLists, writeBatch, type BatchFileLists } from "./helpers/batch.js";
import { isRoot, rsyncPath, tmpDir } from "./helpers/env.js";
import { buildNastyTree } from "./helpers/tree.js";

const haveRsync = existsSync(rsyncPath);
const PROTOCOLS = [27, 28, 29, 30, 31, 32];

interface Stat {
  mode: number;
  size: number;
  sec: number;
  nsec: number;
  uid: number;
  gid: number;
  dev: number;
  ino: number;
  nlink: number;
  major: number;
  minor: number;
}

function statTree(root: string): Map<string, Stat> {
  const out = new Map<string, Stat>();
  const visit = (rel: string): void => {
    const abs = rel === "." ? root : join(root, rel);
    const st = lstatSync(abs, { bigint: true });
    let sec = st.mtimeNs / 1_000_000_000n;
    if (st.mtimeNs < 0n && sec * 1_000_000_000n !== st.mtimeNs) sec -= 1n;
    const rdev = st.rdev;
    out.set(rel, {
      mode: Number(st.mode),
      size: Number(st.size),
      sec: Number(sec),
      nsec: Number(st.mtimeNs - sec * 1_000_000_000n),
      uid: Number(st.uid),
      gid: Number(st.gid),
      dev: Number(st.dev),
      ino: Number(st.ino),
      nlink: Number(st.nlink),
      major: Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn)),
      minor: Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn)),
    });
    if (st.isDirectory()) {
      for (const n of readdirSync(abs)) visit(rel === "." ? n : `${rel}/${n}`);
    }
  };
  visit(".");
  return out;
}

function idNames(file: string): Map<number, string> {
  const m = new Map<number, string>();
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const f = line.split(":");
    if (f.length >= 3 && !m.has(Number(f[2]))) m.set(Number(f[2]), f[0]!);
  }
  return m;
}

interface Case {
  label: string;
  args: string[];
  checksum: boolean;
  hlinks: boolean;
  numericIds: boolean;
  minProtocol?: number;
}

const CASES: Case[] = [
  { label: "-aH", args: ["-aH"], checksum: false, hlinks: true, numericIds: false },
  { label: "-aHc", args: ["-aHc"], checksum: true, hlinks: true, numericIds: false },
  { label: "-a --numeric-ids", args: ["-a", "--numeric-ids"], checksum: false, hlinks: false, numericIds: true },
  { label: "-aH --no-inc-recursive", args: ["-aH", "--no-inc-recursive"], checksum: false, hlinks: true, numericIds: false, minProtocol: 30 },
  { label: "-aHc --no-inc-recursive", args: ["-aHc", "--no-inc-recursive"], checksum: true, hlinks: true, numericIds: false, minProtocol: 30 },
];

describe.skipIf(!haveRsync)("file lists from native rsync batches", () => {
  let base: string;
  let src: string;
  let dst: string;
  let stats: Map<string, Stat>;
  const users = idNames("/etc/passwd");
  const groups = idNames("/etc/group");

  beforeAll(() => {
    base = tmpDir("krsync-flist-");
    src = join(base, "src");
    dst = join(base, "dst");
    mkdirSync(src);
    buildNastyTree(src, { variant: "base", root: isRoot(), bigFileMB: 0 });
    // A socket too (specials), and a name whose unshared part is over 255 bytes.
    try {
      execFileSync("python3", ["-c", "import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])", join(src, "special", "sock")]);
    } catch {
      // no python3: the tree just has no socket
    }
    mkdirSync(join(src, "n".repeat(200)));
    writeFileSync(join(src, "n".repeat(200), "m".repeat(255)), "long");
    execFileSync(rsyncPath, ["-aH", `${src}/`, `${dst}/`]);
    stats = statTree(src);
  });

  for (const cs of CASES) {
    for (const p of PROTOCOLS) {
      if (cs.minProtocol && p < cs.minProtocol) continue;
      it(`protocol ${p}, ${cs.label}`, async () => {
        const batchFile = join(base, `batch-${p}-${cs.label.replace(/[^a-zA-Z]+/g, "_")}`);
        const { batch, output } = writeBatch(batchFile, [...cs.args, `--protocol=${p}`, "--debug=FLIST3"], [`${src}/`], `${dst}/`);
        const r = readBatchFileLists(batch, { preserveSpecials: true, numericIds: cs.numericIds });
        expect(r.header.protocol).toBe(p);
        const inc = flistIncRecurse(r.ctx);
        expect(inc).toBe(p >= 30 && !cs.args.includes("--no-inc-recursive"));
        if (r.idLists) {
          for (const l of r.lists) applyIdNames(l.wire, r.idLists);
        }
        await checkAttributes(r, p, cs, stats, src, users, groups);
        checkSorted(r, p, output);
        checkHardLinks(r, p, cs, stats);
        checkReencode(r, batch, p, cs, stats);
        if (p < 30) expect(r.ioErrorWord).toBe(0);
        for (const l of r.lists) expect(l.ioError).toBe(0);
      });
    }
  }

  // -R: implied parent dirs (FLAG_IMPLIED_DIR), names with a leading '/' (an absolute source)
  // mixed with relative ones ("/./"), stripped only after sorting.
  for (const p of PROTOCOLS) {
    for (const noInc of p >= 30 ? [false, true] : [false]) {
      it(`protocol ${p}, -aHR${noInc ? " --no-inc-recursive" : ""}`, () => {
        const batchFile = join(base, `batch-R-${p}-${noInc}`);
        const d = join(base, `rdst-${p}-${noInc}`);
        const args = ["-aHR", `--protocol=${p}`, "--debug=FLIST3", ...(noInc ? ["--no-inc-recursive"] : [])];
        const { batch, output } = writeBatch(batchFile, args, [`${base}/./src/hardlinks`, `${src}/links`], `${d}/`);
        const r = readBatchFileLists(batch, { preserveSpecials: true, relativePaths: true });
        const resolve = (raw: string): string => (raw.startsWith("/") ? raw : join(base, raw));
        const names = new Set<string>();
        for (const l of r.lists) {
          for (const e of l.wire) {
            names.add(e.name);
            const st = lstatSync(resolve(e.name));
            expect(e.mode, e.name).toBe(st.mode);
            // Parents of the named sources are implied dirs (protocol >= 30 marks them).
            const implied = isDir(e.mode) && !e.name.includes("hardlinks") && !e.name.includes("links");
            if (p >= 30) expect((e.flags & FLAG_IMPLIED_DIR) !== 0, e.name).toBe(implied);
          }
        }
        expect(names.has("src")).toBe(true);
        expect(names.has(`${src}/links`)).toBe(true);
        expect(names.has("src/hardlinks/pair-a")).toBe(true);
        checkSorted(r, p, output, true);
        const statOf = (raw: string): Stat => {
          const st = lstatSync(resolve(raw), { bigint: true });
          const sec = Number(st.mtimeNs / 1_000_000_000n);
          return { mode: Number(st.mode), size: Number(st.size), sec, nsec: 0, uid: 0, gid: 0, dev: Number(st.dev), ino: Number(st.ino), nlink: Number(st.nlink), major: 0, minor: 0 };
        };
        checkReencode(r, batch, p, { label: "-aHR", args, checksum: false, hlinks: true, numericIds: false }, statOf);
        rmSync(d, { recursive: true, force: true });
      });
    }
  }

  it("sort order and duplicate cleaning match rsync's receiver", () => {
    const s1 = join(base, "s1");
    const s2 = join(base, "s2");
    const names = ["a", "a.b", "a-b", "ab", "a b", "b", "-x", "~", "é", "z", "A", "\u00ff", "日本"];
    for (const d of [s1, s2]) mkdirSync(d);
    for (const n of names) {
      mkdirSync(join(s1, n));
      writeFileSync(join(s1, n, "f"), "x");
      writeFileSync(join(s1, `${n}.txt`), "x");
    }
    // s2: a dir where s1 has a file of the same name, a file where s1 has a dir, and equal dirs.
    mkdirSync(join(s2, "a.txt"));
    writeFileSync(join(s2, "a.txt", "inner"), "y");
    writeFileSync(join(s2, "ab"), "file over dir");
    mkdirSync(join(s2, "b"));
    writeFileSync(join(s2, "b", "g"), "y");
    writeFileSync(join(s2, "b.txt"), "dup file");
    for (const p of PROTOCOLS) {
      const d = join(base, `sortdst-${p}`);
      const { batch, output } = writeBatch(
        join(base, `sortbatch-${p}`),
        ["-r", "--no-inc-recursive", `--protocol=${p}`, "--debug=FLIST3"],
        [`${s1}/`, `${s2}/`],
        `${d}/`,
      );
      const r = readBatchFileLists(batch, { preserveSpecials: false });
      checkSorted(r, p, output);
      rmSync(d, { recursive: true, force: true });
    }
  });
});

async function checkAttributes(
  r: BatchFileLists,
  p: number,
  cs: Case,
  stats: Map<string, Stat>,
  src: string,
  users: Map<number, string>,
  groups: Map<number, string>,
): Promise<void> {
  const seen = new Set<string>();
  for (const l of r.lists) {
    for (const e of l.wire) {
      expect(seen.has(e.name), e.name).toBe(false);
      seen.add(e.name);
      const st = stats.get(e.name);
      expect(st, e.name).toBeDefined();
      const s = st!;
      const what = `${e.name} @${p}`;
      expect(e.mode, what).toBe(s.mode);
      expect(e.size, what).toBe(isDevice(s.mode) || (s.mode & 0o170000) === 0o010000 || (s.mode & 0o170000) === 0o140000 ? 0 : s.size);
      // Protocols < 30 carry mtimes as unsigned 32-bit.
      expect(e.mtime, what).toBe(p >= 30 ? s.sec : ((s.sec % 2 ** 32) + 2 ** 32) % 2 ** 32);
      expect(e.mtimeNsec, what).toBe(p >= 31 ? s.nsec : 0);
      expect((e.flags & FLAG_MOD_NSEC) !== 0, what).toBe(p >= 31 && s.nsec !== 0);
      expect(e.uid, what).toBe(s.uid);
      expect(e.gid, what).toBe(s.gid);
      const inlineOk = !cs.numericIds;
      const zeroOk = r.lists.length > 1 || (p >= 30 && (r.header.compatFlags & CF_ID0_NAMES) !== 0);
      expect(e.userName, what).toBe(inlineOk && (s.uid !== 0 || zeroOk) ? users.get(s.uid) : undefined);
      expect(e.groupName, what).toBe(inlineOk && (s.gid !== 0 || zeroOk) ? groups.get(s.gid) : undefined);
      if (isDevice(s.mode)) {
        expect([e.rdevMajor, e.rdevMinor], what).toEqual([s.major, s.minor]);
      } else {
        expect(e.rdevMajor, what).toBeUndefined();
      }
      if (isLink(s.mode)) {
        expect(Buffer.from(e.linkTarget!).equals(readlinkSync(join(src, e.name), { encoding: "buffer" })), what).toBe(true);
      } else {
        expect(e.linkTarget, what).toBeUndefined();
      }
      if (cs.checksum && isReg(s.mode)) {
        const data = readFileSync(join(src, e.name));
        const want = p >= 30 ? createHash("md5").update(data).digest("hex") : await md4(data);
        expect(Buffer.from(e.checksum!).toString("hex"), what).toBe(want);
      } else {
        expect(e.checksum, what).toBeUndefined();
      }
      if (isDir(s.mode)) {
        // A recursive transfer of "src/": the root is the top dir, every dir a content dir.
        expect(e.flags & (FLAG_TOP_DIR | FLAG_CONTENT_DIR | FLAG_IMPLIED_DIR), what).toBe(
          e.name === "." ? FLAG_TOP_DIR | FLAG_CONTENT_DIR : FLAG_CONTENT_DIR,
        );
      }
    }
  }
  // Every path of the tree was sent.
  expect([...seen].sort()).toEqual([...stats.keys()].sort());
}

/** The receiver's sorted lists (rsync --debug=FLIST3) against sortAndCleanFileList. */
function checkSorted(r: BatchFileLists, p: number, output: string, stripRoot = false): void {
  const debug = parseDebugFlist(output);
  const byNdx = new Map(debug.map((d) => [d.ndx, d]));
  let total = 0;
  for (const l of r.lists) {
    const sorted = sortAndCleanFileList(l.wire, p, { stripRoot });
    sorted.files.forEach((e, i) => {
      const d = byNdx.get(l.ndxStart + i);
      expect(d, `ndx ${l.ndxStart + i} @${p}`).toBeDefined();
      if (e === null) {
        expect(d!.name, `cleared ndx ${l.ndxStart + i} @${p}`).toBe("");
        return;
      }
      expect(d!.name, `ndx ${l.ndxStart + i} @${p}`).toBe(isDir(e.mode) ? `${e.name}/` : e.name);
      expect(d!.mode).toBe(e.mode);
      expect(d!.len).toBe(e.size);
      const mask = FLAG_TOP_DIR | FLAG_CONTENT_DIR | FLAG_HLINKED | FLAG_MOD_NSEC | (isDir(e.mode) ? FLAG_IMPLIED_DIR : 0);
      expect(d!.flags & mask, `flags of ${e.name} @${p}`).toBe(e.flags & mask);
    });
    total += sorted.files.length;
  }
  expect(debug.length).toBe(total);
}

function checkHardLinks(r: BatchFileLists, p: number, cs: Case, stats: Map<string, Stat>): void {
  const m = new HardLinkMatcher(p, flistIncRecurse(r.ctx));
  const byIno = new Map<number, string[]>();
  const leaderOf = new Map<string, number>();
  const ndxName = new Map<number, string>();
  for (const l of r.lists) {
    const sorted = sortAndCleanFileList(l.wire, p);
    const info = m.match(sorted.files, l.ndxStart);
    sorted.files.forEach((e, i) => {
      if (!e) return;
      ndxName.set(l.ndxStart + i, e.name);
      const st = stats.get(e.name)!;
      const linked = cs.hlinks && !isDir(st.mode) && st.nlink > 1;
      // The wire flag: protocol 27 marks every regular file.
      expect((e.flags & FLAG_HLINKED) !== 0, e.name).toBe(cs.hlinks && (p < 28 ? isReg(st.mode) : linked));
      if (linked) {
        byIno.set(st.ino, [...(byIno.get(st.ino) ?? []), e.name]);
        expect(info[i], e.name).toBeDefined();
        leaderOf.set(e.name, info[i]!.leader);
      } else if (!flistIncRecurse(r.ctx)) {
        expect(info[i], e.name).toBeUndefined();
      }
    });
  }
  // Each inode is one group, led by one member (the first in sorted order).
  for (const [, members] of byIno) {
    const leaders = new Set(members.map((n) => leaderOf.get(n)));
    expect(leaders.size, members.join(",")).toBe(1);
    const leaderName = ndxName.get([...leaders][0]!);
    expect(members).toContain(leaderName);
  }
  if (cs.hlinks) expect(byIno.size).toBeGreaterThan(3);
}

/** Feed the decoded entries to the encoder: the bytes must be rsync's. */
function checkReencode(
  r: BatchFileLists,
  batch: Uint8Array,
  p: number,
  cs: Case,
  stats: Map<string, Stat> | ((name: string) => Stat),
): void {
  const statOf = typeof stats === "function" ? stats : (n: string): Stat => stats.get(n)!;
  const enc = new FileListEncoder(r.ctx);
  r.lists.forEach((l, li) => {
    if (li > 0) enc.beginList(l.ndxStart);
    const w = new Writer();
    const offsets: [number, string][] = [];
    for (const e0 of l.wire) {
      offsets.push([w.len, e0.name]);
      const st = statOf(e0.name);
      const e: FileEntry = { ...e0 };
      delete e.hlinkDev;
      delete e.hlinkIno;
      delete e.hlinkFirstNdx;
      // Below 30 the wire keeps 32 bits of the mtime; the sender compares full values.
      if (((st.sec % 2 ** 32) + 2 ** 32) % 2 ** 32 === e0.mtime) e.mtime = st.sec;
      // The sender's rule: protocol >= 28 a non-dir with nlink > 1, 27 every regular file.
      if (cs.hlinks && (p >= 28 ? !isDir(st.mode) && st.nlink > 1 : isReg(st.mode))) {
        e.hlinkDev = st.dev;
        e.hlinkIno = st.ino;
      }
      enc.encode(e, w);
    }
    enc.end(w, 0);
    const got = w.take();
    const want = batch.subarray(l.start, l.end);
    expect(firstDiff(got, want, offsets), `list ${li} @${p}`).toBe("");
  });
  if (r.idListRange) {
    const w = new Writer();
    encodeIdLists(
      w,
      {
        protocol: p,
        preserveUid: r.ctx.preserveUid,
        preserveGid: r.ctx.preserveGid,
        numericIds: cs.numericIds,
        incRecurse: false,
        id0Names: p >= 30 && (r.header.compatFlags & CF_ID0_NAMES) !== 0,
      },
      enc.users,
      enc.groups,
      { user: "root", group: "root" },
    );
    const want = batch.subarray(r.idListRange[0], r.idListRange[1]);
    expect(Buffer.from(w.take()).toString("hex")).toBe(Buffer.from(want).toString("hex"));
  }
}

/** "" when equal, else where the bytes first differ (and in which entry). */
function firstDiff(got: Uint8Array, want: Uint8Array, offsets: [number, string][]): string {
  const n = Math.min(got.length, want.length);
  let i = 0;
  while (i < n && got[i] === want[i]) i++;
  if (i === n && got.length === want.length) return "";
  let entry = "(end)";
  for (const [off, name] of offsets) if (off <= i) entry = `${name} @+${i - off}`;
  const hex = (b: Uint8Array): string => Buffer.from(b.subarray(Math.max(0, i - 8), i + 24)).toString("hex");
  return `differ at ${i} in ${entry}: got ${hex(got)} want ${hex(want)} (lengths ${got.length}/${want.length})`;
}
