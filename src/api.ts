// krsync's library face: sync({ source, destination, ...options }). It works out the direction
// from the locations, builds the transport (remote shell, rsync daemon, Kubernetes), and runs
// the engine over it. listModules({ source }) is `rsync rsync://HOST/`.
import { defaultTransferOptions, MAX_PROTOCOL, type TransferOptions } from "./protocol/options.js";
import { RERR_SOCKETIO, RERR_STARTCLIENT, RERR_STREAMIO, RERR_SYNTAX, RERR_UNSUPPORTED, strerror, UsageError } from "./protocol/errcode.js";
import { ProtocolError } from "./protocol/wire.js";
import { serverArgs, CLIENT_CAPABILITIES } from "./protocol/serverargs.js";
import { parseLocation, type Location } from "./transport/location.js";
import { daemonOverShellArgs, remoteShellArgv } from "./transport/rsh.js";
import { connectDaemonSocket, readPasswordFile, SocketTransport, startInbandExchange } from "./transport/daemon.js";
import { daemonPathArgs, DaemonError, RSYNC_PORT } from "./protocol/daemon.js";
import { SpawnedTransport } from "./transport/spawned.js";
import type { Transport } from "./transport/transport.js";
import type { KubeOptions } from "./kube/options.js";
import { runPull } from "./engine/client.js";
import { runLocal } from "./engine/local.js";
import { runPush } from "./engine/push.js";
import { checkCompressChoice } from "./engine/setup.js";
import { emptyStats, type SyncEvents, type TransferStats } from "./engine/events.js";

export type { SyncEvents, TransferStats, ItemEvent, MessageLevel } from "./engine/events.js";
export type { TransferOptions } from "./protocol/options.js";

export interface SyncOptions extends Partial<TransferOptions> {
  /** One or more sources: local paths or remote locations (HOST:PATH …). */
  source: string | string[];
  destination: string;
  events?: SyncEvents;
  signal?: AbortSignal;
  /** Environment for the remote shell (defaults to process.env). */
  env?: NodeJS.ProcessEnv;
  /** Kubernetes targets ([NS/]TYPE/NAME:PATH): namespace, container, context, kubeconfig, … */
  kube?: KubeOptions;
}

export interface SyncResult {
  /** rsync's exit code for this run (0 = success, 23 = partial transfer, …). */
  exitCode: number;
  stats: TransferStats;
}

/** A failure that ends the run, with rsync's exit code. */
export class SyncError extends Error {
  /** `bare`: the message is printed as it is (e.g. a daemon's "@ERROR: ..." line), not after "krsync: ". */
  constructor(
    message: string,
    readonly exitCode: number,
    readonly bare = false,
  ) {
    super(message);
    this.name = "SyncError";
  }
}

/** Whether this side of a transfer sends or receives the files (rsync's am_sender: a local copy's client sends). */
export function localRole(source: string | string[], destination: string): "sender" | "receiver" {
  const sources = (Array.isArray(source) ? source : [source]).map(parseLocation);
  return parseLocation(destination).kind !== "local" || sources.every((s) => s.kind === "local") ? "sender" : "receiver";
}

