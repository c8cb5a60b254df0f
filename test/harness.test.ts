// Proves the differential-test harness against native rsync on both sides: the nasty tree, the
// snapshot/diff, the fake remote shell and the --stats parser. KRSYNC_TEST_BIG_MB sets the size
// of the tree's big file (default here 4; the tree's own default, 40, also passes).
//
// What native rsync 3.5.0 -aHS --numeric-ids preserves, as established here (so the default
// diffSnapshots options compare everything the snapshot records):
//   - content, size, all permission bits incl. setuid/setgid/sticky (also 0000, 0111 as root),
//     file/dir/symlink/special mtimes to the nanosecond at protocol >= 31 (symlinks via lutimes,
//     dirs set after their contents), owners (root), device numbers, FIFOs, hard-link groups.
//   - symlink permission bits are always 0777 on Linux, so they compare equal trivially.
//   - atimes are not preserved without -U (snapshots leave them out by default).
// Known protocol effects (modelled by expectAfterProtocol / mtimeAfterRsync):
//   - protocol < 31 sends no nanoseconds: every mtime arrives with .000000000.
//   - protocol < 30 sends mtime seconds as 32 bits read back unsigned: 1960 arrives as 2096,
//     -0.75 s as 4294967295, 2^32 s as 0, 5e9 s as 705032704 (1992); dirs and symlinks too.
// Known delta-transfer effects (an update over an old copy differs from a fresh copy):
//   - same size + same mtime (seconds) is "up to date" without -c: content change not sent.
//   - quick check compares whole seconds: an nsec-only mtime change is not applied without -c.
//   - a hard link split off its group with identical content and mtime stays linked, even with -c.

import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { describeIfRoot, isRoot, itIfRoot, rsyncPath, testBigFileMB, tmpDir } from "./helpers/env.js";
import {
  FAKE_HOST,
  assertOk,
  localCopy,
  parseRsyncNumber,
  parseStats,
  pull,
  push,
  rshArg,
  runRsync,
  wireBytes,
  type RsyncStats,
} from "./helpers/rsync.js";
import {
  diffSnapshots,
  expectAfterProtocol,
  mapSnapshot,
  mtimeAfterRsync,
  snapshotTree,
  type Snapshot,
} from "./helpers/snapshot.js";
import { NASTY_PATHS, NASTY_TIMES, buildNastyTree, mutateTree, randomContent, textContent } from "./helpers/tree.js";

const ROOT = isRoot();
const BIG_MB = testBigFileMB(4);
const COPY = ["-aHS", "--numeric-ids"];
const PROTOCOLS = [27, 28, 29, 30, 31, 32] as const;
const rsh = rshArg();

// ---------------------------------------------------------------------------------------------

describe("fakersh.sh", () => {
  const run = (args: string[]): { out: string; code: number } => {
    try {
      return { out: execFileSync(rsh, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }), code: 0 };
    } catch (e) {
      const err = e as { status: number; stdout: string };
      return { out: err.stdout, code: err.status };
    }
  };

  it("drops ssh options and the host, then runs the command through sh -c", () => {
    expect(run(["-l", "user", "-p", "2222", "-oBatchMode=yes", "-T", "-x", "host", "echo", "a", "b"]).out).toBe("a b\n");
    expect(run(["-p2222", "-i", "/key", "u@h", "printf '%s|' one 'two  words'"]).out).toBe("one|two  words|");
    expect(run(["--", "h", "echo", "ok"]).out).toBe("ok\n");
  });

  it("re-parses words like sshd does, so rsync's backslash escapes survive", () => {
    // rsync sends e.g. /tmp/a\ b/ (options.c safe_arg); the words are joined and re-parsed
    expect(run(["h", "printf", "'%s|'", "/tmp/a\\ b/", "it\\'s", "\\$HOME", "a\\;b"]).out).toBe("/tmp/a b/|it's|$HOME|a;b|");
  });

  it("receives rsync's server command with escaped paths (FAKERSH_LOG)", async () => {
    const d = tmpDir("krsync-rsh-");
    const s = join(d, "a b$c");
    mkdirSync(s);
    writeFileSync(join(s, "f"), "x");
    const log = join(d, "log");
    assertOk(await pull(s, join(d, "t"), ["-a"], { env: { FAKERSH_LOG: log } }));
    expect(readFileSync(log, "utf8")).toMatch(/^\/usr\/bin\/rsync --server --sender -\S+ \. .*\/a\\ b\\\$c\/\n$/);
  });

  it("passes the exit status through and fails clearly without host or command", () => {
    expect(run(["h", "exit 7"]).code).toBe(7);
    expect(run([]).code).toBe(255);
    expect(run(["-l", "u", "h"]).code).toBe(255);
  });
});

