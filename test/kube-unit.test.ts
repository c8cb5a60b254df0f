// Pure parts of the Kubernetes side (selectors, pod order, exec URL and status, the agent
// command line, the preamble reader's hand-over) and the agent script itself, run by the
// host's busybox sh / dash with a fake rsync (no root, no chroot needed).

import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { agentCommand, agentScript, availableBinaries, binaryDir, PreambleReader, type AgentBinary } from "../src/kube/agent.js";
import { exitCodeOfStatus, execUrl } from "../src/kube/exec-ws.js";
import { comparePods, isReadyPod, selectorString, type Pod } from "../src/kube/pods.js";
import type { LoadedKubeConfig } from "../src/kube/config.js";
import { tmpDir } from "./helpers/env.js";

describe("selectors, readiness and pod order", () => {
  it("selectorString renders matchLabels and matchExpressions", () => {
    expect(selectorString({ matchLabels: { app: "web", tier: "x" } })).toBe("app=web,tier=x");
    expect(
      selectorString({
        matchLabels: { a: "1" },
        matchExpressions: [
          { key: "b", operator: "In", values: ["x", "y"] },
          { key: "c", operator: "NotIn", values: ["z"] },
          { key: "d", operator: "Exists" },
          { key: "e", operator: "DoesNotExist" },
        ],
      }),
    ).toBe("a=1,b in (x,y),c notin (z),d,!e");
    expect(selectorString(undefined)).toBe("");
    expect(() => selectorString({ matchExpressions: [{ key: "a", operator: "Near" }] })).toThrow(/unknown label selector operator/);
  });

  const pod = (name: string, ready: boolean, since: string, extra: Partial<Pod["metadata"]> = {}, phase = "Running"): Pod => ({
    metadata: { name, ...extra },
    status: { phase, conditions: [{ type: "Ready", status: ready ? "True" : "False", lastTransitionTime: since }] },
  });

  it("isReadyPod: Running, Ready, not terminating", () => {
    expect(isReadyPod(pod("a", true, "2024-01-01T00:00:00Z"))).toBe(true);
    expect(isReadyPod(pod("a", false, "2024-01-01T00:00:00Z"))).toBe(false);
    expect(isReadyPod(pod("a", true, "2024-01-01T00:00:00Z", { deletionTimestamp: "2024-01-02T00:00:00Z" }))).toBe(false);
    expect(isReadyPod(pod("a", true, "2024-01-01T00:00:00Z", {}, "Pending"))).toBe(false);
  });

  it("comparePods: Ready longest first, then by name", () => {
    const ps = [pod("c", true, "2024-01-02T00:00:00Z"), pod("b", true, "2024-01-01T00:00:00Z"), pod("a", true, "2024-01-02T00:00:00Z")];
    expect(ps.sort(comparePods).map((p) => p.metadata!.name)).toEqual(["b", "a", "c"]);
  });
});

describe("exec URL and status", () => {
  const cfg = (server: string) => ({ cluster: { name: "c", server, skipTLSVerify: false } }) as unknown as LoadedKubeConfig;

  it("one command= per argv word, container and the three streams; a server path prefix is kept", () => {
    const u = execUrl(cfg("https://k.example:6443/k8s/clusters/c1/"), "ns", "web-0", "app", ["sh", "-c", "echo a b&c", "x y"]);
    expect(u.protocol).toBe("wss:");
    expect(u.pathname).toBe("/k8s/clusters/c1/api/v1/namespaces/ns/pods/web-0/exec");
    expect(u.searchParams.getAll("command")).toEqual(["sh", "-c", "echo a b&c", "x y"]);
    expect(u.searchParams.get("container")).toBe("app");
    expect(["stdin", "stdout", "stderr"].map((k) => u.searchParams.get(k))).toEqual(["true", "true", "true"]);
    expect(execUrl(cfg("http://127.0.0.1:8001"), "n", "p", "c", ["x"]).protocol).toBe("ws:");
  });

  it("exit codes from the channel-3 Status", () => {
    expect(exitCodeOfStatus({ status: "Success" })).toBe(0);
    expect(exitCodeOfStatus({ status: "Failure", reason: "NonZeroExitCode", details: { causes: [{ reason: "ExitCode", message: "23" }] } })).toBe(23);
    expect(exitCodeOfStatus({ status: "Failure", reason: "InternalError", message: 'exec: "sh": executable file not found in $PATH' })).toBe(127);
    expect(exitCodeOfStatus({ status: "Failure", reason: "InternalError", message: "boom" })).toBe(126);
  });
});

