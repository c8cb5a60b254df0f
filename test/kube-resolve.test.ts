// Finding the pod: kubeconfig loading (KUBECONFIG lists, --kubeconfig, --context, namespace
// order), the transport choice, and TYPE/NAME resolution against the fake API server over
// HTTPS (client-node credentials, exec plugins included) and through `kubectl get --raw`.
// No exec runs a command here, so no root is needed.

import { chmodSync, existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chooseTransport, loadKubeConfig, type LoadedKubeConfig } from "../src/kube/config.js";
import { KubeError } from "../src/kube/errors.js";
import { openWsExec } from "../src/kube/exec-ws.js";
import { kubectlCommand } from "../src/kube/exec-kubectl.js";
import { PodResolver, type Target } from "../src/kube/pods.js";
import { HttpsRest, KubectlRest, type KubeRest } from "../src/kube/rest.js";
import { tmpDir } from "./helpers/env.js";
import { startFakeApi, type FakeApi } from "./kube/fakeapi.js";
import { halfDoneRollout, statefulSetMidUpdate } from "./kube/fixtures.js";
import type { ContainerSpec } from "./kube/objects.js";

const HAVE_KUBECTL = existsSync("/usr/bin/kubectl");
const app: ContainerSpec[] = [{ name: "app" }];

function kubeconfigText(o: { clusters: [string, string][]; users: [string, string][]; contexts: [string, string, string, string?][]; current?: string }): string {
  let t = "apiVersion: v1\nkind: Config\nclusters:\n";
  for (const [n, s] of o.clusters) t += `- name: ${n}\n  cluster:\n    server: ${s}\n    insecure-skip-tls-verify: true\n`;
  t += "users:\n";
  for (const [n, tok] of o.users) t += `- name: ${n}\n  user:\n    token: ${tok}\n`;
  t += "contexts:\n";
  for (const [n, c, u, ns] of o.contexts) t += `- name: ${n}\n  context:\n    cluster: ${c}\n    user: ${u}\n${ns ? `    namespace: ${ns}\n` : ""}`;
  if (o.current) t += `current-context: ${o.current}\n`;
  return t;
}

describe("kubeconfig", () => {
  const d = tmpDir("kcfg-");
  const a = join(d, "a");
  const b = join(d, "b");
  writeFileSync(a, kubeconfigText({ clusters: [["c1", "https://one:6443"]], users: [["u1", "t1"]], contexts: [["one", "c1", "u1", "ns-one"]], current: "one" }));
  writeFileSync(
    b,
    kubeconfigText({
      clusters: [["c1", "https://shadowed:6443"], ["c2", "http://two:8080"]],
      users: [["u2", "t2"]],
      contexts: [["two", "c2", "u2"]],
      current: "two",
    }),
  );

  it("KUBECONFIG with several files: the first to define a name or the current context wins; missing files are skipped", () => {
    const cfg = loadKubeConfig({}, undefined, { KUBECONFIG: [join(d, "missing"), a, b].join(":") });
    expect(cfg.contextName).toBe("one");
    expect(cfg.cluster.server).toBe("https://one:6443");
    expect(cfg.namespace).toBe("ns-one");
    expect(cfg.kc.getContexts().map((c) => c.name)).toEqual(["one", "two"]);
  });

  it("--kubeconfig overrides KUBECONFIG; --context selects; namespace: --namespace, NS/ prefix, context, default", () => {
    const env = { KUBECONFIG: a };
    expect(loadKubeConfig({ kubeconfig: b }, undefined, env).contextName).toBe("two");
    const two = loadKubeConfig({ context: "two" }, undefined, { KUBECONFIG: `${a}:${b}` });
    expect(two.cluster.name).toBe("c2");
    expect(two.namespace).toBe("default");
    expect(loadKubeConfig({}, "pfx", env).namespace).toBe("pfx");
    expect(loadKubeConfig({ namespace: "flag" }, "pfx", env).namespace).toBe("flag");
    expect(() => loadKubeConfig({ context: "nope" }, undefined, env)).toThrow(/context "nope" not found in kubeconfig .* \(contexts: one\)/);
    expect(() => loadKubeConfig({ kubeconfig: join(d, "none") }, undefined, env)).toThrow(/does not exist/);
    expect(() => loadKubeConfig({}, undefined, { HOME: d })).toThrow(/no kubeconfig found/);
  });

  it("transport: api when client-node can use the kubeconfig, else kubectl; KRSYNC_KUBE_TRANSPORT forces one", () => {
    const one = loadKubeConfig({}, undefined, { KUBECONFIG: a });
    expect(chooseTransport(one, {}).kind).toBe("api");
    expect(chooseTransport(one, { KRSYNC_KUBE_TRANSPORT: "kubectl" }).kind).toBe("kubectl");
    expect(() => chooseTransport(one, { KRSYNC_KUBE_TRANSPORT: "ssh" })).toThrow(/must be "api" or "kubectl"/);
    // plain http with TLS verification on: client-node refuses it, kubectl does not
    const plain = join(d, "plain");
    writeFileSync(plain, kubeconfigText({ clusters: [["p", "http://two:8080"]], users: [["u", "t"]], contexts: [["p", "p", "u"]], current: "p" }).replace("    insecure-skip-tls-verify: true\n", ""));
    const p = loadKubeConfig({ kubeconfig: plain }, undefined, {});
    expect(chooseTransport(p, {})).toEqual({ kind: "kubectl", why: "server http://two:8080 is plain http, which client-node refuses" });
    expect(() => chooseTransport(p, { KRSYNC_KUBE_TRANSPORT: "api" })).toThrow(/KRSYNC_KUBE_TRANSPORT=api, but server/);
  });
});

