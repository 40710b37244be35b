import {
  CallOptions,
  ChannelCredentials,
  ClientReadableStream,
  ClientUnaryCall,
  ClientWritableStream,
  Metadata,
  ServiceError,
  credentials,
} from '@grpc/grpc-js';
import type { CoordinatorClient } from '../../proto';
import { ConfigError } from '../errors';
import { FastCoordinatorClient } from './chunk-serializer';
import { fromServiceError } from './grpc-status';
import { DEFAULT_FLOW_CONTROL_WINDOW_BYTES } from './grpc-server';
import { StreamClosedError, writeAll } from './stream-io';
import { DEFAULT_MAX_MESSAGE_BYTES } from './tensor-codec';

/** How a client connects to the coordinator. */
export interface GrpcClientOptions {
  /** `host:port` of the coordinator. */
  target: string;
  /** Largest message sent or received. @default DEFAULT_MAX_MESSAGE_BYTES */
  maxMessageBytes?: number;
  /**
   * Ping the server this often, even between calls, so a dead coordinator or a half-open connection
   * is noticed without waiting for a call's deadline. @default 10000
   */
  keepaliveTimeMs?: number;
  /** Drop the connection when a ping is not answered within this. @default 5000 */
  keepaliveTimeoutMs?: number;
  /** HTTP/2 window granted to the server's streams. @default DEFAULT_FLOW_CONTROL_WINDOW_BYTES */
  flowControlWindowBytes?: number;
  /** Ceiling of grpc-js's own reconnect backoff, so a restarted coordinator is found quickly. @default 2000 */
  maxReconnectBackoffMs?: number;
  /** Transport security: `grpcChannelCredentials` (common/security) for mutual TLS. @default plaintext */
  credentials?: ChannelCredentials;
}

/**
 * A Coordinator client on COORDINATOR_SERVICE (one-copy chunk serializers) with message limits,
 * keepalive and reconnect settings applied. Every call still needs a deadline: use the helpers below.
 */
export function createCoordinatorClient(options: GrpcClientOptions): CoordinatorClient {
  if (!/^.+:\d+$/.test(options.target)) throw new ConfigError('client.target', `expected host:port, got '${options.target}'`);
  const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  if (!Number.isInteger(maxMessageBytes) || maxMessageBytes <= 0) {
    throw new ConfigError('client.maxMessageBytes', `expected a positive integer, got ${maxMessageBytes}`);
  }
  return new FastCoordinatorClient(options.target, options.credentials ?? credentials.createInsecure(), {
    'grpc.max_receive_message_length': maxMessageBytes,
    'grpc.max_send_message_length': maxMessageBytes,
    'grpc.keepalive_time_ms': options.keepaliveTimeMs ?? 10_000,
    'grpc.keepalive_timeout_ms': options.keepaliveTimeoutMs ?? 5_000,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.max_reconnect_backoff_ms': options.maxReconnectBackoffMs ?? 2_000,
    // Larger HTTP/2 windows let a multi-megabyte stream flow without waiting on WINDOW_UPDATEs.
    'grpc-node.flow_control_window': options.flowControlWindowBytes ?? DEFAULT_FLOW_CONTROL_WINDOW_BYTES,
    // With TLS the server is checked by the identity in its certificate, not by name; a fixed SNI name
    // keeps Node from sending an IP address as one (RFC 6066, DEP0123) when the target is an address.
    ...(options.credentials ? { 'grpc.ssl_target_name_override': 'shardwise-coordinator' } : {}),
  });
}

/** Per-call settings of the helpers below. */
export interface RpcCallOptions {
  /** The call fails with DEADLINE_EXCEEDED after this long; required, there is no unbounded call. */
  deadlineMs: number;
  /** Cancels the call (the caller sees CANCELLED). */
  signal?: AbortSignal;
  metadata?: Metadata;
}

/** The absolute deadline `ms` from now, as grpc-js takes it. */
export function deadlineAfter(ms: number): Date {
  return new Date(Date.now() + ms);
}

function callOptions(options: RpcCallOptions): Partial<CallOptions> {
  if (!(options.deadlineMs > 0)) throw new ConfigError('call.deadlineMs', `expected a positive deadline, got ${options.deadlineMs}`);
  return { deadline: deadlineAfter(options.deadlineMs) };
}

