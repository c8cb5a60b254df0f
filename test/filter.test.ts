// Unit tests of the filter module: wildmatch (rsync's own test vectors when the source is at
// hand, a regex model as a property), rule parsing and its messages, the printable/wire rule
// forms, FilterList's per-directory merge stack, sides, perishable rules and the wire list.

import { existsSync, readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  FILTRULE_ABS_PATH,
  FILTRULE_CVS_IGNORE,
  FILTRULE_DIRECTORY,
  FILTRULE_EXCLUDE_SELF,
  FILTRULE_INCLUDE,
  FILTRULE_NEGATE,
  FILTRULE_NO_INHERIT,
  FILTRULE_NO_PREFIXES,
  FILTRULE_PERDIR_MERGE,
  FILTRULE_PERISHABLE,
  FILTRULE_RECEIVER_SIDE,
  FILTRULE_SENDER_SIDE,
  FILTRULE_WILD,
  FILTRULE_WILD2,
  FILTRULE_WILD2_PREFIX,
  FILTRULE_WILD3_SUFFIX,
  FILTRULE_WORD_SPLIT,
  FILTRULE_XATTR,
  FilterList,
  byteString,
  parseFilterRules,
  ruleText,
  wildmatch,
  wildmatchArray,
  wireFilterRuleBytes,
  wireFilterRules,
  type FilterRule,
} from "../src/protocol/filter.js";
import { UsageError } from "../src/protocol/errcode.js";

// ----------------------------------------------------------------------------- wildmatch

const WILDTEST = "/work/rsrc/wildtest.txt";

/** wildtest.c's line format: two flags, then text and pattern (optionally quoted). */
function readWildtest(file: string): { line: number; match: boolean; text: string; pattern: string }[] {
  const out = [];
  const lines = readFileSync(file, "latin1").split("\n");
  for (let n = 0; n < lines.length; n++) {
    const l = lines[n]!;
    if (l === "" || l.startsWith("#")) continue;
    let i = 0;
    const flags: string[] = [];
    for (let k = 0; k < 2; k++) {
      flags.push(l[i]!);
      i++;
      while (l[i] === " " || l[i] === "\t") i++;
    }
    const strs: string[] = [];
    for (let k = 0; k < 2; k++) {
      const q = l[i]!;
      if (q === "'" || q === '"' || q === "`") {
        const e = l.indexOf(q, i + 1);
        strs.push(l.slice(i + 1, e));
        i = e + 1;
      } else {
        let e = i + 1;
        while (e < l.length && l[e] !== " " && l[e] !== "\t") e++;
        strs.push(l.slice(i, e));
        i = e;
      }
      while (l[i] === " " || l[i] === "\t") i++;
    }
    out.push({ line: n + 1, match: flags[0] === "1", text: strs[0]!, pattern: strs[1]! });
  }
  return out;
}

/** A regex model of wildmatch for patterns of a, b, /, *, ?, \ and [ab] classes. */
function modelRegex(p: string): RegExp {
  let re = "";
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!;
    if (c === "*") {
      let j = i;
      while (p[j + 1] === "*") j++;
      re += j > i ? ".*" : "[^/]*";
      i = j;
    } else if (c === "?") re += "[^/]";
    else if (c === "\\") {
      i++;
      if (i >= p.length) return /(?!)/; // a trailing backslash matches nothing
      re += p[i]!.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
    } else if (c === "[") {
      const e = p.indexOf("]", i + 2);
      if (e < 0) return /(?!)/;
      re += `(?!/)[${p.slice(i + 1, e).replace(/^!/, "^").replace(/\\/g, "\\\\")}]`;
      i = e;
    } else re += c.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
  }
  return new RegExp(`^${re}$`, "s");
}

