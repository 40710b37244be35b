import { ConfigError } from '../errors';
import type { NatsCredentials } from './access';
import type { EventBusError } from './errors';
import { JOB_ID_PATTERN } from './events';

/** How to reach NATS and how hard to try; every field but `servers`, `jobId` and `name` has a default. */
export interface EventBusOptions {
  /** NATS server URLs, e.g. `nats://127.0.0.1:4222` (or one string). */
  servers: string | readonly string[];
  /** The job whose events this bus carries; one NATS subject token. */
  jobId: string;
  /** Client name the server shows (`coordinator`, `worker-3`). */
  name: string;
  /** User and password when the server requires them (see `natsAuthorization`). @default none */
  credentials?: NatsCredentials;
  /** The job's bus key (`deriveBusKey`): `publish` signs every event with it. @default unsigned */
  signingKey?: Buffer;
  /**
   * Scale of the wait before the second reconnect attempt (the first is immediate); it grows per failed
   * attempt, with decorrelated jitter so workers do not reconnect in step (the one retry policy). @default 100
   */
  reconnectInitialDelayMs?: number;
  /** Ceiling of the reconnect wait. @default 5000 */
  reconnectMaxDelayMs?: number;
  /** Limit of the first connection (later ones are retried forever). @default 10000 */
  connectTimeoutMs?: number;
  /** How long `publish` waits for the server to confirm. @default 5000 */
  publishTimeoutMs?: number;
  /**
   * Client-to-server ping period; a connection that misses 2 pings is treated as dead and reconnected.
   * A server restart closes the socket and is noticed at once; this catches a silently vanished peer.
   * @default 20000
   */
  pingIntervalMs?: number;
  /**
   * Receives what goes wrong asynchronously: rejected messages, handler exceptions, listener exceptions,
   * NATS async errors. None of them stops the bus. @default logs `error.message` with console.warn
   */
  onError?: (error: EventBusError) => void;
}

/** `EventBusOptions` with every default filled and every field checked. */
export interface CompiledEventBusOptions {
  servers: readonly string[];
  jobId: string;
  name: string;
  credentials?: NatsCredentials;
  signingKey?: Buffer;
  reconnectInitialDelayMs: number;
  reconnectMaxDelayMs: number;
  connectTimeoutMs: number;
  publishTimeoutMs: number;
  pingIntervalMs: number;
  onError: (error: EventBusError) => void;
}

function positive(field: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) {
    throw new ConfigError(field, `expected a positive number of milliseconds, got ${value}`);
  }
  return value;
}

/**
 * Fills the defaults of `EventBusOptions` and checks each field and the rules between them, throwing a
 * `ConfigError` that names the field. Pure, so it can be tested without a server.
 */
export function compileEventBusOptions(options: EventBusOptions): CompiledEventBusOptions {
  const servers = typeof options.servers === 'string' ? [options.servers] : [...options.servers];
  if (servers.length === 0 || servers.some((s) => s.trim() === '')) {
    throw new ConfigError('servers', `expected at least one non-empty NATS URL, got ${JSON.stringify(servers)}`);
  }
  if (!JOB_ID_PATTERN.test(options.jobId)) {
    throw new ConfigError(
      'jobId',
      `expected one NATS subject token (1-128 letters, digits, _ or -), got ${JSON.stringify(options.jobId)}`,
    );
  }
  if (options.name.trim() === '') {
    throw new ConfigError('name', 'expected a non-empty client name');
  }
  const initial = positive('reconnectInitialDelayMs', options.reconnectInitialDelayMs ?? 100);
  const max = positive('reconnectMaxDelayMs', options.reconnectMaxDelayMs ?? 5000);
  if (max < initial) {
    throw new ConfigError('reconnectMaxDelayMs', `must be at least reconnectInitialDelayMs (${initial}), got ${max}`);
  }
  const name = options.name;
  return {
    servers,
    jobId: options.jobId,
    name,
    credentials: options.credentials,
    signingKey: options.signingKey,
    reconnectInitialDelayMs: initial,
    reconnectMaxDelayMs: max,
    connectTimeoutMs: positive('connectTimeoutMs', options.connectTimeoutMs ?? 10_000),
    publishTimeoutMs: positive('publishTimeoutMs', options.publishTimeoutMs ?? 5000),
    pingIntervalMs: positive('pingIntervalMs', options.pingIntervalMs ?? 20_000),
    onError: options.onError ?? ((error) => console.warn(`[shardwise bus ${name}] ${error.message}`)),
  };
}