/** Cancels the call when `signal` aborts; `cancelled` records that this side asked for it. */
class LocalCancel {
  cancelled = false;
  private call?: { cancel(): void };
  private release = (): void => undefined;
  constructor(private readonly signal: AbortSignal | undefined) {}
  attach(call: { cancel(): void }): void {
    this.call = call;
    const signal = this.signal;
    if (!signal) return;
    const onAbort = (): void => this.cancel();
    if (signal.aborted) this.cancel();
    else {
      signal.addEventListener('abort', onAbort, { once: true });
      this.release = () => signal.removeEventListener('abort', onAbort);
    }
  }
  cancel(): void {
    this.cancelled = true;
    this.call?.cancel();
  }
  dispose(): void {
    this.release();
  }
}

type Callback<Res> = (err: ServiceError | null, res?: Res) => void;

/**
 * One unary call as a promise; failures become RpcError naming `method`.
 * `start` is e.g. `(md, o, cb) => client.heartbeat(request, md, o, cb)`.
 */
export function unaryCall<Res>(
  method: string,
  options: RpcCallOptions,
  start: (metadata: Metadata, callOptions: Partial<CallOptions>, callback: Callback<Res>) => ClientUnaryCall,
): Promise<Res> {
  return new Promise<Res>((resolve, reject) => {
    const local = new LocalCancel(options.signal);
    const call = start(options.metadata ?? new Metadata(), callOptions(options), (err, res) => {
      local.dispose();
      if (err) reject(fromServiceError(method, err, { cancelledLocally: local.cancelled }));
      else resolve(res as Res);
    });
    local.attach(call);
  });
}

/**
 * A server-streaming call as an async iterable. Breaking out of the loop cancels the call; a failed
 * call (status, deadline, server gone) throws RpcError from the loop.
 */
export async function* serverStreamCall<Res>(
  method: string,
  options: RpcCallOptions,
  start: (metadata: Metadata, callOptions: Partial<CallOptions>) => ClientReadableStream<Res>,
): AsyncGenerator<Res, void, undefined> {
  const local = new LocalCancel(options.signal);
  const call = start(options.metadata ?? new Metadata(), callOptions(options));
  local.attach(call);
  let finished = false;
  try {
    for await (const message of call) yield message as Res;
    finished = true;
  } catch (err) {
    finished = true;
    throw fromServiceError(method, err, { cancelledLocally: local.cancelled });
  } finally {
    local.dispose();
    if (!finished) local.cancel();
  }
}

/**
 * A client-streaming call: writes `messages` with backpressure, then resolves with the reply. When the
 * server answers early (it refused a chunk) sending stops and the server's status is thrown.
 * `idempotent` (default false: a push is not repeated blindly) only sets RpcError.retryable.
 */
export async function clientStreamCall<Req, Res>(
  method: string,
  options: RpcCallOptions & { idempotent?: boolean },
  messages: Iterable<Req> | AsyncIterable<Req>,
  start: (metadata: Metadata, callOptions: Partial<CallOptions>, callback: Callback<Res>) => ClientWritableStream<Req>,
): Promise<Res> {
  let call: ClientWritableStream<Req> | undefined;
  const local = new LocalCancel(options.signal);
  const context = (): { idempotent: boolean; cancelledLocally: boolean } => ({
    idempotent: options.idempotent ?? false,
    cancelledLocally: local.cancelled,
  });
  const settings = callOptions(options);
  const answered = new Promise<Res>((resolve, reject) => {
    call = start(options.metadata ?? new Metadata(), settings, (err, res) => {
      if (err) reject(fromServiceError(method, err, context()));
      else resolve(res as Res);
    });
  });
  const c = call as ClientWritableStream<Req>;
  local.attach(c);
  try {
    try {
      await writeAll(c, messages, answered);
      c.end();
    } catch (err) {
      if (!(err instanceof StreamClosedError)) {
        // Producing the messages failed here (a bad tensor): that error, not CANCELLED, is the cause.
        local.cancel();
        answered.catch(() => undefined);
        throw err;
      }
      // The call closed under us: the server's status (if it sent one) says why.
      c.cancel();
      await answered;
      throw fromServiceError(method, err, context());
    }
    return await answered;
  } finally {
    local.dispose();
  }
}