export async function sync(o: SyncOptions): Promise<SyncResult> {
  const opts: TransferOptions = { ...defaultTransferOptions(), ...stripUndefined(o) };
  const sources = (Array.isArray(o.source) ? o.source : [o.source]).map(parseLocation);
  const dest = parseLocation(o.destination);
  if (sources.length === 0) throw new SyncError("no source given", RERR_SYNTAX);
  // A fixed --zc this side cannot use is refused before anything is started.
  try {
    checkCompressChoice(opts);
  } catch (e) {
    throw new SyncError((e as Error).message, RERR_UNSUPPORTED);
  }
  checkDaemonOnlyOptions(opts, [...sources, dest]);
  const remoteSources = sources.filter((s) => s.kind !== "local");
  if (dest.kind !== "local") {
    if (remoteSources.length > 0) throw new SyncError("The source and destination cannot both be remote", RERR_SYNTAX);
    return push(sources as Extract<Location, { kind: "local" }>[], dest, opts, o);
  }
  if (remoteSources.length === 0) return localCopy(sources as Extract<Location, { kind: "local" }>[], opts, o);
  if (remoteSources.length !== sources.length) {
    throw new SyncError("The source and destination cannot both be remote, nor can local and remote sources mix", RERR_SYNTAX);
  }
  const first = sources[0]!;
  if (first.kind === "kube") return kubePull(sources, opts, o);
  if (first.kind === "daemon") return daemonPull(sources, opts, o);
  if (first.kind !== "shell") throw new SyncError(`${first.kind} sources are not supported by krsync yet`, RERR_UNSUPPORTED);
  for (const s of sources) {
    if (s.kind !== "shell" || s.host !== first.host || s.user !== first.user) {
      throw new SyncError("all remote sources must be on the same host", RERR_SYNTAX);
    }
  }
  const protocol = opts.protocol ?? MAX_PROTOCOL;
  const remotePaths = sources.map((s) => (s as Extract<Location, { kind: "shell" }>).path || ".");
  // Incremental recursion is not offered yet: the whole file list comes first.
  const args = serverArgs({ ...opts, incRecursive: false }, { amSender: false, protocol, remotePaths });
  const argv = remoteShellArgv({
    rsh: opts.rsh,
    env: o.env ?? process.env,
    user: first.user,
    host: first.host,
    rsyncPath: opts.rsyncPath,
    serverArgs: args,
  });
  const transport = new SpawnedTransport(argv, { env: o.env ?? process.env });
  return runOverTransport(transport, opts, protocol, o, remotePaths);
}

// ---- Push: local sources to a remote receiver (engine/push.ts) ----

async function push(sources: Extract<Location, { kind: "local" }>[], dest: Location, given: TransferOptions, o: SyncOptions): Promise<SyncResult> {
  // krsync's sender does not combine -R with inc-recursion (engine/flist-build.ts): with -R it
  // offers none, and the receiver gets one whole list.
  const opts = given.relative ? { ...given, incRecursive: false } : given;
  const protocol = opts.protocol ?? MAX_PROTOCOL;
  const remotePaths = [dest.kind === "local" ? dest.path : ("path" in dest ? dest.path : "") || "."];
  if (dest.kind === "kube") {
    // exec passes argv words as they are (no remote shell): no backslash escapes.
    const args = serverArgs(opts, { amSender: true, protocol, remotePaths, quoting: "none" });
    if (!o.kube?.allPods) return pushOver(await kubeTransport(dest, args, opts, o), sources, opts, protocol, o);
    // --all-pods: every Ready pod of the workload's newest revision, one after the other.
    const { resolveKubeTarget } = await import("./kube/index.js");
    let pods;
    try {
      ({ pods } = await resolveKubeTarget(dest, { kube: o.kube, env: o.env, signal: o.signal, allPods: true }));
    } catch (e) {
      const err = e as Error & { exitCode?: number };
      throw new SyncError(err.message, typeof err.exitCode === "number" ? err.exitCode : RERR_STARTCLIENT);
    }
    let worst: SyncResult | undefined;
    for (let i = 0; i < pods.length; i++) {
      if (opts.verbose > 0) o.events?.message?.("info", `pushing to pod ${pods[i]!.pod}`);
      const r = await pushOver(await kubeTransport(dest, args, opts, o, i), sources, opts, protocol, o);
      if (!worst || r.exitCode > worst.exitCode) worst = r;
    }
    return worst!;
  }
  if (dest.kind === "daemon") {
    const d = await openDaemon(dest, opts, o, true, [dest]);
    if (!d) return { exitCode: 0, stats: emptyStats() };
    return pushOver(d.transport, sources, opts, d.protocol, o, d.protocol);
  }
  if (dest.kind !== "shell") {
    throw new SyncError(`pushing to a ${dest.kind} destination is not supported by krsync yet`, RERR_UNSUPPORTED);
  }
  // The remote side is a receiver: no --sender; inc-recursion is offered with -r (the sender
  // sends its sub-lists as the receiver goes, engine/flist-inc.ts).
  const args = serverArgs(opts, { amSender: true, protocol, remotePaths });
  const argv = remoteShellArgv({
    rsh: opts.rsh,
    env: o.env ?? process.env,
    user: dest.user,
    host: dest.host,
    rsyncPath: opts.rsyncPath,
    serverArgs: args,
  });
  return pushOver(new SpawnedTransport(argv, { env: o.env ?? process.env }), sources, opts, protocol, o);
}

