import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { helpText, parseCommandLine, parseSizeArg, UsageError, type CommandLine } from "../src/cli/options.js";
import { compressionEnabled, defaultTransferOptions } from "../src/protocol/options.js";
import { formatExitLine, rerrName, RERR_PARTIAL, RERR_SYNTAX, RERR_VANISHED } from "../src/protocol/errcode.js";

const RSYNC = "/usr/bin/rsync";
const haveRsync = existsSync(RSYNC);

const parse = (...argv: string[]): CommandLine => parseCommandLine(argv, { readFile: () => "" });

function usageError(argv: string[], readFile?: (p: string) => string): UsageError {
  try {
    parseCommandLine(argv, readFile ? { readFile } : { readFile: () => "" });
  } catch (e) {
    if (e instanceof UsageError) return e;
    throw e;
  }
  throw new Error(`no error for ${argv.join(" ")}`);
}

describe("bundles, values and arguments (popt rules)", () => {
  it("bundles short options and -a means -rlptgoD", () => {
    const o = parse("-avz", "a", "b").options;
    expect(o).toMatchObject({
      recursive: true,
      links: true,
      perms: true,
      times: true,
      group: true,
      owner: true,
      devices: true,
      specials: true,
      verbose: 1,
      compress: true,
      dirs: true,
    });
    expect(o.hardLinks).toBe(false);
  });

  it("takes a short option's value from the rest of the word or the next word", () => {
    expect(parse("-e", "ssh -p 2", "a", "b").options.rsh).toBe("ssh -p 2");
    expect(parse("-essh", "a", "b").options.rsh).toBe("ssh");
    expect(parse("-e=ssh", "a", "b").options.rsh).toBe("ssh");
    expect(parse("-ave", "rsh", "a", "b").options.rsh).toBe("rsh");
    expect(parse("-e", "-x", "a", "b").options.rsh).toBe("-x"); // next word, whatever it is
    expect(parse("-B1024", "a", "b").options.blockSize).toBe(1024);
    expect(parse("-B", "8k", "a", "b").options.blockSize).toBe(8192);
  });

  it("takes --opt=value and --opt value, and empty values", () => {
    expect(parse("--rsh=ssh", "a", "b").options.rsh).toBe("ssh");
    expect(parse("--rsh", "ssh", "a", "b").options.rsh).toBe("ssh");
    expect(parse("--rsync-path=", "a", "b").options.rsyncPath).toBe("");
    expect(parse("--timeout=", "a", "b").options.timeout).toBe(0); // strtoll("") is 0
  });

  it("parses integers like strtoll base 0", () => {
    expect(parse("--timeout=0x1e", "a", "b").options.timeout).toBe(30);
    expect(parse("--timeout=036", "a", "b").options.timeout).toBe(30);
    expect(parse("--timeout= +7", "a", "b").options.timeout).toBe(7);
    expect(parse("--protocol=0x1e", "a", "b").options.protocol).toBe(30);
    expect(parse("--timeout=-5", "a", "b").options.timeout).toBe(0); // io.c: negative is none
  });

  it("keeps arguments in order, with options anywhere, - as an argument, -- ending options", () => {
    const cl = parse("src", "-v", "-", "dst", "--", "-a", "--x");
    expect(cl.args).toEqual(["src", "-", "dst", "-a", "--x"]);
    expect(cl.options.verbose).toBe(1);
    expect(cl.options.recursive).toBe(false);
  });

  it("counts -v and resets with --no-v", () => {
    expect(parse("-vvv", "-v", "a", "b").options.verbose).toBe(4);
    expect(parse("-vvv", "--no-v", "a", "b").options.verbose).toBe(0);
  });
});

