// krsync pushing into pods of the fake API server (test/kube) through both exec transports:
// a pod with rsync, a pod without (the static rsync is injected), and --all-pods to every Ready
// pod of a Deployment's newest revision. The trees in the pods are compared with what native
// rsync makes of the same source. Needs root (chroot pods).
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { sync } from "../src/api.js";
import { parseCommandLine } from "../src/cli/options.js";
import { availableBinaries } from "../src/kube/agent.js";
import { describeIfRoot, tmpDir } from "./helpers/env.js";
import { runRsync } from "./helpers/rsync.js";
import { diffSnapshots, snapshotTree } from "./helpers/snapshot.js";
import { buildNastyTree, mutateTree } from "./helpers/tree.js";
import { startFakeApi, type FakeApi } from "./kube/fakeapi.js";
import type { ContainerSpec } from "./kube/objects.js";
import { makePodRoot, type PodRoot } from "./kube/podroot.js";

const HAVE_KUBECTL = existsSync("/usr/bin/kubectl");
const TRANSPORTS = HAVE_KUBECTL ? (["api", "kubectl"] as const) : (["api"] as const);
const HAVE_BINS = availableBinaries().bins.length === 2;
const COPY = ["-aH", "--numeric-ids"];

let api: FakeApi;
let tmp: string;
let src: string;
const roots = new Map<string, PodRoot>();

async function push(transport: string, args: string[]): Promise<{ exitCode: number; messages: string[] }> {
  const cl = parseCommandLine(["--kubeconfig", api.kubeconfigPath, ...args]);
  const messages: string[] = [];
  const r = await sync({
    ...cl.options,
    source: cl.args.slice(0, -1),
    destination: cl.args[cl.args.length - 1]!,
    kube: cl.kube,
    env: { ...process.env, ...api.kubectlEnv, KRSYNC_KUBE_TRANSPORT: transport },
    events: { message: (level, text) => messages.push(`${level}: ${text}`) },
  });
  return { exitCode: r.exitCode, messages };
}

/** What native rsync makes of `from` over `start` (a local copy with the same options). */
async function expected(from: string, startFrom: string | null, extra: string[] = []): Promise<string> {
  const d = join(tmpDir("kpush-expect-"), "t");
  mkdirSync(d);
  if (startFrom) expect((await runRsync([...COPY, `${startFrom}/`, `${d}/`])).code).toBe(0);
  const r = await runRsync([...COPY, ...extra, `${from}/`, `${d}/`]);
  expect(r.code, r.stderr).toBe(0);
  return d;
}

const same = (a: string, b: string) => diffSnapshots(snapshotTree(a), snapshotTree(b), { krsyncMtimes: true });

describeIfRoot("krsync pushes into pods of the fake API server", () => {
  beforeAll(async () => {
    tmp = tmpDir("kube-push-");
    src = join(tmp, "src");
    // Without devices: a device made by the pod's rsync under the fake exec gets its umask.
    buildNastyTree(src, { variant: "base", root: false, bigFileMB: 1 });
    for (const [name, withRsync] of [["one", true], ["bare", false], ["web-2-a", true], ["web-2-b", false], ["web-1-a", true]] as const) {
      roots.set(name, await makePodRoot(join(tmp, "pods", name), { withRsync }));
    }
    const c = (name: string): ContainerSpec[] => [{ name: "app", root: roots.get(name)!.root }];
    const now = Date.now();
    const ago = (m: number) => new Date(now - m * 60_000).toISOString().replace(/\.\d{3}Z$/, "Z");
    const web = (pod: string, hash: string, rs: string, readyMin: number) => ({
      name: pod,
      labels: { app: "web", "pod-template-hash": hash },
      owner: { kind: "ReplicaSet" as const, name: rs },
      containers: c(pod),
      readySince: ago(readyMin),
    });
    api = await startFakeApi({
      pods: [
        { name: "one", containers: c("one") },
        { name: "bare", containers: c("bare") },
        web("web-1-a", "h1", "web-1", 60),
        web("web-2-a", "h2", "web-2", 2),
        web("web-2-b", "h2", "web-2", 1),
      ],
      workloads: [
        { kind: "Deployment", name: "web", selector: { app: "web" }, revision: 2 },
        { kind: "ReplicaSet", name: "web-1", owner: "web", revision: 1, selector: { app: "web", "pod-template-hash": "h1" } },
        { kind: "ReplicaSet", name: "web-2", owner: "web", revision: 2, selector: { app: "web", "pod-template-hash": "h2" } },
      ],
    });
  }, 300_000);

  afterAll(async () => {
    await api?.close();
    for (const r of roots.values()) await r.cleanup();
  });

  for (const transport of TRANSPORTS) {
    it(`${transport}: a push into a pod with rsync, then a delta push with --delete, equal native rsync's`, async () => {
      const dest = `/tmp/${transport}`;
      const inPod = join(roots.get("one")!.root, dest);
      const first = await push(transport, [...COPY, `${src}/`, `pod/one:${dest}/`]);
      expect(first.messages.filter((m) => m.startsWith("error"))).toEqual([]);
      expect(first.exitCode).toBe(0);
      expect(same(await expected(src, null), inPod)).toEqual([]);

      const mutated = join(tmpDir("kpush-mut-"), "m");
      expect((await runRsync(["-aH", `${src}/`, `${mutated}/`])).code).toBe(0);
      mutateTree(mutated, { root: false });
      const want = await expected(mutated, src, ["--delete"]);
      const second = await push(transport, [...COPY, "--delete", `${mutated}/`, `pod/one:${dest}/`]);
      expect(second.exitCode, second.messages.join("\n")).toBe(0);
      expect(same(want, inPod)).toEqual([]);
    }, 300_000);
  }

  it.skipIf(!HAVE_BINS)("a push into a pod without rsync injects the static one", async () => {
    const r = await push("api", [...COPY, `${src}/`, "pod/bare:/tmp/data/"]);
    expect(r.exitCode, r.messages.join("\n")).toBe(0);
    expect(same(await expected(src, null), join(roots.get("bare")!.root, "tmp/data"))).toEqual([]);
  }, 300_000);

  it.skipIf(!HAVE_BINS)("--all-pods pushes to every Ready pod of the newest revision, and no other", async () => {
    const r = await push("api", [...COPY, "--all-pods", `${src}/`, "deploy/web:/tmp/site/"]);
    expect(r.exitCode, r.messages.join("\n")).toBe(0);
    const want = await expected(src, null);
    expect(same(want, join(roots.get("web-2-a")!.root, "tmp/site"))).toEqual([]);
    expect(same(want, join(roots.get("web-2-b")!.root, "tmp/site"))).toEqual([]);
    expect(existsSync(join(roots.get("web-1-a")!.root, "tmp/site"))).toBe(false);
    const pods = api.execs.filter((e) => e.pod.startsWith("web-")).map((e) => e.pod);
    expect(new Set(pods)).toEqual(new Set(["web-2-a", "web-2-b"]));
  }, 300_000);
});
