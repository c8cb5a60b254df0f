// The client's filter list as rsync sends it (exclude.c send_filter_list / send_rules /
// get_rule_prefix): which rules go to the peer, with which prefixes at each protocol, and the
// elide marks that tell each local rule which side it is for.

import { RERR_PROTOCOL, UsageError } from "./errcode.js";
import {
  FilterContext,
  type FilterContextOptions,
  type FilterEnv,
  type FilterRule,
  type FilterSide,
  type MergeFileReader,
  FILTRULE_ABS_PATH,
  FILTRULE_CVS_IGNORE,
  FILTRULE_DIRECTORY,
  FILTRULE_EXCLUDE_SELF,
  FILTRULE_INCLUDE,
  FILTRULE_MERGE_FILE,
  FILTRULE_NEGATE,
  FILTRULE_NO_INHERIT,
  FILTRULE_NO_PREFIXES,
  FILTRULE_PERDIR_MERGE,
  FILTRULE_PERISHABLE,
  FILTRULE_RECEIVER_SIDE,
  FILTRULE_SENDER_SIDE,
  FILTRULE_WORD_SPLIT,
  FILTRULE_XATTR,
  listRules,
  LOCAL_RULE,
  newRule,
  newRuleList,
  REMOTE_RULE,
  type Rule,
  type RuleList,
} from "./filter-rules.js";
import { byteStringToBytes, byteStringToText } from "./filter-wildmatch.js";
import { Writer } from "./wire.js";

/** get_rule_prefix without the protocol limits + pattern: the rule as rsync's -vv output shows it. */
export function ruleText(rule: FilterRule): string {
  const prefix = rulePrefix(rule, null) ?? "";
  return byteStringToText(prefix + rule.pattern + (rule.rflags & FILTRULE_DIRECTORY ? "/" : ""));
}

interface XferState {
  amSender: boolean;
  protocol: number;
  deleteExcluded: boolean;
}

/**
 * get_rule_prefix: the rule's prefix ("- ", "+ ", ":n- ", "-/!p " ...), limited to what the
 * peer's protocol can take when `xfer` is given (null = rsync's "too modern" refusal).
 */
function rulePrefix(rule: FilterRule, xfer: XferState | null): string | null {
  const f = rule.rflags;
  let legalLen = xfer && xfer.protocol < 29 ? 1 : 15;
  let op = "";
  if (f & FILTRULE_PERDIR_MERGE) {
    if (legalLen === 1) return null;
    op += ":";
  } else if (f & FILTRULE_INCLUDE) op += "+";
  else if (legalLen !== 1 || ((rule.pattern[0] === "-" || rule.pattern[0] === "+") && rule.pattern[1] === " ")) {
    op += "-";
  } else legalLen = 0;
  if (f & FILTRULE_ABS_PATH) op += "/";
  if (f & FILTRULE_NEGATE) op += "!";
  if (f & FILTRULE_CVS_IGNORE) op += "C";
  else {
    if (f & FILTRULE_NO_INHERIT) op += "n";
    if (f & FILTRULE_WORD_SPLIT) op += "w";
    if (f & FILTRULE_NO_PREFIXES) op += f & FILTRULE_INCLUDE ? "+" : "-";
  }
  if (f & FILTRULE_EXCLUDE_SELF) op += "e";
  if (f & FILTRULE_XATTR) op += "x";
  if (f & FILTRULE_SENDER_SIDE && (!xfer || xfer.protocol >= 29)) op += "s";
  if (f & FILTRULE_RECEIVER_SIDE && (!xfer || xfer.protocol >= 29 || (xfer.deleteExcluded && xfer.amSender))) op += "r";
  if (f & FILTRULE_PERISHABLE) {
    if (!xfer || xfer.protocol >= 30) op += "p";
    else if (xfer.amSender) return null;
  }
  if (op.length > legalLen) return null;
  if (legalLen) op += " ";
  return op;
}

/**
 * send_rules: mark each rule with the side it is elided on, and (with `out`) collect the wire
 * form of what the peer gets. Throws rsync's "too modern" error for a rule the protocol lacks.
 */
function sendRules(rules: Iterable<Rule>, st: XferState, out: string[] | null, cvs: RuleList | null): void {
  for (const ent of rules) {
    let elide = 0;
    // --delete-excluded is checked here too for rules parsed before it was seen; CVS and
    // no-prefix per-dir merge files are kept local for the same reason.
    if (ent.rflags & FILTRULE_SENDER_SIDE) elide = st.amSender ? LOCAL_RULE : REMOTE_RULE;
    if (ent.rflags & FILTRULE_RECEIVER_SIDE) elide = elide ? 0 : st.amSender ? REMOTE_RULE : LOCAL_RULE;
    else if (
      st.deleteExcluded &&
      !elide &&
      (!(ent.rflags & FILTRULE_PERDIR_MERGE) || ent.rflags & FILTRULE_NO_PREFIXES)
    ) {
      elide = st.amSender ? LOCAL_RULE : REMOTE_RULE;
    }
    ent.elide = elide;
    if (elide === LOCAL_RULE) continue;
    if (ent.rflags & FILTRULE_CVS_IGNORE && !(ent.rflags & FILTRULE_MERGE_FILE)) {
      // A sender (or any side below 29) sends the CVS words themselves; a receiver at 29+
      // sends "-C" and the peer builds its own list.
      const expand = st.amSender || st.protocol < 29;
      const list = ent.cvs ?? cvs;
      if (list) sendRules(listRules(list), st, expand ? out : null, null);
      if (expand) continue;
    }
    const prefix = rulePrefix(ent, st);
    if (prefix === null) throw new UsageError("filter rules are too modern for remote rsync.", RERR_PROTOCOL);
    if (!out) continue;
    const text = prefix + ent.pattern + (ent.rflags & FILTRULE_DIRECTORY ? "/" : "");
    if (text !== "") out.push(text);
  }
}

