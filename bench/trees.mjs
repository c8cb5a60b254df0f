// Deterministic benchmark trees and the changes made to them, so figures compare across runs.
//
// A tree: N files of log-uniform sizes (100 B .. 8 MB before scaling) scaled to a total, in a
// two-level directory fan-out; a third of the files are text (compressible), the rest
// pseudo-random; every file and directory gets a fixed past mtime, so any later change is seen
// by rsync's size+mtime quick check. Mutations (edits, renames, touch) are applied to a
// hard-linked clone of the base tree; a file is copied before it is changed, so the base is
// never touched. Trees are cached under the work dir, keyed by their parameters; a JSON marker
// next to a tree says it is complete (an interrupted generation is redone).

import {
  closeSync,
  copyFileSync,
  existsSync,
  fstatSync,
  linkSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";

/** Base mtime of generated files (file i gets BASE_MTIME + i); directories get BASE_MTIME. */
export const BASE_MTIME = 1_600_000_000;
/** mtime given to files a mutation changes (plus the file's rank in the mutation). */
export const MUTATED_MTIME = 1_700_000_000;

// ---- a small seeded generator (xoshiro128**), the same sequence on every machine ----

export class Rng {
  constructor(seed) {
    // splitmix32 expands the seed into the four state words.
    let x = seed >>> 0;
    const next = () => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s = new Uint32Array([next(), next(), next(), next()]);
  }

  u32() {
    const s = this.s;
    const r = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return r;
  }

  /** Uniform in [0, 1). */
  float() {
    return (this.u32() * 2 ** 21 + (this.u32() >>> 11)) / 2 ** 53;
  }

  /** Uniform integer in [0, n). */
  int(n) {
    return Math.floor(this.float() * n);
  }

  /** Fisher-Yates, in place. */
  shuffle(a) {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = a[i];
      a[i] = a[j];
      a[j] = t;
    }
    return a;
  }

  /** Fill with pseudo-random bytes: a xorshift stream seeded from this generator (fast). */
  fill(buf) {
    const words = new Uint32Array(buf.buffer, buf.byteOffset, buf.byteLength >>> 2);
    let a = this.u32() | 1;
    let b = this.u32() | 1;
    for (let i = 0; i < words.length; i++) {
      // xorshift64-style pair of 32-bit lanes
      let t = a ^ (a << 11);
      a = b;
      b = b ^ (b >>> 19) ^ (t ^ (t >>> 8));
      words[i] = b;
    }
    for (let i = words.length * 4; i < buf.byteLength; i++) buf[i] = this.u32() & 0xff;
    return buf;
  }
}

function rotl(x, k) {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

// ---- content ----

const PHRASE = Buffer.from(
  "the quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs\n",
);
let textCache = null;
/** 1 MiB + one phrase of repeated text, so any slice of up to 1 MiB starts anywhere in it. */
function textBlock() {
  if (textCache) return textCache;
  const n = (1 << 20) + PHRASE.length;
  textCache = Buffer.alloc(n);
  for (let o = 0; o < n; o += PHRASE.length) PHRASE.copy(textCache, o, 0, Math.min(PHRASE.length, n - o));
  return textCache;
}

/** Write `size` bytes of text (starting `off` into the pattern) or random bytes to an open fd. */
function writeContent(fd, size, text, off, rng) {
  const CHUNK = 1 << 20;
  if (text) {
    const block = textBlock();
    let start = off % PHRASE.length;
    for (let done = 0; done < size; ) {
      const n = Math.min(CHUNK, size - done);
      writeAll(fd, block.subarray(start, start + n));
      done += n;
      start = (start + n) % PHRASE.length;
    }
    return;
  }
  const buf = new Uint8Array(Math.min(CHUNK, Math.max(size, 4)));
  for (let done = 0; done < size; ) {
    const n = Math.min(buf.length, size - done);
    rng.fill(buf);
    writeAll(fd, buf.subarray(0, n));
    done += n;
  }
}

function writeAll(fd, data) {
  for (let o = 0; o < data.length; ) o += writeSync(fd, data, o, data.length - o);
}

// ---- trees ----

/** Sizes: 10^U(2, 6.9) bytes, scaled so they add up to totalMB·10^6 (each at least 1). */
export function treeSizes(files, totalMB, rng) {
  const raw = Array.from({ length: files }, () => 10 ** (2 + rng.float() * 4.9));
  const sum = raw.reduce((a, b) => a + b, 0);
  const scale = (totalMB * 1e6) / sum;
  return raw.map((s) => Math.max(1, Math.floor(s * scale)));
}

/** Relative path of file i: 97 top dirs, 13 subdirs each. */
export function treePath(i) {
  const d = String(i % 97).padStart(2, "0");
  const s = String(Math.floor(i / 97) % 13).padStart(2, "0");
  return `d${d}/s${s}/f${String(i).padStart(6, "0")}.bin`;
}

/** Generate a tree into `dir` (which must not exist yet). */
export function generateTree(dir, { files, totalMB, seed = 1 }) {
  const rng = new Rng(seed);
  const sizes = treeSizes(files, totalMB, rng);
  mkdirSync(dir, { recursive: true });
  const made = new Set();
  for (let i = 0; i < files; i++) {
    const rel = treePath(i);
    const sub = join(dir, rel.slice(0, rel.lastIndexOf("/")));
    if (!made.has(sub)) {
      mkdirSync(sub, { recursive: true });
      made.add(sub);
    }
    const path = join(dir, rel);
    const fd = openSync(path, "w");
    try {
      writeContent(fd, sizes[i], i % 3 === 0, rng.int(PHRASE.length), rng);
    } finally {
      closeSync(fd);
    }
    utimesSync(path, BASE_MTIME + i, BASE_MTIME + i);
  }
  fixDirTimes(dir);
  return { files, bytes: sizes.reduce((a, b) => a + b, 0) };
}

/** Every directory (the root too) back to BASE_MTIME, deepest first. */
export function fixDirTimes(dir) {
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(join(d, e.name));
    utimesSync(d, BASE_MTIME, BASE_MTIME);
  };
  walk(dir);
}

