// Test environment helpers: root detection, root-only test wrappers, temp dirs that are removed
// after the test file's run (set KRSYNC_TEST_KEEP=1 to keep them for debugging).

import { chmodSync, lstatSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, it, type TestFunction } from "vitest";

/** Native rsync used as the oracle. */
export const rsyncPath = "/usr/bin/rsync";

export function isRoot(): boolean {
  return typeof process.getuid === "function" && process.getuid() === 0;
}

export const ROOT_SKIP_REASON = "needs root (devices, foreign owners, chown/chroot); run as root to include it";

let warned = false;

/** Skip the running test with the root reason (also printed once per file, for quiet reporters). */
function skipForRoot(ctx: { skip: (note?: string) => never }, name: string): never {
  if (!warned) {
    warned = true;
    console.warn(`[krsync tests] not running as root: skipping root-only tests (first: "${name}")`);
  }
  return ctx.skip(ROOT_SKIP_REASON);
}

/** Like `it`, but when not root the test is reported as skipped with the reason attached. */
export function itIfRoot(name: string, fn: TestFunction, timeout?: number): void {
  if (isRoot()) {
    it(name, fn, timeout);
  } else {
    it(name, (ctx) => skipForRoot(ctx, name));
  }
}

/** Like `describe`, but when not root the block is replaced by one skipped test naming the reason. */
export function describeIfRoot(name: string, fn: () => void): void {
  if (isRoot()) {
    describe(name, fn);
  } else {
    describe(name, () => {
      it(`skipped: ${ROOT_SKIP_REASON}`, (ctx) => skipForRoot(ctx, name));
    });
  }
}

const created: string[] = [];
let hooked = false;

/**
 * A fresh directory under os.tmpdir(), removed after the current test file's run. The prefix may
 * contain spaces (useful to exercise remote-shell quoting).
 */
export function tmpDir(prefix = "krsync-test-"): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  created.push(dir);
  if (!hooked) {
    hooked = true;
    process.once("exit", cleanupTmpDirs);
  }
  return dir;
}

/** Remove a tree even where modes deny it (non-root: 0000/0500 dirs get u+rwx first). */
export function forceRemove(dir: string): void {
  try {
    rmSync(dir, { recursive: true, force: true });
    return;
  } catch {
    // fall through: make every directory writable/searchable, then retry
  }
  const open = (p: string): void => {
    let st;
    try {
      st = lstatSync(p);
    } catch {
      return;
    }
    if (!st.isDirectory()) return;
    try {
      chmodSync(p, 0o700);
    } catch {
      // not ours; rmSync will report it
    }
    for (const n of readdirSync(p)) open(join(p, n));
  };
  open(dir);
  rmSync(dir, { recursive: true, force: true });
}

export function cleanupTmpDirs(): void {
  if (process.env.KRSYNC_TEST_KEEP) return;
  while (created.length > 0) {
    const d = created.pop()!;
    try {
      forceRemove(d);
    } catch {
      // best effort at exit
    }
  }
}

// Registered at import time, so it attaches to the importing test file's root suite.
afterAll(() => {
  cleanupTmpDirs();
});

/** Size in MB of the tree's big file for test runs: KRSYNC_TEST_BIG_MB, else `fallback`. */
export function testBigFileMB(fallback: number): number {
  const v = process.env.KRSYNC_TEST_BIG_MB;
  if (v === undefined || v === "") return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`KRSYNC_TEST_BIG_MB: bad value ${v}`);
  return n;
}