// ---------------------------------------------------------------------------------------------

describe("nasty tree and snapshots", () => {
  let base: string;
  let snap: Snapshot;
  beforeAll(() => {
    base = join(tmpDir("krsync-tree-"), "base");
    buildNastyTree(base, { variant: "base", root: ROOT, bigFileMB: 1 });
    snap = snapshotTree(base);
  });

  it("is deterministic: two builds in different places snapshot equal; mutated = base + mutateTree", () => {
    const other = join(tmpDir("krsync-tree2-"), "x y");
    buildNastyTree(other, { variant: "base", root: ROOT, bigFileMB: 1 });
    expect(diffSnapshots(snap, snapshotTree(other))).toEqual([]);
    mutateTree(other);
    const direct = join(tmpDir("krsync-tree3-"), "m");
    buildNastyTree(direct, { variant: "mutated", root: ROOT, bigFileMB: 1 });
    expect(diffSnapshots(snapshotTree(direct), snapshotTree(other))).toEqual([]);
    expect(() => mutateTree(other)).toThrow(/not a base/);
  });

  it("records what the tree sets: odd mtimes to the ns, modes, links, groups, the top dir", () => {
    expect(snap.get(".")?.type).toBe("dir");
    for (const [k, ns] of Object.entries(NASTY_TIMES)) expect(snap.get(`times/${k}`)?.mtimeNs, k).toBe(ns);
    expect(snap.get("times/olddir")?.mtimeNs).toBe(NASTY_TIMES.y1960);
    expect(snap.get("times/link1960")).toMatchObject({ type: "symlink", linkTarget: "y1960", mtimeNs: NASTY_TIMES.y1960 + 5n });
    expect(snap.get("modes/m4755")?.mode).toBe(0o4755);
    expect(snap.get("modes/m6711")?.mode).toBe(0o6711);
    expect(snap.get("modes/d1777")).toMatchObject({ type: "dir", mode: 0o1777 });
    expect(snap.get("special/fifo")?.type).toBe("fifo");
    expect(snap.get("names/new\nline")?.type).toBe("file");
    expect(snap.get("names/\u00e9.txt")?.sha256).not.toBe(snap.get("names/e\u0301.txt")?.sha256);
    const trio = snap.get("hardlinks/trio-1")?.hardLinkGroup;
    expect(trio).toHaveLength(3);
    expect(trio?.some((p) => p.startsWith("deep/") && p.split("/").length > 20)).toBe(true);
    expect(snap.get("hardlinks/pair-a")?.hardLinkGroup).toEqual(["hardlinks/pair-a", "hardlinks/pair-b"]);
    expect(snap.get("plain.txt")?.hardLinkGroup).toBeNull();
    expect(snap.get("links/long")?.linkTarget?.length).toBeGreaterThan(1500);
    expect(snap.get("sizes/s490008")?.size).toBe(490_008);
    expect(snap.get("big/big.bin")?.size).toBe(1024 * 1024 + 17);
    const names255 = [...snap.keys()].filter((k) => Buffer.byteLength(k.split("/").pop()!) === 255);
    expect(names255.length).toBeGreaterThanOrEqual(6);
  });

  itIfRoot("as root: devices, foreign owners, unreadable modes", () => {
    expect(snap.get("special/chr")).toMatchObject({ type: "chr", rdev: (1n << 8n) | 3n });
    expect(snap.get("special/blk")?.type).toBe("blk");
    expect(snap.get("owners/u12345")).toMatchObject({ uid: 12345, gid: 54321 });
    expect(snap.get("owners/daemon")).toMatchObject({ uid: 1, gid: 1 });
    expect(snap.get("owners/setuid-daemon")).toMatchObject({ uid: 1, mode: 0o4755 });
    expect(snap.get("owners/foreign-link")).toMatchObject({ type: "symlink", uid: 12345 });
    expect(snap.get("modes/m0000")?.mode).toBe(0);
  });

  it("without root the tree leaves out devices, foreign owners and unreadable files", () => {
    const d = join(tmpDir("krsync-tree4-"), "t");
    buildNastyTree(d, { variant: "base", root: false, bigFileMB: 0 });
    const s = snapshotTree(d);
    expect(s.has("special/chr") || s.has("owners") || s.has("modes/m0000") || s.has("big/big.bin")).toBe(false);
    expect(s.has("special/fifo")).toBe(true);
    if (!ROOT) expect(() => buildNastyTree(join(d, "r"), { variant: "base", root: true })).toThrow(/needs uid 0/);
  });

  it("diffSnapshots gives readable lines and honours its options", () => {
    const a = snapshotTree(base, { ignore: (rel) => !rel.startsWith("work") });
    const m = (rel: string, patch: Record<string, unknown>): Snapshot =>
      mapSnapshot(a, (r, e) => (r === rel ? { ...e, ...patch } : e));
    expect(diffSnapshots(a, a)).toEqual([]);
    expect(diffSnapshots(a, m("work/script.sh", { mode: 0o600 }))).toEqual(["mode of work/script.sh: 0644 vs 0600"]);
    expect(diffSnapshots(a, m("work/README", { mtimeNs: a.get("work/README")!.mtimeNs + 1n }))[0]).toMatch(
      /^mtime of work\/README: \d+\.\d{9} \(.*\) vs \d+\.\d{9}/,
    );
    expect(diffSnapshots(a, m("work/README", { mtimeNs: a.get("work/README")!.mtimeNs + 1n }), { mtimeSecondsOnly: true })).toEqual([]);
    expect(diffSnapshots(a, m("work", { mtimeNs: 0n }), { ignoreDirMtimes: true })).toEqual([]);
    expect(diffSnapshots(a, m("work/README", { type: "symlink" }))).toEqual(["type of work/README: file vs symlink"]);
    const less = mapSnapshot(a, (r, e) => (r === "work/README" ? null : e));
    expect(diffSnapshots(a, less)).toEqual(["missing file work/README"]);
    expect(diffSnapshots(less, a)).toEqual(["unexpected file work/README"]);
    expect(diffSnapshots(a, m("work/README", { uid: 4242 }))).toEqual([`uid of work/README: ${a.get("work/README")!.uid} vs 4242`]);
    expect(diffSnapshots(a, m("work/README", { uid: 4242 }), { owners: false })).toEqual([]);
    expect(diffSnapshots(a, m("work/README", { sha256: "x" }), { ignore: (r, f) => r === "work/README" && f === "content" })).toEqual([]);
    const root = snapshotTree(base, { ignore: (rel) => rel !== "names" && !rel.startsWith("names/") });
    const nl = mapSnapshot(root, (r, e) => (r === "names/new\nline" ? { ...e, mode: 0o600 } : e));
    expect(diffSnapshots(root, nl)).toEqual([`mode of "names/new\\nline": 0${(root.get("names/new\nline")!.mode).toString(8)} vs 0600`]);
    expect(diffSnapshots(root, mapSnapshot(root, (r, e) => (r === "." ? { ...e, mtimeNs: 1n } : e)), { ignoreRootDirMtime: true })).toEqual([]);
  });

  it("mtimeAfterRsync models the protocol's time encoding", () => {
    const S = 1_000_000_000n;
    expect(mtimeAfterRsync(NASTY_TIMES.y1960, 29)).toBe(3_979_348_096n * S); // 2096
    expect(mtimeAfterRsync(NASTY_TIMES.huge5e9, 27)).toBe(705_032_704n * S);
    expect(mtimeAfterRsync(NASTY_TIMES.uint32, 28)).toBe(0n);
    expect(mtimeAfterRsync(NASTY_TIMES.beforeEpoch, 29)).toBe(4_294_967_295n * S);
    expect(mtimeAfterRsync(NASTY_TIMES.y1960frac, 30)).toBe(-123_456_790n * S);
    expect(mtimeAfterRsync(NASTY_TIMES.huge5e9, 31)).toBe(NASTY_TIMES.huge5e9);
  });

  it("content generators are deterministic and sized exactly", () => {
    expect(randomContent("k", 1001)).toEqual(randomContent("k", 1001));
    expect(randomContent("k", 1001)).not.toEqual(randomContent("j", 1001));
    expect(textContent("k", 777).length).toBe(777);
  });
});

