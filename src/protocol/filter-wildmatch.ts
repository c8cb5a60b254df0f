// rsync's shell-style matcher (lib/wildmatch.c): `*` never crosses '/', `**` does, `?` and
// `[...]` match one byte other than '/', `\` quotes the next byte, `[!...]`/`[^...]` negate,
// ranges and the POSIX classes ([:alpha:] ...) use the C locale. Patterns and texts here are
// byte strings: one char per byte (UTF-8 names go through `byteString` first), so `?` matches
// one byte exactly as rsync does.

const TRUE = 1;
const FALSE = 0;
const ABORT_ALL = -1;
const ABORT_TO_STARSTAR = -2;

const SLASH = 0x2f;
const STAR = 0x2a;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8");

/** A JS string as its UTF-8 bytes, one char per byte (ASCII strings come back unchanged). */
export function byteString(s: string): string {
  // eslint-disable-next-line no-control-regex
  if (/^[\x00-\x7f]*$/.test(s)) return s;
  return bytesToByteString(encoder.encode(s));
}

/** Raw bytes as a byte string. */
export function bytesToByteString(b: Uint8Array): string {
  let out = "";
  for (let i = 0; i < b.length; i += 8192) out += String.fromCharCode(...b.subarray(i, i + 8192));
  return out;
}

/** A byte string back to bytes. */
export function byteStringToBytes(s: string): Uint8Array {
  const b = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i) & 0xff;
  return b;
}

/** A byte string decoded as UTF-8 (what a name or message shows). */
export function byteStringToText(s: string): string {
  // eslint-disable-next-line no-control-regex
  if (/^[\x00-\x7f]*$/.test(s)) return s;
  return decoder.decode(byteStringToBytes(s));
}

// ctype in the C locale (wildmatch.c ISALPHA ... with ISASCII).
const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;
const isUpper = (c: number): boolean => c >= 0x41 && c <= 0x5a;
const isLower = (c: number): boolean => c >= 0x61 && c <= 0x7a;
const isAlpha = (c: number): boolean => isUpper(c) || isLower(c);
const isAlnum = (c: number): boolean => isAlpha(c) || isDigit(c);
const isGraph = (c: number): boolean => c >= 0x21 && c <= 0x7e;
const isPrint = (c: number): boolean => c >= 0x20 && c <= 0x7e;
const isSpace = (c: number): boolean => c === 0x20 || (c >= 0x09 && c <= 0x0d);
const isCntrl = (c: number): boolean => c < 0x20 || c === 0x7f;

const CLASSES: ReadonlyMap<string, (c: number) => boolean> = new Map([
  ["alnum", isAlnum],
  ["alpha", isAlpha],
  ["blank", (c: number) => c === 0x20 || c === 0x09],
  ["cntrl", isCntrl],
  ["digit", isDigit],
  ["graph", isGraph],
  ["lower", isLower],
  ["print", isPrint],
  ["punct", (c: number) => isGraph(c) && !isAlnum(c)],
  ["space", isSpace],
  ["upper", isUpper],
  ["xdigit", (c: number) => isDigit(c) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66)],
]);

/** wildmatch.c dowild over one (already joined) text; 0 stands for the end of either string. */
const at = (s: string, i: number): number => (i < s.length ? s.charCodeAt(i) : 0);

