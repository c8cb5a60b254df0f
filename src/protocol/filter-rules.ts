// Filter-rule parsing as exclude.c does it: parse_rule_tok (rule types, word names, modifiers),
// parse_filter_str (clear, merge, dir-merge, exclude-self, -C), add_rule (trailing '/', anchoring
// inside per-directory files, wildcard flags, per-dir merge registration), parse_filter_file
// (lines or words, comments, CRLF) and get_cvs_excludes. Pure: files come from an injected reader.
// Patterns are byte strings (one char per byte), as rsync compares bytes.

import { RERR_FILEIO, RERR_SYNTAX, strerror, UsageError } from "./errcode.js";
import { MAXPATHLEN } from "./flist-names.js";
import { byteString, byteStringToText, bytesToByteString } from "./filter-wildmatch.js";

// rsync.h FILTRULE_*
export const FILTRULE_WILD = 1 << 0; // pattern has '*', '[' and/or '?'
export const FILTRULE_WILD2 = 1 << 1; // pattern has "**"
export const FILTRULE_WILD2_PREFIX = 1 << 2; // pattern starts with "**"
export const FILTRULE_WILD3_SUFFIX = 1 << 3; // pattern ends with "***"
export const FILTRULE_ABS_PATH = 1 << 4; // match against the absolute path
export const FILTRULE_INCLUDE = 1 << 5;
export const FILTRULE_DIRECTORY = 1 << 6; // directories only (a trailing '/')
export const FILTRULE_WORD_SPLIT = 1 << 7; // merge file: split on whitespace
export const FILTRULE_NO_INHERIT = 1 << 8; // per-dir merge: rules not inherited
export const FILTRULE_NO_PREFIXES = 1 << 9; // merge file: no rule prefixes
export const FILTRULE_MERGE_FILE = 1 << 10;
export const FILTRULE_PERDIR_MERGE = 1 << 11;
export const FILTRULE_EXCLUDE_SELF = 1 << 12; // exclude the merge file's own name
export const FILTRULE_FINISH_SETUP = 1 << 13; // per-dir merge still needs its set-up
export const FILTRULE_NEGATE = 1 << 14;
export const FILTRULE_CVS_IGNORE = 1 << 15; // -C or :C
export const FILTRULE_SENDER_SIDE = 1 << 16;
export const FILTRULE_RECEIVER_SIDE = 1 << 17;
export const FILTRULE_CLEAR_LIST = 1 << 18; // the "!" token
export const FILTRULE_PERISHABLE = 1 << 19;
export const FILTRULE_XATTR = 1 << 20;
export const FILTRULE_FROM_FILE = 1 << 21; // text came from a file's contents
export const FILTRULES_SIDES = FILTRULE_SENDER_SIDE | FILTRULE_RECEIVER_SIDE;
// exclude.c FILTRULES_FROM_CONTAINER: what a rule inherits from its merge rule
const FROM_CONTAINER = FILTRULE_ABS_PATH | FILTRULE_INCLUDE | FILTRULE_DIRECTORY | FILTRULE_NEGATE | FILTRULE_PERISHABLE;

// rsync.h XFLG_*
export const XFLG_FATAL_ERRORS = 1 << 0;
export const XFLG_OLD_PREFIXES = 1 << 1;
export const XFLG_ANCHORED2ABS = 1 << 2; // a leading '/' is relative to the merge file's dir

/** BIGPATHBUFLEN: longest line parse_filter_file keeps (and recv_rules accepts) is one less. */
export const BIGPATHBUFLEN = MAXPATHLEN + 1024;
const MAX_MERGE_DEPTH = 32;
const PROGRAM = "krsync";

/** rsync's built-in --cvs-exclude list (rsync.1.md, usage.c default_cvsignore). */
export const DEFAULT_CVSIGNORE =
  "RCS SCCS CVS CVS.adm RCSLOG cvslog.* tags TAGS .make.state .nse_depinfo *~ #* .#* ,* _$* *$ " +
  "*.old *.bak *.BAK *.orig *.rej .del-* *.a *.olb *.o *.obj *.so *.exe *.Z *.elc *.ln core " +
  ".svn/ .git/ .hg/ .bzr/";