describe("wildmatch", () => {
  it.skipIf(!existsSync(WILDTEST))("passes rsync's wildtest.txt vectors", () => {
    const vectors = readWildtest(WILDTEST);
    expect(vectors.length).toBeGreaterThan(100);
    for (const v of vectors) expect([v.line, wildmatch(v.pattern, v.text)]).toEqual([v.line, v.match]);
  });

  it("handles the slash rules and classes", () => {
    const cases: [string, string, boolean][] = [
      ["*.c", "a.c", true],
      ["*.c", "d/a.c", false],
      ["**.c", "d/a.c", true],
      ["d/**", "d/x/y", true],
      ["d/**", "d", false],
      ["d/***", "d/", true],
      ["a?c", "a/c", false],
      ["a[/]c", "a/c", false],
      ["a[!b]c", "a/c", false],
      ["[[:alpha:]]x", "ax", true],
      ["[[:alpha:]]x", "1x", false],
      ["[[:alpha:]-z]", "-", true],
      ["[[:bogus:]]", "b", false],
      ["x[", "x[", false],
      ["\\[x]", "[x]", true],
      ["a\\", "a\\", false],
      ["[]]", "]", true],
      ["[!]]", "a", true],
      ["[^a]", "b", true],
      ["[a-c]", "b", true],
      ["[c-a]", "b", false],
      ["", "", true],
      ["*", "", true],
      ["?", "", false],
    ];
    for (const [p, t, want] of cases) expect([p, t, wildmatch(p, t)]).toEqual([p, t, want]);
  });

  it("matches bytes: ? is one byte of a UTF-8 name", () => {
    expect(wildmatch("caf?", byteString("café"))).toBe(false);
    expect(wildmatch("caf??", byteString("café"))).toBe(true);
    expect(wildmatch(byteString("caf[é]"), byteString("café"))).toBe(false); // a class of bytes
  });

  it("wildmatchArray: joined texts, trailing elements, any-slash starts", () => {
    expect(wildmatchArray("a/b", ["x/", "a/b"], 0)).toBe(false);
    expect(wildmatchArray("a/b", ["x/", "a/b"], 2)).toBe(true);
    expect(wildmatchArray("a/*", ["x/a/", "b"], 2)).toBe(true);
    expect(wildmatchArray("a/*", ["a"], 2)).toBe(false);
    expect(wildmatchArray("b/**", ["a/b/c/d"], -1)).toBe(true);
    expect(wildmatchArray("b/**", ["ab/c"], -1)).toBe(false);
    expect(wildmatchArray("**/c", ["/", "c"], 0)).toBe(true);
  });

  it("agrees with a regex model (property)", () => {
    const patChar = fc.constantFrom("a", "b", "/", "*", "?", "\\", "[ab]", "[!a]", "**");
    const textChar = fc.constantFrom("a", "b", "/", "*", "?", "\\");
    fc.assert(
      fc.property(fc.array(patChar, { maxLength: 8 }), fc.array(textChar, { maxLength: 10 }), (pp, tt) => {
        const p = pp.join("");
        const t = tt.join("");
        expect(wildmatch(p, t)).toBe(modelRegex(p).test(t));
      }),
      { numRuns: 3000 },
    );
  });
});

// ------------------------------------------------------------------------------- parsing

const one = (text: string, opts = {}): FilterRule => {
  const r = parseFilterRules([text], opts);
  expect(r).toHaveLength(1);
  return r[0]!;
};

const errorOf = (texts: string[], opts = {}): UsageError => {
  try {
    parseFilterRules(texts, opts);
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    return e as UsageError;
  }
  throw new Error(`no error for ${JSON.stringify(texts)}`);
};

