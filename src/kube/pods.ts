// TYPE/NAME → the pod (and container) to exec into. Unlike `kubectl exec deploy/x`, which
// takes any pod the selector matches (an old revision's in a rollout), krsync only takes Ready,
// non-terminating pods of the workload's newest revision:
//   Deployment  → its ReplicaSet with the highest deployment.kubernetes.io/revision → its pods
//   StatefulSet → pods whose controller-revision-hash is status.updateRevision
//   DaemonSet   → pods whose controller-revision-hash is the newest ControllerRevision's hash
//   ReplicaSet, Job → the pods it owns
// Candidates are ordered Ready-longest first, then by name. When the newest revision has no
// Ready pod yet, it waits (polling) up to --pod-wait seconds.
import type { KubeType } from "../transport/location.js";
import { KubeApiError, KubeError } from "./errors.js";
import { isNotFound, type KubeRest } from "./rest.js";

// ---- the parts of the API objects krsync reads ----

interface OwnerReference {
  kind?: string;
  name?: string;
  uid?: string;
  controller?: boolean;
}
interface ObjectMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  deletionTimestamp?: string;
  creationTimestamp?: string;
  ownerReferences?: OwnerReference[];
}
interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}
interface Workload {
  metadata?: ObjectMeta;
  spec?: { selector?: LabelSelector };
  status?: { updateRevision?: string; currentRevision?: string };
  revision?: number; // ControllerRevision
}
interface Condition {
  type?: string;
  status?: string;
  lastTransitionTime?: string;
}
interface ContainerStatus {
  name?: string;
  ready?: boolean;
  state?: { running?: object; waiting?: { reason?: string }; terminated?: { reason?: string } };
}
export interface Pod {
  metadata?: ObjectMeta;
  spec?: { containers?: { name: string }[] };
  status?: { phase?: string; conditions?: Condition[]; containerStatuses?: ContainerStatus[] };
}
interface List<T> {
  items?: T[];
}

// ---- public API ----

export interface Target {
  type: KubeType;
  name: string;
  namespace: string;
}

export interface ResolveOptions {
  container?: string;
  /** Seconds to wait for a Ready pod (default 60; 0 = do not wait). */
  podWait?: number;
  /** Every Ready pod of the newest revision instead of one. */
  allPods?: boolean;
  signal?: AbortSignal;
  /** Told once when krsync starts waiting. */
  notice?: (text: string) => void;
  /** Poll interval in ms (default 1000). */
  pollMs?: number;
}

export interface ResolvedPod {
  namespace: string;
  pod: string;
  container: string;
}

export const DEFAULT_POD_WAIT = 60;

const describeTarget = (t: Target) => `${t.type}/${t.name} in namespace "${t.namespace}"`;

/** apimachinery LabelSelectorAsSelector, as the labelSelector query string. */
export function selectorString(sel: LabelSelector | undefined): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(sel?.matchLabels ?? {})) parts.push(`${k}=${v}`);
  for (const e of sel?.matchExpressions ?? []) {
    const vals = (e.values ?? []).join(",");
    if (e.operator === "In") parts.push(`${e.key} in (${vals})`);
    else if (e.operator === "NotIn") parts.push(`${e.key} notin (${vals})`);
    else if (e.operator === "Exists") parts.push(e.key);
    else if (e.operator === "DoesNotExist") parts.push(`!${e.key}`);
    else throw new KubeError(`unknown label selector operator "${e.operator}"`);
  }
  return parts.join(",");
}

function readyCondition(p: Pod): Condition | undefined {
  return p.status?.conditions?.find((c) => c.type === "Ready");
}

/** Running, Ready and not terminating. */
export function isReadyPod(p: Pod): boolean {
  return !p.metadata?.deletionTimestamp && p.status?.phase === "Running" && readyCondition(p)?.status === "True";
}

/** Ready longest first (earliest Ready transition), then by name. */
export function comparePods(a: Pod, b: Pod): number {
  const ta = Date.parse(readyCondition(a)?.lastTransitionTime ?? "") || Number.MAX_SAFE_INTEGER;
  const tb = Date.parse(readyCondition(b)?.lastTransitionTime ?? "") || Number.MAX_SAFE_INTEGER;
  if (ta !== tb) return ta - tb;
  const na = a.metadata?.name ?? "";
  const nb = b.metadata?.name ?? "";
  return na < nb ? -1 : na > nb ? 1 : 0;
}

function ownedBy(o: { metadata?: ObjectMeta }, owner: { metadata?: ObjectMeta }): boolean {
  const uid = owner.metadata?.uid;
  return (o.metadata?.ownerReferences ?? []).some((r) => r.controller === true && (uid ? r.uid === uid : r.name === owner.metadata?.name));
}

