import * as net from 'node:net';
import { once } from 'node:events';
import { DEFAULT_MAX_TENSOR_BYTES, FrameMeta, TensorChannel } from '../wire';
import { RingError } from './errors';
import { RingHello, parseHello } from './ring-hello';
import { RingRun } from './ring-run';
import { segmentLength } from './ring-segments';
import { RingReduction, RingStats } from './ring-types';

/** Where a DataPlane listens and what it accepts. */
export interface DataPlaneOptions {
  /** Listen host. @default '127.0.0.1' */
  host?: string;
  /** Listen port; 0 picks a free one. @default 0 */
  port?: number;
  /** Host put into `address` (e.g. a pod IP). @default host */
  advertiseHost?: string;
  /** Largest frame (one segment) accepted or sent. @default DEFAULT_MAX_TENSOR_BYTES */
  maxTotalBytes?: number;
}

/** A connection that must say which reduction it belongs to within this, or be closed. */
const HELLO_TIMEOUT_MS = 30_000;
/** Hold an unclaimed connection no longer than this, whatever its hello's deadline says. */
const MAX_HOLD_MS = 10 * 60_000;
/** Keys of reductions run here that a late connection is recognised by (and closed at once). */
const RECENT_KEYS = 256;

/** A connection that arrived before this member's allreduce for its key. */
interface HeldConnection {
  channel: TensorChannel;
  hello: RingHello;
  /** How many reductions had started here when it arrived. */
  epoch: number;
  timer: NodeJS.Timeout;
}

/**
 * One per process: listens for ring connections from peers and runs reductions, one at a time.
 * Each reduction opens fresh connections (one to the previous member, one accepted from the next);
 * connections that arrive before the local `allreduce` for their key are held until it starts.
 */
export class DataPlane {
  /** `advertiseHost:port`, what peers connect to. */
  readonly address: string;
  private readonly accepted = new Set<TensorChannel>();
  private readonly held = new Map<string, HeldConnection>();
  private readonly recentKeys: string[] = [];
  private active?: RingRun;
  private epoch = 0;
  private scratch = new Float32Array(0);
  private closed = false;

  private constructor(private readonly server: net.Server, advertiseHost: string, private readonly maxTotalBytes: number) {
    const port = (server.address() as net.AddressInfo).port;
    this.address = `${advertiseHost.includes(':') ? `[${advertiseHost}]` : advertiseHost}:${port}`;
    server.on('connection', (socket) => this.onConnection(socket));
  }

  /** Connections held for reductions not started here yet (for tests and metrics). */
  get heldConnections(): number {
    return this.held.size;
  }

  /** Starts listening; resolves once the port is bound. */
  static async listen(options: DataPlaneOptions = {}): Promise<DataPlane> {
    const host = options.host ?? '127.0.0.1';
    const server = net.createServer({ noDelay: true });
    server.listen(options.port ?? 0, host);
    await once(server, 'listening');
    return new DataPlane(server, options.advertiseHost ?? host, options.maxTotalBytes ?? DEFAULT_MAX_TENSOR_BYTES);
  }

  /**
   * Sums `data` element-wise over every member, IN PLACE: on success every member holds identical bytes
   * (the sum of all members' inputs). One reduction at a time per DataPlane (a second concurrent call rejects).
   * On any failure (a peer died or closed, timeout, a frame with NaN/Inf or of the wrong size) it closes this
   * reduction's channels (so the failure propagates around the ring at once, nobody waits for a timeout when a
   * peer's socket closes) and throws RingError naming the key, the phase and the peer. `data` is then garbage.
   */
  async allreduce(reduction: RingReduction, data: Float32Array): Promise<RingStats> {
    const problem = this.checkReduction(reduction);
    if (problem) throw new RingError(reduction.key, 'start', problem);
    if (reduction.members.length === 1) return { bytesSent: 0, bytesReceived: 0, ms: 0 };
    const segment = segmentLength(data.length, reduction.members.length);
    if (this.scratch.length < segment) this.scratch = new Float32Array(segment);
    const run = new RingRun(reduction, data, { maxTotalBytes: this.maxTotalBytes, scratch: this.scratch });
    this.active = run;
    this.remember(reduction.key);
    const held = this.held.get(reduction.key);
    if (held) {
      this.unhold(reduction.key, false);
      run.offerNext(held.channel, held.hello);
    }
    this.dropStaleHeld();
    this.epoch++;
    try {
      return await run.execute();
    } finally {
      this.active = undefined;
    }
  }

