#!/usr/bin/env node
// krsync's benchmark harness: `npm run bench [-- options]`, `node bench/run.mjs`, `krsync bench`.
// Runs krsync and native rsync side by side on deterministic trees, prints ratios, absolute
// figures and the targets (met / not met), and writes the report as JSON. See bench/README.md.

import { execFileSync } from "node:child_process";
import { accessSync, constants, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import { delimiter, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { detectMethod } from "./measure.mjs";
import { runMicro, runStartup } from "./micro.mjs";
import { compareReports, evaluateTargets, formatReport } from "./report.mjs";
import { runScenario, SCENARIOS } from "./scenarios.mjs";
import { cached, generateBigFile, generateTree, linkClone, mutateBigFile, mutateTree } from "./trees.mjs";

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(BENCH_DIR, "..");

export const FULL = { files: 20000, totalMB: 1000, bigMB: 1000 };
export const QUICK = { files: 2000, totalMB: 100, bigMB: 100 };
const DEFAULT_RUNS = { initial: 3, nochange: 5, delta: 5, big: 7, local: 3 };
const QUICK_RUNS = { initial: 3, nochange: 3, delta: 3, big: 3, local: 3 };
const SEED = 1;

const HELP = `usage: node bench/run.mjs [options]      (npm run bench -- [options], krsync bench [options])
  --quick               ${QUICK.files} files / ${QUICK.totalMB} MB tree, ${QUICK.bigMB} MB big file (default: ${FULL.files} / ${FULL.totalMB} MB, ${FULL.bigMB} MB)
  --scenario NAME       run only this scenario (repeatable, or comma-separated); --list names them
  --files N --mb N --big-mb N   custom sizes (tree files, tree total MB, big file MB)
  --runs N              runs per tool for every scenario (default 3; no-change and delta pulls 5, the big file 7, quick 3)
  --warmup N            unmeasured rounds (each tool once) before a scenario's runs (default 1)
  --no-micro            skip the micro-benchmarks      --micro-only   only the micro-benchmarks
  --micro-ms N          minimum time per micro-benchmark batch (default 250, quick 150)
  --no-verify           do not check krsync's result against the source after its first run
  --rss METHOD          auto | subreaper | time | none (default auto: the best available)
  --work DIR            cache and scratch directory (default .bench-work/ in the repo)
  --keep                keep the scratch destinations (default: removed at the end; trees stay cached)
  --out FILE            JSON report (default bench/results/latest.json; the old one becomes previous.json)
  --compare FILE        also show krsync's times against an earlier JSON report
  --rsync PATH          native rsync (client and server; default: rsync on PATH)
  --json                print the JSON report on stdout instead of the tables
  --list                list the scenarios and exit
Exit status: 0 done (targets met or not), 1 a scenario failed or krsync's result was wrong, 2 bad usage.`;

class Usage extends Error {}

function parseArgs(argv) {
  const o = {
    quick: false,
    scenarios: [],
    sizes: {},
    runs: null,
    warmup: 1,
    micro: true,
    microOnly: false,
    microMs: null,
    verify: true,
    rss: "auto",
    work: join(ROOT, ".bench-work"),
    keep: false,
    out: null,
    compare: null,
    rsync: null,
    json: false,
    list: false,
    help: false,
  };
  const need = (i, name) => {
    if (i + 1 >= argv.length) throw new Usage(`${name} needs a value`);
    return argv[i + 1];
  };
  const num = (v, name) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Usage(`${name}: not a positive number: ${v}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i];
    let inline = null;
    const eq = a.indexOf("=");
    if (a.startsWith("--") && eq > 0) {
      inline = a.slice(eq + 1);
      a = a.slice(0, eq);
    }
    const val = () => {
      if (inline !== null) return inline;
      const v = need(i, a);
      i++;
      return v;
    };
    switch (a) {
      case "--quick": o.quick = true; break;
      case "--scenario": o.scenarios.push(...val().split(",").filter(Boolean)); break;
      case "--files": o.sizes.files = Math.round(num(val(), a)); break;
      case "--mb": o.sizes.totalMB = num(val(), a); break;
      case "--big-mb": o.sizes.bigMB = num(val(), a); break;
      case "--runs": o.runs = Math.round(num(val(), a)); break;
      case "--warmup": o.warmup = Math.max(0, Math.round(num(val(), a))); break;
      case "--no-micro": o.micro = false; break;
      case "--micro-only": o.microOnly = true; break;
      case "--micro-ms": o.microMs = num(val(), a); break;
      case "--no-verify": o.verify = false; break;
      case "--rss": o.rss = val(); break;
      case "--work": o.work = resolve(val()); break;
      case "--keep": o.keep = true; break;
      case "--out": o.out = resolve(val()); break;
      case "--compare": o.compare = resolve(val()); break;
      case "--rsync": o.rsync = val(); break;
      case "--json": o.json = true; break;
      case "--list": o.list = true; break;
      case "--help": case "-h": o.help = true; break;
      default: throw new Usage(`unknown option: ${argv[i]}`);
    }
  }
  if (!["auto", "subreaper", "time", "none"].includes(o.rss)) throw new Usage(`--rss: one of auto, subreaper, time, none`);
  const known = new Set(SCENARIOS.map((s) => s.name));
  for (const s of o.scenarios) if (!known.has(s)) throw new Usage(`unknown scenario ${s} (one of: ${[...known].join(", ")})`);
  return o;
}

function which(cmd) {
  if (cmd.includes("/")) return resolve(cmd);
  for (const d of (process.env.PATH ?? "").split(delimiter)) {
    const p = join(d || ".", cmd);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // next
    }
  }
  return null;
}

/** Cached trees, each built on first use. */
function lazyTrees(work, sizes, log) {
  const dir = join(work, "trees");
  mkdirSync(dir, { recursive: true });
  const baseKey = `tree-f${sizes.files}-m${sizes.totalMB}-s${SEED}`;
  const bigKey = `big-m${sizes.bigMB}-s3`;
  const memo = {};
  const once = (k, f) => (k in memo ? memo[k] : (memo[k] = f()));
  const base = () =>
    once("base", () => {
      const p = join(dir, baseKey);
      cached(p, { files: sizes.files, totalMB: sizes.totalMB, seed: SEED, v: 1 }, (d) => generateTree(d, { files: sizes.files, totalMB: sizes.totalMB, seed: SEED }), log);
      return p;
    });
  const mutated = (kind) =>
    once(kind, () => {
      const b = base();
      const p = join(dir, `${baseKey}-${kind}`);
      cached(p, { base: baseKey, kind, seed: 7, v: 1 }, (d) => {
        linkClone(b, d);
        return mutateTree(d, kind, 7);
      }, log);
      return p;
    });
  const bigBase = () =>
    once("bigBase", () => {
      const p = join(dir, bigKey);
      cached(p, { mb: sizes.bigMB, seed: 3, v: 1 }, (d) => generateBigFile(d, { mb: sizes.bigMB, seed: 3 }), log);
      return p;
    });
  const bigMut = () =>
    once("bigMut", () => {
      const b = bigBase();
      const p = join(dir, `${bigKey}-changed`);
      const ranges = cached(p, { base: bigKey, count: 100, size: 4096, seed: 11, v: 1 }, (d) => mutateBigFile(b, d, { count: 100, size: 4096, seed: 11 }), log);
      return { p, ranges };
    });
  return {
    get base() { return base(); },
    get edits() { return mutated("edits"); },
    get touch() { return mutated("touch"); },
    get renames() { return mutated("renames"); },
    get bigBase() { return bigBase(); },
    get bigMut() { return bigMut().p; },
    get bigRanges() { return bigMut().ranges; },
  };
}

function machineInfo(rsync) {
  const first = (argv) => {
    try {
      return execFileSync(argv[0], argv.slice(1), { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).split("\n")[0].trim();
    } catch {
      return null;
    }
  };
  let krsyncVersion = null;
  try {
    krsyncVersion = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version;
  } catch {
    // not in a checkout
  }
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? "unknown",
    memMB: Math.round(os.totalmem() / 2 ** 20),
    platform: `${os.platform()} ${os.release()}`,
    node: process.version,
    rsyncVersion: first([rsync, "--version"])?.replace(/\s+/g, " ") ?? "unknown",
    krsyncVersion,
    commit: first(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]),
    freePageReporting: freePageReporting(),
  };
}

/**
 * The guest kernel's free page reporting (a VM balloon that hands freed memory back to the
 * host), when it has the min_free_ms knob: how long a freed page stays unreported. At 0 a
 * page is reported as soon as it is freed, and the next write into it faults on the host —
 * the page cache that every transfer's written file takes then costs seconds per GB, at
 * random, whichever tool runs (README: Noise). null where the kernel has no such knob.
 */
function freePageReporting() {
  const dir = "/sys/module/page_reporting/parameters";
  try {
    return { minFreeMs: Number(readFileSync(join(dir, "min_free_ms"), "utf8").trim()) };
  } catch {
    return null;
  }
}

/**
 * Run the benchmark harness with command-line arguments (not including the program name).
 * @param {string[]} argv
 * @param {{ stdout?: (s: string) => void, stderr?: (s: string) => void }} [io]
 * @returns {Promise<number>} exit status
 */
export async function runBench(argv, io = {}) {
  const stdout = io.stdout ?? ((s) => process.stdout.write(s + "\n"));
  const log = io.stderr ?? ((s) => process.stderr.write(s + "\n"));
  let o;
  try {
    o = parseArgs(argv);
  } catch (e) {
    if (!(e instanceof Usage)) throw e;
    log(`bench: ${e.message}`);
    log("try --help");
    return 2;
  }
  if (o.help) {
    stdout(HELP);
    return 0;
  }
  if (o.list) {
    for (const s of SCENARIOS) stdout(`${s.name.padEnd(18)} ${s.title}${s.notMeasured ? " (not measured here)" : ""}`);
    return 0;
  }

  const t0 = performance.now();
  const loadAtStart = os.loadavg().map((x) => Math.round(x * 100) / 100);
  const sizes = { ...(o.quick ? QUICK : FULL), ...o.sizes };
  const fullSize = sizes.files >= FULL.files && sizes.totalMB >= FULL.totalMB && sizes.bigMB >= FULL.bigMB;
  const runs = o.runs ? Object.fromEntries(Object.keys(DEFAULT_RUNS).map((k) => [k, o.runs])) : { ...(o.quick ? QUICK_RUNS : DEFAULT_RUNS) };
  const krsyncMain = join(ROOT, "dist", "cli", "krsync.js");
  const rsync = which(o.rsync ?? "rsync");
  if (!rsync) {
    log("bench: native rsync not found (use --rsync PATH)");
    return 2;
  }
  if (!o.microOnly && !existsSync(krsyncMain)) {
    log(`bench: ${krsyncMain} is missing: run \`npm run build\` first`);
    return 2;
  }
  const method = detectMethod(o.rss);
  const rshPath = join(BENCH_DIR, "fakersh.sh");
  const rsh = /[\s'"\\]/.test(rshPath) ? `'${rshPath.replace(/'/g, `'\\''`)}'` : rshPath;
  const scratch = join(o.work, "run");
  mkdirSync(scratch, { recursive: true });
  const trees = lazyTrees(o.work, sizes, log);
  const krsync = existsSync(krsyncMain) ? krsyncArgv(krsyncMain) : [process.execPath, krsyncMain];
  const ctx = { krsyncMain, krsync, rsync, rsh, method, scratch, trees: () => trees, runs, warmup: o.warmup, verify: o.verify, log };

  log(`bench: tree ${sizes.files} files / ${sizes.totalMB} MB, big file ${sizes.bigMB} MB; work dir ${o.work}`);
  log(`bench: RSS ${method.note}`);
  const selected = o.microOnly ? [] : o.scenarios.length ? SCENARIOS.filter((s) => o.scenarios.includes(s.name)) : SCENARIOS;
  const scenarios = [];
  try {
    for (const sc of selected) {
      log(`bench: ${sc.name} — ${sc.title}`);
      const r = await runScenario(ctx, sc);
      if (r.status !== "ok") log(`  ${r.status}: ${r.reason}`);
      else log(`  time ${fmtRatio(r.ratios.time)}, RSS ${fmtRatio(r.ratios.rss)}, wire ${fmtRatio(r.ratios.wire)} (${(sc.pair ?? ["krsync", "native"]).join("/")})`);
      scenarios.push(r);
    }
  } finally {
    if (!o.keep) {
      for (const d of ["tree-krsync", "tree-native", "tree-cp", "big-krsync", "big-native", "probe", "trash", "tree-api", "tree-pipe", "fakeapi"]) {
        rmSync(join(scratch, d), { recursive: true, force: true });
      }
    }
  }

  let micro = [];
  if (o.micro || o.microOnly) {
    log("bench: micro-benchmarks");
    micro = await runMicro({ ms: o.microMs ?? (o.quick ? 150 : 250), log });
    if (existsSync(krsyncMain)) micro.push(...(await runStartup({ krsync, rsync, runs: o.runs ?? 5, log })));
  }

  const loadAtEnd = os.loadavg().map((x) => Math.round(x * 100) / 100);
  const rep = {
    format: "krsync-bench/1",
    startedAt: new Date(Date.now() - (performance.now() - t0)).toISOString(),
    durationSec: 0,
    machine: { ...machineInfo(rsync), loadAverageAtStart: loadAtStart, loadAverageAtEnd: loadAtEnd },
    config: { quick: o.quick, fullSize, ...sizes, runs, warmup: o.warmup, seed: SEED, verify: o.verify, scenarios: selected.map((s) => s.name) },
    rssMethod: { kind: method.kind, note: method.note },
    scenarios,
    targets: evaluateTargets(scenarios, { fullSize }),
    micro,
  };
  if (o.compare) {
    try {
      rep.comparedWith = o.compare;
      rep.comparison = compareReports(JSON.parse(readFileSync(o.compare, "utf8")), rep);
    } catch (e) {
      log(`bench: cannot compare with ${o.compare}: ${e.message}`);
    }
  }
  rep.durationSec = (performance.now() - t0) / 1000;

  const out = o.out ?? join(BENCH_DIR, "results", "latest.json");
  mkdirSync(dirname(out), { recursive: true });
  if (!o.out && existsSync(out)) renameSync(out, join(dirname(out), "previous.json"));
  writeFileSync(out, JSON.stringify(rep, null, 2) + "\n");
  stdout(o.json ? JSON.stringify(rep, null, 2) : formatReport(rep));
  log(`bench: report written to ${out}`);

  const failed = scenarios.some((s) => s.status === "failed" || s.verify?.differences > 0);
  return failed ? 1 : 0;
}

function fmtRatio(x) {
  return typeof x === "number" ? `${x.toFixed(2)}x` : "-";
}

const invoked = process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (invoked) {
  // A reader that has seen enough (`--list | head`): stop quietly, as a pipe's writer does.
  process.stdout.on("error", (e) => {
    if (e.code !== "EPIPE") throw e;
    process.exit(process.exitCode ?? 0);
  });
  runBench(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e) => {
      process.stderr.write(`bench: ${e.stack ?? e}\n`);
      process.exitCode = 1;
    },
  );
}

/**
 * How the bin runs as a user starts it: this node with the flags its first line gives node
 * (`#!/usr/bin/env -S node --max-semi-space-size=2`), then the file. Run as `node FILE`, a
 * figure would miss what those flags do (the young generation's size shows in peak RSS).
 */
export function krsyncArgv(main) {
  const first = readFileSync(main, "utf8").split("\n", 1)[0] ?? "";
  const words = first.startsWith("#!") ? first.slice(2).trim().split(/\s+/) : [];
  const at = words.findIndex((w) => /(^|\/)node$/.test(w));
  return [process.execPath, ...(at >= 0 ? words.slice(at + 1) : []), main];
}
