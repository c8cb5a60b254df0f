// krsync pulling from Kubernetes pods of the fake API server (test/kube), through both exec
// transports: the WebSocket one (api) and real /usr/bin/kubectl. Pods are chroot directories,
// some with the host's rsync 3.5.0 copied in, some without (then krsync injects the static
// vendor/rsync build). Trees are compared with native rsync pulling the same directory.
// Needs root (chroot, mknod, mount for the noexec/full tmpfs cases).

import { execFileSync, spawn, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { sync } from "../src/api.js";
import { main } from "../src/cli/main.js";
import { parseCommandLine } from "../src/cli/options.js";
import { availableBinaries } from "../src/kube/agent.js";
import { describeIfRoot, isRoot, rsyncPath, tmpDir } from "./helpers/env.js";
import { FAKE_HOST, pull, rshArg } from "./helpers/rsync.js";
import { diffSnapshots, snapshotTree } from "./helpers/snapshot.js";
import { buildNastyTree } from "./helpers/tree.js";
import { startFakeApi, PROTOCOL_V4, type FakeApi } from "./kube/fakeapi.js";
import { halfDoneRollout, statefulSetMidUpdate } from "./kube/fixtures.js";
import type { ContainerSpec, PodSpec, WorkloadSpec } from "./kube/objects.js";
import { copyBinaryWithLibs, makePodRoot, type PodRoot, type PodRootOptions } from "./kube/podroot.js";

const KUBECTL = "/usr/bin/kubectl";
const HAVE_KUBECTL = existsSync(KUBECTL);
const TRANSPORTS = HAVE_KUBECTL ? (["api", "kubectl"] as const) : (["api"] as const);
const COPY = ["-aHS", "--numeric-ids"];
const BINS = availableBinaries();
const HAVE_BINS = BINS.bins.length === 2;
const sha = (f: string) => createHash("sha256").update(readFileSync(f)).digest("hex");

type Transport = "api" | "kubectl";

interface Run {
  exitCode: number;
  messages: string[];
  stats: { totalRead: number; totalWritten: number };
}

const mounts: string[] = [];
const roots: PodRoot[] = [];
let tmp: string;
let api: FakeApi;
let src: string; // the nasty tree, as built

function envFor(a: FakeApi, transport: Transport): NodeJS.ProcessEnv {
  return { ...process.env, ...a.kubectlEnv, KRSYNC_KUBE_TRANSPORT: transport };
}

/** krsync through the library, options parsed from a command line. */
async function krsync(a: FakeApi, transport: Transport, args: string[]): Promise<Run> {
  const cl = parseCommandLine(["--kubeconfig", a.kubeconfigPath, ...args]);
  const messages: string[] = [];
  const r = await sync({
    ...cl.options,
    source: cl.args.slice(0, -1),
    destination: cl.args[cl.args.length - 1]!,
    kube: cl.kube,
    env: envFor(a, transport),
    events: { message: (level, text) => messages.push(`${level}: ${text}`) },
  });
  return { exitCode: r.exitCode, messages, stats: r.stats };
}

/** The krsync command (main) in-process, with its stdout/stderr captured. */
async function krsyncCli(a: FakeApi, transport: Transport, args: string[], kubeconfig = a.kubeconfigPath): Promise<{ code: number; stderr: string; stdout: string }> {
  const saved = { ...process.env };
  Object.assign(process.env, a.kubectlEnv, { KRSYNC_KUBE_TRANSPORT: transport });
  let stderr = "";
  let stdout = "";
  const ew = process.stderr.write.bind(process.stderr);
  const ow = process.stdout.write.bind(process.stdout);
  process.stderr.write = ((c: string | Uint8Array) => ((stderr += c.toString()), true)) as typeof process.stderr.write;
  process.stdout.write = ((c: string | Uint8Array) => ((stdout += c.toString()), true)) as typeof process.stdout.write;
  try {
    const code = await main(["--kubeconfig", kubeconfig, ...args]);
    return { code, stderr, stdout };
  } finally {
    process.stderr.write = ew;
    process.stdout.write = ow;
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  }
}

function compareTrees(expected: string, actual: string): string[] {
  return diffSnapshots(snapshotTree(expected), snapshotTree(actual), { krsyncMtimes: true });
}

/** Runs a command without blocking the event loop (the fake API server lives in this process). */
function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    p.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    p.on("error", reject);
    p.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

async function root(name: string, opts: PodRootOptions, data = false): Promise<PodRoot> {
  const r = await makePodRoot(join(tmp, name), opts);
  roots.push(r);
  if (data) execFileSync(rsyncPath, [...COPY, `${src}/`, `${join(r.root, "data")}/`]);
  return r;
}

/**
 * Makes `uname -m` print `machine`. busybox sh runs its own applets before looking at PATH, so
 * the root's /bin/sh becomes the host's dash (which searches PATH) and a script in
 * /usr/local/bin answers.
 */
async function fakeUname(r: PodRoot, machine: string): Promise<void> {
  rmSync(join(r.root, "bin/sh"));
  await copyBinaryWithLibs(r.root, "/bin/dash", "/bin/sh");
  const p = join(r.root, "usr/local/bin/uname");
  mkdirSync(join(r.root, "usr/local/bin"), { recursive: true });
  writeFileSync(p, `#!/bin/sh\necho ${machine}\n`);
  chmodSync(p, 0o755);
}

function mountTmpfs(dir: string, opts: string): void {
  execFileSync("mount", ["-t", "tmpfs", "-o", opts, "tmpfs", dir]);
  mounts.push(dir);
  chmodSync(dir, 0o1777);
}

describeIfRoot("krsync pulls from pods of the fake API server", () => {
  let tools: PodRoot; // rsync 3.5.0 copied in
  let bareApi: PodRoot; // no rsync: injection over the api transport
  let bareKubectl: PodRoot; // no rsync: injection over kubectl
  let small: PodRoot; // rsync, a small /data, shared by the workload pods
  let sideRoot: PodRoot;
  let otherNs: PodRoot;
  let arm: PodRoot;
  let mips: PodRoot;
  let noShell: PodRoot;
  let noShellRsync: PodRoot;
  let readOnly: PodRoot;
  let noexec: PodRoot;
  let full: PodRoot;
  let rollout: ReturnType<typeof halfDoneRollout>;

  beforeAll(async () => {
    tmp = tmpDir("kube-pull-");
    src = join(tmp, "src");
    buildNastyTree(src, { variant: "base", root: true, bigFileMB: 2 });
    tools = await root("tools", { withRsync: true }, true);
    bareApi = await root("bare-api", { withRsync: false }, true);
    bareKubectl = await root("bare-kubectl", { withRsync: false }, true);
    small = await root("small", { withRsync: true, files: { "/data/id": "small\n", "/data/sub/x": "x\n" } });
    sideRoot = await root("side", { withRsync: false, files: { "/data/id": "side\n" } });
    otherNs = await root("otherns", { withRsync: true, files: { "/data/id": "other namespace\n" } });
    arm = await root("arm", { withRsync: false, files: { "/data/id": "arm\n" } });
    await fakeUname(arm, "aarch64");
    mips = await root("mips", { withRsync: false });
    await fakeUname(mips, "mips64");
    noShell = await root("noshell", { withRsync: false, applets: ["cat", "ls"] });
    noShellRsync = await root("noshell-rsync", { withRsync: true, applets: ["cat"], files: { "/data/id": "no shell\n" } });
    readOnly = await root("ro", { withRsync: false, tmp: "readonly" });
    noexec = await root("noexec", { withRsync: false, files: { "/data/id": "noexec\n", "/work/.keep": "" } });
    mountTmpfs(join(noexec.root, "tmp"), "noexec,size=16m");
    chmodSync(join(noexec.root, "work"), 0o1777);
    full = await root("full", { withRsync: false });
    mountTmpfs(join(full.root, "tmp"), "size=1m");

    const c = (r: PodRoot, name = "app"): ContainerSpec[] => [{ name, root: r.root }];
    rollout = halfDoneRollout("web", () => c(small));
    const sts = statefulSetMidUpdate("db", () => c(small));
    const t0 = Date.now();
    const ago = (m: number) => new Date(t0 - m * 60_000).toISOString().replace(/\.\d{3}Z$/, "Z");
    // Deployment "api": the old revision's pod is terminating, Ready longest, and sorts first.
    const apiPods: PodSpec[] = [
      { name: "api-aaa-old", labels: { app: "api", "pod-template-hash": "aaa" }, owner: { kind: "ReplicaSet", name: "api-aaa" }, containers: c(small), readySince: ago(90), deletionTimestamp: ago(0.2) },
      { name: "api-zzz-new", labels: { app: "api", "pod-template-hash": "zzz" }, owner: { kind: "ReplicaSet", name: "api-zzz" }, containers: c(small), readySince: ago(1) },
    ];
    const workloads: WorkloadSpec[] = [
      ...rollout.workloads,
      ...sts.workloads,
      { kind: "Deployment", name: "api", selector: { app: "api" }, revision: 2 },
      { kind: "ReplicaSet", name: "api-aaa", owner: "api", revision: 1, selector: { app: "api", "pod-template-hash": "aaa" } },
      { kind: "ReplicaSet", name: "api-zzz", owner: "api", revision: 2, selector: { app: "api", "pod-template-hash": "zzz" } },
      { kind: "Deployment", name: "slow", selector: { app: "slow" }, revision: 1 },
      { kind: "ReplicaSet", name: "slow-1", owner: "slow", revision: 1, selector: { app: "slow", "pod-template-hash": "s1" } },
      { kind: "DaemonSet", name: "agent", selector: { app: "agent" } },
      { kind: "ControllerRevision", name: "agent-h1", owner: { kind: "DaemonSet", name: "agent" }, revision: 1, labels: { app: "agent", "controller-revision-hash": "h1" } },
      { kind: "ControllerRevision", name: "agent-h2", owner: { kind: "DaemonSet", name: "agent" }, revision: 2, labels: { app: "agent", "controller-revision-hash": "h2" } },
      { kind: "Job", name: "batch", selector: { "job-name": "batch" } },
    ];
    api = await startFakeApi({
      pods: [
        { name: "tools", containers: c(tools) },
        { name: "bare-api", containers: c(bareApi) },
        { name: "bare-kubectl", containers: c(bareKubectl) },
        { name: "multi", containers: [...c(small, "main"), ...c(sideRoot, "side")] },
        { name: "multi-ann", annotations: { "kubectl.kubernetes.io/default-container": "side" }, containers: [...c(small, "main"), ...c(sideRoot, "side")] },
        { name: "same", containers: c(small) },
        { name: "same", namespace: "other", containers: c(otherNs) },
        { name: "arm", containers: c(arm) },
        { name: "mips", containers: c(mips) },
        { name: "noshell", containers: c(noShell) },
        { name: "noshell-rsync", containers: c(noShellRsync) },
        { name: "ro", containers: [{ name: "app", root: readOnly.root, runAsUser: 1000 }] },
        { name: "noexec", containers: c(noexec) },
        { name: "full", containers: c(full) },
        { name: "locked", containers: c(small) },
        { name: "pending", phase: "Pending", containers: c(small) },
        { name: "slow-1-p", labels: { app: "slow", "pod-template-hash": "s1" }, owner: { kind: "ReplicaSet", name: "slow-1" }, ready: false, containers: c(small) },
        { name: "agent-old", labels: { app: "agent", "controller-revision-hash": "h1" }, owner: { kind: "DaemonSet", name: "agent" }, readySince: ago(60), containers: c(small) },
        { name: "agent-new", labels: { app: "agent", "controller-revision-hash": "h2" }, owner: { kind: "DaemonSet", name: "agent" }, readySince: ago(2), containers: c(small) },
        { name: "batch-x1", labels: { "job-name": "batch" }, owner: { kind: "Job", name: "batch" }, containers: c(small) },
        ...rollout.pods,
        ...sts.pods,
        ...apiPods,
      ],
      workloads,
      namespaces: ["other", "secret"],
      deny: [
        { verb: "create", resource: "pods/exec", namespace: "default", name: "locked" },
        { verb: "get", resource: "pods", namespace: "secret" },
      ],
    });
  });

  afterAll(async () => {
    await api?.close();
    for (const m of mounts.reverse()) spawnSync("umount", [m]);
    for (const r of roots.splice(0)) await r.cleanup();
  });

  // ---- trees equal native rsync's, both transports, with and without rsync in the pod ----

  for (const transport of TRANSPORTS) {
    it(`${transport}: pull from a pod with rsync equals native rsync's pull`, async () => {
      const w = tmpDir("kp-");
      const n = await pull(join(tools.root, "data"), join(w, "native"), COPY);
      expect(n.code, n.stderr).toBe(0);
      api.resetLog();
      const k = await krsync(api, transport, [...COPY, "pod/tools:/data/", `${w}/krsync/`]);
      expect(k.messages.filter((m) => !m.startsWith("info"))).toEqual([]);
      expect(k.exitCode).toBe(0);
      expect(compareTrees(join(w, "native"), join(w, "krsync"))).toEqual([]);
      const ex = api.execs.filter((e) => e.pod === "tools");
      expect(ex).toHaveLength(1);
      expect(ex[0]!.command.slice(0, 2)).toEqual(["sh", "-c"]);
      expect(ex[0]!.exitCode).toBe(0);
      expect(ex[0]!.stdinEnd).toBe("close-frame");
    });

    it.skipIf(!HAVE_BINS)(`${transport}: pull from a pod without rsync injects it, and equals native rsync's pull`, async () => {
      const r = transport === "api" ? bareApi : bareKubectl;
      const pod = transport === "api" ? "bare-api" : "bare-kubectl";
      const w = tmpDir("kp-");
      const n = await pull(join(r.root, "data"), join(w, "native"), COPY);
      expect(n.code, n.stderr).toBe(0);
      api.resetLog();
      const k = await krsync(api, transport, [...COPY, `pod/${pod}:/data/`, `${w}/krsync/`]);
      expect(k.messages.filter((m) => !m.startsWith("info"))).toEqual([]);
      expect(k.exitCode).toBe(0);
      expect(compareTrees(join(w, "native"), join(w, "krsync"))).toEqual([]);
      const amd = BINS.bins.find((b) => b.arch === "amd64")!;
      const placed = join(r.root, "tmp", `.krsync-rsync-${amd.sha256}`);
      expect(sha(placed)).toBe(amd.sha256);
      expect(statSync(placed).mode & 0o777).toBe(0o700);
      const ex = api.execs.filter((e) => e.pod === pod);
      expect(ex).toHaveLength(1);
      expect(ex[0]!.stdinBytes).toBeGreaterThanOrEqual(amd.size);
    });
  }

  it.skipIf(!HAVE_BINS)("a second pull reuses the injected rsync (no upload)", async () => {
    const cases: [Transport, string][] = [["api", "bare-api"], ...(HAVE_KUBECTL ? ([["kubectl", "bare-kubectl"]] as [Transport, string][]) : [])];
    for (const [transport, pod] of cases) {
      const w = tmpDir("kp-");
      api.resetLog();
      const k = await krsync(api, transport, [...COPY, `pod/${pod}:/data/`, `${w}/again/`]);
      expect(k.exitCode).toBe(0);
      const ex = api.execs.filter((e) => e.pod === pod);
      expect(ex).toHaveLength(1);
      // Only the protocol's own bytes went in: far less than the 2 MB binary.
      expect(ex[0]!.stdinBytes).toBeLessThan(64 << 10);
    }
  });

  // ---- the right pod ----

  it("deploy/x with the old revision's terminating pod Ready longest and listed first: the new pod", async () => {
    for (const transport of TRANSPORTS) {
      api.resetLog();
      const k = await krsync(api, transport, ["-a", "deploy/api:/data/", `${tmpDir("kp-")}/d/`]);
      expect(k.exitCode).toBe(0);
      expect(api.execs.map((e) => e.pod)).toEqual(["api-zzz-new"]);
    }
  });

  it.skipIf(!HAVE_KUBECTL)("deploy/x in a half-done rollout: kubectl picks the old Ready pod, krsync the newest revision's", async () => {
    api.resetLog();
    const r = await run(KUBECTL, [...api.kubectlArgs, "exec", "-i", "deploy/web", "--", "true"], api.kubectlEnv);
    expect(r.code, r.stderr).toBe(0);
    expect(api.execs.map((e) => e.pod)).toEqual([rollout.oldReady]);
    for (const transport of TRANSPORTS) {
      api.resetLog();
      const k = await krsync(api, transport, ["-a", "deployment/web:/data/", `${tmpDir("kp-")}/d/`]);
      expect(k.exitCode).toBe(0);
      expect(api.execs.map((e) => e.pod)).toEqual([rollout.newReady]);
    }
  });

  it("sts/x mid-update: the pod of status.updateRevision; ds/x: the newest ControllerRevision's; job/x", async () => {
    const cases: [string, string][] = [
      ["sts/db", "db-1"],
      ["ds/agent", "agent-new"],
      ["job/batch", "batch-x1"],
    ];
    for (const [target, pod] of cases) {
      api.resetLog();
      const k = await krsync(api, "api", ["-a", `${target}:/data/`, `${tmpDir("kp-")}/d/`]);
      expect(k.exitCode, target).toBe(0);
      expect(api.execs.map((e) => e.pod), target).toEqual([pod]);
    }
  });

  it("waits for the newest revision to get a Ready pod, saying so", async () => {
    const notReady = api.getPodSpec("slow-1-p")!;
    setTimeout(() => api.upsertPod({ ...notReady, ready: true }), 1500);
    api.resetLog();
    const w = tmpDir("kp-");
    const t0 = Date.now();
    const k = await krsync(api, "api", ["-a", "--pod-wait=20", "deploy/slow:/data/", `${w}/d/`]);
    expect(k.exitCode).toBe(0);
    expect(Date.now() - t0).toBeGreaterThan(1000);
    expect(k.messages.some((m) => /^warning: krsync: waiting up to 2\ds for a ready pod of deployment\/slow/.test(m))).toBe(true);
    expect(api.execs.map((e) => e.pod)).toEqual(["slow-1-p"]);
    api.upsertPod(notReady);
  });

  it("multi-container pods: --container, the default-container annotation, else the first", async () => {
    const read = async (args: string[]) => {
      const w = tmpDir("kp-");
      const k = await krsync(api, "api", ["-a", ...args, `${w}/d/`]);
      expect(k.exitCode).toBe(0);
      return readFileSync(join(w, "d", "id"), "utf8");
    };
    expect(await read(["--container=side", "pod/multi:/data/"])).toBe("side\n");
    expect(await read(["pod/multi:/data/"])).toBe("small\n");
    expect(await read(["pod/multi-ann:/data/"])).toBe("side\n");
    expect(api.execs.at(-1)!.container).toBe("side");
  });

  it("two namespaces: NS/ prefix, --namespace, and the context's default", async () => {
    const read = async (args: string[]) => {
      const w = tmpDir("kp-");
      const k = await krsync(api, "api", ["-a", ...args, `${w}/d/`]);
      expect(k.exitCode).toBe(0);
      return readFileSync(join(w, "d", "id"), "utf8");
    };
    expect(await read(["other/pod/same:/data/"])).toBe("other namespace\n");
    expect(await read(["--namespace=other", "pod/same:/data/"])).toBe("other namespace\n");
    expect(await read(["pod/same:/data/"])).toBe("small\n");
    expect(api.execs.at(-1)!.namespace).toBe("default");
  });

  it("a container with rsync but no shell: rsync is exec'd directly", async () => {
    api.resetLog();
    const w = tmpDir("kp-");
    const k = await krsync(api, "api", ["-a", "pod/noshell-rsync:/data/", `${w}/d/`]);
    expect(k.exitCode).toBe(0);
    expect(readFileSync(join(w, "d", "id"), "utf8")).toBe("no shell\n");
    expect(api.execs.map((e) => e.command[0])).toEqual(["sh", "rsync"]);
  });

  // ---- a v4-only server ----

  it.skipIf(!HAVE_BINS)("v4-only API server: pulls work (no stdin half-close), injection too", async () => {
    const fresh = await root("v4bare", { withRsync: false }, true);
    const v4 = await startFakeApi({
      pods: [
        { name: "tools", containers: [{ name: "app", root: tools.root }] },
        { name: "bare", containers: [{ name: "app", root: fresh.root }] },
      ],
      execProtocols: [PROTOCOL_V4],
    });
    try {
      for (const pod of ["tools", "bare"]) {
        const w = tmpDir("kp-");
        const n = await pull(join(pod === "tools" ? tools.root : fresh.root, "data"), join(w, "native"), COPY);
        expect(n.code, n.stderr).toBe(0);
        const k = await krsync(v4, "api", [...COPY, `pod/${pod}:/data/`, `${w}/krsync/`]);
        expect(k.exitCode).toBe(0);
        expect(compareTrees(join(w, "native"), join(w, "krsync"))).toEqual([]);
        const ex = v4.execs.at(-1)!;
        expect(ex.protocol).toBe(PROTOCOL_V4);
        expect(ex.exitCode).toBe(0);
        expect(ex.stdinEnd).not.toBe("close-frame");
      }
    } finally {
      await v4.close();
    }
  });

  // ---- errors: one line, non-zero exit ----

  const oneLine = (r: { code: number; stderr: string }, pattern: RegExp) => {
    // A "waiting up to Ns" notice may come first; the error itself is one line.
    const lines = r.stderr.split("\n").filter((l) => l !== "" && !l.startsWith("krsync: waiting up to "));
    if (process.env.KRSYNC_TEST_SHOW) console.log(`${r.code} ${lines.join(" | ")}`);
    expect(r.code, r.stderr).not.toBe(0);
    expect(lines, r.stderr).toHaveLength(2);
    expect(lines[0]).toMatch(/^krsync: /);
    expect(lines[0]).toMatch(pattern);
    expect(lines[1]).toMatch(/^krsync error: .* \(code \d+\)$/);
  };

  for (const transport of TRANSPORTS) {
    it(`${transport}: errors are one clear line with a non-zero exit`, async () => {
      const d = `${tmpDir("kp-")}/d/`;
      oneLine(await krsyncCli(api, transport, ["-a", "pod/nope:/data/", d]), /pod "nope" not found in namespace "default"/);
      oneLine(await krsyncCli(api, transport, ["-a", "deploy/nope:/data/", d]), /deployment "nope" not found in namespace "default"/);
      oneLine(await krsyncCli(api, transport, ["-a", "--container=nope", "pod/multi:/data/", d]), /container "nope" not found in pod "multi" .*containers: main, side/);
      oneLine(await krsyncCli(api, transport, ["-a", "ghost/pod/x:/data/", d]), /namespace "ghost" not found/);
      oneLine(await krsyncCli(api, transport, ["-a", "--pod-wait=1", "deploy/slow:/data/", d]), /no ready pod for deployment\/slow in namespace "default" after waiting 1s: ReplicaSet slow-1 \(revision 1\) has no Ready pod: slow-1-p \(not ready\)/);
      oneLine(await krsyncCli(api, transport, ["-a", "--pod-wait=0", "pod/pending:/data/", d]), /no ready pod for pod\/pending .*pod "pending" is Pending/);
      oneLine(await krsyncCli(api, transport, ["-a", "pod/locked:/data/", d]), /forbidden: pods "locked" is forbidden: User "krsync-test" cannot create resource "pods\/exec"/);
      oneLine(await krsyncCli(api, transport, ["-a", "secret/pod/x:/data/", d]), /forbidden: pods "x" is forbidden: User "krsync-test" cannot get resource "pods"/);
      const bad = await api.writeKubeconfig(join(tmpDir("kp-"), "bad"), { token: "wrong" });
      oneLine(await krsyncCli(api, transport, ["-a", "pod/tools:/data/", d], bad), /unauthorized: the API server rejected the credentials/);
      oneLine(await krsyncCli(api, transport, ["-a", "pod/noshell:/data/", d]), /container "app" of pod "noshell" .* has no shell \(sh\) and no rsync/);
      oneLine(await krsyncCli(api, transport, ["-a", "pod/mips:/data/", d]), /has no rsync, and its machine 'mips64' is not an architecture krsync has rsync for/);
      oneLine(await krsyncCli(api, transport, ["-a", "pod/ro:/data/", d]), /no directory to copy one into \(\/tmp: read-only, \/dev\/shm: missing, \/var\/tmp: missing\): pass --remote-tmp=DIR/);
      oneLine(await krsyncCli(api, transport, ["-a", "pod/noexec:/data/", d]), /no directory to copy one into \(\/tmp: noexec, /);
      // The chroot has no /proc, so df cannot pre-check the space: the upload itself hits ENOSPC.
      oneLine(await krsyncCli(api, transport, ["-a", "pod/full:/data/", d]), /has no rsync, and writing a copy into \/tmp failed after \d+ of \d+ bytes \(head: .*\), most likely because that filesystem is full: free some space, pass --remote-tmp=DIR/);
    });
  }

  it("no rsync in the pod and no vendor binaries: the error says how to build them", async () => {
    const cl = parseCommandLine(["--kubeconfig", api.kubeconfigPath, "-a", "pod/ro:/data/", `${tmpDir("kp-")}/d/`]);
    const env = { ...envFor(api, "api"), KRSYNC_RSYNC_BINARIES: join(tmp, "no-binaries") };
    const err = await sync({ ...cl.options, source: cl.args[0]!, destination: cl.args[1]!, kube: cl.kube, env }).catch((e: unknown) => e as Error & { exitCode: number });
    expect((err as Error).message).toMatch(/has no rsync, and krsync has no rsync-amd64 to copy in: .*SHA256SUMS is missing; build them with "bash vendor\/rsync\/build\.sh"/);
    expect((err as { exitCode: number }).exitCode).toBe(127);
  });

  it.skipIf(!HAVE_BINS)("--remote-tmp names the directory for the injected rsync", async () => {
    const w = tmpDir("kp-");
    const k = await krsync(api, "api", ["-a", "--remote-tmp=/work", "pod/noexec:/data/", `${w}/d/`]);
    expect(k.exitCode).toBe(0);
    expect(readFileSync(join(w, "d", "id"), "utf8")).toBe("noexec\n");
    expect(existsSync(join(noexec.root, "work", `.krsync-rsync-${BINS.bins[0]!.sha256}`))).toBe(true);
  });

  it.skipIf(!HAVE_BINS)("aarch64 container: the arm64 binary is sent (and is a working aarch64 rsync)", async () => {
    const armBin = BINS.bins.find((b) => b.arch === "arm64")!;
    api.resetLog();
    const r = await krsyncCli(api, "api", ["-a", "pod/arm:/data/", `${tmpDir("kp-")}/d/`]);
    const placed = join(arm.root, "tmp", `.krsync-rsync-${armBin.sha256}`);
    expect(existsSync(placed)).toBe(true);
    expect(sha(placed)).toBe(armBin.sha256);
    expect(api.execs[0]!.stdinBytes).toBeGreaterThanOrEqual(armBin.size);
    const binfmt = existsSync("/proc/sys/fs/binfmt_misc/qemu-aarch64");
    if (binfmt) {
      expect(r.code, r.stderr).toBe(0);
    } else {
      // No binfmt_misc handler here: the copy cannot run in the (amd64) chroot; krsync says so.
      expect(r.code).toBe(126);
      expect(r.stderr).toMatch(/the copy at \/tmp\/\.krsync-rsync-[0-9a-f]{64} does not run there \(wrong architecture/);
      if (existsSync("/usr/bin/qemu-aarch64-static")) {
        const v = spawnSync("/usr/bin/qemu-aarch64-static", [placed, "--version"], { encoding: "utf8" });
        expect(v.stdout).toMatch(/rsync\s+version 3\.\d+\.\d+/);
      }
    }
  });
});


// ---- abort, memory, speed ----

/** tsc's output for the CLI in a temp dir laid out like the package (agent/, vendor/, node_modules). */
async function buildCliCopy(): Promise<string | undefined> {
  const out = tmpDir("kube-build-");
  const repo = process.cwd();
  const r = await run(join(repo, "node_modules/.bin/tsc"), ["-p", join(repo, "tsconfig.build.json"), "--outDir", join(out, "dist"), "--declaration", "false", "--sourceMap", "false"], process.env);
  if (!existsSync(join(out, "dist/cli/main.js"))) {
    console.warn(`[kube-pull] could not build a CLI copy (${r.stdout.slice(0, 400)}); measuring in-process`);
    return undefined;
  }
  for (const d of ["agent", "vendor", "node_modules"]) symlinkSync(join(repo, d), join(out, d));
  writeFileSync(join(out, "package.json"), JSON.stringify({ type: "module" }));
  writeFileSync(
    join(out, "rss.mjs"),
    'import { main } from "./dist/cli/main.js";\nconst code = await main(process.argv.slice(2));\nprocess.stderr.write(`MAXRSS_KB ${process.resourceUsage().maxRSS}\\n`);\nprocess.exit(code);\n',
  );
  return out;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

describeIfRoot("krsync over the fake API: abort, memory, round trips", () => {
  let big: PodRoot;
  let many: PodRoot;
  let fa: FakeApi;
  const BIG = 100 << 20;

  beforeAll(async () => {
    tmp ??= tmpDir("kube-pull-");
    big = await root("big", { withRsync: true });
    mkdirSync(join(big.root, "data"));
    // incompressible, written in 1 MiB pieces
    const fd = openSync(join(big.root, "data/big.bin"), "w");
    for (let i = 0; i < BIG >> 20; i++) writeSync(fd, randomBytes(1 << 20));
    closeSync(fd);
    mkdirSync(join(big.root, "data20"));
    writeFileSync(join(big.root, "data20/mid.bin"), randomBytes(20 << 20));
    many = await root("many", { withRsync: true });
    for (let d = 0; d < 30; d++) {
      mkdirSync(join(many.root, "data", `d${d}`), { recursive: true });
      for (let f = 0; f < 100; f++) writeFileSync(join(many.root, "data", `d${d}`, `f${f}.txt`), `file ${d}/${f}\n`.repeat(1 + (f % 7)));
    }
    fa = await startFakeApi({
      pods: [
        { name: "big", containers: [{ name: "app", root: big.root }] },
        { name: "many", containers: [{ name: "app", root: many.root }] },
      ],
    });
  });

  afterAll(async () => {
    await fa?.close();
    await big?.cleanup();
    await many?.cleanup();
  });

  for (const transport of TRANSPORTS) {
    it(`${transport}: aborting a pull ends the remote rsync`, async () => {
      fa.resetLog();
      const ac = new AbortController();
      const cl = parseCommandLine(["--kubeconfig", fa.kubeconfigPath, "-a", "--bwlimit=2000", "pod/big:/data/", `${tmpDir("kp-")}/d/`]);
      const p = sync({ ...cl.options, source: cl.args[0]!, destination: cl.args[1]!, kube: cl.kube, env: envFor(fa, transport), signal: ac.signal });
      const outcome = p.then(
        () => "finished",
        (e: Error & { exitCode?: number }) => `${e.name} ${e.exitCode}`,
      );
      // abort once data flows
      const t0 = Date.now();
      while (!(fa.execs[0]?.stdoutBytes > 1 << 20) && Date.now() - t0 < 20_000) await new Promise((r) => setTimeout(r, 50));
      ac.abort();
      expect(await outcome).toBe("SyncError 20");
      const ex = fa.execs[0]!;
      await Promise.race([ex.done, new Promise((r) => setTimeout(r, 10_000))]);
      expect(ex.exitCode, "remote rsync still running").not.toBeNull();
      expect(ex.clientClosedEarly).toBe(true);
      expect(ex.stdoutBytes).toBeLessThan(BIG / 2);
    });
  }

  it("a 100 MB file over the api transport: the client's memory stays bounded", async () => {
    const cli = await buildCliCopy();
    const w = tmpDir("kp-");
    fa.resetLog();
    const peaks: Record<string, number> = {};
    if (cli) {
      const once = async (label: string, args: string[], env: NodeJS.ProcessEnv) => {
        const r = await run(process.execPath, [join(cli, "rss.mjs"), "-a", ...args], env);
        expect(r.code, r.stderr).toBe(0);
        peaks[label] = Number(/MAXRSS_KB (\d+)/.exec(r.stderr)![1]) / 1024;
      };
      const env = envFor(fa, "api");
      const kc = ["--kubeconfig", fa.kubeconfigPath];
      await once("api 4 KiB", [...kc, "pod/many:/data/d0/", `${w}/small/`], env);
      await once("api 20 MiB", [...kc, "pod/big:/data20/", `${w}/mid/`], env);
      await once("api 100 MiB", [...kc, "pod/big:/data/", `${w}/big/`], env);
      await once("pipe 100 MiB", ["-e", rshArg(), `--rsync-path=${rsyncPath}`, `${FAKE_HOST}:${join(big.root, "data")}/`, `${w}/pipe/`], process.env);
    } else {
      const base = process.memoryUsage().rss / 1048576;
      let peak = base;
      const t = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss / 1048576)), 20);
      const k = await krsync(fa, "api", ["-a", "pod/big:/data/", `${w}/big/`]);
      clearInterval(t);
      expect(k.exitCode).toBe(0);
      peaks["in-process before"] = base;
      peaks["api 100 MiB"] = peak;
    }
    expect(sha(join(w, "big/big.bin"))).toBe(sha(join(big.root, "data/big.bin")));
    const ex = fa.execs.filter((e) => e.pod === "big").at(-1)!;
    console.log(
      `[kube-pull] client peak RSS (MiB, ${cli ? "CLI in a separate process" : "in-process"}): ` +
        Object.entries(peaks).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(", ") +
        `; server output pauses ${ex.outputPauses}, peak socket buffer ${(ex.maxBufferedAmount / 1024).toFixed(0)} KiB`,
    );
    expect(ex.outputPauses).toBeGreaterThan(0); // the client's backpressure reached the server
    if (cli) {
      // Bounded: growing the file 5x adds far less than the file, and a 100 MiB transfer costs
      // little over a 4 KiB one through the same transport. (The api transport's fixed cost over
      // a pipe is importing @kubernetes/client-node, about 60-80 MiB of its own.)
      expect(peaks["api 100 MiB"]! - peaks["api 20 MiB"]!).toBeLessThan(40);
      expect(peaks["api 100 MiB"]! - peaks["api 4 KiB"]!).toBeLessThan(60);
    }
    expect(peaks["api 100 MiB"]! - (peaks["api 4 KiB"] ?? peaks["in-process before"]!)).toBeLessThan(80);
  });

  it("no-change pull of 3000 files: api transport vs a local pipe, and the round trips", async () => {
    const w = tmpDir("kp-");
    const viaApi = async () => {
      fa.resetLog();
      const t0 = performance.now();
      const k = await krsync(fa, "api", ["-a", "pod/many:/data/", `${w}/api/`]);
      expect(k.exitCode).toBe(0);
      return { ms: performance.now() - t0, gets: fa.requests.filter((r) => r.upgrade === null).length, execs: fa.execs.length };
    };
    const viaPipe = async () => {
      const cl = parseCommandLine(["-a", "-e", rshArg(), `--rsync-path=${rsyncPath}`, `${FAKE_HOST}:${join(many.root, "data")}/`, `${w}/pipe/`]);
      const t0 = performance.now();
      const r = await sync({ ...cl.options, source: cl.args[0]!, destination: cl.args[1]! });
      expect(r.exitCode).toBe(0);
      return performance.now() - t0;
    };
    await viaApi();
    await viaPipe();
    const api: number[] = [];
    const pipe: number[] = [];
    let trips = { gets: 0, execs: 0 };
    for (let i = 0; i < 5; i++) {
      const a = await viaApi();
      api.push(a.ms);
      trips = a;
      pipe.push(await viaPipe());
    }
    const ratio = median(api) / median(pipe);
    console.log(
      `[kube-pull] no-change pull of 3000 files: api ${median(api).toFixed(0)} ms, local pipe ${median(pipe).toFixed(0)} ms (ratio ${ratio.toFixed(2)}); ` +
        `round trips per run: ${trips.gets} GET + ${trips.execs} exec`,
    );
    expect(trips).toMatchObject({ gets: 1, execs: 1 });
    expect(ratio).toBeLessThan(5);
  });
});
