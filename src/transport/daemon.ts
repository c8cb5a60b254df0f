// The rsync daemon transport: a TCP connection to `rsync --daemon` (main.c start_socket_client,
// socket.c open_socket_out), or the daemon's stdin/stdout through a remote shell running
// `rsync --server --daemon .` (-e with HOST::MODULE); then the text exchange that comes before
// the binary protocol (clientserver.c start_inband_exchange), line parsing in protocol/daemon.ts.
import * as net from "node:net";
import { closeSync, fstatSync, openSync, readSync, constants as fsc } from "node:fs";
import type { Readable, Writable } from "node:stream";
import { authDigest } from "../delta/checksum.js";
import {
  agreeDaemonProtocol,
  authHashInput,
  authResponse,
  chooseAuthDigest,
  classifyDaemonLine,
  daemonGreeting,
  decodeDaemonLine,
  encodeDaemonArgs,
  moduleRequest,
  parseDaemonGreeting,
  passwordFromFile,
  DaemonError,
  MAX_DAEMON_LINE,
  MAX_MOTD_LINES,
} from "../protocol/daemon.js";
import { RERR_CONTIMEOUT, RERR_SOCKETIO, RERR_SYNTAX, RERR_TIMEOUT, strerror } from "../protocol/errcode.js";
import type { Transport, TransportExit } from "./transport.js";

/** A transport over a connected TCP socket to a daemon. */
export class SocketTransport implements Transport {
  readonly input: Readable;
  readonly output: Writable;
  private readonly closed: Promise<TransportExit>;
  private error = "";

  constructor(private readonly socket: net.Socket) {
    this.input = socket;
    this.output = socket;
    socket.on("error", (e) => (this.error = e.message));
    // A socket has no exit status: its end is a clean one unless it failed.
    this.closed = new Promise((resolve) => socket.once("close", () => resolve({ code: null, signal: null })));
  }

  describeFailure(): string {
    return this.error;
  }

  exited(): Promise<TransportExit> {
    return this.closed;
  }

  kill(): void {
    this.socket.destroy();
  }
}

export interface SocketSpec {
  host: string;
  port: number;
  /** --contimeout seconds; 0 waits as long as the system does. */
  contimeoutSec: number;
  /** -4 / -6. */
  addressFamily?: 4 | 6 | undefined;
}

/** socket.c open_socket_out: connect, within --contimeout (RERR_CONTIMEOUT when it runs out). */
export function connectDaemonSocket(spec: SocketSpec): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: spec.host, port: spec.port, ...(spec.addressFamily ? { family: spec.addressFamily } : {}) });
    let timer: NodeJS.Timeout | undefined;
    if (spec.contimeoutSec > 0) {
      timer = setTimeout(() => {
        socket.destroy();
        reject(new DaemonError(`failed to connect to ${spec.host}: timeout waiting for daemon connection`, RERR_CONTIMEOUT));
      }, spec.contimeoutSec * 1000);
    }
    socket.once("connect", () => {
      if (timer) clearTimeout(timer);
      socket.setNoDelay(true);
      resolve(socket);
    });
    socket.once("error", (e: NodeJS.ErrnoException) => {
      if (timer) clearTimeout(timer);
      socket.destroy();
      if (e.code === "ENOTFOUND" || e.code === "EAI_AGAIN" || e.syscall === "getaddrinfo") {
        reject(new DaemonError(`getaddrinfo: ${spec.host} ${spec.port}: Name or service not known`, RERR_SOCKETIO));
        return;
      }
      const addr = (e as { address?: string }).address ?? spec.host;
      reject(new DaemonError(`failed to connect to ${spec.host} (${addr}): ${strerror(e)}`, RERR_SOCKETIO));
    });
  });
}

/**
 * Reads '\n'-terminated lines from a stream, at most MAX_DAEMON_LINE bytes each, and gives the
 * bytes that follow the last line back to the stream (unshift) for the binary protocol.
 */
class LineReader {
  private buf = Buffer.alloc(0);
  private ended = false;
  private failure: Error | null = null;
  private wake: (() => void) | null = null;
  private readonly onReadable = () => this.pull();
  private readonly onEnd = () => {
    this.ended = true;
    this.wake?.();
  };
  private readonly onError = (e: Error) => {
    this.failure = e;
    this.wake?.();
  };

  constructor(
    private readonly input: Readable,
    private readonly timeoutSec: number,
  ) {
    input.on("readable", this.onReadable);
    input.on("end", this.onEnd);
    input.on("error", this.onError);
  }

  private pull(): void {
    let chunk: Buffer | null;
    while ((chunk = this.input.read() as Buffer | null) !== null) this.buf = Buffer.concat([this.buf, chunk]);
    this.wake?.();
  }

  /** The next line without its '\n' (io.c read_line_old); null at the end of the stream. */
  async readLine(): Promise<string | null> {
    for (;;) {
      const nl = this.buf.indexOf(0x0a);
      if (nl >= 0 && nl < MAX_DAEMON_LINE) {
        const line = this.buf.subarray(0, nl);
        this.buf = this.buf.subarray(nl + 1);
        const text = decodeDaemonLine(line);
        if (text === null) throw new DaemonError("the daemon sent a NUL byte in a text line");
        return text;
      }
      if (nl >= MAX_DAEMON_LINE || (nl < 0 && this.buf.length >= MAX_DAEMON_LINE)) {
        throw new DaemonError(`the daemon sent a line longer than ${MAX_DAEMON_LINE} bytes`);
      }
      if (this.failure) throw new DaemonError(`error reading from the daemon: ${this.failure.message}`, RERR_SOCKETIO);
      if (this.ended) return null;
      await this.waitForData();
    }
  }