/** The pods of the newest revision (any readiness), or why there are none yet. */
interface Revision {
  pods: Pod[];
  /** For messages: "ReplicaSet web-5d4f (revision 3)". */
  label: string;
}

const GROUP_PATH: Record<Exclude<KubeType, "pod">, string> = {
  deployment: "/apis/apps/v1/namespaces/NS/deployments",
  replicaset: "/apis/apps/v1/namespaces/NS/replicasets",
  statefulset: "/apis/apps/v1/namespaces/NS/statefulsets",
  daemonset: "/apis/apps/v1/namespaces/NS/daemonsets",
  job: "/apis/batch/v1/namespaces/NS/jobs",
};

const enc = encodeURIComponent;

export class PodResolver {
  constructor(private readonly rest: KubeRest) {}

  private podsPath(ns: string): string {
    return `/api/v1/namespaces/${enc(ns)}/pods`;
  }

  private async list<T>(path: string, selector: string): Promise<T[]> {
    const q: Record<string, string> = selector ? { labelSelector: selector } : {};
    const l = (await this.rest.get(path, q)) as List<T>;
    return l.items ?? [];
  }

  /** A 404 for the named object: say whether the namespace or the object is missing. */
  private async notFound(t: Target, e: unknown): Promise<never> {
    if (!isNotFound(e)) throw e;
    try {
      await this.rest.get(`/api/v1/namespaces/${enc(t.namespace)}`);
    } catch (ne) {
      if (isNotFound(ne)) throw new KubeError(`namespace "${t.namespace}" not found`);
      // not allowed to read namespaces: fall through to the object's own message
    }
    throw new KubeError(`${t.type} "${t.name}" not found in namespace "${t.namespace}"`);
  }

  private async getWorkload(t: Target): Promise<Workload> {
    if (t.type === "pod") throw new Error("getWorkload(pod)");
    const path = `${GROUP_PATH[t.type].replace("NS", enc(t.namespace))}/${enc(t.name)}`;
    try {
      return (await this.rest.get(path)) as Workload;
    } catch (e) {
      return this.notFound(t, e);
    }
  }

  /** The newest revision's pods of a workload. */
  private async newestRevision(t: Target): Promise<Revision> {
    const w = await this.getWorkload(t);
    const sel = selectorString(w.spec?.selector);
    const ns = t.namespace;
    const ownPods = async (owner: Workload) => (await this.list<Pod>(this.podsPath(ns), sel)).filter((p) => ownedBy(p, owner));
    switch (t.type) {
      case "deployment": {
        const rsAll = (await this.list<Workload>(GROUP_PATH.replicaset.replace("NS", enc(ns)), sel)).filter((rs) => ownedBy(rs, w));
        const rev = (rs: Workload) => Number(rs.metadata?.annotations?.["deployment.kubernetes.io/revision"] ?? "0") || 0;
        rsAll.sort((a, b) => rev(b) - rev(a));
        const newest = rsAll[0];
        if (!newest) return { pods: [], label: `deployment/${t.name} (no ReplicaSet yet)` };
        const rsSel = selectorString(newest.spec?.selector);
        const pods = (await this.list<Pod>(this.podsPath(ns), rsSel)).filter((p) => ownedBy(p, newest));
        return { pods, label: `ReplicaSet ${newest.metadata?.name} (revision ${rev(newest)})` };
      }
      case "statefulset": {
        const want = w.status?.updateRevision || w.status?.currentRevision;
        const pods = await ownPods(w);
        if (!want) return { pods, label: `statefulset/${t.name}` };
        return { pods: pods.filter((p) => p.metadata?.labels?.["controller-revision-hash"] === want), label: `revision ${want}` };
      }
      case "daemonset": {
        const pods = await ownPods(w);
        let revs: Workload[] = [];
        try {
          revs = (await this.list<Workload>(`/apis/apps/v1/namespaces/${enc(ns)}/controllerrevisions`, sel)).filter((r) => ownedBy(r, w));
        } catch (e) {
          if (!(e instanceof KubeApiError && e.status === 403)) throw e;
        }
        revs.sort((a, b) => (b.revision ?? 0) - (a.revision ?? 0));
        const newest = revs[0];
        if (!newest) return { pods, label: `daemonset/${t.name}` };
        const l = newest.metadata?.labels ?? {};
        const name = newest.metadata?.name ?? "";
        const hash = l["controller-revision-hash"] ?? l["controller.kubernetes.io/hash"] ?? name.slice(t.name.length + 1);
        return { pods: pods.filter((p) => p.metadata?.labels?.["controller-revision-hash"] === hash), label: `ControllerRevision ${name} (revision ${newest.revision})` };
      }
      case "replicaset":
      case "job":
        return { pods: await ownPods(w), label: `${t.type}/${t.name}` };
      case "pod":
        throw new Error("unreachable");
    }
  }

