// Minimal container root filesystems for the fake API server's exec: a static busybox with
// its applet symlinks, /tmp, /dev/null, tiny /etc/passwd and /etc/group, and optionally the
// host's rsync with the shared libraries ldd lists, copied to the same paths inside. Exec
// runs `chroot ROOT cmd...`, so building and using these needs root.

import { execFile } from "node:child_process";
import { chmod, copyFile, mkdir, readdir, rm, stat, symlink, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export type TmpMode =
  /** mode 1777, the default */
  | "writable"
  /** mode 0555 owned by root: only stops writes by a non-root exec (container runAsUser) */
  | "readonly"
  /** mode 0555 plus `chattr +i`: stops writes even by root; cleanup clears the flag */
  | "immutable"
  /** no /tmp at all */
  | "missing";

export interface PodRootOptions {
  /** Copy /usr/bin/rsync (or rsyncPath) and its shared libraries into the root. */
  withRsync: boolean;
  rsyncPath?: string;
  tmp?: TmpMode;
  /** Busybox applets to link in /bin; default: every applet `busybox --list` prints. */
  applets?: string[];
  /** Extra files to create, path inside the root → content. */
  files?: Record<string, string | Uint8Array>;
}

export interface PodRoot {
  root: string;
  withRsync: boolean;
  /** Removes the root (clearing an immutable /tmp first). */
  cleanup(): Promise<void>;
}

export const isRoot = (): boolean => typeof process.getuid === "function" && process.getuid() === 0;

const BUSYBOX_CANDIDATES = ["/bin/busybox", "/usr/bin/busybox", "/usr/local/bin/busybox"];

export async function findBusybox(): Promise<string> {
  for (const p of BUSYBOX_CANDIDATES) {
    try {
      if ((await stat(p)).isFile()) return p;
    } catch {
      // next
    }
  }
  throw new Error("fake kube API: busybox not found (install Debian's busybox-static)");
}

/** Shared objects a dynamic ELF needs, as absolute host paths (ldd's `=> path` and loader lines). */
export async function sharedLibraries(binary: string): Promise<string[]> {
  let out: string;
  try {
    out = (await run("ldd", [binary])).stdout;
  } catch {
    return []; // "not a dynamic executable": ldd exits non-zero
  }
  const libs: string[] = [];
  for (const line of out.split("\n")) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m?.[1] && !libs.includes(m[1])) libs.push(m[1]);
  }
  return libs;
}

/** Copies a host file to the same path under root (following symlinks: a real file lands there). */
async function copyIn(root: string, hostPath: string, mode?: number): Promise<void> {
  const dest = join(root, hostPath);
  await mkdir(dirname(dest), { recursive: true });
  await copyFile(hostPath, dest);
  if (mode !== undefined) await chmod(dest, mode);
}

/** Copies a binary and every shared library it loads to the same paths under root. */
export async function copyBinaryWithLibs(root: string, binary: string, destPath = binary): Promise<void> {
  const dest = join(root, destPath);
  await mkdir(dirname(dest), { recursive: true });
  await copyFile(binary, dest);
  await chmod(dest, 0o755);
  for (const lib of await sharedLibraries(binary)) await copyIn(root, lib, 0o755);
}

async function busyboxApplets(busybox: string): Promise<string[]> {
  const { stdout } = await run(busybox, ["--list"]);
  return stdout.split("\n").filter((a) => a !== "" && a !== "busybox" && !a.includes("/"));
}

/** Builds a chroot-able container root in dir (created if missing). */
export async function makePodRoot(dir: string, opts: PodRootOptions): Promise<PodRoot> {
  const busybox = await findBusybox();
  for (const d of ["bin", "dev", "etc", "root", "usr/bin", "usr/sbin", "sbin"]) {
    await mkdir(join(dir, d), { recursive: true });
  }
  await copyBinaryWithLibs(dir, busybox, "/bin/busybox");
  for (const applet of opts.applets ?? (await busyboxApplets(busybox))) {
    await symlink("busybox", join(dir, "bin", applet));
  }
  // Device nodes: mknod(2) has no Node binding; the mknod command makes them (root only).
  for (const [name, minor] of [["null", 3], ["zero", 5]] as const) {
    await run("mknod", ["-m", "666", join(dir, "dev", name), "c", "1", String(minor)]);
  }
  await writeFile(
    join(dir, "etc/passwd"),
    "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/tmp:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
  );
  await writeFile(join(dir, "etc/group"), "root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n");
  if (opts.withRsync) await copyBinaryWithLibs(dir, opts.rsyncPath ?? "/usr/bin/rsync", "/usr/bin/rsync");
  for (const [p, content] of Object.entries(opts.files ?? {})) {
    const dest = join(dir, p);
    await mkdir(dirname(dest), { recursive: true });
    await writeFile(dest, content);
  }
  const tmpMode = opts.tmp ?? "writable";
  const tmp = join(dir, "tmp");
  if (tmpMode !== "missing") {
    await mkdir(tmp, { recursive: true });
    await chmod(tmp, tmpMode === "writable" ? 0o1777 : 0o555);
    if (tmpMode === "immutable") await run("chattr", ["+i", tmp]);
  }
  return {
    root: dir,
    withRsync: opts.withRsync,
    async cleanup() {
      if (tmpMode === "immutable") await run("chattr", ["-i", tmp]).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Lists the entries of /bin in a root (handy in assertions). */
export async function podRootBin(dir: string): Promise<string[]> {
  return (await readdir(join(dir, "bin"))).sort();
}
