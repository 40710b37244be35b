import * as net from 'node:net';
import { once } from 'node:events';
import { hostPort } from '../address';
import { ListenError } from '../errors';
import { type Identity, type TlsCredentials, connectMutualTls, createMutualTlsServer, identityUri, memberIdOf } from '../security';
import { ChannelReadBridge, DEFAULT_MAX_TENSOR_BYTES, FrameMeta, StreamClosedError, TensorChannel, WireError, connectTensorChannel } from '../wire';
import { AllreduceError, inputNeverCame } from './errors';
import { Link, LinkOwner, linkKey } from './link';
import { helloMeta, parseControl } from './control-frames';
import { ReductionRun, RunLinks } from './reduction-run';
import { planReduction } from './segment-plan';
import { SimdScratch } from './simd-scratch';
import { AllreduceMember, AllreduceRequest, AllreduceStats, COORDINATOR_MEMBER_ID } from './types';

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
  /**
   * Mutual TLS with the job's CA: a peer must present a certificate naming the member it says it is in
   * its hello (a worker's id, or the coordinator), and a member connects only to the identity it expects.
   * @default plaintext TCP (no identity checked)
   */
  tls?: TlsCredentials;
  /** Told why a connection was refused (handshake failed, a hello under another identity). @default ignored */
  onRefused?: (why: string) => void;
}

/** Keys of reductions run here that a late ready frame is recognised by (its link is then closed). */
const RECENT_KEYS = 256;

/** Splits `host:port` (IPv6 hosts may be bracketed); undefined when there is no numeric port. */
export function splitAddress(address: string): { host: string; port: number } | undefined {
  const colon = address.lastIndexOf(':');
  const port = Number(address.slice(colon + 1));
  if (colon <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535) return undefined;
  return { host: address.slice(0, colon).replace(/^\[(.*)\]$/, '$1'), port };
}

/**
 * One per process: listens for its peers' connections and runs allreduces, one at a time. Connections
 * are pooled across reductions, one per (receiver -> sender) pair, opened by the receiver; a pooled
 * connection that closes leaves the pool at once, and the next reduction that needs it reconnects.
 */
export class DataPlane implements LinkOwner, RunLinks {
  /** `advertiseHost:port`, what peers connect to. */
  readonly address: string;
  /** Links this member opened to receive from a peer, by `linkKey`. */
  private readonly inLinks = new Map<string, Link>();
  /** Links peers opened to receive from this member, by `linkKey`, once they said hello. */
  private readonly outLinks = new Map<string, Link>();
  /** Accepted links that have not said hello yet. */
  private readonly unnamed = new Set<Link>();
  private readonly recentKeys: string[] = [];
  private active?: ReductionRun;
  /** Where parts are received and folded, reused across reductions (about n floats at an owner). */
  private readonly scratch = new SimdScratch();
  /** With TLS: the identity each accepted link's certificate names, which its hello must match. */
  private readonly certified = new WeakMap<Link, Identity>();
  private closed = false;
  private opened = 0;

  private constructor(private readonly server: net.Server, advertiseHost: string, private readonly maxTotalBytes: number,
    private readonly security: Pick<DataPlaneOptions, 'tls' | 'onRefused'>) {
    const port = (server.address() as net.AddressInfo).port;
    this.address = hostPort(advertiseHost, port);
  }

  /** Connections this plane has opened so far (to receive from peers): constant while the pool is reused. */
  get connectionsOpened(): number {
    return this.opened;
  }

  /** Live pooled connections, both directions (for tests and metrics). */
  get pooledConnections(): number {
    return this.inLinks.size + this.outLinks.size;
  }

  /** Starts listening; resolves once the port is bound. */
  static async listen(options: DataPlaneOptions = {}): Promise<DataPlane> {
    const host = options.host ?? '127.0.0.1';
    // Connections are handed to the plane once it exists; none can arrive before the port is bound.
    const ready: { plane?: DataPlane } = {};
    const refused = (why: string): void => options.onRefused?.(`data plane: refused ${why}`);
    const server = options.tls
      ? createMutualTlsServer(options.tls, ({ socket, identity }) => ready.plane?.onConnection(socket, identity), refused)
      : net.createServer({ noDelay: true }, (socket) => ready.plane?.onConnection(socket));
    const port = options.port ?? 0;
    server.listen(port, host);
    try {
      await once(server, 'listening');
    } catch (err) {
      throw new ListenError('data plane', hostPort(host, port), '--data-port', { cause: err });
    }
    ready.plane = new DataPlane(server, options.advertiseHost ?? host, options.maxTotalBytes ?? DEFAULT_MAX_TENSOR_BYTES, options);
    return ready.plane;
  }

