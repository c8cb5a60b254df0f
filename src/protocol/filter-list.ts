// One side's filter_list and per-directory merge stack (exclude.c push_local_filters,
// pop_local_filters, change_local_filter_dir, check_filter, rule_matches).

import { MAXPATHLEN } from "./flist-names.js";
import {
  cleanPath,
  FilterContext,
  type FilterContextOptions,
  type FilterDecision,
  type FilterEnv,
  type FilterRule,
  type FilterSide,
  type MergeFileReader,
  FILTRULE_ABS_PATH,
  FILTRULE_CVS_IGNORE,
  FILTRULE_DIRECTORY,
  FILTRULE_FINISH_SETUP,
  FILTRULE_INCLUDE,
  FILTRULE_NEGATE,
  FILTRULE_NO_INHERIT,
  FILTRULE_PERDIR_MERGE,
  FILTRULE_PERISHABLE,
  FILTRULE_WILD,
  FILTRULE_WILD2,
  FILTRULE_WILD2_PREFIX,
  FILTRULE_WILD3_SUFFIX,
  FILTRULE_XATTR,
  LOCAL_RULE,
  REMOTE_RULE,
  XFLG_ANCHORED2ABS,
  type Rule,
  type RuleList,
} from "./filter-rules.js";
import { clientFilterList, contextOptions } from "./filter-wire.js";
import { byteString, litmatchArray, wildmatchArray } from "./filter-wildmatch.js";

export interface FilterListOptions extends FilterEnv {
  /** --delete-excluded: plain rules apply to the sender only. */
  deleteExcluded?: boolean;
  /** -C / --cvs-exclude (the option). */
  cvsExclude?: boolean;
  /** The negotiated protocol (default 32): where -C's rules go and whether they perish. */
  protocol?: number;
  /**
   * Absolute path of the transfer root. Rules with the '/' modifier match against it, and a
   * dir-merge name with a path (-F's "/.rsync-filter") is also looked for in its ancestors.
   * Default "/": the root has no ancestors.
   */
  rootDir?: string;
  /**
   * Reads a merge file: `path` is relative to the transfer root ("sub/.rsync-filter",
   * ".rsync-filter") or absolute for a file outside it (an ancestor's, $HOME/.cvsignore, an
   * absolute merge name). Returns null when there is no such file.
   */
  readMergeFile?: MergeFileReader;
}

/** Saved per-dir merge state (exclude.c struct local_filter_state). */
type PushState = { cnt: number; lists: ({ local: Rule[]; inherited: Rule[] } | null)[] } | null;

/** Gives the reader paths relative to the transfer root where they are inside it. */
class RootedContext extends FilterContext {
  constructor(
    opts: FilterContextOptions,
    private readonly root: string,
  ) {
    super(opts);
  }
  protected override readerPath(fname: string): string {
    if (!fname.startsWith("/")) return fname;
    if (this.root === "/") return fname.slice(1);
    if (fname.startsWith(this.root + "/")) return fname.slice(this.root.length + 1);
    return fname;
  }
}

const NAME_IS_DIR = 1;
const NAME_IS_XATTR = 4;

/**
 * One side's filter_list with its per-directory merge stack. The sender's file-list walk and the
 * receiver's --delete both use it: a name is checked while its parent directory is entered.
 * Sender: check(...) === "exclude" leaves the name (and, for a dir, all below it) out.
 * Receiver: "exclude" protects an extraneous name from deletion (the rules here already follow
 * --delete-excluded); inside a directory being deleted check with ignorePerishable.
 */
export class FilterList {
  readonly side: FilterSide;
  private readonly ctx: FilterContext;
  private readonly list: RuleList;
  private readonly currDir: string;
  private readonly stack: { dir: string; state: PushState }[] = [];
  private readonly depthStates: (PushState | undefined)[] = [];
  private curDepth = -1;
  private curElide = REMOTE_RULE;
  private ignorePerishable = false;

