// The file-list record both roles share (flist.c struct file_struct, as sent by
// send_file_entry / read by recv_file_entry). Names are '/'-separated paths relative to the
// transfer root, decoded as UTF-8.

export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;
export const S_IFIFO = 0o010000;
export const S_IFSOCK = 0o140000;

export const isDir = (mode: number): boolean => (mode & S_IFMT) === S_IFDIR;
export const isReg = (mode: number): boolean => (mode & S_IFMT) === S_IFREG;
export const isLink = (mode: number): boolean => (mode & S_IFMT) === S_IFLNK;
export const isDevice = (mode: number): boolean =>
  (mode & S_IFMT) === S_IFCHR || (mode & S_IFMT) === S_IFBLK;
export const isSpecial = (mode: number): boolean =>
  (mode & S_IFMT) === S_IFIFO || (mode & S_IFMT) === S_IFSOCK;

// rsync.h FLAG_* bits kept on an entry (in-memory, not the XMIT_* wire bits).
export const FLAG_TOP_DIR = 1 << 0;
export const FLAG_CONTENT_DIR = 1 << 2; // dirs: not XMIT_NO_CONTENT_DIR
export const FLAG_HLINKED = 1 << 5;
export const FLAG_HLINK_FIRST = 1 << 6;
export const FLAG_IMPLIED_DIR = 1 << 6; // dirs only
export const FLAG_HLINK_LAST = 1 << 7; // set by hard-link matching on the receiver
export const FLAG_HLINK_DONE = 1 << 8; // hard-link matching: a lone member, no longer linked
export const FLAG_MOD_NSEC = 1 << 12;

export interface FileEntry {
  /** Path relative to the transfer root ("." for the root dir itself). */
  name: string;
  /** Full st_mode, type bits included. */
  mode: number;
  size: number;
  /** Seconds since the epoch (may be negative). */
  mtime: number;
  /** Nanoseconds (protocol >= 31 with XMIT_MOD_NSEC, else 0). */
  mtimeNsec: number;
  uid?: number;
  gid?: number;
  /** Owner names sent inline (inc-recursion) or from the id lists (protocol < 30 / non-inc). */
  userName?: string;
  groupName?: string;
  /** Device number for block/char devices (specials carry none; at protocol < 31 a dummy is sent). */
  rdevMajor?: number;
  rdevMinor?: number;
  /** Symlink target bytes as sent. */
  linkTarget?: Uint8Array;
  /** Whole-file checksum sent with --checksum. */
  checksum?: Uint8Array;
  /** FLAG_* bits. */
  flags: number;
  /**
   * Hard links. Decoded at protocol >= 30: the group number, which is the wire-order index
   * (list's ndx_start + position in the order sent, NOT the sorted ndx) of the group's first-sent
   * member -- that member carries its own. Set with FLAG_HLINKED.
   */
  hlinkFirstNdx?: number;
  /**
   * The sender's dev/ino pair. Encoder input: present iff the entry is hard-linked by rsync's
   * sender rule (protocol >= 28: a non-directory with st_nlink > 1; protocol 27: every regular
   * file when -H). Decoded only at protocol 27-29.
   */
  hlinkDev?: number;
  hlinkIno?: number;
}