describe("parseFilterRules", () => {
  it("parses rule types, long names and separators", () => {
    const t = (s: string): [number, string] => {
      const r = one(s);
      return [r.rflags & (FILTRULE_INCLUDE | FILTRULE_SENDER_SIDE | FILTRULE_RECEIVER_SIDE | FILTRULE_PERDIR_MERGE), r.pattern];
    };
    expect(t("- foo")).toEqual([0, "foo"]);
    expect(t("+ foo")).toEqual([FILTRULE_INCLUDE, "foo"]);
    expect(t("exclude foo")).toEqual([0, "foo"]);
    expect(t("include foo")).toEqual([FILTRULE_INCLUDE, "foo"]);
    expect(t("H foo")).toEqual([FILTRULE_SENDER_SIDE, "foo"]);
    expect(t("hide foo")).toEqual([FILTRULE_SENDER_SIDE, "foo"]);
    expect(t("S foo")).toEqual([FILTRULE_INCLUDE | FILTRULE_SENDER_SIDE, "foo"]);
    expect(t("show foo")).toEqual([FILTRULE_INCLUDE | FILTRULE_SENDER_SIDE, "foo"]);
    expect(t("P foo")).toEqual([FILTRULE_RECEIVER_SIDE, "foo"]);
    expect(t("protect foo")).toEqual([FILTRULE_RECEIVER_SIDE, "foo"]);
    expect(t("R foo")).toEqual([FILTRULE_INCLUDE | FILTRULE_RECEIVER_SIDE, "foo"]);
    expect(t("risk foo")).toEqual([FILTRULE_INCLUDE | FILTRULE_RECEIVER_SIDE, "foo"]);
    expect(t(": .f")).toEqual([FILTRULE_PERDIR_MERGE, ".f"]);
    expect(t("dir-merge .f")).toEqual([FILTRULE_PERDIR_MERGE, ".f"]);
    expect(t("-_foo")).toEqual([0, "foo"]);
    expect(t("exclude_foo")).toEqual([0, "foo"]);
    expect(t("-,! foo")).toEqual([0, "foo"]);
    expect(t("exclude,! foo")).toEqual([0, "foo"]);
    expect(t("-  two spaces")).toEqual([0, " two spaces"]);
    expect(t("- trailing ")).toEqual([0, "trailing "]);
  });

  it("sets modifier and pattern flags", () => {
    expect(one("-! foo/").rflags & (FILTRULE_NEGATE | FILTRULE_DIRECTORY)).toBe(FILTRULE_NEGATE | FILTRULE_DIRECTORY);
    expect(one("-! foo/").pattern).toBe("foo");
    expect(one("- /").pattern).toBe("/"); // a lone '/' is not a trailing slash
    expect(one("-/ x").rflags & FILTRULE_ABS_PATH).toBeTruthy();
    expect(one("-px x").rflags & (FILTRULE_PERISHABLE | FILTRULE_XATTR)).toBe(FILTRULE_PERISHABLE | FILTRULE_XATTR);
    expect(one("-sr x").rflags & (FILTRULE_SENDER_SIDE | FILTRULE_RECEIVER_SIDE)).toBe(FILTRULE_SENDER_SIDE | FILTRULE_RECEIVER_SIDE);
    const w = (p: string): number => one(`- ${p}`).rflags & (FILTRULE_WILD | FILTRULE_WILD2 | FILTRULE_WILD2_PREFIX | FILTRULE_WILD3_SUFFIX);
    expect(w("abc")).toBe(0);
    expect(w("a?c")).toBe(FILTRULE_WILD);
    expect(w("a[b]")).toBe(FILTRULE_WILD);
    expect(w("a/**/b")).toBe(FILTRULE_WILD | FILTRULE_WILD2);
    expect(w("**/b")).toBe(FILTRULE_WILD | FILTRULE_WILD2 | FILTRULE_WILD2_PREFIX);
    expect(w("d/***")).toBe(FILTRULE_WILD | FILTRULE_WILD2 | FILTRULE_WILD3_SUFFIX);
    expect(one("- a/b/c").slashCnt).toBe(2);
    expect(one("- a/b/").slashCnt).toBe(1);
    const m = parseFilterRules([":nwe- .f"])[1]!;
    expect(m.rflags & (FILTRULE_NO_INHERIT | FILTRULE_WORD_SPLIT | FILTRULE_NO_PREFIXES | FILTRULE_EXCLUDE_SELF)).toBe(
      FILTRULE_NO_INHERIT | FILTRULE_WORD_SPLIT | FILTRULE_NO_PREFIXES,
    );
    const c = one(":C");
    expect(c.rflags & (FILTRULE_CVS_IGNORE | FILTRULE_NO_INHERIT | FILTRULE_WORD_SPLIT | FILTRULE_NO_PREFIXES)).toBe(
      FILTRULE_CVS_IGNORE | FILTRULE_NO_INHERIT | FILTRULE_WORD_SPLIT | FILTRULE_NO_PREFIXES,
    );
    expect(c.pattern).toBe(".cvsignore");
  });

  it("adds an exclude of the merge file's own name before an 'e' dir-merge", () => {
    const r = parseFilterRules([":e sub/.f"]);
    expect(r.map((x) => [x.rflags & (FILTRULE_PERDIR_MERGE | FILTRULE_EXCLUDE_SELF), x.pattern])).toEqual([
      [0, ".f"],
      [FILTRULE_PERDIR_MERGE, "sub/.f"],
    ]);
  });

  it("clears with ! and clear, drops a second dir-merge of the same name", () => {
    expect(parseFilterRules(["- a", "!", "- b"]).map((r) => r.pattern)).toEqual(["b"]);
    expect(parseFilterRules(["- a", "clear", "- b"]).map((r) => r.pattern)).toEqual(["b"]);
    expect(parseFilterRules([": .f", ":n sub/.f", ": .g"]).map((r) => r.pattern)).toEqual([".f", ".g"]);
    expect(parseFilterRules([": .f", "!", ":n .f"]).map((r) => ruleText(r))).toEqual([":n .f"]);
  });

  it("reads merge files (lines, CRLF, comments, nested merges, no-prefix and word-split)", () => {
    const files: Record<string, string> = {
      "/m1": "# c\n; c\n- a\r\n+ b\rmerge m2\n\n",
      m2: "- c\n",
      "/words": "x  y\tz\n",
      "/plain": "!x\n+ y\n",
      "/sided": "- x\n+ y\n",
    };
    const readFile = (p: string): string | null => files[p] ?? null;
    expect(parseFilterRules([". /m1"], { readFile }).map(ruleText)).toEqual(["- a", "+ b", "- c"]);
    expect(parseFilterRules([".w- /words"], { readFile }).map(ruleText)).toEqual(["- x", "- y", "- z"]);
    expect(parseFilterRules([".+ /plain"], { readFile }).map(ruleText)).toEqual(["+ !x", "+ + y"]);
    expect(parseFilterRules([".s /sided"], { readFile }).map(ruleText)).toEqual(["-s x", "+s y"]);
    expect(() => parseFilterRules([". /plain"], { readFile })).toThrow("'!' rule has trailing characters: <rule from /plain line 1>");
  });

  it("reports bad rules with rsync's messages", () => {
    expect(errorOf(["foo"]).message).toBe("Unknown filter rule: foo");
    expect(errorOf(["p foo"]).message).toBe("Unknown filter rule: p foo");
    expect(errorOf(["-"]).message).toBe("unexpected end of filter rule: -");
    expect(errorOf(["merge"]).message).toBe("unexpected end of filter rule: merge");
    expect(errorOf(["! x"]).message).toBe("'!' rule has trailing characters: ! x");
    expect(errorOf(["-z foo"]).message).toBe("invalid modifier 'z' at position 1 in filter rule: -z foo");
    expect(errorOf(["P,s x"]).message).toBe("invalid modifier 's' at position 2 in filter rule: P,s x");
    expect(errorOf([":! x"]).message).toBe("invalid modifier '!' at position 1 in filter rule: :! x");
    expect(errorOf(["-e x"]).message).toBe("invalid modifier 'e' at position 1 in filter rule: -e x");
    expect(errorOf(["-CC"]).message).toBe("invalid modifier 'C' at position 2 in filter rule: -CC");
    expect(errorOf(["- x", "-+ y"]).exitCode).toBe(1);
    const missing = errorOf(["merge /nope"], { readFile: () => null });
    expect(missing.message).toBe("krsync: [client] failed to open exclude file /nope: No such file or directory (2)");
    expect(missing.exitCode).toBe(11);
    const inFile = errorOf([". /f"], { readFile: () => "- ok\nbogus\n" });
    expect(inFile.message).toBe("Unknown filter rule: <rule from /f line 2>");
    const sided = errorOf([".s /f"], { readFile: () => "P x\n" });
    expect(sided.message).toBe("specified-side merge file contains specified-side filter: <rule from /f line 1>");
    const deep = errorOf([". /loop"], { readFile: () => ". /loop\n" });
    expect(deep.message).toMatch(/merge-file include depth limit \(32\) exceeded/);
  });

  it("turns plain rules into sender-side ones with --delete-excluded", () => {
    const r = parseFilterRules(["- a", "P b", ": .f", "-C"], { deleteExcluded: true });
    expect(r.map((x) => x.rflags & (FILTRULE_SENDER_SIDE | FILTRULE_RECEIVER_SIDE))).toEqual([
      FILTRULE_SENDER_SIDE,
      FILTRULE_RECEIVER_SIDE,
      0,
      FILTRULE_SENDER_SIDE,
    ]);
  });

  it("round-trips through its printable form (property)", () => {
    const ruleArb = fc
      .record({
        type: fc.constantFrom("-", "+", "H", "S", "P", "R", ":", "."),
        mods: fc.subarray(["/", "!", "p", "x", "s", "r", "n", "w", "e", "-"]),
        pat: fc.stringMatching(/^[a-z*?/\\[\]]{1,8}$/),
      })
      .map(({ type, mods, pat }) => `${type}${mods.join("")} ${pat}`);
    fc.assert(
      fc.property(ruleArb, (text) => {
        let rules: FilterRule[];
        try {
          rules = parseFilterRules([text], { readFile: () => "" });
        } catch {
          return; // rsync refuses that combination too
        }
        for (const r of rules) {
          if (r.pattern === "") continue; // an exclude-self of a name ending in '/'
          const again = parseFilterRules([ruleText(r)]);
          expect(again.map((x) => [x.rflags, x.pattern, x.slashCnt])).toEqual([[r.rflags, r.pattern, r.slashCnt]]);
        }
      }),
      { numRuns: 2000 },
    );
  });
});

