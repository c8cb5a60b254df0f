// The krsync command: rsync's command line over the library API, printing what rsync prints
// (cli/bin.ts runs it as the executable).
import { listModules, localRole, sync, SyncError, type SyncOptions } from "../api.js";
import { parseLocation } from "../transport/location.js";
import type { ItemEvent, TransferStats } from "../engine/events.js";
import { formatExitLine, RERR_SYNTAX, UsageError } from "../protocol/errcode.js";
import { helpText, parseCommandLine, type CommandLine } from "./options.js";
import { runExample } from "./example.js";
import { formatStats, formatSummary } from "./report.js";

export const VERSION = "0.1.0";

/**
 * Names and messages come from the remote: control characters are shown escaped, as rsync's
 * log.c does ("\#ooo"), so a hostile peer cannot drive the terminal.
 */
export function safeText(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\x00-\x08\x0b-\x1f\x7f]/g, (c) => "\\#" + c.charCodeAt(0).toString(8).padStart(3, "0"));
}

/** Set when stdout is gone (EPIPE: `krsync -v ... | head`): the run stops, as rsync's does. */
let stdoutBroken = false;
/** errcode.h RERR_MESSAGEIO: errors with program diagnostics. */
const RERR_MESSAGEIO = 13;

function out(line: string): void {
  if (!stdoutBroken) process.stdout.write(safeText(line) + "\n");
}
function err(line: string): void {
  process.stderr.write(safeText(line) + "\n");
}

export async function main(argv: string[]): Promise<number> {
  if (argv[0] === "--example") return runExample(argv.slice(1), main);
  // `krsync bench`: the benchmark harness of a checkout, loaded only for it (a source or
  // destination named "bench" is written ./bench).
  if (argv[0] === "bench") return (await import("./bench.js")).runBench(argv.slice(1));
  let cl: CommandLine;
  try {
    cl = parseCommandLine(argv);
  } catch (e) {
    if (e instanceof UsageError) {
      if (e.showUsage) out(helpText());
      err(e.message);
      err(formatExitLine(e.exitCode));
      return e.exitCode;
    }
    throw e;
  }
  if (cl.help) {
    out(helpText());
    return 0;
  }
  if (cl.version) {
    out(`krsync version ${VERSION}  protocol versions 27-32 (rsync compatible)`);
    return 0;
  }
  if (cl.args.length === 1) {
    const loc = parseLocation(cl.args[0]!);
    // main.c start_client: rsync://HOST/ or HOST:: alone asks the daemon for its modules.
    if (loc.kind === "daemon" && loc.module === "" && loc.path === "") return moduleList(cl);
  }
  if (cl.args.length < 2) {
    out(helpText());
    err("krsync: a source and a destination are required (listing a remote directory is not supported yet)");
    err(formatExitLine(RERR_SYNTAX));
    return RERR_SYNTAX;
  }
  const o = cl.options;
  const sources = cl.args.slice(0, -1);
  const destination = cl.args[cl.args.length - 1]!;
  const controller = new AbortController();
  const onSignal = () => controller.abort();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  process.once("SIGHUP", onSignal);
  const onStdoutError = () => {
    stdoutBroken = true;
    controller.abort();
  };
  process.stdout.on("error", onStdoutError);

  const verbose = o.verbose > 0 && !o.quiet;
  // flist.c: a sender builds its list, a receiver receives it.
  let flistLine: string;
  try {
    flistLine = localRole(sources, destination) === "sender" ? "building file list ... done" : "receiving file list ... done";
  } catch {
    flistLine = "receiving file list ... done"; // a bad location fails in sync() with its own message
  }
  const showItems = (o.itemize || verbose) && !o.quiet;
  const opts: SyncOptions = {
    ...o,
    source: sources,
    destination,
    kube: cl.kube,
    signal: controller.signal,
    events: {
      fileList: (_count, incremental) => {
        // flist.c send_file_list: an inc-recursive sender announces its list as incremental.
        if (verbose) out(incremental ? "sending incremental file list" : flistLine);
      },
      item: (it: ItemEvent) => {
        if (!showItems) return;
        const line = itemLine(it, o.itemize);
        if (line !== null) out(line);
      },
      deleted: (name) => {
        if (o.itemize && !o.quiet) out(`*deleting   ${name}`);
        else if (verbose) out(`deleting ${name}`);
      },
      message: (level, text) => {
        if (level === "info") {
          if (!o.quiet) out(text);
        } else err(text);
      },
    },
  };
  const brokenStdout = (): number => {
    err("krsync: writing to stdout failed: Broken pipe (32)");
    err(formatExitLine(RERR_MESSAGEIO));
    return RERR_MESSAGEIO;
  };
  try {
    const r = await sync(opts);
    if (stdoutBroken) return brokenStdout();
    report(r.stats, cl);
    if (r.exitCode !== 0) err(formatExitLine(r.exitCode));
    return r.exitCode;
  } catch (e) {
    if (stdoutBroken) return brokenStdout();
    return failure(e);
  } finally {
    process.stdout.off("error", onStdoutError);
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    process.off("SIGHUP", onSignal);
  }
}

function failure(e: unknown): number {
  const se = e instanceof SyncError ? e : new SyncError((e as Error).message ?? String(e), 11);
  err(se.bare ? se.message : `krsync: ${se.message}`);
  err(formatExitLine(se.exitCode));
  return se.exitCode;
}

/** The daemon's MOTD and module list on stdout, as rsync prints them (FINFO). */
async function moduleList(cl: CommandLine): Promise<number> {
  const o = cl.options;
  try {
    const r = await listModules({
      ...o,
      source: cl.args[0]!,
      events: { message: (level, text) => (level === "info" ? !o.quiet && out(text) : err(text)) },
    });
    return r.exitCode;
  } catch (e) {
    return failure(e);
  }
}

/** log.c's default -v line ("%n%L") or the itemized one ("%i %n%L"). */
function itemLine(it: ItemEvent, itemize: boolean): string | null {
  const suffix = it.linkTarget !== undefined ? ` -> ${it.linkTarget}` : it.hardLinkTo !== undefined ? ` => ${it.hardLinkTo}` : "";
  if (itemize) return `${it.itemize} ${it.name}${suffix}`;
  // -v alone names what was transferred or newly made.
  if (!it.transferred && !(it.iflags & (1 << 13)) && it.hardLinkTo === undefined && it.kind !== "L") return null;
  return `${it.name}${suffix}`;
}

function report(stats: TransferStats, cl: CommandLine): void {
  const o = cl.options;
  if (o.quiet) return;
  if (o.stats) {
    out("");
    out(formatStats(stats, cl.humanReadable));
  }
  if (o.verbose > 0 || o.stats) {
    if (!o.stats) out("");
    out(formatSummary(stats, cl.humanReadable, o.dryRun));
  }
}
