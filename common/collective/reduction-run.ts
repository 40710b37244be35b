import { StreamClosedError, WireTensorSpec } from '../wire';
import { AllreduceError, AllreducePhase, inputNeverCame } from './errors';
import { Link, LinkUser } from './link';
import { TreeFold } from './tree-fold';
import { SimdScratch } from './simd-scratch';
import { frameName, readyMeta, readyMismatch } from './control-frames';
import { HalfFrames } from './half-frames';
import { ReductionPlan, segmentBounds, segmentOwnedBy } from './segment-plan';
import { AllreduceMember, AllreduceRequest, AllreduceStats } from './types';

/** How much later than the owners a member that owns no segment gives up (at most the timeout again). */
export const NON_OWNER_TIMEOUT_GRACE_MS = 1_000;

/** The pooled connections a run uses, as its DataPlane offers them. */
export interface RunLinks {
  /** A live link to receive from `peer`, pooled or newly connected (the hello sent as `me`). */
  linkFrom(peer: AllreduceMember, me: AllreduceMember): Promise<Link>;
  /** The live link `peer` opened to receive from this member, if it said it is ready for `key`. */
  linkTo(peer: AllreduceMember, key: string): Link | undefined;
  /** The reduction `key` failed here: close links announced for it and refuse it from now on. */
  failed(key: string): void;
}

/** One data frame a member expects on a link, in link order. */
interface ExpectedFrame {
  readonly name: string;
  readonly phase: AllreducePhase;
  /**
   * Where it is read to: a scratch slot (a part to fold) or the caller's data (a reduced segment); with
   * fp16 compression, a byte buffer that `arrived` decodes into those.
   */
  readonly into: Float32Array | Uint8Array;
  readonly arrived: () => void;
}

/** A member this one receives from, over a link it opened. */
interface Sender {
  readonly kind: 'sender';
  readonly peer: AllreduceMember;
  link?: Link;
  readonly frames: ExpectedFrame[];
  next: number;
  /** A frame's tensor is being read now. */
  receiving: boolean;
  /** The link was replaced once after it closed before any frame came (it was stale). */
  reconnected: boolean;
}

/** A member this one sends to, over a link that member opened. */
interface Receiver {
  readonly kind: 'receiver';
  readonly peer: AllreduceMember;
  /** The segment the peer owns (whose part it is sent), or -1 for an observer or a contributor owning none. */
  readonly owns: number;
  link?: Link;
  waiter?: (link: Link) => void;
  done: boolean;
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

/**
 * One allreduce at one member: direct reduce-scatter, then direct allgather, over the plan's S segments
 * (`segmentCount`). A contributor sends its parts' slices of every other owner's segment straight to that
 * owner; an owner adds the parts of its own segment by the summation tree as they arrive (TreeFold), then
 * sends the reduced segment straight to every other member; every member reads the reduced segments
 * straight into the first vector of `data`. An observer only receives. With one part per contributor (an
 * aligned split) an owner sends S-1 parts and its segment to M-1 members, another contributor S parts,
 * and each receives a segment from every other owner.
 *
 * The run opens (or reuses) a link to each member it receives from and says there that it is ready; it
 * sends to a member only once that member said it is ready for this key on the link it opened. The first
 * failure wins (`fail`): it closes every link the run used, which is how the other members learn of it at
 * once, and every later error is reported as that first one.
 */
export class ReductionRun implements LinkUser {
  private failure?: AllreduceError;
  /** execute() returned or threw: nothing changes the outcome any more. */
  private ended = false;
  private readonly aborted: Promise<never>;
  private rejectAborted!: (err: AllreduceError) => void;
  private readonly me: AllreduceMember;
  private readonly senders: Sender[];
  private readonly receivers: Receiver[];
  private readonly byLink = new Map<Link, Sender | Receiver>();
  private readonly fold?: TreeFold;
  /** The reduced vector: the first `plan.floats` of `data`. */
  private readonly result: Float32Array;
  private readonly folded = new Signal();
  private readonly received = new Signal();
  /** `data` holds this member's input (at once, or once `input` resolved). */
  private readonly inputIn = new Signal();
  /** Every member this one receives from is connected and was told it is ready. */
  private readonly linked = new Signal();
  private framesLeft = 0;
  private readonly stats: AllreduceStats = { bytesSent: 0, bytesReceived: 0, ms: 0 };
  /** The fp16 conversions, with `reduction.compression`. */
  private readonly half?: HalfFrames;
  /** Where a direct reduction adds the parts (see the constructor). */
  private readonly directSum?: Float32Array;

