// Running native rsync (or, via `bin`, any rsync-compatible CLI such as krsync) in tests, and
// reading its --stats output.

import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { rsyncPath } from "./env.js";

export interface RunOptions {
  cwd?: string;
  /** Extra environment (merged over process.env). */
  env?: NodeJS.ProcessEnv;
  /** Command to run instead of native rsync, e.g. ["node", "dist/cli/krsync.js"]. */
  bin?: readonly string[];
  /** Kill the process after this many ms (default 300 000). */
  timeoutMs?: number;
}

export interface RunResult {
  /** Exit code; null if killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** The argv that was run, for messages. */
  argv: readonly string[];
}

export function runRsync(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const [cmd, ...pre] = opts.bin && opts.bin.length > 0 ? opts.bin : [rsyncPath];
  const argv = [cmd!, ...pre, ...args];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd!, [...pre, ...args], {
      cwd: opts.cwd,
      env: { ...process.env, ...opts.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 300_000);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({
        code,
        signal,
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
        argv,
      });
    });
  });
}

/** Throw (with the command line and stderr) unless the run exited 0. */
export function assertOk(r: RunResult): RunResult {
  if (r.code !== 0) {
    throw new Error(
      `command failed (code ${r.code}, signal ${r.signal}): ${r.argv.map((a) => JSON.stringify(a)).join(" ")}\n` +
        `stderr:\n${r.stderr}\nstdout:\n${r.stdout.slice(-4000)}`,
    );
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// Remote-shell transfers over fakersh.sh

/** Path of the fake remote shell, quoted for rsync's -e parser if it contains spaces. */
export function rshArg(): string {
  const p = fileURLToPath(new URL("./fakersh.sh", import.meta.url));
  return /[\s'"\\]/.test(p) ? `'${p.replace(/'/g, `'\\''`)}'` : p;
}

/** Host name used in remote specs; fakersh ignores it. */
export const FAKE_HOST = "fakehost";

function withRemoteDefaults(opts: readonly string[]): string[] {
  const hasRsh = opts.some((o) => o === "-e" || o.startsWith("--rsh"));
  const out = hasRsh ? [] : ["-e", rshArg()];
  if (!opts.some((o) => o.startsWith("--rsync-path"))) out.push(`--rsync-path=${rsyncPath}`);
  return [...out, ...opts];
}

const slashed = (p: string): string => (p.endsWith("/") ? p : `${p}/`);

/** `rsync -e fakersh [opts] host:SRC/ DST/` — the client receives. */
export function pull(src: string, dst: string, opts: readonly string[] = [], run?: RunOptions): Promise<RunResult> {
  return runRsync([...withRemoteDefaults(opts), `${FAKE_HOST}:${slashed(src)}`, slashed(dst)], run);
}

/** `rsync -e fakersh [opts] SRC/ host:DST/` — the client sends. */
export function push(src: string, dst: string, opts: readonly string[] = [], run?: RunOptions): Promise<RunResult> {
  return runRsync([...withRemoteDefaults(opts), slashed(src), `${FAKE_HOST}:${slashed(dst)}`], run);
}

/** `rsync [opts] SRC/ DST/` — a local copy (both roles in local processes). */
export function localCopy(src: string, dst: string, opts: readonly string[] = [], run?: RunOptions): Promise<RunResult> {
  return runRsync([...opts, slashed(src), slashed(dst)], run);
}

// ---------------------------------------------------------------------------------------------
// --stats

export interface ItemCounts {
  total: number;
  reg?: number;
  dir?: number;
  link?: number;
  dev?: number;
  special?: number;
}

export interface RsyncStats {
  numberOfFiles: ItemCounts;
  /** Protocol >= 29 only. */
  numberOfCreatedFiles?: ItemCounts;
  /** Protocol >= 31 only. */
  numberOfDeletedFiles?: ItemCounts;
  regularFilesTransferred: number;
  totalFileSize: number;
  totalTransferredFileSize: number;
  literalData: number;
  matchedData: number;
  fileListSize: number;
  /** Seconds; absent when rsync did not measure it (old protocols). */
  fileListGenerationTime?: number;
  fileListTransferTime?: number;
  totalBytesSent: number;
  totalBytesReceived: number;
  /** From the "total size is N  speedup is S" line. */
  speedup?: number;
}

/**
 * A number as rsync prints it: "1,234", "1234", or with -h suffixes ("1.23K", "4.50M"; units of
 * 1000 with -h, 1024 with -hh: the suffix value is taken as 1000-based, so such numbers are
 * approximate — run with --no-h for exact figures).
 */
export function parseRsyncNumber(s: string): number {
  const m = /^([0-9][0-9,]*(?:\.[0-9]+)?)([KMGTP]?)$/.exec(s.trim());
  if (!m) throw new Error(`parseRsyncNumber: not a number: ${JSON.stringify(s)}`);
  const n = Number(m[1]!.replace(/,/g, ""));
  const scale = { "": 1, K: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15 }[m[2] as "" | "K" | "M" | "G" | "T" | "P"];
  return Math.round(n * scale);
}

function parseCounts(s: string): ItemCounts {
  // "1,234 (reg: 1,000, dir: 200, link: 30, dev: 2, special: 1)"
  const m = /^([0-9][0-9,.]*[KMGTP]?)(?:\s*\((.*)\))?$/.exec(s.trim());
  if (!m) throw new Error(`parseStats: bad count ${JSON.stringify(s)}`);
  const c: ItemCounts = { total: parseRsyncNumber(m[1]!) };
  if (m[2]) {
    for (const part of m[2].split(/,\s+(?=[a-z])/)) {
      const kv = /^([a-z]+):\s*(.+)$/.exec(part.trim());
      if (!kv) continue;
      const k = kv[1] as keyof Omit<ItemCounts, "total">;
      if (k === "reg" || k === "dir" || k === "link" || k === "dev" || k === "special") c[k] = parseRsyncNumber(kv[2]!);
    }
  }
  return c;
}

/** Read the --stats block from rsync's stdout (throws if the mandatory lines are absent). */
export function parseStats(stdout: string): RsyncStats {
  const lines = new Map<string, string>();
  for (const raw of stdout.split("\n")) {
    const m = /^([A-Z][A-Za-z ]+): (.*)$/.exec(raw.trim());
    if (m) lines.set(m[1]!, m[2]!);
  }
  const get = (k: string): string => {
    const v = lines.get(k);
    if (v === undefined) throw new Error(`parseStats: no "${k}:" line in rsync output:\n${stdout.slice(-2000)}`);
    return v;
  };
  const bytes = (k: string): number => parseRsyncNumber(get(k).replace(/\s*bytes$/, ""));
  const secs = (k: string): number | undefined => {
    const v = lines.get(k);
    return v === undefined ? undefined : Number(v.replace(/\s*seconds$/, "").replace(/,/g, ""));
  };
  const speed = /total size is \S+\s+speedup is ([0-9.,]+)/.exec(stdout);
  const st: RsyncStats = {
    numberOfFiles: parseCounts(get("Number of files")),
    regularFilesTransferred: parseRsyncNumber(get("Number of regular files transferred")),
    totalFileSize: bytes("Total file size"),
    totalTransferredFileSize: bytes("Total transferred file size"),
    literalData: bytes("Literal data"),
    matchedData: bytes("Matched data"),
    fileListSize: bytes("File list size"),
    totalBytesSent: bytes("Total bytes sent"),
    totalBytesReceived: bytes("Total bytes received"),
  };
  if (lines.has("Number of created files")) st.numberOfCreatedFiles = parseCounts(get("Number of created files"));
  if (lines.has("Number of deleted files")) st.numberOfDeletedFiles = parseCounts(get("Number of deleted files"));
  const gen = secs("File list generation time");
  if (gen !== undefined) st.fileListGenerationTime = gen;
  const xfer = secs("File list transfer time");
  if (xfer !== undefined) st.fileListTransferTime = xfer;
  if (speed) st.speedup = Number(speed[1]!.replace(/,/g, ""));
  return st;
}

/** Bytes moved on the wire in both directions, as the client counted them. */
export function wireBytes(st: RsyncStats): number {
  return st.totalBytesSent + st.totalBytesReceived;
}
