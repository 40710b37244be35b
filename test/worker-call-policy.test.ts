import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { RpcError, StreamClosedError, statusName } from '../common/wire';
import { CoordinatorLink, CoordinatorUnreachableError, callWithRetry, endsSession, isUnknownWorker } from '../worker';
import { getFreePort } from './support/free-port';

function rpcError(code: status): RpcError {
  return new RpcError('Coordinator/Test', code, statusName(code), `failed with ${statusName(code)}`, code === status.UNAVAILABLE);
}

/** An attempt that fails with `codes` in turn, then answers 'ok'; counts its calls. */
function scripted(codes: status[]): { attempt: () => Promise<string>; calls: number } {
  const s = {
    calls: 0,
    attempt: async () => {
      const code = codes[s.calls++];
      if (code !== undefined) throw rpcError(code);
      return 'ok';
    },
  };
  return s;
}

const POLICY = { target: '127.0.0.1:1', retryLimitMs: 60_000 };

describe('worker call policy: wait out an unreachable coordinator, for a limited time', function () {
  it('retries UNAVAILABLE until the call succeeds', async () => {
    const s = scripted([status.UNAVAILABLE, status.UNAVAILABLE]);
    const retries: number[] = [];
    assert.equal(await callWithRetry('Coordinator/Test', s.attempt, { ...POLICY, idempotent: false, onRetry: (_e, n) => retries.push(n) }), 'ok');
    assert.equal(s.calls, 3);
    assert.deepEqual(retries, [1, 2]);
  });

  it('retries DEADLINE_EXCEEDED only for idempotent calls', async () => {
    const idem = scripted([status.DEADLINE_EXCEEDED]);
    assert.equal(await callWithRetry('Coordinator/Test', idem.attempt, { ...POLICY, idempotent: true }), 'ok');
    const push = scripted([status.DEADLINE_EXCEEDED]);
    await assert.rejects(callWithRetry('Coordinator/Test', push.attempt, { ...POLICY, idempotent: false }),
      (e: unknown) => e instanceof RpcError && e.code === status.DEADLINE_EXCEEDED);
    assert.equal(push.calls, 1);
  });

  it('passes NOT_FOUND and FAILED_PRECONDITION through at once; alsoRetry adds a code for one call', async () => {
    const gone = scripted([status.NOT_FOUND]);
    await assert.rejects(callWithRetry('Coordinator/Test', gone.attempt, { ...POLICY, idempotent: true }), (e: unknown) => isUnknownWorker(e));
    assert.equal(gone.calls, 1);
    const stale = scripted([status.FAILED_PRECONDITION]);
    await assert.rejects(callWithRetry('Coordinator/Test', stale.attempt, { ...POLICY, idempotent: true }),
      (e: unknown) => e instanceof RpcError && e.code === status.FAILED_PRECONDITION && !isUnknownWorker(e));
    const full = scripted([status.RESOURCE_EXHAUSTED]);
    assert.equal(await callWithRetry('Coordinator/Test', full.attempt, { ...POLICY, idempotent: true, alsoRetry: [status.RESOURCE_EXHAUSTED] }), 'ok');
  });

  it('a bug in the attempt (a TypeError) fails at once with its own message: not retried, not disguised as a status', async () => {
    let calls = 0;
    await assert.rejects(callWithRetry('Coordinator/Test', async () => {
      calls++;
      throw new TypeError("Cannot read properties of undefined (reading 'workerId')");
    }, { ...POLICY, idempotent: true }), (e: unknown) => e instanceof TypeError && /reading 'workerId'/.test(e.message));
    assert.equal(calls, 1);
  });

  it('ends the session (the worker registers again) only on errors known to be transient; a bug or a refusal fails it', () => {
    const transient = [status.UNAVAILABLE, status.NOT_FOUND, status.DEADLINE_EXCEEDED, status.CANCELLED, status.ABORTED];
    for (const code of transient) assert.ok(endsSession(rpcError(code)), `${statusName(code)} ends the session`);
    assert.ok(endsSession(new StreamClosedError('the session stream ended')));
    for (const code of [status.INVALID_ARGUMENT, status.INTERNAL, status.FAILED_PRECONDITION, status.RESOURCE_EXHAUSTED]) {
      assert.equal(endsSession(rpcError(code)), false, `${statusName(code)} is not transient`);
    }
    assert.equal(endsSession(new TypeError('x is not a function')), false, 'a bug is not retried');
  });

  it('gives up with CoordinatorUnreachableError once the limit has passed', async () => {
    const down = scripted(Array(1000).fill(status.UNAVAILABLE));
    const t0 = Date.now();
    await assert.rejects(callWithRetry('Coordinator/Test', down.attempt, { ...POLICY, retryLimitMs: 400, idempotent: true }),
      (e: unknown) => e instanceof CoordinatorUnreachableError && e.method === 'Coordinator/Test' && e.target === '127.0.0.1:1' &&
        /unreachable: Coordinator\/Test kept failing/.test(e.message) && e.cause instanceof RpcError);
    const elapsed = Date.now() - t0;
    assert.ok(elapsed >= 400 && elapsed < 5000, `gave up after ${elapsed} ms`);
    assert.ok(down.calls >= 3, `attempted ${down.calls} times`);
  });

  it('an abort stops the waiting at once and throws the last error as it is', async () => {
    const down = scripted(Array(1000).fill(status.UNAVAILABLE));
    const abort = new AbortController();
    const pending = callWithRetry('Coordinator/Test', down.attempt, { ...POLICY, signal: abort.signal, idempotent: true });
    abort.abort();
    await assert.rejects(pending, (e: unknown) => e instanceof RpcError && e.code === status.UNAVAILABLE);
  });

  it('against a real port where nothing listens: Register is UNAVAILABLE, then unreachable', async () => {
    const port = await getFreePort();
    const link = new CoordinatorLink({ target: `127.0.0.1:${port}`, maxMessageBytes: 1 << 20, rpcDeadlineMs: 2000, transferDeadlineMs: 5000 });
    try {
      const caps = { workerId: 'w', processId: 'p', backend: 'cpu', maxMessageBytes: 1 << 20 };
      await assert.rejects(callWithRetry('Coordinator/Register', () => link.register(caps), { target: link.target, retryLimitMs: 500, idempotent: true }),
        (e: unknown) => e instanceof CoordinatorUnreachableError && (e.cause as RpcError).code === status.UNAVAILABLE);
    } finally {
      link.close();
    }
  });
});
