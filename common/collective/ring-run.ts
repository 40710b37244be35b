import { TensorChannel, WireTensorSpec, connectTensorChannel } from '../wire';
import { RingError, RingPhase } from './errors';
import { RingHello, helloFor, helloMismatch } from './ring-hello';
import { addFloatsInto, ringIndex, segmentBounds } from './ring-segments';
import { RingReduction, RingStats } from './ring-types';

/** What a run needs from its DataPlane. */
export interface RingRunOptions {
  /** Per frame, for the channel this run opens. */
  maxTotalBytes: number;
  /** At least one segment long; reused across runs so a step allocates nothing. */
  scratch: Float32Array;
}

/** Splits `host:port` (IPv6 hosts may be bracketed); undefined when there is no numeric port. */
export function splitAddress(address: string): { host: string; port: number } | undefined {
  const colon = address.lastIndexOf(':');
  const port = Number(address.slice(colon + 1));
  if (colon <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535) return undefined;
  return { host: address.slice(0, colon).replace(/^\[(.*)\]$/, '$1'), port };
}

/** A one-shot event that can be checked synchronously and awaited. */
class Signal {
  done = false;
  readonly promise: Promise<void>;
  private resolveIt!: () => void;
  constructor() {
    this.promise = new Promise<void>((resolve) => (this.resolveIt = resolve));
  }
  set(): void {
    this.done = true;
    this.resolveIt();
  }
}

const signals = (n: number): Signal[] => Array.from({ length: n }, () => new Signal());

/**
 * One ring allreduce at one member (W >= 2): connects to the previous member, waits for the next member's
 * connection (handed over by the DataPlane through `offerNext`), then W-1 reduce-scatter and W-1
 * allgather steps. Member r sends segment (r - s) at reduce-scatter step s and (r + 1 - s) at allgather
 * step s, and receives the segment before each.
 *
 * Sending and receiving are two pipelines that wait on each other only where they share memory: a
 * send waits for the receive (and add) that completes its segment, and an allgather receive writes
 * into `data` only once the reduce-scatter send of that segment has left. So a receive is pending
 * from the moment the previous member is connected until the last frame, even while the next member
 * has not shown up: a pending receive is what notices the previous member's socket closing.
 *
 * The first failure wins (`fail`): it closes both channels, which is how the other members learn of it
 * at once, and every later error (the closed channels' own) is reported as that first one.
 */
export class RingRun {
  private phase: RingPhase = 'connect';
  private failure?: RingError;
  private readonly aborted: Promise<never>;
  private rejectAborted!: (err: RingError) => void;
  private resolveNext!: (channel: TensorChannel) => void;
  private readonly nextArrived: Promise<TensorChannel>;
  private fromPrev?: TensorChannel;
  private toNext?: TensorChannel;
  private readonly world: number;
  private readonly prevId: string;
  private readonly nextId: string;
  /** Reduce-scatter step s received and added (its segment may be sent on). */
  private readonly added: Signal[];
  /** Reduce-scatter step s sent (its segment may be overwritten by the allgather). */
  private readonly scattered: Signal[];
  /** Allgather step s received into `data` (its segment may be sent on). */
  private readonly gathered: Signal[];
  private sendsDone = 0;
  private readonly stats: RingStats = { bytesSent: 0, bytesReceived: 0, ms: 0 };

  constructor(readonly reduction: RingReduction, private readonly data: Float32Array, private readonly options: RingRunOptions) {
    const { members, rank } = reduction;
    this.world = members.length;
    this.prevId = members[ringIndex(rank - 1, this.world)].id;
    this.nextId = members[ringIndex(rank + 1, this.world)].id;
    this.added = signals(this.world - 1);
    this.scattered = signals(this.world - 1);
    this.gathered = signals(this.world - 1);
    this.aborted = new Promise<never>((_, reject) => (this.rejectAborted = reject));
    this.aborted.catch(() => undefined);
    this.nextArrived = new Promise<TensorChannel>((resolve) => (this.resolveNext = resolve));
  }

  get key(): string {
    return this.reduction.key;
  }

