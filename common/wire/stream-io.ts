import type { Writable } from 'node:stream';
import { WireError } from './errors';

/**
 * A grpc-js writable call, client or server side: both are object-mode node Writables, whose `write`
 * answers false when the buffer is full.
 */
export type WritableCall = Writable;

/** Thrown by `writeAll` when the call closed under it (the peer cancelled or the call ended). */
export class StreamClosedError extends WireError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StreamClosedError';
  }
}

/**
 * Writes every message, waiting for 'drain' whenever the call's buffer is full so a multi-megabyte
 * tensor is never queued whole in memory. Throws StreamClosedError as soon as the call is destroyed,
 * and stops quietly once `answered` settles (the peer replied early, e.g. with an error status: a
 * client-streaming call then emits nothing on its writable side, so waiting for 'drain' would hang).
 */
export async function writeAll<T>(
  call: WritableCall,
  messages: Iterable<T> | AsyncIterable<T>,
  answered?: Promise<unknown>,
): Promise<void> {
  let stopped = false;
  const stop = answered?.then(
    () => void (stopped = true),
    () => void (stopped = true),
  );
  for await (const message of messages) {
    if (stopped) return;
    if (call.destroyed) throw new StreamClosedError('the call closed before every message was sent');
    if (!call.write(message)) await drained(call, stop);
  }
}

/** Waits for room in the call's buffer, for the call to close, or for `stop` to settle. */
function drained(call: WritableCall, stop: Promise<void> | undefined): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    const done = (err?: unknown): void => {
      if (settled) return;
      settled = true;
      call.off('drain', onDrain);
      call.off('close', onClose);
      call.off('error', onError);
      if (err === undefined) resolve();
      else reject(err);
    };
    const onDrain = (): void => done();
    const onClose = (): void => done(new StreamClosedError('the call closed while waiting to send'));
    const onError = (err: unknown): void => done(err);
    call.once('drain', onDrain);
    call.once('close', onClose);
    call.once('error', onError);
    void stop?.then(() => done());
  });
}
