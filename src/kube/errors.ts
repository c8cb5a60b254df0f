// Errors of the Kubernetes side, each one line that says what is wrong and, where it helps,
// what to do. They carry the rsync exit code the run ends with.
import { RERR_CMD_NOTFOUND, RERR_CMD_RUN, RERR_STARTCLIENT } from "../protocol/errcode.js";

export class KubeError extends Error {
  constructor(
    message: string,
    /** rsync exit code: 5 (start-up) for config, lookup and API refusals by default. */
    readonly exitCode: number = RERR_STARTCLIENT,
  ) {
    super(message);
    this.name = "KubeError";
  }
}

/** A refusal from the API server, with its HTTP status and metav1.Status reason. */
export class KubeApiError extends KubeError {
  constructor(
    message: string,
    readonly status: number,
    readonly reason: string,
  ) {
    super(message, RERR_STARTCLIENT);
    this.name = "KubeApiError";
  }
}

/** The container cannot run rsync (no shell, no binary, nowhere to put one). */
export class InjectError extends KubeError {
  constructor(
    message: string,
    readonly kind: string,
    exitCode: number = RERR_CMD_RUN,
  ) {
    super(message, exitCode);
    this.name = "InjectError";
  }
}

export { RERR_CMD_NOTFOUND, RERR_CMD_RUN };

/** The metav1.Status fields krsync reads. */
export interface KubeStatus {
  kind?: string;
  status?: string;
  message?: string;
  reason?: string;
  code?: number;
  details?: { name?: string; kind?: string; causes?: { reason?: string; message?: string; field?: string }[] };
}

const REASON_BY_CODE: Record<number, string> = {
  400: "BadRequest",
  401: "Unauthorized",
  403: "Forbidden",
  404: "NotFound",
  405: "MethodNotAllowed",
  409: "Conflict",
  422: "Invalid",
  429: "TooManyRequests",
  500: "InternalError",
  503: "ServiceUnavailable",
};

/** A KubeApiError from an HTTP status and a body that may be a metav1.Status. */
export function apiErrorFrom(code: number, body: string, what: string): KubeApiError {
  let st: KubeStatus | undefined;
  try {
    const j = JSON.parse(body) as unknown;
    if (j && typeof j === "object") st = j as KubeStatus;
  } catch {
    // not JSON (a proxy's HTML page, say)
  }
  const reason = st?.reason || REASON_BY_CODE[code] || `HTTP ${code}`;
  let msg = (st?.message ?? body.trim().split("\n")[0] ?? "").slice(0, 500);
  if (code === 401) msg = `unauthorized: the API server rejected the credentials (${what}); check the token or certificates of the kubeconfig context, or log in again`;
  else if (code === 403) msg = `forbidden: ${msg || what}`;
  else if (!msg) msg = `${what}: HTTP ${code} ${reason}`;
  return new KubeApiError(msg, code, reason);
}