  constructor(rules: readonly FilterRule[], side: FilterSide, opts: FilterListOptions = {}) {
    this.side = side;
    this.currDir = cleanPath(byteString(opts.rootDir ?? "/"));
    if (!this.currDir.startsWith("/")) throw new Error(`FilterList: rootDir must be absolute: ${opts.rootDir}`);
    const protocol = opts.protocol ?? 32;
    const who = side === "sender" ? "sender" : "generator";
    this.ctx = new RootedContext(
      contextOptions(side, who, opts.deleteExcluded ?? false, protocol, opts.readMergeFile, opts),
      this.currDir,
    );
    this.list = clientFilterList(rules, this.ctx, side, protocol, {
      deleteExcluded: opts.deleteExcluded ?? false,
      cvsExclude: opts.cvsExclude ?? false,
    }).list;
  }

  /** No rules at all (a walker may skip checks). */
  get empty(): boolean {
    return this.list.local.length === 0;
  }

  /** A dir-merge rule exists: the receiver must trust the sender's filtering (trust_sender_filter). */
  get trustSender(): boolean {
    return this.ctx.trustSenderFilter;
  }

  private setFilterDir(dir: string): void {
    const abs = dir.startsWith("/") ? dir : `${this.currDir}/${dir}`;
    const clean = cleanPath(abs);
    this.ctx.dirbuf = clean === "/" ? "/" : `${clean}/`;
  }

  /** push_local_filters: enter directory `relDir` ("" = the root), reading its dir-merge files. */
  private push(relDir: string): PushState {
    const ctx = this.ctx;
    this.setFilterDir(byteString(relDir));
    if (ctx.mergelistParents.length === 0) return null;
    const state: NonNullable<PushState> = {
      cnt: ctx.mergelistParents.length,
      lists: ctx.mergelistParents.map((ex) => (ex?.mergelist ? { local: ex.mergelist.local, inherited: ex.mergelist.inherited } : null)),
    };
    // (parse_filter_file may add per-dir merge rules; they are handled in this same loop)
    for (let i = 0; i < ctx.mergelistParents.length; i++) {
      const ex = ctx.mergelistParents[i];
      if (!ex?.mergelist) continue;
      const lp = ex.mergelist;
      // This level's rules become inherited ones (or go, with 'n').
      lp.inherited = ex.rflags & FILTRULE_NO_INHERIT ? [] : [...lp.local, ...lp.inherited];
      lp.local = [];
      if (ex.rflags & FILTRULE_FINISH_SETUP) {
        ex.rflags &= ~FILTRULE_FINISH_SETUP;
        if (this.setupMergeFile(ex, lp)) this.setFilterDir(byteString(relDir));
      }
      const path = ctx.dirbuf + ex.pattern;
      if (path.length < MAXPATHLEN) ctx.parseFilterFile(lp, path, ex, XFLG_ANCHORED2ABS);
      else ctx.opts.warn?.(`cannot add local filter rules in long-named directory: ${ctx.ruleText(ex, path)}`);
    }
    return state;
  }

