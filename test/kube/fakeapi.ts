// A local HTTPS fake of the Kubernetes API server for krsync's tests: enough discovery
// (aggregated v2 and legacy), read-only pods/workloads with selectors, bearer-token auth,
// RBAC-style denials, and pods/exec over WebSocket (v5/v4.channel.k8s.io) running commands in
// chroot directories. Real kubectl and @kubernetes/client-node talk to it; see README.md.

import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:https";
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WebSocketServer } from "ws";
import { makeTestCerts } from "./certs.js";
import {
  newExecRecord,
  prepareExec,
  runExec,
  PROTOCOL_V4,
  PROTOCOL_V5,
  type ExecRecord,
  type ExecRequest,
  type ExecTuning,
} from "./exec.js";
import {
  apiVersionOf,
  checkFieldSelector,
  KIND_RESOURCE,
  matchFields,
  matchLabels,
  objectLabels,
  parseFieldSelector,
  parseLabelSelector,
  renderPod,
  renderTable,
  renderWorkload,
  resourceType,
  RESOURCE_TYPES,
  SelectorError,
  type Json,
  type JsonObject,
  type PodSpec,
  type RenderContext,
  type ResourceType,
  type WorkloadKind,
  type WorkloadSpec,
} from "./objects.js";

export type { ExecRecord, ExecTuning } from "./exec.js";
export { PROTOCOL_V4, PROTOCOL_V5 } from "./exec.js";
export type * from "./objects.js";

/** Refuse matching requests with 403 Forbidden (every given field must match). */
export interface DenyRule {
  /** get | list | watch | create (exec is "create" on "pods/exec"). */
  verb?: string;
  /** Plural resource, with "/sub" for subresources: "pods", "pods/exec", "deployments". */
  resource?: string;
  namespace?: string;
  name?: string;
}

export interface FakeApiOptions {
  pods: PodSpec[];
  workloads?: WorkloadSpec[];
  /** Bearer token the server accepts (and writes into the kubeconfig); default random. */
  token?: string;
  /** User name the token authenticates as (appears in Forbidden messages); default "krsync-test". */
  user?: string;
  /** Namespace of the kubeconfig context and default for specs; default "default". */
  namespace?: string;
  /** Extra namespaces that exist without objects. */
  namespaces?: string[];
  /** /version gitVersion; default "v1.32.4" (Google's kubectl dispatcher runs the matching kubectl). */
  serverVersion?: string;
  /** Exec subprotocols the server accepts; default [v5, v4]. [PROTOCOL_V4] = v4-only server. */
  execProtocols?: string[];
  /** Answer aggregated discovery (apidiscovery.k8s.io/v2) when asked; default true. */
  aggregatedDiscovery?: boolean;
  deny?: DenyRule[];
  exec?: Partial<ExecTuning>;
  /** Directory for certs and kubeconfig; default a fresh temp dir removed by close(). */
  dir?: string;
}

export interface RecordedRequest {
  method: string;
  /** Path without the query string. */
  path: string;
  query: Record<string, string[]>;
  headers: IncomingHttpHeaders;
  /** "websocket" / "spdy" for upgrade requests (by the Upgrade header). */
  upgrade: "websocket" | "spdy" | null;
  /** Subprotocols the client offered (Sec-WebSocket-Protocol / X-Stream-Protocol-Version). */
  offeredProtocols: string[];
  /** Negotiated exec subprotocol when upgraded. */
  protocol: string | null;
  /** HTTP status answered (101 for an upgrade). */
  status: number;
  /** Authenticated user, null for a missing or bad token. */
  user: string | null;
  at: number;
}

export interface KubeconfigOptions {
  token?: string;
  namespace?: string;
  /** Omit the CA (then clients must fail TLS verification). */
  noCa?: boolean;
  /** Embed the CA as certificate-authority-data instead of a file path. */
  embedCa?: boolean;
  server?: string;
}

