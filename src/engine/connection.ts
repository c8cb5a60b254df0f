// One connection to a peer rsync over a byte stream: raw bytes during set-up, then the
// multiplexed stream (io.c io_start_multiplex_in/out). Reads decode records from an
// InputQueue; writes are coalesced and framed, respecting the stream's backpressure.
import type { Readable, Writable } from "node:stream";
import { InputQueue } from "../protocol/input.js";
import { encodeFrameHeader, MAX_FRAME, MsgCode, MuxDecoder } from "../protocol/mux.js";
import { Cursor, ProtocolError, Writer } from "../protocol/wire.js";

export interface ByteStream {
  input: Readable;
  output: Writable;
}

const OUT_CHUNK = 32 * 1024;

export class Connection {
  /** Protocol stream from the peer (DATA payloads once multiplexed). */
  readonly in: InputQueue;
  private raw: InputQueue;
  private demux: MuxDecoder | null = null;
  private muxOut = false;
  private pending: Uint8Array[] = [];
  private pendingLen = 0;
  private closed = false;
  private writeError: Error | null = null;
  /** Bytes read from / written to the stream (rsync's total_read / total_written). */
  bytesIn = 0;
  bytesOut = 0;
  lastActivity = Date.now();
  private messageHandler: (code: MsgCode, payload: Uint8Array) => void = () => {};
  /** The code of the peer's MSG_ERROR_EXIT, if one came. */
  peerExit: number | undefined;
  readonly scratch = new Writer(64 * 1024);

  constructor(private readonly stream: ByteStream) {
    const flow = {
      pause: () => stream.input.pause(),
      resume: () => stream.input.resume(),
    };
    this.raw = new InputQueue(flow);
    this.in = this.raw;
    stream.input.on("data", (chunk: Buffer) => {
      this.bytesIn += chunk.length;
      this.lastActivity = Date.now();
      if (this.demux) {
        try {
          this.demux.push(chunk);
        } catch (e) {
          this.fail(e as Error);
        }
      } else {
        this.raw.push(chunk);
      }
    });
    stream.input.on("end", () => this.inputEnded());
    stream.input.on("close", () => this.inputEnded());
    stream.input.on("error", (e) => this.fail(e));
    stream.output.on("error", (e) => {
      this.writeError = e;
    });
  }

  onMessage(handler: (code: MsgCode, payload: Uint8Array) => void): void {
    this.messageHandler = handler;
  }

  private inputEnded(): void {
    this.in.finish();
  }

  /** End every pending read with this error (abort, timeout, a bad frame). */
  fail(e: Error): void {
    this.in.finish(e);
  }

  /** Switch the incoming stream to multiplexed frames; bytes already buffered are re-parsed. */
  startMultiplexIn(): void {
    const data = new InputQueue({
      pause: () => this.stream.input.pause(),
      resume: () => this.stream.input.resume(),
    });
    const demux = new MuxDecoder({
      data: (piece) => data.push(piece),
      message: (code, payload) => {
        // The peer's own exit code, kept for a stream that then breaks (a daemon's socket reset).
        if (code === MsgCode.ERROR_EXIT && payload.length === 4) this.peerExit = Buffer.from(payload).readInt32LE(0);
        this.messageHandler(code, payload);
      },
    });
    const leftover = this.raw.tryRead((c: Cursor) => c.bytes(c.remaining));
    this.demux = demux;
    (this as { in: InputQueue }).in = data;
    if (leftover && leftover.length) demux.push(leftover);
  }

  startMultiplexOut(): void {
    this.muxOut = true;
  }

  /** Queue protocol bytes (copied). */
  write(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.pending.push(bytes.slice());
    this.pendingLen += bytes.length;
  }

  /** Queue what the scratch writer holds. */
  writeScratch(): void {
    const w = this.scratch;
    if (w.len === 0) return;
    this.pending.push(w.buf.slice(0, w.len));
    this.pendingLen += w.len;
    w.len = 0;
  }

  /** Send a message frame (multiplexed output only). */
  async sendMessage(code: MsgCode, payload: Uint8Array): Promise<void> {
    await this.flush();
    if (!this.muxOut) return;
    const frame = new Uint8Array(4 + payload.length);
    encodeFrameHeader(code, payload.length, frame);
    frame.set(payload, 4);
    await this.put(frame);
  }

  /** Write out if enough is queued to be worth a frame. */
  async maybeFlush(): Promise<void> {
    if (this.pendingLen >= OUT_CHUNK) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.pendingLen === 0) return;
    const all = this.pending.length === 1 ? this.pending[0]! : concat(this.pending, this.pendingLen);
    this.pending = [];
    this.pendingLen = 0;
    if (!this.muxOut) {
      await this.put(all);
      return;
    }
    for (let off = 0; off < all.length; off += MAX_FRAME) {
      const piece = all.subarray(off, Math.min(all.length, off + MAX_FRAME));
      const frame = new Uint8Array(4 + piece.length);
      encodeFrameHeader(MsgCode.DATA, piece.length, frame);
      frame.set(piece, 4);
      await this.put(frame);
    }
  }

  private put(frame: Uint8Array): Promise<void> {
    if (this.writeError) return Promise.reject(this.closedError());
    if (this.closed) return Promise.resolve();
    this.bytesOut += frame.length;
    this.lastActivity = Date.now();
    const out = this.stream.output;
    if (out.destroyed || out.writableEnded) {
      return Promise.reject(this.closedError());
    }
    if (out.write(frame)) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const onDrain = () => {
        cleanup();
        resolve();
      };
      const onErr = (e: Error) => {
        cleanup();
        reject(this.closedError());
      };
      const onClose = () => {
        cleanup();
        resolve();
      };
      const cleanup = () => {
        out.off("drain", onDrain);
        out.off("error", onErr);
        out.off("close", onClose);
      };
      out.on("drain", onDrain);
      out.on("error", onErr);
      out.on("close", onClose);
    });
  }

  private closedError(): ProtocolError {
    return new ProtocolError(`connection unexpectedly closed (${this.bytesIn} bytes received so far)`, 12);
  }

  /** Flush and end our half of the stream. */
  async end(): Promise<void> {
    await this.flush();
    if (this.closed) return;
    this.closed = true;
    this.stream.output.end();
  }
}

function concat(parts: Uint8Array[], len: number): Uint8Array {
  const out = new Uint8Array(len);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
