// A pull receives names chosen by the remote: only names the command line asked for are
// accepted (exclude.c add_implied_include, flist.c "rejecting unrequested file-list name").
// "host:dir/" asks for anything below; "host:name" for that name (a glob allowed) and what is
// under it; with -R, each directory on the way to the path as well.
import { wildmatch } from "../protocol/filter-wildmatch.js";
import { ProtocolError } from "../protocol/wire.js";

const GLOB = /[*?[]/;

type Check = (name: string) => boolean;

function componentMatch(pattern: string, part: string): boolean {
  return GLOB.test(pattern) ? wildmatch(pattern, part) : pattern === part;
}

/** Does `name` lie on the way to or below the path given as components? */
function underOrAbove(parts: string[], name: string): boolean {
  const got = name.split("/");
  const n = Math.min(parts.length, got.length);
  for (let i = 0; i < n; i++) if (!componentMatch(parts[i]!, got[i]!)) return false;
  return true;
}

function checkFor(source: string, relative: boolean): Check | "all" {
  let p = source;
  if (relative) {
    const dot = p.indexOf("/./");
    p = dot >= 0 ? p.slice(dot + 3) : p.replace(/^\/+/, "");
  }
  if (p === "" || p === "." || p.endsWith("/") || p.endsWith("/.")) {
    if (!relative) return "all";
    p = p.replace(/\/\.?$/, "").replace(/\/+$/, "");
    if (p === "" || p === ".") return "all";
  }
  const parts = p.split("/").filter((x) => x !== "" && x !== ".");
  if (parts.length === 0) return "all";
  if (relative) return (name) => underOrAbove(parts, name);
  const base = parts[parts.length - 1]!;
  return (name) => componentMatch(base, name.split("/")[0]!);
}

/** Throws (exit 4, as rsync) at the first received name no source asked for. */
export function checkRequestedNames(names: Iterable<string>, sources: readonly string[], relative: boolean): void {
  const checks: Check[] = [];
  for (const s of sources) {
    const c = checkFor(s, relative);
    if (c === "all") return;
    checks.push(c);
  }
  for (const name of names) {
    if (!checks.some((c) => c(name))) {
      throw new ProtocolError(`rejecting unrequested file-list name: ${name}`, 4);
    }
  }
}
