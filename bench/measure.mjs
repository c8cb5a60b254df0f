// Running one command and measuring it: wall time, peak RSS of the client process, exit code,
// output (for --stats), plus the peak RSS of the remote side when it can be told apart.
//
// Methods, best first (chosen once by detectMethod):
//   "subreaper" - python3 bench/rusage.py (a child subreaper) around GNU time: the client's own
//                 peak RSS (it and the children it reaps, e.g. native rsync's receiver fork),
//                 while the remote side, detached by fakersh.sh, is adopted and measured apart;
//   "time"      - GNU /usr/bin/time alone: the client's figure also covers the remote side
//                 (the rsh child is reaped by the client, so its peak folds in as a maximum);
//   "none"      - wall time only.

import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const RUSAGE_PY = fileURLToPath(new URL("./rusage.py", import.meta.url));
const GNU_TIME = "/usr/bin/time";

/** @typedef {{ kind: "subreaper" | "time" | "none", python?: string, note: string }} Method */

/** Pick the best RSS method available here. `want` forces one ("auto" = best). */
export function detectMethod(want = "auto") {
  const hasTime = gnuTimeWorks();
  const python = hasTime ? findPython() : null;
  const methods = {
    subreaper: python && { kind: "subreaper", python, note: "client's own peak RSS (GNU time); remote side measured apart (subreaper)" },
    time: hasTime && { kind: "time", note: "peak RSS from GNU time; the client's figure includes the remote side's" },
    none: { kind: "none", note: "peak RSS not measured (no GNU /usr/bin/time)" },
  };
  if (want !== "auto") {
    const m = methods[want];
    if (!m) throw new Error(`RSS method ${want} is not available here`);
    return m;
  }
  return methods.subreaper || methods.time || methods.none;
}

function gnuTimeWorks() {
  if (!existsSync(GNU_TIME)) return false;
  const dir = mkdtempSync(join(tmpdir(), "krsync-bench-"));
  try {
    execFileSync(GNU_TIME, ["-f", "%M", "-o", join(dir, "m"), "true"], { stdio: "ignore" });
    return /^\d+\s*$/.test(readFileSync(join(dir, "m"), "utf8").trim().split("\n").pop() ?? "");
  } catch {
    return false;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The real interpreter (not a version-manager shim, which would add start-up time). */
function findPython() {
  try {
    const out = execFileSync("python3", ["-c", "import sys, ctypes; print(sys.executable)"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    }).trim();
    return out && existsSync(out) ? out : null;
  } catch {
    return null;
  }
}

/**
 * @typedef {object} Measurement
 * @property {number} wallSec
 * @property {number | null} exitCode
 * @property {number | null} rssKB       peak RSS of the client (see the method's note)
 * @property {number | null} remoteRssKB peak RSS of the remote side (subreaper method only)
 * @property {string} stdout
 * @property {string} stderr
 */

/**
 * Run argv (argv[0] looked up on PATH) and measure it.
 * @param {string[]} argv
 * @param {{ method: Method, env?: NodeJS.ProcessEnv, cwd?: string, timeoutMs?: number }} o
 * @returns {Promise<Measurement>}
 */
export async function measure(argv, o) {
  const m = o.method;
  const dir = mkdtempSync(join(tmpdir(), "krsync-bench-"));
  const rssFile = join(dir, "rss");
  const jsonFile = join(dir, "ru.json");
  let cmd = argv;
  const env = { ...process.env, ...o.env };
  if (m.kind !== "none") cmd = [GNU_TIME, "-f", "%M", "-o", rssFile, ...cmd];
  if (m.kind === "subreaper") {
    cmd = [m.python, RUSAGE_PY, jsonFile, ...cmd];
    env.BENCH_RSH_DETACH = "1";
  } else {
    delete env.BENCH_RSH_DETACH;
  }
  try {
    const t0 = process.hrtime.bigint();
    const r = await run(cmd, { env, cwd: o.cwd, timeoutMs: o.timeoutMs ?? 30 * 60_000 });
    let wallSec = Number(process.hrtime.bigint() - t0) / 1e9;
    let exitCode = r.code;
    let rssKB = null;
    let remoteRssKB = null;
    if (m.kind !== "none" && existsSync(rssFile)) {
      // GNU time writes "Command exited with non-zero status N" before the figure.
      const text = readFileSync(rssFile, "utf8").trim().split("\n");
      const last = Number(text[text.length - 1]);
      if (Number.isFinite(last)) rssKB = last;
    }
    if (m.kind === "subreaper" && existsSync(jsonFile)) {
      const ru = JSON.parse(readFileSync(jsonFile, "utf8"));
      wallSec = ru.wall;
      exitCode = ru.exit;
      remoteRssKB = ru.other_maxrss_kb > 0 ? ru.other_maxrss_kb : null;
    }
    return { wallSec, exitCode, rssKB, remoteRssKB, stdout: r.stdout, stderr: r.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Run a command to completion, collecting its output.
 * @returns {Promise<{ code: number | null, signal: string | null, stdout: string, stderr: string }>}
 */
export function run(argv, o = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), {
      cwd: o.cwd,
      env: o.env ?? process.env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const out = [];
    const err = [];
    child.stdout.on("data", (b) => out.push(b));
    child.stderr.on("data", (b) => err.push(b));
    const timer = setTimeout(() => child.kill("SIGKILL"), o.timeoutMs ?? 30 * 60_000);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8") });
    });
  });
}

/** Run and throw with the output unless it exits 0. */
export async function runOk(argv, o = {}) {
  const r = await run(argv, o);
  if (r.code !== 0) {
    throw new Error(`${argv.join(" ")} failed (exit ${r.code ?? r.signal}):\n${(r.stderr || r.stdout).slice(-2000)}`);
  }
  return r;
}

/**
 * The wire figures of rsync's --stats ("Total bytes sent: 1,234" / "Total bytes received"),
 * as the client counts them (sent = client to server). Null when absent.
 * @returns {{ sent: number, received: number, total: number } | null}
 */
export function parseWireStats(stdout) {
  const get = (label) => {
    const m = new RegExp(`^${label}:\\s*([0-9][0-9,.]*)([KMGTP]?)`, "m").exec(stdout);
    if (!m) return null;
    const mult = { "": 1, K: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15 }[m[2]];
    return Math.round(Number(m[1].replace(/,/g, "")) * mult);
  };
  const sent = get("Total bytes sent");
  const received = get("Total bytes received");
  if (sent === null || received === null) return null;
  return { sent, received, total: sent + received };
}

/** Median of numbers (null when empty). */
export function median(xs) {
  const a = xs.filter((x) => typeof x === "number" && Number.isFinite(x)).sort((p, q) => p - q);
  if (a.length === 0) return null;
  const mid = a.length >> 1;
  return a.length % 2 ? a[mid] : (a[mid - 1] + a[mid]) / 2;
}