/** Regular files of a tree, relative paths, sorted. */
export function listFiles(dir) {
  const out = [];
  const walk = (d, rel) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(join(d, e.name), r);
      else if (e.isFile()) out.push(r);
    }
  };
  walk(dir, "");
  return out.sort();
}

/** A clone of a tree whose files are hard links to the original's (same mtimes). */
export function linkClone(from, to) {
  const walk = (s, d) => {
    mkdirSync(d, { recursive: true });
    for (const e of readdirSync(s, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(s, e.name), join(d, e.name));
      else linkSync(join(s, e.name), join(d, e.name));
    }
  };
  walk(from, to);
  fixDirTimes(to);
}

/** Give `path` its own inode (copy, then rename over the link), keeping its mtime. */
function unshare(path) {
  const st = statSync(path);
  if (st.nlink <= 1) return;
  const tmp = `${path}.unshare`;
  copyFileSync(path, tmp);
  utimesSync(tmp, st.atime, st.mtime);
  renameSync(tmp, path);
}

export const MUTATIONS = ["edits", "renames", "touch"];

/**
 * Apply a deterministic change to a tree (in a hard-linked clone: changed files are unshared
 * first). Returns a summary.
 *   edits   - ten 4 KiB random overwrites in each of 50 files over 200 kB, 2 KiB appended to 20 more
 *   renames - 200 files moved (renamed) into moved/, 100 others deleted
 *   touch   - 500 files get mtime + 3600 s, content unchanged
 */
export function mutateTree(dir, kind, seed = 7) {
  const rng = new Rng(seed);
  const files = rng.shuffle(listFiles(dir));
  const abs = (r) => join(dir, r);
  let changed = 0;
  if (kind === "edits") {
    const big = files.filter((f) => statSync(abs(f)).size > 200_000).slice(0, 50);
    big.forEach((f, k) => {
      unshare(abs(f));
      const fd = openSync(abs(f), "r+");
      try {
        const size = fstatSync(fd).size;
        const patch = new Uint8Array(4096);
        for (let j = 0; j < 10; j++) {
          rng.fill(patch);
          writeSync(fd, patch, 0, patch.length, rng.int(size - patch.length));
        }
      } finally {
        closeSync(fd);
      }
      utimesSync(abs(f), MUTATED_MTIME + k, MUTATED_MTIME + k);
    });
    const appended = files.filter((f) => !big.includes(f)).slice(-20);
    appended.forEach((f, k) => {
      unshare(abs(f));
      const fd = openSync(abs(f), "a");
      try {
        writeAll(fd, rng.fill(new Uint8Array(2048)));
      } finally {
        closeSync(fd);
      }
      utimesSync(abs(f), MUTATED_MTIME + 100 + k, MUTATED_MTIME + 100 + k);
    });
    changed = big.length + appended.length;
  } else if (kind === "renames") {
    mkdirSync(abs("moved"), { recursive: true });
    files.slice(0, 200).forEach((f, i) => {
      const base = f.slice(f.lastIndexOf("/") + 1);
      renameSync(abs(f), abs(`moved/r${String(i).padStart(4, "0")}-${base}`));
    });
    for (const f of files.slice(200, 300)) unlinkSync(abs(f));
    changed = Math.min(files.length, 300);
  } else if (kind === "touch") {
    for (const f of files.slice(0, 500)) {
      unshare(abs(f));
      const st = statSync(abs(f));
      const t = Math.floor(st.mtimeMs / 1000) + 3600;
      utimesSync(abs(f), t, t);
    }
    changed = Math.min(files.length, 500);
  } else {
    throw new Error(`unknown mutation ${kind} (one of ${MUTATIONS.join(", ")})`);
  }
  fixDirTimes(dir);
  return { kind, changed };
}

