import { spawn } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseLocation, type Location } from "../src/transport/location.js";
import { daemonOverShellArgs, remoteShellArgv, shellQuote, splitRshCommand } from "../src/transport/rsh.js";
import { serverArgs } from "../src/protocol/serverargs.js";
import { parseCommandLine } from "../src/cli/options.js";
import { UsageError } from "../src/protocol/errcode.js";

describe("parseLocation", () => {
  const cases: [string, Location][] = [
    ["/abs/path", { kind: "local", path: "/abs/path" }],
    ["rel/path", { kind: "local", path: "rel/path" }],
    ["./x:y", { kind: "local", path: "./x:y" }],
    ["dir/x:y", { kind: "local", path: "dir/x:y" }], // a '/' before the ':'
    ["host:", { kind: "shell", host: "host", path: "" }],
    ["host:/p", { kind: "shell", host: "host", path: "/p" }],
    ["host:p:q", { kind: "shell", host: "host", path: "p:q" }],
    ["u@host:p", { kind: "shell", user: "u", host: "host", path: "p" }],
    ["a@b@host:p", { kind: "shell", user: "a@b", host: "host", path: "p" }],
    [":p", { kind: "shell", host: "", path: "p" }],
    ["[::1]:/p", { kind: "shell", host: "::1", path: "/p" }],
    ["u@[fe80::1%eth0]:p", { kind: "shell", user: "u", host: "fe80::1%eth0", path: "p" }],
    ["[::1]/p", { kind: "local", path: "[::1]/p" }],
    ["x[::1]:p", { kind: "local", path: "x[::1]:p" }],
    ["[]:p", { kind: "local", path: "[]:p" }],
    ["host::mod/sub/f", { kind: "daemon", host: "host", module: "mod", path: "sub/f" }],
    ["u@host::mod", { kind: "daemon", user: "u", host: "host", module: "mod", path: "" }],
    ["host::", { kind: "daemon", host: "host", module: "", path: "" }],
    ["rsync://host/mod/p", { kind: "daemon", host: "host", module: "mod", path: "p" }],
    ["RSYNC://u@host:8730/mod/", { kind: "daemon", user: "u", host: "host", port: 8730, module: "mod", path: "" }],
    ["rsync://host", { kind: "daemon", host: "host", module: "", path: "" }],
    ["rsync://host:/mod", { kind: "daemon", host: "host", module: "mod", path: "" }],
    ["rsync://[::1]:873/m/x", { kind: "daemon", host: "::1", port: 873, module: "m", path: "x" }],
    // A bad URL port falls back to the HOST:PATH reading, as check_for_hostspec does.
    ["rsync://host:12x/mod", { kind: "shell", host: "rsync", path: "//host:12x/mod" }],
    ["pod/web-0:/data", { kind: "kube", type: "pod", name: "web-0", path: "/data" }],
    ["po/web-0:", { kind: "kube", type: "pod", name: "web-0", path: "" }],
    ["pods/a.b:x", { kind: "kube", type: "pod", name: "a.b", path: "x" }],
    ["prod/deploy/api:/srv", { kind: "kube", namespace: "prod", type: "deployment", name: "api", path: "/srv" }],
    ["deployment/api:x", { kind: "kube", type: "deployment", name: "api", path: "x" }],
    ["deployments/api:x", { kind: "kube", type: "deployment", name: "api", path: "x" }],
    ["sts/db:x", { kind: "kube", type: "statefulset", name: "db", path: "x" }],
    ["statefulset/db:x", { kind: "kube", type: "statefulset", name: "db", path: "x" }],
    ["statefulsets/db:x", { kind: "kube", type: "statefulset", name: "db", path: "x" }],
    ["rs/r:x", { kind: "kube", type: "replicaset", name: "r", path: "x" }],
    ["replicaset/r:x", { kind: "kube", type: "replicaset", name: "r", path: "x" }],
    ["replicasets/r:x", { kind: "kube", type: "replicaset", name: "r", path: "x" }],
    ["job/j:x", { kind: "kube", type: "job", name: "j", path: "x" }],
    ["jobs/j:x", { kind: "kube", type: "job", name: "j", path: "x" }],
    ["ds/d:x", { kind: "kube", type: "daemonset", name: "d", path: "x" }],
    ["daemonset/d:x", { kind: "kube", type: "daemonset", name: "d", path: "x" }],
    ["daemonsets/d:x", { kind: "kube", type: "daemonset", name: "d", path: "x" }],
    ["ns/pod/x:a:b", { kind: "kube", namespace: "ns", type: "pod", name: "x", path: "a:b" }],
    ["./pod/x:y", { kind: "local", path: "./pod/x:y" }],
    ["/pod/x:y", { kind: "local", path: "/pod/x:y" }],
    ["a/b/pod/x:y", { kind: "local", path: "a/b/pod/x:y" }],
    ["Pod/x:y", { kind: "local", path: "Pod/x:y" }],
    ["pod/X:y", { kind: "local", path: "pod/X:y" }],
    ["NS/pod/x:y", { kind: "local", path: "NS/pod/x:y" }],
    ["svc/x:y", { kind: "local", path: "svc/x:y" }],
    ["pod/:y", { kind: "local", path: "pod/:y" }],
    ["pod/x", { kind: "local", path: "pod/x" }],
  ];
  it.each(cases)("%s", (arg, want) => expect(parseLocation(arg)).toEqual(want));

  it("never throws and keeps local paths verbatim", () => {
    fc.assert(
      fc.property(fc.string(), (s) => {
        const l = parseLocation(s);
        if (l.kind === "local") expect(l.path).toBe(s);
        if (!s.includes(":")) expect(l.kind === "local" || l.kind === "daemon").toBe(true);
      }),
    );
  });
});

