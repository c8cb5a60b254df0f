// Source files handed from the sender to the receiver of one in-process local copy. When both
// roles run in this process, a whole-file transfer need not push the file's bytes through the
// token stream: the sender still answers the request on the wire (echoed index, item flags and
// sum head, the end token, the checksum field) and hands over the descriptor it opened and
// checked; the receiver reads the bytes from it into its temp file. Only the connection that
// runLocal builds creates a SourceHandoff: over a real peer there is none.
import * as fs from "node:fs";

/** A source file the sender opened: the receiver reads `size` bytes of it, then closes it. */
export interface HandedSource {
  fd: number;
  /** The length the sender saw at its open (sender.c: what it would have sent). */
  size: number;
}

/** At most this many descriptors wait between the two roles (the sender runs ahead). */
const DEFAULT_LIMIT = 32;

export class SourceHandoff {
  private readonly handed = new Map<number, HandedSource>();
  private waiters: (() => void)[] = [];
  private closed = false;

  constructor(private readonly limit = DEFAULT_LIMIT) {}

  /** No room for another descriptor until the receiver takes one. */
  get full(): boolean {
    return this.handed.size >= this.limit;
  }

  /** Resolves when there is room again (or the handoff was closed). */
  room(): Promise<void> {
    if (!this.full || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** The sender gives `fd` for entry ndx; false when closed (the sender then streams). */
  offer(ndx: number, src: HandedSource): boolean {
    if (this.closed || this.handed.has(ndx)) return false;
    this.handed.set(ndx, src);
    return true;
  }

  /** The receiver takes what was handed for ndx, if anything; it closes the descriptor. */
  take(ndx: number): HandedSource | undefined {
    const src = this.handed.get(ndx);
    if (!src) return undefined;
    this.handed.delete(ndx);
    const w = this.waiters.shift();
    w?.();
    return src;
  }

  /** The run is over (or failed): close what was not taken and release a waiting sender. */
  close(): void {
    this.closed = true;
    for (const src of this.handed.values()) {
      try {
        fs.closeSync(src.fd);
      } catch {
        /* already closed */
      }
    }
    this.handed.clear();
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w();
  }
}
