import {
  type BackoffOptions,
  type BusEvent,
  deriveBusKey,
  EventBus,
  EventBusConnectError,
  type EventSubscription,
  EventValidationError,
  EventVerifier,
  type NatsCredentials,
  retryTransient,
  type WorkerMetrics,
} from '../common';

/** Where the job's events are and who hears them. */
export interface BusListenerOptions {
  /** NATS URL from the RegisterResponse. */
  url: string;
  jobId: string;
  /** Client name the NATS server shows, e.g. `worker-host-123`. */
  name: string;
  /** The worker role's NATS user, when the server requires one. */
  credentials?: NatsCredentials;
  /** The job's join token: events must carry the signature of the key derived from it. @default none (--insecure) */
  joinToken?: Buffer;
  /** The configuration version in force on the worker: a replay of an event at or below it is dropped. */
  versionInForce: () => number;
  /** Each verified event of the job, in arrival order. */
  onEvent: (event: BusEvent) => void;
  /**
   * The connection came back (events published meanwhile are lost): reconcile, e.g. fetch the config.
   * Also called after a late first connection, for the same reason.
   */
  onReconnect: () => void;
  metrics?: WorkerMetrics;
  log: (line: string) => void;
  /** Waits between attempts while the first connection fails (the one retry policy's). @default 100 ms up to 5 s */
  retry?: BackoffOptions;
}

/**
 * The worker's optional subscription to the job's event bus. It connects in the background, so a bus
 * that is down or slow never delays the worker: configuration changes then arrive over gRPC (the
 * version on each assignment tells the worker when to fetch). While the first connection fails it
 * retries by the one retry policy (only an unreachable server is retried); after that the bus client
 * reconnects by itself.
 */
export class BusListener {
  private bus: EventBus | undefined;
  private subscription: EventSubscription | undefined;
  private readonly closing = new AbortController();
  private readonly started: Promise<void>;

  constructor(private readonly options: BusListenerOptions) {
    this.started = this.connectLoop();
  }

  get url(): string {
    return this.options.url;
  }

  get jobId(): string {
    return this.options.jobId;
  }

  /** Whether the bus is connected and subscribed now (events may be missed while it is not). */
  get connected(): boolean {
    return this.subscription !== undefined && (this.bus?.connected ?? false);
  }

  /** Stops listening and closes the connection; safe to call more than once. */
  async close(): Promise<void> {
    this.closing.abort();
    await this.started;
    await this.subscription?.stop().catch(() => undefined);
    await this.bus?.close().catch(() => undefined);
    this.options.metrics?.busConnected.set(0);
  }

  /** Checks each event before the worker acts on it; see `EventVerifier` and the unverified-events metric. */
  private verifier(): EventVerifier {
    const { options } = this;
    return new EventVerifier({
      jobId: options.jobId,
      key: options.joinToken && deriveBusKey(options.joinToken, options.jobId),
      versionInForce: options.versionInForce,
      onUnverified: (error, first) => {
        options.metrics?.busUnverifiedEvents.inc({ reason: error.reason });
        // One line per reason: a flood of forged events must not flood the log too.
        if (first) options.log(`event bus: ${error.message}; counted in shardwise_worker_bus_unverified_events_total{reason="${error.reason}"}, not logged again`);
      },
    });
  }

  private async connectLoop(): Promise<void> {
    const { options } = this;
    let bus: EventBus;
    let retried = false;
    try {
      bus = await retryTransient(() => EventBus.connect({
        servers: options.url,
        jobId: options.jobId,
        name: options.name,
        credentials: options.credentials,
        connectTimeoutMs: 5000,
        onError: (error) => {
          if (error instanceof EventValidationError) options.metrics?.busRejectedEvents.inc();
          options.log(`event bus: ${error.message}`);
        },
      }), {
        ...options.retry,
        isTransient: (err) => err instanceof EventBusConnectError,
        signal: this.closing.signal,
        onRetry: (err, attempt) => {
          retried = true;
          if (attempt > 1) return;
          const why = err instanceof Error ? err.message : String(err);
          options.log(`event bus ${options.url} unreachable (${why}); configuration changes come over gRPC, retrying in the background`);
        },
      });
    } catch (err) {
      // Closed while it waited for a server, or refused for good (bad credentials): gRPC carries the config.
      if (!this.closing.signal.aborted) options.log(`event bus ${options.url}: giving up (${err instanceof Error ? err.message : String(err)})`);
      return;
    }
    if (this.closing.signal.aborted) {
      await bus.close();
      return;
    }
    this.bus = bus;
    bus.onDisconnect(() => {
      options.metrics?.busConnected.set(0);
      options.log(`event bus ${options.url} disconnected; configuration changes come over gRPC until it is back`);
    });
    bus.onReconnect(() => {
      options.metrics?.busConnected.set(1);
      options.metrics?.busReconnects.inc();
      options.onReconnect();
    });
    try {
      this.subscription = await bus.subscribe((event) => options.onEvent(event), { verifier: this.verifier() });
    } catch (err) {
      options.log(`event bus ${options.url}: could not subscribe (${err instanceof Error ? err.message : String(err)}); configuration changes come over gRPC`);
      return;
    }
    options.metrics?.busConnected.set(1);
    options.log(`event bus: listening on ${bus.subject} at ${options.url}`);
    // Connected late: events published meanwhile were missed.
    if (retried) options.onReconnect();
  }
}
