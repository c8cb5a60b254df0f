// The exec side of the fake API server: one WebSocket session per `pods/exec` request, in the
// channel protocol of apimachinery's wsstream/remotecommand. Binary frames are
// [channel][payload]: 0 stdin, 1 stdout, 2 stderr, 3 status (metav1.Status JSON), 4 resize;
// v5.channel.k8s.io adds [255, ch] = "channel ch is closed" (stdin EOF is [255, 0]).
// The command runs as `chroot ROOT cmd args...` (argv array, no shell), with backpressure both
// ways: the socket is paused while the child's stdin is full, the child's stdout/stderr are
// paused while the socket's bufferedAmount is high.

import { spawn, type ChildProcess } from "node:child_process";
import { constants as fsc } from "node:fs";
import { access, lstat } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import type { WebSocket } from "ws";
import type { ContainerSpec, JsonObject } from "./objects.js";

export const CH_STDIN = 0;
export const CH_STDOUT = 1;
export const CH_STDERR = 2;
export const CH_ERROR = 3;
export const CH_RESIZE = 4;
export const CH_CLOSE = 255;

export const PROTOCOL_V5 = "v5.channel.k8s.io";
export const PROTOCOL_V4 = "v4.channel.k8s.io";

export const CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** What happened in one exec session (the server keeps them in `execs`). */
export interface ExecRecord {
  namespace: string;
  pod: string;
  container: string;
  command: string[];
  /** Negotiated subprotocol. */
  protocol: string;
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  tty: boolean;
  startedAt: number;
  /** Exit code (128+signal for a signal death); null while running or when it never ran. */
  exitCode: number | null;
  signal: string | null;
  /** The Status JSON sent on channel 3. */
  status?: JsonObject;
  stdinBytes: number;
  stdoutBytes: number;
  stderrBytes: number;
  /** How stdin ended: a v5 [255,0] frame, the socket closing, or never (null). */
  stdinEnd: "close-frame" | "socket-close" | null;
  resizes: { Width: number; Height: number }[];
  /** Peak socket bufferedAmount seen after sending output. */
  maxBufferedAmount: number;
  /** Peak bytes queued in the child's stdin pipe (writableLength). */
  maxStdinPending: number;
  /** Times the socket was paused because the child's stdin was full. */
  stdinPauses: number;
  /** Times the child's output was paused because the socket was full. */
  outputPauses: number;
  /** Socket close code seen (ours or the client's). */
  closeCode: number | null;
  /** Client closed the socket before the command finished. */
  clientClosedEarly: boolean;
  /** Settles when the session is over (child gone and socket closed). */
  done: Promise<void>;
}

export interface ExecTuning {
  /** Pause the child's output when bufferedAmount exceeds this (default 1 MiB). */
  highWaterMark: number;
  /** Resume it once bufferedAmount is below this (default 256 KiB). */
  lowWaterMark: number;
  /** After the client goes away, kill a still-running command after this many ms (default 2000). */
  killGraceMs: number;
}

export interface ExecRequest {
  namespace: string;
  pod: string;
  container: ContainerSpec;
  hostname: string;
  command: string[];
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  tty: boolean;
}

const CHROOT_CANDIDATES = ["/usr/sbin/chroot", "/usr/bin/chroot", "/sbin/chroot", "/bin/chroot"];
let chrootPath: string | undefined;

async function findChroot(): Promise<string> {
  if (chrootPath) return chrootPath;
  for (const p of CHROOT_CANDIDATES) {
    try {
      await access(p, fsc.X_OK);
      return (chrootPath = p);
    } catch {
      // next
    }
  }
  throw new Error("fake kube API: chroot command not found");
}

/**
 * Looks the command up inside the root the way execvp would after chroot (PATH search for a
 * bare name). Returns false only when it surely is missing; a dangling-looking symlink (an
 * absolute link meant for inside the root) counts as present and chroot decides.
 */
async function commandExists(root: string, cmd: string): Promise<boolean> {
  const candidates = cmd.includes("/") ? [cmd] : CONTAINER_PATH.split(":").map((d) => `${d}/${cmd}`);
  for (const c of candidates) {
    try {
      await lstat(join(root, c));
      return true;
    } catch {
      // next
    }
  }
  return false;
}

