// krsync's optional Node-API addon (native/: times.c, copy.c), built by npm's install step
// (native/build.mjs) when a toolchain exists. Without it, Node's fs does the same work less
// exactly (times to the microsecond) or less directly (copies through a buffer).
import { createRequire } from "node:module";
import { getSystemErrorMap } from "node:util";

export interface NativeAddon {
  /** utimensat(2) with exact nanoseconds; 0 or an errno. */
  utimensat(path: string, nofollow: boolean, atimeSec: number, atimeNsec: number, mtimeSec: number, mtimeNsec: number): number;
  /** futimens(2); 0 or an errno. */
  futimens(fd: number, atimeSec: number, atimeNsec: number, mtimeSec: number, mtimeNsec: number): number;
  UTIME_NOW: number;
  /** copy_file_range(2) at explicit offsets: bytes copied (0 at the input's end) or -errno.
   *  Missing from an addon built before it existed. */
  copyRange?(fdIn: number, posIn: number, fdOut: number, posOut: number, len: number): number;
  /** The same on the thread pool, until len bytes or the input's end: the bytes copied, or
   *  -errno when none were. */
  copyRangeAsync?(fdIn: number, posIn: number, fdOut: number, posOut: number, len: number): Promise<number>;
  /** lstat(2) / stat(2) into out (13 fields, see native/stat.c); 0 or an errno. */
  stat?(path: string, follow: boolean, out: Float64Array): number;
}

function load(): { addon: NativeAddon | null; reason: string } {
  if (process.env.KRSYNC_NO_NATIVE) return { addon: null, reason: "KRSYNC_NO_NATIVE is set" };
  if (process.platform === "win32") return { addon: null, reason: "no utimensat on Windows" };
  try {
    // The same path from src/engine and dist/engine.
    const addon = createRequire(import.meta.url)("../../native/build/Release/krsync_times.node") as NativeAddon;
    if (typeof addon.utimensat !== "function" || typeof addon.futimens !== "function") {
      return { addon: null, reason: "native/ addon lacks utimensat/futimens" };
    }
    return { addon, reason: "" };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return { addon: null, reason: code === "MODULE_NOT_FOUND" ? "native/ addon not built" : `native/ addon does not load: ${(e as Error).message}` };
  }
}

/** The addon, or null with the reason it is not used. */
export const nativeAddon: { readonly addon: NativeAddon | null; readonly reason: string } = Object.freeze(load());

/** A Node-style error (code, errno, syscall, path, message) for an errno the addon returned. */
export function errnoError(errno: number, syscall: string, path?: string): NodeJS.ErrnoException {
  const [code, text] = getSystemErrorMap().get(-errno) ?? [`E${errno}`, `error ${errno}`];
  const e: NodeJS.ErrnoException = new Error(`${code}: ${text}, ${syscall}${path !== undefined ? ` '${path}'` : ""}`);
  e.errno = -errno;
  e.code = code;
  e.syscall = syscall;
  if (path !== undefined) e.path = path;
  return e;
}