  /**
   * setup_merge_file: a dir-merge name with a path is reduced to its file name; when the path
   * is an ancestor of the first directory entered, each directory from there down to that
   * directory's parent is searched for the file first (those rules are inherited).
   */
  private setupMergeFile(ex: Rule, lp: RuleList): boolean {
    const ctx = this.ctx;
    const x = ctx.parseMergeName(ex.pattern, 0);
    if (!x.startsWith("/")) return false;
    const slash = x.lastIndexOf("/");
    ex.pattern = x.slice(slash + 1);
    const dir = cleanPath(x.slice(0, slash) || "/");
    const prefix = dir === "/" ? "/" : `${dir}/`;
    const dirbuf = ctx.dirbuf;
    let y = dirbuf.startsWith(prefix) ? prefix.length : dirbuf.length;
    ctx.parentDirscan = true;
    try {
      while (y < dirbuf.length) {
        ctx.dirbuf = dirbuf.slice(0, y);
        ctx.parseFilterFile(lp, ctx.dirbuf + ex.pattern, ex, XFLG_ANCHORED2ABS);
        if (ex.rflags & FILTRULE_NO_INHERIT) {
          ctx.freeRules([...lp.local, ...lp.inherited]);
          lp.local = [];
          lp.inherited = [];
        }
        lp.inherited = [...lp.local, ...lp.inherited];
        lp.local = [];
        ctx.dirbuf = dirbuf;
        y = dirbuf.indexOf("/", y) + 1;
      }
    } finally {
      ctx.parentDirscan = false;
      ctx.dirbuf = dirbuf;
    }
    return true;
  }

  /** pop_local_filters: leave a directory, back to the state `state` saved. */
  private pop(state: PushState): void {
    const ctx = this.ctx;
    const oldCnt = state ? state.cnt : 0;
    for (let i = ctx.mergelistParents.length; i-- > 0; ) {
      const ex = ctx.mergelistParents[i];
      if (!ex?.mergelist) continue;
      ctx.popFilterList(ex.mergelist);
    }
    if (!state) return;
    for (let i = 0; i < oldCnt; i++) {
      const ex = ctx.mergelistParents[i];
      const saved = state.lists[i];
      if (!ex?.mergelist || !saved) continue;
      ex.mergelist.local = saved.local;
      ex.mergelist.inherited = saved.inherited;
    }
  }

  /** Enter directory `relDir` (relative to the root, "" for the root): loads its dir-merge files. */
  enterDir(relDir: string): void {
    this.stack.push({ dir: relDir, state: this.push(relDir) });
  }

  /** Leave the directory entered last (`relDir` must name it). */
  leaveDir(relDir: string): void {
    const top = this.stack.pop();
    if (!top || top.dir !== relDir) throw new Error(`FilterList.leaveDir(${relDir}): not the current directory (${top?.dir ?? "none"})`);
    this.pop(top.state);
  }

  /**
   * change_local_filter_dir: make `relDir` the directory at `depth` (0 = the root's level),
   * leaving any entered at that depth or deeper first; null leaves them all. This is how the
   * receiver's delete pass and an incremental-recursion sender move through the tree.
   */
  changeDir(relDir: string | null, depth = 0): void {
    const target = relDir === null ? 0 : depth;
    for (; this.curDepth >= target; this.curDepth--) {
      const st = this.depthStates[this.curDepth];
      if (st !== undefined) {
        this.pop(st);
        this.depthStates[this.curDepth] = undefined;
      }
    }
    if (relDir === null) return;
    this.curDepth = depth;
    this.depthStates[depth] = this.push(relDir);
  }

  /**
   * name_is_excluded / check_filter for `relPath` (relative to the root): the first rule that
   * matches decides. `ignorePerishable`: inside a directory that --delete is removing, where
   * perishable rules ('p', -C's defaults at 30+) do not protect.
   */
  check(relPath: string, isDir: boolean, ignorePerishable = false): FilterDecision {
    return this.decide(relPath, isDir ? NAME_IS_DIR : 0, ignorePerishable, REMOTE_RULE);
  }

  /** An xattr name against the 'x' rules (true = excluded). */
  checkXattr(name: string): boolean {
    return this.decide(name, NAME_IS_XATTR, false, REMOTE_RULE) === "exclude";
  }

  /**
   * check_server_filter: the decision of the rules the peer was sent (for a receiver checking
   * that the sender's list holds no name those rules exclude: rsync rejects such a list unless
   * trustSender).
   */
  checkSentRules(relPath: string, isDir: boolean): FilterDecision {
    return this.decide(relPath, isDir ? NAME_IS_DIR : 0, false, LOCAL_RULE);
  }

