// The krsync command as a user runs it (the built executable, dist/cli/krsync.js), next to native rsync
// with the same arguments: exit codes, what is printed, dry runs, the built-in example.
import { mkdirSync, readFileSync, writeFileSync, existsSync, readdirSync, statSync, symlinkSync, utimesSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { rsyncPath, tmpDir } from "./helpers/env.js";
import { FAKE_HOST, rshArg, runRsync } from "./helpers/rsync.js";
import { num } from "../src/cli/report.js";
import { diffSnapshots, snapshotTree } from "./helpers/snapshot.js";

const CLI = ["node", join(import.meta.dirname, "..", "dist", "cli", "krsync.js")];
const krsync = (args: string[]) => runRsync(args, { bin: CLI });
const native = (args: string[]) => runRsync(args);
const remote = ["-e", rshArg(), `--rsync-path=${rsyncPath}`];

function smallTree(dir: string, variant: number): void {
  mkdirSync(join(dir, "sub", "deep"), { recursive: true });
  writeFileSync(join(dir, "a.txt"), "alpha\n".repeat(100 + variant));
  writeFileSync(join(dir, "sub", "b.bin"), Buffer.alloc(20000, variant));
  writeFileSync(join(dir, "sub", "deep", "c"), "c");
  if (variant) writeFileSync(join(dir, "new.txt"), "new");
  else writeFileSync(join(dir, "gone.txt"), "old");
  // Past directory mtimes: rsync leaves a directory alone when only the sub-second part of
  // its mtime differs, which a tree made this very second would hit.
  for (const d of ["sub/deep", "sub", "."]) utimesSync(join(dir, d), 1_600_000_000 + variant, 1_600_000_000 + variant);
}

describe("krsync CLI", () => {
  it("--version and --help exit 0", async () => {
    const v = await krsync(["--version"]);
    expect(v.code).toBe(0);
    expect(v.stdout).toMatch(/krsync version/);
    const h = await krsync(["--help"]);
    expect(h.code).toBe(0);
    expect(h.stdout).toMatch(/--delete/);
  });

  it("runs when started as npm installs it: through a symlink named krsync, as an executable", async () => {
    // npm links the bin as node_modules/.bin/krsync -> ../krsync/dist/cli/krsync.js.
    const w = tmpDir("cli-");
    const link = join(w, "krsync");
    symlinkSync(CLI[1]!, link);
    expect(statSync(CLI[1]!).mode & 0o111).not.toBe(0);
    smallTree(join(w, "src"), 0);
    const v = await runRsync(["--version"], { bin: [link] });
    expect(v.code).toBe(0);
    expect(v.stdout).toMatch(/krsync version/);
    const c = await runRsync(["-a", `${w}/src/`, `${w}/dst/`], { bin: [link] });
    expect(c.code, c.stderr).toBe(0);
    expect(readFileSync(join(w, "dst", "sub", "deep", "c"), "utf8")).toBe("c");
  });

  it("krsync bench runs the harness of this checkout (--list, --help; a bad option exits 2)", async () => {
    const l = await krsync(["bench", "--list"]);
    expect(l.code, l.stderr).toBe(0);
    expect(l.stdout).toMatch(/local-copy/);
    expect(l.stdout).toMatch(/bigfile-push/);
    const h = await krsync(["bench", "--help"]);
    expect(h.code).toBe(0);
    expect(h.stdout + h.stderr).toMatch(/--quick/);
    expect((await krsync(["bench", "--frobnicate"])).code).toBe(2);
  });

  it("an unknown option is a syntax error (exit 1) in rsync's words", async () => {
    const k = await krsync(["--no-such-option", "a", "b"]);
    const n = await native(["--no-such-option", "a", "b"]);
    expect(k.code).toBe(1);
    expect(n.code).toBe(1);
    expect(k.stderr).toContain("--no-such-option: unknown option");
    expect(k.stderr).toMatch(/krsync error: syntax or usage error \(code 1\)/);
  });

  it("a missing remote path gives rsync's partial-transfer exit (23) and the remote's message", async () => {
    const w = tmpDir("cli-");
    const args = [...remote, "-a", `${FAKE_HOST}:${w}/does-not-exist/`, `${w}/dst/`];
    const k = await krsync(args);
    const n = await native(args);
    expect(n.code).toBe(23);
    expect(k.code).toBe(23);
    expect(k.stderr).toMatch(/does-not-exist.*No such file or directory/);
  });

  it("a remote command that does not exist exits 127 with one clear line", async () => {
    const w = tmpDir("cli-");
    const k = await krsync(["-e", rshArg(), "--rsync-path=/nonexistent/rsync", "-a", `${FAKE_HOST}:${w}/`, `${w}/dst/`]);
    expect(k.code).toBe(127);
    expect(k.stderr).toMatch(/krsync: connection unexpectedly closed \(0 bytes received so far\)/);
    expect(existsSync(join(w, "dst"))).toBe(false);
  });

  it("-n changes nothing and lists what would change, like rsync -n", async () => {
    const w = tmpDir("cli-");
    smallTree(join(w, "src"), 1);
    smallTree(join(w, "old"), 0);
    for (const d of ["k", "n"]) await native(["-a", `${w}/old/`, `${w}/${d}/`]);
    const before = snapshotTree(join(w, "k"));
    const args = (d: string) => [...remote, "-ain", "--delete", `${FAKE_HOST}:${w}/src/`, `${w}/${d}/`];
    const k = await krsync(args("k"));
    const n = await native(args("n"));
    expect(k.code, k.stderr).toBe(0);
    expect(n.code).toBe(0);
    expect(diffSnapshots(before, snapshotTree(join(w, "k")))).toEqual([]);
    const lines = (s: string) => s.split("\n").filter((l) => l.trim() !== "").sort();
    expect(lines(k.stdout)).toEqual(lines(n.stdout));
  });

  it("-i itemizes a delta pull as rsync does", async () => {
    const w = tmpDir("cli-");
    smallTree(join(w, "src"), 1);
    smallTree(join(w, "old"), 0);
    for (const d of ["k", "n"]) await native(["-a", `${w}/old/`, `${w}/${d}/`]);
    const args = (d: string) => [...remote, "-ai", "--delete", `${FAKE_HOST}:${w}/src/`, `${w}/${d}/`];
    const k = await krsync(args("k"));
    const n = await native(args("n"));
    expect(k.code, k.stderr).toBe(0);
    const lines = (s: string) => s.split("\n").filter((l) => l.trim() !== "").sort();
    expect(lines(k.stdout)).toEqual(lines(n.stdout));
    expect(diffSnapshots(snapshotTree(join(w, "n")), snapshotTree(join(w, "k")), { krsyncMtimes: true })).toEqual([]);
  });

  it("-i and -v of a pull and a local copy into new directories print what rsync prints", async () => {
    const w = tmpDir("cli-");
    smallTree(join(w, "src"), 1);
    const strip = (s: string, d: string) =>
      s
        .split("\n")
        .filter((l) => l.trim() !== "" && !/^(sent|total size) /.test(l))
        .map((l) => l.split(d).join("DEST"));
    const cases: [string, (d: string) => string[], string[]][] = [
      ["pull -ai", (d) => [...remote, "-ai", `${FAKE_HOST}:${w}/src/`, `${w}/${d}/`], []],
      ["local -ai", (d) => ["-ai", `${w}/src/`, `${w}/${d}/`], []],
      ["pull -av", (d) => [...remote, "-av", `${FAKE_HOST}:${w}/src/`, `${w}/${d}/`], ["--no-inc-recursive"]],
      ["local -av", (d) => ["-av", `${w}/src/`, `${w}/${d}/`], ["--no-inc-recursive"]],
    ];
    for (const [name, args, nativeOnly] of cases) {
      const k = await krsync(args(`k-${name}`));
      const n = await native([...nativeOnly, ...args(`n-${name}`)]);
      expect(k.code, k.stderr).toBe(0);
      expect(n.code, n.stderr).toBe(0);
      expect(strip(k.stdout, `k-${name}`), name).toEqual(strip(n.stdout, `n-${name}`));
    }
  });

  it("--stats reports the same transfer figures as rsync", async () => {
    const w = tmpDir("cli-");
    smallTree(join(w, "src"), 1);
    const args = (d: string) => [...remote, "-a", "--stats", `${FAKE_HOST}:${w}/src/`, `${w}/${d}/`];
    const k = await krsync(args("k"));
    const n = await native(args("n"));
    const field = (s: string, name: string) => new RegExp(`^${name}: (.*)$`, "m").exec(s)?.[1];
    for (const f of ["Number of files", "Number of regular files transferred", "Total file size", "Total transferred file size", "Literal data", "Matched data"]) {
      expect(field(k.stdout, f), f).toBe(field(n.stdout, f));
    }
  });

  it("the README's example runs (npm run example)", async () => {
    const r = await krsync(["--example"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/deleting stale\.txt/);
    expect(r.stdout).toMatch(/Matched data/);
  });

  it("a single remote file can be pulled to a new name", async () => {
    const w = tmpDir("cli-");
    smallTree(join(w, "src"), 0);
    const k = await krsync([...remote, "-a", `${FAKE_HOST}:${w}/src/a.txt`, `${w}/copy.txt`]);
    expect(k.code, k.stderr).toBe(0);
    expect(readFileSync(join(w, "copy.txt"), "utf8")).toBe(readFileSync(join(w, "src", "a.txt"), "utf8"));
    expect(readdirSync(w).sort()).toEqual(["copy.txt", "src"]);
  });
});

describe("krsync CLI and its optional compression libraries", () => {
  const hide = join(import.meta.dirname, "helpers", "hide-modules.cjs");
  /** krsync as installed without the given native modules. */
  const without = (modules: string[], args: string[]) =>
    runRsync(args, { bin: CLI, env: { NODE_OPTIONS: `--require "${hide}"`, KRSYNC_TEST_HIDE_MODULES: modules.join(",") } });
  // The real rsync on the other end says what it was offered and what it chose (on its stderr:
  // it negotiates before its output is multiplexed).
  const debugRemote = ["-e", rshArg(), `--rsync-path=${rsyncPath} --debug=nstr3`];
  const offered = (out: string) => /Client compress list \(on server\): (.*)/.exec(out)?.[1];
  const chosen = (out: string) => /Server (?:negotiated )?compress: (.*)/.exec(out)?.[1];

  it("offers zstd first; rsync picks it for -z and takes --compress-level as given", async () => {
    const w = tmpDir("cli-z-");
    smallTree(join(w, "src"), 1);
    const k = await krsync([...debugRemote, "-az", `${FAKE_HOST}:${w}/src/`, `${w}/k/`]);
    expect(k.code, k.stderr).toBe(0);
    expect(offered(k.stderr)).toBe("zstd lz4 zlibx zlib");
    expect(chosen(k.stderr)).toBe("zstd (level 3)");
    const p = await krsync([...debugRemote, "-a", "--zc=zstd", "--zl=99", `${w}/src/`, `${FAKE_HOST}:${w}/p/`]);
    expect(p.code, p.stderr).toBe(0);
    expect(chosen(p.stderr)).toBe("zstd (level 22)");
    for (const d of ["k", "p"]) expect(diffSnapshots(snapshotTree(join(w, "src")), snapshotTree(join(w, d)), { krsyncMtimes: true })).toEqual([]);
  });

  it("without zstd-napi: -z negotiates lz4 both ways, --zc=zstd is refused (exit 4) before anything starts", async () => {
    const w = tmpDir("cli-nozstd-");
    smallTree(join(w, "src"), 1);
    const k = await without(["zstd-napi"], [...debugRemote, "-az", `${FAKE_HOST}:${w}/src/`, `${w}/k/`]);
    expect(k.code, k.stderr).toBe(0);
    expect(offered(k.stderr)).toBe("lz4 zlibx zlib");
    expect(chosen(k.stderr)).toBe("lz4 (level 0)");
    const p = await without(["zstd-napi"], [...debugRemote, "-az", `${w}/src/`, `${FAKE_HOST}:${w}/p/`]);
    expect(p.code, p.stderr).toBe(0);
    expect(chosen(p.stderr)).toBe("lz4 (level 0)");
    for (const d of ["k", "p"]) expect(diffSnapshots(snapshotTree(join(w, "src")), snapshotTree(join(w, d)), { krsyncMtimes: true })).toEqual([]);
    for (const args of [
      [...remote, "-a", "--zc=zstd", `${FAKE_HOST}:${w}/src/`, `${w}/never/`],
      [...remote, "-a", "--zc=zstd", `${w}/src/`, `${FAKE_HOST}:${w}/never/`],
      ["-a", "--zc=zstd", `${w}/src/`, `${w}/never/`],
    ]) {
      const r = await without(["zstd-napi"], args);
      expect(r.code).toBe(4);
      expect(r.stderr).toMatch(/--compress-choice=zstd cannot be used: the zstd-napi module could not be loaded/);
      expect(existsSync(join(w, "never"))).toBe(false);
    }
  });

  it("without either native library: -z negotiates zlibx, --zc=lz4 is refused", async () => {
    const w = tmpDir("cli-nonative-");
    smallTree(join(w, "src"), 1);
    const k = await without(["zstd-napi", "lz4-napi"], [...debugRemote, "-az", `${FAKE_HOST}:${w}/src/`, `${w}/k/`]);
    expect(k.code, k.stderr).toBe(0);
    expect(offered(k.stderr)).toBe("zlibx zlib");
    expect(chosen(k.stderr)).toBe("zlibx (level 6)");
    expect(diffSnapshots(snapshotTree(join(w, "src")), snapshotTree(join(w, "k")), { krsyncMtimes: true })).toEqual([]);
    const r = await without(["zstd-napi", "lz4-napi"], [...remote, "-a", "--zc=lz4", `${w}/src/`, `${FAKE_HOST}:${w}/never/`]);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/--compress-choice=lz4 cannot be used: the lz4-napi module could not be loaded/);
  });
});

describe("rsync's number formats (util1.c comma_num / human_num)", () => {
  it("groups digits by three with -h, as Intl's en-US would", () => {
    for (const n of [0, 7, 999, 1000, 12345, 999999, 1000000, 1234567.5, 1285613.11, 100000.01, 2 ** 53 - 1, -1234]) {
      expect(num(n, 1)).toBe(n.toLocaleString("en-US", { maximumFractionDigits: 20 }));
    }
    expect(num(1234567, 0)).toBe("1234567");
    expect(num(1234567, 2)).toBe("1.23M");
  });
});