  private waitForData(): Promise<void> {
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      if (this.timeoutSec > 0) {
        timer = setTimeout(() => {
          this.wake = null;
          reject(new DaemonError(`io timeout after ${this.timeoutSec} seconds -- exiting`, RERR_TIMEOUT));
        }, this.timeoutSec * 1000);
      }
      this.wake = () => {
        if (timer) clearTimeout(timer);
        this.wake = null;
        resolve();
      };
    });
  }

  /** Stop reading lines: what was read past them goes back to the stream. */
  release(): void {
    this.input.off("readable", this.onReadable);
    this.input.off("end", this.onEnd);
    this.input.off("error", this.onError);
    if (this.buf.length > 0) this.input.unshift(this.buf);
    this.buf = Buffer.alloc(0);
  }
}

export interface InbandSpec {
  /** The protocol krsync announces (--protocol or its newest). */
  protocol: number;
  /** The module asked for; "" asks for the module list. */
  module: string;
  /** USER@ from the location, else $USER, else $LOGNAME ("nobody" when none). */
  user: string;
  /** The password, asked for only when the module wants one (authenticate.c auth_client). */
  password: () => string;
  /** The server args for the protocol agreed (options.c server_options, ".", the paths). */
  serverArgs: (protocol: number) => string[];
  /** A MOTD or module-list line, as the daemon sent it. */
  motd: (line: string) => void;
  /** --timeout: the longest wait for a line (0 = none). */
  timeoutSec: number;
}

/** "ok": the daemon runs the transfer at `protocol`; "exit": it listed its modules and ended. */
export type InbandResult = { kind: "ok"; protocol: number } | { kind: "exit" };

/** clientserver.c start_inband_exchange: greeting, module, auth, MOTD, then the server args. */
export async function startInbandExchange(input: Readable, output: Writable, spec: InbandSpec): Promise<InbandResult> {
  const lines = new LineReader(input, spec.timeoutSec);
  let released = false;
  try {
    output.write(daemonGreeting(spec.protocol));
    const first = await lines.readLine();
    if (first === null) throw new DaemonError("did not see server greeting");
    const greeting = parseDaemonGreeting(first);
    const protocol = agreeDaemonProtocol(spec.protocol, greeting.protocol, greeting.sub);
    output.write(moduleRequest(spec.module));
    let motdLines = 0;
    let authed = false;
    for (;;) {
      const line = await lines.readLine();
      if (line === null) throw new DaemonError("didn't get server startup line");
      const what = classifyDaemonLine(line);
      switch (what.kind) {
        case "authreqd": {
          // One challenge per connection: a daemon asking again is not answered.
          if (authed) throw new DaemonError("the daemon asked for a password twice");
          authed = true;
          const digest = chooseAuthDigest(greeting.digests, protocol);
          const hash = await authDigest(digest, authHashInput(spec.password(), what.challenge));
          output.write(authResponse(spec.user, hash));
          break;
        }
        case "ok": {
          lines.release();
          released = true;
          output.write(encodeDaemonArgs(spec.serverArgs(protocol), protocol));
          return { kind: "ok", protocol };
        }
        case "exit":
          return { kind: "exit" };
        case "error":
          throw new DaemonError(what.text, undefined, true);
        case "motd":
          if (++motdLines > MAX_MOTD_LINES) throw new DaemonError(`the daemon sent more than ${MAX_MOTD_LINES} MOTD lines`);
          spec.motd(what.text);
          break;
      }
    }
  } finally {
    if (!released) lines.release();
  }
}

/**
 * authenticate.c getpassf for --password-file: "-" is stdin; a file must not be accessible
 * to others (nor, when running as root, owned by anyone else); its first line is the password.
 */
export function readPasswordFile(file: string): string {
  let content: Buffer;
  if (file === "-") {
    content = Buffer.alloc(511);
    let n = 0;
    try {
      n = readSync(0, content, 0, 511, null);
    } catch {
      n = 0;
    }
    content = content.subarray(0, n);
  } else {
    let fd: number;
    try {
      // rsync refuses a symlink not owned by root or us (a planted link would leak its target
      // to the daemon); krsync refuses every symlink here.
      fd = openSync(file, fsc.O_RDONLY | fsc.O_NOFOLLOW);
    } catch (e) {
      throw new DaemonError(`could not open password file ${file}: ${strerror(e)}`, RERR_SYNTAX);
    }
    try {
      const st = fstatSync(fd);
      if ((st.mode & 0o06) !== 0) throw new DaemonError("ERROR: password file must not be other-accessible", RERR_SYNTAX, true);
      if (process.getuid?.() === 0 && st.uid !== 0) {
        throw new DaemonError("ERROR: password file must be owned by root when running as root", RERR_SYNTAX, true);
      }
      content = Buffer.alloc(511);
      content = content.subarray(0, readSync(fd, content, 0, 511, null));
    } finally {
      closeSync(fd);
    }
  }
  const pass = passwordFromFile(content);
  if (pass === undefined) throw new DaemonError(`ERROR: failed to read a password from ${file}`, RERR_SYNTAX, true);
  return pass;
}
