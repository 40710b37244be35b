import { connect, DebugEvents, Events, type NatsConnection, type Subscription } from 'nats';
import { BackoffSequence } from '../retry';
import { EventBusConnectError, EventBusError, EventHandlerError, EventPublishError, PublishFailure } from './errors';
import { compileEventBusOptions, type CompiledEventBusOptions, type EventBusOptions } from './event-bus-options';
import { signEvent } from './event-signing';
import type { EventVerifier } from './event-verifier';
import { decodeEventJson, encodeEvent, eventSubject, parseEvent, validateEvent, type BusEvent } from './events';

/** What the bus tells status listeners: the server it lost or regained. */
export interface BusStatusInfo {
  /** `host:port` of the server. */
  server: string;
  /** Reconnections since `connect` (0 in the first disconnect callback). */
  reconnects: number;
}

/** Receives each valid event in publish order; a throw is reported through `onError`, not fatal. */
export type EventHandler = (event: BusEvent) => void | Promise<void>;

/** Counters of one subscription, for logs and metrics. */
export interface SubscriptionStats {
  /** Valid events handed to the handler. */
  delivered: number;
  /** Messages rejected as corrupt, unknown or (without a verifier) of another job. */
  rejected: number;
  /** Events the subscription's verifier dropped (see `EventVerifier`). */
  unverified: number;
  /** Events whose handler threw. */
  handlerFailures: number;
}

/** A live subscription; `stop()` ends it after the events already received have been handled. */
export class EventSubscription {
  /** @internal built by `EventBus.subscribe`. */
  constructor(
    private readonly sub: Subscription,
    private readonly loop: Promise<void>,
    private readonly counters: SubscriptionStats,
  ) {}

  /** A snapshot of the counters. */
  stats(): SubscriptionStats {
    return { ...this.counters };
  }

  /** Stops receiving; resolves once the handler has finished with every event already received. */
  async stop(): Promise<void> {
    if (!this.sub.isClosed()) this.sub.unsubscribe();
    await this.loop;
  }
}

/**
 * The job's event channel between the coordinator and its workers, over core NATS on the subject
 * `shardwise.<jobId>.events`.
 *
 * Delivery is at most once: core NATS keeps nothing, so a worker misses every event published while it,
 * or the server, is disconnected (a server restart, a network cut). Correctness does not rest on the bus.
 * The coordinator stamps its `configVersion` on every step assignment, and a worker that sees a newer
 * version than its own fetches the configuration over gRPC before computing; the bus only makes changes
 * arrive before they are needed. `onReconnect` is the hint to reconcile at once rather than at the next
 * assignment.
 *
 * The client reconnects forever (`maxReconnectAttempts: -1`), waiting by the one retry policy's backoff.
 * `publish` resolves only once the server has confirmed the message and rejects with `EventPublishError`
 * otherwise, so the publisher knows which events certainly went out. Left to nats.js, a publish while
 * disconnected would be accepted and then silently discarded when the client redials.
 */
