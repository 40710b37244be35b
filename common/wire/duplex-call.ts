import type { CallOptions, ClientDuplexStream, Metadata as GrpcMetadata, ServerDuplexStream, handleBidiStreamingCall } from '@grpc/grpc-js';
import { Metadata, status } from '@grpc/grpc-js';
import { RpcError } from './errors';
import { fromServiceError, statusName, toServiceError } from './grpc-status';
import { StreamClosedError, writeAll } from './stream-io';

/*
 * Long-lived bidirectional calls (the worker's Session stream). grpc-js gives such a call one deadline
 * for its whole life, so it gets none: instead every read waits with its own deadline (`DuplexCall.read`),
 * and keepalive pings on the channel notice a dead peer. Both sides see the end of the call as one event:
 * the server's requests end or fail, the client's reads fail.
 */

/** Reads a call's messages one at a time; a read fails once the call ends, errs, or `closed` settles. */
class MessageReader<T> {
  private readonly queue: T[] = [];
  private waiting: { resolve: (value: T) => void; reject: (err: unknown) => void } | undefined;
  private failure: unknown;

  constructor(stream: NodeJS.EventEmitter, onEnd: () => unknown, mapError: (err: unknown) => unknown = (err) => err) {
    stream.on('data', (message: T) => {
      const w = this.waiting;
      this.waiting = undefined;
      if (w) w.resolve(message);
      else this.queue.push(message);
    });
    stream.on('error', (err: unknown) => this.fail(mapError(err)));
    stream.on('end', () => this.fail(onEnd()));
    stream.on('close', () => this.fail(onEnd()));
  }

  /** Fails the reads from now on (the first failure wins). */
  fail(err: unknown): void {
    this.failure ??= err;
    const w = this.waiting;
    this.waiting = undefined;
    w?.reject(this.failure);
  }

  /** The next message, in arrival order; rejects when the call ended first. */
  next(): Promise<T> {
    const queued = this.queue.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.waiting) return Promise.reject(new StreamClosedError('a read is already waiting on this call'));
    return new Promise<T>((resolve, reject) => (this.waiting = { resolve, reject }));
  }
}

/**
 * A bidirectional handler from a function that consumes the client's messages and yields its answers;
 * they are written with backpressure. The requests iterable ends when the client half-closes and throws
 * StreamClosedError when the client goes away (cancel, broken connection, keepalive timeout), so the
 * function never waits forever and its `finally` runs. A throw ends the call with the error's status.
 */
export function duplexStreamHandler<Req, Res>(
  fn: (requests: AsyncIterable<Req>, call: ServerDuplexStream<Req, Res>, gone: AbortSignal) => AsyncIterable<Res>,
): handleBidiStreamingCall<Req, Res> {
  return (call) => {
    const gone = new AbortController();
    let ended = false;
    const reader = new MessageReader<Req>(call, () => (ended ? END : new StreamClosedError('the client closed the call')));
    call.on('end', () => (ended = true));
    call.on('cancelled', () => {
      gone.abort();
      reader.fail(new StreamClosedError('the client cancelled the call or its connection broke'));
    });
    const requests: AsyncIterable<Req> = {
      [Symbol.asyncIterator]: () => ({
        next: async () => {
          try {
            return { done: false, value: await reader.next() };
          } catch (err) {
            if (err === END) return { done: true, value: undefined };
            throw err;
          }
        },
      }),
    };
    (async () => {
      await writeAll(call, fn(requests, call, gone.signal));
      call.end();
    })().catch((err: unknown) => {
      if (!call.cancelled && !call.destroyed) call.emit('error', toServiceError(err));
    }).finally(() => gone.abort());
  };
}

/** The client's half-close, as the reader's end marker. */
const END = Symbol('end of the client stream');

/** A client's open bidirectional call: send messages, read answers each with a deadline, close. */
export interface DuplexCall<Req, Res> {
  /** Sends one message; throws StreamClosedError once the call is over. */
  send(message: Req): Promise<void>;
  /**
   * The next message; fails with DEADLINE_EXCEEDED (retryable) when none arrives within `timeoutMs`, and
   * with the call's status (RpcError) once it ended. A read that timed out cancels the call: a session
   * whose peer went silent is over.
   */
  read(timeoutMs: number): Promise<Res>;
  /** Cancels the call (the server sees it end at once); idempotent. */
  cancel(): void;
  /** Settles when the call is over, for any reason. */
  readonly ended: Promise<void>;
}

/**
 * Opens a bidirectional call without a call deadline (see the note at the top of this file); `start` is
 * e.g. `(md, o) => client.session(md, o)`. Aborting `signal` cancels it.
 */
export function openDuplexCall<Req, Res>(
  method: string,
  options: { signal?: AbortSignal; metadata?: GrpcMetadata },
  start: (metadata: GrpcMetadata, callOptions: Partial<CallOptions>) => ClientDuplexStream<Req, Res>,
): DuplexCall<Req, Res> {
  const call = start(options.metadata ?? new Metadata(), {});
  let cancelledLocally = false;
  let finished = false;
  const reader = new MessageReader<Res>(call,
    () => new RpcError(method, status.UNAVAILABLE, statusName(status.UNAVAILABLE), 'the coordinator ended the call', true),
    (err) => fromServiceError(method, err, { cancelledLocally }));
  const ended = new Promise<void>((resolve) => {
    call.on('close', () => resolve());
    call.on('error', () => resolve());
  }).then(() => void (finished = true));
  const cancel = (): void => {
    if (finished) return;
    cancelledLocally = true;
    call.cancel();
  };
  const onAbort = (): void => cancel();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  void ended.then(() => options.signal?.removeEventListener('abort', onAbort));
  return {
    ended,
    cancel,
    send: async (message) => {
      if (finished || call.destroyed) throw new StreamClosedError(`${method}: the call is over`);
      await writeAll(call, [message]);
    },
    read: (timeoutMs) => {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          reject(new RpcError(method, status.DEADLINE_EXCEEDED, statusName(status.DEADLINE_EXCEEDED),
            `no message within ${timeoutMs} ms on the open call`, true));
          cancel();
        }, timeoutMs);
      });
      return Promise.race([reader.next(), late]).finally(() => clearTimeout(timer));
    },
  };
}
