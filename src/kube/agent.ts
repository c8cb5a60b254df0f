// Getting an rsync server running in the container, over the same exec stream that then
// carries the transfer (one exec per run, injection included). The exec runs
//   sh -c '<agent/bootstrap.sh>' krsync-agent [--rsync-path=CMD] [--tmp=DIR] --bin=ARCH:SHA:SIZE... -- SERVER-ARGS
// and the script answers with "KRSYNC-..." lines before rsync's own bytes: AGENT, then NEED
// (krsync sends that many bytes of vendor/rsync/out/rsync-ARCH on stdin), then EXEC (the
// rest of the stream is rsync's) or ERR. The binary lands content-addressed as
// DIR/.krsync-rsync-<sha256> and is found there (hash checked) on later runs.
import { createHash } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import type { Readable, Writable } from "node:stream";
import type { Transport } from "../transport/transport.js";
import { InjectError, KubeError, RERR_CMD_NOTFOUND, RERR_CMD_RUN } from "./errors.js";

export type Arch = "amd64" | "arm64";
export const ARCHES: readonly Arch[] = ["amd64", "arm64"];

export interface AgentBinary {
  arch: Arch;
  path: string;
  sha256: string;
  size: number;
}

export interface BinarySet {
  dir: string;
  bins: AgentBinary[];
  /** Why some or all binaries are unavailable (shown only if the container needs one). */
  problem?: string;
}

const BUILD_HINT = 'build them with "bash vendor/rsync/build.sh" (as root, on Debian) or point KRSYNC_RSYNC_BINARIES at a directory holding rsync-amd64, rsync-arm64 and SHA256SUMS';

/** vendor/rsync/out relative to the package root (src/kube and dist/kube alike), or KRSYNC_RSYNC_BINARIES. */
export function binaryDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.KRSYNC_RSYNC_BINARIES) return env.KRSYNC_RSYNC_BINARIES;
  return fileURLToPath(new URL("../../vendor/rsync/out/", import.meta.url));
}

/** The binaries SHA256SUMS lists and that exist (sizes from the files; hashes checked when sent). */
export function availableBinaries(dir: string = binaryDir()): BinarySet {
  const sums = join(dir, "SHA256SUMS");
  if (!existsSync(sums)) return { dir, bins: [], problem: `${sums} is missing; ${BUILD_HINT}` };
  const bins: AgentBinary[] = [];
  const missing: string[] = [];
  const listed = new Map<string, string>();
  for (const line of readFileSync(sums, "utf8").split("\n")) {
    const m = /^([0-9a-f]{64}) [ *](\S+)$/.exec(line.trim());
    if (m) listed.set(m[2]!, m[1]!);
  }
  for (const arch of ARCHES) {
    const name = `rsync-${arch}`;
    const sha = listed.get(name);
    const path = join(dir, name);
    if (!sha || !existsSync(path)) {
      missing.push(name);
      continue;
    }
    bins.push({ arch, path, sha256: sha, size: statSync(path).size });
  }
  const set: BinarySet = { dir, bins };
  if (missing.length) set.problem = `${missing.join(", ")} missing in ${dir}; ${BUILD_HINT}`;
  return set;
}

const verified = new Map<string, Buffer>();

/** The binary's bytes, refused when they do not match SHA256SUMS. */
export function loadBinary(b: AgentBinary): Buffer {
  const key = `${b.path}:${b.sha256}`;
  const cached = verified.get(key);
  if (cached) return cached;
  const data = readFileSync(b.path);
  const sha = createHash("sha256").update(data).digest("hex");
  if (sha !== b.sha256) {
    throw new KubeError(`${b.path} does not match its SHA256SUMS line (${sha} != ${b.sha256}); rebuild with "bash vendor/rsync/build.sh --force"`, RERR_CMD_RUN);
  }
  verified.set(key, data);
  return data;
}

let script: string | undefined;

