import * as net from 'node:net';
import { once } from 'node:events';
import { MessageTooLargeError, TensorCodecError, WireError } from './errors';
import { StreamClosedError } from './stream-io';
import {
  DEFAULT_MAX_TENSOR_BYTES,
  HOST_IS_LITTLE_ENDIAN,
  WireTensor,
  WireTensorSpec,
  WireTypedArray,
  assertFinite,
  byteSwapInPlace,
  elementBytes,
  elementCount,
} from './tensor-codec';
import {
  DEFAULT_MAX_FRAME_HEADER_BYTES,
  FRAME_PREFIX_BYTES,
  FrameHeader,
  FrameMeta,
  encodeFrameHeader,
  parseFrameHeader,
  parseFramePrefix,
} from './tensor-channel-frame';

/**
 * A data plane beside gRPC (a prototype, not wired into coordinator or worker): sets of named tensors
 * as length-prefixed frames over one TCP connection. The sender writes each tensor straight from its
 * typed array's memory; the receiver copies socket bytes once, into arrays it chose in advance. grpc-js
 * spends most of an exchange on HTTP/2 framing, per-chunk messages and the garbage they leave.
 */
export interface TensorChannelOptions {
  /** Refuse (and close on) a frame whose tensors add up to more bytes. @default DEFAULT_MAX_TENSOR_BYTES */
  maxTotalBytes?: number;
  /** Refuse a JSON frame header longer than this. @default DEFAULT_MAX_FRAME_HEADER_BYTES */
  maxHeaderBytes?: number;
  /** Refuse float32 tensors holding NaN or ±Infinity. @default true */
  checkFinite?: boolean;
}

/** What one `receive` expects. */
export interface ReceiveOptions {
  /** The tensors the frame must hold, exactly (names, dtypes, shapes). Undefined accepts any. */
  expected?: readonly WireTensorSpec[];
  /**
   * Memory to read a tensor into (e.g. the same buffers every step); its contents are overwritten even
   * if the frame then fails. Undefined, or returning undefined, allocates.
   */
  into?: (spec: WireTensorSpec) => WireTypedArray | undefined;
  /** Give up (and close the channel) when no whole frame arrived within this. @default no deadline */
  timeoutMs?: number;
}

/** One received frame. */
export interface ReceivedFrame {
  readonly meta: FrameMeta;
  /** The tensors in frame order. */
  readonly tensors: Map<string, WireTensor>;
}

interface PendingReceive {
  options: ReceiveOptions;
  resolve: (frame: ReceivedFrame) => void;
  reject: (err: unknown) => void;
  timer?: NodeJS.Timeout;
}

/** Where the reader is in the current frame; `filled` counts the bytes of the current region read so far. */
type ReadState =
  | { phase: 'prefix' }
  | { phase: 'header'; bytes: Buffer }
  | { phase: 'payload'; header: FrameHeader; targets: WireTypedArray[]; views: Uint8Array[]; index: number };

/**
 * Routes the reads of a socket opened with `onread` (plain `net.connect` or `tls.connect`, whose TLSSocket
 * decrypts straight into the buffer it is given) to the TensorChannel built on it, which exists only once
 * the socket is connected: pass `onread` to the connect call, then the bridge to the channel's constructor.
 */
export class ChannelReadBridge {
  /** The channel reads go to, once built. */
  channel?: TensorChannel;
  /** Bytes read before the channel existed. */
  readonly early: Buffer[] = [];
  /** The `onread` option of `net.connect` / `tls.connect`: each read lands where the channel's current frame needs it. */
  readonly onread = {
    buffer: (): Uint8Array => this.channel?.nextReadBuffer() ?? Buffer.allocUnsafe(EARLY_READ_BYTES),
    callback: (n: number, buf: Uint8Array): boolean => {
      if (this.channel) return this.channel.onRead(n, buf);
      this.early.push(Buffer.from(buf.subarray(0, n)));
      return false;
    },
  };
}

/** Where a read lands before its channel exists (a peer that talks first); copied out at once. */
const EARLY_READ_BYTES = 64 * 1024;

/**
 * One end of a tensor connection. `send` and `receive` may each be called again once the previous call
 * settled; any protocol or validation error closes the channel, and every later call rethrows it.
 */
