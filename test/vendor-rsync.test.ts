// Checks the static rsync binaries that vendor/rsync/build.sh produces:
// ELF machine and static linkage (parsed here from the ELF headers),
// --version capabilities, SHA256SUMS, and real transfers with native rsync
// as the client and each static binary as the server over a fake remote shell.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const OUT = path.join(ROOT, "vendor/rsync/out");
const BIN = { amd64: path.join(OUT, "rsync-amd64"), arm64: path.join(OUT, "rsync-arm64") } as const;
const SUMS = path.join(OUT, "SHA256SUMS");
const VERSION_FILE = path.join(OUT, "VERSION");
const BUILT = existsSync(BIN.amd64) && existsSync(BIN.arm64) && existsSync(SUMS) && existsSync(VERSION_FILE);
const NOT_BUILT = "skipped because vendor/rsync/out is not built (run `bash vendor/rsync/build.sh`)";

function which(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    const p = path.join(dir, cmd);
    if (dir && existsSync(p)) return p;
  }
  return undefined;
}
const QEMU = existsSync("/usr/bin/qemu-aarch64-static") ? "/usr/bin/qemu-aarch64-static" : which("qemu-aarch64-static");
const NATIVE_RSYNC = which("rsync");
const IS_ROOT = typeof process.getuid === "function" && process.getuid() === 0;

// ---------------------------------------------------------------- ELF header

const EM_X86_64 = 62;
const EM_AARCH64 = 183;
const ET_EXEC = 2;
const ET_DYN = 3;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const DT_NEEDED = 1;

interface ElfInfo {
  type: number;
  machine: number;
  phdrs: { type: number; offset: number; filesz: number }[];
  /** DT_NEEDED entries in PT_DYNAMIC (shared libraries the loader must map). */
  needed: number;
}

/** Parses the ELF64 little-endian header and program headers of `buf`. */
function parseElf(buf: Buffer): ElfInfo {
  if (buf.length < 64 || buf.readUInt32BE(0) !== 0x7f454c46) throw new Error("not an ELF file");
  if (buf[4] !== 2) throw new Error(`EI_CLASS ${buf[4]}: not ELF64`);
  if (buf[5] !== 1) throw new Error(`EI_DATA ${buf[5]}: not little-endian`);
  const type = buf.readUInt16LE(16);
  const machine = buf.readUInt16LE(18);
  const phoff = Number(buf.readBigUInt64LE(32));
  const phentsize = buf.readUInt16LE(54);
  const phnum = buf.readUInt16LE(56);
  if (phentsize < 56 || phoff + phnum * phentsize > buf.length) throw new Error("program header table out of range");
  const phdrs: ElfInfo["phdrs"] = [];
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    phdrs.push({
      type: buf.readUInt32LE(at),
      offset: Number(buf.readBigUInt64LE(at + 8)),
      filesz: Number(buf.readBigUInt64LE(at + 32)),
    });
  }
  let needed = 0;
  for (const ph of phdrs.filter((p) => p.type === PT_DYNAMIC)) {
    if (ph.offset + ph.filesz > buf.length) throw new Error("PT_DYNAMIC out of range");
    for (let at = ph.offset; at + 16 <= ph.offset + ph.filesz; at += 16) {
      const tag = buf.readBigInt64LE(at);
      if (tag === 0n) break; // DT_NULL
      if (tag === BigInt(DT_NEEDED)) needed++;
    }
  }
  return { type, machine, phdrs, needed };
}

/** Static: no interpreter; a PT_DYNAMIC only as static-pie (ET_DYN, no DT_NEEDED). */
function staticLinkage(elf: ElfInfo): "static" | "static-pie" | "dynamic" {
  if (elf.phdrs.some((p) => p.type === PT_INTERP)) return "dynamic";
  if (!elf.phdrs.some((p) => p.type === PT_DYNAMIC)) return elf.type === ET_EXEC || elf.type === ET_DYN ? "static" : "dynamic";
  return elf.type === ET_DYN && elf.needed === 0 ? "static-pie" : "dynamic";
}