/** One parsed rule (exclude.c filter_rule). */
export interface FilterRule {
  /** FILTRULE_* bits. */
  readonly rflags: number;
  /**
   * The pattern as rsync keeps it, as a byte string (one char per byte of the UTF-8 text): the
   * trailing '/' of a directory rule is dropped (FILTRULE_DIRECTORY says so); in a rule read from
   * a per-directory file a leading '/' has the directory's absolute path put in front.
   */
  readonly pattern: string;
  /** Number of '/' in the pattern (rule_matches' slash_cnt). */
  readonly slashCnt: number;
}

/** A rule with the mutable state exclude.c keeps on it. */
export interface Rule extends FilterRule {
  rflags: number;
  pattern: string;
  slashCnt: number;
  /** send_rules' elide mark: 0, LOCAL_RULE or REMOTE_RULE. */
  elide: number;
  /** Per-dir merge rules: the rules read from that file (u.mergelist). */
  mergelist: RuleList | null;
  /** "-C" rules: the global CVS list they stand for. */
  cvs: RuleList | null;
}

export const LOCAL_RULE = 1;
export const REMOTE_RULE = 2;

/**
 * exclude.c filter_rule_list: the local rules of this level followed by the inherited ones
 * (a parent directory's whole list).
 */
export interface RuleList {
  local: Rule[];
  inherited: Rule[];
  debugType: string;
}

export const newRuleList = (debugType: string): RuleList => ({ local: [], inherited: [], debugType });

export function* listRules(list: RuleList): Generator<Rule> {
  yield* list.local;
  yield* list.inherited;
}

export function newRule(rflags: number): Rule {
  return { rflags, pattern: "", slashCnt: 0, elide: 0, mergelist: null, cvs: null };
}

export type FilterSide = "sender" | "receiver";
export type FilterDecision = "exclude" | "include" | "none";

/** Things rsync takes from its environment while parsing rules. */
export interface FilterEnv {
  /** $HOME: a "-C" list also reads $HOME/.cvsignore. */
  home?: string;
  /** $CVSIGNORE: more words for a "-C" list. */
  cvsIgnore?: string;
  /** Non-fatal messages rsync would print (over-long rules). */
  warn?: (message: string) => void;
}

/** A merge-file reader: text (taken as UTF-8) or raw bytes, null when missing; may throw an errno error. */
export type MergeFileReader = (path: string) => string | Uint8Array | null;

const isSpace = (c: number): boolean => c === 0x20 || (c >= 0x09 && c <= 0x0d);

/** clean_fname with CFN_COLLAPSE_DOT_DOT_DIRS: no "//", no "." parts, ".." folded where it can be. */
export function cleanPath(p: string): string {
  const abs = p.startsWith("/");
  const out: string[] = [];
  for (const part of p.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === ".." && (out.length > 0 ? out[out.length - 1] !== ".." : abs)) {
      out.pop();
      continue;
    }
    out.push(part);
  }
  const s = (abs ? "/" : "") + out.join("/");
  return s === "" ? "." : s;
}

function countSlashes(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) === 0x2f) n++;
  return n;
}

function basenameOf(s: string): string {
  const i = s.lastIndexOf("/");
  return i >= 0 ? s.slice(i + 1) : s;
}

/** rule_strcmp: the word at `i` is `word`, ended by whitespace, '_', ',' or the end. */
function ruleWord(s: string, i: number, word: string): number | null {
  if (!s.startsWith(word, i)) return null;
  const j = i + word.length;
  if (j >= s.length || isSpace(s.charCodeAt(j)) || s[j] === "_") return j - 1;
  if (s[j] === ",") return j;
  return null;
}