  /**
   * Sums the contributors' parts element-wise, IN PLACE at every member: a contributor's `data` holds one
   * vector per part it lists (`AllreduceMember.parts`, one by default) back to back, an observer's one vector.
   * On success every member holds identical bytes in its first vector: the summation tree's sum of every
   * contributor's parts (`TreeSum`), whatever the member order or the split (an observer's input is ignored
   * and overwritten). One reduction at a time per DataPlane (a second concurrent call rejects).
   * On any failure (a peer died or closed, timeout, a frame with NaN/Inf or of the wrong size, members that
   * disagree) it closes the reduction's connections, so every other member fails at once too, and throws
   * AllreduceError naming the key, the phase and the peer. `data` is then garbage.
   *
   * `input`, when given, settles once `data` holds this member's input: the reduction starts before that
   * (its connections, and its ready to every member it receives from, so that nobody waits for a ready
   * once the input is in; the others' parts are received), and sends nothing until then; its timeout runs
   * from then. Should `input` reject, the reduction fails with phase 'start'. `saidReady` is called once
   * the readies went out (see ReductionRun), or the reduction failed before: a member about to hold the
   * event loop with its compute waits for it, so that its peers may send their parts meanwhile.
   */
  async allreduce(reduction: AllreduceRequest, data: Float32Array, input?: Promise<unknown>, saidReady?: () => void): Promise<AllreduceStats> {
    const problem = this.checkReduction(reduction);
    const plan = problem ?? planReduction(reduction.members, reduction.rank, data.length, reduction.compression);
    if (typeof plan === 'string') {
      saidReady?.();
      throw new AllreduceError(reduction.key, 'start', plan);
    }
    if (reduction.members.length === 1 && plan.parts[0].length === 1) {
      saidReady?.();
      await input?.catch((err: unknown) => {
        throw inputNeverCame(reduction.key, err);
      });
      return { bytesSent: 0, bytesReceived: 0, ms: 0 };
    }
    const run = new ReductionRun(reduction, data, plan, this, this.scratch, input, saidReady);
    this.active = run;
    this.remember(reduction.key);
    try {
      return await run.execute();
    } finally {
      this.active = undefined;
    }
  }

  /**
   * Voids the running reduction `key`, if it still runs: it fails here with phase 'aborted', which closes
   * its links, so each member it exchanges with fails at once, and they close theirs in turn.
   */
  abort(key: string, why: string): void {
    if (this.active?.key === key) this.active.fail(new AllreduceError(key, 'aborted', why));
  }

  /**
   * This member will not take part in reduction `key` (it dropped the order naming it, or it drains): the
   * members ready to receive from it for that key fail at once, now or when their ready comes, as for a
   * reduction that failed here, rather than waiting for it until their timeout. A member that stays alive
   * but skips a reduction would otherwise fail nobody's: a peer fails at once only when a link closes.
   */
  refuse(key: string): void {
    if (this.active?.key === key) return; // running here: it ends or fails on its own
    this.remember(key);
    this.failed(key);
  }

  /** Stops listening and closes every connection; a running reduction fails with phase 'closed'. */
  async close(): Promise<void> {
    this.closed = true;
    this.active?.fail(new AllreduceError(this.active.key, 'closed', 'the data plane was closed'));
    const reason = new StreamClosedError('collective: the data plane was closed');
    const links = [...this.inLinks.values(), ...this.outLinks.values(), ...this.unnamed];
    for (const link of links) link.close(reason);
    const stopped = new Promise<void>((resolve) => this.server.close(() => resolve()));
    await Promise.all(links.map((link) => link.channel.close().catch(() => undefined)));
    await stopped;
  }

  /** RunLinks: the pooled link to receive from `peer`, or a new one that has said hello. */
  async linkFrom(peer: AllreduceMember, me: AllreduceMember): Promise<Link> {
    const key = linkKey(peer);
    const pooled = this.inLinks.get(key);
    if (pooled) return pooled;
    const target = splitAddress(peer.address);
    if (!target) throw new WireError(`expected a host:port address for '${peer.id}', got '${peer.address}'`);
    const channel = await this.connect(peer, target.host, target.port);
    this.opened++;
    if (this.closed) {
      await channel.close();
      throw new StreamClosedError('collective: the data plane was closed');
    }
    const link = new Link(channel, 'in', this, { id: peer.id, address: peer.address });
    this.inLinks.get(key)?.close(new WireError('collective: replaced by a newer connection'));
    this.inLinks.set(key, link);
    link.send([], helloMeta(me, peer)).catch(() => undefined); // a failure closes the link, which its user learns
    return link;
  }

  /** RunLinks: the link `peer` opened to receive from this member, if it is ready for `key`. */
  linkTo(peer: AllreduceMember, key: string): Link | undefined {
    const link = this.outLinks.get(linkKey(peer));
    return link?.ready?.key === key ? link : undefined;
  }

