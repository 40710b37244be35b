import { FrameMeta, ReceivedFrame, TensorChannel, WireError, WireTensor, WireTensorSpec } from '../wire';
import { ControlFrame } from './control-frames';

/** Closes an accepted connection that does not say hello within this. */
export const HELLO_TIMEOUT_MS = 30_000;

/** Which way data flows on a link, seen from this member. */
export type LinkDirection = 'in' | 'out';

/** The reduction using a link: where its data frames go, and what it learns of the link's end. */
export interface LinkUser {
  /** Where the tensor of the data frame now arriving goes; throws (closing the link) if it is not the one expected. */
  into(link: Link, spec: WireTensorSpec): Float32Array | Uint8Array;
  /** That frame arrived whole, validated (finite values), in the array `into` gave. */
  onData(link: Link, frame: ReceivedFrame): void;
  /** The link closed or failed; it has left the pool. */
  onClosed(link: Link, err: unknown): void;
}

/** What the DataPlane that owns a link learns of it. */
export interface LinkOwner {
  /** A control frame (no tensors) arrived; throwing closes the link. */
  onControl(link: Link, meta: FrameMeta): void;
  /** The link closed, whatever the reason: it must leave the pool. */
  onDead(link: Link): void;
}

/**
 * One pooled connection between two members for one direction of data: an 'in' link was opened by this
 * member to receive from `peer`; an 'out' link was accepted from a `peer` that receives from this member.
 * A receive is pending on it at all times, whoever uses it: that is what notices the peer's socket closing
 * between reductions too (a paused socket would not), so a dead pooled link fails a reduction at once.
 * Data frames are handed to the current user (the running reduction) or, with none, close the link.
 */
export class Link {
  /** Who is at the other end: known at once for 'in' links, from the hello for 'out' links. */
  peer?: { readonly id: string; readonly address: string };
  /** 'out' links: the id the receiving peer expects this member to have (from its hello). */
  expectedId?: string;
  /** 'out' links: the last reduction the receiving peer said it is ready for. */
  ready?: Extract<ControlFrame, { type: 'ready' }>;
  /** The reduction using the link now, if any. */
  user?: LinkUser;
  closed = false;
  private sending: Promise<unknown> = Promise.resolve();
  /** Frames handed to send() whose write has not completed: the next one waits behind them. */
  private pending = 0;
  /** A data frame's tensor was handed out and the frame has not completed yet. */
  private inFrame = false;

  constructor(readonly channel: TensorChannel, readonly direction: LinkDirection, private readonly owner: LinkOwner,
    peer?: { id: string; address: string }) {
    this.peer = peer;
    this.receiveNext();
  }

  /** `id@address` of the peer, the pool's key; '?' before an accepted link's hello. */
  get key(): string {
    return this.peer ? linkKey(this.peer) : '?';
  }

  /**
   * Sends one frame once the frames sent before it on this link have left (TensorChannel sends one at a
   * time). On an idle link it is written now, within this call: a ready sent just before the event loop
   * is held (a member about to compute its share) has left by then.
   */
  send(tensors: readonly WireTensor[], meta: FrameMeta): Promise<void> {
    const p = this.pending === 0 ? this.channel.send(tensors, meta) : this.sending.then(() => this.channel.send(tensors, meta));
    this.pending++;
    this.sending = p.catch(() => undefined).then(() => void this.pending--);
    return p;
  }

  /** Closes the link; its user (if any) learns of it through `onClosed` with `reason`. */
  close(reason: unknown): void {
    this.end(reason);
  }

  private receiveNext(): void {
    const awaitingHello = this.direction === 'out' && !this.peer;
    this.channel.receive({ into: (spec) => this.into(spec), timeoutMs: awaitingHello ? HELLO_TIMEOUT_MS : undefined }).then(
      (frame) => {
        try {
          if (frame.tensors.size === 0) this.owner.onControl(this, frame.meta);
          else {
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

  private into(spec: WireTensorSpec): Float32Array | Uint8Array {
    if (this.inFrame) throw new WireError(`collective: expected one tensor per data frame, got a second one, '${spec.name}'`);
    if (!this.user) throw new WireError(`collective: expected no data on a connection no reduction uses, got '${spec.name}'`);
    const into = this.user.into(this, spec);
    this.inFrame = true;
    return into;
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
