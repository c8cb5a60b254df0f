// Proves the fake Kubernetes API server with real clients: /usr/bin/kubectl (Google's 1.32
// dispatcher) and @kubernetes/client-node 1.4.0, plus a raw `ws` client for the channel
// protocol. Needs root (exec runs chroot; pod roots need mknod): skipped otherwise.

import { spawn, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { mkdtemp, open, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Writable } from "node:stream";
import { CoreV1Api, Exec, KubeConfig, type V1Status } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { startFakeApi, PROTOCOL_V4, PROTOCOL_V5, type FakeApi, type RecordedRequest } from "./fakeapi.js";
import { halfDoneRollout, statefulSetMidUpdate } from "./fixtures.js";
import type { ContainerSpec } from "./objects.js";
import { isRoot, makePodRoot, type PodRoot } from "./podroot.js";

const KUBECTL = "/usr/bin/kubectl";
const haveKubectl = existsSync(KUBECTL);
const root = isRoot();

interface Run {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs kubectl against the fake server (own discovery cache dir, HOME under the server dir). */
function kubectl(api: FakeApi, args: string[], opts: { input?: string | Buffer; kubeconfig?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  const base = opts.kubeconfig ? ["--kubeconfig", opts.kubeconfig, "--cache-dir", join(api.dir, "kube-cache")] : api.kubectlArgs;
  return new Promise((resolve, reject) => {
    const p = spawn(KUBECTL, [...base, ...args], { env: { ...api.kubectlEnv, ...opts.env }, stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    let err = "";
    p.stdout.on("data", (d: Buffer) => out.push(d));
    p.stderr.on("data", (d: Buffer) => (err += d.toString()));
    p.on("error", reject);
    p.on("close", (code) => resolve({ code, stdout: Buffer.concat(out), stderr: err }));
    p.stdin.on("error", () => undefined);
    p.stdin.end(opts.input ?? "");
  });
}

const paths = (reqs: RecordedRequest[]) => reqs.map((r) => `${r.method} ${r.path}`);

describe.skipIf(!root)("fake kube API server (needs root for chroot)", () => {
  let tmp: string;
  let podRoot: PodRoot;
  let mainRoot: PodRoot;
  let sideRoot: PodRoot;
  let api: FakeApi;
  const c = (pod: string): ContainerSpec[] => [{ name: "app", root: podRoot.root, env: { POD: pod } }];

  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), "krsync-fakeapi-test-"));
    podRoot = await makePodRoot(join(tmp, "root"), { withRsync: true, files: { "/id": "shared-root\n" } });
    mainRoot = await makePodRoot(join(tmp, "main"), { withRsync: false, files: { "/id": "main\n" } });
    sideRoot = await makePodRoot(join(tmp, "side"), { withRsync: false, files: { "/id": "side\n" } });
    const rollout = halfDoneRollout("web", c);
    const sts = statefulSetMidUpdate("db", c);
    api = await startFakeApi({
      pods: [
        { name: "solo", labels: { app: "solo", tier: "x" }, containers: c("solo") },
        { name: "locked", labels: { app: "locked" }, containers: c("locked") },
        {
          name: "multi",
          labels: { app: "multi" },
          containers: [
            { name: "main", root: mainRoot.root },
            { name: "side", root: sideRoot.root },
          ],
        },
        { name: "done", phase: "Succeeded", containers: c("done") },
        { name: "other-ns-pod", namespace: "secret", containers: c("other-ns-pod") },
        ...rollout.pods,
        ...sts.pods,
        { name: "agent-x7k2p", labels: { app: "agent", "controller-revision-hash": "6d5f7b" }, owner: { kind: "DaemonSet", name: "agent" }, containers: c("agent-x7k2p") },
        { name: "batch1-q9z8w", labels: { "batch.kubernetes.io/job-name": "batch1", "job-name": "batch1" }, owner: { kind: "Job", name: "batch1" }, containers: c("batch1-q9z8w") },
      ],
      workloads: [
        ...rollout.workloads,
        ...sts.workloads,
        { kind: "DaemonSet", name: "agent", selector: { app: "agent" } },
        { kind: "ControllerRevision", name: "agent-6d5f7b", owner: { kind: "DaemonSet", name: "agent" }, revision: 1, labels: { app: "agent", "controller-revision-hash": "6d5f7b" } },
        { kind: "Job", name: "batch1", selector: { "batch.kubernetes.io/job-name": "batch1" } },
        { kind: "Deployment", name: "empty", selector: { app: "empty" } },
      ],
      deny: [
        { verb: "create", resource: "pods/exec", namespace: "default", name: "locked" },
        { verb: "create", resource: "pods/exec", namespace: "secret" },
      ],
      namespaces: ["secret"],
    });
  });

  afterAll(async () => {
    await api?.close();
    for (const r of [podRoot, mainRoot, sideRoot]) await r?.cleanup();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  describe("pod roots", () => {
    it("runs busybox applets and rsync inside the chroot", () => {
      const r = spawnSync("chroot", [podRoot.root, "sh", "-c", "echo hi | sha256sum; ls /bin/cat; cat /id; test -c /dev/null && echo devnull"], { encoding: "utf8" });
      expect(r.status).toBe(0);
      expect(r.stdout).toContain("shared-root");
      expect(r.stdout).toContain("devnull");
      const v = spawnSync("chroot", [podRoot.root, "/usr/bin/rsync", "--version"], { encoding: "utf8" });
      expect(v.status).toBe(0);
      expect(v.stdout).toMatch(/rsync\s+version/);
      expect(spawnSync("chroot", [mainRoot.root, "rsync", "--version"]).status).not.toBe(0);
    });

    it("read-only /tmp stops a non-root user; immutable /tmp stops root too", async () => {
      const ro = await makePodRoot(join(tmp, "ro"), { withRsync: false, tmp: "readonly" });
      const im = await makePodRoot(join(tmp, "im"), { withRsync: false, tmp: "immutable" });
      try {
        const tryWrite = (r: string, user?: string) =>
          spawnSync("chroot", [...(user ? [`--userspec=${user}`] : []), r, "sh", "-c", "echo x > /tmp/f"]).status;
        expect(tryWrite(ro.root, "1000:1000")).not.toBe(0);
        expect(tryWrite(ro.root)).toBe(0); // root ignores the mode bits
        expect(tryWrite(im.root)).not.toBe(0);
      } finally {
        await ro.cleanup();
        await im.cleanup();
      }
      expect(existsSync(im.root)).toBe(false);
    });
  });

  describe.skipIf(!haveKubectl)("kubectl", () => {
    it("get pods: dispatcher /version, aggregated discovery, Table list", async () => {
      api.resetLog();
      const r = await kubectl(api, ["get", "pods"]);
      expect(r.code, r.stderr).toBe(0);
      const text = r.stdout.toString();
      expect(text).toMatch(/^NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE/);
      expect(text).toMatch(/solo\s+1\/1\s+Running\s+0/);
      expect(text).toMatch(/web-new-starting\s+0\/1\s+Running/);
      expect(text).toMatch(/web-old-term\s+1\/1\s+Terminating/);
      expect(text).not.toContain("other-ns-pod");
      const ver = api.requests.find((q) => q.path === "/version")!;
      expect(ver.headers["user-agent"]).toMatch(/^kubectl-dispatcher\//);
      expect(ver.query.timeout).toEqual(["5s"]);
      expect(ver.user).toBe("krsync-test"); // the dispatcher sends the kubeconfig's token
      const disc = api.requests.find((q) => q.path === "/api")!;
      expect(disc.headers.accept).toContain("g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList");
      const list = api.requests.find((q) => q.path === "/api/v1/namespaces/default/pods")!;
      expect(list.query.limit).toEqual(["500"]);
      expect(list.headers.accept).toMatch(/^application\/json;as=Table;v=v1;g=meta.k8s.io/);
      expect(list.headers["user-agent"]).toMatch(/^kubectl\/v1\.32\./);
    });

    it("get with label and field selectors, and -A", async () => {
      let r = await kubectl(api, ["get", "pods", "-l", "app in (solo,multi),tier!=y", "-o", "name"]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.toString().trim().split("\n").sort()).toEqual(["pod/multi", "pod/solo"]);
      r = await kubectl(api, ["get", "pods", "--field-selector", "status.phase=Succeeded", "-o", "name"]);
      expect(r.stdout.toString().trim()).toBe("pod/done");
      r = await kubectl(api, ["get", "pods", "-A", "-l", "!app", "-o", "name"]);
      expect(r.stdout.toString().trim().split("\n").sort()).toEqual(["pod/batch1-q9z8w", "pod/done", "pod/other-ns-pod"]);
      r = await kubectl(api, ["get", "pods", "--field-selector", "spec.bogus=1"]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain("is not a known field selector");
      r = await kubectl(api, ["get", "pod", "nope"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('pods "nope" not found');
      r = await kubectl(api, ["get", "deploy,rs,sts,controllerrevisions", "-o", "name"]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.toString()).toContain("replicaset.apps/web-new");
      expect(r.stdout.toString()).toContain("controllerrevision.apps/db-bbb");
    });

    it("exec -i: stdin piped, stdout back, exit code 3 propagated, v5 with [255,0]", async () => {
      api.resetLog();
      const r = await kubectl(api, ["exec", "-i", "solo", "--", "sh", "-c", "cat; echo done; echo err >&2; exit 3"], { input: "hello\nworld\n" });
      expect(r.stdout.toString()).toBe("hello\nworld\ndone\n");
      expect(r.stderr).toContain("err\n");
      expect(r.stderr).toContain("command terminated with exit code 3");
      expect(r.code).toBe(3);
      const ex = api.requests.find((q) => q.path.endsWith("/exec"))!;
      expect(ex.method).toBe("GET");
      expect(ex.upgrade).toBe("websocket");
      expect(ex.offeredProtocols).toEqual([PROTOCOL_V5]);
      expect(ex.query).toEqual({
        command: ["sh", "-c", "cat; echo done; echo err >&2; exit 3"],
        container: ["app"],
        stderr: ["true"],
        stdin: ["true"],
        stdout: ["true"],
      });
      expect(paths(api.requests)).toEqual([
        "GET /version",
        "GET /api/v1/namespaces/default/pods/solo",
        "GET /api/v1/namespaces/default/pods/solo/exec",
      ]);
      const rec = api.execs.at(-1)!;
      await rec.done;
      expect(rec).toMatchObject({ pod: "solo", container: "app", protocol: PROTOCOL_V5, exitCode: 3, stdinEnd: "close-frame", stdinBytes: 12, closeCode: 1000 });
    });

    it("exec without -i sends stdin=false; exit 0", async () => {
      api.resetLog();
      const r = await kubectl(api, ["exec", "solo", "--", "sh", "-c", 'echo "$HOSTNAME $POD $PATH"; cat /id']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.toString()).toBe("solo solo /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nshared-root\n");
      const ex = api.requests.find((q) => q.path.endsWith("/exec"))!;
      expect(ex.query.stdin).toBeUndefined();
      expect(api.execs.at(-1)).toMatchObject({ stdin: false, exitCode: 0, status: { metadata: {}, status: "Success" } });
    });

    it("exec deploy/NAME in a half-done rollout: which pod kubectl picks", async () => {
      api.resetLog();
      const r = await kubectl(api, ["exec", "-i", "deploy/web", "--", "sh", "-c", "echo $POD"]);
      expect(r.code, r.stderr).toBe(0);
      const picked = r.stdout.toString().trim();
      console.log("kubectl exec deploy/web picked:", picked, "requests:", paths(api.requests));
      const list = api.requests.find((q) => q.path === "/api/v1/namespaces/default/pods")!;
      expect(list.query.labelSelector).toEqual(["app=web"]);
      expect(paths(api.requests)).toContain("GET /apis/apps/v1/namespaces/default/deployments/web");
      // Observed: the Ready-longest pod without a deletionTimestamp — an old revision's pod.
      expect(picked).toBe("web-old-ready");
    });

    it("exec sts/NAME mid-update: which pod kubectl picks", async () => {
      api.resetLog();
      const r = await kubectl(api, ["exec", "sts/db", "--", "sh", "-c", "echo $POD"]);
      expect(r.code, r.stderr).toBe(0);
      console.log("kubectl exec sts/db picked:", r.stdout.toString().trim(), paths(api.requests));
      expect(r.stdout.toString().trim()).toBe("db-0"); // current (old) revision, Ready longest
    });

    it("exec ds/NAME and job/NAME resolve through the workload's selector", async () => {
      api.resetLog();
      let r = await kubectl(api, ["exec", "ds/agent", "--", "sh", "-c", "echo $POD"]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.toString()).toBe("agent-x7k2p\n");
      expect(paths(api.requests)).toContain("GET /apis/apps/v1/namespaces/default/daemonsets/agent");
      r = await kubectl(api, ["exec", "job/batch1", "--", "sh", "-c", "echo $POD"]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.toString()).toBe("batch1-q9z8w\n");
      const list = api.requests.filter((q) => q.path === "/api/v1/namespaces/default/pods").at(-1)!;
      expect(list.query.labelSelector).toEqual(["batch.kubernetes.io/job-name=batch1"]);
    });

    it("exec deploy/NAME with no pods yet: kubectl watches until one appears", async () => {
      api.resetLog();
      const run = kubectl(api, ["exec", "deploy/empty", "--pod-running-timeout=30s", "--", "sh", "-c", "echo $POD"]);
      const t0 = Date.now();
      while (!api.requests.some((q) => q.query.watch?.[0] === "true") && Date.now() - t0 < 20_000) await new Promise((r) => setTimeout(r, 50));
      api.upsertPod({ name: "empty-late", labels: { app: "empty" }, containers: c("empty-late") });
      const r = await run;
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.toString()).toBe("empty-late\n");
      const w = api.requests.find((q) => q.query.watch)!;
      expect(w.query.resourceVersion?.[0]).toMatch(/^\d+$/); // the list's resourceVersion: only new events
      expect(w.query.labelSelector).toEqual(["app=empty"]);
      expect(api.removePod("empty-late")).toBe(true);
    });

    it("-c picks the container on a multi-container pod; default is the first", async () => {
      let r = await kubectl(api, ["exec", "multi", "-c", "side", "--", "cat", "/id"]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.toString()).toBe("side\n");
      r = await kubectl(api, ["exec", "multi", "--", "cat", "/id"]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.toString()).toBe("main\n");
      expect(r.stderr).toContain('Defaulted container "main" out of: main, side');
      api.resetLog();
      r = await kubectl(api, ["exec", "multi", "-c", "nope", "--", "true"]);
      expect(r.code).toBe(1);
      expect(api.requests.filter((q) => q.path.endsWith("/exec")).map((q) => [q.method, q.upgrade, q.status])).toEqual([
        ["GET", "websocket", 400],
        ["POST", "spdy", 400],
      ]);
      expect(r.stderr).toContain("container nope is not valid for pod multi");
    });

    it("missing command in the container: Internal error, exit 1", async () => {
      const r = await kubectl(api, ["exec", "solo", "--", "no-such-cmd"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('exec: "no-such-cmd": executable file not found in $PATH');
    });

    it("wrong token: Unauthorized", async () => {
      api.resetLog();
      const bad = await api.writeKubeconfig(join(api.dir, "bad-kubeconfig"), { token: "wrong" });
      let r = await kubectl(api, ["get", "pods"], { kubeconfig: bad });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("error: You must be logged in to the server (Unauthorized)");
      r = await kubectl(api, ["exec", "solo", "--", "true"], { kubeconfig: bad });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("Unauthorized");
      expect(api.requests.every((q) => q.status === 401 && q.user === null)).toBe(true);
    });

    it("forbidden exec (pod and namespace denials): Forbidden, WebSocket then SPDY attempt", async () => {
      api.resetLog();
      let r = await kubectl(api, ["exec", "locked", "--", "true"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('pods "locked" is forbidden: User "krsync-test" cannot create resource "pods/exec" in API group "" in the namespace "default"');
      const ups = api.requests.filter((q) => q.path.endsWith("/exec"));
      expect(ups.map((q) => [q.method, q.upgrade, q.status])).toEqual([
        ["GET", "websocket", 403],
        ["POST", "spdy", 403],
      ]);
      r = await kubectl(api, ["-n", "secret", "exec", "other-ns-pod", "--", "true"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('in the namespace "secret"');
      r = await kubectl(api, ["exec", "nope", "--", "true"]);
      expect(r.stderr).toContain('pods "nope" not found');
    });

    it("KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false: SPDY only, refused with 400", async () => {
      api.resetLog();
      const p = await kubectl(api, ["exec", "solo", "--", "true"], { env: { KUBECTL_REMOTE_COMMAND_WEBSOCKETS: "false" } });
      expect(p.code).toBe(1);
      expect(p.stderr).toContain("speaks exec over WebSocket only");
      const ups = api.requests.filter((q) => q.path.endsWith("/exec"));
      expect(ups.map((q) => [q.method, q.upgrade, q.status])).toEqual([["POST", "spdy", 400]]);
      expect(ups[0]!.offeredProtocols).toEqual(["v5.channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"]);
      expect(ups[0]!.headers["kubectl-command"]).toBe("kubectl exec");
    });

    it("exec into a Succeeded pod is refused by kubectl itself", async () => {
      api.resetLog();
      const r = await kubectl(api, ["exec", "done", "--", "true"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("cannot exec into a container in a completed pod; current phase is Succeeded");
      expect(api.requests.some((q) => q.path.endsWith("/exec"))).toBe(false);
    });

    it("50 MB stdin→stdout through exec cat: bytes intact, server buffers bounded", async () => {
      const size = 50 << 20;
      const file = join(tmp, "big.bin");
      const data = randomBytes(size);
      await writeFile(file, data);
      const want = createHash("sha256").update(data).digest("hex");
      const rssBefore = process.memoryUsage().rss;
      const fh = await open(file, "r");
      api.resetLog();
      const result = await new Promise<{ code: number | null; hash: string; n: number; stderr: string }>((resolve, reject) => {
        const p = spawn(KUBECTL, [...api.kubectlArgs, "exec", "-i", "solo", "--", "cat"], { env: api.kubectlEnv, stdio: [fh.fd, "pipe", "pipe"] });
        const h = createHash("sha256");
        let n = 0;
        let stderr = "";
        p.stdout!.on("data", (d: Buffer) => {
          n += d.length;
          h.update(d);
        });
        p.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
        p.on("error", reject);
        p.on("close", (code) => resolve({ code, hash: h.digest("hex"), n, stderr }));
      });
      await fh.close();
      expect(result.code, result.stderr).toBe(0);
      expect(result.n).toBe(size);
      expect(result.hash).toBe(want);
      const rec = api.execs.at(-1)!;
      await rec.done;
      console.log("50MB kubectl exec cat:", {
        stdinBytes: rec.stdinBytes,
        stdoutBytes: rec.stdoutBytes,
        maxBufferedAmount: rec.maxBufferedAmount,
        maxStdinPending: rec.maxStdinPending,
        stdinPauses: rec.stdinPauses,
        outputPauses: rec.outputPauses,
        rssGrowthMB: Math.round((process.memoryUsage().rss - rssBefore) / 2 ** 20),
      });
      expect(rec.stdinBytes).toBe(size);
      expect(rec.maxBufferedAmount).toBeLessThan(4 << 20);
      expect(rec.maxStdinPending).toBeLessThan(4 << 20);
      expect(process.memoryUsage().rss - rssBefore).toBeLessThan(150 << 20);
    });
  });

  describe.skipIf(!haveKubectl)("kubectl against variant servers", () => {
    it("legacy discovery when aggregated discovery is off", async () => {
      const legacy = await startFakeApi({ pods: [{ name: "p", labels: { app: "p" }, containers: c("p") }], workloads: [{ kind: "Deployment", name: "p", selector: { app: "p" } }], aggregatedDiscovery: false });
      try {
        const r = await kubectl(legacy, ["exec", "deploy/p", "--", "sh", "-c", "echo $POD"]);
        expect(r.code, r.stderr).toBe(0);
        expect(r.stdout.toString()).toBe("p\n");
        const ps = paths(legacy.requests);
        for (const p of ["GET /api", "GET /apis", "GET /api/v1", "GET /apis/apps/v1", "GET /apis/batch/v1"]) expect(ps).toContain(p);
      } finally {
        await legacy.close();
      }
    });

    it("a v4-only server: kubectl (v5 only) gets 400, falls back to SPDY, fails", async () => {
      const v4 = await startFakeApi({ pods: [{ name: "p", containers: c("p") }], execProtocols: [PROTOCOL_V4] });
      try {
        const r = await kubectl(v4, ["exec", "p", "--", "true"]);
        expect(r.code).toBe(1);
        const ups = v4.requests.filter((q) => q.path.endsWith("/exec"));
        expect(ups.map((q) => [q.upgrade, q.status])).toEqual([
          ["websocket", 400],
          ["spdy", 400],
        ]);
      } finally {
        await v4.close();
      }
    });
  });

  describe("@kubernetes/client-node", () => {
    const kc = () => {
      const k = new KubeConfig();
      k.loadFromFile(api.kubeconfigPath);
      return k;
    };

    it("loadFromFile + listNamespacedPod with a selector; 404 as ApiException", async () => {
      api.resetLog();
      const core = kc().makeApiClient(CoreV1Api);
      const list = await core.listNamespacedPod({ namespace: "default", labelSelector: "app=web,pod-template-hash=new2222" });
      expect(list.items.map((p) => p.metadata?.name).sort()).toEqual(["web-new-ready", "web-new-starting"]);
      const pod = await core.readNamespacedPod({ namespace: "default", name: "web-old-term" });
      expect(pod.metadata?.deletionTimestamp).toBeInstanceOf(Date);
      expect(pod.status?.conditions?.find((x) => x.type === "Ready")?.lastTransitionTime).toBeInstanceOf(Date);
      expect(pod.metadata?.ownerReferences?.[0]).toMatchObject({ kind: "ReplicaSet", name: "web-old", controller: true });
      await expect(core.readNamespacedPod({ namespace: "default", name: "nope" })).rejects.toMatchObject({ code: 404 });
      const req = api.requests.find((q) => q.path === "/api/v1/namespaces/default/pods")!;
      expect(req.headers["user-agent"]).toBe("node-fetch/1.0 (+https://github.com/bitinn/node-fetch)");
      expect(req.headers.accept).toBe("application/json, */*;q=0.8");
      expect(req.query.labelSelector).toEqual(["app=web,pod-template-hash=new2222"]);
    });

    it("Exec round trip with stdin end and exit status", async () => {
      api.resetLog();
      const run = async (cmd: string[], input: string) => {
        const stdin = new PassThrough();
        const out: Buffer[] = [];
        const err: Buffer[] = [];
        const sink = (arr: Buffer[]) => new Writable({ write: (ch: Buffer, _e, cb) => (arr.push(ch), cb()) });
        let status: V1Status | undefined;
        const ws = await new Exec(kc()).exec("default", "solo", "app", cmd, sink(out), sink(err), stdin, false, (s) => (status = s));
        const closed = new Promise<number>((r) => ws.on("close", (code: number) => r(code)));
        stdin.end(input);
        const code = await closed;
        return { code, status, out: Buffer.concat(out).toString(), err: Buffer.concat(err).toString(), protocol: ws.protocol };
      };
      const a = await run(["sh", "-c", "cat; echo oops >&2; exit 3"], "from client-node\n");
      expect(a.out).toBe("from client-node\n");
      expect(a.err).toBe("oops\n");
      expect(a.code).toBe(1000);
      expect(a.protocol).toBe(PROTOCOL_V5);
      expect(a.status).toMatchObject({ status: "Failure", reason: "NonZeroExitCode", details: { causes: [{ reason: "ExitCode", message: "3" }] } });
      const b = await run(["cat"], "x");
      expect(b.out).toBe("x");
      expect(b.status).toEqual({ metadata: {}, status: "Success" });
      const up = api.requests.find((q) => q.path.endsWith("/exec"))!;
      expect(up.offeredProtocols).toEqual(["v5.channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"]);
      expect(api.execs.map((e) => e.stdinEnd)).toEqual(["close-frame", "close-frame"]);
    });

    it("Exec against a v4-only server: negotiates v4, and stdin end closes the socket (no status)", async () => {
      const v4 = await startFakeApi({ pods: [{ name: "p", containers: c("p") }], execProtocols: [PROTOCOL_V4] });
      try {
        const k = new KubeConfig();
        k.loadFromFile(v4.kubeconfigPath);
        const stdin = new PassThrough();
        let status: V1Status | undefined;
        const ws = await new Exec(k).exec("default", "p", "app", ["sh", "-c", "cat >/dev/null; echo late"], new PassThrough(), new PassThrough(), stdin, false, (st) => (status = st));
        expect(ws.protocol).toBe(PROTOCOL_V4);
        const closed = new Promise<number>((r) => ws.on("close", (code: number) => r(code)));
        stdin.end("data");
        await closed;
        const rec = v4.execs[0]!;
        await rec.done;
        expect(status).toBeUndefined();
        expect(rec).toMatchObject({ protocol: PROTOCOL_V4, stdinEnd: "socket-close", clientClosedEarly: true });
      } finally {
        await v4.close();
      }
    });

    it("Exec errors: bad container → 400 before upgrade", async () => {
      const w = new Exec(kc()).exec("default", "multi", "nope", ["true"], null, null, null, false);
      await expect(w).rejects.toBeDefined();
      expect(api.requests.at(-1)?.status).toBe(400);
    });
  });

  describe("plain HTTPS: Status objects", () => {
    const get = (path: string, token: string | null = api.token, method = "GET") =>
      new Promise<{ code: number; body: Record<string, unknown>; type: string }>((resolve, reject) => {
        const req = httpsRequest(`${api.url}${path}`, { method, ca: readFileSync(api.caFile), headers: token ? { Authorization: `Bearer ${token}` } : {} }, (res) => {
          let d = "";
          res.on("data", (x: Buffer) => (d += x.toString()));
          res.on("end", () => resolve({ code: res.statusCode ?? 0, body: JSON.parse(d) as Record<string, unknown>, type: String(res.headers["content-type"]) }));
        });
        req.on("error", reject);
        req.end();
      });

    it("404 / 401 / 403 / 400 / 405 bodies are metav1.Status", async () => {
      expect(await get("/api/v1/namespaces/default/widgets")).toMatchObject({ code: 404, body: { kind: "Status", status: "Failure", reason: "NotFound", message: "the server could not find the requested resource", code: 404 } });
      expect(await get("/apis/nope/v1")).toMatchObject({ code: 404 });
      expect(await get("/apis/apps/v1/namespaces/default/deployments/nope")).toMatchObject({ code: 404, body: { message: 'deployments.apps "nope" not found', details: { name: "nope", group: "apps", kind: "deployments" } } });
      expect(await get("/api/v1/namespaces/default/pods", "bad")).toMatchObject({ code: 401, body: { kind: "Status", reason: "Unauthorized", message: "Unauthorized" } });
      expect(await get("/version", null)).toMatchObject({ code: 401 });
      expect(await get("/api/v1/namespaces/default/pods?labelSelector=a%20in%20b")).toMatchObject({ code: 400, body: { reason: "BadRequest" } });
      expect(await get("/api/v1/namespaces/default/pods/solo", api.token, "DELETE")).toMatchObject({ code: 405, body: { reason: "MethodNotAllowed" } });
      expect(await get("/api/v1/namespaces/default/pods/solo/exec?command=true")).toMatchObject({ code: 400, body: { message: "Upgrade request required" } });
      api.deny.push({ verb: "list", resource: "deployments", namespace: "secret" });
      expect(await get("/apis/apps/v1/namespaces/secret/deployments")).toMatchObject({ code: 403, body: { reason: "Forbidden", message: 'deployments.apps is forbidden: User "krsync-test" cannot list resource "deployments" in API group "apps" in the namespace "secret"' } });
      api.deny.pop();
    });

    it("objects: lists without item kinds, owner references, revisions", async () => {
      const rs = await get("/apis/apps/v1/namespaces/default/replicasets?labelSelector=app%3Dweb");
      expect(rs.body.kind).toBe("ReplicaSetList");
      const items = rs.body.items as { kind?: string; metadata: { name: string; annotations: Record<string, string>; ownerReferences: { kind: string; name: string; uid: string }[] } }[];
      expect(items.map((i) => [i.metadata.name, i.metadata.annotations["deployment.kubernetes.io/revision"], i.kind])).toEqual([
        ["web-new", "2", undefined],
        ["web-old", "1", undefined],
      ]);
      const dep = await get("/apis/apps/v1/namespaces/default/deployments/web");
      expect(items[0]!.metadata.ownerReferences[0]).toMatchObject({ kind: "Deployment", name: "web", uid: (dep.body.metadata as { uid: string }).uid });
      const sts = await get("/apis/apps/v1/namespaces/default/statefulsets/db");
      expect(sts.body.status).toMatchObject({ currentRevision: "db-aaa", updateRevision: "db-bbb" });
      const pods = await get("/api/v1/namespaces/default/pods?labelSelector=controller-revision-hash%3Ddb-bbb");
      expect((pods.body.items as { metadata: { name: string } }[]).map((p) => p.metadata.name)).toEqual(["db-1"]);
      const crs = await get("/apis/apps/v1/namespaces/default/controllerrevisions?labelSelector=app%3Dagent");
      expect(crs.body.items).toMatchObject([{ revision: 1, metadata: { ownerReferences: [{ kind: "DaemonSet", name: "agent" }] } }]);
      const term = await get("/api/v1/namespaces/default/pods?fieldSelector=metadata.name%3Dweb-old-term");
      expect(term.body.items).toMatchObject([{ metadata: { deletionTimestamp: expect.any(String) }, status: { phase: "Running", containerStatuses: [{ name: "app", ready: true }] } }]);
      const agg = await new Promise<string>((resolve) => {
        httpsRequest(`${api.url}/apis`, { ca: readFileSync(api.caFile), headers: { Authorization: `Bearer ${api.token}`, Accept: "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json" } }, (res) => resolve(String(res.headers["content-type"]))).end();
      });
      expect(agg).toBe("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList");
    });
  });

  describe("raw ws client", () => {
    type Session = { stdout: Buffer; stderr: Buffer; status: unknown; closeCode: number; protocol: string };
    const connect = (a: FakeApi, pod: string, cmd: string[], protocols: string[], q = "stdin=true&stdout=true&stderr=true") => {
      const qs = cmd.map((x) => `command=${encodeURIComponent(x)}`).join("&");
      return new WebSocket(`wss://127.0.0.1:${a.port}/api/v1/namespaces/default/pods/${pod}/exec?${qs}&${q}`, protocols, {
        ca: [caPem],
        headers: { Authorization: `Bearer ${a.token}` },
      });
    };
    let caPem = "";
    beforeAll(async () => {
      caPem = await readFile(api.caFile, "utf8");
    });
    const collect = (ws: WebSocket): Promise<Session> =>
      new Promise((resolve, reject) => {
        const out: Buffer[] = [];
        const err: Buffer[] = [];
        let status: unknown;
        ws.on("message", (d: Buffer) => {
          if (d[0] === 1) out.push(d.subarray(1));
          else if (d[0] === 2) err.push(d.subarray(1));
          else if (d[0] === 3) status = JSON.parse(d.subarray(1).toString());
        });
        ws.on("error", reject);
        ws.on("close", (code) => resolve({ stdout: Buffer.concat(out), stderr: Buffer.concat(err), status, closeCode: code, protocol: ws.protocol }));
      });
    const frame = (ch: number, data: string | Buffer) => Buffer.concat([Buffer.from([ch]), Buffer.from(data)]);

    it("v5: stdin frames, resize, [255,0] half-close, status, close 1000", async () => {
      const ws = connect(api, "solo", ["sh", "-c", "cat; echo end"], [PROTOCOL_V5, PROTOCOL_V4]);
      const done = collect(ws);
      await new Promise((r) => ws.once("open", r));
      ws.send(frame(0, "abc"));
      ws.send(frame(4, JSON.stringify({ Width: 80, Height: 24 })));
      ws.send(frame(0, "def\n"));
      ws.send(Buffer.from([255, 0]));
      const s = await done;
      expect(s.protocol).toBe(PROTOCOL_V5);
      expect(s.stdout.toString()).toBe("abcdef\nend\n");
      expect(s.status).toEqual({ metadata: {}, status: "Success" });
      expect(s.closeCode).toBe(1000);
      expect(api.execs.at(-1)).toMatchObject({ stdinEnd: "close-frame", resizes: [{ Width: 80, Height: 24 }] });
    });

    it("v4: negotiated when offered alone; no stdin EOF, a command that stops reading ends it", async () => {
      const ws = connect(api, "solo", ["head", "-c", "5"], [PROTOCOL_V4]);
      const done = collect(ws);
      await new Promise((r) => ws.once("open", r));
      ws.send(frame(0, "12345678"));
      ws.send(Buffer.from([255, 0])); // meaningless in v4: ignored
      const s = await done;
      expect(s.protocol).toBe(PROTOCOL_V4);
      expect(s.stdout.toString()).toBe("12345");
      expect(s.status).toEqual({ metadata: {}, status: "Success" });
      expect(api.execs.at(-1)?.stdinEnd).toBe(null);
    });

    it("v4: closing the socket is the only stdin end (output and status are lost)", async () => {
      const ws = connect(api, "solo", ["sh", "-c", "cat >/dev/null; exit 7"], [PROTOCOL_V4]);
      const done = collect(ws);
      await new Promise((r) => ws.once("open", r));
      ws.send(frame(0, "x"));
      ws.close(1000);
      const s = await done;
      expect(s.status).toBeUndefined();
      const rec = api.execs.at(-1)!;
      await rec.done;
      expect(rec).toMatchObject({ stdinEnd: "socket-close", clientClosedEarly: true, exitCode: 7 });
    });

    it("refusals: unsupported subprotocol 400, exit code Failure status, missing token 401", async () => {
      const bad = connect(api, "solo", ["true"], ["channel.k8s.io"]);
      const code = await new Promise<number>((r) => bad.on("unexpected-response", (_q, res) => r(res.statusCode ?? 0)));
      expect(code).toBe(400);
      const s = await collect(connect(api, "solo", ["sh", "-c", "exit 42"], [PROTOCOL_V5]));
      expect(s.status).toEqual({
        metadata: {},
        status: "Failure",
        message: "command terminated with non-zero exit code: error executing command [sh -c exit 42], exit code 42",
        reason: "NonZeroExitCode",
        details: { causes: [{ reason: "ExitCode", message: "42" }] },
      });
      const anon = new WebSocket(`wss://127.0.0.1:${api.port}/api/v1/namespaces/default/pods/solo/exec?command=true&stdout=true`, [PROTOCOL_V5], { ca: [caPem] });
      const c401 = await new Promise<number>((r) => anon.on("unexpected-response", (_q, res) => r(res.statusCode ?? 0)));
      expect(c401).toBe(401);
    });

    it("backpressure: a paused reader makes the server pause the command's output", async () => {
      const size = 32 << 20;
      const ws = connect(api, "solo", ["head", "-c", String(size), "/dev/zero"], [PROTOCOL_V5], "stdout=true&stderr=true");
      await new Promise((r) => ws.once("open", r));
      ws.pause();
      await new Promise((r) => setTimeout(r, 1500));
      const rec = api.execs.at(-1)!;
      expect(rec.outputPauses).toBeGreaterThan(0);
      expect(rec.stdoutBytes).toBeLessThan(size / 2);
      let n = 0;
      const closed = new Promise<number>((r) => ws.on("close", (code) => r(code)));
      ws.on("message", (d: Buffer) => {
        if (d[0] === 1) n += d.length - 1;
      });
      ws.resume();
      expect(await closed).toBe(1000);
      expect(n).toBe(size);
      expect(rec.maxBufferedAmount).toBeLessThan(4 << 20);
    });

    it("backpressure: stdin sent faster than the command reads pauses the socket", async () => {
      const size = 24 << 20;
      const ws = connect(api, "solo", ["sh", "-c", "sleep 1; cat >/dev/null; echo ok"], [PROTOCOL_V5]);
      const done = collect(ws);
      await new Promise((r) => ws.once("open", r));
      const chunk = Buffer.alloc(64 << 10, 7);
      for (let sent = 0; sent < size; sent += chunk.length) ws.send(frame(0, chunk));
      ws.send(Buffer.from([255, 0]));
      const s = await done;
      expect(s.stdout.toString()).toBe("ok\n");
      const rec = api.execs.at(-1)!;
      expect(rec.stdinBytes).toBe(size);
      expect(rec.stdinPauses).toBeGreaterThan(0);
      expect(rec.maxStdinPending).toBeLessThan(4 << 20);
    });
  });
});
