// A transport over a spawned local process (ssh, a remote-shell stand-in, kubectl exec): the
// child's stdin/stdout carry the protocol; its stderr is passed through to ours, as rsync does.
import { spawn, type ChildProcess } from "node:child_process";
import type { Transport, TransportExit } from "./transport.js";

export interface SpawnOptions {
  /** Where the child's stderr goes: "inherit" (default), or a callback per chunk. */
  stderr?: "inherit" | ((chunk: Buffer) => void);
  env?: NodeJS.ProcessEnv;
}

export class SpawnedTransport implements Transport {
  readonly input;
  readonly output;
  private readonly child: ChildProcess;
  private readonly exit: Promise<TransportExit>;
  private spawnError: Error | null = null;
  private stderrTail = "";
  private killed = false;
  private resolveExit: (e: TransportExit) => void = () => {};

  constructor(
    readonly argv: readonly string[],
    opts: SpawnOptions = {},
  ) {
    const [cmd, ...args] = argv;
    if (!cmd) throw new Error("empty remote command");
    const child = spawn(cmd, args, {
      stdio: ["pipe", "pipe", opts.stderr === "inherit" || opts.stderr === undefined ? "inherit" : "pipe"],
      env: opts.env ?? process.env,
      windowsHide: true,
    });
    this.child = child;
    this.input = child.stdout!;
    this.output = child.stdin!;
    if (typeof opts.stderr === "function" && child.stderr) {
      const cb = opts.stderr;
      child.stderr.on("data", (d: Buffer) => {
        this.stderrTail = (this.stderrTail + d.toString()).slice(-2000);
        cb(d);
      });
    }
    // EPIPE on the child's stdin shows up as the peer's exit; keep it from being unhandled.
    child.stdin!.on("error", () => {});
    this.exit = new Promise((resolve) => {
      this.resolveExit = resolve;
      child.on("error", (e) => {
        this.spawnError = e;
        resolve({ code: 127, signal: null });
      });
      child.on("close", (code, signal) => resolve({ code, signal }));
      // Once we have let go of the pipes, the child's own exit is the end ("close" would wait
      // for every process that still holds them).
      child.on("exit", (code, signal) => {
        if (this.killed) resolve({ code, signal });
      });
    });
  }

  describeFailure(): string {
    if (this.spawnError) return `failed to exec ${this.argv[0]}: ${this.spawnError.message}`;
    return this.stderrTail.trim();
  }

  exited(): Promise<TransportExit> {
    return this.exit;
  }

  kill(): void {
    // A process behind the remote shell may still hold the pipes: let go of them too.
    this.killed = true;
    this.child.stdin?.destroy();
    this.child.stdout?.destroy();
    this.child.stderr?.destroy();
    if (this.child.exitCode !== null || this.child.signalCode !== null) {
      this.resolveExit({ code: this.child.exitCode, signal: this.child.signalCode });
    } else {
      this.child.kill("SIGTERM");
      const t = setTimeout(() => {
        if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGKILL");
      }, 2000);
      t.unref();
    }
  }
}