export function successStatus(): JsonObject {
  return { metadata: {}, status: "Success" };
}

/** remotecommand's NonZeroExitCode Status (kubelet streaming server, exec.ExitError). */
export function exitStatus(command: string[], code: number): JsonObject {
  return {
    metadata: {},
    status: "Failure",
    message: `command terminated with non-zero exit code: error executing command [${command.join(" ")}], exit code ${code}`,
    reason: "NonZeroExitCode",
    details: { causes: [{ reason: "ExitCode", message: String(code) }] },
  };
}

/** What containerd-backed kubelets answer for a command that cannot be started. */
export function internalErrorStatus(message: string): JsonObject {
  return {
    metadata: {},
    status: "Failure",
    message: `Internal error occurred: error executing command in container: ${message}`,
    reason: "InternalError",
    details: { causes: [{ message: `error executing command in container: ${message}` }] },
    code: 500,
  };
}

const SIGNALS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGPIPE: 13, SIGTERM: 15 };

export function newExecRecord(req: ExecRequest, protocol: string): ExecRecord {
  return {
    namespace: req.namespace,
    pod: req.pod,
    container: req.container.name,
    command: req.command,
    protocol,
    stdin: req.stdin,
    stdout: req.stdout,
    stderr: req.stderr,
    tty: req.tty,
    startedAt: Date.now(),
    exitCode: null,
    signal: null,
    stdinBytes: 0,
    stdoutBytes: 0,
    stderrBytes: 0,
    stdinEnd: null,
    resizes: [],
    maxBufferedAmount: 0,
    maxStdinPending: 0,
    stdinPauses: 0,
    outputPauses: 0,
    closeCode: null,
    clientClosedEarly: false,
    done: Promise.resolve(),
  };
}

export type PreparedExec = { chroot: string } | { failure: JsonObject };

/**
 * Checks, before the upgrade, what the session will do: run the command, or answer a Failure
 * status on channel 3 (no root, command not found in the root).
 */
export async function prepareExec(req: ExecRequest): Promise<PreparedExec> {
  const root = req.container.root;
  if (!root) return { failure: internalErrorStatus(`container "${req.container.name}" has no root directory in the fake API`) };
  const cmd = req.command[0]!;
  if (!(await commandExists(root, cmd))) {
    return {
      failure: internalErrorStatus(
        `failed to exec in container: failed to start exec: OCI runtime exec failed: exec failed: unable to start container process: exec: "${cmd}": executable file not found in $PATH: unknown`,
      ),
    };
  }
  return { chroot: await findChroot() };
}

/**
 * Runs one exec session on a just-upgraded socket (call synchronously from handleUpgrade's
 * callback so no frame is missed). `children` is the server's set of live processes (removed
 * on exit) so close() can kill leftovers.
 */
