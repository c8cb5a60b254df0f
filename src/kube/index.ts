// A transport to an rsync server inside a Kubernetes container: kubeconfig → pod → exec
// (api or kubectl) → the agent finds or receives rsync → the stream is rsync's. The transport
// does not care about direction: the server args decide whether the remote sends or receives.
import type { Readable, Writable } from "node:stream";
import type { KubeType } from "../transport/location.js";
import type { Transport, TransportExit } from "../transport/transport.js";
import type { KubeOptions } from "./options.js";
import { agentCommand, availableBinaries, awaitFirstByte, binaryDir, runAgent, type AgentOutcome } from "./agent.js";
import { apiUnusableReason, chooseTransport, loadKubeConfig, type ExecTransportKind, type LoadedKubeConfig } from "./config.js";
import { apiErrorFrom, InjectError, KubeError, RERR_CMD_NOTFOUND, RERR_CMD_RUN } from "./errors.js";
import { kubectlCommand, spawnKubectlExec } from "./exec-kubectl.js";
import { openWsExec } from "./exec-ws.js";
import { PodResolver, type ResolvedPod } from "./pods.js";
import { HttpsRest, KubectlRest, type KubeRest } from "./rest.js";

export { KubeError } from "./errors.js";
export type { KubeOptions };

export interface KubeTarget {
  namespace?: string | undefined;
  type: KubeType;
  name: string;
}

export interface KubeTransportOptions {
  kube: KubeOptions;
  /** --rsync-path: a shell command run in the container instead of looking for rsync. */
  rsyncPath?: string | undefined;
  env?: NodeJS.ProcessEnv | undefined;
  signal?: AbortSignal | undefined;
  /** krsync's own notices (waiting for a pod, warnings). */
  notice?: (text: string) => void;
  /** Remote stderr once rsync runs (default: our stderr). */
  stderr?: (chunk: Buffer) => void;
  /** With --all-pods: which of the workload's Ready pods (in the resolver's order). */
  podIndex?: number;
}

/** What was done to get the stream (for reports and tests). */
export interface KubeSessionInfo {
  transport: ExecTransportKind;
  /** Why that transport. */
  why: string;
  context: string;
  namespace: string;
  pod: string;
  container: string;
  /** API GETs made to find the pod. */
  restRequests: number;
  /** Exec sessions opened (1 normally; 2 when the container has no shell). */
  execs: number;
  agent: AgentOutcome;
}

/** Holds remote stderr until rsync runs (so a failed start becomes one line), then passes it on. */
class StderrGate {
  private held: Buffer[] = [];
  private heldLen = 0;
  private passing = false;
  text = "";
  constructor(private readonly sink: (d: Buffer) => void) {}
  readonly write = (d: Buffer): void => {
    this.text = (this.text + d.toString("utf8")).slice(-4000);
    if (this.passing) this.sink(d);
    else if (this.heldLen < 64 << 10) {
      this.held.push(d);
      this.heldLen += d.length;
    }
  };
  open(): void {
    this.passing = true;
    for (const d of this.held) this.sink(d);
    this.held = [];
  }
}

class KubeTransport implements Transport {
  constructor(
    private readonly inner: Transport,
    readonly info: KubeSessionInfo,
  ) {}
  get input(): Readable {
    return this.inner.input;
  }
  get output(): Writable {
    return this.inner.output;
  }
  describeFailure(): string {
    return this.inner.describeFailure();
  }
  exited(): Promise<TransportExit> {
    return this.inner.exited();
  }
  kill(): void {
    this.inner.kill();
  }
}

export type { KubeTransport };

const NO_COMMAND = /executable file not found|no such file or directory|not found in \$PATH|command not found/i;

/** kubectl's own refusal line, as a KubeError (for the kubectl transport). */
function kubectlRefusal(stderr: string, what: string): KubeError | undefined {
  const m = /Error from server \((\w+)\)(?::\s*(.*))?/.exec(stderr);
  if (!m) {
    if (/error: You must be logged in|Unauthorized/i.test(stderr)) return apiErrorFrom(401, "", what);
    return undefined;
  }
  const codes: Record<string, number> = { Forbidden: 403, Unauthorized: 401, NotFound: 404, BadRequest: 400 };
  if (m[1] === "InternalError" && NO_COMMAND.test(m[2] ?? "")) return undefined;
  return apiErrorFrom(codes[m[1]!] ?? 500, JSON.stringify({ reason: m[1], message: (m[2] ?? "").trim() }), what);
}

function abortError(): KubeError {
  const e = new KubeError("aborted", 20);
  e.name = "AbortedError";
  return e;
}

function lastLine(s: string): string {
  return s.trim().split("\n").filter((l) => l.trim() !== "").pop() ?? "";
}

