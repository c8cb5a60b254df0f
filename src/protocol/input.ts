// The receiving end of a protocol byte stream: bytes are pushed in as they arrive and records
// are decoded from them with restartable decoders (see wire.ts Cursor). Holds no more than a
// bounded amount; the feeder is asked to pause above the high-water mark.
import { Cursor, NeedMore, ProtocolError } from "./wire.js";

export interface FlowControl {
  pause(): void;
  resume(): void;
}

export class InputQueue {
  private buf: Uint8Array = new Uint8Array(0);
  private start = 0;
  private end = 0;
  private waiter: (() => void) | null = null;
  private ended = false;
  private failure: Error | null = null;
  private paused = false;
  private cursor = new Cursor(this.buf);
  /** Total bytes consumed by decoders so far. */
  consumed = 0;

  constructor(
    private readonly flow?: FlowControl,
    private readonly highWater = 1 << 20,
    private readonly eofMessage = "connection unexpectedly closed",
  ) {}

  get buffered(): number {
    return this.end - this.start;
  }

  /** Append bytes; the queue keeps a reference, so the caller must not modify them later. */
  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    if (this.start === this.end) {
      // Nothing pending: adopt the chunk itself (callers hand over buffers they do not reuse).
      this.buf = chunk;
      this.start = 0;
      this.end = chunk.length;
    } else {
      const pending = this.end - this.start;
      if (this.end + chunk.length > this.buf.length) {
        const cap = Math.max(pending + chunk.length, pending * 2, 64 * 1024);
        const nb = new Uint8Array(cap);
        nb.set(this.buf.subarray(this.start, this.end));
        this.buf = nb;
        this.start = 0;
        this.end = pending;
      }
      this.buf.set(chunk, this.end);
      this.end += chunk.length;
    }
    if (!this.paused && this.flow && this.end - this.start > this.highWater) {
      this.paused = true;
      this.flow.pause();
    }
    this.wake();
  }

  /** The stream ended (err: it failed). Pending decodes fail once the bytes run out. */
  finish(err?: Error): void {
    this.ended = true;
    if (err && !this.failure) this.failure = err;
    this.wake();
  }

  private wake(): void {
    const w = this.waiter;
    if (w) {
      this.waiter = null;
      w();
    }
  }

  private cursorNow(): Cursor {
    const c = this.cursor;
    if (c.buf !== this.buf) this.cursor = new Cursor(this.buf, this.start, this.end);
    else {
      c.pos = this.start;
      c.end = this.end;
    }
    return this.cursor;
  }

  private consumedTo(pos: number): void {
    this.consumed += pos - this.start;
    this.start = pos;
    if (this.paused && this.end - this.start < this.highWater / 2) {
      this.paused = false;
      this.flow?.resume();
    }
  }

  /** Decode one record if the bytes for it are here; undefined otherwise. */
  tryRead<T>(decode: (c: Cursor) => T): T | undefined {
    const c = this.cursorNow();
    try {
      const v = decode(c);
      this.consumedTo(c.pos);
      return v;
    } catch (e) {
      if (e instanceof NeedMore) return undefined;
      throw e;
    }
  }

  async read<T>(decode: (c: Cursor) => T): Promise<T> {
    for (;;) {
      const v = this.tryRead(decode);
      if (v !== undefined) return v;
      await this.more();
    }
  }

  /** Up to `max` bytes (at least 1), as a copy. */
  async readSome(max: number): Promise<Uint8Array> {
    while (this.start === this.end) await this.more();
    const n = Math.min(max, this.end - this.start);
    const out = this.buf.slice(this.start, this.start + n);
    this.consumedTo(this.start + n);
    return out;
  }

  /** Exactly n bytes (n must be bounded by the caller), as a copy. */
  async readBytes(n: number): Promise<Uint8Array> {
    while (this.end - this.start < n) await this.more();
    const out = this.buf.slice(this.start, this.start + n);
    this.consumedTo(this.start + n);
    return out;
  }

  private more(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.ended) return Promise.reject(new ProtocolError(`${this.eofMessage} (${this.consumed} bytes received so far)`));
    return new Promise<void>((resolve) => {
      this.waiter = resolve;
    });
  }
}