describe("PreambleReader", () => {
  it("reads lines, then hands the rest of the stream over untouched (flowing 'data' afterwards)", async () => {
    const s = new PassThrough();
    const r = new PreambleReader(s);
    s.write("KRSYNC-AGENT 1\nKRSYNC-EXEC path /usr/bin/rsync\n\x1f\x00\x00\x00binary");
    expect(await r.line()).toBe("KRSYNC-AGENT 1");
    expect(await r.line()).toBe("KRSYNC-EXEC path /usr/bin/rsync");
    r.release();
    const got: Buffer[] = [];
    s.on("data", (d: Buffer) => got.push(d));
    s.end(Buffer.from(" tail"));
    await new Promise((res) => s.on("end", res));
    expect(Buffer.concat(got).toString("latin1")).toBe("\x1f\x00\x00\x00binary tail");
  });

  it("lines split across chunks; null at EOF; peek", async () => {
    const s = new PassThrough();
    const r = new PreambleReader(s);
    s.write("KRSY");
    setTimeout(() => s.end("NC-ERR nodir /tmp=missing\n"), 10);
    expect(await r.line()).toBe("KRSYNC-ERR nodir /tmp=missing");
    expect(await r.line()).toBeNull();
    const s2 = new PassThrough();
    const r2 = new PreambleReader(s2);
    s2.end();
    expect(await r2.peek()).toBe(false);
  });
});