describe("ELF header parsing (used below)", () => {
  it("sees the interpreter of this dynamically linked node binary", () => {
    const elf = parseElf(readFileSync(process.execPath));
    expect([EM_X86_64, EM_AARCH64]).toContain(elf.machine);
    expect(staticLinkage(elf)).toBe("dynamic");
    expect(elf.needed).toBeGreaterThan(0);
  });

  it("reads machine and program headers of a synthetic static header", () => {
    const buf = Buffer.alloc(64 + 56);
    buf.writeUInt32BE(0x7f454c46, 0);
    buf[4] = 2;
    buf[5] = 1;
    buf.writeUInt16LE(ET_EXEC, 16);
    buf.writeUInt16LE(EM_AARCH64, 18);
    buf.writeBigUInt64LE(64n, 32);
    buf.writeUInt16LE(56, 54);
    buf.writeUInt16LE(1, 56);
    buf.writeUInt32LE(1, 64); // PT_LOAD
    const elf = parseElf(buf);
    expect(elf.machine).toBe(EM_AARCH64);
    expect(staticLinkage(elf)).toBe("static");
    buf.writeUInt32LE(PT_INTERP, 64);
    expect(staticLinkage(parseElf(buf))).toBe("dynamic");
    expect(() => parseElf(Buffer.from("#!/bin/sh\n".padEnd(80)))).toThrow(/not an ELF/);
  });
});

// ----------------------------------------------------------------- helpers