export class TensorChannel {
  private readonly maxTotalBytes: number;
  private readonly maxHeaderBytes: number;
  private readonly checkFinite: boolean;
  /** Bytes of 'data' events not yet consumed (frames queued before the matching receive). */
  private readonly queued: Buffer[] = [];
  private readonly prefix = Buffer.alloc(FRAME_PREFIX_BYTES);
  private state: ReadState = { phase: 'prefix' };
  private filled = 0;
  /** The region last handed to the kernel for an `onread` read; a read into anything else is copied. */
  private handedOut?: Uint8Array;
  private pending?: PendingReceive;
  private failure?: Error;

  /**
   * Wraps a connected socket. A socket opened with a ChannelReadBridge's `onread` (as `connectTensorChannel`
   * does) reads straight into the tensors; any other (e.g. one a server accepted) delivers 'data' events
   * that are copied once.
   */
  constructor(private readonly socket: net.Socket, options: TensorChannelOptions = {}, bridge?: ChannelReadBridge) {
    this.maxTotalBytes = options.maxTotalBytes ?? DEFAULT_MAX_TENSOR_BYTES;
    this.maxHeaderBytes = options.maxHeaderBytes ?? DEFAULT_MAX_FRAME_HEADER_BYTES;
    this.checkFinite = options.checkFinite ?? true;
    socket.setNoDelay(true);
    socket.pause();
    if (bridge) {
      bridge.channel = this;
      this.queued.push(...bridge.early.splice(0));
    } else {
      socket.on('data', (chunk: Buffer) => {
        this.queued.push(chunk);
        this.pump();
      });
    }
    socket.on('error', (err) => this.fail(new StreamClosedError(`tensor channel: connection failed: ${err.message}`, { cause: err })));
    socket.on('close', () => this.fail(new StreamClosedError(`tensor channel: the peer closed the connection${this.where()}`)));
  }

  /** The peer's address, for messages. */
  get remote(): string {
    return `${this.socket.remoteAddress ?? '?'}:${this.socket.remotePort ?? '?'}`;
  }

  /**
   * Sends `tensors` as one frame. Their memory is written as it is (no copy on little-endian hosts), so
   * it must not change until the returned promise resolves, which is once the socket has written them (so a
   * sender never runs ahead of a full socket). Throws MessageTooLargeError over `maxTotalBytes`, StreamClosedError once closed.
   */
  async send(tensors: readonly WireTensor[], meta: FrameMeta = {}): Promise<void> {
    if (this.failure) throw this.failure;
    const header = encodeFrameHeader(tensors, meta);
    let total = 0;
    for (const t of tensors) {
      total += t.data.byteLength;
      if (total > this.maxTotalBytes) throw new MessageTooLargeError(`the frame's tensors up to and including '${t.name}'`, total, this.maxTotalBytes);
    }
    const parts: Uint8Array[] = [header];
    for (const t of tensors) {
      let bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
      if (!HOST_IS_LITTLE_ENDIAN) {
        bytes = Uint8Array.from(bytes);
        byteSwapInPlace(bytes, elementBytes(t.dtype));
      }
      if (bytes.length > 0) parts.push(bytes);
    }
    // Corked, the header and the payload leave in one writev: with 64 allreduce members a step sends
    // thousands of small frames, and a syscall per part was the data plane's largest cost (the soak).
    // The last write's callback runs once libuv has handed every byte to the kernel: only then may the
    // caller reuse the tensors' memory. Waiting for it is also the backpressure: nothing is copied.
    await new Promise<void>((resolve, reject) => {
      this.socket.cork();
      for (let i = 0; i < parts.length - 1; i++) this.socket.write(parts[i]);
      this.socket.write(parts[parts.length - 1], (err) => (err ? reject(this.fail(new StreamClosedError(`tensor channel: write failed: ${err.message}`, { cause: err }))) : resolve()));
      this.socket.uncork();
    });
  }