  private decide(name: string, flags: number, ignorePerishable: boolean, elide: number): FilterDecision {
    if (this.list.local.length === 0) return "none";
    this.curElide = elide;
    this.ignorePerishable = ignorePerishable;
    const rc = this.checkFilter(this.list, byteString(name), flags);
    return rc < 0 ? "exclude" : rc > 0 ? "include" : "none";
  }

  private checkFilter(list: RuleList, name: string, flags: number): number {
    const rc = this.checkRules(list.local, name, flags);
    return rc || this.checkRules(list.inherited, name, flags);
  }

  private checkRules(rules: readonly Rule[], name: string, flags: number): number {
    for (let i = 0; i < rules.length; i++) {
      const ent = rules[i]!;
      if (this.ignorePerishable && ent.rflags & FILTRULE_PERISHABLE) continue;
      if (ent.rflags & FILTRULE_PERDIR_MERGE) {
        if (ent.mergelist) {
          const rc = this.checkFilter(ent.mergelist, name, flags);
          if (rc) return rc;
        }
        continue;
      }
      if (ent.rflags & FILTRULE_CVS_IGNORE) {
        const cvs = this.ctx.cvsList;
        if (cvs) {
          const rc = this.checkFilter(cvs, name, flags);
          if (rc) return rc;
        }
        continue;
      }
      if (this.ruleMatches(name, ent, flags)) return ent.rflags & FILTRULE_INCLUDE ? 1 : -1;
    }
    return 0;
  }

  /** rule_matches */
  private ruleMatches(fname: string, ex: Rule, flags: number): boolean {
    const retMatch = !(ex.rflags & FILTRULE_NEGATE);
    let name = fname.startsWith("/") ? fname.slice(1) : fname;
    if (name === "" || ex.elide === this.curElide) return false;
    if (!(flags & NAME_IS_XATTR) !== !(ex.rflags & FILTRULE_XATTR)) return false;
    const strings: string[] = [];
    if (!ex.slashCnt && !(ex.rflags & FILTRULE_WILD2)) {
      // No '/' and no "**": only the last name element is matched.
      const k = name.lastIndexOf("/");
      if (k >= 0) name = name.slice(k + 1);
    } else if (ex.rflags & FILTRULE_ABS_PATH && !fname.startsWith("/") && this.currDir.length > 1) {
      strings.push(this.currDir.slice(1), "/");
    } else if (ex.rflags & FILTRULE_WILD2_PREFIX && !fname.startsWith("/")) {
      strings.push("/"); // lets "**/" match at the start
    }
    strings.push(name);
    if (flags & NAME_IS_DIR) {
      if (ex.rflags & FILTRULE_WILD3_SUFFIX) strings.push("/"); // "dir/***" matches "dir" too
    } else if (ex.rflags & FILTRULE_DIRECTORY) return !retMatch;
    let pattern = ex.pattern;
    const anchored = pattern.startsWith("/");
    if (anchored) pattern = pattern.slice(1);
    let slashHandling: number;
    if (!anchored && ex.slashCnt && !(ex.rflags & FILTRULE_WILD2)) slashHandling = ex.slashCnt + 1;
    else if (!anchored && !(ex.rflags & FILTRULE_WILD2_PREFIX) && ex.rflags & FILTRULE_WILD2) slashHandling = -1;
    else slashHandling = 0;
    let hit: boolean;
    if (ex.rflags & FILTRULE_WILD) hit = wildmatchArray(pattern, strings, slashHandling);
    else if (strings.length > 1) hit = litmatchArray(pattern, strings, slashHandling);
    else if (anchored) hit = name === pattern;
    else {
      const l1 = name.length;
      const l2 = pattern.length;
      hit = l2 <= l1 && name.endsWith(pattern) && (l1 === l2 || name[l1 - l2 - 1] === "/");
    }
    return hit ? retMatch : !retMatch;
  }
}