/** agent/bootstrap.sh without its comment lines (it travels in the exec URL / argv). */
export function agentScript(): string {
  if (script === undefined) {
    const text = readFileSync(fileURLToPath(new URL("../../agent/bootstrap.sh", import.meta.url)), "utf8");
    script = text
      .split("\n")
      .filter((l) => !/^\s*#/.test(l) && l.trim() !== "")
      .join("\n");
  }
  return script;
}

export interface AgentArgs {
  rsyncPath?: string | undefined;
  remoteTmp?: string | undefined;
  bins: readonly AgentBinary[];
}

/** The exec argv: sh -c SCRIPT krsync-agent OPTIONS -- SERVER-ARGS. */
export function agentCommand(a: AgentArgs, serverArgs: readonly string[]): string[] {
  const argv = ["sh", "-c", agentScript(), "krsync-agent"];
  if (a.rsyncPath) argv.push(`--rsync-path=${a.rsyncPath}`);
  if (a.remoteTmp) argv.push(`--tmp=${a.remoteTmp}`);
  for (const b of a.bins) argv.push(`--bin=${b.arch}:${b.sha256}:${b.size}`);
  argv.push("--", ...serverArgs);
  return argv;
}

/** Reads lines off the start of a stream, then hands the rest back to it (unshift). */
export class PreambleReader {
  private buf: Buffer = Buffer.alloc(0);
  private ended = false;
  constructor(
    private readonly input: Readable,
    private readonly maxLine = 16 << 10,
  ) {}

  private next(): Promise<Buffer | null> {
    if (this.ended) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      const cleanup = () => {
        this.input.off("readable", tryRead);
        this.input.off("end", onEnd);
        this.input.off("close", onEnd);
        this.input.off("error", onErr);
      };
      const tryRead = () => {
        const c = this.input.read() as Buffer | null;
        if (c !== null) {
          cleanup();
          resolve(c);
        } else if (this.input.readableEnded || this.input.destroyed) onEnd();
      };
      const onEnd = () => {
        cleanup();
        this.ended = true;
        resolve(null);
      };
      const onErr = (e: Error) => {
        cleanup();
        reject(e);
      };
      this.input.on("readable", tryRead);
      this.input.on("end", onEnd);
      this.input.on("close", onEnd);
      this.input.on("error", onErr);
      tryRead();
    });
  }

  /** The next line without its "\n"; null at EOF. */
  async line(): Promise<string | null> {
    for (;;) {
      const nl = this.buf.indexOf(10);
      if (nl >= 0) {
        const line = this.buf.subarray(0, nl).toString("utf8");
        this.buf = this.buf.subarray(nl + 1);
        return line;
      }
      if (this.buf.length > this.maxLine) throw new KubeError("the container's shell printed an overlong line instead of the krsync agent's answer");
      const c = await this.next();
      if (c === null) return null;
      this.buf = this.buf.length ? Buffer.concat([this.buf, c]) : c;
    }
  }

  /** Waits for at least one byte (true) or EOF (false). */
  async peek(): Promise<boolean> {
    if (this.buf.length) return true;
    const c = await this.next();
    if (c === null) return false;
    this.buf = c;
    return true;
  }

  /** Gives the unread bytes back to the stream; the engine reads them first. */
  release(): void {
    if (this.buf.length) this.input.unshift(this.buf);
    this.buf = Buffer.alloc(0);
  }
}

async function writeAll(out: Writable, data: Buffer): Promise<void> {
  const CHUNK = 64 << 10;
  for (let off = 0; off < data.length; off += CHUNK) {
    if (out.destroyed || out.writableEnded) throw new Error("stream closed");
    if (!out.write(data.subarray(off, Math.min(data.length, off + CHUNK)))) {
      await new Promise<void>((resolve, reject) => {
        const done = (e?: Error) => {
          out.off("drain", ok);
          out.off("close", closed);
          out.off("error", done);
          if (e) reject(e);
          else resolve();
        };
        const ok = () => done();
        const closed = () => done(new Error("stream closed"));
        out.on("drain", ok);
        out.on("close", closed);
        out.on("error", done);
      });
    }
  }
}

export interface AgentOutcome {
  /** "path" (rsync in PATH), "rsync-path", "cached", "injected"; "direct" without the agent. */
  how: string;
  path: string;
  /** Binaries sent on this run (arch and sha). */
  uploads: { arch: Arch; sha256: string; bytes: number }[];
}

/** Where the agent talks: for messages. */
export interface AgentPlace {
  pod: string;
  container: string;
  namespace: string;
}