  /**
   * @param input settles when `data` holds this member's input; until then the run connects, says it is
   *   ready and receives the others' parts, but sends nothing and its timeout does not run. Default: now.
   * @param saidReady called once the run said it is ready on every link it receives on (or failed to):
   *   at once, with pooled links, before the event loop turns.
   */
  constructor(readonly reduction: AllreduceRequest, private readonly data: Float32Array, private readonly plan: ReductionPlan,
    private readonly links: RunLinks, scratch: SimdScratch, private readonly input: Promise<unknown> = Promise.resolve(),
    private readonly saidReady?: () => void) {
    const { members, rank } = reduction;
    this.me = members[rank];
    this.aborted = new Promise<never>((_, reject) => (this.rejectAborted = reject));
    this.aborted.catch(() => undefined);
    this.result = data.subarray(0, plan.floats);
    if (reduction.compression) this.half = new HalfFrames(reduction, reduction.compression);
    const own = plan.own;
    // A direct reduction's contributor sends its input from where the sum goes: it adds into a buffer of its
    // own, copied over the input once every part went out.
    if (plan.direct) this.directSum = new Float32Array(plan.floats);
    if (own >= 0) this.fold = new TreeFold(this.foldTarget(), undefined, plan.contributor, plan.parts, plan.leaves, scratch);
    this.senders = plan.senders.map((i): Sender => {
      const k = plan.contributors.indexOf(i);
      const frames: ExpectedFrame[] = [];
      const fold = this.fold;
      if (fold) {
        plan.parts[k].forEach((_, part) => frames.push(this.expect(this.frameName('reduce-scatter', own, plan.parts[k].length > 1 ? part : undefined),
          'reduce-scatter', fold.slot(k, part), (bytes) => this.half?.decodePart(bytes, fold.slot(k, part)), () => {
            if (fold.arrive(k, part)) this.onFolded();
          })));
      }
      const owned = plan.direct ? -1 : segmentOwnedBy(plan, i);
      if (owned >= 0) {
        const offset = segmentBounds(owned, plan.floats, plan.segments)[0];
        frames.push(this.expect(this.frameName('allgather', owned), 'allgather', this.segment(owned),
          (bytes) => this.half?.decodeResult(bytes, this.segment(owned), offset), () => undefined));
      }
      this.framesLeft += frames.length;
      return { kind: 'sender', peer: members[i], frames, next: 0, receiving: false, reconnected: false };
    });
    this.receivers = plan.receivers.map((i): Receiver => ({ kind: 'receiver', peer: members[i], owns: plan.direct ? 0 : segmentOwnedBy(plan, i), done: false }));
    if (this.framesLeft === 0) this.received.set();
  }

  get key(): string {
    return this.reduction.key;
  }

  /**
   * Runs the reduction to the end; `data`'s first vector then holds the sum, or the run throws AllreduceError.
   * The stats' time counts from the input's arrival.
   */
  async execute(): Promise<AllreduceStats> {
    let timer: NodeJS.Timeout | undefined;
    try {
      void Promise.all(this.senders.map((s) => this.openFrom(s))).then(() => {
        this.saidReady?.();
        if (!this.failure) this.linked.set();
      });
      const finished = this.guard(Promise.all([...this.receivers.map((r) => this.feed(r)), this.received.promise]));
      finished.catch(() => undefined); // awaited below, once the input is in
      await this.guard(this.input.then(() => undefined, (err: unknown) => {
        throw this.fail(inputNeverCame(this.key, err));
      }));
      const t0 = performance.now();
      timer = this.startTimer();
      this.takeInput();
      await finished;
      if (this.directSum) this.result.set(this.directSum);
      this.stats.ms = performance.now() - t0;
    } catch (err) {
      throw this.failure ?? this.fail(this.wrap(err, undefined, 'unexpected failure'));
    } finally {
      this.ended = true;
      clearTimeout(timer);
      // Success: the links stay pooled for the next reduction, used by nobody.
      for (const link of this.byLink.keys()) if (link.user === this) link.user = undefined;
    }
    // Checked once everything was sent and received, with the links left open: every member decoded the same
    // halves, so each fails here with the same error naming the tensor, none with a closed connection.
    this.half?.assertFinite();
    return this.stats;
  }

