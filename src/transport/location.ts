// What a SRC/DEST argument names: options.c check_for_hostspec / parse_hostspec for rsync's
// forms, plus krsync's [NAMESPACE/]TYPE/NAME:PATH for Kubernetes workloads. Pure.

export type KubeType = "pod" | "deployment" | "statefulset" | "replicaset" | "job" | "daemonset";

export type Location =
  | { kind: "local"; path: string }
  /** HOST:PATH, USER@HOST:PATH, [IPV6]:PATH. host is "" for ":PATH" (rsync: same host as before). */
  | { kind: "shell"; user?: string; host: string; path: string }
  /** HOST::MODULE/PATH or rsync://[USER@]HOST[:PORT]/MODULE/PATH; port only when written. */
  | { kind: "daemon"; user?: string; host: string; port?: number; module: string; path: string }
  | { kind: "kube"; namespace?: string; type: KubeType; name: string; path: string };

// kubectl's spellings of the workload kinds krsync can exec into.
const KUBE_TYPES: ReadonlyMap<string, KubeType> = new Map([
  ["pod", "pod"],
  ["po", "pod"],
  ["pods", "pod"],
  ["deploy", "deployment"],
  ["deployment", "deployment"],
  ["deployments", "deployment"],
  ["sts", "statefulset"],
  ["statefulset", "statefulset"],
  ["statefulsets", "statefulset"],
  ["rs", "replicaset"],
  ["replicaset", "replicaset"],
  ["replicasets", "replicaset"],
  ["job", "job"],
  ["jobs", "job"],
  ["ds", "daemonset"],
  ["daemonset", "daemonset"],
  ["daemonsets", "daemonset"],
]);

// Kubernetes names: a namespace is a DNS-1123 label, an object name a DNS-1123 subdomain.
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

const URL_PREFIX = "rsync://";

interface HostSpec {
  hostPart: string; // [USER@]HOST, IPv6 brackets removed
  rest: string; // what follows the host (after ":" for a shell spec, at ":"/"/" for a URL)
  port?: number;
}

/**
 * options.c parse_hostspec. Without `url`: the host ends at the first ':' and a '/' before it
 * (or no ':' at all) means "not a host". With `url` (rsync://): the host ends at ':' (a port
 * follows, then '/' or the end) or at '/' or at the end of the string.
 */
function parseHostspec(str: string, url: boolean): HostSpec | undefined {
  let hostStart = 0;
  let hostLen = -1;
  let userLen = 0;
  let s = 0;
  let port: number | undefined;
  for (; ; s++) {
    if (s >= str.length) {
      if (!url) return undefined;
      if (hostLen < 0) hostLen = s - hostStart;
      break;
    }
    const c = str[s]!;
    if (c === ":" || c === "/") {
      if (hostLen < 0) hostLen = s - hostStart;
      s++;
      if (c === "/") {
        if (!url) return undefined;
      } else if (url) {
        const m = /^\d*/.exec(str.slice(s))![0];
        // atoi: no digits is port 0, i.e. the default.
        const n = m === "" ? 0 : Number(m);
        if (n !== 0) port = n;
        s += m.length;
        if (s < str.length && str[s++] !== "/") return undefined;
      }
      break;
    }
    if (c === "@") {
      userLen = s + 1;
      hostStart = s + 1;
    } else if (c === "[") {
      if (s !== hostStart) return undefined;
      hostStart++;
      while (s < str.length && str[s] !== "]" && str[s] !== "/") s++;
      hostLen = s - hostStart;
      const after = str[s + 1];
      if (str[s] !== "]" || (after !== undefined && after !== "/" && after !== ":") || hostLen === 0) return undefined;
    }
  }
  const hostPart = str.slice(0, userLen) + str.slice(hostStart, hostStart + hostLen);
  const spec: HostSpec = { hostPart, rest: str.slice(s) };
  if (port !== undefined) spec.port = port;
  return spec;
}

/** main.c start_client: USER@HOST splits at the last '@'. */
function splitUser(hostPart: string): { user?: string; host: string } {
  const at = hostPart.lastIndexOf("@");
  return at < 0 ? { host: hostPart } : { user: hostPart.slice(0, at), host: hostPart.slice(at + 1) };
}

function daemonLocation(hostPart: string, modulePath: string, port?: number): Location {
  const slash = modulePath.indexOf("/");
  const loc: Location = {
    kind: "daemon",
    ...splitUser(hostPart),
    module: slash < 0 ? modulePath : modulePath.slice(0, slash),
    path: slash < 0 ? "" : modulePath.slice(slash + 1),
  };
  if (port !== undefined) loc.port = port;
  return loc;
}

function kubeLocation(arg: string): Location | undefined {
  const colon = arg.indexOf(":");
  if (colon < 0) return undefined;
  const parts = arg.slice(0, colon).split("/");
  if (parts.length < 2 || parts.length > 3) return undefined;
  const [namespace, typeWord, name] = parts.length === 3 ? parts : [undefined, parts[0]!, parts[1]!];
  const type = KUBE_TYPES.get(typeWord!);
  if (!type || !DNS_SUBDOMAIN.test(name!)) return undefined;
  if (namespace !== undefined && !DNS_LABEL.test(namespace)) return undefined;
  const loc: Location = { kind: "kube", type, name: name!, path: arg.slice(colon + 1) };
  if (namespace !== undefined) loc.namespace = namespace;
  return loc;
}

/**
 * Classifies one command-line argument. Paths are returned as written (rsync turns an empty
 * remote path into "." later, in start_client). A local path that happens to look like
 * TYPE/NAME:PATH can be written ./TYPE/NAME:PATH or /abs/... to stay local.
 */
export function parseLocation(arg: string): Location {
  // options.c check_for_hostspec: rsync:// first, then HOST::MODULE and HOST:PATH.
  if (arg.slice(0, URL_PREFIX.length).toLowerCase() === URL_PREFIX) {
    const spec = parseHostspec(arg.slice(URL_PREFIX.length), true);
    if (spec) return daemonLocation(spec.hostPart, spec.rest, spec.port);
  }
  const spec = parseHostspec(arg, false);
  if (spec) {
    if (spec.rest.startsWith(":")) return daemonLocation(spec.hostPart, spec.rest.slice(1));
    return { kind: "shell", ...splitUser(spec.hostPart), path: spec.rest };
  }
  return kubeLocation(arg) ?? { kind: "local", path: arg };
}