describe("rsync's option semantics", () => {
  it("-D, --no-D and the halves", () => {
    expect(parse("-D", "a", "b").options).toMatchObject({ devices: true, specials: true });
    expect(parse("-a", "--no-D", "a", "b").options).toMatchObject({ devices: false, specials: false });
    expect(parse("-a", "--no-specials", "a", "b").options).toMatchObject({ devices: true, specials: false });
  });

  it("--no-OPTION negations", () => {
    const o = parse("-a", "--no-perms", "--no-times", "--no-owner", "--no-group", "--no-l", "a", "b").options;
    expect(o).toMatchObject({ perms: false, times: false, owner: false, group: false, links: false, recursive: true });
    expect(parse("-a", "--no-recursive", "a", "b").options).toMatchObject({ recursive: false, dirs: false });
    expect(parse("-a", "--no-r", "-d", "a", "b").options).toMatchObject({ recursive: false, dirs: true });
    expect(parse("-a", "--no-inc-recursive", "a", "b").options.incRecursive).toBe(false);
    expect(parse("-a", "--no-i-r", "--i-r", "a", "b").options.incRecursive).toBe(true);
    expect(parse("-W", "a", "b").options.wholeFile).toBe(true);
    expect(parse("-W", "--no-W", "a", "b").options.wholeFile).toBe(false);
    expect(parse("--no-whole-file", "a", "b").options.wholeFile).toBe(false);
    expect(parse("a", "b").options.wholeFile).toBeUndefined();
    expect(parse("-c", "--no-c", "a", "b").options.checksum).toBe(false);
    expect(parse("-z", "--no-z", "a", "b").options.compress).toBe(false);
  });

  it("-P is --partial --progress; --inplace/--append clear partial", () => {
    const cl = parse("-P", "a", "b");
    expect(cl.options.partial).toBe(true);
    expect(cl.options.progress).toBe(true);
    expect(cl.progress).toBe(true);
    expect(parse("-P", "--inplace", "a", "b").options).toMatchObject({ partial: false, inplace: true });
    expect(parse("--append", "a", "b").options).toMatchObject({ append: true, inplace: true });
  });

  it("delete modes", () => {
    expect(parse("-r", "--delete", "a", "b").options).toMatchObject({ delete: true, deleteTiming: undefined });
    expect(parse("-r", "--del", "a", "b").options).toMatchObject({ delete: true, deleteTiming: "during" });
    expect(parse("-r", "--delete-before", "a", "b").options.deleteTiming).toBe("before");
    expect(parse("-r", "--delete-during", "a", "b").options.deleteTiming).toBe("during");
    expect(parse("-r", "--delete-delay", "a", "b").options.deleteTiming).toBe("delay");
    expect(parse("-r", "--delete-after", "a", "b").options.deleteTiming).toBe("after");
    expect(parse("-r", "--delete-delay", "--del", "a", "b").options.deleteTiming).toBe("during");
    expect(parse("-r", "--delete-excluded", "a", "b").options).toMatchObject({ delete: true, deleteExcluded: true });
    expect(parse("-d", "--delete", "a", "b").options.delete).toBe(true);
  });

  it("compression choices", () => {
    const c = (...a: string[]) => {
      const o = parse(...a, "x", "y").options;
      return [o.compress, o.compressChoice, o.compressLevel, compressionEnabled(o)];
    };
    expect(c("-z")).toEqual([true, undefined, undefined, true]);
    expect(c("-zz")).toEqual([false, "zlibx", undefined, true]);
    expect(c("--zc=ZLIB")).toEqual([false, "zlib", undefined, true]);
    expect(c("--zc=auto", "-z")).toEqual([true, undefined, undefined, true]);
    expect(c("--zl=3")).toEqual([false, undefined, 3, true]);
    expect(c("-z", "--zc=none")).toEqual([false, "none", undefined, false]);
    expect(c("--old-compress")).toEqual([false, "zlib", undefined, true]);
    expect(c("--new-compress")).toEqual([false, "zlibx", undefined, true]);
    expect(c("--zc=ZSTD", "--zl=-5")).toEqual([false, "zstd", -5, true]);
    expect(c("--compress-choice=lz4")).toEqual([false, "lz4", undefined, true]);
    expect(c()).toEqual([false, undefined, undefined, false]);
    expect(parse("-z", "--skip-compress=gz/zip", "a", "b").options.skipCompress).toBe("gz/zip");
    expect(parse("a", "b").options.skipCompress).toBeUndefined();
  });

  it("checksum choices", () => {
    expect(parse("--cc=MD5", "a", "b").options.checksumChoice).toBe("md5");
    expect(parse("--cc=xxhash,md4", "a", "b").options.checksumChoice).toBe("xxh64,md4");
    expect(parse("--cc=auto", "a", "b").options.checksumChoice).toBeUndefined();
    expect(parse("--cc=none", "a", "b").options).toMatchObject({ checksumChoice: "none", wholeFile: true });
  });

  it("bwlimit in KiB, block size, list-only, itemize, stats, misc flags", () => {
    expect(parse("--bwlimit=100", "a", "b").options.bwlimit).toBe(100);
    expect(parse("--bwlimit=1.5M", "a", "b").options.bwlimit).toBe(1536);
    expect(parse("--bwlimit=0", "a", "b").options.bwlimit).toBeUndefined();
    expect(parse("-B0", "a", "b").options.blockSize).toBeUndefined();
    expect(parse("--list-only", "a", "b").options.listOnly).toBe("explicit");
    expect(parse("a").options).toMatchObject({ listOnly: "implied", dirs: true });
    expect(parse("a", "b").options.listOnly).toBe(false);
    expect(parse("-ii", "a", "b").options).toMatchObject({ itemize: true, itemizeUnchanged: true });
    const o = parse("--stats", "-q", "-n", "-S", "-H", "-x", "-R", "-I", "--size-only", "--numeric-ids", "--force",
      "--inplace", "--blocking-io", "--timeout=5", "--protocol=29", "-c", "a", "b").options;
    expect(o).toMatchObject({
      stats: true, quiet: true, dryRun: true, sparse: true, hardLinks: true, oneFileSystem: true, relative: true,
      ignoreTimes: true, sizeOnly: true, numericIds: true, force: true, inplace: true, blockingIo: true, timeout: 5,
      protocol: 29, checksum: true,
    });
  });

  it("-h is human-readable, except alone", () => {
    expect(parse("-h").help).toBe(true);
    expect(parse("-vh").help).toBe(true);
    const cl = parse("-h", "a", "b");
    expect(cl.help).toBe(false);
    expect(cl.humanReadable).toBe(2);
    expect(parse("--no-h", "a", "b").humanReadable).toBe(0);
    expect(parse("a", "b").humanReadable).toBe(1);
  });

  it("--help stops at once; --version after all options are read", () => {
    expect(parse("--help", "--bogus").help).toBe(true);
    expect(usageError(["--bogus", "--help"]).message).toBe("krsync: --bogus: unknown option");
    expect(parse("-V").version).toBe(true);
    expect(parse("--version", "--cc=bogus").version).toBe(true); // checked after the version exit
    expect(usageError(["-V", "--bogus"]).message).toBe("krsync: --bogus: unknown option");
  });

  it("kube options", () => {
    const cl = parse("--namespace", "ns", "--container=c", "--context=ctx", "--kubeconfig", "/k",
      "--pod-wait=30", "--all-pods", "--remote-tmp=/tmp/x", "a", "b");
    expect(cl.kube).toEqual({ namespace: "ns", container: "c", context: "ctx", kubeconfig: "/k", podWait: 30,
      allPods: true, remoteTmp: "/tmp/x" });
    expect(parse("-n", "-c", "a", "b").options).toMatchObject({ dryRun: true, checksum: true });
    expect(usageError(["--pod-wait=-1", "a", "b"]).message).toMatch(/must not be negative/);
  });

  it("daemon options: --port, --password-file, --contimeout, --motd/--no-motd", () => {
    expect(parse("a", "b").options).toMatchObject({ port: undefined, passwordFile: undefined, contimeout: 0, motd: true });
    const cl = parse("--port=8730", "--password-file", "/pw", "--contimeout=7", "--no-motd", "a", "b");
    expect(cl.options).toMatchObject({ port: 8730, passwordFile: "/pw", contimeout: 7, motd: false });
    expect(parse("--no-motd", "--motd", "--contimeout=3", "--no-contimeout", "a", "b").options).toMatchObject({ motd: true, contimeout: 0 });
    expect(usageError(["--port=x", "a", "b"]).message).toMatch(/port/);
  });

  it("-4 / -6", () => {
    expect(parse("-4", "a", "b").addressFamily).toBe(4);
    expect(parse("--ipv6", "a", "b").addressFamily).toBe(6);
  });
});

