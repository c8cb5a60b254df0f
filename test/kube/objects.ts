// The fake API server's object model: the spec shapes tests write (PodSpec, WorkloadSpec) and
// their rendering into Kubernetes JSON objects (core/v1 Pod, apps/v1 Deployment/ReplicaSet/
// StatefulSet/DaemonSet/ControllerRevision, batch/v1 Job), plus label and field selectors.

import { createHash } from "node:crypto";

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type JsonObject = { [k: string]: Json };

export type PodPhase = "Pending" | "Running" | "Succeeded" | "Failed" | "Unknown";

export interface ContainerSpec {
  name: string;
  /** Directory used as the container's root: exec runs `chroot root cmd...`. */
  root?: string;
  image?: string;
  /** containerStatuses[].ready; default: the pod's ready. */
  ready?: boolean;
  restartCount?: number;
  /** Exec runs as this uid/gid (chroot --userspec); default root. */
  runAsUser?: number;
  runAsGroup?: number;
  /** Extra environment for exec (PATH, HOME, HOSTNAME are set already). */
  env?: Record<string, string>;
}

export interface OwnerRef {
  kind: "ReplicaSet" | "StatefulSet" | "DaemonSet" | "Job" | "Deployment";
  name: string;
}

export interface PodSpec {
  name: string;
  /** Default: the server's default namespace ("default"). */
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  containers: ContainerSpec[];
  /** Default "Running". */
  phase?: PodPhase;
  /** Ready condition status; default true when Running. */
  ready?: boolean;
  /** Ready condition lastTransitionTime (ISO); default creationTimestamp + 1s. */
  readySince?: string;
  /** Default: one hour before the server started. */
  creationTimestamp?: string;
  /** Set to make the pod "terminating". */
  deletionTimestamp?: string;
  /** Default "fake-node"; null leaves the pod unscheduled. */
  nodeName?: string | null;
  /** Controller owner; the ownerReference carries the owner's uid when the owner exists. */
  owner?: OwnerRef;
  uid?: string;
}

interface WorkloadBase {
  name: string;
  namespace?: string;
  /** spec.selector.matchLabels */
  selector: Record<string, string>;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  replicas?: number;
  creationTimestamp?: string;
  uid?: string;
}

export interface DeploymentSpec extends WorkloadBase {
  kind: "Deployment";
  /** deployment.kubernetes.io/revision; default 1. */
  revision?: number;
}
export interface ReplicaSetSpec extends WorkloadBase {
  kind: "ReplicaSet";
  /** Owning Deployment's name (ownerReferences, controller). */
  owner?: string;
  /** deployment.kubernetes.io/revision */
  revision?: number;
}
export interface StatefulSetSpec extends WorkloadBase {
  kind: "StatefulSet";
  /** status.currentRevision / updateRevision (ControllerRevision names, e.g. "web-5d4f8c"). */
  currentRevision?: string;
  updateRevision?: string;
}
export interface DaemonSetSpec extends WorkloadBase {
  kind: "DaemonSet";
}
export interface JobSpec extends WorkloadBase {
  kind: "Job";
}
export interface ControllerRevisionSpec {
  kind: "ControllerRevision";
  name: string;
  namespace?: string;
  owner: { kind: "StatefulSet" | "DaemonSet"; name: string };
  revision: number;
  labels?: Record<string, string>;
  creationTimestamp?: string;
  uid?: string;
}

export type WorkloadSpec =
  | DeploymentSpec
  | ReplicaSetSpec
  | StatefulSetSpec
  | DaemonSetSpec
  | JobSpec
  | ControllerRevisionSpec;

export type WorkloadKind = WorkloadSpec["kind"];

/** One served resource type. */
export interface ResourceType {
  group: string; // "" for core
  version: string;
  resource: string; // plural
  singular: string;
  kind: string;
  namespaced: boolean;
  shortNames: string[];
  verbs: string[];
  categories: string[];
  subresources: { name: string; kind: string; verbs: string[] }[];
}