export interface FilterContextOptions {
  /** who_am_i() in messages: "client" while parsing options, "sender", "generator". */
  who: string;
  /** Which side's per-directory rules are kept (add_rule drops the other side's); null = none dropped. */
  side: "sender" | "receiver" | null;
  deleteExcluded: boolean;
  /** protocol_version when a "-C" list is first built (>= 30: its defaults are perishable). */
  protocol: number;
  /** Reads merge files; gets the name as rsync would open it (absolute, or relative to the cwd). */
  read: MergeFileReader | undefined;
  /** $HOME, for ~/.cvsignore. */
  home?: string | undefined;
  /** $CVSIGNORE. */
  cvsIgnoreEnv?: string | undefined;
  /** Non-fatal messages rsync prints (over-long rules). */
  warn?: ((message: string) => void) | undefined;
}

interface ParsedTok {
  rule: Rule;
  pat: string;
  next: number;
}

/** The parser's global state in exclude.c (mergelist_parents, dirbuf, parent_dirscan, ...). */
export class FilterContext {
  readonly opts: FilterContextOptions;
  /** mergelist_parents: every active per-dir merge rule, in the order they were added. */
  mergelistParents: (Rule | null)[] = [];
  /** dirbuf: the current directory's absolute path with a trailing '/' ("" before any). */
  dirbuf = "";
  parentDirscan = false;
  trustSenderFilter = false;
  cvsList: RuleList | null = null;
  private mergeDepth = 0;
  // Where rule text being parsed came from (for messages that must not echo file contents).
  private srcInFile = false;
  private srcFile: string | null = null;
  private srcLine = 0;
  private srcNamedAt: string | null = null;

  constructor(opts: FilterContextOptions) {
    this.opts = opts;
  }

  // -------------------------------------------------------------------------------- messages

  private textFromFile(template: Rule | null): boolean {
    return this.srcInFile || (template !== null && (template.rflags & FILTRULE_FROM_FILE) !== 0);
  }

  private srcWhere(): string {
    if (this.srcFile === null) return this.srcNamedAt === null ? "a file read earlier" : `a file named at ${this.srcNamedAt}`;
    return this.srcLine < 0 ? this.srcFile : `${this.srcFile} line ${this.srcLine}`;
  }

  /** exclude.c rule_text: the text itself, or where it came from when it is a file's contents. */
  ruleText(template: Rule | null, text: string): string {
    return this.textFromFile(template) ? `<rule from ${this.srcWhere()}>` : byteStringToText(text);
  }

  private ruleError(msg: string, ruleStr: string): never {
    throw new UsageError(`${msg}: ${this.ruleText(null, ruleStr)}`, RERR_SYNTAX);
  }

  // ------------------------------------------------------------------------- list upkeep

  /** free_filter: a dropped per-dir merge rule leaves mergelist_parents (teardown_mergelist). */
  freeRule(r: Rule): void {
    if (!(r.rflags & FILTRULE_PERDIR_MERGE) || r.mergelist === null) return;
    r.mergelist = null;
    const i = this.mergelistParents.indexOf(r);
    if (i >= 0) this.mergelistParents[i] = null;
    while (this.mergelistParents.length > 0 && this.mergelistParents[this.mergelistParents.length - 1] === null) {
      this.mergelistParents.pop();
    }
  }

  freeRules(rules: readonly Rule[]): void {
    for (const r of rules) this.freeRule(r);
  }

  /** pop_filter_list: drop this level's own rules, keep the inherited ones. */
  popFilterList(list: RuleList): void {
    if (list.local.length === 0) return;
    const local = list.local;
    list.local = [];
    this.freeRules(local);
  }

  // ---------------------------------------------------------------------------- parsing

