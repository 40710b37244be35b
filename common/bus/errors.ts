import { ShardwiseError } from '../errors';

/** Base class of the event bus's errors, so callers can catch everything the bus throws at once. */
export class EventBusError extends ShardwiseError {
  /** The NATS subject involved, e.g. `shardwise.job-1.events`. */
  readonly subject: string;
  constructor(subject: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'EventBusError';
    this.subject = subject;
  }
}

/**
 * A message is not a valid shardwise event: not JSON, an unknown `type`, a missing or mistyped field, or
 * another job's event. Raised on receive (reported, then skipped) and on publish (thrown to the caller).
 */
export class EventValidationError extends EventBusError {
  /** One line per problem, each naming the field, e.g. `effectiveStep: expected number, received string`. */
  readonly problems: readonly string[];
  /** The first bytes of the offending message as text, for the log line. */
  readonly preview: string;
  constructor(subject: string, problems: readonly string[], preview: string, options?: { cause?: unknown }) {
    super(subject, `invalid event on ${subject}: ${problems.join('; ')} (message: ${preview})`, options);
    this.name = 'EventValidationError';
    this.problems = problems;
    this.preview = preview;
  }
}

/** Why a publish did not reach the server. */
export const PublishFailure = {
  /** The client knew it was disconnected; NATS would have dropped the message, so it was not sent. */
  Disconnected: 'disconnected',
  /** The connection dropped before the server confirmed; NATS discards unsent data on reconnect. */
  Dropped: 'dropped',
  /** No confirmation within `publishTimeoutMs`; the message may or may not have been delivered. */
  Timeout: 'timeout',
  /** The bus was closed. */
  Closed: 'closed',
} as const;
export type PublishFailure = (typeof PublishFailure)[keyof typeof PublishFailure];

/** An event was not confirmed by the NATS server; `reason` says whether it may still have gone out. */
export class EventPublishError extends EventBusError {
  readonly eventType: string;
  readonly configVersion: number;
  readonly reason: PublishFailure;
  constructor(
    subject: string,
    event: { type: string; configVersion: number },
    reason: PublishFailure,
    options?: { cause?: unknown },
  ) {
    super(
      subject,
      `expected the server to confirm '${event.type}' event (configVersion ${event.configVersion}) on ${subject}, ` +
        `but the publish failed: ${reason}`,
      options,
    );
    this.name = 'EventPublishError';
    this.eventType = event.type;
    this.configVersion = event.configVersion;
    this.reason = reason;
  }
}

/** A subscriber's handler threw; the subscriber reports it and goes on with the next event. */
export class EventHandlerError extends EventBusError {
  readonly eventType: string;
  readonly configVersion: number;
  constructor(subject: string, event: { type: string; configVersion: number }, options?: { cause?: unknown }) {
    const why = options?.cause instanceof Error ? options.cause.message : String(options?.cause);
    super(
      subject,
      `handler for '${event.type}' event (configVersion ${event.configVersion}) on ${subject} threw: ${why}`,
      options,
    );
    this.name = 'EventHandlerError';
    this.eventType = event.type;
    this.configVersion = event.configVersion;
  }
}

/** The first connection to NATS failed (later drops are retried forever and never raise this). */
export class EventBusConnectError extends EventBusError {
  readonly servers: readonly string[];
  constructor(subject: string, servers: readonly string[], options?: { cause?: unknown }) {
    const why = options?.cause instanceof Error ? options.cause.message : String(options?.cause);
    super(subject, `could not connect to NATS at ${servers.join(', ')}: ${why}`, options);
    this.name = 'EventBusConnectError';
    this.servers = servers;
  }
}