export function runExec(
  ws: WebSocket,
  req: ExecRequest,
  rec: ExecRecord,
  prepared: PreparedExec,
  tuning: ExecTuning,
  children: Set<ChildProcess>,
): void {
  let settle!: () => void;
  rec.done = new Promise<void>((r) => (settle = r));
  let socketClosed = false;
  let childGone = false;
  let child: ChildProcess | undefined;
  const finish = () => {
    if (socketClosed && childGone) settle();
  };

  const sendStatusAndClose = (status: JsonObject) => {
    rec.status = status;
    if (ws.readyState !== ws.OPEN) return;
    ws.send(Buffer.concat([Buffer.from([CH_ERROR]), Buffer.from(JSON.stringify(status))]), () => {
      if (ws.readyState === ws.OPEN) ws.close(1000);
    });
  };

  ws.on("close", (code) => {
    socketClosed = true;
    rec.closeCode ??= code;
    if (child && !childGone) {
      rec.clientClosedEarly = true;
      if (rec.stdinEnd === null && child.stdin && !child.stdin.destroyed) {
        rec.stdinEnd = "socket-close";
        child.stdin.end();
      }
      // Output has nowhere to go: unblock the child, then make sure it does not linger.
      child.stdout?.resume();
      child.stderr?.resume();
      const k = child;
      setTimeout(() => {
        if (!childGone) k.kill("SIGKILL");
      }, tuning.killGraceMs).unref();
    }
    finish();
  });
  ws.on("error", () => undefined);

  if ("failure" in prepared) {
    childGone = true;
    sendStatusAndClose(prepared.failure);
    return;
  }
  const c = req.container;
  const args: string[] = [];
  if (c.runAsUser !== undefined) args.push(`--userspec=${c.runAsUser}:${c.runAsGroup ?? c.runAsUser}`);
  args.push("--", c.root!, ...req.command);
  const env: Record<string, string> = {
    PATH: CONTAINER_PATH,
    HOSTNAME: req.hostname,
    HOME: c.runAsUser && c.runAsUser !== 0 ? "/" : "/root",
    ...c.env,
  };
  const p = spawn(prepared.chroot, args, {
    env,
    stdio: [req.stdin ? "pipe" : "ignore", req.stdout ? "pipe" : "ignore", req.stderr ? "pipe" : "ignore"],
  });
  child = p;
  children.add(p);

  // stdin: client frames → child, pausing the socket while the pipe is full.
  p.stdin?.on("error", () => undefined); // EPIPE when the command exits without reading
  ws.on("message", (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
    const buf = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
    if (!isBinary || buf.length === 0) return;
    const ch = buf[0];
    if (ch === CH_STDIN) {
      if (!p.stdin || p.stdin.writableEnded || p.stdin.destroyed || buf.length === 1) return;
      rec.stdinBytes += buf.length - 1;
      const ok = p.stdin.write(buf.subarray(1));
      rec.maxStdinPending = Math.max(rec.maxStdinPending, p.stdin.writableLength);
      if (!ok && !ws.isPaused) {
        rec.stdinPauses++;
        ws.pause();
        p.stdin.once("drain", () => ws.resume());
      }
    } else if (ch === CH_RESIZE) {
      try {
        rec.resizes.push(JSON.parse(buf.subarray(1).toString("utf8")) as { Width: number; Height: number });
      } catch {
        // ignored, as the real server logs and carries on
      }
    } else if (ch === CH_CLOSE && rec.protocol === PROTOCOL_V5 && buf.length >= 2) {
      if (buf[1] === CH_STDIN && rec.stdinEnd === null) {
        rec.stdinEnd = "close-frame";
        p.stdin?.end();
      }
    }
  });

  // stdout/stderr: child → frames, pausing the child while the socket is backed up.
  const paused = new Set<Readable>();
  const resumeIfDrained = () => {
    if (paused.size > 0 && ws.bufferedAmount < tuning.lowWaterMark) {
      for (const s of paused) s.resume();
      paused.clear();
    }
  };
  const pipeOut = (stream: Readable | null, channel: number) => {
    if (!stream) return;
    stream.on("data", (chunk: Buffer) => {
      if (ws.readyState !== ws.OPEN) return;
      if (channel === CH_STDOUT) rec.stdoutBytes += chunk.length;
      else rec.stderrBytes += chunk.length;
      const frame = Buffer.allocUnsafe(chunk.length + 1);
      frame[0] = channel;
      chunk.copy(frame, 1);
      ws.send(frame, resumeIfDrained);
      const b = ws.bufferedAmount;
      if (b > rec.maxBufferedAmount) rec.maxBufferedAmount = b;
      if (b > tuning.highWaterMark && !paused.has(stream)) {
        rec.outputPauses++;
        stream.pause();
        paused.add(stream);
      }
    });
  };
  pipeOut(p.stdout, CH_STDOUT);
  pipeOut(p.stderr, CH_STDERR);

  p.on("error", (err) => {
    if (childGone) return;
    childGone = true;
    children.delete(p);
    sendStatusAndClose(internalErrorStatus(err.message));
    finish();
  });
  // 'close': the process exited and its stdio streams are drained.
  p.on("close", (code, signal) => {
    if (childGone) return;
    childGone = true;
    children.delete(p);
    rec.signal = signal;
    rec.exitCode = code ?? 128 + (signal ? (SIGNALS[signal] ?? 1) : 1);
    sendStatusAndClose(rec.exitCode === 0 ? successStatus() : exitStatus(req.command, rec.exitCode));
    finish();
  });
}