function injectMessage(kind: string, text: string, at: AgentPlace, set: BinarySet): InjectError {
  const where = `container "${at.container}" of pod "${at.pod}" (namespace "${at.namespace}") has no rsync`;
  const install = "install rsync in the image or pass --rsync-path";
  switch (kind) {
    case "arch":
      return new InjectError(`${where}, and its ${text} is not an architecture krsync has rsync for (x86_64, aarch64): ${install}`, kind, RERR_CMD_NOTFOUND);
    case "nobinary":
      return new InjectError(`${where}, and krsync has no rsync-${text} to copy in: ${set.problem ?? BUILD_HINT}`, kind, RERR_CMD_NOTFOUND);
    case "nodir": {
      const tried = text.split(" ").map((t) => t.replace("=", ": ")).join(", ");
      return new InjectError(`${where}, and no directory to copy one into (${tried}): pass --remote-tmp=DIR naming a writable directory on a filesystem that allows exec, or ${install}`, kind);
    }
    case "nospace":
      return new InjectError(`${where}, and there is no space left in ${text} for a copy: free some, pass --remote-tmp=DIR elsewhere, or ${install}`, kind);
    case "write": {
      const [dir = "", got = "?", size = "?", ...err] = text.split(" ");
      return new InjectError(
        `${where}, and writing a copy into ${dir} failed after ${got} of ${size} bytes (${err.join(" ") || "write error"}), most likely because that filesystem is full: free some space, pass --remote-tmp=DIR elsewhere, or ${install}`,
        kind,
      );
    }
    case "hash":
      return new InjectError(`${where}: the copy sent into ${text} does not match its sha256 (corrupted on the way); try again`, kind);
    case "cannotrun":
      return new InjectError(`${where}: the copy at ${text} does not run there (wrong architecture, or exec not allowed); pass --remote-tmp=DIR or ${install}`, kind);
    case "upload":
      return new InjectError(`${where}: copying rsync in failed: ${text}`, kind);
    default:
      return new InjectError(`${where}: the krsync agent failed (${kind} ${text})`, kind);
  }
}

export type AgentRun = { ok: true; outcome: AgentOutcome } | { ok: false; agentStarted: boolean };

/**
 * Talks to the agent until it execs rsync. ok:false means the stream ended first: either the
 * shell never ran (agentStarted false: likely no sh in the container) or the agent died.
 */
export async function runAgent(t: Transport, set: BinarySet, at: AgentPlace): Promise<AgentRun> {
  const r = new PreambleReader(t.input);
  const uploads: AgentOutcome["uploads"] = [];
  let sending: Promise<void> = Promise.resolve();
  let started = false;
  for (;;) {
    const line = await r.line();
    if (line === null) return { ok: false, agentStarted: started };
    if (!line.startsWith("KRSYNC-")) {
      throw new KubeError(`unexpected output from the container's shell instead of the krsync agent's answer: ${JSON.stringify(line.slice(0, 200))}`, RERR_CMD_RUN);
    }
    const [word = "", ...rest] = line.slice(7).split(" ");
    if (word === "AGENT") {
      started = true;
    } else if (word === "NEED") {
      const [arch, sha, size] = rest;
      const bin = set.bins.find((b) => b.arch === arch && b.sha256 === sha && String(b.size) === size);
      if (!bin) throw new KubeError(`the krsync agent asked for a binary krsync did not offer (${rest.join(" ")})`, RERR_CMD_RUN);
      const data = loadBinary(bin);
      uploads.push({ arch: bin.arch, sha256: bin.sha256, bytes: data.length });
      // Sent while we keep reading: an ERR line can arrive before the upload is through.
      sending = sending.then(() => writeAll(t.output, data)).catch(() => undefined);
    } else if (word === "EXEC") {
      await sending;
      r.release();
      return { ok: true, outcome: { how: rest[0] ?? "", path: rest.slice(1).join(" "), uploads } };
    } else if (word === "ERR") {
      const [kind = "", ...text] = rest;
      throw injectMessage(kind, text.join(" "), at, set);
    } else {
      throw new KubeError(`unexpected answer from the krsync agent: ${line.slice(0, 200)}`, RERR_CMD_RUN);
    }
  }
}

/** Without a shell: waits for the first byte of a directly exec'd rsync (false: it did not start). */
export async function awaitFirstByte(t: Transport): Promise<boolean> {
  const r = new PreambleReader(t.input);
  const got = await r.peek();
  r.release();
  return got;
}
