// The uid/gid name lists (uidlist.c send_id_lists / recv_id_list).
//
// When: after the end of the (only) file list when there is no inc-recursion (so always below
// protocol 30), for -o (user list) and -g (group list), unless --numeric-ids. With
// inc-recursion the names travel inline in the file list instead (XMIT_USER_NAME_FOLLOWS).
// Protocol < 30: the int32 io_error follows the lists (flist.c send_file_list).
//
// Format of each list: (varint30 id, byte len, len name bytes)* for every id met other than 0
// that has a name, in the sender's list order (newest first: uidlist.c add_to_list prepends),
// then varint30 0. With CF_ID0_NAMES the terminating 0 is followed by the name of id 0
// (byte len + bytes), otherwise id 0's name is never sent.
import type { FileEntry } from "./fileentry.js";
import { decodeLossy, encodeUtf8 } from "./flist-names.js";
import type { IdName } from "./flist.js";
import { Cursor, NeedMore, ProtocolError, Writer } from "./wire.js";

export interface IdListContext {
  protocol: number;
  preserveUid: boolean;
  preserveGid: boolean;
  numericIds: boolean;
  /** Inc-recursion in force (then no lists are sent). */
  incRecurse: boolean;
  /** CF_ID0_NAMES negotiated. */
  id0Names: boolean;
}

/** Bound on ids in one received list. */
export const MAX_ID_LIST = 1 << 20;

export interface IdLists {
  users: Map<number, string>;
  groups: Map<number, string>;
}

/** Which lists follow the file list. */
export function idListsSent(ctx: IdListContext): { users: boolean; groups: boolean } {
  const any = !ctx.incRecurse && !ctx.numericIds;
  return { users: any && ctx.preserveUid, groups: any && ctx.preserveGid };
}

function readName(c: Cursor): string | undefined {
  const len = c.byte();
  return len > 0 ? decodeLossy(c.bytes(len)) : undefined;
}

function readOne(c: Cursor, ctx: IdListContext, what: string): Map<number, string> {
  const m = new Map<number, string>();
  for (let n = 0; ; n++) {
    if (n > MAX_ID_LIST) throw new ProtocolError(`${what} id list longer than ${MAX_ID_LIST} entries`);
    const id = c.varint30(ctx.protocol) >>> 0;
    if (id === 0) break;
    const name = readName(c);
    if (name !== undefined) m.set(id, name);
  }
  if (ctx.id0Names) {
    const name = readName(c);
    if (name !== undefined) m.set(0, name);
  }
  return m;
}

/**
 * uidlist.c recv_id_list: read the lists that idListsSent() says follow the file list. Maps are
 * sender id -> name (ids without a name are left out). Restartable: on NeedMore the cursor is
 * put back.
 */
export function decodeIdLists(c: Cursor, ctx: IdListContext): IdLists {
  const start = c.pos;
  const want = idListsSent(ctx);
  try {
    const users = want.users ? readOne(c, ctx, "uid") : new Map<number, string>();
    const groups = want.groups ? readOne(c, ctx, "gid") : new Map<number, string>();
    return { users, groups };
  } catch (e) {
    if (e instanceof NeedMore) c.pos = start;
    throw e;
  }
}

function writeOne(out: Writer, protocol: number, id: number, name: string | undefined): void {
  let b = encodeUtf8(name ?? "");
  if (b.length > 255) b = b.subarray(0, 255);
  out.varint30(id, protocol);
  out.byte(b.length);
  out.bytes(b);
}

function writeList(out: Writer, ctx: IdListContext, ids: readonly IdName[], name0: string | undefined): void {
  // uidlist.c send_one_list: newest first, id 0 and nameless ids skipped.
  for (let i = ids.length - 1; i >= 0; i--) {
    const e = ids[i]!;
    if (e.id !== 0 && e.name) writeOne(out, ctx.protocol, e.id, e.name);
  }
  if (ctx.id0Names) writeOne(out, ctx.protocol, 0, name0);
  else out.varint30(0, ctx.protocol);
}

/**
 * uidlist.c send_id_lists. `users` / `groups` in first-met order (FileListEncoder.users/groups).
 * With CF_ID0_NAMES the local names of uid 0 / gid 0 are sent (rsync looks them up; pass them,
 * else the name recorded for id 0 in the list, else an empty name).
 */
export function encodeIdLists(
  out: Writer,
  ctx: IdListContext,
  users: readonly IdName[],
  groups: readonly IdName[],
  id0?: { user?: string; group?: string },
): void {
  const want = idListsSent(ctx);
  const zero = (l: readonly IdName[]): string | undefined => l.find((e) => e.id === 0)?.name;
  if (want.users) writeList(out, ctx, users, id0?.user ?? zero(users));
  if (want.groups) writeList(out, ctx, groups, id0?.group ?? zero(groups));
}

/** Fill userName / groupName of entries from received id lists (entries are updated in place). */
export function applyIdNames(entries: Iterable<FileEntry | null>, lists: IdLists): void {
  for (const e of entries) {
    if (!e) continue;
    if (e.uid !== undefined) {
      const n = lists.users.get(e.uid);
      if (n !== undefined) e.userName = n;
    }
    if (e.gid !== undefined) {
      const n = lists.groups.get(e.gid);
      if (n !== undefined) e.groupName = n;
    }
  }
}