  /**
   * Receives the next frame. Validates its header before reading the payload (manifest, total size),
   * then float32 values as each tensor completes; on any error closes the channel and throws
   * TensorCodecError / NonFiniteValueError / MessageTooLargeError naming the tensor, or
   * StreamClosedError when the peer closed (mid-frame or not) or the deadline passed.
   */
  receive(options: ReceiveOptions = {}): Promise<ReceivedFrame> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.pending) return Promise.reject(new WireError('tensor channel: receive called while another receive is waiting'));
    return new Promise<ReceivedFrame>((resolve, reject) => {
      const p: PendingReceive = { options, resolve, reject };
      if (options.timeoutMs !== undefined) {
        p.timer = setTimeout(() => this.fail(new StreamClosedError(`tensor channel: no whole frame from ${this.remote} within ${options.timeoutMs} ms${this.where()}`)), options.timeoutMs);
      }
      this.pending = p;
      this.pump();
      if (this.pending === p) this.socket.resume();
    });
  }

  /**
   * Where the next read should land: exactly the rest of the current region (prefix, header, or the
   * current tensor's memory), so an `onread` read never crosses into the next frame and needs no copy.
   */
  nextReadBuffer(): Uint8Array {
    this.handedOut = this.region().subarray(this.filled);
    return this.handedOut;
  }

  /** An `onread` read of `n` bytes into `buf`; false pauses the socket (no receive is waiting). */
  onRead(n: number, buf: Uint8Array): boolean {
    try {
      if (buf === this.handedOut && this.pending) this.advance(n);
      else {
        this.queued.push(Buffer.from(buf.subarray(0, n)));
        this.pump();
      }
    } catch (err) {
      this.fail(err instanceof Error ? err : new WireError(String(err)));
    }
    return this.pending !== undefined;
  }

  private region(): Uint8Array {
    const s = this.state;
    return s.phase === 'prefix' ? this.prefix : s.phase === 'header' ? s.bytes : s.views[s.index];
  }

  /** Copies queued 'data' bytes into the current regions while a receive is waiting. */
  private pump(): void {
    try {
      while (this.pending && this.queued.length > 0) {
        const head = this.queued[0];
        const target = this.region().subarray(this.filled);
        const n = Math.min(head.length, target.length);
        // The one copy: from the socket's buffer into the tensor's memory.
        target.set(n === head.length ? head : head.subarray(0, n));
        if (n === head.length) this.queued.shift();
        else this.queued[0] = head.subarray(n);
        this.advance(n);
      }
    } catch (err) {
      this.fail(err instanceof Error ? err : new WireError(String(err)));
    }
    if (!this.pending && !this.socket.isPaused()) this.socket.pause();
  }

  /** Counts `n` more bytes of the current region, then moves on past every region that is full. */
  private advance(n: number): void {
    this.handedOut = undefined;
    this.filled += n;
    for (;;) {
      const s = this.state;
      if (this.filled < this.region().length) return;
      this.filled = 0;
      if (s.phase === 'prefix') {
        this.state = { phase: 'header', bytes: Buffer.allocUnsafe(parseFramePrefix(this.prefix, this.maxHeaderBytes)) };
      } else if (s.phase === 'header') {
        const p = this.pending as PendingReceive;
        const expected = p.options.expected ? new Map(p.options.expected.map((e) => [e.name, e])) : undefined;
        const header = parseFrameHeader(s.bytes, { expected, maxTotalBytes: this.maxTotalBytes });
        const targets = header.tensors.map((spec) => this.destination(spec, p.options.into));
        // Views made from `.buffer`, so they are off the V8 heap and a read may land in them directly.
        const views = targets.map((t) => new Uint8Array(t.buffer, t.byteOffset, t.byteLength));
        this.state = { phase: 'payload', header, targets, views, index: 0 };
        if (views.length === 0) return this.complete(this.state);
      } else {
        this.finishTensor(s, s.index);
        if (++s.index === s.views.length) return this.complete(s);
      }
    }
  }

  private complete(s: Extract<ReadState, { phase: 'payload' }>): void {
    const p = this.pending as PendingReceive;
    this.state = { phase: 'prefix' };
    this.pending = undefined;
    if (p.timer) clearTimeout(p.timer);
    const tensors = new Map<string, WireTensor>();
    s.header.tensors.forEach((e, i) => tensors.set(e.name, { name: e.name, dtype: e.dtype, shape: e.shape, data: s.targets[i] }));
    p.resolve({ meta: s.header.meta, tensors });
  }

  private finishTensor(s: Extract<ReadState, { phase: 'payload' }>, i: number): void {
    const e = s.header.tensors[i];
    if (!HOST_IS_LITTLE_ENDIAN) byteSwapInPlace(s.views[i], elementBytes(e.dtype));
    if (this.checkFinite && e.dtype === 'float32') assertFinite(e.name, s.targets[i] as Float32Array);
  }

  private destination(spec: WireTensorSpec, into: ReceiveOptions['into']): WireTypedArray {
    const n = elementCount(spec.shape);
    const given = into?.(spec);
    const Ctor = spec.dtype === 'float32' ? Float32Array : spec.dtype === 'int32' ? Int32Array : Uint8Array;
    if (!given) return new Ctor(n);
    if (!(given instanceof Ctor) || given.length !== n) {
      throw new TensorCodecError(spec.name, `tensor '${spec.name}': the buffer to read into must be a ${spec.dtype} array of ` +
        `${n} elements, got ${given.constructor.name} of ${given.length}`);
    }
    return given;
  }

  /** Where in a frame the reader stopped, for close messages. */
  private where(): string {
    const s = this.state;
    if (s.phase === 'prefix') return this.filled > 0 ? ` mid-frame (${this.filled} of ${FRAME_PREFIX_BYTES} prefix bytes)` : '';
    if (s.phase === 'header') return ` mid-frame (${this.filled} of ${s.bytes.length} header bytes)`;
    const e = s.header.tensors[s.index];
    return e ? ` mid-frame (${this.filled} of ${e.byteLength} bytes of tensor '${e.name}')` : '';
  }

  /** Closes the connection; a waiting receive fails with StreamClosedError. */
  async close(): Promise<void> {
    this.fail(new StreamClosedError('tensor channel: closed by this side'));
    if (!this.socket.closed) await once(this.socket, 'close');
  }

  /** Records the first failure, closes the socket, rejects a waiting receive; returns the failure. */
  private fail(err: Error): Error {
    if (!this.failure) {
      this.failure = err;
      this.socket.destroy();
    }
    const p = this.pending;
    if (p) {
      this.pending = undefined;
      if (p.timer) clearTimeout(p.timer);
      p.reject(this.failure);
    }
    return this.failure;
  }

}

