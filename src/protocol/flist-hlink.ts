// Hard-link groups on the receiving side (hlink.c match_hard_links / match_gnums).
//
// A group is identified by its group number: protocol >= 30 the wire-order ndx of its first-sent
// member (FileEntry.hlinkFirstNdx), protocol 27-29 the sender's dev/ino pair. After the list is
// sorted, the members of a group are chained in SORTED order: the leader is the member with the
// lowest sorted position (not necessarily the first one sent), each member links to the one
// before it. Without inc-recursion a group of one is no hard link at all; with inc-recursion a
// group may continue in later lists, whose members chain on to the earlier list's last member.
import { RERR_PROTOCOL } from "./errcode.js";
import { FLAG_HLINKED, type FileEntry } from "./fileentry.js";
import { ProtocolError } from "./wire.js";

export interface HardLinkInfo {
  /** ndx of the group's leader (FLAG_HLINK_FIRST in rsync); may lie in an earlier list. */
  leader: number;
  /** ndx of the previous member of the chain (F_HL_PREV), -1 for the leader. */
  prev: number;
  /** This is the leader. */
  first: boolean;
  /** Last member so far (FLAG_HLINK_LAST); cleared when a later list continues the group. */
  last: boolean;
}

interface PriorGroup {
  leader: number;
  lastInfo: HardLinkInfo;
  lastNdx: number;
}

export class HardLinkMatcher {
  private readonly prior = new Map<number, PriorGroup>();

  constructor(
    private readonly protocol: number,
    private readonly incRecurse: boolean,
  ) {}

  private groupKey(e: FileEntry, keys: Map<string, number>): number {
    if (this.protocol >= 30) {
      if (e.hlinkFirstNdx === undefined) throw new ProtocolError(`hard-linked ${e.name} has no group`, RERR_PROTOCOL);
      return e.hlinkFirstNdx;
    }
    const k = `${e.hlinkDev ?? 0}:${e.hlinkIno ?? 0}`;
    let g = keys.get(k);
    if (g === undefined) {
      g = keys.size;
      keys.set(k, g);
    }
    return g;
  }

  /**
   * Match one sorted list (null = cleared slot). Returns, per position, the entry's link info,
   * or undefined when the entry is not (or no longer) hard-linked.
   */
  match(files: readonly (FileEntry | null)[], ndxStart: number): (HardLinkInfo | undefined)[] {
    const out: (HardLinkInfo | undefined)[] = new Array<HardLinkInfo | undefined>(files.length).fill(undefined);
    const keys = new Map<string, number>();
    const members: { pos: number; g: number }[] = [];
    files.forEach((e, pos) => {
      if (e && e.flags & FLAG_HLINKED) members.push({ pos, g: this.groupKey(e, keys) });
    });
    members.sort((a, b) => a.g - b.g || a.pos - b.pos);

    for (let from = 0; from < members.length; ) {
      const g = members[from]!.g;
      let to = from;
      while (to + 1 < members.length && members[to + 1]!.g === g) to++;
      let leader: number;
      let prev: number;
      const old = this.incRecurse ? this.prior.get(g) : undefined;
      if (old) {
        leader = old.leader;
        prev = old.lastNdx;
        old.lastInfo.last = false;
      } else {
        if (this.incRecurse && this.protocol >= 30 && g < ndxStart) {
          throw new ProtocolError(`hard-link gnum ${g} precedes flist start ${ndxStart}`, RERR_PROTOCOL);
        }
        leader = members[from]!.pos + ndxStart;
        prev = -1;
      }
      if (!this.incRecurse && from === to) {
        from = to + 1; // a lone member: not linked
        continue;
      }
      let info: HardLinkInfo | undefined;
      for (let k = from; k <= to; k++) {
        const ndx = members[k]!.pos + ndxStart;
        info = { leader, prev, first: prev < 0, last: k === to };
        out[members[k]!.pos] = info;
        prev = ndx;
      }
      if (this.incRecurse) this.prior.set(g, { leader, lastInfo: info!, lastNdx: prev });
      from = to + 1;
    }
    return out;
  }
}
