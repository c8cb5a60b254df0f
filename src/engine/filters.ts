// The filter lists the engine's roles run over a real tree (exclude.c): merge files come from
// disk here; parsing and matching are the protocol layer's (src/protocol/filter*.ts).
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { FilterList, parseFilterRules, XFLG_OLD_PREFIXES, type FilterRule, type FilterSide } from "../protocol/filter.js";
import type { TransferOptions } from "../protocol/options.js";
import { ProtocolError } from "../protocol/wire.js";

/** A merge file, or null when there is none (exclude.c parse_filter_file). */
export function readMergeFile(p: string): Uint8Array | null {
  try {
    return readFileSync(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw e;
  }
}

/** The command line's rules (options.c: --filter/--exclude/--include/-F in order; merge files read now). */
export function commandLineRules(opts: TransferOptions, protocol: number): FilterRule[] {
  return parseFilterRules(opts.filters, { deleteExcluded: opts.deleteExcluded, protocol, readFile: readMergeFile, ...ruleEnv() });
}

/** exclude.c get_cvs_excludes: a "-C" rule also takes $HOME/.cvsignore and $CVSIGNORE. */
function ruleEnv(): { home?: string; cvsIgnore?: string } {
  const env: { home?: string; cvsIgnore?: string } = {};
  if (process.env.HOME !== undefined) env.home = process.env.HOME;
  if (process.env.CVSIGNORE !== undefined) env.cvsIgnore = process.env.CVSIGNORE;
  return env;
}

/**
 * exclude.c recv_filter_list: the rules a server sender reads from its client, each parsed as
 * parse_filter_str does (the old prefixes below protocol 29). A client never sends a plain
 * "merge" of a file of ours (it reads its merge files itself), so none is read here.
 */
export function receivedRules(lines: readonly Uint8Array[], protocol: number): FilterRule[] {
  const refuse = (p: string): never => {
    throw new ProtocolError(`refusing to read merge file ${p} named by the peer`, 4);
  };
  return parseFilterRules(
    lines.map((b) => Buffer.from(b).toString("latin1")),
    { protocol, readFile: refuse, byteStrings: true, xflags: protocol >= 29 ? 0 : XFLG_OLD_PREFIXES, ...ruleEnv() },
  );
}

/** One side's FilterList for the tree rooted at `root` (null when there are no rules). */
export function treeFilterList(
  rules: readonly FilterRule[],
  side: FilterSide,
  root: string,
  opts: TransferOptions,
  protocol: number,
): FilterList | null {
  if (rules.length === 0) return null;
  return new FilterList(rules, side, {
    deleteExcluded: opts.deleteExcluded,
    protocol,
    rootDir: root,
    readMergeFile: (p) => readMergeFile(path.isAbsolute(p) ? p : path.join(root, p)),
  });
}
