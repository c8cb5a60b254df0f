// The kubeconfig, loaded the way kubectl does: --kubeconfig alone when given, else every file
// of KUBECONFIG (first file to name a cluster/user/context or the current context wins,
// missing files are skipped), else ~/.kube/config, else the in-cluster service account.
// Then --context, and the namespace: --namespace, the target's NAMESPACE/ prefix, the
// context's namespace, "default".
import { existsSync } from "node:fs";
import { delimiter, join } from "node:path";
import type { Cluster, Context, User } from "@kubernetes/client-node";
import { KubeConfig } from "./deps.js";
import type { KubeOptions } from "./options.js";
import { KubeError } from "./errors.js";

export type { KubeOptions };

export interface LoadedKubeConfig {
  kc: KubeConfig;
  /** Where it came from, for messages: a file list, "in-cluster". */
  source: string;
  contextName: string;
  context: Context;
  cluster: Cluster;
  user: User;
  /** The namespace the target lives in. */
  namespace: string;
}

const SA_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/** kubectl's KUBECONFIG merge: the first file to define a name keeps it. */
function mergeFirstWins(files: string[]): KubeConfig {
  const clusters: Cluster[] = [];
  const users: User[] = [];
  const contexts: Context[] = [];
  let current = "";
  for (const f of files) {
    const one = new KubeConfig();
    try {
      one.loadFromFile(f);
    } catch (e) {
      throw new KubeError(`cannot load kubeconfig ${f}: ${(e as Error).message.split("\n")[0]}`);
    }
    for (const c of one.clusters ?? []) if (!clusters.some((x) => x.name === c.name)) clusters.push(c);
    for (const u of one.users ?? []) if (!users.some((x) => x.name === u.name)) users.push(u);
    for (const c of one.contexts ?? []) if (!contexts.some((x) => x.name === c.name)) contexts.push(c);
    if (!current && one.currentContext) current = one.currentContext;
  }
  const kc = new KubeConfig();
  kc.loadFromOptions({ clusters, users, contexts, currentContext: current });
  return kc;
}

function loadRaw(o: KubeOptions, env: NodeJS.ProcessEnv): { kc: KubeConfig; source: string } {
  if (o.kubeconfig) {
    if (!existsSync(o.kubeconfig)) throw new KubeError(`kubeconfig ${o.kubeconfig} does not exist`);
    return { kc: mergeFirstWins([o.kubeconfig]), source: o.kubeconfig };
  }
  const list = (env.KUBECONFIG ?? "").split(delimiter).filter((f) => f !== "");
  if (list.length > 0) {
    const present = list.filter((f) => existsSync(f));
    if (present.length === 0) throw new KubeError(`none of the KUBECONFIG files exist (${list.join(delimiter)})`);
    return { kc: mergeFirstWins(present), source: present.join(delimiter) };
  }
  const home = env.HOME ?? env.USERPROFILE;
  if (home) {
    const f = join(home, ".kube", "config");
    if (existsSync(f)) return { kc: mergeFirstWins([f]), source: f };
  }
  if (env.KUBERNETES_SERVICE_HOST && existsSync(SA_TOKEN)) {
    const kc = new KubeConfig();
    kc.loadFromCluster();
    return { kc, source: "in-cluster service account" };
  }
  throw new KubeError("no kubeconfig found: set KUBECONFIG, pass --kubeconfig=FILE, or create ~/.kube/config");
}

/** Loads the kubeconfig and settles the context and the target's namespace. */
export function loadKubeConfig(o: KubeOptions, targetNamespace: string | undefined, env: NodeJS.ProcessEnv = process.env): LoadedKubeConfig {
  const { kc, source } = loadRaw(o, env);
  if (o.context !== undefined) {
    if (!kc.getContextObject(o.context)) {
      const names = kc.getContexts().map((c) => c.name);
      throw new KubeError(`context "${o.context}" not found in kubeconfig ${source} (contexts: ${names.join(", ") || "none"})`);
    }
    kc.setCurrentContext(o.context);
  }
  const contextName = kc.getCurrentContext();
  if (!contextName) throw new KubeError(`kubeconfig ${source} has no current context; pass --context=NAME`);
  const context = kc.getContextObject(contextName);
  if (!context) throw new KubeError(`current context "${contextName}" is not defined in kubeconfig ${source}`);
  const cluster = kc.getCluster(context.cluster);
  if (!cluster) throw new KubeError(`cluster "${context.cluster}" of context "${contextName}" is not defined in kubeconfig ${source}`);
  const user = kc.getUser(context.user) ?? { name: context.user || "" };
  const namespace = o.namespace || targetNamespace || context.namespace || "default";
  return { kc, source, contextName, context, cluster, user, namespace };
}

const KNOWN_AUTH_PROVIDERS = new Set(["azure", "gcp", "oidc", "tokenFile"]);

/**
 * Whether client-node can talk to this cluster as kubectl would: an https server (or http with
 * TLS verification off, which client-node insists on), and an auth method it implements.
 * Returns the reason when it cannot (then the kubectl transport is used).
 */
export function apiUnusableReason(cfg: LoadedKubeConfig): string | undefined {
  const server = cfg.cluster.server ?? "";
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    return `cluster "${cfg.cluster.name}" has no valid server URL (${server || "empty"})`;
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return `server ${server} is not http(s)`;
  if (url.protocol === "http:" && !cfg.cluster.skipTLSVerify) return `server ${server} is plain http, which client-node refuses`;
  const ap = cfg.user.authProvider as { name?: string } | undefined;
  if (ap && !KNOWN_AUTH_PROVIDERS.has(ap.name ?? "")) return `auth provider "${ap.name}" is not supported by client-node`;
  return undefined;
}

export type ExecTransportKind = "api" | "kubectl";

/** KRSYNC_KUBE_TRANSPORT=api|kubectl forces a transport; otherwise api when usable. */
export function chooseTransport(cfg: LoadedKubeConfig, env: NodeJS.ProcessEnv): { kind: ExecTransportKind; why: string } {
  const forced = env.KRSYNC_KUBE_TRANSPORT;
  const unusable = apiUnusableReason(cfg);
  if (forced !== undefined && forced !== "") {
    if (forced !== "api" && forced !== "kubectl") {
      throw new KubeError(`KRSYNC_KUBE_TRANSPORT must be "api" or "kubectl", not "${forced}"`);
    }
    if (forced === "api" && unusable) throw new KubeError(`KRSYNC_KUBE_TRANSPORT=api, but ${unusable}`);
    return { kind: forced, why: "KRSYNC_KUBE_TRANSPORT" };
  }
  return unusable ? { kind: "kubectl", why: unusable } : { kind: "api", why: "kubeconfig usable by client-node" };
}
