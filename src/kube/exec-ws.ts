// The `api` transport: pods/exec over a WebSocket opened with `ws` and the credentials
// client-node computes. Channel protocol (apimachinery remotecommand, wsstream): binary frames
// [channel][payload]; 0 stdin, 1 stdout, 2 stderr, 3 status (metav1.Status JSON); v5 adds
// [255, ch] = "channel ch closed", which is how stdin reaches EOF. v4 has no half-close: our
// end of stdin cannot be signalled, so the remote sees EOF only when the socket closes. rsync
// ends by its own protocol, not by stdin EOF, and the injection upload reads an exact byte
// count, so both work on v4; only a command that waits for EOF would hang there.
//
// Flow control both ways, so memory stays bounded whatever the sizes: channel-1 bytes go into
// a Readable and the socket is paused while that Readable is full; our writes are framed as
// channel 0 and the Writable's callback waits while ws.bufferedAmount is high.
import { Readable, Writable } from "node:stream";
import type { ClientOptions } from "ws";
import type { Transport, TransportExit } from "../transport/transport.js";
import type { LoadedKubeConfig } from "./config.js";
import { apiErrorFrom, KubeError, type KubeStatus } from "./errors.js";
import { WebSocket } from "./deps.js";
import { apiUrl, requestOptions, USER_AGENT } from "./rest.js";

export const PROTOCOL_V5 = "v5.channel.k8s.io";
export const PROTOCOL_V4 = "v4.channel.k8s.io";

const CH_STDIN = 0;
const CH_STDOUT = 1;
const CH_STDERR = 2;
const CH_STATUS = 3;
const CH_CLOSE = 255;

/** Largest stdin payload per frame. */
const MAX_STDIN_FRAME = 256 << 10;
const PING_MS = 30_000;

export interface WsExecSpec {
  cfg: LoadedKubeConfig;
  namespace: string;
  pod: string;
  container: string;
  /** argv, one `command=` per word (no shell). */
  command: readonly string[];
  /** Offered subprotocols, preferred first (default v5, v4). */
  protocols?: readonly string[];
  /** Channel-2 bytes (default: our stderr). */
  stderr?: (chunk: Buffer) => void;
  /** Readable buffer for channel-1 bytes before the socket is paused (default 1 MiB). */
  inputHighWaterMark?: number;
  /** ws.bufferedAmount above which writes wait (default 1 MiB). */
  outputHighWaterMark?: number;
}

/** The exec URL: one command= per argv word, container, stdin/stdout/stderr=true. */
export function execUrl(cfg: LoadedKubeConfig, namespace: string, pod: string, container: string, command: readonly string[]): URL {
  const u = apiUrl(cfg, `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(pod)}/exec`);
  u.protocol = u.protocol === "http:" ? "ws:" : "wss:";
  const q = new URLSearchParams();
  for (const w of command) q.append("command", w);
  q.set("container", container);
  q.set("stdin", "true");
  q.set("stdout", "true");
  q.set("stderr", "true");
  u.search = q.toString();
  return u;
}

/** remotecommand's exit status: Success 0, NonZeroExitCode its code, else 126/127. */
export function exitCodeOfStatus(st: KubeStatus): number {
  if (st.status === "Success") return 0;
  if (st.reason === "NonZeroExitCode") {
    const c = st.details?.causes?.find((x) => x.reason === "ExitCode");
    const n = Number(c?.message);
    return Number.isInteger(n) && n >= 0 ? n : 1;
  }
  return /not found|no such file/i.test(st.message ?? "") ? 127 : 126;
}

/** Opens the exec WebSocket; rejects with the API server's refusal as one line. */
export function openWsExec(spec: WsExecSpec): Promise<WsExecTransport> {
  return requestOptions(spec.cfg).then(
    (opts) =>
      new Promise<WsExecTransport>((resolve, reject) => {
        const url = execUrl(spec.cfg, spec.namespace, spec.pod, spec.container, spec.command);
        const headers: Record<string, string> = { ...opts.headers, "User-Agent": USER_AGENT };
        const ws = new WebSocket(url, [...(spec.protocols ?? [PROTOCOL_V5, PROTOCOL_V4])], {
          ...(opts as ClientOptions),
          headers,
          perMessageDeflate: false,
          handshakeTimeout: 30_000,
          maxPayload: 64 << 20,
        });
        const where = `pod "${spec.pod}" in namespace "${spec.namespace}"`;
        let settled = false;
        ws.once("unexpected-response", (req, res) => {
          const parts: Buffer[] = [];
          let len = 0;
          res.on("data", (d: Buffer) => {
            if ((len += d.length) < 1 << 20) parts.push(d);
          });
          res.on("end", () => {
            settled = true;
            const body = Buffer.concat(parts).toString("utf8");
            reject(apiErrorFrom(res.statusCode ?? 0, body, `exec into ${where}`));
            req.destroy();
          });
          res.on("error", () => undefined);
        });
        ws.once("error", (e) => {
          if (settled) return;
          settled = true;
          reject(new KubeError(`cannot open the exec WebSocket to ${where} at ${url.origin}: ${e.message}`));
        });
        ws.once("open", () => {
          if (settled) return;
          settled = true;
          resolve(new WsExecTransport(ws, spec));
        });
      }),
  );
}