export interface ClientFilterOptions {
  /** --delete (any --delete-WHEN) is in effect. */
  deleteMode?: boolean;
  deleteExcluded?: boolean;
  /** -m / --prune-empty-dirs. */
  pruneEmptyDirs?: boolean;
  /** -C / --cvs-exclude (the option, not a "-C" rule). */
  cvsExclude?: boolean;
}

/** Copy parsed rules into fresh mutable ones (per-dir merge rules get their own lists). */
function cloneRules(rules: readonly FilterRule[], ctx: FilterContext): RuleList {
  const list = newRuleList("");
  const cvsMap = new Map<RuleList, RuleList>();
  const cloneList = (src: RuleList): RuleList => {
    let c = cvsMap.get(src);
    if (!c) {
      c = newRuleList(src.debugType);
      cvsMap.set(src, c);
      c.local = src.local.map((r) => ({ ...r, elide: 0, mergelist: null, cvs: null }));
    }
    return c;
  };
  for (const r of rules) {
    const src = r as Partial<Rule> & FilterRule;
    const rule: Rule = { rflags: r.rflags, pattern: r.pattern, slashCnt: r.slashCnt, elide: 0, mergelist: null, cvs: null };
    if (rule.rflags & FILTRULE_PERDIR_MERGE) {
      rule.mergelist = newRuleList(` [per-dir ${byteStringToText(r.pattern)}]`);
      ctx.mergelistParents.push(rule);
    }
    if (src.cvs) {
      rule.cvs = cloneList(src.cvs);
      ctx.cvsList ??= rule.cvs;
    }
    if (rule.rflags & FILTRULE_PERDIR_MERGE) ctx.trustSenderFilter = true;
    list.local.push(rule);
  }
  return list;
}

/**
 * exclude.c send_filter_list for a client: what goes to the peer (null: nothing, not even the
 * terminating 0, as for a sender whose receiver does not want the list) and the rules that stay
 * here, elide-marked, with the -C option's ":C"/"-C" added where rsync adds them.
 */
export function clientFilterList(
  rules: readonly FilterRule[],
  ctx: FilterContext,
  role: FilterSide,
  protocol: number,
  opts: ClientFilterOptions,
): { wire: string[] | null /* byte strings */; list: RuleList } {
  const list = cloneRules(rules, ctx);
  const amSender = role === "sender";
  const deleteExcluded = opts.deleteExcluded ?? false;
  const receiverWantsList = (opts.pruneEmptyDirs ?? false) || ((opts.deleteMode ?? false) && (!deleteExcluded || protocol >= 29));
  const sending = !(amSender && !receiverWantsList);
  const add = (text: string): void => ctx.parseFilterStr(list, text, newRule(0), 0);
  if (opts.cvsExclude && amSender) {
    if (protocol >= 29) add(":C");
    add("-C");
  }
  const out = sending ? [] : null;
  sendRules(listRules(list), { amSender, protocol, deleteExcluded }, out, ctx.cvsList);
  if (opts.cvsExclude) {
    if (!amSender || protocol < 29) add(":C");
    if (!amSender) add("-C");
  }
  return { wire: out, list };
}

export interface WireFilterOptions extends ClientFilterOptions, FilterEnv {
  /** The local (client) role: a receiver pulls, a sender pushes. */
  role: FilterSide;
}

/**
 * The rule strings the client puts on the wire (exclude.c send_filter_list: each as int32 length
 * + bytes, then int32 0), or null when it sends no list at all. Throws rsync's "filter rules are
 * too modern for remote rsync." (exit 2) for a rule the protocol cannot carry; call it even when
 * nothing is sent, as rsync checks regardless.
 */
export function wireFilterRules(rules: readonly FilterRule[], protocol: number, opts: WireFilterOptions): string[] | null {
  return wireByteStrings(rules, protocol, opts)?.map(byteStringToText) ?? null;
}

/** wireFilterRules as the exact bytes (a rule merged from a file need not be UTF-8). */
export function wireFilterRuleBytes(rules: readonly FilterRule[], protocol: number, opts: WireFilterOptions): Uint8Array[] | null {
  return wireByteStrings(rules, protocol, opts)?.map(byteStringToBytes) ?? null;
}

/**
 * The filter list as the client writes it (exclude.c send_filter_list: each rule as int32
 * length + bytes, then int32 0), or null when it sends none. Throws as wireFilterRules does.
 */
export function encodeFilterList(rules: readonly FilterRule[], protocol: number, opts: WireFilterOptions): Uint8Array | null {
  const list = wireFilterRuleBytes(rules, protocol, opts);
  if (!list) return null;
  const w = new Writer();
  for (const b of list) w.int32(b.length).bytes(b);
  return w.int32(0).take();
}

function wireByteStrings(rules: readonly FilterRule[], protocol: number, opts: WireFilterOptions): string[] | null {
  const ctx = new FilterContext(contextOptions(opts.role, "client", opts.deleteExcluded ?? false, protocol, undefined, opts));
  return clientFilterList(rules, ctx, opts.role, protocol, opts).wire;
}

export function contextOptions(
  side: FilterSide,
  who: string,
  deleteExcluded: boolean,
  protocol: number,
  read: MergeFileReader | undefined,
  env: FilterEnv,
): FilterContextOptions {
  return { who, side, deleteExcluded, protocol, read, home: env.home, cvsIgnoreEnv: env.cvsIgnore, warn: env.warn };
}