  /** RunLinks: closes the links whose peers are ready for the failed `key` (a run closes those it took up itself). */
  failed(key: string): void {
    for (const link of [...this.outLinks.values()]) {
      if (link.ready?.key === key) link.close(new WireError(`collective: reduction '${key}' failed here`));
    }
  }

  /** LinkOwner: a hello registers an accepted link in the pool; a ready is offered to the reduction it names. */
  onControl(link: Link, meta: FrameMeta): void {
    const c = parseControl(meta);
    if (typeof c === 'string') throw new WireError(`collective: ${c}`);
    if (link.direction !== 'out') throw new WireError(`collective: expected only data from '${link.peer?.id}', got an '${c.type}' frame`);
    if (c.type === 'hello') {
      if (link.peer) throw new WireError(`collective: expected one hello per connection, '${link.peer.id}' sent another`);
      this.checkHello(link, c.from);
      link.peer = { id: c.from, address: c.address };
      link.expectedId = c.to;
      this.unnamed.delete(link);
      this.outLinks.get(link.key)?.close(new WireError('collective: replaced by a newer connection from the same peer'));
      this.outLinks.set(link.key, link);
      return;
    }
    if (!link.peer) throw new WireError(`collective: expected a hello first, got a ready for '${c.key}'`);
    link.ready = c;
    if (this.active?.key === c.key) this.active.offerReady(link);
    else if (this.recentKeys.includes(c.key)) {
      // Late for a reduction that ended here: closing the link fails the peer's at once.
      link.close(new WireError(`collective: reduction '${c.key}' already ended here`));
    }
  }

  /** LinkOwner: a link that closed leaves the pool. */
  onDead(link: Link): void {
    this.unnamed.delete(link);
    const pool = link.direction === 'in' ? this.inLinks : this.outLinks;
    if (pool.get(link.key) === link) pool.delete(link.key);
  }

  /** Why `reduction` cannot run here, or undefined. */
  private checkReduction(r: AllreduceRequest): string | undefined {
    if (this.closed) return 'the data plane is closed';
    if (this.active) return `expected one reduction at a time, '${this.active.key}' is still running`;
    const world = r.members.length;
    if (world === 0) return 'expected at least one member, got none';
    if (!Number.isInteger(r.rank) || r.rank < 0 || r.rank >= world) return `expected a rank in [0, ${world - 1}], got ${r.rank}`;
    if (!(r.timeoutMs > 0)) return `expected a positive timeoutMs, got ${r.timeoutMs}`;
    const prescale = r.compression?.prescale;
    if (prescale !== undefined && !(Number.isFinite(prescale) && prescale > 0)) return `expected a finite prescale > 0, got ${prescale}`;
    const ids = new Set(r.members.map((m) => m.id));
    if (ids.size !== world) return `expected unique member ids, got ${r.members.map((m) => `'${m.id}'`).join(', ')}`;
    return undefined;
  }

  /** Opens the connection to receive from `peer`: with TLS, only to the identity the member id stands for. */
  private async connect(peer: AllreduceMember, host: string, port: number): Promise<TensorChannel> {
    const tls = this.security.tls;
    if (!tls) return connectTensorChannel(host, port, { maxTotalBytes: this.maxTotalBytes });
    const expected: Identity = peer.id === COORDINATOR_MEMBER_ID ? { role: 'coordinator', name: '' } : { role: 'worker', name: peer.id };
    // Decrypted bytes land straight in the reduction's arrays, as plaintext reads do (connectTensorChannel).
    const bridge = new ChannelReadBridge();
    try {
      return new TensorChannel(await connectMutualTls(host, port, tls, expected, bridge.onread), { maxTotalBytes: this.maxTotalBytes }, bridge);
    } catch (err) {
      throw new StreamClosedError(`collective: cannot connect to '${peer.id}' at ${peer.address}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** With TLS, a hello must come from the member its connection's certificate names; anything else is cut. */
  private checkHello(link: Link, from: string): void {
    const identity = this.certified.get(link);
    if (!this.security.tls || (identity && memberIdOf(identity, COORDINATOR_MEMBER_ID) === from)) return;
    const why = `a hello from '${from}' on ${link.channel.remote}: its certificate names ${identity ? identityUri(identity) : 'nobody'}, which may not act as '${from}'`;
    this.security.onRefused?.(`data plane: refused ${why}`);
    throw new WireError(`collective: ${why}`);
  }

  private onConnection(socket: net.Socket, identity?: Identity): void {
    const channel = new TensorChannel(socket, { maxTotalBytes: this.maxTotalBytes });
    if (this.closed) {
      void channel.close();
      return;
    }
    const link = new Link(channel, 'out', this);
    if (identity) this.certified.set(link, identity);
    this.unnamed.add(link);
  }

  private remember(key: string): void {
    this.recentKeys.push(key);
    if (this.recentKeys.length > RECENT_KEYS) this.recentKeys.shift();
  }
}