  /** The run's timeout, from the input's arrival. */
  private startTimer(): NodeJS.Timeout {
    const { timeoutMs } = this.reduction;
    // A member owning no segment hears only from the owners, so its timeout could only blame one of them;
    // it fires later, so that an owner's, which names the member the reduction waits for, comes first
    // (and closes the links, which ends the run here at once).
    const limitMs = this.plan.own >= 0 ? timeoutMs : timeoutMs + Math.min(timeoutMs, NON_OWNER_TIMEOUT_GRACE_MS);
    return setTimeout(() => {
      const peer = this.waitingOn();
      const whom = peer === undefined ? '' : ` (waiting for '${peer}')`;
      this.fail(new AllreduceError(this.key, this.phase, `not done within ${limitMs} ms${whom}`, { peer }));
    }, limitMs);
  }

  /** `data` holds the input now: an owner adds its own parts of its segment (fp16: rounded as sent), and sending may start. */
  private takeInput(): void {
    const { own, contributor } = this.plan;
    if (this.fold && contributor >= 0) {
      const input = this.plan.parts[contributor].map((_, i) => this.partSegment(i, own));
      // A direct reduction sends its own parts too (prescaled as they are sent): they are rounded on copies.
      const ownParts = this.half && this.plan.direct ? input.map((part) => Float32Array.from(part)) : input;
      for (const part of ownParts) this.half?.quantizeOwnPart(part);
      this.fold.putOwn(ownParts);
      if (this.fold.done) this.onFolded();
    }
    this.inputIn.set();
  }

  /** Ends the run with `err` unless it already ended; closes its links; returns the error that won. */
  fail(err: AllreduceError): AllreduceError {
    if (!this.failure && !this.ended) {
      this.failure = err;
      for (const link of [...this.byLink.keys()]) link.close(err);
      this.links.failed(this.key);
      this.rejectAborted(err);
    }
    return this.failure ?? err;
  }

  /** A link whose peer just said it is ready for this key: becomes the link to that receiver if it fits. */
  offerReady(link: Link): void {
    const peer = link.peer as { id: string; address: string };
    const r = this.receivers.find((x) => x.peer.id === peer.id && x.peer.address === peer.address);
    if (this.failure || !r) {
      link.close(this.failure ?? new AllreduceError(this.key, 'handshake', `'${peer.id}' expects frames from '${this.me.id}', which sends it none`));
      // Members that disagree on the plan (another list, another segment count) are named with both lists.
      const differ = link.ready && readyMismatch(link.ready, this.plan, peer.id);
      if (!r) this.fail(new AllreduceError(this.key, 'handshake', differ || `'${peer.id}' (${peer.address}) is ready to receive from '${this.me.id}', ` +
        `which does not send to it: the members lists differ (here: [${this.plan.membersText}])`, { peer: peer.id }));
      return;
    }
    if (r.link === link) return;
    if (r.link) {
      this.fail(new AllreduceError(this.key, 'handshake', `'${peer.id}' opened a second connection for this reduction`, { peer: peer.id }));
      return;
    }
    const problem = link.expectedId !== this.me.id
      ? `'${peer.id}' expected member '${link.expectedId}' at ${this.me.address}, this is '${this.me.id}'`
      : readyMismatch(link.ready as NonNullable<Link['ready']>, this.plan, peer.id);
    if (problem) {
      this.fail(new AllreduceError(this.key, 'handshake', problem, { peer: peer.id }));
      return;
    }
    r.link = link;
    link.user = this;
    this.byLink.set(link, r);
    r.waiter?.(link);
  }

