// A transport is a duplex byte stream to a peer rsync plus a way to learn how it ended and to
// stop it. Remote shells and `kubectl exec` are spawned processes; the Kubernetes API and the
// daemon bring their own.
import type { Readable, Writable } from "node:stream";

export interface TransportExit {
  code: number | null;
  signal: string | null;
}

export interface Transport {
  /** Bytes from the peer rsync. */
  readonly input: Readable;
  /** Bytes to the peer rsync. */
  readonly output: Writable;
  /** What the transport says in words when it fails (e.g. the remote shell's stderr tail). */
  describeFailure(): string;
  /** Resolves once the peer is gone. */
  exited(): Promise<TransportExit>;
  /** Stop the peer now (abort or error); idempotent. */
  kill(): void;
}