async function pushOver(
  transport: Transport,
  sources: Extract<Location, { kind: "local" }>[],
  opts: TransferOptions,
  protocol: number,
  o: SyncOptions,
  agreedProtocol?: number,
): Promise<SyncResult> {
  try {
    const result = await runPush(
      { input: transport.input, output: transport.output },
      {
        opts,
        sources: sources.map((s) => s.path),
        protocol,
        agreedProtocol,
        events: o.events ?? {},
        ...(o.signal ? { signal: o.signal } : {}),
        timeoutSec: opts.timeout,
      },
    );
    return await finished(transport, result);
  } catch (e) {
    throw await failed(transport, e, "sender");
  }
}

// ---- Local copy: both ends in this process (engine/local.ts) ----

async function localCopy(sources: Extract<Location, { kind: "local" }>[], opts: TransferOptions, o: SyncOptions): Promise<SyncResult> {
  try {
    return await runLocal({
      opts,
      sources: sources.map((s) => s.path),
      destination: o.destination,
      events: o.events ?? {},
      ...(o.signal ? { signal: o.signal } : {}),
      timeoutSec: opts.timeout,
    });
  } catch (e) {
    throw toSyncError(e, null, "", "receiver");
  }
}

// ---- Kubernetes: a pull from [NS/]TYPE/NAME:PATH (src/kube) ----

/** The transport to an rsync server in the target's container (exec via the API or kubectl). */
async function kubeTransport(
  loc: Extract<Location, { kind: "kube" }>,
  args: string[],
  opts: TransferOptions,
  o: SyncOptions,
  podIndex?: number,
): Promise<Transport> {
  // Loaded only for Kubernetes targets: client-node is heavy to import.
  const { openKubeTransport } = await import("./kube/index.js");
  try {
    return await openKubeTransport(loc, args, {
      kube: o.kube ?? {},
      rsyncPath: opts.rsyncPath,
      env: o.env,
      signal: o.signal,
      notice: (text) => o.events?.message?.("warning", text),
      ...(podIndex !== undefined ? { podIndex } : {}),
    });
  } catch (e) {
    const err = e as Error & { exitCode?: number };
    throw new SyncError(err.message, typeof err.exitCode === "number" ? err.exitCode : RERR_STARTCLIENT);
  }
}

async function kubePull(sources: Location[], opts: TransferOptions, o: SyncOptions): Promise<SyncResult> {
  const first = sources[0] as Extract<Location, { kind: "kube" }>;
  for (const s of sources) {
    if (s.kind !== "kube" || s.type !== first.type || s.name !== first.name || s.namespace !== first.namespace) {
      throw new SyncError("all remote sources must be in the same pod", RERR_SYNTAX);
    }
  }
  if (o.kube?.allPods) throw new SyncError("--all-pods is for pushing to every pod of a workload; a pull reads from one pod", RERR_SYNTAX);
  const protocol = opts.protocol ?? MAX_PROTOCOL;
  const remotePaths = sources.map((s) => (s as Extract<Location, { kind: "kube" }>).path || ".");
  // exec passes argv words as they are (no remote shell): no backslash escapes, no globbing.
  const args = serverArgs({ ...opts, incRecursive: false }, { amSender: false, protocol, remotePaths, quoting: "none" });
  const transport = await kubeTransport(first, args, opts, o);
  return runOverTransport(transport, opts, protocol, o, remotePaths);
}

async function runOverTransport(
  transport: Transport,
  opts: TransferOptions,
  protocol: number,
  o: SyncOptions,
  requested: readonly string[],
  agreedProtocol?: number,
): Promise<SyncResult> {
  const events = o.events ?? {};
  const sentNegotiation = protocol >= 30 && CLIENT_CAPABILITIES.includes("v");
  try {
    const result = await runPull(
      { input: transport.input, output: transport.output },
      {
        opts,
        destination: o.destination,
        protocol,
        agreedProtocol,
        sentNegotiation,
        events,
        ...(o.signal ? { signal: o.signal } : {}),
        timeoutSec: opts.timeout,
        requested,
      },
    );
    return await finished(transport, result);
  } catch (e) {
    throw await failed(transport, e, "receiver");
  }
}

/** A run that ended by the protocol: the peer's own non-zero exit counts too. */
async function finished(transport: Transport, result: { exitCode: number; stats: TransferStats }): Promise<SyncResult> {
  const exit = await transport.exited();
  let code = result.exitCode;
  if (code === 0 && exit.code !== null && exit.code !== 0) code = exit.code;
  return { exitCode: code, stats: result.stats };
}