  /** A named pod: usable when Running (a terminating one is used with a warning). */
  private async namedPod(t: Target): Promise<{ pod?: Pod; why?: string; fatal?: string }> {
    let p: Pod;
    try {
      p = (await this.rest.get(`${this.podsPath(t.namespace)}/${enc(t.name)}`)) as Pod;
    } catch (e) {
      return this.notFound(t, e);
    }
    const phase = p.status?.phase ?? "Unknown";
    if (phase === "Succeeded" || phase === "Failed") return { fatal: `pod "${t.name}" in namespace "${t.namespace}" is not running (phase ${phase})` };
    if (phase !== "Running") return { why: `pod "${t.name}" is ${phase}` };
    return { pod: p };
  }

  /** Resolves the target to one pod (or, with allPods, every candidate). */
  async resolve(t: Target, o: ResolveOptions = {}): Promise<ResolvedPod[]> {
    const wait = (o.podWait ?? DEFAULT_POD_WAIT) * 1000;
    const deadline = Date.now() + wait;
    let told = false;
    let warned = false;
    for (;;) {
      let why: string;
      if (t.type === "pod") {
        const r = await this.namedPod(t);
        if (r.fatal) throw new KubeError(r.fatal);
        if (r.pod) {
          if (r.pod.metadata?.deletionTimestamp && !warned) {
            warned = true;
            o.notice?.(`krsync: warning: pod "${t.name}" is terminating; using it anyway`);
          }
          const container = this.pickContainer(t, r.pod, o.container);
          if (container.ready) return [{ namespace: t.namespace, pod: t.name, container: container.name }];
          why = container.why!;
        } else why = r.why!;
      } else {
        const rev = await this.newestRevision(t);
        const ready = rev.pods.filter(isReadyPod).sort(comparePods);
        if (ready.length > 0) {
          const chosen = o.allPods ? ready : ready.slice(0, 1);
          return chosen.map((p) => ({ namespace: t.namespace, pod: p.metadata!.name!, container: this.pickContainer(t, p, o.container).name }));
        }
        const notReady = rev.pods.map((p) => `${p.metadata?.name} (${p.metadata?.deletionTimestamp ? "terminating" : p.status?.phase === "Running" ? "not ready" : p.status?.phase})`);
        why = `${rev.label} has ${notReady.length ? `no Ready pod: ${notReady.join(", ")}` : "no pods"}`;
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        const waited = wait > 0 ? ` after waiting ${Math.round(wait / 1000)}s` : "";
        throw new KubeError(`no ready pod for ${describeTarget(t)}${waited}: ${why}`);
      }
      if (!told) {
        told = true;
        o.notice?.(`krsync: waiting up to ${Math.ceil(left / 1000)}s for a ready pod of ${describeTarget(t)} (${why})`);
      }
      await sleep(Math.min(o.pollMs ?? 1000, left), o.signal);
    }
  }

  /** --container, else the default-container annotation, else the first container. */
  private pickContainer(t: Target, p: Pod, wanted: string | undefined): { name: string; ready: boolean; why?: string } {
    const names = (p.spec?.containers ?? []).map((c) => c.name);
    const podName = p.metadata?.name ?? t.name;
    let name = wanted;
    if (name === undefined || name === "") {
      const ann = p.metadata?.annotations?.["kubectl.kubernetes.io/default-container"];
      name = ann && names.includes(ann) ? ann : names[0];
    }
    if (name === undefined) throw new KubeError(`pod "${podName}" has no containers`);
    if (!names.includes(name)) {
      throw new KubeError(`container "${name}" not found in pod "${podName}" (namespace "${t.namespace}"; containers: ${names.join(", ")})`);
    }
    const st = p.status?.containerStatuses?.find((c) => c.name === name);
    if (st && !st.state?.running) {
      const w = st.state?.waiting?.reason ?? st.state?.terminated?.reason ?? "not running";
      return { name, ready: false, why: `container "${name}" of pod "${podName}" is not running (${w})` };
    }
    return { name, ready: true };
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortError());
      return;
    }
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(abortError());
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

function abortError(): Error {
  const e = new KubeError("aborted while waiting for a ready pod", 20);
  e.name = "AbortedError";
  return e;
}