export interface FakeApi {
  /** https://127.0.0.1:PORT */
  url: string;
  port: number;
  caFile: string;
  /** kubeconfig with context "fake", cluster "fake", user "fake-user" (token), namespace. */
  kubeconfigPath: string;
  token: string;
  user: string;
  namespace: string;
  dir: string;
  requests: RecordedRequest[];
  execs: ExecRecord[];
  /** Mutable deny list (RBAC denials). */
  deny: DenyRule[];
  /** `--kubeconfig K --cache-dir D` for kubectl (a per-server discovery cache). */
  kubectlArgs: string[];
  /** Environment for spawning kubectl: KUBECONFIG, KUBECACHEDIR, HOME under dir. */
  kubectlEnv: NodeJS.ProcessEnv;
  /** Writes another kubeconfig for this server (e.g. a wrong token) and returns its path. */
  writeKubeconfig(path: string, opts?: KubeconfigOptions): Promise<string>;
  upsertPod(p: PodSpec): void;
  removePod(name: string, namespace?: string): boolean;
  upsertWorkload(w: WorkloadSpec): void;
  removeWorkload(kind: WorkloadKind, name: string, namespace?: string): boolean;
  /** Pod spec as stored (for containers' roots). */
  getPodSpec(name: string, namespace?: string): PodSpec | undefined;
  /** Clears requests and execs. */
  resetLog(): void;
  close(): Promise<void>;
}

const REASONS: Record<number, string> = {
  400: "BadRequest",
  401: "Unauthorized",
  403: "Forbidden",
  404: "NotFound",
  405: "MethodNotAllowed",
  406: "NotAcceptable",
  500: "InternalError",
};
const HTTP_TEXT: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  406: "Not Acceptable",
  500: "Internal Server Error",
};

class ApiError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly details?: JsonObject,
    readonly reason: string = REASONS[code] ?? "Unknown",
  ) {
    super(message);
  }
  status(): JsonObject {
    const s: JsonObject = { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message: this.message, reason: this.reason };
    if (this.details) s.details = this.details;
    s.code = this.code;
    return s;
  }
}

const notFound = (resource: string, name: string, group = "") =>
  new ApiError(404, `${resource}${group ? "." + group : ""} "${name}" not found`, { name, ...(group ? { group } : {}), kind: resource });
const unknownPath = () => new ApiError(404, "the server could not find the requested resource", {});

const AGG_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

function wantsAggregated(accept: string | undefined): boolean {
  if (!accept) return false;
  return accept.split(",").some((m) => {
    const p = m.replace(/\s+/g, "");
    return p.includes("g=apidiscovery.k8s.io") && p.includes("v=v2;") && p.includes("as=APIGroupDiscoveryList") && !p.includes("v=v2beta1");
  });
}

function wantsTable(accept: string | undefined): boolean {
  return !!accept && accept.split(",")[0]!.replace(/\s+/g, "").includes("as=Table");
}

function queryOf(url: URL): Record<string, string[]> {
  const q: Record<string, string[]> = {};
  for (const [k, v] of url.searchParams) (q[k] ??= []).push(v);
  return q;
}

const yamlStr = (s: string) => JSON.stringify(s);

