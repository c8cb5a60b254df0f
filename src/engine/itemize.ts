// Item flags (rsync.h ITEM_*) and their display (log.c %i), shared by generator and receiver.

export const ITEM_REPORT_ATIME = 1 << 0;
export const ITEM_REPORT_CHANGE = 1 << 1;
export const ITEM_REPORT_SIZE = 1 << 2;
export const ITEM_REPORT_TIMEFAIL = 1 << 2;
export const ITEM_REPORT_TIME = 1 << 3;
export const ITEM_REPORT_PERMS = 1 << 4;
export const ITEM_REPORT_OWNER = 1 << 5;
export const ITEM_REPORT_GROUP = 1 << 6;
export const ITEM_REPORT_ACL = 1 << 7;
export const ITEM_REPORT_XATTR = 1 << 8;
export const ITEM_BASIS_TYPE_FOLLOWS = 1 << 11;
export const ITEM_XNAME_FOLLOWS = 1 << 12;
export const ITEM_IS_NEW = 1 << 13;
export const ITEM_LOCAL_CHANGE = 1 << 14;
export const ITEM_TRANSFER = 1 << 15;
export const ITEM_MISSING_DATA = 1 << 16;
export const ITEM_DELETED = 1 << 17;

// rsync.h SIGNIFICANT_ITEM_FLAGS: the bits that make an item worth reporting.
export const SIGNIFICANT_ITEM_FLAGS =
  ~(ITEM_BASIS_TYPE_FOLLOWS | ITEM_XNAME_FOLLOWS | ITEM_LOCAL_CHANGE) & 0xffff;

export type ItemKind = "f" | "d" | "L" | "D" | "S";

/** log.c's %i: e.g. ">f.st......", "cd+++++++++", "hf", ".d..t......". */
export function itemizeString(iflags: number, kind: ItemKind, receiving: boolean): string {
  const c: string[] = new Array(11).fill(".");
  c[0] =
    iflags & ITEM_DELETED
      ? "*"
      : iflags & ITEM_LOCAL_CHANGE
        ? iflags & ITEM_XNAME_FOLLOWS
          ? "h"
          : "c"
        : !(iflags & ITEM_TRANSFER)
          ? "."
          : receiving
            ? ">"
            : "<";
  c[1] = kind;
  if (iflags & ITEM_DELETED) return "*deleting  ";
  c[2] = iflags & ITEM_REPORT_CHANGE ? "c" : ".";
  c[3] = iflags & ITEM_REPORT_SIZE ? "s" : ".";
  c[4] = iflags & ITEM_REPORT_TIME ? "t" : ".";
  c[5] = iflags & ITEM_REPORT_PERMS ? "p" : ".";
  c[6] = iflags & ITEM_REPORT_OWNER ? "o" : ".";
  c[7] = iflags & ITEM_REPORT_GROUP ? "g" : ".";
  c[8] = iflags & ITEM_REPORT_ATIME ? "u" : ".";
  c[9] = iflags & ITEM_REPORT_ACL ? "a" : ".";
  c[10] = iflags & ITEM_REPORT_XATTR ? "x" : ".";
  if (iflags & (ITEM_IS_NEW | ITEM_MISSING_DATA)) {
    const ch = iflags & ITEM_IS_NEW ? "+" : "?";
    for (let i = 2; i < 11; i++) c[i] = ch;
  } else if (c[0] === "." || c[0] === "h" || c[0] === "c") {
    let allDots = true;
    for (let i = 2; i < 11; i++) if (c[i] !== ".") allDots = false;
    if (allDots) for (let i = 2; i < 11; i++) c[i] = " ";
  }
  return c.join("");
}