/** A run that failed: the peer is given a moment to exit with its own code, then stopped. */
async function failed(transport: Transport, e: unknown, role: "receiver" | "sender"): Promise<SyncError> {
  let exit = await Promise.race([transport.exited(), delay(500).then(() => null)]);
  if (!exit) {
    transport.kill();
    exit = await Promise.race([transport.exited(), delay(3000).then(() => ({ code: null, signal: null }))]);
  }
  return toSyncError(e, exit.code, transport.describeFailure(), role);
}

function toSyncError(e: unknown, remoteCode: number | null, failure: string, role: "receiver" | "sender" = "receiver"): SyncError {
  const who = role === "sender" ? "[sender]" : "[Receiver]";
  if (e instanceof SyncError) return e;
  if (e instanceof DaemonError) return new SyncError(e.message, e.exitCode, e.bare);
  const err = e as Error & { exitCode?: number; peerExit?: number; code?: string };
  // A socket the daemon reset after its error (io.c: "read error: Connection reset by peer"):
  // the daemon's own exit code, when it sent one, says more (RERR_SOCKETIO otherwise).
  if (err.code === "ECONNRESET" || err.code === "EPIPE") {
    return new SyncError(`${who} ${err.code === "EPIPE" ? "write" : "read"} error: ${strerror(err)}`, err.peerExit ?? RERR_SOCKETIO);
  }
  if (err instanceof UsageError) return new SyncError(err.message, err.exitCode);
  if (err.name === "AbortedError") return new SyncError(err.message, 20);
  if (err.name === "TimeoutError") return new SyncError(err.message, 30);
  if (err instanceof ProtocolError) {
    const early = /connection unexpectedly closed \(0 bytes/.test(err.message);
    if (early) {
      const detail = failure ? ` (${failure.split("\n").pop()})` : "";
      const code = remoteCode !== null && remoteCode >= 124 ? remoteCode : remoteCode === 255 ? 255 : RERR_STARTCLIENT;
      return new SyncError(`connection unexpectedly closed (0 bytes received so far) ${who}${detail}`, code);
    }
    if (/connection unexpectedly closed/.test(err.message)) {
      // The peer's own exit code says more than "the stream ended" (rsync: wait_process).
      const peerCode =
        remoteCode !== null && (remoteCode >= 124 || (remoteCode >= 1 && remoteCode <= 35)) ? remoteCode : ((e as { peerExit?: number }).peerExit ?? RERR_STREAMIO);
      return new SyncError(`${err.message} ${who}`, peerCode);
    }
    return new SyncError(`protocol error: ${err.message}`, err.exitCode);
  }
  if (typeof err.exitCode === "number") return new SyncError(err.message, err.exitCode);
  return new SyncError(err.message ?? String(e), 11);
}

// ---- The rsync daemon: HOST::MODULE/PATH and rsync://[USER@]HOST[:PORT]/MODULE/PATH ----

type DaemonLocation = Extract<Location, { kind: "daemon" }>;

/** main.c start_client: --password-file and --contimeout are for daemon connections only. */
function checkDaemonOnlyOptions(opts: TransferOptions, locations: readonly Location[]): void {
  if (locations.some((l) => l.kind === "daemon")) return;
  if (opts.passwordFile !== undefined) {
    throw new SyncError("The --password-file option may only be used when accessing an rsync daemon.", RERR_SYNTAX, true);
  }
  if (opts.contimeout > 0) {
    throw new SyncError("The --contimeout option may only be used when connecting to an rsync daemon.", RERR_SYNTAX, true);
  }
}

/**
 * main.c start_socket_client (a TCP connection; with -e, do_cmd runs `rsync --server --daemon .`
 * through the remote shell instead), then clientserver.c start_inband_exchange. `args` are the
 * remote locations (their module and path), sent after the server options. Null when the
 * daemon ended the exchange itself (@RSYNCD: EXIT, after a module list).
 */
async function openDaemon(
  loc: DaemonLocation,
  opts: TransferOptions,
  o: Omit<SyncOptions, "destination">,
  amSender: boolean,
  args: readonly DaemonLocation[],
): Promise<{ transport: Transport; protocol: number } | null> {
  if (loc.module === "" && loc.path !== "") {
    throw new SyncError("ERROR: The remote path must start with a module name not a /", RERR_STARTCLIENT, true);
  }
  const env = o.env ?? process.env;
  let transport: Transport;
  if (opts.rsh !== undefined) {
    const argv = remoteShellArgv({
      rsh: opts.rsh,
      env,
      user: loc.user,
      host: loc.host,
      rsyncPath: opts.rsyncPath,
      serverArgs: daemonOverShellArgs(),
      daemon: true,
    });
    transport = new SpawnedTransport(argv, { env: { ...env, RSYNC_PORT: String(loc.port ?? opts.port ?? 0) } });
  } else {
    if (loc.host.startsWith("-")) throw new SyncError("Invalid remote host: hostnames may not start with '-'.", RERR_SYNTAX);
    try {
      transport = new SocketTransport(await connectDaemonSocket({ host: loc.host, port: loc.port ?? opts.port ?? RSYNC_PORT, contimeoutSec: opts.contimeout }));
    } catch (e) {
      throw toSyncError(e, null, "");
    }
  }
  try {
    const paths = daemonPathArgs(
      loc.module,
      args.map((a) => (a.path ? `${a.module}/${a.path}` : a.module)),
    );
    const r = await startInbandExchange(transport.input, transport.output, {
      protocol: opts.protocol ?? MAX_PROTOCOL,
      module: loc.module,
      user: loc.user ?? env["USER"] ?? env["LOGNAME"] ?? "",
      password: () => (opts.passwordFile !== undefined ? readPasswordFile(opts.passwordFile) : (env["RSYNC_PASSWORD"] ?? "")),
      serverArgs: (protocol) => [
        ...serverArgs(amSender ? opts : { ...opts, incRecursive: false }, { amSender, protocol, remotePaths: [] }),
        ...paths,
      ],
      motd: (line) => {
        if (opts.motd) o.events?.message?.("info", line);
      },
      timeoutSec: opts.timeout,
    });
    if (r.kind === "exit") {
      transport.kill();
      return null;
    }
    return { transport, protocol: r.protocol };
  } catch (e) {
    // A socket has no exit status to wait for (and, paused, would not keep Node running).
    if (transport instanceof SocketTransport) transport.kill();
    throw await failed(transport, e, amSender ? "sender" : "receiver");
  }
}

async function daemonPull(sources: Location[], opts: TransferOptions, o: SyncOptions): Promise<SyncResult> {
  const first = sources[0] as DaemonLocation;
  for (const s of sources) {
    if (s.kind !== "daemon" || (s.host !== "" && s.host !== first.host)) {
      throw new SyncError("All source args must come from the same machine.", RERR_SYNTAX, true);
    }
    if (s.port !== undefined && s.port !== first.port) throw new SyncError("All source args must use the same port number.", RERR_SYNTAX, true);
  }
  const args = sources as DaemonLocation[];
  const d = await openDaemon(first, opts, o, false, args);
  if (!d) return { exitCode: 0, stats: emptyStats() };
  // exclude.c add_implied_include with the module name skipped.
  return runOverTransport(d.transport, { ...opts, incRecursive: false }, d.protocol, o, args.map((a) => a.path), d.protocol);
}

/**
 * `rsync rsync://HOST/` or `rsync HOST::`: the daemon's module list (and MOTD), one
 * events.message("info") per line, as it sends them.
 */
export async function listModules(o: Omit<SyncOptions, "destination"> & { source: string }): Promise<SyncResult> {
  const opts: TransferOptions = { ...defaultTransferOptions(), ...stripUndefined(o) };
  const loc = parseLocation(o.source);
  if (loc.kind !== "daemon" || loc.module !== "") throw new SyncError(`${o.source} does not name an rsync daemon's module list`, RERR_SYNTAX);
  const d = await openDaemon(loc, opts, o, false, [loc]);
  if (d) {
    d.transport.kill();
    throw new SyncError("the daemon accepted an empty module name instead of listing its modules", RERR_STARTCLIENT);
  }
  return { exitCode: 0, stats: emptyStats() };
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) {
    if (v !== undefined && k !== "source" && k !== "destination" && k !== "events" && k !== "signal" && k !== "env" && k !== "kube") {
      (out as Record<string, unknown>)[k] = v;
    }
  }
  return out;
}