describe("splitRshCommand / remoteShellArgv", () => {
  it("splits like main.c do_cmd", () => {
    expect(splitRshCommand("ssh -p 22")).toEqual(["ssh", "-p", "22"]);
    expect(splitRshCommand("  a   b ")).toEqual(["a", "b"]);
    expect(splitRshCommand(`a "b c" 'd "e"'`)).toEqual(["a", "b c", 'd "e"']);
    expect(splitRshCommand(`'it''s' "x""y" a''b ''`)).toEqual(["it's", 'x"y', "ab", ""]);
    expect(splitRshCommand("tab\there back\\ slash")).toEqual(["tab\there", "back\\", "slash"]);
    expect(() => splitRshCommand("ssh 'oops")).toThrow("Missing trailing-' in remote-shell command.");
  });

  it("assembles the command line", () => {
    const base = { host: "h", serverArgs: ["--server", "."] };
    expect(remoteShellArgv(base)).toEqual(["ssh", "h", "rsync", "--server", "."]);
    expect(remoteShellArgv({ ...base, env: { RSYNC_RSH: "rsh -x" } })).toEqual(["rsh", "-x", "h", "rsync", "--server", "."]);
    expect(remoteShellArgv({ ...base, user: "u", addressFamily: 6, rsyncPath: "sudo rsync" })).toEqual([
      "ssh", "-l", "u", "-6", "h", "sudo rsync", "--server", ".",
    ]);
    expect(remoteShellArgv({ ...base, rsh: "/usr/bin/ssh -l me", user: "u", daemon: true })).toEqual([
      "/usr/bin/ssh", "-l", "me", "h", "rsync", "--server", ".",
    ]);
    expect(remoteShellArgv({ ...base, rsh: "ssh -l me", user: "u" })).toEqual([
      "ssh", "-l", "me", "-l", "u", "h", "rsync", "--server", ".",
    ]);
    expect(remoteShellArgv({ ...base, rsh: "rsh", addressFamily: 4 })).toEqual(["rsh", "h", "rsync", "--server", "."]);
    expect(() => remoteShellArgv({ ...base, host: "-oProxyCommand=x" })).toThrow(UsageError);
  });

  it("shellQuote", () => {
    expect(shellQuote("--server")).toBe("--server");
    expect(shellQuote("a b")).toBe("'a b'");
    expect(shellQuote("it's")).toBe("'it'\\''s'");
    expect(shellQuote("")).toBe("''");
  });
});

// Native rsync decides the same: a recorder as the remote shell shows whether rsync saw a
// remote-shell host (HOST:PATH), a daemon over the shell (HOST::MOD, rsync://) or nothing.
const RSYNC = "/usr/bin/rsync";
const NATIVE_ARGS = [
  "host:/p",
  "host:",
  "u@host:p",
  "a@b@host:p",
  "[::1]:/p",
  "u@[fe80::1]:p",
  "host::mod/sub",
  "u@host::mod",
  "rsync://host/mod/p",
  "rsync://u@host:8730/mod",
  "rsync://[::1]/m",
  "rsync://host:12x/mod",
  "dir/x:y",
  "[::1]/p",
  "x[::1]:p",
  "pod/web:/data",
  "ns/deploy/api:/srv",
];

describe.skipIf(!existsSync(RSYNC))("classification vs native rsync", () => {
  let dir = "";
  let rec = "";
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "krsync-loc-"));
    rec = join(dir, "rec.sh");
    writeFileSync(rec, '#!/bin/sh\n: > "$REC_OUT"\nfor a in "$@"; do printf \'%s\\0\' "$a" >> "$REC_OUT"; done\nexit 1\n');
    chmodSync(rec, 0o755);
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it.each(NATIVE_ARGS)("%s", async (arg) => {
    const out = join(dir, `out-${NATIVE_ARGS.indexOf(arg)}`);
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("RSYNC_")) env[k] = v;
    env["HOME"] = dir;
    env["REC_OUT"] = out;
    await new Promise<void>((resolve) => {
      const p = spawn(RSYNC, ["-e", rec, "--list-only", arg], { cwd: dir, env, stdio: "ignore" });
      p.on("close", () => resolve());
    });
    const words = existsSync(out) ? readFileSync(out, "utf8").split("\0").slice(0, -1) : null;
    const loc = parseLocation(arg);
    if (loc.kind === "local" || loc.kind === "kube") {
      expect(words).toBeNull();
      return;
    }
    expect(words).not.toBeNull();
    const tail =
      loc.kind === "daemon"
        ? daemonOverShellArgs()
        : serverArgs(parseCommandLine(["--list-only", arg]).options, {
            amSender: false,
            protocol: 32,
            remotePaths: [loc.path === "" ? "." : loc.path],
          });
    const want = remoteShellArgv({ rsh: rec, user: loc.user, host: loc.host, serverArgs: tail, daemon: loc.kind === "daemon" });
    expect(words).toEqual(want.slice(1));
  });
});
