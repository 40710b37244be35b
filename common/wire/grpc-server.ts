import {
  Server,
  ServerCredentials,
  ServerReadableStream,
  ServerUnaryCall,
  ServerWritableStream,
  ServiceDefinition,
  UntypedServiceImplementation,
  handleClientStreamingCall,
  handleServerStreamingCall,
  handleUnaryCall,
} from '@grpc/grpc-js';
import type { EventEmitter } from 'node:events';
import type { ServerHttp2Session } from 'node:http2';
import { hostPort } from '../address';
import { ConfigError, ListenError } from '../errors';
import { toServiceError } from './grpc-status';
import { writeAll } from './stream-io';
import { DEFAULT_MAX_MESSAGE_BYTES } from './tensor-codec';

/** Where and how a gRPC server listens. */
export interface GrpcServerOptions {
  /** Interface to bind; `0.0.0.0` to accept other hosts (inside a pod). @default '127.0.0.1' */
  host?: string;
  /** TCP port; 0 picks a free one (tests). @default 0 */
  port?: number;
  /** Largest message received or sent; a bigger one fails with RESOURCE_EXHAUSTED. @default DEFAULT_MAX_MESSAGE_BYTES */
  maxMessageBytes?: number;
  /** Ping an idle client this often to notice a dead one. @default 10000 */
  keepaliveTimeMs?: number;
  /** Close the connection when a ping is not answered within this. @default 5000 */
  keepaliveTimeoutMs?: number;
  /**
   * HTTP/2 flow-control window (per connection and per stream) the server grants clients. The 64 KiB
   * default makes a client wait for a WINDOW_UPDATE every 64 KiB: a 8.6 MB gradient push took
   * ~18 ms instead of ~11 ms on loopback (bench/exchange.ts). @default DEFAULT_FLOW_CONTROL_WINDOW_BYTES
   */
  flowControlWindowBytes?: number;
  /** Transport security: `grpcServerCredentials` (common/security) for mutual TLS. @default plaintext */
  credentials?: ServerCredentials;
}

/** HTTP/2 window both sides grant: a few messages of the default limit in flight per stream. */
export const DEFAULT_FLOW_CONTROL_WINDOW_BYTES = 16 * 1024 * 1024;

/** A service to register: a definition (COORDINATOR_SERVICE) and its handlers. */
export interface ServiceBinding {
  definition: ServiceDefinition;
  implementation: UntypedServiceImplementation;
}

/** A listening server and how to stop it. */
export interface RunningGrpcServer {
  readonly server: Server;
  /** The bound port (the real one when 0 was asked for). */
  readonly port: number;
  /** `host:port` for clients. */
  readonly address: string;
  /** Lets calls in flight finish for up to `graceMs`, then cuts the rest (clients see UNAVAILABLE). */
  shutdown(graceMs?: number): Promise<void>;
}

function checkPositive(field: string, value: number): number {
  if (!Number.isInteger(value) || value <= 0) throw new ConfigError(field, `expected a positive integer, got ${value}`);
  return value;
}

/** Starts a grpc-js server with the given services; resolves once it is listening. */
export async function startGrpcServer(services: readonly ServiceBinding[], options: GrpcServerOptions = {}): Promise<RunningGrpcServer> {
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError('server.port', `expected 0..65535, got ${port}`);
  const maxMessageBytes = checkPositive('server.maxMessageBytes', options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES);
  const windowBytes = checkPositive('server.flowControlWindowBytes', options.flowControlWindowBytes ?? DEFAULT_FLOW_CONTROL_WINDOW_BYTES);
  const server = new Server({
    'grpc.max_receive_message_length': maxMessageBytes,
    'grpc.max_send_message_length': maxMessageBytes,
    'grpc.keepalive_time_ms': checkPositive('server.keepaliveTimeMs', options.keepaliveTimeMs ?? 10_000),
    'grpc.keepalive_timeout_ms': checkPositive('server.keepaliveTimeoutMs', options.keepaliveTimeoutMs ?? 5_000),
  });
  for (const s of services) server.addService(s.definition, s.implementation);
  const target = hostPort(host, port);
  const bound = await new Promise<number>((resolve, reject) => {
    server.bindAsync(target, options.credentials ?? ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(new ListenError('gRPC server', target, '--port', { cause: err })) : resolve(p));
  });
  enlargeWindows(server, windowBytes);
  const address = hostPort(host, bound);
  return {
    server,
    port: bound,
    address,
    shutdown: (graceMs = 5_000) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => server.forceShutdown(), graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      }),
  };
}

/**
 * grpc-js has a client option for the HTTP/2 window ('grpc-node.flow_control_window') but no server
 * one, so this widens it on each new session through the server's http2 listeners. That field is
 * grpc-js internals: if it is not there the server simply keeps the default window (slower, correct).
 */
function enlargeWindows(server: Server, windowBytes: number): void {
  const listeners = (server as unknown as { http2Servers?: unknown }).http2Servers;
  if (!(listeners instanceof Map)) return;
  for (const listener of listeners.keys() as Iterable<EventEmitter>) {
    listener.on('session', (session: ServerHttp2Session) => {
      try {
        session.setLocalWindowSize(windowBytes);
        session.settings({ initialWindowSize: windowBytes });
      } catch {
        // The session is already closing: nothing to widen.
      }
    });
  }
}

/** A unary handler from an async function; a throw becomes the status `grpc-status.ts` assigns. */
export function unaryHandler<Req, Res>(fn: (request: Req, call: ServerUnaryCall<Req, Res>) => Promise<Res>): handleUnaryCall<Req, Res> {
  return (call, callback) => {
    fn(call.request, call).then(
      (res) => callback(null, res),
      (err: unknown) => callback(toServiceError(err)),
    );
  };
}

/**
 * A client-streaming handler from an async function that consumes the messages. Throwing mid-stream
 * answers at once with the error's status; the rest of the client's stream is discarded. A client that
 * goes away (cancel, deadline) ends the iteration with an error, so the function never waits forever.
 */
export function clientStreamHandler<Req, Res>(
  fn: (messages: AsyncIterable<Req>, call: ServerReadableStream<Req, Res>) => Promise<Res>,
): handleClientStreamingCall<Req, Res> {
  return (call, callback) => {
    fn(call, call).then(
      (res) => callback(null, res),
      (err: unknown) => {
        if (!call.cancelled) callback(toServiceError(err));
        call.destroy();
      },
    );
  };
}

/**
 * A server-streaming handler from a function that yields the messages; they are written with
 * backpressure and the stream stops early when the client goes away. A throw ends the stream with
 * the error's status.
 */
export function serverStreamHandler<Req, Res>(
  fn: (request: Req, call: ServerWritableStream<Req, Res>) => Iterable<Res> | AsyncIterable<Res>,
): handleServerStreamingCall<Req, Res> {
  return (call) => {
    (async () => {
      await writeAll(call, fn(call.request, call));
      call.end();
    })().catch((err: unknown) => {
      if (!call.cancelled && !call.destroyed) call.emit('error', toServiceError(err));
    });
  };
}