/** Starts the fake API server on 127.0.0.1 with a random port. */
export async function startFakeApi(opts: FakeApiOptions): Promise<FakeApi> {
  const ownDir = opts.dir === undefined;
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), "krsync-fakeapi-")));
  const certs = await makeTestCerts(dir);
  const token = opts.token ?? randomBytes(24).toString("base64url");
  const user = opts.user ?? "krsync-test";
  const namespace = opts.namespace ?? "default";
  const serverVersion = opts.serverVersion ?? "v1.32.4";
  const execProtocols = opts.execProtocols ?? [PROTOCOL_V5, PROTOCOL_V4];
  const aggregated = opts.aggregatedDiscovery ?? true;
  const tuning: ExecTuning = { highWaterMark: 1 << 20, lowWaterMark: 256 << 10, killGraceMs: 2000, ...opts.exec };
  const deny: DenyRule[] = [...(opts.deny ?? [])];
  const requests: RecordedRequest[] = [];
  const execs: ExecRecord[] = [];
  const children = new Set<ChildProcess>();

  // ---- object store ----
  let rv = 1000;
  const ctx: RenderContext = {
    defaultNamespace: namespace,
    epoch: new Date(Math.floor(Date.now() / 1000) * 1000 - 3600_000).toISOString().replace(/\.\d{3}Z$/, "Z"),
    nextResourceVersion: () => String(++rv),
  };
  const store = new Map<string, Map<string, JsonObject>>(RESOURCE_TYPES.map((t) => [t.resource, new Map()]));
  const podSpecs = new Map<string, PodSpec>();
  const extraNamespaces = new Set<string>([namespace, "kube-system", ...(opts.namespaces ?? [])]);
  const key = (ns: string, name: string) => `${ns}/${name}`;

  type Watcher = { resource: string; ns: string | null; test: (o: JsonObject) => boolean; res: ServerResponse };
  const watchers = new Set<Watcher>();
  const notify = (resource: string, type: "ADDED" | "MODIFIED" | "DELETED", obj: JsonObject) => {
    const ns = String((obj.metadata as JsonObject).namespace);
    for (const w of watchers) {
      if (w.resource !== resource || (w.ns !== null && w.ns !== ns) || !w.test(obj)) continue;
      w.res.write(JSON.stringify({ type, object: obj }) + "\n");
    }
  };
  const put = (resource: string, obj: JsonObject) => {
    const m = obj.metadata as JsonObject;
    const k = key(String(m.namespace), String(m.name));
    const map = store.get(resource)!;
    const existed = map.has(k);
    map.set(k, obj);
    notify(resource, existed ? "MODIFIED" : "ADDED", obj);
  };
  const del = (resource: string, ns: string, name: string): boolean => {
    const map = store.get(resource)!;
    const obj = map.get(key(ns, name));
    if (!obj) return false;
    map.delete(key(ns, name));
    notify(resource, "DELETED", { ...obj, metadata: { ...(obj.metadata as JsonObject), resourceVersion: ctx.nextResourceVersion() } });
    return true;
  };
  const upsertPod = (p: PodSpec) => {
    const ns = p.namespace ?? namespace;
    podSpecs.set(key(ns, p.name), p);
    put("pods", renderPod(p, ctx));
  };
  const upsertWorkload = (w: WorkloadSpec) => put(KIND_RESOURCE[w.kind], renderWorkload(w, ctx));
  for (const p of opts.pods) upsertPod(p);
  for (const w of opts.workloads ?? []) upsertWorkload(w);

  const namespaceObjects = (): JsonObject[] => {
    const names = new Set(extraNamespaces);
    for (const m of store.values()) for (const o of m.values()) names.add(String((o.metadata as JsonObject).namespace));
    return [...names].sort().map((n) => ({
      kind: "Namespace",
      apiVersion: "v1",
      metadata: { name: n, uid: `ns-${n}`, resourceVersion: "1", creationTimestamp: ctx.epoch, labels: { "kubernetes.io/metadata.name": n } },
      spec: { finalizers: ["kubernetes"] },
      status: { phase: "Active" },
    }));
  };

  // ---- discovery ----
  const groups = [...new Set(RESOURCE_TYPES.map((t) => t.group))];
  const versionInfo = () => {
    const m = /^v(\d+)\.(\d+)/.exec(serverVersion);
    return {
      major: m?.[1] ?? "1",
      minor: m?.[2] ?? "32",
      gitVersion: serverVersion,
      gitCommit: "0000000000000000000000000000000000000000",
      gitTreeState: "clean",
      buildDate: "2025-01-01T00:00:00Z",
      goVersion: "go1.23.6",
      compiler: "gc",
      platform: "linux/amd64",
    };
  };
  const legacyResources = (group: string, version: string): JsonObject => {
    const resources: Json[] = [];
    for (const t of RESOURCE_TYPES.filter((r) => r.group === group && r.version === version)) {
      resources.push({ name: t.resource, singularName: t.singular, namespaced: t.namespaced, kind: t.kind, verbs: t.verbs, ...(t.shortNames.length ? { shortNames: t.shortNames } : {}), ...(t.categories.length ? { categories: t.categories } : {}) });
      for (const s of t.subresources) {
        resources.push({ name: `${t.resource}/${s.name}`, singularName: "", namespaced: t.namespaced, kind: s.kind, verbs: s.verbs });
      }
    }
    return { kind: "APIResourceList", apiVersion: "v1", groupVersion: group === "" ? version : `${group}/${version}`, resources };
  };
  const aggregatedList = (core: boolean): JsonObject => ({
    kind: "APIGroupDiscoveryList",
    apiVersion: "apidiscovery.k8s.io/v2",
    metadata: {},
    items: groups
      .filter((g) => (g === "") === core)
      .map((g) => ({
        metadata: { name: g, creationTimestamp: null },
        versions: [
          {
            version: "v1",
            freshness: "Current",
            resources: RESOURCE_TYPES.filter((t) => t.group === g).map((t) => ({
              resource: t.resource,
              responseKind: { group: t.group, version: t.version, kind: t.kind },
              scope: t.namespaced ? "Namespaced" : "Cluster",
              singularResource: t.singular,
              verbs: t.verbs,
              ...(t.shortNames.length ? { shortNames: t.shortNames } : {}),
              ...(t.categories.length ? { categories: t.categories } : {}),
              ...(t.subresources.length
                ? { subresources: t.subresources.map((s) => ({ subresource: s.name, responseKind: { group: t.group, version: t.version, kind: s.kind }, verbs: s.verbs })) }
                : {}),
            })),
          },
        ],
      })),
  });
  const apiGroup = (g: string): JsonObject => ({
    kind: "APIGroup",
    apiVersion: "v1",
    name: g,
    versions: [{ groupVersion: `${g}/v1`, version: "v1" }],
    preferredVersion: { groupVersion: `${g}/v1`, version: "v1" },
  });

  // ---- auth ----
  const authenticate = (req: IncomingMessage): string | null => {
    const h = req.headers.authorization;
    if (!h || !h.startsWith("Bearer ")) return null;
    return h.slice(7).trim() === token ? user : null;
  };
  const authorize = (verb: string, resource: string, ns: string | null, name: string | null, t: ResourceType | { group: string }) => {
    const hit = deny.find(
      (r) =>
        (r.verb === undefined || r.verb === verb) &&
        (r.resource === undefined || r.resource === resource) &&
        (r.namespace === undefined || r.namespace === ns) &&
        (r.name === undefined || r.name === name),
    );
    if (!hit) return;
    const [plural] = resource.split("/");
    const subject = name ? `${plural}${t.group ? "." + t.group : ""} "${name}"` : `${plural}${t.group ? "." + t.group : ""}`;
    const where = ns ? ` in the namespace "${ns}"` : " at the cluster scope";
    throw new ApiError(
      403,
      `${subject} is forbidden: User "${user}" cannot ${verb} resource "${resource}" in API group "${t.group}"${where}`,
      { ...(name ? { name } : {}), ...(t.group ? { group: t.group } : {}), kind: plural! },
    );
  };

  // ---- routing ----
  interface ResourcePath {
    t: ResourceType;
    ns: string | null;
    name: string | null;
    sub: string | null;
  }
  /** Parses /api/v1/... and /apis/G/V/... resource paths; null when it is not one. */
  const parseResourcePath = (parts: string[]): ResourcePath | null => {
    let group: string;
    let version: string;
    let rest: string[];
    if (parts[0] === "api" && parts.length >= 3) {
      group = "";
      version = parts[1]!;
      rest = parts.slice(2);
    } else if (parts[0] === "apis" && parts.length >= 4) {
      group = parts[1]!;
      version = parts[2]!;
      rest = parts.slice(3);
    } else return null;
    let ns: string | null = null;
    if (rest[0] === "namespaces" && rest.length >= 3) {
      ns = rest[1]!;
      rest = rest.slice(2);
    }
    const t = resourceType(group, version, rest[0]!);
    if (!t || rest.length > 3) throw unknownPath();
    if (rest[0] === "namespaces") return { t, ns: null, name: rest[1] ?? null, sub: rest[2] ?? null };
    const sub = rest[2] ?? null;
    if (sub !== null && !t.subresources.some((s) => s.name === sub)) throw unknownPath();
    return { t, ns, name: rest[1] ?? null, sub };
  };

  const selectObjects = (rp: ResourcePath, url: URL): ((o: JsonObject) => boolean) => {
    let labelReqs;
    let fieldReqs;
    try {
      labelReqs = parseLabelSelector(url.searchParams.get("labelSelector") ?? "");
      fieldReqs = parseFieldSelector(url.searchParams.get("fieldSelector") ?? "");
    } catch (e) {
      throw new ApiError(400, e instanceof SelectorError ? e.message : String(e));
    }
    const bad = checkFieldSelector(rp.t.resource, fieldReqs);
    if (bad) throw new ApiError(400, `Unable to find "/${apiVersionOf(rp.t)}, Resource=${rp.t.resource}" that match label selector "", field selector "${url.searchParams.get("fieldSelector")}": ${bad}`);
    return (o) => matchLabels(labelReqs, objectLabels(o)) && matchFields(fieldReqs, o);
  };

  const listObjects = (rp: ResourcePath): JsonObject[] => {
    const all = rp.t.resource === "namespaces" ? namespaceObjects() : [...store.get(rp.t.resource)!.values()];
    return all
      .filter((o) => rp.ns === null || (o.metadata as JsonObject).namespace === rp.ns)
      .sort((a, b) => {
        const ma = a.metadata as JsonObject;
        const mb = b.metadata as JsonObject;
        return `${ma.namespace}/${ma.name}` < `${mb.namespace}/${mb.name}` ? -1 : 1;
      });
  };

  const getObject = (rp: ResourcePath): JsonObject => {
    const obj =
      rp.t.resource === "namespaces"
        ? namespaceObjects().find((o) => (o.metadata as JsonObject).name === rp.name)
        : store.get(rp.t.resource)!.get(key(rp.ns ?? "", rp.name!));
    if (!obj) throw notFound(rp.t.resource, rp.name!, rp.t.group);
    return obj;
  };

  const sendJson = (res: ServerResponse, code: number, body: Json, contentType = "application/json") => {
    const data = JSON.stringify(body);
    res.writeHead(code, { "Content-Type": contentType, "Content-Length": Buffer.byteLength(data), "Cache-Control": "no-cache, private" });
    res.end(data);
  };

  const handleRequest = (req: IncomingMessage, res: ServerResponse, rec: RecordedRequest, url: URL) => {
    const parts = url.pathname.split("/").filter((p) => p !== "");
    const accept = req.headers.accept;
    if (parts.length === 1 && ["healthz", "livez", "readyz"].includes(parts[0]!)) {
      res.writeHead(200, { "Content-Type": "text/plain" });
      return res.end("ok");
    }
    if (rec.user === null) throw new ApiError(401, "Unauthorized");
    if (req.method !== "GET") {
      const rp = parseResourcePath(parts);
      if (rp?.sub === "exec") throw new ApiError(400, "Upgrade request required");
      throw new ApiError(405, `the server does not allow this method on the requested resource`, {});
    }
    if (parts.length === 1 && parts[0] === "version") return sendJson(res, 200, versionInfo());
    if (parts.length === 1 && (parts[0] === "api" || parts[0] === "apis")) {
      const core = parts[0] === "api";
      if (aggregated && wantsAggregated(accept)) return sendJson(res, 200, aggregatedList(core), AGG_V2);
      if (core) {
        return sendJson(res, 200, {
          kind: "APIVersions",
          versions: ["v1"],
          serverAddressByClientCIDRs: [{ clientCIDR: "0.0.0.0/0", serverAddress: `127.0.0.1:${port}` }],
        });
      }
      return sendJson(res, 200, { kind: "APIGroupList", apiVersion: "v1", groups: groups.filter((g) => g !== "").map(apiGroup) });
    }
    if (parts[0] === "api" && parts.length === 2) {
      if (parts[1] !== "v1") throw unknownPath();
      return sendJson(res, 200, legacyResources("", "v1"));
    }
    if (parts[0] === "apis" && parts.length === 2) {
      if (!groups.includes(parts[1]!) || parts[1] === "") throw unknownPath();
      return sendJson(res, 200, apiGroup(parts[1]!));
    }
    if (parts[0] === "apis" && parts.length === 3) {
      if (!groups.includes(parts[1]!) || parts[1] === "" || parts[2] !== "v1") throw unknownPath();
      return sendJson(res, 200, legacyResources(parts[1]!, "v1"));
    }
    const rp = parseResourcePath(parts);
    if (!rp) throw unknownPath();
    if (rp.sub === "exec") throw new ApiError(400, "Upgrade request required");
    if (rp.name === null) {
      const isWatch = url.searchParams.get("watch") === "true" || url.searchParams.get("watch") === "1";
      authorize(isWatch ? "watch" : "list", rp.t.resource, rp.ns, null, rp.t);
      const test = selectObjects(rp, url);
      if (isWatch) return startWatch(rp, url, test, res);
      const items = listObjects(rp).filter(test);
      const listRv = String(rv);
      if (wantsTable(accept)) {
        return sendJson(res, 200, renderTable(rp.t.resource, items, listRv, url.searchParams.get("includeObject") ?? "Metadata"), "application/json;as=Table;v=v1;g=meta.k8s.io");
      }
      return sendJson(res, 200, {
        kind: `${rp.t.kind}List`,
        apiVersion: apiVersionOf(rp.t),
        metadata: { resourceVersion: listRv },
        // items of a list carry no kind/apiVersion, as from the real server
        items: items.map(({ kind: _k, apiVersion: _a, ...rest }) => rest),
      });
    }
    authorize("get", rp.sub ? `${rp.t.resource}/${rp.sub}` : rp.t.resource, rp.ns, rp.name, rp.t);
    const obj = getObject(rp);
    if (wantsTable(accept)) {
      return sendJson(res, 200, renderTable(rp.t.resource, [obj], String(rv), url.searchParams.get("includeObject") ?? "Metadata"), "application/json;as=Table;v=v1;g=meta.k8s.io");
    }
    return sendJson(res, 200, obj);
  };

  const startWatch = (rp: ResourcePath, url: URL, test: (o: JsonObject) => boolean, res: ServerResponse) => {
    res.writeHead(200, { "Content-Type": "application/json", "Transfer-Encoding": "chunked", "Cache-Control": "no-cache, private" });
    const fromRv = url.searchParams.get("resourceVersion");
    if (!fromRv || fromRv === "0") {
      for (const o of listObjects(rp).filter(test)) res.write(JSON.stringify({ type: "ADDED", object: o }) + "\n");
    }
    const w: Watcher = { resource: rp.t.resource, ns: rp.ns, test, res };
    watchers.add(w);
    const secs = Number(url.searchParams.get("timeoutSeconds") ?? "1800");
    const timer = setTimeout(() => res.end(), Math.max(1, secs) * 1000);
    timer.unref();
    res.on("close", () => {
      clearTimeout(timer);
      watchers.delete(w);
    });
  };

  // ---- exec (upgrade) ----
  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    maxPayload: 64 << 20,
    handleProtocols: (offered: Set<string>) => {
      for (const p of offered) if (execProtocols.includes(p)) return p;
      return false;
    },
  });

  /** Validates an exec upgrade; throws ApiError for the real server's refusals. */
  const checkExec = (parts: string[], url: URL): ExecRequest => {
    const rp = parseResourcePath(parts);
    if (!rp || rp.t.resource !== "pods" || rp.sub !== "exec" || rp.ns === null || rp.name === null) {
      throw new ApiError(400, `upgrade requests are only served for pods/exec`);
    }
    authorize("create", "pods/exec", rp.ns, rp.name, rp.t);
    const spec = podSpecs.get(key(rp.ns, rp.name));
    if (!spec || !store.get("pods")!.has(key(rp.ns, rp.name))) throw notFound("pods", rp.name);
    const q = url.searchParams;
    const flag = (n: string) => q.get(n) === "true" || q.get(n) === "1";
    const command = q.getAll("command");
    const stdin = flag("stdin");
    const stdout = flag("stdout");
    const stderr = flag("stderr");
    const tty = flag("tty");
    if (spec.nodeName === null) throw new ApiError(400, `pod ${spec.name} does not have a host assigned`);
    // pod/strategy.go streamLocation: container name checks
    let cname = q.get("container") ?? "";
    if (cname === "") {
      if (spec.containers.length === 1) cname = spec.containers[0]!.name;
      else {
        throw new ApiError(400, `a container name must be specified for pod ${spec.name}, choose one of: [${spec.containers.map((c) => c.name).join(" ")}]`);
      }
    }
    const container = spec.containers.find((c) => c.name === cname);
    if (!container) throw new ApiError(400, `container ${cname} is not valid for pod ${spec.name}`);
    if (!stdin && !stdout && !stderr) throw new ApiError(400, "you must specify at least one of stdin, stdout, stderr");
    if (command.length === 0) throw new ApiError(400, "you must specify at least one command for the container");
    const phase = spec.phase ?? "Running";
    if (phase !== "Running") throw new ApiError(400, `container ${cname} is not running in pod ${spec.name} (phase ${phase}) [fake API]`);
    return { namespace: rp.ns, pod: rp.name, container, hostname: spec.name, command, stdin, stdout, stderr, tty };
  };

  const refuseUpgrade = (socket: Duplex, rec: RecordedRequest, err: ApiError) => {
    rec.status = err.code;
    const body = JSON.stringify(err.status());
    socket.end(
      `HTTP/1.1 ${err.code} ${HTTP_TEXT[err.code] ?? "Error"}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  };

  const handleUpgrade = async (req: IncomingMessage, socket: Duplex, head: Buffer, rec: RecordedRequest, url: URL) => {
    socket.on("error", () => undefined);
    try {
      if (rec.user === null) throw new ApiError(401, "Unauthorized");
      const parts = url.pathname.split("/").filter((p) => p !== "");
      const execReq = checkExec(parts, url);
      if (rec.upgrade !== "websocket") {
        throw new ApiError(400, `this fake API server speaks exec over WebSocket only; ${req.headers.upgrade ?? "non-WebSocket"} upgrade refused`);
      }
      const protocol = rec.offeredProtocols.find((p) => execProtocols.includes(p));
      if (!protocol) {
        throw new ApiError(400, `unable to upgrade: requested protocol(s) are not supported: [${rec.offeredProtocols.join(" ")}]; supported protocols are [${execProtocols.join(" ")}]`);
      }
      const prepared = await prepareExec(execReq);
      wss.handleUpgrade(req, socket, head, (ws) => {
        rec.status = 101;
        rec.protocol = ws.protocol;
        const er = newExecRecord(execReq, ws.protocol);
        execs.push(er);
        runExec(ws, execReq, er, prepared, tuning, children);
      });
    } catch (e) {
      refuseUpgrade(socket, rec, e instanceof ApiError ? e : new ApiError(500, String(e)));
    }
  };

  const record = (req: IncomingMessage, url: URL): RecordedRequest => {
    const up = (req.headers.upgrade ?? "").toLowerCase();
    const upgrade = up === "" ? null : up === "websocket" ? "websocket" : "spdy";
    // Node joins repeated headers with ", " (SPDY clients send one X-Stream-Protocol-Version each)
    const raw = upgrade === "websocket" ? req.headers["sec-websocket-protocol"] : req.headers["x-stream-protocol-version"];
    const offered = ([] as string[])
      .concat(raw ?? [])
      .flatMap((h) => h.split(","))
      .map((s) => s.trim())
      .filter((s) => s !== "");
    const rec: RecordedRequest = {
      method: req.method ?? "GET",
      path: url.pathname,
      query: queryOf(url),
      headers: req.headers,
      upgrade,
      offeredProtocols: offered,
      protocol: null,
      status: 0,
      user: authenticate(req),
      at: Date.now(),
    };
    requests.push(rec);
    return rec;
  };

  const server: Server = createServer({ key: certs.key, cert: certs.cert }, (req, res) => {
    const url = new URL(req.url ?? "/", "https://localhost");
    const rec = record(req, url);
    try {
      handleRequest(req, res, rec, url);
      rec.status = res.statusCode;
    } catch (e) {
      const err = e instanceof ApiError ? e : new ApiError(500, e instanceof Error ? e.message : String(e));
      rec.status = err.code;
      sendJson(res, err.code, err.status());
    }
  });
  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(req.url ?? "/", "https://localhost");
    void handleUpgrade(req, socket, head, record(req, url), url);
  });
  server.on("clientError", (_err, socket) => socket.destroy());

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === "object" && addr ? addr.port : 0;
  const url = `https://127.0.0.1:${port}`;

  const writeKubeconfig = async (path: string, k: KubeconfigOptions = {}): Promise<string> => {
    const caLine = k.noCa
      ? ""
      : k.embedCa
        ? `    certificate-authority-data: ${yamlStr(certs.ca.toString("base64"))}\n`
        : `    certificate-authority: ${yamlStr(certs.caFile)}\n`;
    const text =
      `apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: ${yamlStr(k.server ?? url)}\n${caLine}` +
      `contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake-user\n    namespace: ${yamlStr(k.namespace ?? namespace)}\n` +
      `current-context: fake\npreferences: {}\nusers:\n- name: fake-user\n  user:\n    token: ${yamlStr(k.token ?? token)}\n`;
    await writeFile(path, text, { mode: 0o600 });
    return path;
  };
  const kubeconfigPath = await writeKubeconfig(join(dir, "kubeconfig"));
  const cacheDir = join(dir, "kube-cache");
  const home = join(dir, "home");

  return {
    url,
    port,
    caFile: certs.caFile,
    kubeconfigPath,
    token,
    user,
    namespace,
    dir,
    requests,
    execs,
    deny,
    kubectlArgs: ["--kubeconfig", kubeconfigPath, "--cache-dir", cacheDir],
    kubectlEnv: { PATH: process.env.PATH, KUBECONFIG: kubeconfigPath, KUBECACHEDIR: cacheDir, HOME: home },
    writeKubeconfig,
    upsertPod,
    removePod: (name, ns = namespace) => {
      podSpecs.delete(key(ns, name));
      return del("pods", ns, name);
    },
    upsertWorkload,
    removeWorkload: (kind, name, ns = namespace) => del(KIND_RESOURCE[kind], ns, name),
    getPodSpec: (name, ns = namespace) => podSpecs.get(key(ns, name)),
    resetLog: () => {
      requests.length = 0;
      execs.length = 0;
    },
    async close() {
      for (const w of watchers) w.res.end();
      watchers.clear();
      for (const c of wss.clients) c.terminate();
      for (const c of children) c.kill("SIGKILL");
      await Promise.allSettled(execs.map((e) => e.done));
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      wss.close();
      if (ownDir) await rm(dir, { recursive: true, force: true });
    },
  };
}