// ---- the single big file ----

export const BIG_NAME = "big.bin";

/** A directory holding one pseudo-random file of `mb`·10^6 bytes with a fixed mtime. */
export function generateBigFile(dir, { mb, seed = 3 }) {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, BIG_NAME);
  const fd = openSync(path, "w");
  try {
    writeContent(fd, Math.round(mb * 1e6), false, 0, new Rng(seed));
  } finally {
    closeSync(fd);
  }
  utimesSync(path, BASE_MTIME, BASE_MTIME);
  utimesSync(dir, BASE_MTIME, BASE_MTIME);
}

/**
 * Copy of a big-file directory with `count` random `size`-byte overwrites (sorted offsets, not
 * overlapping) and a new mtime. Returns the ranges, so a copy can be put back cheaply.
 */
export function mutateBigFile(fromDir, toDir, { count = 100, size = 4096, seed = 11 }) {
  mkdirSync(toDir, { recursive: true });
  const path = join(toDir, BIG_NAME);
  copyFileSync(join(fromDir, BIG_NAME), path);
  const total = statSync(path).size;
  const rng = new Rng(seed);
  const slots = Math.floor(total / size);
  const picked = new Set();
  while (picked.size < Math.min(count, slots)) picked.add(rng.int(slots));
  const ranges = [...picked].sort((a, b) => a - b).map((s) => [s * size, size]);
  const fd = openSync(path, "r+");
  try {
    const patch = new Uint8Array(size);
    for (const [off, len] of ranges) writeSync(fd, rng.fill(patch), 0, len, off);
  } finally {
    closeSync(fd);
  }
  utimesSync(path, MUTATED_MTIME, MUTATED_MTIME);
  utimesSync(toDir, BASE_MTIME, BASE_MTIME);
  return ranges;
}

/**
 * Put a big-file directory back to the base state: if it holds just the file at the right size,
 * copy the base's bytes over the given ranges (in place) and restore the mtime; else copy anew.
 */
export function restoreBigFile(baseDir, dir, ranges) {
  const path = join(dir, BIG_NAME);
  const basePath = join(baseDir, BIG_NAME);
  const want = statSync(basePath);
  let ok = false;
  try {
    ok = readdirSync(dir).length === 1 && statSync(path).size === want.size;
  } catch {
    ok = false;
  }
  if (!ok) {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    copyFileSync(basePath, path);
  } else {
    const src = openSync(basePath, "r");
    const dst = openSync(path, "r+");
    try {
      const buf = new Uint8Array(Math.max(1, ...ranges.map((r) => r[1])));
      for (const [off, len] of ranges) {
        const n = readSync(src, buf, 0, len, off);
        writeSync(dst, buf, 0, n, off);
      }
    } finally {
      closeSync(src);
      closeSync(dst);
    }
  }
  utimesSync(path, want.atime, want.mtime);
  utimesSync(dir, BASE_MTIME, BASE_MTIME);
}

// ---- the cache ----

/**
 * Return `dir`, building it with `build(dir)` unless a marker from a completed build with the
 * same parameters exists. The marker (dir + ".json") holds the parameters and build's result.
 */
export function cached(dir, params, build, log = () => {}) {
  const marker = `${dir}.json`;
  if (existsSync(marker) && existsSync(dir)) {
    try {
      const m = JSON.parse(readFileSync(marker, "utf8"));
      if (JSON.stringify(m.params) === JSON.stringify(params)) return m.result;
    } catch {
      // rebuild
    }
  }
  rmSync(marker, { force: true });
  rmSync(dir, { recursive: true, force: true });
  log(`generating ${dir}`);
  const t0 = performance.now();
  const result = build(dir) ?? null;
  writeFileSync(marker, JSON.stringify({ params, result }, null, 1));
  log(`  done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return result;
}
