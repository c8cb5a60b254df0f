// The rsync daemon transport against a real `rsync --daemon` (test/helpers/daemon.ts): krsync and
// native rsync's client run the same command line against the same daemon, and the trees they
// leave (pull: local; push: in the writable module) are compared byte for byte with modes,
// mtimes, owners, link targets and hard-link groups, at every protocol 27..32. Then what is
// printed and the exit codes: the module list, the MOTD, an unknown module, passwords (right,
// wrong, RSYNC_PASSWORD, --password-file), HOST::MODULE with --port, the daemon over a remote
// shell (-e), --contimeout, and a hostile daemon (tests/fake servers in this process).
import { spawn } from "node:child_process";
import { chmodSync, writeFileSync } from "node:fs";
import * as net from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isRoot, rsyncPath, testBigFileMB, tmpDir } from "./helpers/env.js";
import { rshArg, runRsync, type RunResult } from "./helpers/rsync.js";
import { MOTD, startDaemon, type TestDaemon } from "./helpers/daemon.js";
import { diffSnapshots, snapshotTree } from "./helpers/snapshot.js";
import { buildNastyTree } from "./helpers/tree.js";

const ROOT = isRoot();
const BIG_MB = testBigFileMB(4);
const PROTOCOLS = [27, 28, 29, 30, 31, 32] as const;
const CLI = ["node", join(import.meta.dirname, "..", "dist", "cli", "krsync.js")];
const PASSWORD = "s3cret pass";

const krsync = (args: string[], env?: NodeJS.ProcessEnv): Promise<RunResult> => runRsync(args, { bin: CLI, ...(env ? { env } : {}) });
const native = (args: string[], env?: NodeJS.ProcessEnv): Promise<RunResult> => runRsync(args, env ? { env } : {});

/** Both clients with the same arguments ({N} in an arg becomes "native" / "krsync"). */
async function both(args: string[], env?: NodeJS.ProcessEnv): Promise<{ n: RunResult; k: RunResult }> {
  const n = await native(args.map((a) => a.replace("{N}", "native")), env);
  const k = await krsync(args.map((a) => a.replace("{N}", "krsync")), env);
  return { n, k };
}

function compare(expected: string, actual: string): string[] {
  return diffSnapshots(snapshotTree(expected, { owners: ROOT }), snapshotTree(actual, { owners: ROOT }), { owners: ROOT });
}

/** rsync's closing "rsync error: ... at file.c(N) [role=V]" and krsync's are compared without the tail. */
const firstLine = (r: RunResult) => r.stderr.split("\n")[0];

let d: TestDaemon;
let url: string;

beforeAll(async () => {
  d = await startDaemon([
    { name: "ro", comment: "the base tree", readOnly: true },
    { name: "mutated", comment: "the mutated tree", readOnly: true },
    { name: "rw", readOnly: false },
    { name: "secret", comment: "needs a password", readOnly: true, secrets: { alice: PASSWORD } },
    { name: "secretrw", comment: "needs a password, writable", readOnly: false, secrets: { alice: PASSWORD } },
  ]);
  url = `rsync://127.0.0.1:${d.port}`;
  buildNastyTree(d.path("ro"), { variant: "base", root: ROOT, bigFileMB: BIG_MB });
  buildNastyTree(d.path("mutated"), { variant: "mutated", root: ROOT, bigFileMB: BIG_MB });
  buildNastyTree(d.path("secret"), { variant: "base", root: false, bigFileMB: 0 });
});

afterAll(async () => {
  await d?.stop();
});

describe.each(PROTOCOLS)("daemon pull at protocol %i", (protocol) => {
  const opts = ["-aH", `--protocol=${protocol}`];
  let w: string;

  it("rsync://HOST:PORT/MODULE/ into an empty directory equals native rsync's", async () => {
    w = tmpDir(`dpull-${protocol}-`);
    const { n, k } = await both([...opts, `${url}/ro/`, join(w, "{N}") + "/"]);
    expect(n.code, n.stderr).toBe(0);
    expect(k.code, k.stderr).toBe(0);
    expect(k.stderr).toBe("");
    // The MOTD is printed as rsync prints it.
    expect(k.stdout).toBe(n.stdout);
    expect(compare(join(w, "native"), join(w, "krsync"))).toEqual([]);
    // From protocol 31 the mtimes carry nanoseconds: the copy is the module's tree itself.
    if (protocol >= 31) expect(compare(d.path("ro"), join(w, "krsync"))).toEqual([]);
  });

  it("a delta pull of another module with --delete over that copy equals native rsync's", async () => {
    const { n, k } = await both([...opts, "--delete", `${url}/mutated/`, join(w, "{N}") + "/"]);
    expect(n.code, n.stderr).toBe(0);
    expect(k.code, k.stderr).toBe(0);
    expect(compare(join(w, "native"), join(w, "krsync"))).toEqual([]);
  });
});

