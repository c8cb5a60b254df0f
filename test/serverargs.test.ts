// serverArgs / remoteShellArgv against native rsync: a fake remote shell records the argv
// rsync gives it and exits non-zero; the words must be exactly what krsync would produce.

import { spawn } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseCommandLine } from "../src/cli/options.js";
import { defaultTransferOptions, MAX_PROTOCOL } from "../src/protocol/options.js";
import { safeFileArg, serverArgs } from "../src/protocol/serverargs.js";
import { parseLocation } from "../src/transport/location.js";
import { daemonOverShellArgs, remoteShellArgv } from "../src/transport/rsh.js";

const RSYNC = "/usr/bin/rsync";
const haveRsync = existsSync(RSYNC);

let dir = "";
let rec = ""; // the recorder script
let src = ""; // an existing local source dir
let dst = ""; // a local destination dir

/** What krsync would run for this command line (argv[0], the remote shell, removed). */
function krsyncRemoteArgv(argv: string[]): string[] {
  const cl = parseCommandLine(argv);
  const locs = cl.args.map(parseLocation);
  const first = locs[0]!;
  let amSender: boolean;
  let remote: typeof locs;
  if (first.kind === "shell") {
    amSender = false;
    // main.c start_client: the last arg is the local destination unless it starts with ':'.
    const last = cl.args[cl.args.length - 1]!;
    remote = cl.args.length === 1 || last.startsWith(":") ? locs : locs.slice(0, -1);
  } else {
    amSender = true;
    remote = locs.slice(-1);
  }
  const hostLoc = remote[0]!;
  if (hostLoc.kind !== "shell") throw new Error("not a remote-shell transfer");
  const remotePaths = remote.map((l) => {
    if (l.kind !== "shell") throw new Error("mixed");
    return l.path === "" ? "." : l.path;
  });
  const words = remoteShellArgv({
    rsh: cl.options.rsh,
    user: hostLoc.user,
    host: hostLoc.host,
    rsyncPath: cl.options.rsyncPath,
    addressFamily: cl.addressFamily,
    serverArgs: serverArgs(cl.options, { amSender, protocol: cl.options.protocol ?? MAX_PROTOCOL, remotePaths }),
  });
  return words.slice(1);
}

function cleanEnv(out: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("RSYNC_")) env[k] = v;
  env["HOME"] = dir; // no ~/.popt aliases
  env["REC_OUT"] = out;
  return env;
}

let counter = 0;
/** Runs native rsync with these args; returns the argv its remote shell was given. */
function nativeRemoteArgv(argv: string[]): Promise<string[] | null> {
  const out = join(dir, `out-${counter++}`);
  return new Promise((resolve) => {
    const p = spawn(RSYNC, argv, { env: cleanEnv(out), stdio: ["ignore", "ignore", "ignore"] });
    p.on("close", () => {
      if (!existsSync(out)) return resolve(null);
      const words = readFileSync(out, "latin1").split("\0");
      words.pop();
      resolve(words);
    });
  });
}

interface Case {
  name: string;
  argv: string[]; // without -e (added below unless the case has its own)
  protocol?: number;
}