function dowild(p: string, pi: number, t: string, ti: number): number {
  for (; pi < p.length; ti++, pi++) {
    let pCh = p.charCodeAt(pi);
    if (ti >= t.length && pCh !== STAR) return ABORT_ALL;
    const tCh = ti < t.length ? t.charCodeAt(ti) : 0;
    if (pCh === 0x5c) {
      // '\': the next pattern byte is literal (a trailing '\' matches nothing)
      pCh = at(p, ++pi);
      if (tCh !== pCh) return FALSE;
      continue;
    }
    if (pCh === 0x3f) {
      // '?': any byte but '/'
      if (tCh === SLASH) return FALSE;
      continue;
    }
    if (pCh === STAR) {
      let special: boolean;
      if (at(p, ++pi) === STAR) {
        while (at(p, ++pi) === STAR) {}
        special = true;
      } else special = false;
      if (pi >= p.length) {
        // A trailing "**" matches everything, a trailing "*" only what has no more '/'.
        if (!special && t.indexOf("/", ti) >= 0) return FALSE;
        return TRUE;
      }
      for (; ti < t.length; ti++) {
        const matched = dowild(p, pi, t, ti);
        if (matched !== FALSE) {
          if (!special || matched !== ABORT_TO_STARSTAR) return matched;
        } else if (!special && t.charCodeAt(ti) === SLASH) return ABORT_TO_STARSTAR;
      }
      return ABORT_ALL;
    }
    if (pCh === 0x5b) {
      // '[' ... ']'
      pCh = at(p, ++pi);
      if (pCh === 0x5e) pCh = 0x21; // '^' is '!'
      const negated = pCh === 0x21;
      if (negated) pCh = at(p, ++pi);
      let prev = 0;
      let matched = false;
      for (;;) {
        if (pCh === 0) return ABORT_ALL;
        if (pCh === 0x5c) {
          pCh = at(p, ++pi);
          if (pCh === 0) return ABORT_ALL;
          if (tCh === pCh) matched = true;
        } else if (pCh === 0x2d && prev !== 0 && at(p, pi + 1) !== 0 && at(p, pi + 1) !== 0x5d) {
          // a range prev-next
          pCh = at(p, ++pi);
          if (pCh === 0x5c) {
            pCh = at(p, ++pi);
            if (pCh === 0) return ABORT_ALL;
          }
          if (tCh <= pCh && tCh >= prev) matched = true;
          pCh = 0; // the byte after a range starts afresh
        } else if (pCh === 0x5b && at(p, pi + 1) === 0x3a) {
          // "[:class:]"
          const s = pi + 2;
          pi = s;
          while (pi < p.length && p.charCodeAt(pi) !== 0x5d) pi++;
          if (pi >= p.length) return ABORT_ALL;
          const len = pi - s - 1;
          if (len < 0 || p.charCodeAt(pi - 1) !== 0x3a) {
            // no ":]": the '[' is an ordinary member
            pi = s - 2;
            pCh = 0x5b;
            if (tCh === pCh) matched = true;
          } else {
            const test = CLASSES.get(p.substring(s, s + len));
            if (!test) return ABORT_ALL; // malformed [:class:]
            if (test(tCh)) matched = true;
            pCh = 0;
          }
        } else if (tCh === pCh) matched = true;
        prev = pCh;
        pCh = at(p, ++pi);
        if (pCh === 0x5d) break;
      }
      if (matched === negated || tCh === SLASH) return FALSE;
      continue;
    }
    if (tCh !== pCh) return FALSE;
  }
  return ti >= t.length ? TRUE : FALSE;
}

/** wildmatch(): the whole text against the pattern. */
export function wildmatch(pattern: string, text: string): boolean {
  return dowild(pattern, 0, text, 0) === TRUE;
}

/** Start of the last `count` '/'-separated elements of `t`, or -1 (wildmatch.c trailing_N_elements). */
function trailingElements(t: string, count: number): number {
  for (let i = t.length - 1; i >= 0; i--) {
    if (t.charCodeAt(i) === SLASH && --count === 0) return i + 1;
  }
  return count === 1 ? 0 : -1;
}

/**
 * wildmatch_array over the virtually joined `texts`: where = 0 matches the whole, where > 0 only
 * the trailing `where` elements, where < 0 at the start or after any '/'.
 */
export function wildmatchArray(pattern: string, texts: readonly string[], where: number): boolean {
  const t = texts.length === 1 ? texts[0]! : texts.join("");
  let ti = 0;
  if (where > 0) {
    ti = trailingElements(t, where);
    if (ti < 0) return false;
  }
  let matched = dowild(pattern, 0, t, ti);
  if (matched !== TRUE && where < 0 && matched !== ABORT_ALL) {
    for (;;) {
      if (ti >= t.length) return false;
      if (t.charCodeAt(ti++) === SLASH) {
        matched = dowild(pattern, 0, t, ti);
        if (matched !== FALSE && matched !== ABORT_TO_STARSTAR) break;
      }
    }
  }
  return matched === TRUE;
}

/** litmatch_array: a literal string against the joined texts (where >= 0 as above). */
export function litmatchArray(s: string, texts: readonly string[], where: number): boolean {
  const t = texts.join("");
  let ti = 0;
  if (where > 0) {
    ti = trailingElements(t, where);
    if (ti < 0) return false;
  }
  return t.length - ti === s.length && t.startsWith(s, ti);
}