// ---------------------------------------------------------------------------------------------

describe("--stats parsing", () => {
  it("reads counts, byte figures with thousands separators and -h suffixes", () => {
    const st = parseStats(
      [
        "",
        "Number of files: 1,203 (reg: 1,116, dir: 57, link: 22, dev: 5, special: 3)",
        "Number of created files: 0",
        "Number of deleted files: 16 (reg: 11, dir: 5)",
        "Number of regular files transferred: 110",
        "Total file size: 10,080,543 bytes",
        "Total transferred file size: 9,922,298 bytes",
        "Literal data: 9,922,298 bytes",
        "Matched data: 0 bytes",
        "File list size: 0",
        "File list generation time: 0.001 seconds",
        "File list transfer time: 0.000 seconds",
        "Total bytes sent: 9,940,147",
        "Total bytes received: 2,581",
        "",
        "sent 9,940,147 bytes  received 2,581 bytes  19,885,456.00 bytes/sec",
        "total size is 10,080,543  speedup is 1,001.01",
      ].join("\n"),
    );
    expect(st.numberOfFiles).toEqual({ total: 1203, reg: 1116, dir: 57, link: 22, dev: 5, special: 3 });
    expect(st.numberOfCreatedFiles).toEqual({ total: 0 });
    expect(st.numberOfDeletedFiles).toEqual({ total: 16, reg: 11, dir: 5 });
    expect(st).toMatchObject({ regularFilesTransferred: 110, totalFileSize: 10_080_543, literalData: 9_922_298, matchedData: 0 });
    expect(st).toMatchObject({ fileListGenerationTime: 0.001, speedup: 1001.01 });
    expect(wireBytes(st)).toBe(9_940_147 + 2_581);
    expect(parseRsyncNumber("4.50M")).toBe(4_500_000);
    expect(() => parseStats("sent 1 bytes")).toThrow(/Number of files/);
  });
});