describe("filter rules", () => {
  it("collects --exclude/--include/--filter/-F in order as rule strings", () => {
    const o = parse("--exclude=*.o", "--include", "keep/", "-f", "P x", "--filter=: .f", "-F", "-F", "-F",
      "--exclude=+ inc", "--include=- exc", "--exclude=!", "--exclude=!x", "--exclude=", "a", "b").options;
    expect(o.filters).toEqual(["- *.o", "+ keep/", "P x", ": .f", ": /.rsync-filter", "- .rsync-filter",
      "+ inc", "- exc", "!", "- !x"]);
  });

  it("reads --exclude-from / --include-from lines", () => {
    const files: Record<string, string> = { ex: "a\r\nb\n#c\n;d\n\n+ e\n- f\rg", inc: "x\ny\n" };
    const cl = parseCommandLine(["--exclude-from=ex", "--include-from", "inc", "a", "b"], {
      readFile: (p) => files[p]!,
    });
    expect(cl.options.filters).toEqual(["- a", "- b", "+ e", "- f", "- g", "+ x", "+ y"]);
  });

  it("reports a missing file as rsync does", () => {
    const e = usageError(["--exclude-from=/nonexistent/x", "a", "b"], (p) => {
      throw Object.assign(new Error("nope"), { code: "ENOENT", errno: -2, path: p });
    });
    expect(e.message).toBe("krsync: [client] failed to open exclude file /nonexistent/x: No such file or directory (2)");
    expect(e.exitCode).toBe(11);
  });
});