  /** parse_rule_tok: the next rule of `s` from `start`, or null at the end. */
  private parseRuleTok(s: string, start: number, template: Rule, xflags: number): ParsedTok | null {
    let i = start;
    if (template.rflags & FILTRULE_WORD_SPLIT) {
      while (i < s.length && isSpace(s.charCodeAt(i))) i++;
      start = i;
    }
    if (i >= s.length) return null;
    const ruleStr = s.slice(start);
    const rule = newRule((template.rflags & FROM_CONTAINER) | (this.srcInFile ? FILTRULE_FROM_FILE : 0));
    const at = (k: number): string => (k < s.length ? s[k]! : "");

    if (template.rflags & FILTRULE_NO_PREFIXES) {
      if (at(i) === "!" && template.rflags & FILTRULE_CVS_IGNORE) rule.rflags |= FILTRULE_CLEAR_LIST; // tentative
    } else if (xflags & XFLG_OLD_PREFIXES) {
      if (at(i) === "-" && at(i + 1) === " ") {
        rule.rflags &= ~FILTRULE_INCLUDE;
        i += 2;
      } else if (at(i) === "+" && at(i + 1) === " ") {
        rule.rflags |= FILTRULE_INCLUDE;
        i += 2;
      } else if (at(i) === "!") rule.rflags |= FILTRULE_CLEAR_LIST; // tentative
    } else {
      let ch = "";
      let sideGiven = false;
      const word = (w: string, c: string): void => {
        const j = ruleWord(s, i, w);
        if (j !== null) {
          i = j;
          ch = c;
        }
      };
      switch (at(i)) {
        case "c":
          word("clear", "!");
          break;
        case "d":
          word("dir-merge", ":");
          break;
        case "e":
          word("exclude", "-");
          break;
        case "h":
          word("hide", "H");
          break;
        case "i":
          word("include", "+");
          break;
        case "m":
          word("merge", ".");
          break;
        case "p":
          word("protect", "P");
          break;
        case "r":
          word("risk", "R");
          break;
        case "s":
          word("show", "S");
          break;
        default:
          ch = at(i);
          if (at(i + 1) === ",") i++;
          break;
      }
      switch (ch) {
        case ":":
          this.trustSenderFilter = true;
          rule.rflags |= FILTRULE_PERDIR_MERGE | FILTRULE_FINISH_SETUP | FILTRULE_MERGE_FILE;
          break;
        case ".":
          rule.rflags |= FILTRULE_MERGE_FILE;
          break;
        case "+":
          rule.rflags |= FILTRULE_INCLUDE;
          break;
        case "-":
          break;
        case "S":
          rule.rflags |= FILTRULE_INCLUDE | FILTRULE_SENDER_SIDE;
          sideGiven = true;
          break;
        case "H":
          rule.rflags |= FILTRULE_SENDER_SIDE;
          sideGiven = true;
          break;
        case "R":
          rule.rflags |= FILTRULE_INCLUDE | FILTRULE_RECEIVER_SIDE;
          sideGiven = true;
          break;
        case "P":
          rule.rflags |= FILTRULE_RECEIVER_SIDE;
          sideGiven = true;
          break;
        case "!":
          rule.rflags |= FILTRULE_CLEAR_LIST;
          break;
        default:
          this.ruleError("Unknown filter rule", ruleStr);
      }
      // Modifiers run up to a ' ' or '_' (or whitespace when word-splitting).
      while (ch !== "!" && ++i < s.length && s[i] !== " " && s[i] !== "_") {
        if (template.rflags & FILTRULE_WORD_SPLIT && isSpace(s.charCodeAt(i))) {
          i--;
          break;
        }
        const m = s[i]!;
        const merge = (rule.rflags & FILTRULE_MERGE_FILE) !== 0;
        let ok = true;
        switch (m) {
          case "-":
          case "+":
            if (!merge || rule.rflags & FILTRULE_NO_PREFIXES) ok = false;
            else rule.rflags |= FILTRULE_NO_PREFIXES | (m === "+" ? FILTRULE_INCLUDE : 0);
            break;
          case "/":
            rule.rflags |= FILTRULE_ABS_PATH;
            break;
          case "!":
            // Negation goes with a pattern, so it is no merge-file default.
            if (merge) ok = false;
            else rule.rflags |= FILTRULE_NEGATE;
            break;
          case "C":
            if (rule.rflags & FILTRULE_NO_PREFIXES || sideGiven) ok = false;
            else {
              rule.rflags |= FILTRULE_NO_PREFIXES | FILTRULE_WORD_SPLIT | FILTRULE_NO_INHERIT | FILTRULE_CVS_IGNORE;
            }
            break;
          case "e":
            if (!merge) ok = false;
            else rule.rflags |= FILTRULE_EXCLUDE_SELF;
            break;
          case "n":
            if (!merge) ok = false;
            else rule.rflags |= FILTRULE_NO_INHERIT;
            break;
          case "p":
            rule.rflags |= FILTRULE_PERISHABLE;
            break;
          case "r":
            if (sideGiven) ok = false;
            else rule.rflags |= FILTRULE_RECEIVER_SIDE;
            break;
          case "s":
            if (sideGiven) ok = false;
            else rule.rflags |= FILTRULE_SENDER_SIDE;
            break;
          case "w":
            if (!merge) ok = false;
            else rule.rflags |= FILTRULE_WORD_SPLIT;
            break;
          case "x":
            rule.rflags |= FILTRULE_XATTR;
            break;
          default:
            ok = false;
        }
        if (!ok) {
          const where = this.textFromFile(null) ? "" : ` '${byteStringToText(m)}' at position ${i - start}`;
          throw new UsageError(`invalid modifier${where} in filter rule: ${this.ruleText(null, ruleStr)}`, RERR_SYNTAX);
        }
      }
      if (i < s.length) i++;
    }
    if (template.rflags & FILTRULES_SIDES) {
      if (rule.rflags & FILTRULES_SIDES) {
        // A one-sided merge file may not hold one-sided rules.
        this.ruleError("specified-side merge file contains specified-side filter", ruleStr);
      }
      rule.rflags |= template.rflags & FILTRULES_SIDES;
    }
    let end: number;
    if (template.rflags & FILTRULE_WORD_SPLIT) {
      end = i;
      while (end < s.length && !isSpace(s.charCodeAt(end))) end++;
    } else end = s.length;
    const len = end - i;
    if (rule.rflags & FILTRULE_CLEAR_LIST) {
      if (!(template.rflags & FILTRULE_NO_PREFIXES) && !(xflags & XFLG_OLD_PREFIXES) && len) {
        this.ruleError("'!' rule has trailing characters", ruleStr);
      }
      if (len > 1) rule.rflags &= ~FILTRULE_CLEAR_LIST;
    } else if (!len && !(rule.rflags & FILTRULE_CVS_IGNORE)) {
      this.ruleError("unexpected end of filter rule", ruleStr);
    }
    // --delete-excluded turns an unmodified include/exclude into a sender-side rule.
    if (this.opts.deleteExcluded && !(rule.rflags & (FILTRULES_SIDES | FILTRULE_MERGE_FILE | FILTRULE_PERDIR_MERGE))) {
      rule.rflags |= FILTRULE_SENDER_SIDE;
    }
    return { rule, pat: s.slice(i, end), next: end };
  }