const RW = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

export const RESOURCE_TYPES: ResourceType[] = [
  {
    group: "", version: "v1", resource: "namespaces", singular: "namespace", kind: "Namespace",
    namespaced: false, shortNames: ["ns"], verbs: ["create", "delete", "get", "list", "patch", "update", "watch"],
    categories: [], subresources: [],
  },
  {
    group: "", version: "v1", resource: "pods", singular: "pod", kind: "Pod", namespaced: true,
    shortNames: ["po"], verbs: RW, categories: ["all"],
    subresources: [
      { name: "exec", kind: "PodExecOptions", verbs: ["create", "get"] },
      { name: "status", kind: "Pod", verbs: ["get", "patch", "update"] },
    ],
  },
  {
    group: "apps", version: "v1", resource: "deployments", singular: "deployment", kind: "Deployment",
    namespaced: true, shortNames: ["deploy"], verbs: RW, categories: ["all"],
    subresources: [{ name: "status", kind: "Deployment", verbs: ["get", "patch", "update"] }],
  },
  {
    group: "apps", version: "v1", resource: "replicasets", singular: "replicaset", kind: "ReplicaSet",
    namespaced: true, shortNames: ["rs"], verbs: RW, categories: ["all"],
    subresources: [{ name: "status", kind: "ReplicaSet", verbs: ["get", "patch", "update"] }],
  },
  {
    group: "apps", version: "v1", resource: "statefulsets", singular: "statefulset", kind: "StatefulSet",
    namespaced: true, shortNames: ["sts"], verbs: RW, categories: ["all"],
    subresources: [{ name: "status", kind: "StatefulSet", verbs: ["get", "patch", "update"] }],
  },
  {
    group: "apps", version: "v1", resource: "daemonsets", singular: "daemonset", kind: "DaemonSet",
    namespaced: true, shortNames: ["ds"], verbs: RW, categories: ["all"],
    subresources: [{ name: "status", kind: "DaemonSet", verbs: ["get", "patch", "update"] }],
  },
  {
    group: "apps", version: "v1", resource: "controllerrevisions", singular: "controllerrevision",
    kind: "ControllerRevision", namespaced: true, shortNames: [], verbs: RW, categories: [], subresources: [],
  },
  {
    group: "batch", version: "v1", resource: "jobs", singular: "job", kind: "Job", namespaced: true,
    shortNames: [], verbs: RW, categories: ["all"],
    subresources: [{ name: "status", kind: "Job", verbs: ["get", "patch", "update"] }],
  },
];

export const KIND_RESOURCE: Record<WorkloadKind | "Pod", string> = {
  Pod: "pods",
  Deployment: "deployments",
  ReplicaSet: "replicasets",
  StatefulSet: "statefulsets",
  DaemonSet: "daemonsets",
  ControllerRevision: "controllerrevisions",
  Job: "jobs",
};

export function resourceType(group: string, version: string, resource: string): ResourceType | undefined {
  return RESOURCE_TYPES.find((t) => t.group === group && t.version === version && t.resource === resource);
}

export const apiVersionOf = (t: ResourceType): string => (t.group === "" ? t.version : `${t.group}/${t.version}`);

