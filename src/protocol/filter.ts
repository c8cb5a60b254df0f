// rsync's filter rules (exclude.c): parsing the command line's rules, the client's filter list
// as sent to the peer (send_filter_list / send_rules / get_rule_prefix, per protocol), and the
// matcher each side runs (check_filter / rule_matches with the per-directory merge stack of
// push_local_filters / pop_local_filters). Pure: merge files come through injected readers.
//
// Names are '/'-separated paths relative to the transfer root (the directory rsync chdir'd to:
// the source arg's dir for "src/", its parent for "src"; the destination on the receiver).
// Patterns and names are compared as bytes (UTF-8), as rsync does.

import { newRule, newRuleList, FilterContext, type FilterEnv, type FilterRule, type MergeFileReader } from "./filter-rules.js";
import { byteString } from "./filter-wildmatch.js";

export * from "./filter-rules.js";
export * from "./filter-wire.js";
export * from "./filter-list.js";
export { wildmatch, wildmatchArray, litmatchArray, byteString, byteStringToText } from "./filter-wildmatch.js";

export interface ParseFilterOptions extends FilterEnv {
  /** --delete-excluded (as if given before the rules): plain rules become sender-side. */
  deleteExcluded?: boolean;
  /**
   * protocol_version while options are parsed: 32 unless --protocol came earlier on the command
   * line. A "--filter=-C" list built then has perishable defaults when it is >= 30.
   */
  protocol?: number;
  /** Reads a "merge FILE" named on the command line (as written: relative to the cwd or absolute). */
  readFile?: MergeFileReader;
  /** The texts are byte strings already (one char per byte: rules read off the wire). */
  byteStrings?: boolean;
  /** XFLG_* for parse_filter_str (XFLG_OLD_PREFIXES: a server's rules below protocol 29). */
  xflags?: number;
}

/**
 * Parse rule strings (TransferOptions.filters: --filter/--exclude/--include/-F already in rule
 * syntax, command-line order) into the client's filter_list. `merge` files are read now,
 * `dir-merge` rules stay for FilterList. Throws UsageError with rsync's message for a bad rule
 * (exit code 1; 11 for a merge file that cannot be opened).
 */
export function parseFilterRules(texts: readonly string[], opts: ParseFilterOptions = {}): FilterRule[] {
  const ctx = new FilterContext({
    who: "client",
    side: null,
    deleteExcluded: opts.deleteExcluded ?? false,
    protocol: opts.protocol ?? 32,
    read: opts.readFile,
    home: opts.home,
    cvsIgnoreEnv: opts.cvsIgnore,
    warn: opts.warn,
  });
  const list = newRuleList("");
  for (const text of texts) ctx.parseFilterStr(list, opts.byteStrings ? text : byteString(text), newRule(0), opts.xflags ?? 0);
  return list.local;
}