// Option sets: each runs as a pull and as a push, at several protocols.
const OPTION_SETS: string[][] = [
  [],
  ["-a"],
  ["-av"],
  ["-avv"],
  ["-vvvvvvvvvvvv"],
  ["-avz"],
  ["-q"],
  ["-aq"],
  ["-n"],
  ["-an"],
  ["-r"],
  ["-d"],
  ["-rd"],
  ["-d", "--delete"],
  ["-d", "--del"],
  ["-r", "--delete"],
  ["-r", "--del"],
  ["-r", "--delete-before"],
  ["-r", "--delete-during"],
  ["-r", "--delete-delay"],
  ["-r", "--delete-after"],
  ["-r", "--delete-excluded"],
  ["-r", "--delete", "--delete-excluded"],
  ["-r", "--delete-after", "--delete-excluded"],
  ["-a", "--delete", "--force"],
  ["-r", "--force"],
  ["-a", "--no-inc-recursive"],
  ["-a", "--no-i-r", "--i-r"],
  ["-a", "--no-D"],
  ["-a", "--no-specials"],
  ["-a", "--no-devices"],
  ["--devices"],
  ["--specials"],
  ["-D"],
  ["-a", "--no-perms", "--no-times", "--no-owner", "--no-group"],
  ["-a", "--no-o", "--no-g", "--no-p", "--no-t", "--no-l", "--no-r"],
  ["-a", "--no-recursive", "-d"],
  ["-a", "--no-links", "--no-r"],
  ["-rlptgoD", "--no-D", "--devices"],
  ["-H"],
  ["-aH"],
  ["-c"],
  ["-ac", "--no-c"],
  ["--size-only"],
  ["-I"],
  ["-R"],
  ["-aR"],
  ["-x"],
  ["-S"],
  ["-W"],
  ["--no-W"],
  ["-W", "--no-whole-file"],
  ["-z"],
  ["-zz"],
  ["--zc=zlib"],
  ["--zc=zlibx"],
  ["--compress-choice=zlib", "-z"],
  ["-z", "--zl=3"],
  ["--zl=3"],
  ["--compress-level=9", "-z"],
  ["-z", "--zc=none"],
  ["--zc=none", "--zl=1"],
  ["--zc=auto", "-z"],
  ["--old-compress"],
  ["--new-compress"],
  ["-z", "--no-z"],
  ["-z", "--no-compress", "--zl=2"],
  ["--zc=zstd"],
  ["--zc=lz4"],
  ["-z", "--zc=zstd", "--zl=19"],
  ["--zc=lz4", "--zl=-3"],
  ["-z", "--skip-compress=gz/jpg/mp[34]"],
  ["-z", "--skip-compress=a b;c"],
  ["--skip-compress="],
  ["--cc=md5"],
  ["--cc=xxh128"],
  ["--cc=xxh3"],
  ["--cc=sha1"],
  ["--checksum-choice=md5,md4"],
  ["--cc=none"],
  ["--cc=auto"],
  ["--cc=auto,auto"],
  ["--cc=xxh64,auto"],
  ["--timeout=30"],
  ["--timeout", "0x10"],
  ["--timeout=-5"],
  ["--timeout=30", "--no-timeout"],
  ["--bwlimit=100"],
  ["--bwlimit=1.5M"],
  ["--bwlimit=1000kb"],
  ["--bwlimit=0"],
  ["--bwlimit=100", "--no-bwlimit"],
  ["-B1024"],
  ["-B", "8k"],
  ["--block-size=2048"],
  ["-B0"],
  ["--inplace"],
  ["--append"],
  ["--inplace", "-S", "--no-W"],
  ["--inplace", "-S"],
  ["--append", "-S", "--no-W"],
  ["--partial"],
  ["-P"],
  ["--partial", "--inplace"],
  ["-P", "--append"],
  ["--progress"],
  ["--progress", "-v"],
  ["--progress", "-q"],
  ["--progress", "-i"],
  ["-i"],
  ["-ii"],
  ["-iv"],
  ["-vi", "--no-i"],
  ["--stats"],
  ["--stats", "-v"],
  ["--numeric-ids"],
  ["-R", "--no-implied-dirs"],
  ["-R", "--no-i-d", "--implied-dirs"],
  ["--no-implied-dirs"],
  ["--list-only"],
  ["--list-only", "-r"],
  ["--list-only", "--no-d"],
  ["-a", "--exclude=*.o", "--include=x", "-F", "-f", "- y"],
  ["--blocking-io"],
  ["-h"],
  ["-hh", "-v"],
  ["--no-h"],
  ["--rsync-path=/opt/bin/rsync"],
  ["--rsync-path", "sudo rsync --fake"],
  ["-avzP", "--delete", "--numeric-ids", "--timeout=60", "--bwlimit=500", "-B4096", "--cc=md5"],
  ["-rltD", "-HS", "--size-only", "--force", "--stats", "-ii", "--zl=6", "--zc=zlib"],
];

const PROTOCOLS: (number | undefined)[] = [undefined, 27, 28, 29, 30, 31];