/** Deterministic uid from kind/namespace/name (so owner references resolve without a lookup). */
export function fakeUid(kind: string, namespace: string, name: string): string {
  const h = createHash("sha256").update(`${kind}/${namespace}/${name}`).digest("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

const OWNER_API: Record<OwnerRef["kind"], string> = {
  ReplicaSet: "apps/v1",
  StatefulSet: "apps/v1",
  DaemonSet: "apps/v1",
  Deployment: "apps/v1",
  Job: "batch/v1",
};

function ownerReference(kind: OwnerRef["kind"], namespace: string, name: string): JsonObject {
  return {
    apiVersion: OWNER_API[kind],
    kind,
    name,
    uid: fakeUid(kind, namespace, name),
    controller: true,
    blockOwnerDeletion: true,
  };
}

const addSeconds = (iso: string, s: number): string => new Date(Date.parse(iso) + s * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");

export interface RenderContext {
  defaultNamespace: string;
  /** Default creationTimestamp. */
  epoch: string;
  nextResourceVersion(): string;
}

function meta(
  kind: string,
  ctx: RenderContext,
  s: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string>; creationTimestamp?: string; uid?: string },
  extra: JsonObject = {},
): JsonObject {
  const namespace = s.namespace ?? ctx.defaultNamespace;
  const m: JsonObject = {
    name: s.name,
    namespace,
    uid: s.uid ?? fakeUid(kind, namespace, s.name),
    resourceVersion: ctx.nextResourceVersion(),
    generation: 1,
    creationTimestamp: s.creationTimestamp ?? ctx.epoch,
    ...extra,
  };
  if (s.labels && Object.keys(s.labels).length > 0) m.labels = { ...s.labels };
  if (s.annotations && Object.keys(s.annotations).length > 0) m.annotations = { ...s.annotations };
  return m;
}

export function renderPod(p: PodSpec, ctx: RenderContext): JsonObject {
  const namespace = p.namespace ?? ctx.defaultNamespace;
  const phase = p.phase ?? "Running";
  const ready = p.ready ?? phase === "Running";
  const created = p.creationTimestamp ?? ctx.epoch;
  const readySince = p.readySince ?? addSeconds(created, 1);
  const extra: JsonObject = {};
  if (p.owner) extra.ownerReferences = [ownerReference(p.owner.kind, namespace, p.owner.name)];
  if (p.deletionTimestamp) {
    extra.deletionTimestamp = p.deletionTimestamp;
    extra.deletionGracePeriodSeconds = 30;
  }
  const metadata = meta("Pod", ctx, p, extra);
  const nodeName = p.nodeName === undefined ? "fake-node" : p.nodeName;
  const spec: JsonObject = {
    containers: p.containers.map((c) => ({
      name: c.name,
      image: c.image ?? "busybox:fake",
      imagePullPolicy: "IfNotPresent",
      terminationMessagePath: "/dev/termination-log",
      terminationMessagePolicy: "File",
      resources: {},
    })),
    restartPolicy: "Always",
    terminationGracePeriodSeconds: 30,
    dnsPolicy: "ClusterFirst",
    schedulerName: "default-scheduler",
    serviceAccountName: "default",
    securityContext: {},
  };
  if (nodeName !== null) spec.nodeName = nodeName;
  const cond = (type: string, status: boolean, t: string): JsonObject => ({
    type,
    status: status ? "True" : "False",
    lastProbeTime: null,
    lastTransitionTime: t,
  });
  const conditions: Json[] = [cond("PodScheduled", nodeName !== null, created)];
  if (nodeName !== null) {
    conditions.push(cond("Initialized", true, created), cond("ContainersReady", ready, readySince), cond("Ready", ready, readySince));
  }
  const status: JsonObject = { phase, conditions, qosClass: "BestEffort" };
  if (nodeName !== null) {
    status.hostIP = "10.0.0.1";
    status.podIP = "10.244.0." + ((Number.parseInt(fakeUid("ip", namespace, p.name).slice(0, 2), 16) % 250) + 2);
    status.startTime = created;
    status.containerStatuses = p.containers.map((c) => {
      const state: JsonObject =
        phase === "Running"
          ? { running: { startedAt: addSeconds(created, 1) } }
          : phase === "Pending"
            ? { waiting: { reason: "ContainerCreating" } }
            : { terminated: { exitCode: phase === "Succeeded" ? 0 : 1, reason: phase === "Succeeded" ? "Completed" : "Error", startedAt: created, finishedAt: addSeconds(created, 2) } };
      return {
        name: c.name,
        ready: c.ready ?? ready,
        restartCount: c.restartCount ?? 0,
        started: phase === "Running",
        image: c.image ?? "busybox:fake",
        imageID: "docker.io/library/busybox@sha256:" + createHash("sha256").update(c.image ?? "busybox:fake").digest("hex"),
        containerID: "containerd://" + createHash("sha256").update(`${namespace}/${p.name}/${c.name}`).digest("hex"),
        state,
        lastState: {},
      };
    });
  }
  return { kind: "Pod", apiVersion: "v1", metadata, spec, status };
}

function podTemplate(labels: Record<string, string>): JsonObject {
  return {
    metadata: { labels: { ...labels } },
    spec: { containers: [{ name: "app", image: "busybox:fake", resources: {} }], restartPolicy: "Always" },
  };
}

export function renderWorkload(w: WorkloadSpec, ctx: RenderContext): JsonObject {
  const namespace = w.namespace ?? ctx.defaultNamespace;
  if (w.kind === "ControllerRevision") {
    const metadata = meta("ControllerRevision", ctx, w, {
      ownerReferences: [ownerReference(w.owner.kind, namespace, w.owner.name)],
    });
    return { kind: "ControllerRevision", apiVersion: "apps/v1", metadata, data: {}, revision: w.revision };
  }
  const replicas = w.replicas ?? 1;
  const selector = { matchLabels: { ...w.selector } };
  const labels = w.labels ?? w.selector;
  const base = { ...w, labels };
  switch (w.kind) {
    case "Deployment": {
      const metadata = meta("Deployment", ctx, {
        ...base,
        annotations: { "deployment.kubernetes.io/revision": String(w.revision ?? 1), ...w.annotations },
      });
      return {
        kind: "Deployment", apiVersion: "apps/v1", metadata,
        spec: { replicas, selector, template: podTemplate(w.selector), strategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: "25%", maxSurge: "25%" } }, revisionHistoryLimit: 10, progressDeadlineSeconds: 600 },
        status: { observedGeneration: 1, replicas, updatedReplicas: replicas, readyReplicas: replicas, availableReplicas: replicas },
      };
    }
    case "ReplicaSet": {
      const ann = { ...(w.revision !== undefined ? { "deployment.kubernetes.io/revision": String(w.revision) } : {}), ...w.annotations };
      const extra: JsonObject = w.owner ? { ownerReferences: [ownerReference("Deployment", namespace, w.owner)] } : {};
      const metadata = meta("ReplicaSet", ctx, { ...base, annotations: ann }, extra);
      return {
        kind: "ReplicaSet", apiVersion: "apps/v1", metadata,
        spec: { replicas, selector, template: podTemplate(w.selector) },
        status: { replicas, fullyLabeledReplicas: replicas, readyReplicas: replicas, availableReplicas: replicas, observedGeneration: 1 },
      };
    }
    case "StatefulSet": {
      const metadata = meta("StatefulSet", ctx, base);
      const current = w.currentRevision ?? `${w.name}-rev1`;
      const update = w.updateRevision ?? current;
      return {
        kind: "StatefulSet", apiVersion: "apps/v1", metadata,
        spec: { replicas, selector, template: podTemplate(w.selector), serviceName: w.name, podManagementPolicy: "OrderedReady", updateStrategy: { type: "RollingUpdate", rollingUpdate: { partition: 0 } }, revisionHistoryLimit: 10 },
        status: { observedGeneration: 1, replicas, readyReplicas: replicas, currentReplicas: replicas, updatedReplicas: replicas, currentRevision: current, updateRevision: update, collisionCount: 0, availableReplicas: replicas },
      };
    }
    case "DaemonSet": {
      const metadata = meta("DaemonSet", ctx, base);
      return {
        kind: "DaemonSet", apiVersion: "apps/v1", metadata,
        spec: { selector, template: podTemplate(w.selector), updateStrategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 1, maxSurge: 0 } }, revisionHistoryLimit: 10 },
        status: { currentNumberScheduled: replicas, numberMisscheduled: 0, desiredNumberScheduled: replicas, numberReady: replicas, observedGeneration: 1, updatedNumberScheduled: replicas, numberAvailable: replicas },
      };
    }
    case "Job": {
      const metadata = meta("Job", ctx, base);
      return {
        kind: "Job", apiVersion: "batch/v1", metadata,
        spec: { parallelism: replicas, completions: replicas, backoffLimit: 6, selector, manualSelector: true, template: { ...podTemplate(w.selector), spec: { containers: [{ name: "app", image: "busybox:fake", resources: {} }], restartPolicy: "Never" } } },
        status: { active: replicas, startTime: w.creationTimestamp ?? ctx.epoch },
      };
    }
  }
}