describe.each(PROTOCOLS)("daemon push at protocol %i", (protocol) => {
  const opts = ["-aH", `--protocol=${protocol}`];

  it("a push into the writable module, then a delta push with --delete, equal native rsync's", async () => {
    const dest = `${url}/rw/p${protocol}-{N}/`;
    const first = await both([...opts, d.path("ro") + "/", dest]);
    expect(first.n.code, first.n.stderr).toBe(0);
    expect(first.k.code, first.k.stderr).toBe(0);
    expect(first.k.stdout).toBe(first.n.stdout);
    const nDir = join(d.path("rw"), `p${protocol}-native`);
    const kDir = join(d.path("rw"), `p${protocol}-krsync`);
    expect(compare(nDir, kDir)).toEqual([]);
    const second = await both([...opts, "--delete", d.path("mutated") + "/", dest]);
    expect(second.n.code, second.n.stderr).toBe(0);
    expect(second.k.code, second.k.stderr).toBe(0);
    // (Not the source tree itself: a daemon without chroot trims absolute and escaping symlinks,
    // and the quick check keeps what it cannot see changed.)
    expect(compare(nDir, kDir)).toEqual([]);
  });
});

describe("daemon: what is printed, exit codes", () => {
  it("rsync://HOST:PORT/ prints the MOTD and the module list as rsync does", async () => {
    const { n, k } = await both([`${url}/`]);
    expect(n.code).toBe(0);
    expect(k.code, k.stderr).toBe(0);
    expect(k.stdout).toBe(n.stdout);
    expect(k.stdout).toContain(MOTD.split("\n")[0]);
    expect(k.stdout).toMatch(/^ro\s+\tthe base tree$/m);
    // --no-motd leaves the MOTD out, as rsync's does.
    const quiet = await both(["--no-motd", `${url}/`]);
    expect(quiet.k.stdout).toBe(quiet.n.stdout);
    expect(quiet.k.stdout).not.toContain("Welcome");
  });

  it("HOST:: with --port lists the modules too", async () => {
    const { n, k } = await both([`--port=${d.port}`, "127.0.0.1::"]);
    expect(k.code, k.stderr).toBe(0);
    expect(k.stdout).toBe(n.stdout);
  });

  it("an unknown module: the daemon's @ERROR line and exit code 5", async () => {
    const w = tmpDir("dunknown-");
    const { n, k } = await both([`${url}/nosuch/`, join(w, "{N}")]);
    expect(n.code).toBe(5);
    expect(k.code).toBe(5);
    expect(firstLine(k)).toBe(firstLine(n));
    expect(firstLine(k)).toBe("@ERROR: Unknown module 'nosuch'");
  });

  it("a push to a read-only module fails as rsync's does", async () => {
    const { n, k } = await both(["-a", d.path("ro") + "/", `${url}/ro/x/`]);
    expect(k.code).toBe(n.code);
    expect(k.stderr).toContain("ERROR: module is read only");
  });

  it("HOST::MODULE/PATH with --port pulls a sub-directory as rsync does", async () => {
    const w = tmpDir("dport-");
    const { n, k } = await both(["-aH", `--port=${d.port}`, "127.0.0.1::ro/hardlinks", join(w, "{N}")]);
    expect(n.code, n.stderr).toBe(0);
    expect(k.code, k.stderr).toBe(0);
    // No trailing slash: the directory itself arrives inside the destination.
    expect(compare(join(w, "native", "hardlinks"), join(w, "krsync", "hardlinks"))).toEqual([]);
    expect(compare(join(d.path("ro"), "hardlinks"), join(w, "krsync", "hardlinks"))).toEqual([]);
  });

  it("the password from RSYNC_PASSWORD: pull and push", async () => {
    const w = tmpDir("dpass-");
    const env = { RSYNC_PASSWORD: PASSWORD };
    const pull = await both(["-a", `rsync://alice@127.0.0.1:${d.port}/secret/`, join(w, "{N}") + "/"], env);
    expect(pull.n.code, pull.n.stderr).toBe(0);
    expect(pull.k.code, pull.k.stderr).toBe(0);
    expect(compare(join(w, "native"), join(w, "krsync"))).toEqual([]);
    const push = await both(["-a", join(w, "krsync") + "/", `rsync://alice@127.0.0.1:${d.port}/secretrw/up-{N}/`], env);
    expect(push.n.code, push.n.stderr).toBe(0);
    expect(push.k.code, push.k.stderr).toBe(0);
    expect(compare(join(d.path("secretrw"), "up-native"), join(d.path("secretrw"), "up-krsync"))).toEqual([]);
  });

  it("a wrong password: @ERROR: auth failed, exit code 5", async () => {
    const w = tmpDir("dbadpass-");
    const { n, k } = await both(["-a", `rsync://alice@127.0.0.1:${d.port}/secret/`, join(w, "{N}")], { RSYNC_PASSWORD: "wrong" });
    expect(n.code).toBe(5);
    expect(k.code).toBe(5);
    expect(firstLine(k)).toBe(firstLine(n));
    expect(firstLine(k)).toBe("@ERROR: auth failed on module secret");
    // An unknown user fails the same way.
    const other = await both(["-a", `rsync://bob@127.0.0.1:${d.port}/secret/`, join(w, "{N}")], { RSYNC_PASSWORD: PASSWORD });
    expect(other.k.code).toBe(5);
    expect(firstLine(other.k)).toBe(firstLine(other.n));
  });

  it("--password-file: its first line is the password; one others can read is refused (exit 1)", async () => {
    const w = tmpDir("dpassfile-");
    const file = join(w, "pw");
    writeFileSync(file, `${PASSWORD}\nsecond line is ignored\n`);
    chmodSync(file, 0o600);
    // RSYNC_PASSWORD is wrong: the file wins.
    const env = { RSYNC_PASSWORD: "wrong" };
    const ok = await both(["-a", `--password-file=${file}`, `rsync://alice@127.0.0.1:${d.port}/secret/`, join(w, "{N}") + "/"], env);
    expect(ok.n.code, ok.n.stderr).toBe(0);
    expect(ok.k.code, ok.k.stderr).toBe(0);
    expect(compare(join(w, "native"), join(w, "krsync"))).toEqual([]);
    chmodSync(file, 0o644);
    const open = await both(["-a", `--password-file=${file}`, `rsync://alice@127.0.0.1:${d.port}/secret/`, join(w, "{N}-2")], env);
    expect(open.n.code).toBe(1);
    expect(open.k.code).toBe(1);
    expect(firstLine(open.k)).toBe(firstLine(open.n));
    // A module without auth never reads the file.
    const noAuth = await both(["-a", `--password-file=${file}`, `${url}/ro/`, join(w, "{N}-3") + "/"]);
    expect(noAuth.k.code, noAuth.k.stderr).toBe(noAuth.n.code);
  });

  it("--password-file and --contimeout without a daemon: rsync's usage errors", async () => {
    const w = tmpDir("dnodaemon-");
    for (const opt of ["--password-file=/nonexistent", "--contimeout=5"]) {
      const { n, k } = await both(["-a", d.path("ro") + "/", join(w, "{N}")].concat(opt));
      expect(n.code).toBe(1);
      expect(k.code).toBe(1);
      expect(firstLine(k)).toBe(firstLine(n));
    }
  });

  it("a closed port: failed to connect, exit code 10", async () => {
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
    const port = (srv.address() as net.AddressInfo).port;
    await new Promise<void>((r) => srv.close(() => r()));
    const w = tmpDir("dclosed-");
    const { n, k } = await both(["--contimeout=5", `rsync://127.0.0.1:${port}/ro/`, join(w, "{N}")]);
    expect(n.code).toBe(10);
    expect(k.code).toBe(10);
    expect(k.stderr).toContain(`failed to connect to 127.0.0.1 (127.0.0.1): Connection refused (111)`);
  });
});

