// One scenario for every direction: a tree of nanosecond mtimes no double of seconds can hold
// (tree.ts NSEC_TREE_TIMES), copied by native rsync and by krsync at protocol 31 or 32 (which
// send the nanoseconds), first into an empty destination, then updated (deltas where the direction sends them). krsync's result must equal native
// rsync's and the source's, mtimes to the nanosecond (to the microsecond only when native/ is
// not built: snapshot.ts krsyncMtimes).
import { join } from "node:path";
import { expect, it } from "vitest";
import { isRoot, tmpDir } from "./env.js";
import type { RunResult } from "./rsync.js";
import { diffSnapshots, snapshotTree, type DiffOptions } from "./snapshot.js";
import { buildNsecTree, mutateNsecTree, NSEC_TREE_TIMES } from "./tree.js";

type Krsync = (args: string[], src: string, dst: string) => Promise<{ exitCode: number; messages: string[] }>;
type Native = (src: string, dst: string, opts: readonly string[]) => Promise<RunResult>;

export function nsecMtimeCases(protocol: 31 | 32, krsync: Krsync, native: Native): void {
  const root = isRoot();
  const cmp: DiffOptions = { krsyncMtimes: true, owners: root };
  const same = (a: string, b: string): string[] =>
    diffSnapshots(snapshotTree(a, { owners: root }), snapshotTree(b, { owners: root }), cmp);
  const opts = ["-aHS", `--protocol=${protocol}`];

  it("files, directories, symlinks and a fifo get their mtimes to the nanosecond, then again after an update", async () => {
    const w = tmpDir(`nsec-${protocol}-`);
    const src = join(w, "src");
    const nativeDir = join(w, "native");
    const krsyncDir = join(w, "krsync");
    buildNsecTree(src);
    const srcTimes = new Map([...snapshotTree(src)].map(([rel, e]) => [rel, e.mtimeNs]));
    expect(srcTimes).toEqual(NSEC_TREE_TIMES);

    for (const round of ["first", "update"]) {
      if (round === "update") mutateNsecTree(src);
      const n = await native(src, nativeDir, opts);
      expect(n.code, n.stderr).toBe(0);
      const k = await krsync(opts, src, krsyncDir);
      expect(k.messages.filter((m) => m.startsWith("error")), round).toEqual([]);
      expect(k.exitCode, round).toBe(0);
      expect(same(nativeDir, krsyncDir), round).toEqual([]);
      expect(same(src, krsyncDir), round).toEqual([]);
    }
  });
}