// ---------------------------------------------------------------------------- FilterList

function memReader(files: Record<string, string>): (p: string) => string | null {
  return (p) => files[p] ?? null;
}

describe("FilterList", () => {
  it("first match wins; basename vs path vs anchored; dirs only", () => {
    const fl = new FilterList(parseFilterRules(["+ keep.o", "- *.o", "- /top", "- a/b", "- d/", "+ */", "- *"]), "sender");
    expect(fl.check("x/keep.o", false)).toBe("include");
    expect(fl.check("x/y.o", false)).toBe("exclude");
    expect(fl.check("top", false)).toBe("exclude");
    expect(fl.check("x/top", true)).toBe("include"); // "+ */"
    expect(fl.check("x/top", false)).toBe("exclude"); // "- *"
    expect(fl.check("z/a/b", false)).toBe("exclude");
    expect(fl.check("za/b", false)).toBe("exclude"); // "- *" (not "a/b")
    expect(fl.check("q/d", true)).toBe("exclude");
    expect(new FilterList(parseFilterRules(["- d/"]), "sender").check("q/d", false)).toBe("none");
    expect(new FilterList([], "sender").check("a", false)).toBe("none");
  });

  it("*** matches the directory itself and everything below", () => {
    const fl = new FilterList(parseFilterRules(["- d/***"]), "sender");
    expect(fl.check("d", true)).toBe("exclude");
    expect(fl.check("d", false)).toBe("none");
    expect(fl.check("d/x/y", false)).toBe("exclude");
    expect(fl.check("x/d/y", false)).toBe("exclude"); // unanchored "**" tries after every '/'
  });

  it("negated dir-only rule excludes every non-directory", () => {
    const fl = new FilterList(parseFilterRules(["-! */"]), "sender");
    expect(fl.check("a", false)).toBe("exclude");
    expect(fl.check("a", true)).toBe("none");
  });

  it("applies rules by side", () => {
    const rules = parseFilterRules(["H h", "S s", "P p", "R r", "-s ss", "-r rr", "- both", "- s", "- r"]);
    const snd = new FilterList(rules, "sender");
    const rcv = new FilterList(rules, "receiver");
    const d = (fl: FilterList): string[] => ["h", "s", "p", "r", "ss", "rr", "both"].map((n) => fl.check(n, false));
    expect(d(snd)).toEqual(["exclude", "include", "none", "exclude", "exclude", "none", "exclude"]);
    expect(d(rcv)).toEqual(["none", "exclude", "exclude", "include", "none", "exclude", "exclude"]);
    // --delete-excluded: plain rules are the sender's only
    const de = parseFilterRules(["- both", "P p"], { deleteExcluded: true });
    expect(new FilterList(de, "receiver", { deleteExcluded: true }).check("both", false)).toBe("none");
    expect(new FilterList(de, "receiver", { deleteExcluded: true }).check("p", false)).toBe("exclude");
    expect(new FilterList(de, "sender", { deleteExcluded: true }).check("both", false)).toBe("exclude");
    // rules parsed before --delete-excluded was seen are elided the same way
    expect(new FilterList(parseFilterRules(["- both"]), "receiver", { deleteExcluded: true }).check("both", false)).toBe("none");
  });

  it("checkSentRules decides with what the peer was sent", () => {
    const rcv = new FilterList(parseFilterRules(["H h", "P p", "- x"]), "receiver");
    expect(rcv.checkSentRules("h", false)).toBe("exclude");
    expect(rcv.checkSentRules("p", false)).toBe("none");
    expect(rcv.checkSentRules("x", false)).toBe("exclude");
    expect(rcv.trustSender).toBe(false);
    expect(new FilterList(parseFilterRules([": .f"]), "receiver").trustSender).toBe(true);
  });

  it("skips perishable rules inside a directory being deleted", () => {
    const fl = new FilterList(parseFilterRules(["-p *.o", "- *.h"]), "receiver");
    expect(fl.check("a.o", false)).toBe("exclude");
    expect(fl.check("a.o", false, true)).toBe("none");
    expect(fl.check("a.h", false, true)).toBe("exclude");
    // -C's defaults are perishable at protocol 30+
    const cvs = new FilterList(parseFilterRules(["-C"]), "receiver");
    expect(cvs.check("x.o", false)).toBe("exclude");
    expect(cvs.check("x.o", false, true)).toBe("none");
    const old = new FilterList(parseFilterRules(["-C"], { protocol: 29 }), "receiver");
    expect(old.check("x.o", false, true)).toBe("exclude");
  });

  it("matches xattr names only against x rules", () => {
    const fl = new FilterList(parseFilterRules(["-x user.*", "- *"]), "sender");
    expect(fl.checkXattr("user.foo")).toBe(true);
    expect(fl.checkXattr("security.x")).toBe(false);
    expect(fl.check("user.foo", false)).toBe("exclude"); // by "- *"
  });

  it("per-dir merge files: inheritance, local rules first, pop on leave", () => {
    const files = { ".f": "- *.o\n+ keep\n", "a/.f": "+ x.o\n- /y\n", "a/b/.f": "- z\n" };
    const fl = new FilterList(parseFilterRules([": .f"]), "sender", { readMergeFile: memReader(files) });
    fl.enterDir("");
    expect(fl.check("x.o", false)).toBe("exclude");
    fl.enterDir("a");
    expect(fl.check("a/x.o", false)).toBe("include"); // a/.f comes before the inherited rules
    expect(fl.check("a/w.o", false)).toBe("exclude");
    expect(fl.check("a/y", false)).toBe("exclude"); // anchored at a/
    fl.enterDir("a/b");
    expect(fl.check("a/b/y", false)).toBe("none");
    expect(fl.check("a/b/z", false)).toBe("exclude");
    expect(fl.check("a/b/q.o", false)).toBe("exclude");
    fl.leaveDir("a/b");
    expect(fl.check("a/z", false)).toBe("none");
    fl.leaveDir("a");
    expect(fl.check("x.o", false)).toBe("exclude");
    expect(fl.check("y", false)).toBe("none");
    fl.leaveDir("");
    expect(fl.check("x.o", false)).toBe("none");
    expect(() => fl.leaveDir("")).toThrow();
  });

  it("per-dir modifiers n, e, w, -, + and a clear inside a file", () => {
    const files = { ".f": "- *.o\n", "a/.f": "- y\n", "b/.f": "clear\n- q\n", ".w": "- x -_y +_z\n" };
    const r = memReader(files);
    const n = new FilterList(parseFilterRules([":n .f"]), "sender", { readMergeFile: r });
    n.enterDir("");
    n.enterDir("a");
    expect(n.check("a/x.o", false)).toBe("none");
    expect(n.check("a/y", false)).toBe("exclude");
    const e = new FilterList(parseFilterRules([":e .f"]), "sender", { readMergeFile: r });
    e.enterDir("");
    expect(e.check("a/.f", false)).toBe("exclude");
    const c = new FilterList(parseFilterRules([": .f"]), "sender", { readMergeFile: r });
    c.enterDir("");
    c.enterDir("b");
    expect(c.check("b/x.o", false)).toBe("none");
    expect(c.check("b/q", false)).toBe("exclude");
    const w = new FilterList(parseFilterRules([":w- .w"]), "sender", { readMergeFile: r });
    w.enterDir("");
    expect(["x", "-_y", "+_z", "k"].map((p) => w.check(p, false))).toEqual(["exclude", "exclude", "exclude", "none"]);
    const plus = new FilterList(parseFilterRules([":+ .f"]), "sender", { readMergeFile: r });
    plus.enterDir("");
    expect(plus.check("- *.o", false)).toBe("include"); // no prefixes: the whole line is a pattern
  });

  it("a dir-merge name with a path scans the root's ancestors first (-F)", () => {
    const files: Record<string, string> = { "/.rsync-filter": "- top\n", "/home/.rsync-filter": "- /u/src/h\n- a/a\n", ".rsync-filter": "+ top\n" };
    const read = memReader(files);
    const seen: string[] = [];
    const fl = new FilterList(parseFilterRules([": /.rsync-filter"]), "sender", {
      rootDir: "/home/u/src",
      readMergeFile: (p) => {
        seen.push(p);
        return read(p);
      },
    });
    fl.enterDir("");
    expect(seen).toEqual(["/.rsync-filter", "/home/.rsync-filter", "/home/u/.rsync-filter", ".rsync-filter"]);
    expect(fl.check("top", false)).toBe("include"); // the root's own file comes first
    expect(fl.check("h", false)).toBe("exclude"); // anchored in /home/.rsync-filter
    expect(fl.check("x/h", false)).toBe("none");
    expect(fl.check("a/a", false)).toBe("exclude");
    fl.enterDir("x");
    expect(seen.at(-1)).toBe("x/.rsync-filter");
  });

  it("the '/' modifier matches the absolute path", () => {
    const fl = new FilterList(parseFilterRules(["-/ /r/t/a", "-/ /r/*/b/c"]), "sender", { rootDir: "/r/t" });
    expect(fl.check("a", false)).toBe("exclude");
    expect(fl.check("b/c", false)).toBe("exclude");
    expect(fl.check("x/a", false)).toBe("none");
  });

  it("changeDir (depth-based) gives the same decisions as enter/leave", () => {
    const files = { ".f": "- *.o\n", "a/.f": "+ x.o\n", "a/b/.f": "- z\n", "c/.f": "- x.o\n" };
    const mk = (): FilterList => new FilterList(parseFilterRules([": .f"]), "receiver", { readMergeFile: memReader(files) });
    const a = mk();
    const b = mk();
    const probe = (fl: FilterList, dir: string): string[] =>
      ["x.o", "z", "q"].map((n) => fl.check(dir ? `${dir}/${n}` : n, false));
    a.enterDir("");
    b.changeDir("", 0);
    expect(probe(b, "")).toEqual(probe(a, ""));
    a.enterDir("a");
    b.changeDir("a", 1);
    expect(probe(b, "a")).toEqual(probe(a, "a"));
    a.enterDir("a/b");
    b.changeDir("a/b", 2);
    expect(probe(b, "a/b")).toEqual(probe(a, "a/b"));
    a.leaveDir("a/b");
    a.leaveDir("a");
    a.enterDir("c");
    b.changeDir("c", 1);
    expect(probe(b, "c")).toEqual(probe(a, "c"));
    b.changeDir(null);
    expect(b.check("x.o", false)).toBe("none");
  });

  it("reports a bad rule in a per-dir file as rsync does", () => {
    const fl = new FilterList(parseFilterRules([": .f"]), "sender", { rootDir: "/t", readMergeFile: memReader({ ".f": "- a\nbad\n" }) });
    expect(() => fl.enterDir("")).toThrow("Unknown filter rule: <rule from /t/.f line 2>");
  });

  it("the -C option adds :C and -C where rsync does", () => {
    const files = { ".cvsignore": "*.x\n", "/h/.cvsignore": "home.y\n" };
    for (const side of ["sender", "receiver"] as const) {
      const fl = new FilterList([], side, { cvsExclude: true, rootDir: "/r", readMergeFile: memReader(files), home: "/h", cvsIgnore: "env.z" });
      fl.enterDir("");
      expect(["a.x", "b.o", "home.y", "env.z", "q"].map((n) => fl.check(n, false))).toEqual([
        "exclude",
        "exclude",
        "exclude",
        "exclude",
        "none",
      ]);
    }
  });
});

