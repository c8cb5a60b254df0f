// The scenarios: each runs krsync and native rsync (and for the local copy `cp -a`) from the
// same starting state, alternating which goes first, several times; figures are medians.
// The remote side is always native `rsync --server`, reached through bench/fakersh.sh.
// Whether krsync can do a direction at all (pull, push, local copy) is found by trying it on a
// tiny tree first: a refusal is reported as "not supported yet" with krsync's own message.

import { existsSync, mkdirSync, renameSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { measure, median, parseWireStats, run, runOk } from "./measure.mjs";
import { restoreBigFile } from "./trees.mjs";
import { startApiPod } from "./api.mjs";

export const HOST = "bench-host";

/**
 * @typedef {"pull" | "push" | "local" | "api"} Mode
 * @typedef {"krsync" | "native" | "cp" | "api" | "pipe"} Tool
 * @typedef {object} Scenario
 * @property {string} name
 * @property {string} title
 * @property {Mode} mode
 * @property {"initial" | "nochange" | "delta" | "big" | "local"} runsKey
 * @property {Tool[]} tools
 * @property {(t: Trees) => string} src
 * @property {"tree" | "big"} dst       which scratch destinations it uses
 * @property {"empty" | "base" | "base-once" | "big"} reset  the starting state of the destination
 * @property {string[]} [args]          extra options for krsync and rsync
 * @property {boolean} [verifyChecksum] verify the result with -c (content, not just size+mtime)
 * @property {string} [notMeasured]     a reason the harness does not run it at all
 * @property {[Tool, Tool]} [pair]      the tools of the time/RSS/wire ratios (default krsync, native)
 */

/** @type {Scenario[]} */
export const SCENARIOS = [
  { name: "initial-pull", title: "initial pull of the tree", mode: "pull", runsKey: "initial", tools: ["krsync", "native"], src: (t) => t.base, dst: "tree", reset: "empty" },
  { name: "nochange-pull", title: "no-change pull", mode: "pull", runsKey: "nochange", tools: ["krsync", "native"], src: (t) => t.base, dst: "tree", reset: "base-once" },
  { name: "edits-pull", title: "pull after scattered edits (50 files) + appends (20)", mode: "pull", runsKey: "delta", tools: ["krsync", "native"], src: (t) => t.edits, dst: "tree", reset: "base", verifyChecksum: true },
  { name: "touch-pull", title: "pull after mtime-only changes (500 files)", mode: "pull", runsKey: "delta", tools: ["krsync", "native"], src: (t) => t.touch, dst: "tree", reset: "base" },
  { name: "renames-pull", title: "pull after 200 renames + 100 deletions (--delete)", mode: "pull", runsKey: "delta", tools: ["krsync", "native"], src: (t) => t.renames, dst: "tree", reset: "base", args: ["--delete"] },
  { name: "bigfile-pull", title: "big file, 100 x 4 KiB changes: pull", mode: "pull", runsKey: "big", tools: ["krsync", "native"], src: (t) => t.bigMut, dst: "big", reset: "big", verifyChecksum: true },
  { name: "bigfile-push", title: "big file, 100 x 4 KiB changes: push", mode: "push", runsKey: "big", tools: ["krsync", "native"], src: (t) => t.bigMut, dst: "big", reset: "big", verifyChecksum: true },
  { name: "local-copy", title: "local copy of the tree (vs rsync and cp -a)", mode: "local", runsKey: "local", tools: ["krsync", "native", "cp"], src: (t) => t.base, dst: "tree", reset: "empty" },
  // krsync over the Kubernetes API exec WebSocket ("api") against krsync over a local pipe
  // ("pipe"), the same native rsync and tree at the far end (bench/api.mjs).
  { name: "api-nochange-pull", title: "no-change pull over the Kubernetes API transport vs a local pipe", mode: "api", runsKey: "nochange", tools: ["api", "pipe"], pair: ["api", "pipe"], src: (t) => t.base, dst: "tree", reset: "base-once" },
];

/**
 * @typedef {object} Trees
 * @property {string} base @property {string} edits @property {string} touch
 * @property {string} renames @property {string} bigBase @property {string} bigMut
 * @property {number[][]} bigRanges
 */

/**
 * Everything a scenario run needs.
 * @typedef {object} Ctx
 * @property {string} krsyncMain  path of dist/cli/krsync.js (the bin)
 * @property {string[]} krsync     argv that runs it: node, the flags of its first line, the file
 * @property {string} rsync       native rsync (client and, via --rsync-path, server)
 * @property {string} rsh         -e value
 * @property {import("./measure.mjs").Method} method
 * @property {string} scratch     directory for destinations
 * @property {() => Trees} trees  builds/loads the cached trees on first use
 * @property {Record<string, number>} runs
 * @property {number} [warmup]     unmeasured rounds before the runs
 * @property {boolean} verify
 * @property {(s: string) => void} log
 */

/** argv for a tool doing a transfer in a mode. */
export function commandFor(ctx, tool, mode, src, dst, extra = []) {
  if (tool === "cp") return ["cp", "-a", src, dst];
  const base = tool === "krsync" ? ctx.krsync : [ctx.rsync];
  const opts = ["-a", "--stats", ...extra];
  if (mode === "local") return [...base, ...opts, `${src}/`, `${dst}/`];
  const remote = ["-e", ctx.rsh, `--rsync-path=${ctx.rsync}`];
  if (mode === "pull") return [...base, ...opts, ...remote, `${HOST}:${src}/`, `${dst}/`];
  return [...base, ...opts, ...remote, `${src}/`, `${HOST}:${dst}/`];
}

const probeCache = new Map();

/**
 * Can krsync do this direction? Tried once per mode on a tiny tree.
 * @returns {Promise<{ status: "ok" } | { status: "skipped" | "failed", reason: string }>}
 */
export async function probe(ctx, mode) {
  const hit = probeCache.get(`${ctx.scratch}|${mode}`);
  if (hit) return hit;
  const dir = join(ctx.scratch, "probe");
  const src = join(dir, "src");
  const dst = join(dir, `dst-${mode}`);
  if (!existsSync(join(src, "sub", "b.txt"))) {
    mkdirSync(join(src, "sub"), { recursive: true });
    writeFileSync(join(src, "a.txt"), "probe a\n");
    writeFileSync(join(src, "sub", "b.txt"), "probe b\n".repeat(100));
    for (const p of [join(src, "a.txt"), join(src, "sub", "b.txt"), join(src, "sub"), src]) utimesSync(p, 1_600_000_000, 1_600_000_000);
  }
  rmSync(dst, { recursive: true, force: true });
  const r = await run(commandFor(ctx, "krsync", mode, src, dst), { timeoutMs: 60_000 });
  let res;
  if (r.code === 0) {
    res = { status: "ok" };
  } else {
    const lines = (r.stderr || r.stdout).split("\n").map((l) => l.trim()).filter(Boolean);
    const said = lines.find((l) => /not supported/i.test(l)) ?? lines[0] ?? `exit ${r.code ?? r.signal}`;
    // RERR_UNSUPPORTED (4) or a "not supported" message: the direction is not implemented yet.
    res = r.code === 4 || /not supported/i.test(said)
      ? { status: "skipped", reason: `not supported yet (${mode}): ${said}` }
      : { status: "failed", reason: `krsync ${mode} probe failed (exit ${r.code ?? r.signal}): ${said}` };
  }
  probeCache.set(`${ctx.scratch}|${mode}`, res);
  return res;
}

/** Scratch destination of a tool for a destination kind. */
function dstPath(ctx, tool, kind) {
  return join(ctx.scratch, `${kind}-${tool}`);
}

/** Where emptied destinations wait until their scenario is over. */
const trashDir = (ctx) => join(ctx.scratch, "trash");
let trashed = 0;

async function resetDst(ctx, sc, trees, dst) {
  switch (sc.reset) {
    case "empty":
      // Moved aside, removed after the scenario: a file system that has just freed thousands
      // of inodes can be slow to allocate new ones (ext4 skips recently deleted inodes), which
      // would land on whichever tool runs next.
      if (existsSync(dst)) {
        mkdirSync(trashDir(ctx), { recursive: true });
        renameSync(dst, join(trashDir(ctx), `${trashed++}`));
      }
      return;
    case "base":
    case "base-once":
      // Native rsync puts the destination back to the base tree (it copies only what differs).
      mkdirSync(dst, { recursive: true });
      await runOk([ctx.rsync, "-a", "--delete", `${trees.base}/`, `${dst}/`]);
      return;
    case "big":
      mkdirSync(dst, { recursive: true });
      restoreBigFile(trees.bigBase, dst, trees.bigRanges);
      return;
  }
}

/** Does dst now match src? Native rsync's dry-run itemized list of what it would still change. */
async function verifyResult(ctx, src, dst, checksum) {
  const args = [ctx.rsync, "-a", "-n", "-i", "--delete", ...(checksum ? ["-c"] : []), `${src}/`, `${dst}/`];
  const r = await runOk(args);
  const items = r.stdout.split("\n").filter((l) => l.trim() !== "");
  return { checked: true, byChecksum: checksum, differences: items.length, sample: items.slice(0, 5) };
}

/**
 * Run one scenario.
 * @param {Ctx} ctx
 * @param {Scenario} sc
 */
export async function runScenario(ctx, sc) {
  const head = { name: sc.name, title: sc.title, mode: sc.mode };
  if (sc.notMeasured) return { ...head, status: "not measured", reason: sc.notMeasured };
  const trees = ctx.trees();
  const src = sc.src(trees);
  let apiPod;
  if (sc.mode === "api") {
    apiPod = await startApiPod(ctx, src);
    if ("skip" in apiPod) return { ...head, status: "not measured", reason: apiPod.skip };
  } else {
    const support = await probe(ctx, sc.mode);
    if (support.status !== "ok") return { ...head, status: support.status, reason: support.reason };
  }
  try {
    return await measureScenario(ctx, sc, trees, src, head, apiPod);
  } finally {
    await apiPod?.close();
  }
}

/** The runs of a scenario whose set-up is done; its figures and ratios. */
async function measureScenario(ctx, sc, trees, src, head, apiPod) {
  const runs = Math.max(1, ctx.runs[sc.runsKey] ?? 3);
  /** @type {Record<string, { wallSec: number[], rssKB: (number|null)[], remoteRssKB: (number|null)[], wire: any[] }>} */
  const raw = {};
  for (const t of sc.tools) raw[t] = { wallSec: [], rssKB: [], remoteRssKB: [], wire: [] };
  let verify = { checked: false };
  const resetOnceDone = new Set();

  // Warm-up rounds (i < 0) run every tool once, unmeasured: the first transfer after a
  // scenario's set-up pays for what the machine has not settled yet (memory the guest of a VM
  // has not touched lately, caches), and that would fall on whichever tool goes first.
  const warmup = Math.max(0, ctx.warmup ?? 0);
  for (let i = -warmup; i < runs; i++) {
    const order = (i + warmup) % 2 === 0 ? sc.tools : [...sc.tools].reverse();
    for (const tool of order) {
      const dst = dstPath(ctx, tool, sc.dst);
      if (sc.reset !== "base-once" || !resetOnceDone.has(tool)) {
        await resetDst(ctx, sc, trees, dst);
        resetOnceDone.add(tool);
      }
      let argv = commandFor(ctx, tool, sc.mode, src, dst, sc.args);
      let env;
      if (apiPod) {
        // Both are krsync pulling the pod's /data: through the API, or through fakersh.sh.
        argv = tool === "api"
          ? [...ctx.krsync, "-a", "--stats", "pod/web-0:/data/", `${dst}/`]
          : commandFor(ctx, "krsync", "pull", apiPod.podData, dst, sc.args);
        if (tool === "api") env = apiPod.env;
      }
      // The previous run's dirty pages are written back before this one starts, so no tool
      // pays for another's writes.
      await runOk(["sync"]);
      const m = await measure(argv, { method: ctx.method, env });
      if (m.exitCode !== 0) {
        const tail = (m.stderr || m.stdout).trim().split("\n").slice(-3).join(" | ");
        return { ...head, status: "failed", reason: `${tool} exited ${m.exitCode} on run ${i + 1}: ${tail}`, argv };
      }
      if (i < 0) {
        ctx.log(`  ${sc.name} warm-up ${tool.padEnd(6)} ${m.wallSec.toFixed(3)} s (not counted)`);
        continue;
      }
      raw[tool].wallSec.push(m.wallSec);
      raw[tool].rssKB.push(m.rssKB);
      raw[tool].remoteRssKB.push(m.remoteRssKB);
      raw[tool].wire.push(tool === "cp" ? null : parseWireStats(m.stdout));
      ctx.log(
        `  ${sc.name} run ${i + 1}/${runs} ${tool.padEnd(6)} ${m.wallSec.toFixed(3)} s` +
          (m.rssKB !== null ? `  ${(m.rssKB / 1024).toFixed(1)} MB` : ""),
      );
      if (i === 0 && tool === (sc.pair?.[0] ?? "krsync") && ctx.verify) {
        verify = await verifyResult(ctx, src, dst, sc.verifyChecksum === true);
        if (verify.differences > 0) {
          ctx.log(`  ! krsync's result differs from the source in ${verify.differences} item(s): ${verify.sample.join("; ")}`);
        }
      }
    }
  }

  rmSync(trashDir(ctx), { recursive: true, force: true });

  const tools = {};
  for (const [t, r] of Object.entries(raw)) {
    const wires = r.wire.filter(Boolean);
    tools[t] = {
      wallSec: r.wallSec,
      medianSec: median(r.wallSec),
      rssKB: r.rssKB,
      medianRssKB: median(r.rssKB),
      remoteMedianRssKB: median(r.remoteRssKB),
      wire: wires.length
        ? { sent: median(wires.map((w) => w.sent)), received: median(wires.map((w) => w.received)), total: median(wires.map((w) => w.total)) }
        : null,
    };
  }
  const ratio = (a, b) => (typeof a === "number" && typeof b === "number" && b > 0 ? a / b : null);
  const [kName, nName] = sc.pair ?? ["krsync", "native"];
  const k = tools[kName];
  const n = tools[nName];
  const ratios = {
    time: ratio(k?.medianSec, n?.medianSec),
    rss: ratio(k?.medianRssKB, n?.medianRssKB),
    wire: ratio(k?.wire?.total, n?.wire?.total),
  };
  if (tools.cp) ratios.timeVsCp = ratio(k?.medianSec, tools.cp.medianSec);
  return { ...head, status: "ok", runs, tools, ratios, verify };
}
