import { FrameMeta, ReceivedFrame, TensorChannel, WireError, WireTensor, WireTensorSpec, WireTypedArray } from '../wire';
import { ControlFrame } from './control-frames';

/** Closes an accepted connection that does not say hello within this. */
export const HELLO_TIMEOUT_MS = 30_000;

/** Which way data flows on a link, seen from this member. */
export type LinkDirection = 'in' | 'out';

/** The reduction using a link: where its data frames go, and what it learns of the link's end. */
export interface LinkUser {
  /** The reduction's key: data frames whose meta names another key are not this user's. */
  readonly key: string;
  /** Where the tensor of the data frame now arriving goes; throws (closing the link) if it is not the one expected. */
  into(link: Link, spec: WireTensorSpec, meta: FrameMeta): Float32Array | Uint8Array;
  /** That frame arrived whole, validated (finite values), in the array `into` gave. */
  onData(link: Link, frame: ReceivedFrame): void;
  /** A frame for this reduction that arrived (whole, validated) before the reduction took the link up; throws as `into` does. */
  adopt(link: Link, frame: ReceivedFrame): void;
  /** The link closed or failed; it has left the pool. */
  onClosed(link: Link, err: unknown): void;
}

/** What the DataPlane that owns a link learns of it. */
export interface LinkOwner {
  /** A control frame (no tensors) arrived; throwing closes the link. */
  onControl(link: Link, meta: FrameMeta): void;
  /** The link closed, whatever the reason: it must leave the pool (and its early frames go). */
  onDead(link: Link): void;
  /** Memory for a data frame for reduction `key`, which no user of this link runs (yet); throws to refuse it. */
  earlyInto(link: Link, key: string, spec: WireTensorSpec): WireTypedArray;
  /** `bytes` of early frames for `key` were handed to the reduction that took the link up. */
  earlyTaken(link: Link, key: string, bytes: number): void;
}

/** A data frame kept on its link until the reduction it names takes the link up. */
interface EarlyFrame {
  readonly key: string;
  readonly frame: ReceivedFrame;
  readonly bytes: number;
}

/**
 * One pooled connection between two members for one direction of data: an 'in' link was opened by this
 * member to receive from `peer`; an 'out' link was accepted from a `peer` that receives from this member.
 * A receive is pending on it at all times, whoever uses it: that is what notices the peer's socket closing
 * between reductions too (a paused socket would not), so a dead pooled link fails a reduction at once.
 * Data frames are handed to the current user (the running reduction) when their meta names its key (or
 * none). A frame for another key arrived early: a sender does not wait to hear that this member started
 * the reduction. The owner decides whether it may be kept (bounded, and never for a reduction that ended
 * here); the link then holds it, in order, until a reduction of that key takes the link up (`take`).
 */
export class Link {
  /** Who is at the other end: known at once for 'in' links, from the hello for 'out' links. */
  peer?: { readonly id: string; readonly address: string };
  /** 'out' links: the id the receiving peer expects this member to have (from its hello). */
  expectedId?: string;
  /** 'out' links: the last reduction the receiving peer said it is ready for. */
  ready?: Extract<ControlFrame, { type: 'ready' }>;
  /** 'out' links: the last reduction whose frames all went out on this link (a ready for it that comes late is no news). */
  sent?: string;
  /** The reduction using the link now, if any; set through `take`. */
  user?: LinkUser;
  closed = false;
  private sending: Promise<unknown> = Promise.resolve();
  /** A data frame's tensor was handed out and the frame has not completed yet. */
  private inFrame = false;
  /** The frame being read is an early one, for this key. */
  private earlyKey?: string;
  /** Early frames in arrival order, whole and validated. */
  private readonly early: EarlyFrame[] = [];

  constructor(readonly channel: TensorChannel, readonly direction: LinkDirection, private readonly owner: LinkOwner,
    peer?: { id: string; address: string }) {
    this.peer = peer;
    this.receiveNext();
  }

  /** `id@address` of the peer, the pool's key; '?' before an accepted link's hello. */
  get key(): string {
    return this.peer ? linkKey(this.peer) : '?';
  }

  /** Sends one frame once the frames sent before it on this link have left (TensorChannel sends one at a time). */
  send(tensors: readonly WireTensor[], meta: FrameMeta): Promise<void> {
    const p = this.sending.then(() => this.channel.send(tensors, meta));
    this.sending = p.catch(() => undefined);
    return p;
  }

  /**
   * `user` takes the link up (undefined: leaves it): the early frames for its key are handed to it first, in
   * the order they came. Throwing there closes the link, which the user learns through `onClosed`.
   */
  take(user: LinkUser | undefined): void {
    this.user = user;
    try {
      this.handEarly();
    } catch (err) {
      this.end(err);
    }
  }

  /** Closes the link; its user (if any) learns of it through `onClosed` with `reason`. */
  close(reason: unknown): void {
    this.end(reason);
  }

  private receiveNext(): void {
    const awaitingHello = this.direction === 'out' && !this.peer;
    this.channel.receive({ into: (spec, meta) => this.into(spec, meta), timeoutMs: awaitingHello ? HELLO_TIMEOUT_MS : undefined }).then(
      (frame) => {
        try {
          if (frame.tensors.size === 0) this.owner.onControl(this, frame.meta);
          else if (this.earlyKey !== undefined) {
            const [tensor] = frame.tensors.values();
            this.early.push({ key: this.earlyKey, frame, bytes: tensor.data.byteLength });
            this.inFrame = false;
            this.earlyKey = undefined;
            this.handEarly();
          } else {
            this.inFrame = false;
            (this.user as LinkUser).onData(this, frame);
          }
        } catch (err) {
          this.end(err);
        }
        if (!this.closed) this.receiveNext();
      },
      (err: unknown) => this.end(err),
    );
  }

  private into(spec: WireTensorSpec, meta: FrameMeta): WireTypedArray {
    if (this.inFrame) throw new WireError(`collective: expected one tensor per data frame, got a second one, '${spec.name}'`);
    const key = typeof meta.key === 'string' ? meta.key : undefined;
    let into: WireTypedArray;
    if (this.user && (key === undefined || key === this.user.key)) into = this.user.into(this, spec, meta);
    else if (key !== undefined && this.direction === 'in') {
      into = this.owner.earlyInto(this, key, spec);
      this.earlyKey = key;
    } else throw new WireError(`collective: expected no data on a connection no reduction uses, got '${spec.name}'`);
    this.inFrame = true;
    return into;
  }

  /** Hands the user the early frames of its key at the head of the queue (a sender's frames come in key order). */
  private handEarly(): void {
    while (this.user && this.early[0]?.key === this.user.key) {
      const e = this.early.shift() as EarlyFrame;
      this.owner.earlyTaken(this, e.key, e.bytes);
      this.user.adopt(this, e.frame);
    }
  }

  private end(reason: unknown): void {
    if (this.closed) return;
    this.closed = true;
    void this.channel.close().catch(() => undefined);
    this.owner.onDead(this);
    const user = this.user;
    this.user = undefined;
    user?.onClosed(this, reason);
  }
}

/** The pool's key for a peer: its id and address (a member replaced by a new process at a new address is a new peer). */
export function linkKey(peer: { readonly id: string; readonly address: string }): string {
  return `${peer.id}@${peer.address}`;
}
