// krsync's native time setter (native/times.c, loaded by src/engine/attrs.ts): utimensat and
// futimens with exact nanoseconds, read back with a bigint lstat; the fallback through Node's fs
// (microseconds) when it is not loaded; and native/build.mjs, npm's install step, which builds
// it with a toolchain and leaves the install working without one.
import { execFileSync, spawnSync } from "node:child_process";
import { closeSync, copyFileSync, readFileSync, existsSync, lstatSync, mkdirSync, openSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it, vi } from "vitest";
import { setFdMtime, setPathMtime, timeSetter } from "../src/engine/attrs.js";
import { tmpDir } from "./helpers/env.js";

const SEC = 1_000_000_000n;
const nativeDir = fileURLToPath(new URL("../native/", import.meta.url));

interface Addon {
  // (path, nofollow, atimeSec, atimeNsec, mtimeSec, mtimeNsec); (fd, atimeSec, ...): wrong ones are tested too
  utimensat(...args: unknown[]): number;
  futimens(...args: unknown[]): number;
  UTIME_NOW: number;
  UTIME_OMIT: number;
  copyRange(...args: unknown[]): number;
  copyRangeAsync(...args: unknown[]): Promise<number>;
  stat(...args: unknown[]): number;
}

function hasCompiler(): boolean {
  for (const cc of [process.env.CC ?? "cc", "gcc", "clang"]) {
    try {
      execFileSync(cc, ["--version"], { stdio: "ignore" });
      return true;
    } catch {
      // next
    }
  }
  return false;
}

const split = (ns: bigint): [number, number] => {
  let sec = ns / SEC;
  let nsec = ns % SEC;
  if (nsec < 0n) {
    nsec += SEC;
    sec -= 1n;
  }
  return [Number(sec), Number(nsec)];
};
const mtimeNs = (p: string): bigint => lstatSync(p, { bigint: true }).mtimeNs;
const atimeNs = (p: string): bigint => lstatSync(p, { bigint: true }).atimeNs;

/** Times a double of seconds cannot hold, and the edges of the nanosecond field. */
const TIMES = [
  1_700_000_000n * SEC + 123_456_789n,
  1_700_000_000n * SEC + 1n,
  1_700_000_000n * SEC + 999_999_999n,
  0n,
  -1n,
  -1_000_000_000n * SEC - 123_456_789n,
  5_000_000_000n * SEC + 123_456_789n,
];

const native = !process.env.KRSYNC_NO_NATIVE;

describe("the engine's time setter", () => {
  it.runIf(native && process.platform !== "win32" && hasCompiler())("loads native/ on a machine with a C toolchain", () => {
    expect(timeSetter, timeSetter.reason).toEqual({ native: true, resolutionNs: 1, reason: "" });
  });

  it.runIf(timeSetter.native)("sets a file's, a directory's, a symlink's and an open file's mtime to the nanosecond", () => {
    const w = tmpDir("ntimes-");
    const file = join(w, "f");
    const dir = join(w, "d");
    const link = join(w, "l");
    writeFileSync(file, "x");
    mkdirSync(dir);
    symlinkSync("f", link);
    for (const t of TIMES) {
      const [sec, nsec] = split(t);
      setPathMtime(file, false, sec, nsec);
      expect(statSync(file, { bigint: true }).mtimeNs).toBe(t);
      setPathMtime(dir, false, sec, nsec);
      expect(mtimeNs(dir)).toBe(t);
      const before = mtimeNs(file);
      setPathMtime(link, true, sec + 7, nsec);
      expect(mtimeNs(link)).toBe(t + 7n * SEC);
      expect(mtimeNs(file)).toBe(before);
      const fd = openSync(file, "r+");
      try {
        setFdMtime(fd, sec + 1, nsec);
      } finally {
        closeSync(fd);
      }
      expect(mtimeNs(file)).toBe(t + SEC);
    }
  });

  it.runIf(timeSetter.native)("reports failures as Node-style errors", () => {
    const missing = join(tmpDir("ntimes-"), "missing");
    let err: NodeJS.ErrnoException | undefined;
    try {
      setPathMtime(missing, true, 1, 2);
    } catch (e) {
      err = e as NodeJS.ErrnoException;
    }
    expect(err?.code).toBe("ENOENT");
    expect(err?.syscall).toBe("lutime");
    expect(err?.path).toBe(missing);
    expect(err?.message).toContain(`ENOENT: no such file or directory, lutime '${missing}'`);
    expect(() => setFdMtime(2_000_000, 1, 2)).toThrow(/EBADF/);
    expect(() => setPathMtime(missing, false, 1, 1_000_000_000)).toThrow(RangeError);
    expect(() => setPathMtime(missing, false, 1.5, 0)).toThrow(RangeError);
  });
});

