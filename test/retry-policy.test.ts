import assert from 'node:assert/strict';
import { ConfigError } from '../common/errors';
import { BackoffSequence, compileBackoff, retryTransient } from '../common/retry';

/** An error the tests name as transient. */
class Flaky extends Error {
  constructor(readonly attempt: number) {
    super(`flaky attempt ${attempt}`);
    this.name = 'Flaky';
  }
}

const FAST = { initialDelayMs: 1, maxDelayMs: 5, isTransient: (e: unknown) => e instanceof Flaky };

// The one retry policy (cockatiel underneath): only failures a caller names as transient are retried,
// with a bounded, jittered wait; a bug fails at once with its own message.
describe('retry policy: transient failures retried, bugs not', () => {
  it('retries a transient failure until the attempt succeeds, telling each retry', async () => {
    const retries: number[] = [];
    const calls: number[] = [];
    const result = await retryTransient(async (n) => {
      calls.push(n);
      if (n < 3) throw new Flaky(n);
      return 'ok';
    }, { ...FAST, onRetry: (err, n, delayMs) => {
      assert.ok(err instanceof Flaky && delayMs >= 0 && delayMs <= 5, `retry ${n} after ${String(err)}, waiting ${delayMs} ms`);
      retries.push(n);
    } });
    assert.equal(result, 'ok');
    assert.deepEqual(calls, [1, 2, 3]);
    assert.deepEqual(retries, [1, 2]);
  });

  it('fails at once on a bug (a TypeError), with its message, without a second attempt', async () => {
    let calls = 0;
    const bug = new TypeError("Cannot read properties of undefined (reading 'length')");
    await assert.rejects(retryTransient(async () => {
      calls++;
      throw bug;
    }, FAST), (e: unknown) => e === bug && /reading 'length'/.test((e as Error).message));
    assert.equal(calls, 1);
  });

  it('gives up after maxAttempts with the last transient error as it is', async () => {
    let calls = 0;
    await assert.rejects(retryTransient(async (n) => {
      calls++;
      throw new Flaky(n);
    }, { ...FAST, maxAttempts: 4 }), (e: unknown) => e instanceof Flaky && e.attempt === 4);
    assert.equal(calls, 4);
  });

  it('gives up once giveUpAfterMs has passed', async () => {
    const t0 = Date.now();
    await assert.rejects(retryTransient(async (n) => {
      throw new Flaky(n);
    }, { ...FAST, giveUpAfterMs: 100 }), (e: unknown) => e instanceof Flaky && e.attempt >= 2);
    const elapsed = Date.now() - t0;
    assert.ok(elapsed >= 100 && elapsed < 5000, `gave up after ${elapsed} ms`);
  });

  it('an abort ends the wait at once and throws the last error', async () => {
    const abort = new AbortController();
    let calls = 0;
    const pending = retryTransient(async (n) => {
      calls++;
      throw new Flaky(n);
    }, { ...FAST, initialDelayMs: 60_000, maxDelayMs: 60_000, signal: abort.signal, onRetry: () => abort.abort() });
    const t0 = Date.now();
    await assert.rejects(pending, (e: unknown) => e instanceof Flaky && e.attempt === 1);
    assert.ok(Date.now() - t0 < 5000, 'waited out the backoff despite the abort');
    assert.equal(calls, 1);
  });

  it('rejects bounds that would never wait, naming the field and the rule', () => {
    assert.throws(() => compileBackoff({ initialDelayMs: 0 }), (e: unknown) => e instanceof ConfigError && /retry.initialDelayMs: expected a positive number of ms, got 0/.test(e.message));
    assert.throws(() => compileBackoff({ initialDelayMs: 500, maxDelayMs: 100 }), /retry.maxDelayMs: expected at least initialDelayMs \(500\), got 100/);
    return assert.rejects(retryTransient(async () => 'never', { ...FAST, maxAttempts: 0 }), /retry.maxAttempts: expected an integer at least 1 or Infinity, got 0/);
  });

  it('as a sequence read synchronously: waits grow within the bounds and start over after reset', async () => {
    const seq = await BackoffSequence.create({ initialDelayMs: 100, maxDelayMs: 1000 });
    assert.equal(seq.delayMs, 100, 'before any attempt: the initial delay');
    const delays: number[] = [];
    for (let i = 0; i < 12; i++) {
      seq.advance();
      delays.push(seq.delayMs);
    }
    assert.equal(seq.attempts, 12);
    assert.ok(delays.every((d) => d >= 1 && d <= 1000), `waits out of bounds: ${delays.join(', ')}`);
    assert.equal(Math.max(...delays.slice(-4)), 1000, `the waits reach the ceiling: ${delays.join(', ')}`);
    seq.reset();
    assert.deepEqual([seq.delayMs, seq.attempts], [100, 0]);
  });
});
