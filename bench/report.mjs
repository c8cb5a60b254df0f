// The report: ratios krsync/native per scenario, the absolute figures, and the speed targets
// from the issues marked met / not met.

const MB = 1024; // KB per MB, for RSS figures (GNU time reports KB)

/**
 * The targets. `check(scenario)` returns { measured, limit, met, text } from an "ok" scenario.
 * @type {Array<{ id: string, text: string, scenario: string, note?: string, check?: (s: any) => any }>}
 */
export const TARGETS = [
  ...["edits-pull", "touch-pull", "renames-pull", "bigfile-pull"].map((name) => ({
    id: `delta-wire:${name}`,
    text: `delta pull wire bytes <= 1.10x native (${name})`,
    scenario: name,
    check: (s) => ratioCheck(s.ratios.wire, 1.1),
  })),
  {
    id: "rss:initial-pull",
    text: "peak RSS, tree pull <= 2x native + 100 MB (initial-pull)",
    scenario: "initial-pull",
    check: (s) => {
      const k = s.tools.krsync?.medianRssKB;
      const n = s.tools.native?.medianRssKB;
      if (typeof k !== "number" || typeof n !== "number") return null;
      const limit = 2 * n + 100 * MB;
      return { measured: `${mb(k)} MB`, limit: `${mb(limit)} MB`, met: k <= limit };
    },
  },
  {
    id: "time:bigfile-push",
    text: "big file push time <= 1.25x native (bigfile-push)",
    scenario: "bigfile-push",
    check: (s) => ratioCheck(s.ratios.time, 1.25),
  },
  {
    id: "time:local-copy:native",
    text: "local copy time <= 1.0x native rsync (local-copy)",
    scenario: "local-copy",
    check: (s) => ratioCheck(s.ratios.time, 1.0),
  },
  {
    id: "time:local-copy:cp",
    text: "local copy time <= 1.5x cp -a (local-copy)",
    scenario: "local-copy",
    check: (s) => ratioCheck(s.ratios.timeVsCp, 1.5),
  },
  {
    id: "time:api-nochange",
    text: "API-transport no-change pull <= 1.2x local pipe (api-nochange-pull)",
    scenario: "api-nochange-pull",
    check: (s) => ratioCheck(s.ratios.time, 1.2),
  },
];

function ratioCheck(r, limit) {
  if (typeof r !== "number") return null;
  return { measured: `${r.toFixed(2)}x`, limit: `${limit.toFixed(2)}x`, met: r <= limit };
}

/** Evaluate every target against the scenario results. */
export function evaluateTargets(scenarios, { fullSize }) {
  const by = new Map(scenarios.map((s) => [s.name, s]));
  return TARGETS.map((t) => {
    const s = by.get(t.scenario);
    const base = { id: t.id, text: t.text };
    if (!s) return { ...base, status: "not measured", note: "scenario not run" };
    if (s.status === "skipped") return { ...base, status: "not measured", note: "krsync: not supported yet" };
    if (s.status === "not measured") return { ...base, status: "not measured", note: s.reason };
    if (s.status !== "ok") return { ...base, status: "not measured", note: `${s.name} failed` };
    const c = t.check?.(s);
    if (!c) return { ...base, status: "not measured", note: "figure unavailable" };
    const note = [];
    if (!fullSize) note.push("measured at reduced size");
    if (s.verify?.differences > 0) note.push(`krsync result differs in ${s.verify.differences} item(s)`);
    return { ...base, status: c.met ? "met" : "not met", measured: c.measured, limit: c.limit, ...(note.length ? { note: note.join("; ") } : {}) };
  });
}

function mb(kb) {
  return (kb / MB).toFixed(1);
}
const sec = (x) => (typeof x === "number" ? x.toFixed(3) : "-");
const rx = (x) => (typeof x === "number" ? `${x.toFixed(2)}x` : "-");
const rssMB = (x) => (typeof x === "number" ? mb(x) : "-");
const bytes = (x) => (typeof x === "number" ? x.toLocaleString("en-US") : "-");

function table(rows, align) {
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  return rows
    .map((r, ri) => {
      const line = r.map((c, i) => (align[i] === "r" ? String(c).padStart(w[i]) : String(c).padEnd(w[i]))).join("  ");
      return ri === 0 ? `${line.trimEnd()}\n${w.map((n) => "-".repeat(n)).join("  ")}` : line.trimEnd();
    })
    .join("\n");
}