  /** Whose move we are waiting for, for the timeout's message: the next member until it connected. */
  private get waitingOn(): string {
    return this.toNext ? this.prevId : this.nextId;
  }

  /**
   * A connection whose hello names this run's key: becomes the channel to the next member if it is the
   * first and fits; one that does not fit fails the run (the members disagree about the ring).
   */
  offerNext(channel: TensorChannel, hello: RingHello): void {
    const mismatch = helloMismatch(hello, this.reduction, this.data.length);
    if (this.failure || this.toNext || mismatch) {
      void channel.close();
      if (mismatch) this.fail(new RingError(this.key, 'handshake', mismatch, { peer: hello.from }));
      return;
    }
    this.toNext = channel;
    // The next member never sends after its hello: a pending receive only notices its socket closing
    // while we still owe it segments, e.g. when it died while this member waits on its previous one.
    channel.receive({ expected: [] }).then(
      () => this.fail(new RingError(this.key, this.phase, `expected nothing after the hello from '${this.nextId}', got a frame`, { peer: this.nextId })),
      (err: unknown) => {
        if (this.sendsDone < 2 * (this.world - 1)) this.fail(this.wrap(err, this.nextId, 'the connection to the next member failed'));
      },
    );
    this.resolveNext(channel);
  }

  /** Ends the run with `err` unless it already ended; closes its channels; returns the error that won. */
  fail(err: RingError): RingError {
    if (!this.failure) {
      this.failure = err;
      this.closeChannels();
      this.rejectAborted(err);
    }
    return this.failure;
  }

  /** Runs the reduction to the end; `data` then holds the sum, or the run throws RingError. */
  async execute(): Promise<RingStats> {
    const t0 = performance.now();
    const { timeoutMs } = this.reduction;
    const timer = setTimeout(() => {
      this.fail(new RingError(this.key, this.phase, `not done within ${timeoutMs} ms (waiting for '${this.waitingOn}')`, { peer: this.waitingOn }));
    }, timeoutMs);
    try {
      await this.guard(Promise.all([this.receiveSide(), this.sendSide()]));
      this.stats.ms = performance.now() - t0;
      return this.stats;
    } catch (err) {
      throw this.failure ?? this.fail(this.wrap(err, this.waitingOn, 'unexpected failure'));
    } finally {
      clearTimeout(timer);
      this.closeChannels();
    }
  }

  /** Connects to the previous member, then receives every frame it sends, adding or storing each. */
  private async receiveSide(): Promise<void> {
    await this.connectPrev();
    this.phase = 'reduce-scatter';
    const scratch = this.options.scratch;
    for (let s = 0; s < this.world - 1; s++) {
      const [c, d] = this.bounds('reduce-scatter', s, 'recv');
      const into = scratch.subarray(0, d - c);
      await this.receive('reduce-scatter', s, into, () => into);
      addFloatsInto(this.data.subarray(c, d), into);
      this.added[s].set();
    }
    this.phase = 'allgather';
    const copies: Array<Promise<void>> = [];
    for (let s = 0; s < this.world - 1; s++) {
      const [c, d] = this.bounds('allgather', s, 'recv');
      const target = this.data.subarray(c, d);
      // Straight into `data` unless this segment's reduce-scatter send has not left yet (the next member
      // is slow to connect): then into a fresh array, copied over once it has.
      let received = target;
      await this.receive('allgather', s, target, () => (this.scattered[s].done ? target : undefined), (got) => (received = got));
      if (received === target) this.gathered[s].set();
      else {
        const copy = received;
        copies.push(this.scattered[s].promise.then(() => {
          target.set(copy);
          this.gathered[s].set();
        }));
      }
    }
    await Promise.all(copies);
  }

  /** Waits for the next member's connection, then sends each segment once it is complete here. */
  private async sendSide(): Promise<void> {
    await this.nextArrived;
    for (let s = 0; s < this.world - 1; s++) {
      if (s > 0) await this.added[s - 1].promise;
      await this.send('reduce-scatter', s);
      this.scattered[s].set();
    }
    for (let s = 0; s < this.world - 1; s++) {
      await (s === 0 ? this.added[this.world - 2] : this.gathered[s - 1]).promise;
      await this.send('allgather', s);
    }
  }

