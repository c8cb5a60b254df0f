// File-list order (flist.c f_name_cmp, fsort, flist_sort_and_clean).
//
// Both sides sort each list with a stable sort; ndx values are positions in the sorted list
// (plus ndx_start). The receiver then clears duplicate names in place: a cleared slot keeps its
// position (so every later ndx is unchanged) but is inactive (null here).
//
// The order (names compared as bytes, unsigned):
// - protocol < 29: plain byte order of the whole "dir/name".
// - protocol >= 29: every byte carries a class besides its value, and a differing class decides
//   before a differing byte: bytes of directory parts (the dirname, its '/', a directory's own
//   name and an implied trailing '/') are "path" bytes and sort after "item" bytes (a
//   non-directory's name). So within a directory the files come first, then the
//   subdirectories, each subdirectory directly followed by its contents; and a directory named
//   "." stands for its parent (the transfer root "." sorts first of all).
import { FLAG_CONTENT_DIR, FLAG_IMPLIED_DIR, FLAG_TOP_DIR, isDir, type FileEntry } from "./fileentry.js";
import { encodeUtf8 } from "./flist-names.js";

const PATH = 0x100; // class bit of a path byte in a sort key

/** The sort key of a name: one UTF-16 unit per byte, (class << 8) | byte; compared as strings. */
export function fNameKey(name: string, dir: boolean, protocol: number): string {
  const b = encodeUtf8(name);
  const units: number[] = [];
  if (protocol < 29) {
    for (const x of b) units.push(x);
  } else {
    const slash = b.lastIndexOf(0x2f);
    for (let i = 0; i <= slash; i++) units.push(PATH | b[i]!);
    const base = b.subarray(slash + 1);
    if (!dir) {
      for (const x of base) units.push(x);
    } else if (!(base.length === 1 && base[0] === 0x2e)) {
      for (const x of base) units.push(PATH | x);
      units.push(PATH | 0x2f);
    }
  }
  let s = "";
  for (let i = 0; i < units.length; i += 4096) s += String.fromCharCode(...units.slice(i, i + 4096));
  return s;
}

const cmpKeys = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** flist.c f_name_cmp: <0, 0 or >0. */
export function fNameCmp(a: FileEntry, b: FileEntry, protocol: number): number {
  return cmpKeys(fNameKey(a.name, isDir(a.mode), protocol), fNameKey(b.name, isDir(b.mode), protocol));
}

/** flist.c fsort: a stable sort into file-list order (what the sender's ndx refer to). */
export function sortFileList<T extends FileEntry>(entries: readonly T[], protocol: number): T[] {
  const keyed = entries.map((e, i) => ({ e, i, k: fNameKey(e.name, isDir(e.mode), protocol) }));
  keyed.sort((x, y) => cmpKeys(x.k, y.k) || x.i - y.i);
  return keyed.map((x) => x.e);
}

export interface SortedFileList {
  /** Sorted; null where a duplicate was cleared. Index + ndxStart = the entry's ndx. */
  files: (FileEntry | null)[];
  /** First and last active positions (high = -1 when empty), as flist->low / flist->high. */
  low: number;
  high: number;
}

/**
 * flist.c flist_sort_and_clean as the receiver runs it: sort, then clear duplicate names.
 * Of two equal names the first is kept, except that a directory wins over a non-directory (it
 * may have contents in the list); of two directories the kept one takes the other's
 * FLAG_TOP_DIR / FLAG_CONTENT_DIR and loses FLAG_IMPLIED_DIR unless both had it. From protocol
 * 29 a directory and a non-directory of one name do not sort together, and are still matched.
 * With `stripRoot` (-R) leading '/'s are removed from names after sorting. Entries whose flags
 * or name change are replaced by copies; the input is not modified.
 */
export function sortAndCleanFileList(
  entries: readonly FileEntry[],
  protocol: number,
  opts: { stripRoot?: boolean } = {},
): SortedFileList {
  const n = entries.length;
  if (n === 0) return { files: [], low: 0, high: -1 };
  const keyed = entries.map((e, i) => ({ e, i, k: fNameKey(e.name, isDir(e.mode), protocol) }));
  keyed.sort((x, y) => cmpKeys(x.k, y.k) || x.i - y.i);
  const files: (FileEntry | null)[] = keyed.map((x) => x.e);
  const keys = keyed.map((x) => x.k);

  // Active non-directories by name (protocol >= 29: where a later dir of the same name looks).
  const nonDirs = new Map<string, number>();
  let low = 0;
  let prev = 0;
  if (protocol >= 29 && !isDir(files[0]!.mode)) nonDirs.set(files[0]!.name, 0);
  for (let i = 1; i < n; i++) {
    const file = files[i]!;
    let j = -1;
    if (keys[i] === keys[prev]) j = prev;
    else if (protocol >= 29 && isDir(file.mode)) j = nonDirs.get(file.name) ?? -1;
    if (j < 0) {
      prev = i;
      if (protocol >= 29 && !isDir(file.mode)) nonDirs.set(file.name, i);
      continue;
    }
    let keep: number;
    let drop: number;
    if (isDir(file.mode)) {
      const fp = files[j]!;
      if (!isDir(fp.mode)) {
        keep = i;
        drop = j;
      } else {
        let f = fp.flags | (file.flags & (FLAG_TOP_DIR | FLAG_CONTENT_DIR));
        f &= file.flags | ~FLAG_IMPLIED_DIR;
        if (f !== fp.flags) files[j] = { ...fp, flags: f };
        keep = j;
        drop = i;
      }
    } else {
      keep = j;
      drop = i;
    }
    const dropped = files[drop]!;
    if (!isDir(dropped.mode) && nonDirs.get(dropped.name) === drop) nonDirs.delete(dropped.name);
    files[drop] = null;
    if (keep === i) {
      if (low === drop) {
        let k = drop + 1;
        while (k < i && files[k] === null) k++;
        low = k;
      }
      prev = i;
    }
  }
  const high = prev;

  if (opts.stripRoot) {
    for (let i = low; i <= high; i++) {
      const f = files[i];
      if (f && f.name.startsWith("/")) {
        const stripped = f.name.replace(/^\/+/, "");
        files[i] = { ...f, name: stripped === "" ? "." : stripped };
      }
    }
  }
  return { files, low, high };
}