export class WsExecTransport implements Transport {
  readonly input: Readable;
  readonly output: Writable;
  /** Negotiated subprotocol. */
  readonly protocol: string;
  /** The status sent on channel 3, once it came. */
  status: KubeStatus | undefined;
  private readonly exit: Promise<TransportExit>;
  private error: Error | null = null;
  private stderrTail = "";
  private statusText = "";
  private inputEnded = false;
  private killTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly ws: WebSocket,
    spec: WsExecSpec,
  ) {
    this.protocol = ws.protocol;
    const canHalfClose = ws.protocol === PROTOCOL_V5;
    const outHigh = spec.outputHighWaterMark ?? 1 << 20;
    const stderr = spec.stderr ?? ((d: Buffer) => process.stderr.write(d));

    this.input = new Readable({
      highWaterMark: spec.inputHighWaterMark ?? 1 << 20,
      read: () => {
        if (ws.isPaused) ws.resume();
      },
    });
    const endInput = () => {
      if (this.inputEnded) return;
      this.inputEnded = true;
      this.input.push(null);
    };

    this.output = new Writable({
      highWaterMark: 64 << 10,
      write: (chunk: Buffer, _enc, cb) => {
        if (ws.readyState !== WebSocket.OPEN) {
          cb(new Error("the exec stream is closed"));
          return;
        }
        let deferred = false;
        let last: ((err?: Error) => void) | undefined;
        for (let off = 0; off < chunk.length; off += MAX_STDIN_FRAME) {
          const n = Math.min(MAX_STDIN_FRAME, chunk.length - off);
          const frame = Buffer.allocUnsafe(n + 1);
          frame[0] = CH_STDIN;
          chunk.copy(frame, 1, off, off + n);
          const isLast = off + n >= chunk.length;
          last = isLast ? (err?: Error) => deferred && cb(err ?? null) : undefined;
          ws.send(frame, { binary: true }, last);
        }
        // ws calls a send callback once the frame is handed to the socket: when the socket
        // is backed up, wait for that before taking more.
        if (ws.bufferedAmount < outHigh) cb();
        else deferred = true;
      },
      final: (cb) => {
        if (canHalfClose && ws.readyState === WebSocket.OPEN) ws.send(Buffer.from([CH_CLOSE, CH_STDIN]), { binary: true }, () => cb());
        else cb();
      },
    });
    // A write after the peer went away is reported through exited()/the engine, not thrown.
    this.output.on("error", () => undefined);

    ws.on("message", (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
      const buf = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      if (!isBinary || buf.length === 0) return;
      const ch = buf[0];
      const payload = buf.subarray(1);
      if (ch === CH_STDOUT) {
        if (payload.length === 0 || this.inputEnded) return;
        if (!this.input.push(payload)) ws.pause();
      } else if (ch === CH_STDERR) {
        if (payload.length === 0) return;
        this.stderrTail = (this.stderrTail + payload.toString("utf8")).slice(-2000);
        stderr(payload);
      } else if (ch === CH_STATUS) {
        this.statusText += payload.toString("utf8");
        try {
          this.status = JSON.parse(this.statusText) as KubeStatus;
        } catch {
          // more to come
        }
      } else if (ch === CH_CLOSE && payload[0] === CH_STDOUT) {
        endInput();
      }
    });

    const ping = setInterval(() => {
      if (ws.readyState === WebSocket.OPEN) ws.ping();
    }, PING_MS);
    ping.unref();

    this.exit = new Promise((resolve) => {
      ws.on("error", (e) => {
        this.error ??= e;
      });
      ws.on("close", () => {
        clearInterval(ping);
        if (this.killTimer) clearTimeout(this.killTimer);
        endInput();
        this.output.destroy();
        const st = this.status;
        resolve(st ? { code: exitCodeOfStatus(st), signal: null } : { code: null, signal: null });
      });
    });
  }

  describeFailure(): string {
    const st = this.status;
    if (st && st.status !== "Success") return st.message ?? st.reason ?? "exec failed";
    if (this.error) return `exec stream: ${this.error.message}`;
    return this.stderrTail.trim();
  }

  exited(): Promise<TransportExit> {
    return this.exit;
  }

  /** Closes the socket; the API server then ends the remote command. */
  kill(): void {
    const ws = this.ws;
    if (ws.readyState === WebSocket.CLOSED) return;
    if (ws.readyState === WebSocket.OPEN) ws.close(1000, "krsync: stopped");
    else if (ws.readyState === WebSocket.CONNECTING) {
      ws.terminate();
      return;
    }
    this.killTimer ??= setTimeout(() => ws.terminate(), 1000);
    this.killTimer.unref();
  }
}