/** Opens a channel to a `TensorChannelServer` at `host:port`. */
export async function connectTensorChannel(host: string, port: number, options: TensorChannelOptions = {}): Promise<TensorChannel> {
  const bridge = new ChannelReadBridge();
  const socket = net.connect({ host, port, noDelay: true, onread: bridge.onread });
  try {
    await once(socket, 'connect');
  } catch (err) {
    socket.destroy();
    throw new StreamClosedError(`tensor channel: cannot connect to ${host}:${port}: ${(err as Error).message}`, { cause: err });
  }
  return new TensorChannel(socket, options, bridge);
}

/** A listening socket that hands out one TensorChannel per accepted connection. */
export interface TensorChannelServer {
  readonly host: string;
  readonly port: number;
  /** Accepted channels whose socket is still open. */
  readonly openChannels: number;
  /** The next accepted connection (in arrival order); rejects with StreamClosedError once closed. */
  accept(): Promise<TensorChannel>;
  /** Stops listening and closes every channel it accepted. */
  close(): Promise<void>;
}

/** Listens on `host:port` (port 0 picks a free one). */
export async function startTensorChannelServer(
  host = '127.0.0.1',
  port = 0,
  options: TensorChannelOptions = {},
): Promise<TensorChannelServer> {
  const ready: TensorChannel[] = [];
  const waiting: Array<{ resolve: (c: TensorChannel) => void; reject: (err: Error) => void }> = [];
  let closed = false;
  const all = new Set<TensorChannel>();
  const server = net.createServer({ noDelay: true }, (socket) => {
    const ch = new TensorChannel(socket, options);
    all.add(ch);
    // Forget a channel once its socket is gone, so a long-lived server does not keep every one it ever had.
    socket.once('close', () => {
      all.delete(ch);
      const i = ready.indexOf(ch);
      if (i >= 0) ready.splice(i, 1);
    });
    const w = waiting.shift();
    if (w) w.resolve(ch);
    else ready.push(ch);
  });
  server.listen(port, host);
  await once(server, 'listening');
  const address = server.address() as net.AddressInfo;
  return {
    host,
    port: address.port,
    get openChannels() {
      return all.size;
    },
    accept: () => {
      const ch = ready.shift();
      if (ch) return Promise.resolve(ch);
      if (closed) return Promise.reject(new StreamClosedError('tensor channel server: closed, accepting no more connections'));
      return new Promise<TensorChannel>((resolve, reject) => waiting.push({ resolve, reject }));
    },
    close: async () => {
      closed = true;
      for (const w of waiting.splice(0)) w.reject(new StreamClosedError('tensor channel server: closed while waiting for a connection'));
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      await Promise.all([...all].map((c) => c.close()));
      await stopped;
    },
  };
}