  private async connectPrev(): Promise<void> {
    const { members, rank } = this.reduction;
    const prev = members[ringIndex(rank - 1, this.world)];
    const target = splitAddress(prev.address);
    if (!target) throw this.fail(new RingError(this.key, 'connect', `expected a host:port address for '${prev.id}', got '${prev.address}'`, { peer: prev.id }));
    let channel: TensorChannel;
    try {
      channel = await connectTensorChannel(target.host, target.port, { maxTotalBytes: this.options.maxTotalBytes });
    } catch (err) {
      throw this.fail(this.wrap(err, prev.id, `cannot connect to ${prev.address}`, 'connect'));
    }
    if (this.failure) {
      void channel.close();
      throw this.failure;
    }
    this.fromPrev = channel;
    this.phase = 'handshake';
    try {
      await channel.send([], helloFor(this.reduction, this.data.length));
    } catch (err) {
      throw this.fail(this.wrap(err, prev.id, 'cannot send the hello', 'handshake'));
    }
  }

  /** [start, end) of the segment sent or received at step `s` of `phase`. */
  private bounds(phase: RingPhase, s: number, side: 'send' | 'recv'): [number, number] {
    return segmentBounds(this.segmentAt(phase, s, side), this.data.length, this.world);
  }

  /** Segment index sent (r - s, or r + 1 - s in the allgather) or received (the one before) at step `s`. */
  private segmentAt(phase: RingPhase, s: number, side: 'send' | 'recv'): number {
    const shift = (phase === 'reduce-scatter' ? 0 : 1) - (side === 'recv' ? 1 : 0);
    return ringIndex(this.reduction.rank + shift - s, this.world);
  }

  private async send(phase: RingPhase, s: number): Promise<void> {
    const [a, b] = this.bounds(phase, s, 'send');
    const spec = segmentSpec(phase, s, this.segmentAt(phase, s, 'send'), b - a);
    try {
      await this.guard((this.toNext as TensorChannel).send([{ ...spec, data: this.data.subarray(a, b) }]));
    } catch (err) {
      throw this.fail(this.wrap(err, this.nextId, `cannot send ${spec.name}`, phase));
    }
    this.sendsDone++;
    this.stats.bytesSent += (b - a) * 4;
  }

  /** Receives step `s`'s frame into `into()`'s answer (or a fresh array when it has none), validated. */
  private async receive(phase: RingPhase, s: number, target: Float32Array, into: () => Float32Array | undefined,
    onReceived?: (got: Float32Array) => void): Promise<void> {
    const spec = segmentSpec(phase, s, this.segmentAt(phase, s, 'recv'), target.length);
    try {
      const frame = await this.guard((this.fromPrev as TensorChannel).receive({ expected: [spec], into }));
      onReceived?.(frame.tensors.get(spec.name)?.data as Float32Array);
    } catch (err) {
      throw this.fail(this.wrap(err, this.prevId, `expected ${spec.name} (${target.length} floats)`, phase));
    }
    this.stats.bytesReceived += target.byteLength;
  }

  /** `p`, or the run's failure as soon as there is one (a late result of `p` is dropped). */
  private guard<T>(p: Promise<T>): Promise<T> {
    p.catch(() => undefined);
    return Promise.race([p, this.aborted]);
  }

  private wrap(err: unknown, peer: string, what: string, phase = this.phase): RingError {
    if (err instanceof RingError) return err;
    const detail = err instanceof Error ? err.message : String(err);
    return new RingError(this.key, phase, `${what}: ${detail}`, { peer, cause: err });
  }

  private closeChannels(): void {
    for (const ch of [this.fromPrev, this.toNext]) void ch?.close().catch(() => undefined);
  }
}

/** Names a frame by phase, step and segment, so frames that arrive out of step fail the manifest check. */
function segmentSpec(phase: RingPhase, s: number, k: number, floats: number): WireTensorSpec {
  return { name: `${phase}/step-${s}/segment-${k}`, dtype: 'float32', shape: [floats] };
}