// ---- selectors (apimachinery labels.Parse / fields.ParseSelector, the subset clients use) ----

export type LabelRequirement =
  | { op: "="; key: string; value: string }
  | { op: "!="; key: string; value: string }
  | { op: "in"; key: string; values: string[] }
  | { op: "notin"; key: string; values: string[] }
  | { op: "exists"; key: string }
  | { op: "!exists"; key: string };

export class SelectorError extends Error {}

/** Splits on commas that are not inside parentheses. */
function splitTop(s: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let cur = "";
  for (const ch of s) {
    if (ch === "(") depth++;
    if (ch === ")") depth--;
    if (ch === "," && depth === 0) {
      parts.push(cur);
      cur = "";
    } else cur += ch;
  }
  parts.push(cur);
  return parts.map((p) => p.trim()).filter((p) => p !== "");
}

export function parseLabelSelector(s: string): LabelRequirement[] {
  const reqs: LabelRequirement[] = [];
  for (const part of splitTop(s)) {
    let m: RegExpExecArray | null;
    if ((m = /^([^\s!=(),]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(part))) {
      const values = m[3]!.split(",").map((v) => v.trim()).filter((v) => v !== "");
      reqs.push({ op: m[2] === "in" ? "in" : "notin", key: m[1]!, values });
    } else if ((m = /^([^\s!=(),]+)\s*(==|=|!=)\s*([^\s!=(),]*)$/.exec(part))) {
      reqs.push(m[2] === "!=" ? { op: "!=", key: m[1]!, value: m[3]! } : { op: "=", key: m[1]!, value: m[3]! });
    } else if ((m = /^!\s*([^\s!=(),]+)$/.exec(part))) {
      reqs.push({ op: "!exists", key: m[1]! });
    } else if ((m = /^([^\s!=(),]+)$/.exec(part))) {
      reqs.push({ op: "exists", key: m[1]! });
    } else {
      throw new SelectorError(`unable to parse requirement: ${part}`);
    }
  }
  return reqs;
}

export function matchLabels(reqs: LabelRequirement[], labels: Record<string, string>): boolean {
  return reqs.every((r) => {
    const v = labels[r.key];
    switch (r.op) {
      case "=":
        return v === r.value;
      case "!=":
        return v !== r.value;
      case "in":
        return v !== undefined && r.values.includes(v);
      case "notin":
        return v === undefined || !r.values.includes(v);
      case "exists":
        return v !== undefined;
      case "!exists":
        return v === undefined;
    }
  });
}

export interface FieldRequirement {
  path: string;
  op: "=" | "!=";
  value: string;
}

export function parseFieldSelector(s: string): FieldRequirement[] {
  return splitTop(s).map((part) => {
    const m = /^([^=!]+?)\s*(==|=|!=)\s*(.*)$/.exec(part);
    if (!m) throw new SelectorError(`invalid selector: '${part}'; can't understand '${part}'`);
    return { path: m[1]!.trim(), op: m[2] === "!=" ? "!=" : "=", value: m[3]!.trim() };
  });
}

/** Field paths the real server accepts for the resource (others are a 400 BadRequest). */
const FIELD_PATHS: Record<string, string[]> = {
  pods: ["metadata.name", "metadata.namespace", "status.phase", "spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName", "status.podIP", "status.nominatedNodeName", "spec.hostNetwork"],
  default: ["metadata.name", "metadata.namespace"],
};

export function checkFieldSelector(resource: string, reqs: FieldRequirement[]): string | undefined {
  const allowed = FIELD_PATHS[resource] ?? FIELD_PATHS.default!;
  for (const r of reqs) {
    if (!allowed.includes(r.path)) return `"${r.path}" is not a known field selector: only "${allowed.join('", "')}"`;
  }
  return undefined;
}

function fieldValue(obj: JsonObject, path: string): string {
  let cur: Json = obj;
  for (const k of path.split(".")) {
    if (cur === null || typeof cur !== "object" || Array.isArray(cur)) return "";
    cur = cur[k] ?? null;
  }
  if (cur === null) return "";
  return typeof cur === "object" ? JSON.stringify(cur) : String(cur);
}

export function matchFields(reqs: FieldRequirement[], obj: JsonObject): boolean {
  return reqs.every((r) => (fieldValue(obj, r.path) === r.value) === (r.op === "="));
}

export function objectLabels(obj: JsonObject): Record<string, string> {
  const m = obj.metadata as JsonObject | undefined;
  const l = (m?.labels ?? {}) as Record<string, string>;
  return l;
}

// ---- server-side printing (meta.k8s.io/v1 Table), as kubectl get asks for ----

function age(iso: string, now: number): string {
  const s = Math.max(0, Math.floor((now - Date.parse(iso)) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 3600 * 2) return `${Math.floor(s / 60)}m`;
  if (s < 86400 * 2) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

type Column = { name: string; type: string; format: string; description: string; priority: number };
const col = (name: string, type = "string", format = "", priority = 0): Column => ({ name, type, format, description: name, priority });

export function renderTable(resource: string, objects: JsonObject[], resourceVersion: string, includeObject: string): JsonObject {
  const now = Date.now();
  const metaOf = (o: JsonObject) => o.metadata as JsonObject;
  let columns: Column[];
  let cells: (o: JsonObject) => Json[];
  if (resource === "pods") {
    columns = [col("Name", "string", "name"), col("Ready"), col("Status"), col("Restarts", "integer"), col("Age"), col("IP", "string", "", 1), col("Node", "string", "", 1)];
    cells = (o) => {
      const st = o.status as JsonObject;
      const cs = (st.containerStatuses ?? []) as JsonObject[];
      const spec = o.spec as JsonObject;
      const n = (spec.containers as Json[]).length;
      const readyN = cs.filter((c) => c.ready === true).length;
      const restarts = cs.reduce((a, c) => a + Number(c.restartCount ?? 0), 0);
      const status = metaOf(o).deletionTimestamp ? "Terminating" : String(st.phase);
      return [String(metaOf(o).name), `${readyN}/${n}`, status, restarts, age(String(metaOf(o).creationTimestamp), now), (st.podIP as string) ?? "<none>", (spec.nodeName as string) ?? "<none>"];
    };
  } else {
    columns = [col("Name", "string", "name"), col("Age")];
    cells = (o) => [String(metaOf(o).name), age(String(metaOf(o).creationTimestamp), now)];
  }
  return {
    kind: "Table",
    apiVersion: "meta.k8s.io/v1",
    metadata: { resourceVersion },
    columnDefinitions: columns,
    rows: objects.map((o) => ({
      cells: cells(o),
      object:
        includeObject === "Object"
          ? o
          : includeObject === "None"
            ? null
            : { kind: "PartialObjectMetadata", apiVersion: "meta.k8s.io/v1", metadata: metaOf(o) },
    })),
  };
}