function cases(): Case[] {
  const out: Case[] = [];
  for (const opts of OPTION_SETS) {
    for (const protocol of PROTOCOLS) {
      const p = protocol === undefined ? [] : [`--protocol=${protocol}`];
      const tag = `${opts.join(" ") || "(none)"} @${protocol ?? MAX_PROTOCOL}`;
      out.push({ name: `pull ${tag}`, argv: [...opts, ...p, "host:/src/", "@DST"] });
      out.push({ name: `push ${tag}`, argv: [...opts, ...p, "@SRC/", "host:/dst/"] });
    }
  }
  // Arguments: paths, users, several sources, hosts.
  const paths: [string, string[]][] = [
    ["implied list-only", ["host:/src/"]],
    ["implied list-only -r", ["-r", "host:/src/"]],
    ["implied list-only --no-d", ["--no-d", "host:/src/"]],
    ["spaces", ["host:/a b/c d", "@DST"]],
    ["shell chars", ["host:/x$y;z|w&v(1){2}<3>4!5#6`7'8\"9", "@DST"]],
    ["wildcards kept", ["host:/a*b?c[d]", "@DST"]],
    ["backslashes", ["host:/a\\*b\\c\\\\d", "@DST"]],
    ["leading dash", ["host:-rf", "@DST"]],
    ["tilde pull", ["host:~", "@DST"]],
    ["tilde user pull", ["host:~bob", "@DST"]],
    ["tilde slash pull", ["host:~/x", "@DST"]],
    ["tilde -R pull", ["-R", "host:~/x", "@DST"]],
    ["tilde -R dot pull", ["-R", "host:~/./x", "@DST"]],
    ["tilde push", ["@SRC/", "host:~"]],
    ["tilde -R push", ["-R", "@SRC/", "host:~/x"]],
    ["empty remote path pull", ["host:", "@DST"]],
    ["empty remote path push", ["@SRC/", "host:"]],
    ["relative remote path", ["host:sub/dir", "@DST"]],
    ["user", ["bob@host:/src/", "@DST"]],
    ["user push", ["@SRC/", "bob@host:/dst/"]],
    ["user with @", ["a@b@host:/src/", "@DST"]],
    ["ipv6", ["[::1]:/src/", "@DST"]],
    ["ipv6 user", ["bob@[fe80::1]:/src/", "@DST"]],
    ["several sources", ["host:/a", "host:/b", ":/c", "@DST"]],
    ["several sources, no dest", ["host:/a", ":/b"]],
    ["options after args", ["host:/src/", "-av", "@DST", "--delete"]],
    ["-- ends options", ["-a", "--", "host:/src/", "@DST"]],
    ["-4 not ssh", ["-4", "host:/src/", "@DST"]],
  ];
  for (const [name, argv] of paths) out.push({ name: `args: ${name}`, argv });
  return out;
}

// Remote-shell command strings (-e) and how they split.
const RSH_CASES: [string, string[]][] = [
  ["-p 2222", ["host:/src/", "@DST"]],
  ["-o 'ProxyCommand ssh -W %h:%p gw' -x", ["host:/src/", "@DST"]],
  ['"a b" \'c "d" e\'', ["host:/src/", "@DST"]],
  ["a''b 'it''s' \"x\"\"y\"", ["host:/src/", "@DST"]],
  ["  spaced   words  ", ["host:/src/", "@DST"]],
  ["tab\there", ["host:/src/", "@DST"]],
  ["back\\slash", ["host:/src/", "@DST"]],
  ["-l alice", ["bob@host:/src/", "@DST"]],
  ["-l -x", ["bob@host:/src/", "@DST"]],
];

// Whole command lines (no -e added): other spellings of -e, and --rsh.
const RAW_CASES: [string, string[]][] = [
  ["bundled -avze REC", ["-avze", "@REC", "host:/src/", "@DST"]],
  ["glued -eREC", ["-e@REC", "host:/src/", "@DST"]],
  ["-e=REC", ["-e=@REC", "host:/src/", "@DST"]],
  ["--rsh=REC -p 1", ["--rsh=@REC -p 1", "host:/src/", "@DST"]],
  ["--rsh REC", ["--rsh", "@REC", "@SRC/", "u@host:/dst/"]],
  ["last -e wins", ["-e", "nonexistent-shell", "-e", "@REC", "host:/src/", "@DST"]],
];

// A daemon reached over the remote shell: HOST::MODULE / rsync:// with -e.
const DAEMON_CASES: [string, string, string][] = [
  ["daemon", "", "host::mod/p"],
  ["daemon user", "", "u@host::mod/p"],
  ["daemon user, -l in rsh", " -l alice", "u@host::mod/p"],
  ["daemon url", "", "rsync://u@host:8730/mod/p"],
];

const CASES = cases();
const results = new Map<string, { native: string[] | null; argv: string[] }>();

function resolveArgv(argv: string[]): string[] {
  return argv.map((a) => a.replace("@DST", dst).replace("@SRC", src).replace("@REC", rec));
}

