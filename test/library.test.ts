// The library face as a user's program reaches it: the package imported by its name (Node
// resolves "krsync" to this package's own exports, as it would from node_modules), README's
// call shape, the result compared with native rsync's copy of the same tree.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { tmpDir } from "./helpers/env.js";
import { runRsync } from "./helpers/rsync.js";
import { diffSnapshots, snapshotTree } from "./helpers/snapshot.js";

const ROOT = join(import.meta.dirname, "..");
const BUILT = existsSync(join(ROOT, "dist", "index.js"));

describe.skipIf(!BUILT)("the krsync package", () => {
  it('import { sync } from "krsync" copies a tree as native rsync -a does, with typed declarations', async () => {
    expect(existsSync(join(ROOT, "dist", "index.d.ts"))).toBe(true);
    const w = tmpDir("lib-");
    mkdirSync(join(w, "src", "sub"), { recursive: true });
    writeFileSync(join(w, "src", "a.txt"), "alpha\n".repeat(500));
    writeFileSync(join(w, "src", "sub", "b.bin"), Buffer.alloc(70_000, 7));
    // Past directory mtimes: rsync leaves a directory alone when only the sub-second part of its
    // mtime differs, which a tree made this very second would hit.
    for (const d of ["sub", "."]) utimesSync(join(w, "src", d), 1_600_000_000, 1_600_000_000);
    const script = `
      import { sync, SyncError } from "krsync";
      const seen = [];
      const { exitCode, stats } = await sync({
        source: process.argv[1] + "/src/", destination: process.argv[1] + "/k/",
        recursive: true, links: true, perms: true, times: true, group: true, owner: true, devices: true, specials: true,
        events: { item: (it) => seen.push(it.name) },
      });
      let refused = "";
      try { await sync({ source: [], destination: "x" }); } catch (e) { refused = e instanceof SyncError ? "SyncError " + e.exitCode : String(e); }
      console.log(JSON.stringify({ exitCode, files: stats.numFiles ?? null, seen: seen.sort(), refused }));
    `;
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", script, w], { cwd: ROOT, encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split("\n").pop()!) as { exitCode: number; seen: string[]; refused: string };
    expect(out.exitCode).toBe(0);
    expect(out.seen).toEqual(expect.arrayContaining(["a.txt", "sub/b.bin"]));
    expect(out.refused).toBe("SyncError 1");
    const n = await runRsync(["-a", `${w}/src/`, `${w}/n/`]);
    expect(n.code).toBe(0);
    expect(diffSnapshots(snapshotTree(join(w, "n")), snapshotTree(join(w, "k")))).toEqual([]);
  });
});