describe("TYPE/NAME → pod against the fake API server", () => {
  let api: FakeApi;
  let cfg: LoadedKubeConfig;
  const now = Date.now();
  const ago = (m: number) => new Date(now - m * 60_000).toISOString().replace(/\.\d{3}Z$/, "Z");
  const rollout = halfDoneRollout("web", () => app, now);

  beforeAll(async () => {
    const sts = statefulSetMidUpdate("db", () => app, now);
    api = await startFakeApi({
      pods: [
        ...rollout.pods,
        ...sts.pods,
        { name: "solo", containers: [{ name: "main" }, { name: "side" }], annotations: { "kubectl.kubernetes.io/default-container": "side" } },
        { name: "two-a", labels: { app: "two", "pod-template-hash": "t2" }, owner: { kind: "ReplicaSet", name: "two-2" }, readySince: ago(5), containers: app },
        { name: "two-b", labels: { app: "two", "pod-template-hash": "t2" }, owner: { kind: "ReplicaSet", name: "two-2" }, readySince: ago(9), containers: app },
        { name: "two-c", labels: { app: "two", "pod-template-hash": "t2" }, owner: { kind: "ReplicaSet", name: "two-2" }, ready: false, containers: app },
        { name: "stray", labels: { app: "two", "pod-template-hash": "t2" }, readySince: ago(60), containers: app },
        { name: "late", labels: { app: "late", "pod-template-hash": "l1" }, owner: { kind: "ReplicaSet", name: "late-1" }, ready: false, containers: app },
      ],
      workloads: [
        ...rollout.workloads,
        ...sts.workloads,
        { kind: "Deployment", name: "two", selector: { app: "two" }, revision: 2 },
        { kind: "ReplicaSet", name: "two-2", owner: "two", revision: 2, selector: { app: "two", "pod-template-hash": "t2" } },
        { kind: "ReplicaSet", name: "two-rs", selector: { app: "two", "pod-template-hash": "t2" } },
        { kind: "Deployment", name: "late", selector: { app: "late" } },
        { kind: "ReplicaSet", name: "late-1", owner: "late", revision: 1, selector: { app: "late", "pod-template-hash": "l1" } },
      ],
      namespaces: ["locked"],
      deny: [{ verb: "list", resource: "pods", namespace: "locked" }],
    });
    cfg = loadKubeConfig({ kubeconfig: api.kubeconfigPath }, undefined, {});
  });

  afterAll(async () => {
    await api?.close();
  });

  const t = (type: Target["type"], name: string, namespace = "default"): Target => ({ type, name, namespace });

  const suite = (label: string, rest: () => KubeRest) => {
    describe(label, () => {
      it("deployment in a half-done rollout: the newest revision's Ready pod, never the old or terminating ones", async () => {
        const r = new PodResolver(rest());
        expect(await r.resolve(t("deployment", "web"))).toEqual([{ namespace: "default", pod: rollout.newReady, container: "app" }]);
      });

      it("statefulset mid-update: the pod of status.updateRevision", async () => {
        expect((await new PodResolver(rest()).resolve(t("statefulset", "db")))[0]!.pod).toBe("db-1");
      });

      it("allPods: every Ready pod of the newest revision, Ready longest first; owned pods only", async () => {
        const r = new PodResolver(rest());
        expect((await r.resolve(t("deployment", "two"), { allPods: true })).map((p) => p.pod)).toEqual(["two-b", "two-a"]);
        expect((await r.resolve(t("deployment", "two"))).map((p) => p.pod)).toEqual(["two-b"]);
      });

      it("container: --container, else the default-container annotation", async () => {
        const r = new PodResolver(rest());
        expect((await r.resolve(t("pod", "solo")))[0]!.container).toBe("side");
        expect((await r.resolve(t("pod", "solo"), { container: "main" }))[0]!.container).toBe("main");
        await expect(r.resolve(t("pod", "solo"), { container: "x" })).rejects.toThrow('container "x" not found in pod "solo" (namespace "default"; containers: main, side)');
      });

      it("not found: the namespace or the object", async () => {
        const r = new PodResolver(rest());
        await expect(r.resolve(t("pod", "x", "ghost"))).rejects.toThrow('namespace "ghost" not found');
        await expect(r.resolve(t("statefulset", "x"))).rejects.toThrow('statefulset "x" not found in namespace "default"');
        await expect(r.resolve(t("job", "x", "locked"))).rejects.toThrow(/job "x" not found in namespace "locked"/);
      });

      it("waits (saying so) until the newest revision has a Ready pod; gives up after podWait", async () => {
        const r = new PodResolver(rest());
        const notices: string[] = [];
        await expect(r.resolve(t("deployment", "late"), { podWait: 1, pollMs: 200, notice: (s) => notices.push(s) })).rejects.toThrow(
          'no ready pod for deployment/late in namespace "default" after waiting 1s: ReplicaSet late-1 (revision 1) has no Ready pod: late (not ready)',
        );
        expect(notices).toEqual(['krsync: waiting up to 1s for a ready pod of deployment/late in namespace "default" (ReplicaSet late-1 (revision 1) has no Ready pod: late (not ready))']);
        const spec = api.getPodSpec("late")!;
        setTimeout(() => api.upsertPod({ ...spec, ready: true }), 400);
        expect((await r.resolve(t("deployment", "late"), { podWait: 10, pollMs: 100 }))[0]!.pod).toBe("late");
        api.upsertPod(spec);
        const ac = new AbortController();
        setTimeout(() => ac.abort(), 200);
        await expect(r.resolve(t("deployment", "late"), { podWait: 10, pollMs: 50, signal: ac.signal })).rejects.toThrow(/aborted/);
      });
    });
  };

  suite("HTTPS with client-node's credentials", () => new HttpsRest(cfg));
  if (HAVE_KUBECTL) suite("kubectl get --raw", () => new KubectlRest(kubectlCommand({ kubeconfig: api.kubeconfigPath }, api.kubectlEnv)));

  it("RBAC forbidden and a bad token are one clear line (both REST flavours)", async () => {
    const rests: KubeRest[] = [new HttpsRest(cfg)];
    if (HAVE_KUBECTL) rests.push(new KubectlRest(kubectlCommand({ kubeconfig: api.kubeconfigPath }, api.kubectlEnv)));
    for (const rest of rests) {
      await expect(new PodResolver(rest).resolve(t("replicaset", "two-rs", "locked"))).rejects.toThrow(/replicaset "two-rs" not found/);
      api.deny.push({ verb: "list", resource: "pods", namespace: "default" });
      await expect(new PodResolver(rest).resolve(t("replicaset", "two-rs"))).rejects.toThrow(/^forbidden: pods is forbidden: User "krsync-test" cannot list resource "pods"/);
      api.deny.pop();
      api.deny.push({ verb: "get", resource: "pods", name: "solo" });
      await expect(new PodResolver(rest).resolve(t("pod", "solo"))).rejects.toThrow(/^forbidden: pods "solo" is forbidden: User "krsync-test" cannot get resource "pods"/);
      api.deny.pop();
    }
    const bad = await api.writeKubeconfig(join(tmpDir("kres-"), "bad"), { token: "wrong" });
    const badCfg = loadKubeConfig({ kubeconfig: bad }, undefined, {});
    await expect(new PodResolver(new HttpsRest(badCfg)).resolve(t("pod", "solo"))).rejects.toThrow(/^unauthorized: the API server rejected the credentials/);
    if (HAVE_KUBECTL) {
      const kr = new KubectlRest(kubectlCommand({ kubeconfig: bad }, api.kubectlEnv));
      await expect(new PodResolver(kr).resolve(t("pod", "solo"))).rejects.toThrow(/^unauthorized/);
    }
  });

  it("an exec credential plugin in the kubeconfig works for GETs and for the exec WebSocket", async () => {
    const d = tmpDir("kres-");
    const plugin = join(d, "plugin.sh");
    writeFileSync(
      plugin,
      `#!/bin/sh\necho "$0 ran" >> ${join(d, "log")}\nprintf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"%s"}}' "${api.token}"\n`,
    );
    chmodSync(plugin, 0o755);
    const kc = join(d, "kubeconfig");
    writeFileSync(
      kc,
      `apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: ${api.url}\n    certificate-authority: ${api.caFile}\n` +
        `users:\n- name: p\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: ${plugin}\n      interactiveMode: Never\n` +
        `contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: p\ncurrent-context: fake\n`,
    );
    const pcfg = loadKubeConfig({ kubeconfig: kc }, undefined, {});
    api.resetLog();
    expect((await new PodResolver(new HttpsRest(pcfg)).resolve(t("pod", "solo")))[0]!.pod).toBe("solo");
    // The pod has no root directory: the fake answers the exec with a Failure status, but the
    // upgrade itself (auth included) succeeds.
    const ws = await openWsExec({ cfg: pcfg, namespace: "default", pod: "solo", container: "main", command: ["true"], stderr: () => undefined });
    expect((await ws.exited()).code).toBe(126);
    expect(ws.describeFailure()).toMatch(/has no root directory/);
    expect(api.requests.every((r) => r.user === "krsync-test")).toBe(true);
    expect(api.requests.at(-1)!.offeredProtocols).toEqual(["v5.channel.k8s.io", "v4.channel.k8s.io"]);
  });

  it("exec refusals over the WebSocket are the API server's one-line message", async () => {
    await expect(openWsExec({ cfg, namespace: "default", pod: "nope", container: "app", command: ["true"] })).rejects.toThrow(/pods "nope" not found/);
    api.deny.push({ verb: "create", resource: "pods/exec", name: "solo" });
    await expect(openWsExec({ cfg, namespace: "default", pod: "solo", container: "main", command: ["true"] })).rejects.toThrow(
      /^forbidden: pods "solo" is forbidden: User "krsync-test" cannot create resource "pods\/exec"/,
    );
    api.deny.pop();
    const err = await openWsExec({ cfg, namespace: "default", pod: "solo", container: "zzz", command: ["true"] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KubeError);
    expect((err as Error).message).toMatch(/container zzz is not valid for pod solo/);
  });
});