describe.skipIf(!haveRsync)("server args vs native rsync", () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "krsync-serverargs-"));
    rec = join(dir, "rec.sh");
    writeFileSync(rec, '#!/bin/sh\n: > "$REC_OUT"\nfor a in "$@"; do printf \'%s\\0\' "$a" >> "$REC_OUT"; done\nexit 1\n');
    chmodSync(rec, 0o755);
    src = join(dir, "src");
    dst = join(dir, "dst");
    mkdirSync(src);
    mkdirSync(dst);
    writeFileSync(join(src, "f"), "x");
    // A recorder named ssh, to see -4/-6 being added.
    mkdirSync(join(dir, "bin"));
    symlinkSync(rec, join(dir, "bin", "ssh"));

    const jobs: [string, string[]][] = [];
    for (const c of CASES) jobs.push([c.name, ["-e", rec, ...resolveArgv(c.argv)]]);
    for (const [rsh, argv] of RSH_CASES) jobs.push([`rsh: ${rsh}`, ["-e", `${rec} ${rsh}`, ...resolveArgv(argv)]]);
    for (const fam of ["-4", "-6", "--ipv4", "--ipv6"]) {
      jobs.push([`ssh ${fam}`, ["-e", join(dir, "bin", "ssh"), fam, "bob@host:/src/", dst]]);
    }
    for (const [name, argv] of RAW_CASES) jobs.push([`raw: ${name}`, resolveArgv(argv)]);
    for (const [name, rsh, arg] of DAEMON_CASES) jobs.push([name, ["-e", rec + rsh, arg, dst]]);
    let i = 0;
    const worker = async () => {
      while (i < jobs.length) {
        const [name, argv] = jobs[i++]!;
        results.set(name, { native: await nativeRemoteArgv(argv), argv });
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
  }, 120_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const check = (name: string) => {
    const r = results.get(name)!;
    expect(r.native, "native rsync did not run the remote shell").not.toBeNull();
    expect(krsyncRemoteArgv(r.argv)).toEqual(r.native);
  };

  it.each(CASES.map((c) => c.name))("%s", (name) => check(name));
  it.each(RSH_CASES.map(([rsh]) => `rsh: ${rsh}`))("%s", (name) => check(name));
  it.each(["-4", "-6", "--ipv4", "--ipv6"].map((f) => `ssh ${f}`))("%s", (name) => check(name));
  it.each(RAW_CASES.map(([name]) => `raw: ${name}`))("%s", (name) => check(name));
  it.each(DAEMON_CASES)("%s", (name, rsh, arg) => {
    const r = results.get(name)!;
    const loc = parseLocation(arg);
    if (loc.kind !== "daemon") throw new Error("not a daemon location");
    const want = remoteShellArgv({
      rsh: rec + rsh,
      user: loc.user,
      host: loc.host,
      serverArgs: daemonOverShellArgs(),
      daemon: true,
    });
    expect(want.slice(1)).toEqual(r.native);
  });
});

describe("serverArgs (unit)", () => {
  it("starts with --server and ends with . and the paths", () => {
    const o = defaultTransferOptions();
    expect(serverArgs(o, { amSender: true, protocol: 29, remotePaths: ["/d"] })).toEqual(["--server", ".", "/d"]);
    expect(serverArgs(o, { amSender: false, protocol: 29, remotePaths: ["/a", "/b"] })).toEqual([
      "--server",
      "--sender",
      ".",
      "/a",
      "/b",
    ]);
  });

  it("offers inc-recursion only with -r and not to a receiver deleting before/after", () => {
    const o = { ...defaultTransferOptions(), recursive: true, dirs: true };
    expect(serverArgs(o, { amSender: true, protocol: 32, remotePaths: ["x"] })[1]).toBe("-re.iLsfxCIvu");
    o.delete = true;
    o.deleteTiming = "after";
    expect(serverArgs(o, { amSender: false, protocol: 32, remotePaths: ["x"] })[2]).toBe("-re.LsfxCIvu");
    expect(serverArgs(o, { amSender: true, protocol: 32, remotePaths: ["x"] })[1]).toBe("-re.iLsfxCIvu");
  });

  it("quoting none leaves names alone but defuses a leading dash", () => {
    const o = defaultTransferOptions();
    expect(serverArgs(o, { amSender: true, protocol: 29, remotePaths: ["a b$", "-x"], quoting: "none" })).toEqual([
      "--server",
      ".",
      "a b$",
      "./-x",
    ]);
  });

  it("safeFileArg escapes shell characters but not wildcards", () => {
    expect(safeFileArg("a b*", true, false)).toBe("a\\ b*");
    expect(safeFileArg("\\*\\x", true, false)).toBe("\\*\\\\x");
    expect(safeFileArg("~x", false, false)).toBe("\\~x");
    expect(safeFileArg("~x", true, false)).toBe("~x");
  });
});