describe("--contimeout", () => {
  it("a listener that never accepts (its backlog full): exit code 35 after the timeout, as rsync's", async () => {
    // Python's listen(0) without accept(): once the backlog is taken, SYNs go unanswered.
    const py = spawn("python3", ["-c", "import socket,time\ns=socket.socket();s.bind(('127.0.0.1',0));s.listen(0);print(s.getsockname()[1],flush=True);time.sleep(60)"], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    const held: net.Socket[] = [];
    try {
      const port = await new Promise<number>((resolve) => py.stdout!.once("data", (b: Buffer) => resolve(Number(String(b).trim()))));
      for (let i = 0; i < 4; i++) held.push(net.connect({ host: "127.0.0.1", port }).on("error", () => {}));
      await new Promise((r) => setTimeout(r, 300));
      const w = tmpDir("dcontimeout-");
      const started = Date.now();
      const { n, k } = await both(["--contimeout=1", `rsync://127.0.0.1:${port}/m/`, join(w, "{N}")]);
      expect(n.code).toBe(35);
      expect(k.code).toBe(35);
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(k.stderr).toContain("timeout waiting for daemon connection (code 35)");
    } finally {
      for (const h of held) h.destroy();
      py.kill();
    }
  });
});

describe("daemon over a remote shell (-e CMD HOST::MODULE)", () => {
  const rsh = () => ["-e", rshArg(), `--rsync-path=${rsyncPath} --config=${d.config}`];

  it.each([27, 30, 32])("pull and push at protocol %i equal native rsync's", async (protocol) => {
    const w = tmpDir(`drsh-${protocol}-`);
    const opts = [...rsh(), "-aH", `--protocol=${protocol}`];
    const pull = await both([...opts, "fakehost::ro/", join(w, "{N}") + "/"]);
    expect(pull.n.code, pull.n.stderr).toBe(0);
    expect(pull.k.code, pull.k.stderr).toBe(0);
    expect(pull.k.stdout).toBe(pull.n.stdout);
    expect(compare(join(w, "native"), join(w, "krsync"))).toEqual([]);
    const push = await both([...opts, d.path("mutated") + "/", `fakehost::rw/rsh${protocol}-{N}/`]);
    expect(push.n.code, push.n.stderr).toBe(0);
    expect(push.k.code, push.k.stderr).toBe(0);
    expect(compare(join(d.path("rw"), `rsh${protocol}-native`), join(d.path("rw"), `rsh${protocol}-krsync`))).toEqual([]);
  });

  it("the module list and an unknown module", async () => {
    const list = await both([...rsh(), "fakehost::"]);
    expect(list.k.code, list.k.stderr).toBe(0);
    expect(list.k.stdout).toBe(list.n.stdout);
    const w = tmpDir("drsh-unknown-");
    const bad = await both([...rsh(), "fakehost::nosuch/", join(w, "{N}")]);
    expect(bad.n.code).toBe(5);
    expect(bad.k.code).toBe(5);
    expect(firstLine(bad.k)).toBe(firstLine(bad.n));
  });
});

describe("a hostile daemon", () => {
  /** A one-shot fake daemon: `script` gets each connection's socket. */
  async function fakeDaemon(script: (s: net.Socket) => void): Promise<{ port: number; close: () => void }> {
    const srv = net.createServer((s) => {
      s.on("error", () => {});
      s.on("data", () => {});
      script(s);
    });
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
    return { port: (srv.address() as net.AddressInfo).port, close: () => srv.close() };
  }

  const cases: [string, (s: net.Socket) => void, RegExp][] = [
    ["no greeting", (s) => s.end(), /did not see server greeting/],
    ["an HTTP answer", (s) => s.end("HTTP/1.1 400 Bad Request\r\n\r\n"), /server sent "HTTP\/1.1 400 Bad Request" rather than greeting/],
    ["a greeting without subprotocol", (s) => s.end("@RSYNCD: 31\n"), /omitted the subprotocol value/],
    ["an endless line", (s) => s.write("@RSYNCD: 32.0 md5\n" + "x".repeat(100_000)), /longer than 4096 bytes/],
    ["endless MOTD lines", (s) => s.write("@RSYNCD: 32.0 md5\n" + "motd\n".repeat(10_000)), /more than 4096 MOTD lines/],
    ["a NUL in a line", (s) => s.end("@RSYNCD: 32.0 md5\nab\0cd\n"), /NUL byte/],
    ["a second password request", (s) => s.end("@RSYNCD: 32.0 md5\n@RSYNCD: AUTHREQD abc\n@RSYNCD: AUTHREQD abc\n"), /password twice/],
    ["no auth digest in common", (s) => s.end("@RSYNCD: 32.0 crc32\n@RSYNCD: AUTHREQD abc\n"), /daemon auth checksum/],
  ];
  it.each(cases)("%s: a clear error and a non-zero rsync exit code", async (_name, script, message) => {
    const f = await fakeDaemon(script);
    try {
      const w = tmpDir("devil-");
      const k = await krsync([`rsync://127.0.0.1:${f.port}/mod/`, join(w, "dst")], { RSYNC_PASSWORD: "x" });
      expect(k.stderr).toMatch(message);
      expect([4, 5]).toContain(k.code);
    } finally {
      f.close();
    }
  });

  it("control characters in the MOTD and in @ERROR are printed escaped", async () => {
    const f = await fakeDaemon((s) => s.end("@RSYNCD: 32.0 md5\nhello\x1b[2Jworld\n@ERROR: bad\x07thing\n"));
    try {
      const w = tmpDir("devil-");
      const k = await krsync([`rsync://127.0.0.1:${f.port}/mod/`, join(w, "dst")]);
      expect(k.code).toBe(5);
      expect(k.stdout).toContain("hello\\#033[2Jworld");
      expect(k.stderr).toContain("@ERROR: bad\\#007thing");
      expect(k.stdout + k.stderr).not.toMatch(/[\x07\x1b]/);
    } finally {
      f.close();
    }
  });
});