/** Finds the pod(s) for a target (exported for --all-pods callers and tests). */
export async function resolveKubeTarget(
  target: KubeTarget,
  o: KubeTransportOptions & { allPods?: boolean },
): Promise<{ cfg: LoadedKubeConfig; rest: KubeRest; pods: ResolvedPod[] }> {
  const env = o.env ?? process.env;
  const cfg = loadKubeConfig(o.kube, target.namespace, env);
  const rest: KubeRest = apiUnusableReason(cfg) ? new KubectlRest(kubectlCommand(o.kube, env)) : new HttpsRest(cfg);
  const resolver = new PodResolver(rest);
  const pods = await resolver.resolve(
    { type: target.type, name: target.name, namespace: cfg.namespace },
    {
      ...(o.kube.container !== undefined ? { container: o.kube.container } : {}),
      ...(o.kube.podWait !== undefined ? { podWait: o.kube.podWait } : {}),
      allPods: o.allPods ?? false,
      ...(o.signal ? { signal: o.signal } : {}),
      ...(o.notice ? { notice: o.notice } : {}),
    },
  );
  return { cfg, rest, pods };
}

/**
 * Opens the stream to `rsync SERVER-ARGS` in the target's container. Resolves once rsync
 * runs there (its bytes come next); throws a KubeError (one line, rsync exit code) otherwise.
 */
export async function openKubeTransport(target: KubeTarget, serverArgs: readonly string[], o: KubeTransportOptions): Promise<KubeTransport> {
  const env = o.env ?? process.env;
  const { cfg, rest, pods } = await resolveKubeTarget(target, o.podIndex !== undefined ? { ...o, allPods: true } : o);
  const pick = pods[o.podIndex ?? 0];
  if (!pick) throw new KubeError(`pod ${(o.podIndex ?? 0) + 1} of ${describeKubeTarget(target)} is gone`);
  const choice = chooseTransport(cfg, env);
  const kubectl = kubectlCommand(o.kube, env);
  const set = availableBinaries(binaryDir(env));
  const at = { pod: pick.pod, container: pick.container, namespace: pick.namespace };
  const sink = o.stderr ?? ((d: Buffer) => void process.stderr.write(d));
  const where = `exec into pod "${pick.pod}" in namespace "${pick.namespace}"`;

  let execs = 0;
  let current: Transport | undefined;
  const onAbort = () => current?.kill();
  o.signal?.addEventListener("abort", onAbort, { once: true });
  const open = async (command: readonly string[], gate: StderrGate): Promise<Transport> => {
    if (o.signal?.aborted) throw abortError();
    execs++;
    const t =
      choice.kind === "api"
        ? await openWsExec({ cfg, namespace: pick.namespace, pod: pick.pod, container: pick.container, command, stderr: gate.write })
        : spawnKubectlExec(kubectl, pick.namespace, pick.pod, pick.container, command, gate.write);
    current = t;
    return t;
  };
  /** The stream ended before rsync ran: say why in one line. */
  const failedStart = async (t: Transport, gate: StderrGate): Promise<{ text: string; refusal?: KubeError }> => {
    await Promise.race([t.exited(), new Promise((r) => setTimeout(r, 5000).unref())]);
    t.kill();
    if (o.signal?.aborted) throw abortError();
    const text = [t.describeFailure(), gate.text].filter((s) => s.trim() !== "").join("\n");
    const refusal = choice.kind === "kubectl" ? kubectlRefusal(gate.text, where) : undefined;
    return refusal ? { text, refusal } : { text };
  };

  try {
    let gate = new StderrGate(sink);
    let t = await open(agentCommand({ rsyncPath: o.rsyncPath, remoteTmp: o.kube.remoteTmp, bins: set.bins }, serverArgs), gate);
    let outcome: AgentOutcome;
    let run;
    try {
      run = await runAgent(t, set, at);
    } catch (e) {
      t.kill();
      throw e;
    }
    if (run.ok) outcome = run.outcome;
    else {
      const f = await failedStart(t, gate);
      if (f.refusal) throw f.refusal;
      if (run.agentStarted || !NO_COMMAND.test(f.text)) {
        throw new KubeError(`${where}: the krsync agent ended before rsync started: ${lastLine(f.text) || "no output"}`, RERR_CMD_RUN);
      }
      // No sh: the only chance is an rsync in PATH, exec'd directly.
      const words = o.rsyncPath ? o.rsyncPath.trim().split(/\s+/) : ["rsync"];
      gate = new StderrGate(sink);
      t = await open([...words, ...serverArgs], gate);
      if (!(await awaitFirstByte(t))) {
        const g = await failedStart(t, gate);
        if (g.refusal) throw g.refusal;
        if (NO_COMMAND.test(g.text)) {
          throw new InjectError(
            `container "${pick.container}" of pod "${pick.pod}" (namespace "${pick.namespace}") has no shell (sh) and no ${words[0]}: krsync needs one of them to run rsync there (add rsync or busybox to the image)`,
            "noshell",
            RERR_CMD_NOTFOUND,
          );
        }
        throw new KubeError(`${where}: ${words[0]} ended before it started talking: ${lastLine(g.text) || "no output"}`, RERR_CMD_RUN);
      }
      outcome = { how: "direct", path: words[0]!, uploads: [] };
    }
    gate.open();
    return new KubeTransport(t, {
      transport: choice.kind,
      why: choice.why,
      context: cfg.contextName,
      namespace: pick.namespace,
      pod: pick.pod,
      container: pick.container,
      restRequests: rest.requests,
      execs,
      agent: outcome,
    });
  } finally {
    o.signal?.removeEventListener("abort", onAbort);
  }
}

function describeKubeTarget(t: KubeTarget): string {
  return `${t.namespace ? t.namespace + "/" : ""}${t.type}/${t.name}`;
}
