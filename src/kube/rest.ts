// Read-only GETs against the API server, for finding the pod: over HTTPS with the
// credentials client-node computes from the kubeconfig, or, when client-node cannot use the
// kubeconfig, through `kubectl get --raw PATH`.
import { spawn } from "node:child_process";
import { request as httpRequest, type RequestOptions } from "node:http";
import { request as httpsRequest } from "node:https";
import type { LoadedKubeConfig } from "./config.js";
import { apiErrorFrom, KubeApiError, KubeError } from "./errors.js";

export interface KubeRest {
  /** GET path?query and parse the JSON body; throws KubeApiError for a non-2xx answer. */
  get(path: string, query?: Record<string, string>): Promise<unknown>;
  /** Requests made so far (round trips). */
  readonly requests: number;
}

const MAX_BODY = 256 << 20;
const TIMEOUT_MS = 30_000;
export const USER_AGENT = "krsync/0.1.0";

function withQuery(path: string, query?: Record<string, string>): string {
  if (!query || Object.keys(query).length === 0) return path;
  return `${path}?${new URLSearchParams(query).toString()}`;
}

/** The server URL for an API path (a server may live under a path prefix, e.g. /k8s/clusters/c1). */
export function apiUrl(cfg: LoadedKubeConfig, path: string): URL {
  const u = new URL(cfg.cluster.server);
  u.pathname = u.pathname.replace(/\/+$/, "") + path;
  u.search = "";
  return u;
}

/** TLS and auth options for node:https / ws, as client-node computes them (exec plugins too). */
export async function requestOptions(cfg: LoadedKubeConfig): Promise<Omit<RequestOptions, "headers"> & { headers: Record<string, string> }> {
  const opts: RequestOptions = {};
  try {
    await cfg.kc.applyToHTTPSOptions(opts);
  } catch (e) {
    throw new KubeError(`cannot get credentials for context "${cfg.contextName}": ${(e as Error).message.split("\n")[0]}`);
  }
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(opts.headers ?? {})) {
    if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(", ") : String(v);
  }
  return { ...opts, headers };
}

export class HttpsRest implements KubeRest {
  requests = 0;
  constructor(private readonly cfg: LoadedKubeConfig) {}

  async get(path: string, query?: Record<string, string>): Promise<unknown> {
    const target = apiUrl(this.cfg, path);
    target.search = withQuery("", query);
    const opts = await requestOptions(this.cfg);
    this.requests++;
    const send = target.protocol === "http:" ? httpRequest : httpsRequest;
    return new Promise((resolve, reject) => {
      const req = send(
        target,
        {
          ...opts,
          method: "GET",
          headers: { ...opts.headers, Accept: "application/json", "User-Agent": USER_AGENT },
          timeout: TIMEOUT_MS,
        },
        (res) => {
          const parts: Buffer[] = [];
          let len = 0;
          res.on("data", (d: Buffer) => {
            len += d.length;
            if (len > MAX_BODY) {
              req.destroy(new Error(`answer to GET ${path} is larger than ${MAX_BODY} bytes`));
              return;
            }
            parts.push(d);
          });
          res.on("end", () => {
            const body = Buffer.concat(parts).toString("utf8");
            const code = res.statusCode ?? 0;
            if (code < 200 || code > 299) {
              reject(apiErrorFrom(code, body, `context "${this.cfg.contextName}", GET ${path}`));
              return;
            }
            try {
              resolve(JSON.parse(body));
            } catch {
              reject(new KubeError(`GET ${path}: the API server answered something that is not JSON`));
            }
          });
          res.on("error", reject);
        },
      );
      req.on("timeout", () => req.destroy(new Error(`no answer within ${TIMEOUT_MS / 1000}s`)));
      req.on("error", (e) => reject(new KubeError(`cannot reach the Kubernetes API at ${target.origin} (context "${this.cfg.contextName}"): ${e.message}`)));
      req.end();
    });
  }
}

// kubectl's "Error from server (Reason): message" line.
const KUBECTL_ERROR = /Error from server \((\w+)\)(?::\s*(.*))?/;
const CODE_BY_REASON: Record<string, number> = { NotFound: 404, Forbidden: 403, Unauthorized: 401, BadRequest: 400 };

/** The kubectl command and the global flags every kubectl call gets. */
export interface KubectlCommand {
  kubectl: string;
  /** --context / --kubeconfig as the user gave them. */
  globalArgs: string[];
  env: NodeJS.ProcessEnv;
}

export class KubectlRest implements KubeRest {
  requests = 0;
  constructor(private readonly cmd: KubectlCommand) {}

  get(path: string, query?: Record<string, string>): Promise<unknown> {
    this.requests++;
    const args = [...this.cmd.globalArgs, "get", "--raw", withQuery(path, query)];
    return new Promise((resolve, reject) => {
      const p = spawn(this.cmd.kubectl, args, { env: this.cmd.env, stdio: ["ignore", "pipe", "pipe"] });
      const out: Buffer[] = [];
      let err = "";
      p.stdout.on("data", (d: Buffer) => out.push(d));
      p.stderr.on("data", (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
      p.on("error", (e) => reject(new KubeError(`cannot run ${this.cmd.kubectl}: ${e.message} (set KRSYNC_KUBECTL to its path)`)));
      p.on("close", (code) => {
        if (code === 0) {
          try {
            resolve(JSON.parse(Buffer.concat(out).toString("utf8")));
          } catch {
            reject(new KubeError(`kubectl get --raw ${path}: output is not JSON`));
          }
          return;
        }
        const line = err.trim().split("\n").filter((l) => l.trim() !== "").pop() ?? `exit code ${code}`;
        const m = KUBECTL_ERROR.exec(line);
        if (m) {
          const reason = m[1]!;
          const status = CODE_BY_REASON[reason] ?? 500;
          const e = apiErrorFrom(status, JSON.stringify({ reason, message: m[2] ?? reason }), `kubectl get --raw ${path}`);
          reject(e);
          return;
        }
        if (/Unauthorized|must be logged in/i.test(line)) {
          reject(apiErrorFrom(401, "", "kubectl"));
          return;
        }
        reject(new KubeError(`kubectl get --raw ${path}: ${line}`));
      });
    });
  }
}

export function isNotFound(e: unknown): boolean {
  return e instanceof KubeApiError && e.status === 404;
}