/** The human-readable report (stdout). */
export function formatReport(rep) {
  const out = [];
  const c = rep.config;
  out.push(
    `krsync bench — ${c.quick ? "quick" : c.fullSize ? "full" : "custom"} size: tree ${c.files} files / ${c.totalMB} MB, ` +
      `big file ${c.bigMB} MB; runs ${Object.entries(c.runs).map(([k, v]) => `${k} ${v}`).join(", ")}`,
  );
  out.push(`${rep.machine.cpus} x ${rep.machine.cpuModel}, node ${rep.machine.node}, ${rep.machine.rsyncVersion}, krsync ${rep.machine.krsyncVersion}`);
  out.push(`RSS: ${rep.rssMethod.note}`);
  const la = rep.machine.loadAverageAtStart;
  if (la) out.push(`load average at start ${la.join(" ")}, at end ${rep.machine.loadAverageAtEnd.join(" ")} (other work on the machine skews absolute times)`);
  const fpr = rep.machine.freePageReporting;
  if (fpr && fpr.minFreeMs === 0) {
    out.push("free page reporting: min_free_ms=0 — freed memory goes back to the host at once, and writes into it fault there: times swing by seconds per GB (bench/README.md, Noise)");
  } else if (fpr) out.push(`free page reporting: min_free_ms=${fpr.minFreeMs}`);
  out.push("");

  const ok = rep.scenarios.filter((s) => s.status === "ok");
  if (ok.length) {
    out.push("Ratios krsync / native (api / pipe for api-nochange-pull; median of runs; lower is better)");
    const rows = [["scenario", "time", "peak RSS", "wire bytes", "vs cp -a"]];
    for (const s of ok) rows.push([s.name, rx(s.ratios.time), rx(s.ratios.rss), rx(s.ratios.wire), s.ratios.timeVsCp !== undefined ? rx(s.ratios.timeVsCp) : ""]);
    out.push(table(rows, "lrrrr"));
    out.push("");
    out.push("Absolute figures (median; time s, RSS MB, wire = bytes sent + received by the client)");
    const rows2 = [["scenario", "tool", "time", "runs", "peak RSS", "remote RSS", "wire bytes", "sent", "received"]];
    for (const s of ok) {
      for (const [tool, f] of Object.entries(s.tools)) {
        rows2.push([
          s.name,
          tool,
          sec(f.medianSec),
          f.wallSec.length,
          rssMB(f.medianRssKB),
          rssMB(f.remoteMedianRssKB),
          bytes(f.wire?.total),
          bytes(f.wire?.sent),
          bytes(f.wire?.received),
        ]);
      }
    }
    out.push(table(rows2, "llrrrrrrr"));
    out.push("");
  }
  const other = rep.scenarios.filter((s) => s.status !== "ok");
  if (other.length) {
    out.push("Not run");
    for (const s of other) out.push(`  ${s.name}: ${s.status} — ${s.reason}`);
    out.push("");
  }
  const bad = ok.filter((s) => s.verify?.differences > 0);
  for (const s of bad) out.push(`WARNING ${s.name}: krsync's result differs from the source in ${s.verify.differences} item(s): ${s.verify.sample.join("; ")}`);
  if (bad.length) out.push("");

  out.push("Targets");
  const rows3 = [["target", "measured", "limit", "status"]];
  for (const t of rep.targets) rows3.push([t.text, t.measured ?? "", t.limit ?? "", t.status + (t.note ? ` (${t.note})` : "")]);
  out.push(table(rows3, "lrrl"));

  if (rep.micro?.length) {
    out.push("");
    out.push("Micro-benchmarks (dist/ modules, best of 3)");
    const rows4 = [["hot path", "rate", "unit", ""]];
    for (const m of rep.micro) rows4.push([m.name, m.value >= 100 ? Math.round(m.value).toLocaleString("en-US") : m.value.toFixed(2), m.unit, m.detail ?? ""]);
    out.push(table(rows4, "lrll"));
  }
  if (rep.comparison?.length) {
    out.push("");
    out.push(`Compared with ${rep.comparedWith} (krsync median time, then -> now)`);
    const rows5 = [["scenario", "then", "now", "change"]];
    for (const x of rep.comparison) rows5.push([x.name, sec(x.then), sec(x.now), rx(x.change)]);
    out.push(table(rows5, "lrrr"));
  }
  out.push("");
  out.push(`total ${rep.durationSec.toFixed(1)} s`);
  return out.join("\n");
}

/** krsync's median times against an earlier report's. */
export function compareReports(prev, cur) {
  const by = new Map((prev.scenarios ?? []).map((s) => [s.name, s]));
  const rows = [];
  for (const s of cur.scenarios) {
    const p = by.get(s.name);
    const now = s.tools?.krsync?.medianSec;
    const then = p?.tools?.krsync?.medianSec;
    if (typeof now === "number" && typeof then === "number") rows.push({ name: s.name, then, now, change: now / then });
  }
  return rows;
}