describe("the agent command", () => {
  it("sh -c SCRIPT krsync-agent OPTIONS -- SERVER-ARGS, comments stripped", () => {
    const b: AgentBinary = { arch: "amd64", path: "/x", sha256: "a".repeat(64), size: 10 };
    const argv = agentCommand({ rsyncPath: "sudo rsync", remoteTmp: "/work", bins: [b] }, ["--server", "--sender", ".", "/data/"]);
    expect(argv.slice(0, 2)).toEqual(["sh", "-c"]);
    expect(argv.slice(3)).toEqual(["krsync-agent", "--rsync-path=sudo rsync", "--tmp=/work", `--bin=amd64:${"a".repeat(64)}:10`, "--", "--server", "--sender", ".", "/data/"]);
    expect(agentScript()).not.toMatch(/^\s*#/m);
    expect(agentScript().length).toBeLessThan(4000);
  });

  it("binaries come from vendor/rsync/out with SHA256SUMS; a missing dir says how to build them", () => {
    const set = availableBinaries(binaryDir({}));
    if (set.bins.length > 0) {
      for (const b of set.bins) expect(statSync(b.path).size).toBe(b.size);
    }
    const none = availableBinaries("/nonexistent/out");
    expect(none.bins).toEqual([]);
    expect(none.problem).toMatch(/bash vendor\/rsync\/build\.sh/);
  });
});

// ---- the script, run on the host ----

const BUSYBOX = ["/bin/busybox", "/usr/bin/busybox"].find((p) => existsSync(p));
const DASH = existsSync("/bin/dash") ? "/bin/dash" : undefined;

/** A directory of busybox applet links (no rsync), used as PATH. */
function appletDir(): string {
  const d = tmpDir("agent-bin-");
  for (const a of ["sh", "head", "wc", "chmod", "mv", "rm", "cat", "df", "tail", "sha256sum", "uname", "printf"]) symlinkSync(BUSYBOX!, join(d, a));
  return d;
}

const FAKE_RSYNC = '#!/bin/sh\nif [ "$1" = --version ]; then echo "rsync  version 9.9.9 (fake)"; exit 0; fi\necho "fake rsync got: $*"\n';
const fakeSha = createHash("sha256").update(FAKE_RSYNC).digest("hex");

interface AgentRun {
  lines: string[];
  rest: string;
  code: number | null;
}

/** Runs the agent: answers NEED with `payload` and collects what follows EXEC. */
function runAgentScript(shell: string, path: string, args: string[], payload: string | Buffer = FAKE_RSYNC): Promise<AgentRun> {
  return new Promise((resolve, reject) => {
    const p = spawn(shell, ["-c", agentScript(), "krsync-agent", ...args], { env: { PATH: path }, stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    p.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      if (/KRSYNC-NEED /.test(out) && !p.stdin.writableEnded) p.stdin.write(payload);
    });
    p.stdin.on("error", () => undefined);
    p.on("error", reject);
    p.on("close", (code) => {
      const lines: string[] = [];
      let rest = out;
      for (;;) {
        const nl = rest.indexOf("\n");
        if (nl < 0 || !rest.startsWith("KRSYNC-")) break;
        lines.push(rest.slice(0, nl));
        rest = rest.slice(nl + 1);
        if (lines.at(-1)!.startsWith("KRSYNC-EXEC")) break;
      }
      resolve({ lines, rest, code });
    });
  });
}

describe.skipIf(!BUSYBOX)("agent/bootstrap.sh under busybox sh", () => {
  const bin = (size = Buffer.byteLength(FAKE_RSYNC), sha = fakeSha) => `--bin=amd64:${sha}:${size}`;

  it("no rsync: asks for the binary, checks it, installs it content-addressed (700), execs it with the args", async () => {
    const path = appletDir();
    const tmp = tmpDir("agent-tmp-");
    const r = await runAgentScript(join(path, "sh"), path, [`--tmp=${tmp}`, bin(), "--", "--server", "--sender", ".", "/a b/"]);
    expect(r.lines).toEqual(["KRSYNC-AGENT 1", `KRSYNC-NEED amd64 ${fakeSha} ${Buffer.byteLength(FAKE_RSYNC)}`, `KRSYNC-EXEC injected ${tmp}/.krsync-rsync-${fakeSha}`]);
    expect(r.rest).toBe("fake rsync got: --server --sender . /a b/\n");
    const placed = join(tmp, `.krsync-rsync-${fakeSha}`);
    expect(readFileSync(placed, "utf8")).toBe(FAKE_RSYNC);
    expect(statSync(placed).mode & 0o777).toBe(0o700);

    const again = await runAgentScript(join(path, "sh"), path, [`--tmp=${tmp}`, bin(), "--", "x"]);
    expect(again.lines).toEqual(["KRSYNC-AGENT 1", `KRSYNC-EXEC cached ${placed}`]);
  });

  it("a corrupted upload is refused (hash); a wrong cached copy is not used but replaced", async () => {
    const path = appletDir();
    const tmp = tmpDir("agent-tmp-");
    const bad = FAKE_RSYNC.replace("9.9.9", "6.6.6");
    let r = await runAgentScript(join(path, "sh"), path, [`--tmp=${tmp}`, bin(), "--", "x"], bad);
    expect(r.lines.at(-1)).toBe(`KRSYNC-ERR hash ${tmp}`);
    expect(r.code).toBe(126);
    // a stale file of the right name but other content is not used
    writeFileSync(join(tmp, `.krsync-rsync-${fakeSha}`), bad);
    chmodSync(join(tmp, `.krsync-rsync-${fakeSha}`), 0o700);
    r = await runAgentScript(join(path, "sh"), path, [`--tmp=${tmp}`, bin(), "--", "x"]);
    expect(r.lines.at(-1)).toBe(`KRSYNC-EXEC injected ${tmp}/.krsync-rsync-${fakeSha}`);
  });

  it("rsync in PATH wins; --rsync-path runs the user's command through the shell", async () => {
    const path = appletDir();
    writeFileSync(join(path, "rsync"), FAKE_RSYNC);
    chmodSync(join(path, "rsync"), 0o755);
    let r = await runAgentScript(join(path, "sh"), path, [bin(), "--", "--server", "."]);
    expect(r.lines).toEqual(["KRSYNC-AGENT 1", `KRSYNC-EXEC path ${path}/rsync`]);
    expect(r.rest).toBe("fake rsync got: --server .\n");
    r = await runAgentScript(join(path, "sh"), path, ["--rsync-path=cd / && rsync", "--", "--server", "a b"]);
    expect(r.lines).toEqual(["KRSYNC-AGENT 1", "KRSYNC-EXEC rsync-path cd / && rsync"]);
    expect(r.rest).toBe("fake rsync got: --server a b\n");
  });

  it("no binary for the architecture; a missing --tmp is skipped", async () => {
    const path = appletDir();
    let r = await runAgentScript(join(path, "sh"), path, [`--bin=arm64:${fakeSha}:1`, "--", "x"]);
    expect(r.lines.at(-1)).toBe("KRSYNC-ERR nobinary amd64");
    const ro = tmpDir("agent-ro-");
    const missing = join(ro, "nope");
    mkdirSync(join(ro, "d"));
    r = await runAgentScript(join(path, "sh"), path, [`--tmp=${missing}`, bin(), "--", "x"]);
    // /tmp is usable on the host, so the missing --tmp is skipped
    expect(r.lines.at(-1)).toMatch(/^KRSYNC-EXEC injected \/tmp\/\.krsync-rsync-/);
    if (existsSync(`/tmp/.krsync-rsync-${fakeSha}`)) {
      // leave /tmp as it was
      await new Promise((res) => spawn("rm", ["-f", `/tmp/.krsync-rsync-${fakeSha}`]).on("close", res));
    }
  });
});

describe.skipIf(!DASH || !BUSYBOX)("agent/bootstrap.sh under dash (uname from PATH)", () => {
  it("maps uname -m to the binary's arch, and names an unknown machine", async () => {
    const path = appletDir();
    const fake = (m: string) => {
      const d = tmpDir("agent-uname-");
      writeFileSync(join(d, "uname"), `#!/bin/sh\necho ${m}\n`);
      chmodSync(join(d, "uname"), 0o755);
      return `${d}:${path}`;
    };
    const tmp = tmpDir("agent-tmp-");
    const size = Buffer.byteLength(FAKE_RSYNC);
    const bins = [`--bin=amd64:${"0".repeat(64)}:5`, `--bin=arm64:${fakeSha}:${size}`];
    let r = await runAgentScript(DASH!, fake("aarch64"), [`--tmp=${tmp}`, ...bins, "--", "x"]);
    expect(r.lines[1]).toBe(`KRSYNC-NEED arm64 ${fakeSha} ${size}`);
    expect(r.lines.at(-1)).toBe(`KRSYNC-EXEC injected ${tmp}/.krsync-rsync-${fakeSha}`);
    r = await runAgentScript(DASH!, fake("riscv64"), [`--tmp=${tmp}`, ...bins, "--", "x"]);
    expect(r.lines.at(-1)).toBe("KRSYNC-ERR arch machine 'riscv64'");
    expect(r.code).toBe(126);
  });
});

describe("client-node's KubeConfig without the generated API clients", () => {
  const yaml = (certDir: string) => `apiVersion: v1
kind: Config
clusters:
- name: c1
  cluster: { server: "https://127.0.0.1:6443", certificate-authority-data: ${Buffer.from("CA-PEM").toString("base64")} }
users:
- name: tok
  user: { token: secret-token }
- name: cert
  user: { client-certificate: ${join(certDir, "c.pem")}, client-key: ${join(certDir, "k.pem")} }
contexts:
- name: a
  context: { cluster: c1, user: tok, namespace: team-a }
- name: b
  context: { cluster: c1, user: cert }
current-context: a
`;

  it("the build's bundle is what the built code loads, without the generated API clients, and it applies auth as the whole package does", async () => {
    // dist/ is what `npm install` built (scripts/bundle.mjs made the bundle).
    const built = (await import("../dist/kube/deps.js" as string)) as typeof import("../src/kube/deps.js");
    expect(built.kubeDepsSource).toBe("bundle");
    const Slim = built.KubeConfig;
    expect(typeof built.WebSocket.OPEN).toBe("number");
    const { KubeConfig: Full } = await import("@kubernetes/client-node");
    const dir = tmpDir("kc-slim-");
    writeFileSync(join(dir, "c.pem"), "CERT-PEM");
    writeFileSync(join(dir, "k.pem"), "KEY-PEM");
    writeFileSync(join(dir, "config"), yaml(dir));
    const slim = new Slim();
    slim.loadFromFile(join(dir, "config"));
    expect(() => slim.makeApiClient(Object as never)).toThrow("krsync does not load client-node's generated API clients");
    for (const ctx of ["a", "b"]) {
      const full = new Full();
      full.loadFromFile(join(dir, "config"));
      slim.setCurrentContext(ctx);
      full.setCurrentContext(ctx);
      const [s, f] = [{} as Record<string, unknown>, {} as Record<string, unknown>];
      await slim.applyToHTTPSOptions(s);
      await full.applyToHTTPSOptions(f);
      // (two loads of the package: compare the values, not the classes of its objects)
      expect(JSON.parse(JSON.stringify(s))).toEqual(JSON.parse(JSON.stringify(f)));
      if (ctx === "a") expect((s.headers as Record<string, string>).Authorization).toBe("Bearer secret-token");
      else expect(String(s.cert)).toBe("CERT-PEM");
    }
  });
});