export class EventBus {
  /** The subject this job's events travel on. */
  readonly subject: string;
  private readonly disconnectListeners = new Set<(info: BusStatusInfo) => void>();
  private readonly reconnectListeners = new Set<(info: BusStatusInfo) => void>();
  private readonly loops = new Set<Promise<void>>();
  private isUp = true;
  private reconnectCount = 0;
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly options: CompiledEventBusOptions,
    private readonly backoff: BackoffSequence,
  ) {
    this.subject = eventSubject(options.jobId);
    this.track(this.watchStatus());
  }

  /** Connects to NATS; rejects with `EventBusConnectError` when no server answers the first time. */
  static async connect(options: EventBusOptions): Promise<EventBus> {
    const compiled = compileEventBusOptions(options);
    // nats.js runs the dial loop and asks for each wait: the policy's backoff, advanced per dial attempt.
    const backoff = await BackoffSequence.create({ initialDelayMs: compiled.reconnectInitialDelayMs, maxDelayMs: compiled.reconnectMaxDelayMs });
    let nc: NatsConnection;
    try {
      nc = await connect({
        servers: [...compiled.servers],
        name: compiled.name,
        ...(compiled.credentials && { user: compiled.credentials.user, pass: compiled.credentials.password }),
        maxReconnectAttempts: -1,
        reconnectDelayHandler: () => backoff.delayMs,
        timeout: compiled.connectTimeoutMs,
        pingInterval: compiled.pingIntervalMs,
        maxPingOut: 2,
      });
    } catch (err) {
      throw new EventBusConnectError(eventSubject(compiled.jobId), compiled.servers, { cause: err });
    }
    return new EventBus(nc, compiled, backoff);
  }

  /** The job this bus carries events for. */
  get jobId(): string {
    return this.options.jobId;
  }

  /** Whether the client is connected as far as it knows (a silently dead link is found by pings). */
  get connected(): boolean {
    return this.isUp && !this.nc.isClosed();
  }

  /** Reconnections since `connect`. */
  get reconnects(): number {
    return this.reconnectCount;
  }

  /**
   * Sends an event and resolves once the server has confirmed it (a PING/PONG after the message; the
   * server handles a connection's messages in order). Confirmed means the server routed it to the
   * subscribers connected at that moment, not that each one handled it. Throws `EventValidationError` for an invalid event
   * or one of another job, and `EventPublishError` when it was not confirmed: `disconnected` (known down,
   * not sent, since nats.js would discard it on reconnect), `dropped` (the link died before the
   * confirmation), `timeout` (unknown fate) or `closed`.
   */
  async publish(event: BusEvent): Promise<void> {
    const valid = validateEvent(event, this.options.jobId);
    if (this.nc.isClosed() || this.closing) throw new EventPublishError(this.subject, valid, PublishFailure.Closed);
    if (!this.isUp) throw new EventPublishError(this.subject, valid, PublishFailure.Disconnected);
    const key = this.options.signingKey;
    try {
      this.nc.publish(this.subject, encodeEvent(key ? signEvent(valid, key) : valid));
    } catch (err) {
      throw new EventPublishError(this.subject, valid, PublishFailure.Closed, { cause: err });
    }
    const outcome = await this.confirm();
    if (outcome !== 'confirmed') {
      throw new EventPublishError(this.subject, valid, outcome.reason, { cause: outcome.cause });
    }
  }

  /**
   * Calls `handler` with every valid event of this job, one at a time in arrival order. Resolves once the
   * server has registered the subscription, so every event published after that reaches it (while
   * connected). If the bus is down, it resolves at once and the subscription starts on reconnect. With a
   * `verifier`, only the events it verifies reach `handler` (it reports the others itself).
   */
  async subscribe(handler: EventHandler, options: { verifier?: EventVerifier } = {}): Promise<EventSubscription> {
    const sub = this.nc.subscribe(this.subject);
    const counters: SubscriptionStats = { delivered: 0, rejected: 0, unverified: 0, handlerFailures: 0 };
    const loop = this.track(this.receive(sub, handler, counters, options.verifier));
    if (this.isUp) await this.confirm();
    return new EventSubscription(sub, loop, counters);
  }

  /** Calls `listener` when the connection drops; events published until `onReconnect` are missed. */
  onDisconnect(listener: (info: BusStatusInfo) => void): () => void {
    this.disconnectListeners.add(listener);
    return () => this.disconnectListeners.delete(listener);
  }

  /**
   * Calls `listener` when the connection is back and the server has re-registered this client's
   * subscriptions. Reconcile (fetch the current configVersion) from here: anything published after the
   * fetch will arrive on the bus, and anything before it is in what was fetched.
   */
  onReconnect(listener: (info: BusStatusInfo) => void): () => void {
    this.reconnectListeners.add(listener);
    return () => this.reconnectListeners.delete(listener);
  }

  /**
   * Drains the connection (subscriptions finish the events already received, pending publishes are sent)
   * and closes it; when down, closes at once. Safe to call more than once.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (!this.nc.isClosed()) {
        if (this.isUp) await this.nc.drain().catch(() => this.nc.close());
        else await this.nc.close();
      }
      await Promise.allSettled([...this.loops]);
    })();
    return this.closing;
  }

  /** Waits for a PONG (everything sent before it was processed by the server), bounded in time. */
  private async confirm(): Promise<'confirmed' | { reason: PublishFailure; cause?: unknown }> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.options.publishTimeoutMs);
    });
    try {
      const result = await Promise.race([this.nc.flush().then(() => 'confirmed' as const), timeout]);
      return result === 'timeout' ? { reason: PublishFailure.Timeout } : result;
    } catch (err) {
      return { reason: this.nc.isClosed() ? PublishFailure.Closed : PublishFailure.Dropped, cause: err };
    } finally {
      clearTimeout(timer);
    }
  }

  private async receive(sub: Subscription, handler: EventHandler, counters: SubscriptionStats, verifier?: EventVerifier): Promise<void> {
    const { jobId } = this.options;
    for await (const msg of sub) {
      let event: BusEvent | undefined;
      try {
        event = verifier ? verifier.verify(decodeEventJson(msg.data, jobId)) : parseEvent(msg.data, jobId);
      } catch (err) {
        counters.rejected++;
        this.report(err);
        continue;
      }
      if (event === undefined) {
        counters.unverified++;
        continue;
      }
      try {
        await handler(event);
        counters.delivered++;
      } catch (err) {
        counters.handlerFailures++;
        this.report(new EventHandlerError(this.subject, event, { cause: err }));
      }
    }
  }

  private async watchStatus(): Promise<void> {
    let generation = 0;
    // nats.js never ends status iterators when the connection closes, so race each read with closed().
    const statuses = this.nc.status()[Symbol.asyncIterator]();
    const closed = this.nc.closed().then(() => ({ done: true as const, value: undefined }));
    for (;;) {
      const next = await Promise.race([statuses.next(), closed]);
      if (next.done) return;
      const status = next.value;
      const server = typeof status.data === 'string' ? status.data : '';
      switch (status.type) {
        case Events.Disconnect:
          this.isUp = false;
          generation++;
          this.notify(this.disconnectListeners, { server, reconnects: this.reconnectCount });
          break;
        case DebugEvents.Reconnecting:
          this.backoff.advance();
          break;
        case Events.Reconnect: {
          this.isUp = true;
          this.reconnectCount++;
          this.backoff.reset();
          const mine = ++generation;
          // Tell listeners only once the server has processed the re-sent SUBs, so that reconciling from
          // the callback leaves no window in which an event could be missed. If the link drops again
          // first, a new Disconnect/Reconnect pair follows and this one is skipped.
          void this.confirm().then((outcome) => {
            if (outcome === 'confirmed' && mine === generation) {
              this.notify(this.reconnectListeners, { server, reconnects: this.reconnectCount });
            }
          });
          break;
        }
        case Events.Error: {
          // A permission error names what was refused (nats.js puts it beside the bare code).
          const refused = (status as { permissionContext?: { operation: string; subject: string } }).permissionContext;
          const what = refused ? `: this user may not ${refused.operation === 'publish' ? 'publish to' : 'subscribe to'} ${refused.subject}` : '';
          this.report(new EventBusError(this.subject, `NATS reported an error: ${String(status.data)}${what}`));
          break;
        }
        default:
          break;
      }
    }
  }

  private notify(listeners: Set<(info: BusStatusInfo) => void>, info: BusStatusInfo): void {
    for (const listener of listeners) {
      try {
        listener(info);
      } catch (err) {
        this.report(err);
      }
    }
  }

  private report(err: unknown): void {
    const error =
      err instanceof EventBusError
        ? err
        : new EventBusError(this.subject, `listener threw: ${err instanceof Error ? err.message : String(err)}`, {
            cause: err,
          });
    try {
      this.options.onError(error);
    } catch {
      // The error sink itself failed; nothing sensible is left to tell, and the bus must keep running.
    }
  }

  private track(loop: Promise<void>): Promise<void> {
    const tracked = loop.catch((err) => this.report(err));
    this.loops.add(tracked);
    void tracked.finally(() => this.loops.delete(tracked));
    return tracked;
  }
}