  /** Stops listening and closes every channel; a running reduction fails with phase 'closed'. */
  async close(): Promise<void> {
    this.closed = true;
    this.active?.fail(new RingError(this.active.key, 'closed', 'the data plane was closed'));
    for (const key of [...this.held.keys()]) this.unhold(key, true);
    const stopped = new Promise<void>((resolve) => this.server.close(() => resolve()));
    await Promise.all([...this.accepted].map((ch) => ch.close()));
    await stopped;
  }

  /** Why `reduction` cannot run here, or undefined. */
  private checkReduction(r: RingReduction): string | undefined {
    if (this.closed) return 'the data plane is closed';
    if (this.active) return `expected one reduction at a time, '${this.active.key}' is still running`;
    const world = r.members.length;
    if (world === 0) return 'expected at least one member, got none';
    if (!Number.isInteger(r.rank) || r.rank < 0 || r.rank >= world) return `expected a rank in [0, ${world - 1}], got ${r.rank}`;
    if (!(r.timeoutMs > 0)) return `expected a positive timeoutMs, got ${r.timeoutMs}`;
    const ids = new Set(r.members.map((m) => m.id));
    if (ids.size !== world) return `expected unique member ids, got ${r.members.map((m) => `'${m.id}'`).join(', ')}`;
    return undefined;
  }

  private onConnection(socket: net.Socket): void {
    const channel = new TensorChannel(socket, { maxTotalBytes: this.maxTotalBytes });
    if (this.closed) {
      void channel.close();
      return;
    }
    this.accepted.add(channel);
    socket.once('close', () => this.accepted.delete(channel));
    channel.receive({ expected: [], timeoutMs: HELLO_TIMEOUT_MS }).then(
      (frame) => this.route(channel, frame.meta),
      () => undefined, // the channel closed itself; the peer's reduction learns from that
    );
  }

  /** Hands a hello'd connection to the running reduction for its key, holds it for a later one, or closes it. */
  private route(channel: TensorChannel, meta: FrameMeta): void {
    const hello = parseHello(meta);
    if (typeof hello === 'string' || this.closed) {
      void channel.close();
      return;
    }
    if (this.active?.key === hello.key) {
      this.active.offerNext(channel, hello);
    } else if (this.recentKeys.includes(hello.key) || this.held.has(hello.key)) {
      // Late for a reduction that ran (or failed) here, or a duplicate: closing it fails the sender fast.
      void channel.close();
    } else {
      const timer = setTimeout(() => this.unhold(hello.key, true), Math.min(hello.timeoutMs, MAX_HOLD_MS));
      timer.unref();
      this.held.set(hello.key, { channel, hello, epoch: this.epoch, timer });
    }
  }

  /** Closes held connections that outlived a whole reduction here without being claimed. */
  private dropStaleHeld(): void {
    for (const [key, h] of this.held) if (h.epoch < this.epoch) this.unhold(key, true);
  }

  /** Forgets a held connection; `close` unless a reduction just claimed it. */
  private unhold(key: string, close: boolean): void {
    const h = this.held.get(key);
    if (!h) return;
    this.held.delete(key);
    clearTimeout(h.timer);
    if (close) void h.channel.close();
  }

  private remember(key: string): void {
    this.recentKeys.push(key);
    if (this.recentKeys.length > RECENT_KEYS) this.recentKeys.shift();
  }
}