// ---------------------------------------------------------------------------------------------

describe("native rsync on both sides", () => {
  // a source path with a space, quotes and a dollar: the remote-shell args must be escaped
  let work: string;
  let src: string;
  let srcSnap: Snapshot;
  let localSnap: Snapshot;
  const pulled = new Map<number, { dir: string; stats: RsyncStats }>();

  beforeAll(async () => {
    work = tmpDir("krsync harness 'q' $x ");
    src = join(work, "src tree");
    buildNastyTree(src, { variant: "base", root: ROOT, bigFileMB: BIG_MB });
    srcSnap = snapshotTree(src);
  });

  it("(a) local copy -aHS --numeric-ids equals the source exactly", async () => {
    const dst = join(work, "local");
    assertOk(await localCopy(src, dst, COPY));
    localSnap = snapshotTree(dst);
    // no comparison options needed: rsync preserves everything the snapshot records
    expect(diffSnapshots(srcSnap, localSnap)).toEqual([]);
  });

  for (const p of PROTOCOLS) {
    it(`(b) pull over fakersh at --protocol=${p} equals the local copy (modulo the protocol's mtimes)`, async () => {
      const dst = join(work, `pull-${p}`);
      const r = assertOk(await pull(src, dst, [...COPY, "--stats", `--protocol=${p}`]));
      pulled.set(p, { dir: dst, stats: parseStats(r.stdout) });
      expect(diffSnapshots(expectAfterProtocol(localSnap, p), snapshotTree(dst))).toEqual([]);
    });
  }

  it("(b) protocols 27-29 carry mtimes as unsigned 32 bits, 30 drops only the ns, 31+ are exact", () => {
    const S = 1_000_000_000n;
    for (const p of PROTOCOLS) {
      const s = snapshotTree(pulled.get(p)!.dir);
      const t = (rel: string): bigint | undefined => s.get(rel)?.mtimeNs;
      if (p < 30) {
        expect(t("times/y1960"), `p${p}`).toBe(3_979_348_096n * S); // 1960 -> 2096
        expect(t("times/olddir"), `p${p}`).toBe(3_979_348_096n * S); // dirs too
        expect(t("times/link1960"), `p${p}`).toBe(3_979_348_096n * S); // and symlinks
        expect(t("times/huge5e9"), `p${p}`).toBe(705_032_704n * S); // 2128 -> 1992
        expect(t("times/uint32"), `p${p}`).toBe(0n);
      } else {
        expect(t("times/y1960"), `p${p}`).toBe(NASTY_TIMES.y1960);
        expect(t("times/huge5e9"), `p${p}`).toBe(p >= 31 ? NASTY_TIMES.huge5e9 : 5_000_000_000n * S);
      }
      expect(t("times/nsec999"), `p${p}`).toBe(p >= 31 ? NASTY_TIMES.nsec999 : NASTY_TIMES.nsec999 - 999_999_999n);
      expect(t("times/int31max"), `p${p}`).toBe(NASTY_TIMES.int31max); // fits 32 bits either way
    }
  });

  it("(b) a push over fakersh, with ssh-style options in -e, gives the same tree", async () => {
    const dst = join(work, "push-32");
    assertOk(await push(src, dst, ["-e", `${rsh} -l someone -p 2222`, ...COPY]));
    expect(diffSnapshots(localSnap, snapshotTree(dst))).toEqual([]);
    const dst27 = join(work, "push-27");
    assertOk(await runRsync(["-e", rsh, `--rsync-path=${rsyncPath}`, ...COPY, "--protocol=27", `${src}/`, `user@${FAKE_HOST}:${dst27}/`]));
    expect(diffSnapshots(expectAfterProtocol(localSnap, 27), snapshotTree(dst27))).toEqual([]);
  });

  itIfRoot("(a) as root owners and devices survive, also mapped by name without --numeric-ids", async () => {
    const dst = join(work, "named");
    assertOk(await pull(src, dst, ["-aHS"]));
    const s = snapshotTree(dst);
    expect(diffSnapshots(localSnap, s)).toEqual([]);
    expect(s.get("owners/u12345")).toMatchObject({ uid: 12345, gid: 54321 });
    expect(s.get("owners/bin")).toMatchObject({ uid: 2, gid: 2 });
    expect(s.get("special/chr-big")?.rdev).toBe(localSnap.get("special/chr-big")?.rdev);
  });

  // (c) after mutateTree: delta pull with --delete over the old copy vs a fresh copy
  const divergence = (p: number, checksum: boolean): string[] => {
    const [a, b] = NASTY_PATHS.splitSameContent;
    const lines = [`hard links of ${a}: none vs [${a}, ${b}]`, `hard links of ${b}: none vs [${a}, ${b}]`];
    if (!checksum && p >= 31) lines.push(`mtime of ${NASTY_PATHS.nsecOnly}: `);
    if (!checksum) lines.push(`content of ${NASTY_PATHS.sameSizeSameMtime}: `);
    if (checksum) {
      // with -c the split-off empty member (new mtime) matches by checksum, so it is not
      // replaced: it stays linked and its new mtime is set on the shared inode
      const [e1, e2] = NASTY_PATHS.splitEmptyNewMtime;
      lines.push(`hard links of ${e1}: none vs [${e1}, ${e2}]`, `hard links of ${e2}: none vs [${e1}, ${e2}]`, `mtime of ${e1}: `);
    }
    return lines.sort();
  };
  const prefixOf = (lines: string[]): string[] =>
    lines.map((l) => (l.startsWith("hard links") ? l : l.slice(0, l.indexOf(": ") + 2))).sort();

  const freshSnap = new Map<number, Snapshot>();
  let deltaStats: RsyncStats | undefined;

  it("(c) mutateTree, then fresh copies of the mutated tree equal it", async () => {
    // keep an untouched old copy for the -c run before the pulls below update pull-32
    assertOk(await localCopy(pulled.get(32)!.dir, join(work, "old-32-for-c"), COPY));
    mutateTree(src);
    const m = snapshotTree(src);
    expect(diffSnapshots(srcSnap, m).length).toBeGreaterThan(40);
    for (const p of [27, 30, 32]) {
      const dst = join(work, `fresh-${p}`);
      assertOk(await pull(src, dst, [...COPY, `--protocol=${p}`]));
      const s = snapshotTree(dst);
      expect(diffSnapshots(expectAfterProtocol(m, p), s)).toEqual([]);
      freshSnap.set(p, s);
    }
  });

  for (const p of [27, 30, 32]) {
    it(`(c) delta pull --delete at protocol ${p} over the old copy = fresh copy, except rsync's known cases`, async () => {
      const dst = pulled.get(p)!.dir;
      const r = assertOk(await pull(src, dst, [...COPY, "--delete", "--stats", `--protocol=${p}`]));
      if (p === 32) deltaStats = parseStats(r.stdout);
      expect(prefixOf(diffSnapshots(freshSnap.get(p)!, snapshotTree(dst)))).toEqual(divergence(p, false));
    });
  }

  it("(c) with -c the content and nsec changes are seen; the split hard link stays linked", async () => {
    const dst = join(work, "old-32-for-c");
    assertOk(await pull(src, dst, [...COPY, "--delete", "-c"]));
    expect(prefixOf(diffSnapshots(freshSnap.get(32)!, snapshotTree(dst)))).toEqual(divergence(32, true));
  });

  it("(d) parseStats on real output: counts match the tree, the delta pull moves far fewer bytes", () => {
    const init = pulled.get(32)!.stats;
    const files = [...srcSnap.values()];
    const regs = files.filter((e) => e.type === "file");
    expect(init.numberOfFiles.total).toBe(srcSnap.size); // "." included
    expect(init.numberOfFiles.reg).toBe(regs.length);
    expect(init.numberOfFiles.dir).toBe(files.filter((e) => e.type === "dir").length);
    expect(init.numberOfFiles.link).toBe(files.filter((e) => e.type === "symlink").length);
    // one transfer per hard-link group
    const followers = regs.filter((e, i, all) => e.hardLinkGroup && all.findIndex((x) => x.hardLinkGroup === e.hardLinkGroup) !== i);
    expect(init.regularFilesTransferred).toBe(regs.length - followers.length);
    // Total file size counts every regular file (each link) plus symlink target lengths
    const total = files.filter((e) => e.type === "file" || e.type === "symlink").reduce((n, e) => n + e.size, 0);
    expect(init.totalFileSize).toBe(total);
    expect(init.literalData).toBe(init.totalTransferredFileSize);
    expect(init.matchedData).toBe(0);
    expect(init.numberOfCreatedFiles?.total).toBe(srcSnap.size);
    // a pull: the client receives the data
    expect(init.totalBytesReceived).toBeGreaterThan(init.totalFileSize * 0.9);
    expect(init.totalBytesSent).toBeLessThan(init.totalBytesReceived / 10);
    const d = deltaStats!;
    expect(d.matchedData).toBeGreaterThan(0);
    expect(d.numberOfDeletedFiles?.total).toBeGreaterThan(0);
    expect(wireBytes(d)).toBeLessThan(wireBytes(init) / 5);
    // protocol 27 prints no created/deleted counts and no flist times
    expect(pulled.get(27)!.stats.numberOfCreatedFiles).toBeUndefined();
    expect(pulled.get(27)!.stats.fileListGenerationTime).toBeUndefined();
    expect(pulled.get(30)!.stats.numberOfDeletedFiles).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------------------------

describeIfRoot("root-only rsync behaviours", () => {
  it("a foreign-owned setuid file keeps setuid after rsync's chown (chmod after chown)", async () => {
    const d = tmpDir("krsync-suid-");
    const s = join(d, "s");
    mkdirSync(s);
    writeFileSync(join(s, "f"), "x");
    execFileSync("chown", ["12345:54321", join(s, "f")]);
    chmodSync(join(s, "f"), 0o6755);
    assertOk(await pull(s, join(d, "t"), COPY));
    expect(snapshotTree(join(d, "t")).get("f")).toMatchObject({ uid: 12345, gid: 54321, mode: 0o6755 });
  });
});