// ---------------------------------------------------------------------------------- wire

describe("wireFilterRules", () => {
  const rules = parseFilterRules(["- a", "+ b/", "H h", "P p", "- - odd", "-! n", ": .f"]);

  it("sends a receiver's rules with full prefixes at 29+", () => {
    expect(wireFilterRules(rules, 31, { role: "receiver" })).toEqual(["- a", "+ b/", "-s h", "- - odd", "-! n", ": .f"]);
    expect(wireFilterRules(rules, 31, { role: "sender", deleteMode: true })).toEqual(["- a", "+ b/", "-r p", "- - odd", "-! n", ": .f"]);
  });

  it("sends nothing from a sender whose receiver does not want the list", () => {
    expect(wireFilterRules(rules, 31, { role: "sender" })).toBeNull();
    expect(wireFilterRules(rules, 31, { role: "sender", pruneEmptyDirs: true })).not.toBeNull();
    expect(wireFilterRules(parseFilterRules(["- a"]), 28, { role: "sender", deleteMode: true, deleteExcluded: true })).toBeNull();
    expect(wireFilterRules([], 30, { role: "receiver" })).toEqual([]);
  });

  it("uses the old one-character prefixes below 29 and refuses what they cannot say", () => {
    const old = parseFilterRules(["- a", "+ b/", "H h", "- - odd"]);
    expect(wireFilterRules(old, 28, { role: "receiver" })).toEqual(["a", "+ b/", "h", "- - odd"]);
    for (const r of [": .f", "-! n", "-/ x", "-x y"]) {
      expect(() => wireFilterRules(parseFilterRules([r]), 28, { role: "receiver" })).toThrow(
        "filter rules are too modern for remote rsync.",
      );
    }
    // perishable: dropped by a receiver, refused by a sender below 30
    expect(wireFilterRules(parseFilterRules(["-p x"]), 29, { role: "receiver" })).toEqual(["- x"]);
    expect(() => wireFilterRules(parseFilterRules(["-p x"]), 29, { role: "sender", deleteMode: true })).toThrow(/too modern/);
    expect(() => wireFilterRules(parseFilterRules(["-p x"]), 29, { role: "sender" })).toThrow(/too modern/);
  });

  it("expands -C for a sender and below 29, sends '-C ' from a receiver at 29+", () => {
    const c = parseFilterRules(["-C"], { protocol: 29 });
    expect(wireFilterRules(c, 31, { role: "receiver" })).toEqual(["-C "]);
    const sent = wireFilterRules(c, 31, { role: "sender", deleteMode: true })!;
    expect(sent[0]).toBe("- RCS");
    expect(sent).toContain("- .git/");
    expect(wireFilterRules(c, 28, { role: "receiver" })![0]).toBe("RCS");
    expect(wireFilterRules([], 31, { role: "sender", deleteMode: true, cvsExclude: true })!.slice(0, 2)).toEqual([":C .cvsignore", "-p RCS"]);
    expect(wireFilterRules([], 31, { role: "receiver", cvsExclude: true })).toEqual([]);
  });

  it("keeps a merged rule's bytes exactly", () => {
    const raw = Uint8Array.from([0x2d, 0x20, 0x61, 0xff, 0x0a]); // "- a\xff"
    const rules = parseFilterRules([". /raw"], { readFile: () => raw });
    expect(wireFilterRuleBytes(rules, 31, { role: "receiver" })).toEqual([Uint8Array.from([0x2d, 0x20, 0x61, 0xff])]);
    expect(wireFilterRules(parseFilterRules(["- café"]), 31, { role: "receiver" })).toEqual(["- café"]);
    expect(wireFilterRuleBytes(parseFilterRules(["- é"]), 31, { role: "receiver" })).toEqual([Uint8Array.from([0x2d, 0x20, 0xc3, 0xa9])]);
  });

  it("marks rules with s/r under --delete-excluded", () => {
    const d = parseFilterRules(["- a", "P p", ":- .e", ": .f"], { deleteExcluded: true });
    // a no-prefix dir-merge can only hold plain rules: it goes to the sender alone
    expect(wireFilterRules(d, 31, { role: "receiver", deleteMode: true, deleteExcluded: true })).toEqual(["-s a", ":- .e", ": .f"]);
    expect(wireFilterRules(d, 31, { role: "sender", deleteMode: true, deleteExcluded: true })).toEqual(["-r p", ": .f"]);
  });
});