function run(cmd: string, args: string[], opts: { cwd?: string } = {}): { stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 90_000, cwd: opts.cwd, maxBuffer: 16 << 20 });
  if (r.error) throw r.error;
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} exited ${r.status ?? r.signal}\n${r.stdout}\n${r.stderr}`);
  }
  return { stdout: r.stdout, stderr: r.stderr };
}

function sha256(file: string): string {
  return createHash("sha256").update(readFileSync(file)).digest("hex");
}

interface Entry {
  kind: "file" | "dir" | "symlink";
  mode: number;
  mtime: number;
  uid: number;
  gid: number;
  content: string; // sha256 for files, target for symlinks
}

/** Every entry under `dir` (including "." itself) by relative path. */
function snapshot(dir: string): Map<string, Entry> {
  const out = new Map<string, Entry>();
  const visit = (rel: string): void => {
    const abs = path.join(dir, rel);
    const st = lstatSync(abs);
    const base = { mode: st.mode & 0o7777, mtime: Math.floor(st.mtimeMs / 1000), uid: st.uid, gid: st.gid };
    if (st.isSymbolicLink()) {
      out.set(rel, { kind: "symlink", ...base, mtime: 0, content: readlinkSync(abs) });
    } else if (st.isDirectory()) {
      out.set(rel, { kind: "dir", ...base, content: "" });
      for (const name of readdirSync(abs).sort()) visit(rel === "." ? name : path.join(rel, name));
    } else {
      out.set(rel, { kind: "file", ...base, content: sha256(abs) });
    }
  };
  visit(".");
  return out;
}

function expectSameTree(src: string, dst: string, withOwners: boolean): void {
  const strip = (m: Map<string, Entry>) =>
    [...m].map(([k, e]) => [k, withOwners ? e : { ...e, uid: 0, gid: 0 }] as const);
  expect(strip(snapshot(dst))).toEqual(strip(snapshot(src)));
}

function deterministicBytes(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

/** A small tree with the things -a carries: modes, mtimes, symlinks, nesting. */
function makeTree(dir: string): void {
  mkdirSync(path.join(dir, "sub/deeper"), { recursive: true });
  writeFileSync(path.join(dir, "empty"), "");
  writeFileSync(path.join(dir, "hello.txt"), "hello, static rsync\n");
  writeFileSync(path.join(dir, "big.bin"), deterministicBytes(1_500_000, 7));
  writeFileSync(path.join(dir, "text.log"), "line of compressible text\n".repeat(20_000));
  writeFileSync(path.join(dir, "sub/deeper/leaf"), deterministicBytes(4097, 3));
  writeFileSync(path.join(dir, "sub/private"), "secret\n");
  chmodSync(path.join(dir, "sub/private"), 0o600);
  chmodSync(path.join(dir, "sub/deeper"), 0o750);
  symlinkSync("sub/deeper/leaf", path.join(dir, "link-to-leaf"));
  symlinkSync("/nonexistent/target", path.join(dir, "dangling"));
  const old = new Date("2021-03-04T05:06:07Z");
  for (const f of ["empty", "hello.txt", "big.bin", "text.log", "sub/deeper/leaf", "sub/private"]) {
    utimesSync(path.join(dir, f), old, old);
  }
}

// ------------------------------------------------------------------ binaries

if (!BUILT) console.warn(`test/vendor-rsync.test.ts: static rsync checks ${NOT_BUILT}`);

describe.skipIf(!BUILT)(`vendor/rsync/out static rsync binaries${BUILT ? "" : ` (${NOT_BUILT})`}`, () => {
  let versionFile = "";
  let tmp = "";
  let rsh = "";
  let rshLog = "";

  beforeAll(() => {
    versionFile = readFileSync(VERSION_FILE, "utf8").trim();
    tmp = mkdtempSync(path.join(tmpdir(), "krsync-vendor-rsync-"));
    // Fake remote shell: drop the host, run the command line through sh as
    // an ssh server would, and note what it ran.
    rsh = path.join(tmp, "fake-rsh");
    rshLog = path.join(tmp, "fake-rsh.log");
    writeFileSync(rsh, `#!/bin/sh\nshift\nprintf '%s\\n' "$*" >>'${rshLog}'\nexec sh -c "$*"\n`);
    chmodSync(rsh, 0o755);
  });
  afterAll(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it("VERSION names a Debian source version and SHA256SUMS matches both binaries", () => {
    expect(versionFile).toMatch(/^\d+\.\d+\.\d+-[0-9A-Za-z.+~]+$/);
    const lines = readFileSync(SUMS, "utf8").trimEnd().split("\n");
    const sums = new Map(
      lines.map((l) => {
        const m = /^([0-9a-f]{64}) {2}(rsync-(?:amd64|arm64))$/.exec(l);
        if (!m) throw new Error(`bad SHA256SUMS line: ${l}`);
        return [m[2]!, m[1]!] as const;
      }),
    );
    expect([...sums.keys()].sort()).toEqual(["rsync-amd64", "rsync-arm64"]);
    expect(sums.get("rsync-amd64")).toBe(sha256(BIN.amd64));
    expect(sums.get("rsync-arm64")).toBe(sha256(BIN.arm64));
  });

  it.each([
    ["amd64", BIN.amd64, EM_X86_64],
    ["arm64", BIN.arm64, EM_AARCH64],
  ] as const)("rsync-%s is a statically linked ELF for its machine", (_arch, file, machine) => {
    const elf = parseElf(readFileSync(file));
    expect(elf.machine).toBe(machine);
    expect(staticLinkage(elf)).not.toBe("dynamic");
    expect(lstatSync(file).mode & 0o111).not.toBe(0);
  });

  const expectVersionOutput = (out: string): void => {
    const m = /rsync\s+version\s+(\d+\.\d+\.\d+)\S*\s+protocol version (\d+)/.exec(out);
    expect(m, out).not.toBeNull();
    expect(versionFile.startsWith(`${m![1]}-`)).toBe(true); // upstream part of the Debian version
    expect(Number(m![2])).toBeGreaterThanOrEqual(31);
    const checksums = /Checksum list:\s*\n\s*(.*)/.exec(out)?.[1] ?? "";
    const compress = /Compress list:\s*\n\s*(.*)/.exec(out)?.[1] ?? "";
    expect(checksums.split(/\s+/)).toContain("xxh128");
    expect(compress.split(/\s+/)).toEqual(expect.arrayContaining(["zstd", "lz4", "zlibx", "zlib"]));
  };

  it("rsync-amd64 --version runs and lists zstd, lz4 and xxh128", () => {
    expectVersionOutput(run(BIN.amd64, ["--version"]).stdout);
  });

  it.skipIf(!QEMU)("rsync-arm64 --version runs under qemu-aarch64-static", () => {
    expectVersionOutput(run(QEMU!, [BIN.arm64, "--version"]).stdout);
  });

  const servers: [string, () => string, boolean][] = [
    ["amd64", () => BIN.amd64, true],
    ["arm64 (qemu)", () => `${QEMU} ${BIN.arm64}`, Boolean(QEMU)],
  ];

  describe.each(servers)("transfers with rsync-%s as the server", (name, rsyncPath, available) => {
    const arch = name.split(" ")[0]!;
    const client = (args: string[]): void => {
      writeFileSync(rshLog, "");
      run(NATIVE_RSYNC!, ["-e", rsh, `--rsync-path=${rsyncPath()}`, ...args]);
      // The remote side really was the static binary, in server mode.
      expect(readFileSync(rshLog, "utf8")).toContain(`${BIN[arch as keyof typeof BIN]} --server`);
    };

    it.skipIf(!available || !NATIVE_RSYNC)("pull: the server sends, native rsync receives", () => {
      const src = path.join(tmp, `${arch}-pull-src`);
      const dst = path.join(tmp, `${arch}-pull-dst`);
      mkdirSync(src);
      makeTree(src);
      client(["-a", `host:${src}/`, `${dst}/`]);
      expectSameTree(src, dst, IS_ROOT);

      // Changed content, same size: the delta path, with zstd and xxh128.
      const big = path.join(src, "big.bin");
      const bytes = readFileSync(big);
      bytes.fill(0x55, 700_000, 700_100);
      writeFileSync(big, bytes);
      writeFileSync(path.join(src, "sub/new-file"), "added later\n");
      client(["-a", "--no-whole-file", "-z", "--compress-choice=zstd", "--checksum-choice=xxh128", `host:${src}/`, `${dst}/`]);
      expectSameTree(src, dst, IS_ROOT);

      rmSync(path.join(src, "hello.txt"));
      writeFileSync(path.join(src, "text.log"), "rewritten\n".repeat(9000));
      client(["-a", "--delete", "-z", "--compress-choice=lz4", `host:${src}/`, `${dst}/`]);
      expectSameTree(src, dst, IS_ROOT);
    });

    it.skipIf(!available || !NATIVE_RSYNC)("push: native rsync sends, the server receives", () => {
      const src = path.join(tmp, `${arch}-push-src`);
      const dst = path.join(tmp, `${arch}-push-dst`);
      mkdirSync(src);
      makeTree(src);
      client(["-a", "-z", "--compress-choice=zlibx", `${src}/`, `host:${dst}/`]);
      expectSameTree(src, dst, IS_ROOT);
    });

    // A static glibc that fell through /etc/passwd to a shared NSS module
    // (nsswitch "files systemd") would crash here: the sender looks up the
    // name of a uid no account has.
    it.skipIf(!available || !NATIVE_RSYNC || !IS_ROOT)("sends files owned by a uid and gid no account has", () => {
      const src = path.join(tmp, `${arch}-nouser-src`);
      const dst = path.join(tmp, `${arch}-nouser-dst`);
      mkdirSync(src);
      writeFileSync(path.join(src, "orphan"), "owned by nobody known\n");
      chownSync(path.join(src, "orphan"), 54321, 54329);
      client(["-a", `host:${src}/`, `${dst}/`]);
      const st = lstatSync(path.join(dst, "orphan"));
      expect([st.uid, st.gid]).toEqual([54321, 54329]);
      expectSameTree(src, dst, true);
    });
  });
});