describe("errors krsync adds", () => {
  it("names unsupported options", () => {
    expect(usageError(["-A", "a", "b"]).message).toBe("krsync does not support --acls (-A)");
    expect(usageError(["-avX", "a", "b"]).message).toBe("krsync does not support --xattrs (-X)");
    expect(usageError(["--max-size=1m", "a", "b"]).message).toBe("krsync does not support --max-size");
    expect(usageError(["--max-size"]).message).toBe("krsync: --max-size: missing argument");
    expect(usageError(["--daemon"]).message).toBe("krsync does not support --daemon");
    expect(usageError(["-xx", "a", "b"]).message).toMatch(/does not support -xx/);
    expect(usageError(["--zc=brotli", "a", "b"])).toMatchObject({ message: "unknown compress name: brotli", exitCode: 4 });
    // Negations of what krsync never does are fine.
    expect(() => parse("--no-A", "--no-xattrs", "--no-backup", "--no-s", "a", "b")).not.toThrow();
  });

  it("keeps --protocol within 27..32", () => {
    expect(usageError(["--protocol=26", "a", "b"]).message).toBe("--protocol must be at least 27 on the Client.");
    expect(usageError(["--protocol=33", "a", "b"]).message).toBe("--protocol must be no more than 32 on the Client.");
    expect(usageError(["--protocol=", "a", "b"]).exitCode).toBe(2);
    expect(parse("--protocol=27", "a", "b").options.protocol).toBe(27);
  });

  it("asks for usage with no arguments", () => {
    const e = usageError([]);
    expect(e.showUsage).toBe(true);
    expect(e.exitCode).toBe(RERR_SYNTAX);
  });
});

describe("parseSizeArg", () => {
  it("follows options.c parse_size_arg", () => {
    const b = (s: string) => parseSizeArg(s, "b", "block-size", 0, 1 << 17, false);
    expect(b("1k")).toBe(1024);
    expect(b("1kb")).toBe(1000);
    expect(b("1KiB")).toBe(1024);
    expect(b("1.5k")).toBe(1536);
    expect(b("2k-1")).toBe(2047);
    expect(b("2k+1")).toBe(2049);
    expect(b("")).toBe(0);
    expect(() => b("1e3")).toThrow("--block-size=1e3 is invalid");
    expect(() => b("+1")).toThrow("is invalid");
    expect(() => b("200k")).toThrow("--block-size=200k is too large (max: 128.00K)");
  });
});