  /** LinkUser: the destination of the data frame arriving from a sender, which must be the one expected next. */
  into(link: Link, spec: WireTensorSpec): Float32Array | Uint8Array {
    if (this.failure) throw this.failure;
    const s = this.byLink.get(link);
    if (s?.kind !== 'sender') throw new AllreduceError(this.key, this.phase, `expected no data from '${link.peer?.id}', got '${spec.name}'`, { peer: link.peer?.id });
    const e = s.frames[s.next];
    if (!e) throw new AllreduceError(this.key, this.phase, `expected no more frames from '${s.peer.id}', got '${spec.name}'`, { peer: s.peer.id });
    const dtype = e.into instanceof Float32Array ? 'float32' : 'uint8';
    if (spec.name !== e.name || spec.dtype !== dtype || spec.shape.length !== 1 || spec.shape[0] !== e.into.length) {
      throw new AllreduceError(this.key, e.phase, `expected frame '${e.name}' of ${e.into.length} ${dtype}, got '${spec.name}' of shape ` +
        `[${spec.shape.join(',')}] ${spec.dtype}: the members disagree about the reduction`, { peer: s.peer.id });
    }
    s.receiving = true;
    return e.into;
  }

  /** LinkUser: the expected frame arrived whole; a part is folded at once. */
  onData(link: Link): void {
    const s = this.byLink.get(link) as Sender;
    s.receiving = false;
    const e = s.frames[s.next++];
    this.stats.bytesReceived += e.into.byteLength;
    e.arrived();
    if (--this.framesLeft === 0) this.received.set();
  }

  /** LinkUser: a link this run used closed. */
  onClosed(link: Link, err: unknown): void {
    const x = this.byLink.get(link);
    this.byLink.delete(link);
    if (!x || this.failure) return;
    if (x.kind === 'sender') {
      if (x.next === x.frames.length) return; // it sent all it had to; the result here is complete
      if (x.next === 0 && !x.receiving && !x.reconnected && err instanceof StreamClosedError) {
        // A pooled link the peer had closed (its earlier reduction failed) before this one used it:
        // reconnect once; a peer that is gone refuses, one that failed this very reduction closes again.
        x.reconnected = true;
        x.link = undefined;
        void this.openFrom(x);
        return;
      }
      this.fail(this.wrap(err, x.peer.id, `the connection from '${x.peer.id}' failed`, x.frames[x.next].phase));
    } else if (!x.done) {
      this.fail(this.wrap(err, x.peer.id, `the connection to '${x.peer.id}' failed`));
    }
  }

  /** Phase of the run as a whole, for messages: the earliest step not done yet. */
  private get phase(): AllreducePhase {
    if (this.senders.some((s) => !s.link)) return 'connect';
    if (this.receivers.some((r) => !r.link)) return 'handshake';
    return this.fold && !this.folded.done ? 'reduce-scatter' : 'allgather';
  }

  /** Whose move we are waiting for, for the timeout's message. */
  private waitingOn(): string | undefined {
    return (this.receivers.find((r) => !r.link) ?? this.senders.find((s) => s.next < s.frames.length) ?? this.receivers.find((r) => !r.done))?.peer.id;
  }

  /** Takes up the link to receive from sender `s` and says there that this member is ready for the key. */
  private async openFrom(s: Sender): Promise<void> {
    let link: Link;
    try {
      link = await this.links.linkFrom(s.peer, this.me);
    } catch (err) {
      this.fail(this.wrap(err, s.peer.id, `cannot connect to ${s.peer.address}`, 'connect'));
      return;
    }
    if (this.failure) {
      link.close(this.failure); // a link that connected for a failed run: closing it tells the peer at once
      return;
    }
    s.link = link;
    link.user = this;
    this.byLink.set(link, s);
    // A failed send closes the link (TensorChannel), which `onClosed` handles.
    link.send([], readyMeta(this.key, this.plan)).catch(() => undefined);
  }

  /** The frame expected into `target`, or with fp16 into bytes that `decode` turns into it before `arrived`. */
  private expect(name: string, phase: AllreducePhase, target: Float32Array, decode: (bytes: Uint8Array) => void, arrived: () => void): ExpectedFrame {
    if (!this.half) return { name, phase, into: target, arrived };
    const bytes = new Uint8Array(HalfFrames.bytes(target.length));
    return { name, phase, into: bytes, arrived: () => (decode(bytes), arrived()) };
  }

