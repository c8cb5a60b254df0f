// rsync's closing figures (main.c output_summary): the -v two-line summary and --stats.
import type { TransferStats } from "../engine/events.js";

/** util1.c human_num / comma_num: "1,234,567" (or 1.23M with -h twice). */
export function num(n: number, human: number): string {
  if (human >= 2) {
    const units = ["", "K", "M", "G", "T", "P"];
    let v = n;
    let u = 0;
    while (v >= 1000 && u < units.length - 1) {
      v /= 1000;
      u++;
    }
    return u === 0 ? String(n) : `${v.toFixed(2)}${units[u]}`;
  }
  if (human === 1) return commas(n);
  return String(n);
}

/** "1234567.5" → "1,234,567.5" (no Intl: loading ICU's number formatting costs ~50 ms). */
function commas(n: number): string {
  const [whole = "", frac] = String(n).split(".");
  const sign = whole.startsWith("-") ? "-" : "";
  const digits = sign ? whole.slice(1) : whole;
  let out = "";
  for (let end = digits.length; end > 0; end -= 3) {
    const group = digits.slice(Math.max(0, end - 3), end);
    out = out ? `${group},${out}` : group;
  }
  return sign + out + (frac !== undefined ? `.${frac}` : "");
}

export function formatSummary(s: TransferStats, human: number, dryRun: boolean): string {
  const secs = Math.max(s.elapsedMs / 1000, 0.001);
  const rate = (s.totalWritten + s.totalRead) / secs;
  const speedup = s.totalWritten + s.totalRead > 0 ? s.totalSize / (s.totalWritten + s.totalRead) : 0;
  return (
    `sent ${num(s.totalWritten, human)} bytes  received ${num(s.totalRead, human)} bytes  ${num(Math.round(rate * 100) / 100, human)} bytes/sec\n` +
    `total size is ${num(s.totalSize, human)}  speedup is ${speedup.toFixed(2)}${dryRun ? " (DRY RUN)" : ""}`
  );
}

export function formatStats(s: TransferStats, human: number): string {
  const n = (v: number) => num(v, human);
  const created = s.createdFiles + s.createdDirs + s.createdSymlinks + s.createdDevices + s.createdSpecials;
  const deleted = s.deletedFiles + s.deletedDirs + s.deletedSymlinks + s.deletedDevices + s.deletedSpecials;
  const parts = (a: [string, number][]) => a.filter(([, v]) => v > 0).map(([k, v]) => `${k}: ${n(v)}`).join(", ");
  const kinds = (reg: number, dir: number, link: number, dev: number, spec: number) => {
    const p = parts([["reg", reg], ["dir", dir], ["link", link], ["dev", dev], ["special", spec]]);
    return p ? ` (${p})` : "";
  };
  return [
    `Number of files: ${n(s.numFiles)}${kinds(s.numRegFiles, s.numDirs, s.numSymlinks, s.numDevices, s.numSpecials)}`,
    `Number of created files: ${n(created)}${kinds(s.createdFiles, s.createdDirs, s.createdSymlinks, s.createdDevices, s.createdSpecials)}`,
    `Number of deleted files: ${n(deleted)}${kinds(s.deletedFiles, s.deletedDirs, s.deletedSymlinks, s.deletedDevices, s.deletedSpecials)}`,
    `Number of regular files transferred: ${n(s.transferredFiles)}`,
    `Total file size: ${n(s.totalSize)} bytes`,
    `Total transferred file size: ${n(s.totalTransferredSize)} bytes`,
    `Literal data: ${n(s.literalData)} bytes`,
    `Matched data: ${n(s.matchedData)} bytes`,
    `File list size: ${n(s.flistSize)}`,
    `File list generation time: ${(s.flistBuildTime / 1000).toFixed(3)} seconds`,
    `File list transfer time: ${(s.flistXferTime / 1000).toFixed(3)} seconds`,
    `Total bytes sent: ${n(s.totalWritten)}`,
    `Total bytes received: ${n(s.totalRead)}`,
  ].join("\n");
}