describe.runIf(timeSetter.native)("the addon itself", () => {
  const addon = createRequire(import.meta.url)(join(nativeDir, "build/Release/krsync_times.node")) as Addon;

  it.runIf(process.platform === "linux")("copyRange copies between descriptors at the given offsets, says 0 at the end and -errno on a bad call", () => {
    const w = tmpDir("ncopy-");
    const data = Buffer.alloc(3 << 20);
    for (let i = 0; i < data.length; i++) data[i] = (i * 131) & 0xff;
    writeFileSync(join(w, "in"), data);
    const i = openSync(join(w, "in"), "r");
    const o = openSync(join(w, "out"), "w");
    try {
      let done = 0;
      while (done < data.length - 100) done += addon.copyRange(i, 100 + done, o, 7 + done, data.length - 100 - done);
      expect(done).toBe(data.length - 100);
      expect(addon.copyRange(i, data.length, o, 0, 10)).toBe(0);
      expect(addon.copyRange(i, 0, i, 0, 10)).toBe(-9); // EBADF: the input is not open for writing
      expect(addon.copyRange(-1, 0, o, 0, 1)).toBe(-9);
      expect(addon.copyRange(i, -1, o, 0, 1)).toBe(-22); // EINVAL
      expect(() => addon.copyRange(i, 0, o, 0)).toThrow(TypeError);
      expect(() => addon.copyRange("x", 0, o, 0, 1)).toThrow(TypeError);
    } finally {
      closeSync(i);
      closeSync(o);
    }
    const out = readFileSync(join(w, "out"));
    expect(out.subarray(0, 7).equals(Buffer.alloc(7))).toBe(true);
    expect(out.subarray(7).equals(data.subarray(100))).toBe(true);
  });

  it.runIf(process.platform === "linux")("copyRangeAsync copies on the thread pool up to len or the input's end", async () => {
    const w = tmpDir("ncopya-");
    const data = Buffer.alloc(5 << 20, 7);
    data.write("start", 0);
    data.write("end", data.length - 3);
    writeFileSync(join(w, "in"), data);
    const i = openSync(join(w, "in"), "r");
    const o = openSync(join(w, "out"), "w");
    try {
      expect(await addon.copyRangeAsync(i, 0, o, 0, data.length + 1000)).toBe(data.length);
      expect(await addon.copyRangeAsync(i, data.length, o, 0, 10)).toBe(0);
      expect(await addon.copyRangeAsync(i, 0, i, 0, 10)).toBe(-9);
      expect(await addon.copyRangeAsync(i, 0, o, -5, 10)).toBe(-22);
      expect(() => addon.copyRangeAsync(i, 0, o)).toThrow(TypeError);
    } finally {
      closeSync(i);
      closeSync(o);
    }
    expect(readFileSync(join(w, "out")).equals(data)).toBe(true);
  });

  it("stat gives what fs.lstatSync / fs.statSync give (bigint), and errnos for what is not there", async () => {
    const { statPath, statPathOrNull, localStat } = await import("../src/engine/destination.js");
    const w = tmpDir("nstat-");
    writeFileSync(join(w, "f"), "12345");
    symlinkSync("f", join(w, "l"));
    symlinkSync("nowhere", join(w, "dangling"));
    mkdirSync(join(w, "d"));
    for (const p of [join(w, "f"), join(w, "l"), join(w, "dangling"), join(w, "d"), "/dev/null", "/"]) {
      for (const follow of [false, true]) {
        if (follow && p.endsWith("dangling")) continue;
        const want = localStat(follow ? statSync(p, { bigint: true }) : lstatSync(p, { bigint: true }));
        expect(statPath(p, follow), `${p} follow=${follow}`).toEqual(want);
      }
    }
    const out = new Float64Array(13);
    expect(addon.stat(join(w, "missing"), false, out)).toBe(2); // ENOENT
    expect(addon.stat(join(w, "f", "x"), false, out)).toBe(20); // ENOTDIR
    expect(addon.stat(join(w, "dangling"), true, out)).toBe(2);
    expect(() => addon.stat(join(w, "f"), false, new Float64Array(3))).toThrow(TypeError);
    expect(() => addon.stat(join(w, "f"), false, new Float32Array(13))).toThrow(TypeError);
    expect(() => addon.stat(`${join(w, "f")}\0x`, false, out)).toThrow(TypeError); // as fs.lstatSync
    expect(statPathOrNull(join(w, "missing"), false)).toBeNull();
    expect(statPathOrNull(join(w, "f", "x"), false)).toBeNull();
    expect(() => statPath(join(w, "missing"), false)).toThrow(/^ENOENT: no such file or directory, lstat '/);
  });

  it("utimensat follows a symlink or not, and leaves the atime alone with UTIME_OMIT", () => {
    const w = tmpDir("naddon-");
    const file = join(w, "f");
    const link = join(w, "l");
    writeFileSync(file, "x");
    symlinkSync("f", link);
    expect(addon.utimensat(file, false, 1_600_000_000, 111_111_111, 1_700_000_000, 123_456_789)).toBe(0);
    expect(mtimeNs(file)).toBe(1_700_000_000n * SEC + 123_456_789n);
    expect(atimeNs(file)).toBe(1_600_000_000n * SEC + 111_111_111n);
    // following the link sets the target
    expect(addon.utimensat(link, false, 0, addon.UTIME_OMIT, 1_700_000_001, 1)).toBe(0);
    expect(mtimeNs(file)).toBe(1_700_000_001n * SEC + 1n);
    expect(atimeNs(file)).toBe(1_600_000_000n * SEC + 111_111_111n);
    // not following it sets the link
    expect(addon.utimensat(Buffer.from(link), true, 0, addon.UTIME_OMIT, -2, 999_999_999)).toBe(0);
    expect(mtimeNs(link)).toBe(-SEC - 1n);
    expect(mtimeNs(file)).toBe(1_700_000_001n * SEC + 1n);
  });

  it("futimens sets an open file's times", () => {
    const file = join(tmpDir("naddon-"), "f");
    writeFileSync(file, "x");
    const fd = openSync(file, "r");
    try {
      expect(addon.futimens(fd, 1, 2, 1_700_000_000, 999_999_999)).toBe(0);
    } finally {
      closeSync(fd);
    }
    expect(mtimeNs(file)).toBe(1_700_000_000n * SEC + 999_999_999n);
    expect(atimeNs(file)).toBe(SEC + 2n);
  });

  it("returns the errno of a failed call and throws on wrong argument types", () => {
    const file = join(tmpDir("naddon-"), "f");
    expect(addon.utimensat(file, false, 0, 0, 0, 0)).toBe(2); // ENOENT
    writeFileSync(file, "x");
    expect(addon.utimensat(file, false, 0, 0, 0, 1_000_000_000)).toBe(22); // EINVAL
    expect(addon.futimens(-1, 0, 0, 0, 0)).toBe(9); // EBADF
    expect(() => addon.utimensat(`${file}\0x`, false, 0, 0, 0, 0)).toThrow(TypeError);
    expect(() => addon.utimensat(Buffer.from(`${file}\0`), false, 0, 0, 0, 0)).toThrow(TypeError);
    expect(() => addon.utimensat(42, false, 0, 0, 0, 0)).toThrow(TypeError);
    expect(() => addon.utimensat(file, 1, 0, 0, 0, 0)).toThrow(TypeError);
    expect(() => addon.utimensat(file, false, 0, 0, "1", 0)).toThrow(TypeError);
    expect(() => addon.utimensat(file, false, 0, 0)).toThrow(TypeError);
    expect(() => addon.futimens("3", 0, 0, 0, 0)).toThrow(TypeError);
  });
});

describe("without the addon (KRSYNC_NO_NATIVE)", () => {
  const saved = process.env.KRSYNC_NO_NATIVE;
  afterEach(() => {
    if (saved === undefined) delete process.env.KRSYNC_NO_NATIVE;
    else process.env.KRSYNC_NO_NATIVE = saved;
    vi.resetModules();
  });

  it("sets times through Node's fs, exact to the microsecond, and says so", async () => {
    process.env.KRSYNC_NO_NATIVE = "1";
    vi.resetModules();
    const attrs = await import("../src/engine/attrs.js");
    expect(attrs.timeSetter).toEqual({ native: false, resolutionNs: 1000, reason: "KRSYNC_NO_NATIVE is set" });
    const w = tmpDir("nfallback-");
    const file = join(w, "f");
    const link = join(w, "l");
    writeFileSync(file, "x");
    symlinkSync("f", link);
    for (const t of TIMES) {
      const [sec, nsec] = split(t);
      const micros = (t / 1000n - (t < 0n && t % 1000n !== 0n ? 1n : 0n)) * 1000n;
      attrs.setPathMtime(file, false, sec, nsec);
      expect(mtimeNs(file)).toBe(micros);
      attrs.setPathMtime(link, true, sec, nsec);
      expect(mtimeNs(link)).toBe(micros);
      const fd = openSync(file, "r");
      try {
        attrs.setFdMtime(fd, sec + 1, nsec);
      } finally {
        closeSync(fd);
      }
      expect(mtimeNs(file)).toBe(micros + 1_000_000_000n);
    }
  });
});

describe("native/build.mjs (npm's install step)", () => {
  const copy = (): string => {
    const d = join(tmpDir("nbuild-"), "native");
    mkdirSync(d);
    for (const f of ["binding.gyp", "times.c", "copy.c", "stat.c", "napi-util.h", "build.mjs"]) copyFileSync(join(nativeDir, f), join(d, f));
    return d;
  };
  const env = (extra: Record<string, string>): NodeJS.ProcessEnv => {
    const e: NodeJS.ProcessEnv = { ...process.env, ...extra };
    delete e.KRSYNC_NO_NATIVE;
    return e;
  };

  it("without a toolchain: exits 0, says file times fall back to microseconds, leaves nothing built", () => {
    const d = copy();
    // No python, make or compiler on PATH (node-gyp is found beside node).
    const r = spawnSync(process.execPath, [join(d, "build.mjs")], { env: env({ PATH: join(d, "no-bin") }), encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/krsync: native time setter not built .*microsecond/);
    expect(existsSync(join(d, "build"))).toBe(false);
  });

  it.runIf(process.platform !== "win32" && hasCompiler())("with a toolchain: builds an addon that loads", () => {
    const d = copy();
    const r = spawnSync(process.execPath, [join(d, "build.mjs")], { env: env({}), encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain("native time setter built");
    const addon = createRequire(import.meta.url)(join(d, "build/Release/krsync_times.node")) as Addon;
    expect(typeof addon.utimensat).toBe("function");
  });

  it("KRSYNC_NO_NATIVE skips the build", () => {
    const d = copy();
    const r = spawnSync(process.execPath, [join(d, "build.mjs")], { env: { ...process.env, KRSYNC_NO_NATIVE: "1" }, encoding: "utf8" });
    expect(r.status).toBe(0);
    expect(r.stderr).toContain("KRSYNC_NO_NATIVE is set");
    expect(existsSync(join(d, "build"))).toBe(false);
  });
});