  /** The own segment is folded: with fp16 it is rounded once, as every member will hold it; then it may be sent. */
  private onFolded(): void {
    const own = this.plan.own;
    this.half?.finishOwnSegment(this.foldTarget(), segmentBounds(own, this.plan.floats, this.plan.segments)[0]);
    this.folded.set();
  }

  /**
   * Everything this member sends to receiver `r`: its parts of r's segment (if r owns one), then, at an
   * owner, the reduced own segment.
   */
  private async feed(r: Receiver): Promise<void> {
    const link = r.link ?? this.links.linkTo(r.peer, this.key);
    if (link) this.offerReady(link);
    if (!r.link) await this.guard(new Promise<Link>((resolve) => (r.waiter = resolve)));
    await this.guard(this.inputIn.promise);
    // In a direct reduction every member adds what it receives itself: a part sent by a member that cannot
    // reach a peer would let the others end with the sum while it fails. It sends once it reached them all.
    if (this.plan.direct) await this.guard(this.linked.promise);
    if (r.owns >= 0) {
      const mine = this.plan.parts[this.plan.contributor];
      for (let part = 0; part < mine.length; part++) await this.sendSegment(r, 'reduce-scatter', r.owns, part);
    }
    if (this.plan.own >= 0 && !this.plan.direct) {
      await this.guard(this.folded.promise);
      await this.sendSegment(r, 'allgather', this.plan.own);
    }
    r.done = true;
  }

  /** Sends `segment` of part `part` of this member's input (reduce-scatter), or of the reduced vector (allgather). */
  private async sendSegment(r: Receiver, phase: AllreducePhase, segment: number, part?: number): Promise<void> {
    const values = part === undefined ? this.segment(segment) : this.partSegment(part, segment);
    const half = this.half;
    const data = !half ? values : part === undefined ? half.reducedSegment : half.encodePart(values);
    // The part is named only where there are several, so an aligned split's frames keep their names.
    const name = this.frameName(phase, segment, part !== undefined && this.plan.parts[this.plan.contributor].length > 1 ? part : undefined);
    const dtype = half ? 'uint8' : 'float32';
    try {
      await this.guard((r.link as Link).send([{ name, dtype, shape: [data.length], data }], { key: this.key, phase, segment }));
    } catch (err) {
      throw this.fail(this.wrap(err, r.peer.id, `cannot send '${name}'`, phase));
    }
    this.stats.bytesSent += data.byteLength;
  }

  /** Where the parts this member adds go: its segment of the reduced vector, or a direct reduction's own sum. */
  private foldTarget(): Float32Array {
    return this.directSum ?? this.segment(this.plan.own);
  }

  /** Segment `j` of the reduced vector. */
  private segment(j: number): Float32Array {
    const [a, b] = segmentBounds(j, this.plan.floats, this.plan.segments);
    return this.result.subarray(a, b);
  }

  /** Segment `j` of this member's input part `part` (the parts lie back to back in `data`). */
  private partSegment(part: number, j: number): Float32Array {
    const [a, b] = segmentBounds(j, this.plan.floats, this.plan.segments);
    const at = part * this.plan.floats;
    return this.data.subarray(at + a, at + b);
  }

  private frameName(phase: AllreducePhase, segment: number, part?: number): string {
    return frameName(phase, this.key, segment, this.plan, this.reduction.members.length, part);
  }

  /** `p`, or the run's failure as soon as there is one (a late result of `p` is dropped). */
  private guard<T>(p: Promise<T>): Promise<T> {
    p.catch(() => undefined);
    return Promise.race([p, this.aborted]);
  }

  private wrap(err: unknown, peer: string | undefined, what: string, phase = this.phase): AllreduceError {
    if (err instanceof AllreduceError) return err;
    const detail = err instanceof Error ? err.message : String(err);
    return new AllreduceError(this.key, phase, `${what}: ${detail}`, { peer, cause: err });
  }
}