  /** parse_merge_name: the name to open (absolute when it has a '/' or in a parent-dir scan). */
  parseMergeName(name: string, prefixSkip: number): string {
    if (!this.parentDirscan && !name.startsWith("/") && !name.includes("/")) return name;
    let fn = cleanPath(name);
    if (!name.startsWith("/")) fn = cleanPath(this.dirbuf.slice(prefixSkip) + fn);
    return fn;
  }

  /** add_rule: finish `rule` with its pattern and put it at the end of the list's local part. */
  addRule(list: RuleList, pat: string, rule: Rule, xflags: number): void {
    if (xflags & XFLG_ANCHORED2ABS && this.opts.side !== null) {
      const other = this.opts.side === "sender" ? FILTRULE_RECEIVER_SIDE : FILTRULE_SENDER_SIDE;
      if ((rule.rflags & FILTRULES_SIDES) === other) {
        // Only for the other side: dropped.
        this.freeRule(rule);
        return;
      }
    }
    if (pat.length > 1 && pat.endsWith("/")) {
      pat = pat.slice(0, -1);
      rule.rflags |= FILTRULE_DIRECTORY;
    }
    let slashCnt = countSlashes(pat);
    let prefix = "";
    if (!(rule.rflags & (FILTRULE_ABS_PATH | FILTRULE_MERGE_FILE)) && xflags & XFLG_ANCHORED2ABS && pat.startsWith("/")) {
      // A leading '/' in a per-dir file anchors at that file's directory.
      rule.rflags |= FILTRULE_ABS_PATH;
      prefix = this.dirbuf.slice(0, Math.max(0, this.dirbuf.length - 1));
      slashCnt += countSlashes(prefix);
    }
    rule.elide = 0;
    rule.pattern = prefix + pat;
    const p = rule.pattern;
    if (/[*[?]/.test(p)) {
      rule.rflags |= FILTRULE_WILD;
      const k = p.indexOf("**");
      if (k >= 0) {
        rule.rflags |= FILTRULE_WILD2;
        if (k === 0) rule.rflags |= FILTRULE_WILD2_PREFIX;
        if (p.length >= 3 && p.endsWith("***")) rule.rflags |= FILTRULE_WILD3_SUFFIX;
      }
    }
    if (rule.rflags & FILTRULE_PERDIR_MERGE) {
      const name = basenameOf(p);
      // A per-dir merge file already active under the same name is not added again.
      for (const ex of this.mergelistParents) {
        if (ex && basenameOf(ex.pattern) === name) {
          this.freeRule(rule);
          return;
        }
      }
      rule.mergelist = newRuleList(` [per-dir ${this.ruleText(rule, name)}]`);
      this.mergelistParents.push(rule);
    } else rule.slashCnt = slashCnt;
    // (in place: a saved push state never shares this level's local array)
    list.local.push(rule);
  }

  /** parse_filter_str: parse every rule of `text` (a byte string) into `list`. */
  parseFilterStr(list: RuleList, text: string, template: Rule, xflags: number): void {
    let pos = 0;
    for (;;) {
      const tok = this.parseRuleTok(text, pos, template, xflags);
      if (tok === null) break;
      pos = tok.next;
      const { rule } = tok;
      let pat = tok.pat;
      if (pat.length >= MAXPATHLEN) {
        this.opts.warn?.(`discarding over-long filter: ${this.ruleText(null, pat)}`);
        continue;
      }
      const newRflags = rule.rflags;
      if (newRflags & FILTRULE_CLEAR_LIST) {
        this.popFilterList(list);
        list.inherited = [];
        continue;
      }
      if (newRflags & FILTRULE_MERGE_FILE) {
        if (pat === "") pat = ".cvsignore";
        if (newRflags & FILTRULE_EXCLUDE_SELF) {
          // An exclude of the merge file's own name goes first.
          const self = newRule(rule.rflags & FILTRULE_FROM_FILE);
          this.addRule(list, basenameOf(pat), self, 0);
          rule.rflags &= ~FILTRULE_EXCLUDE_SELF;
        }
        if (newRflags & FILTRULE_PERDIR_MERGE) {
          if (this.parentDirscan) {
            this.addRule(list, this.parseMergeName(pat, 0), rule, 0);
            continue;
          }
        } else {
          this.parseFilterFile(list, this.parseMergeName(pat, 0), rule, XFLG_FATAL_ERRORS);
          continue;
        }
      }
      this.addRule(list, pat, rule, xflags);
      if (newRflags & FILTRULE_CVS_IGNORE && !(newRflags & FILTRULE_MERGE_FILE)) {
        this.getCvsExcludes(newRflags);
        rule.cvs = this.cvsList;
      }
    }
  }

  /** get_cvs_excludes: the global list a "-C" rule stands for, built once. */
  getCvsExcludes(rflags: number): void {
    if (this.cvsList !== null) return;
    const list = newRuleList(" [global CVS]");
    this.cvsList = list;
    const perishable = this.opts.protocol >= 30 ? FILTRULE_PERISHABLE : 0;
    this.parseFilterStr(list, DEFAULT_CVSIGNORE, newRule(rflags | perishable), 0);
    if (this.opts.home !== undefined) {
      const home = this.opts.home;
      const file = home.endsWith("/") ? `${home}.cvsignore` : `${home}/.cvsignore`;
      this.parseFilterFile(list, byteString(file), newRule(rflags), 0);
    }
    if (this.opts.cvsIgnoreEnv !== undefined) {
      this.parseFilterStr(list, byteString(this.opts.cvsIgnoreEnv), newRule(rflags), 0);
    }
  }

  /** The reader's view of a name rsync would open (hook for FilterList's root-relative paths). */
  protected readerPath(fname: string): string {
    return fname;
  }

  /** parse_filter_file: read a merge file and parse its lines (or words) into `list`. */
  parseFilterFile(list: RuleList, fname: string, template: Rule, xflags: number): void {
    if (fname === "") return;
    const who = this.opts.who;
    if (this.mergeDepth >= MAX_MERGE_DEPTH) {
      const msg = `[${who}] merge-file include depth limit (${MAX_MERGE_DEPTH}) exceeded at ${this.ruleText(template, fname)}`;
      if (xflags & XFLG_FATAL_ERRORS) throw new UsageError(msg, RERR_FILEIO);
      this.opts.warn?.(msg);
      return;
    }
    let content: string | null = null;
    let failure: unknown = null;
    try {
      const got = this.opts.read ? this.opts.read(byteStringToText(this.readerPath(fname))) : null;
      if (got !== null) content = typeof got === "string" ? byteString(got) : bytesToByteString(got);
    } catch (e) {
      failure = e;
    }
    if (content === null) {
      if (xflags & XFLG_FATAL_ERRORS) {
        const kind = template.rflags & FILTRULE_INCLUDE ? "in" : "ex";
        if (this.textFromFile(template)) {
          throw new UsageError(`failed to open ${kind}clude file ${this.ruleText(template, fname)}`, RERR_FILEIO);
        }
        const err = failure ?? Object.assign(new Error("ENOENT"), { code: "ENOENT" });
        throw new UsageError(
          `${PROGRAM}: [${who}] failed to open ${kind}clude file ${byteStringToText(fname)}: ${strerror(err)}`,
          RERR_FILEIO,
        );
      }
      return;
    }
    this.mergeDepth++;
    const wordSplit = (template.rflags & FILTRULE_WORD_SPLIT) !== 0;
    const save = { inFile: this.srcInFile, file: this.srcFile, line: this.srcLine, namedAt: this.srcNamedAt };
    const namedByFile = this.textFromFile(template);
    if (namedByFile) this.srcNamedAt = this.srcInFile ? this.srcWhere() : null;
    this.srcInFile = true;
    this.srcFile = namedByFile ? null : byteStringToText(fname);
    this.srcLine = wordSplit ? -1 : 0;
    try {
      let i = 0;
      const n = content.length;
      while (i <= n) {
        if (this.srcLine >= 0) this.srcLine++;
        let j = i;
        // A line ends at \n, \r or \r\n; a word also at any whitespace.
        while (j < n) {
          const c = content.charCodeAt(j);
          if (wordSplit ? isSpace(c) : c === 0x0a || c === 0x0d) break;
          j++;
        }
        let line = content.slice(i, j);
        let next = j + 1;
        if (!wordSplit && j < n && content.charCodeAt(j) === 0x0d && content.charCodeAt(j + 1) === 0x0a) next++;
        if (line.length > BIGPATHBUFLEN - 1) {
          this.opts.warn?.(`discarding over-long filter: ${this.ruleText(null, "")}`);
          line = "";
        }
        if (line !== "" && (wordSplit || (line[0] !== ";" && line[0] !== "#"))) {
          this.parseFilterStr(list, line, template, xflags);
        }
        if (j >= n) break;
        i = next;
      }
    } finally {
      this.srcInFile = save.inFile;
      this.srcFile = save.file;
      this.srcLine = save.line;
      this.srcNamedAt = save.namedAt;
      this.mergeDepth--;
    }
  }
}