describe("errcode", () => {
  it("formats rsync's closing line", () => {
    expect(formatExitLine(RERR_SYNTAX)).toBe("krsync error: syntax or usage error (code 1)");
    expect(formatExitLine(RERR_PARTIAL)).toBe(
      "krsync error: some files/attrs were not transferred (see previous errors) (code 23)",
    );
    expect(formatExitLine(RERR_VANISHED)).toBe(
      "krsync warning: some files vanished before they could be transferred (code 24)",
    );
    expect(formatExitLine(0)).toBe("");
    expect(rerrName(99)).toBe("unexplained error");
  });
});

it("helpText lists the supported options", () => {
  const h = helpText();
  for (const opt of ["--archive, -a", "--delete-delay", "--exclude-from=FILE", "--namespace=NS", "--pod-wait"]) {
    expect(h).toContain(opt);
  }
  expect(h).not.toContain("--acls");
});

it("defaultTransferOptions matches parsing two plain arguments", () => {
  expect(parse("a", "b").options).toEqual(defaultTransferOptions());
});

// Error wording and exit codes against native rsync: krsync's message is rsync's first stderr
// line with "rsync:" spelled "krsync:".
const NATIVE_ERRORS: string[][] = [
  ["--foo"],
  ["--no-foo"],
  ["--no-a"],
  ["--recur"],
  ["-Q"],
  ["-avQ", "a", "b"],
  ["-a-v"],
  ["---x"],
  ["--protocol=abc"],
  ["--protocol=0x"],
  ["--protocol=08"],
  ["--protocol", "x", "a", "b"],
  ["--timeout"],
  ["--timeout=5x"],
  ["--timeout=99999999999"],
  ["--timeout=-99999999999"],
  ["--zl=abc"],
  ["--perms=3"],
  ["-v=3"],
  ["-av=3"],
  ["--del=3"],
  ["--help=x"],
  ["-e"],
  ["-ave"],
  ["--exclude"],
  ["-B"],
  ["--block-size=abc"],
  ["-B1024x"],
  ["-B", "x", "a", "b"],
  ["-B131073"],
  ["-B", "-1"],
  ["-B", "1g"],
  ["--protocol=29", "-B", "1g"],
  ["--bwlimit=1x"],
  ["--bwlimit=100b"],
  ["--bwlimit=10000000000000000000000"],
  ["--cc=foo"],
  ["--cc=foo,md5"],
  ["--cc=md5,bar"],
  ["--zc=foo"],
  ["-r", "--delete-before", "--delete-after", "a", "b"],
  ["-r", "--del", "--delete-after", "a", "b"],
  ["--delete", "a", "b"],
  ["--append", "-W", "a", "b"],
  ["--cc=none", "--append", "a", "b"],
  ["--exclude-from=/nonexistent/krsync-x"],
  ["--include-from=/nonexistent/krsync-x"],
];

describe.skipIf(!haveRsync)("error messages vs native rsync", () => {
  let dir = "";
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "krsync-cli-"));
    writeFileSync(join(dir, "a"), "");
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it.each(NATIVE_ERRORS.map((a) => [a.join(" "), a] as const))("%s", (_name, argv) => {
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("RSYNC_")) env[k] = v;
    env["HOME"] = dir;
    const r = spawnSync(RSYNC, argv, { cwd: dir, env, encoding: "utf8" });
    const nativeLine = r.stderr.split("\n")[0]!;
    const e = (() => {
      try {
        parseCommandLine(argv);
      } catch (err) {
        return err as UsageError;
      }
      throw new Error("krsync accepted it");
    })();
    expect(e).toBeInstanceOf(UsageError);
    expect(e.message).toBe(nativeLine.replace(/^rsync:/, "krsync:"));
    expect(e.exitCode).toBe(r.status);
  });
});
