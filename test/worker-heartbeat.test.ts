import assert from 'node:assert/strict';
import { type HeartbeatAnswer, type HeartbeatReport, HeartbeatTimer, WorkerLifecycle, heartbeatDeadlineMs } from '../worker';
import { pollUntil } from './support/deadline';

/** The heartbeat's `send` boundary (the gRPC call), answering after `delayMs` and recording what it saw. */
function coordinator(delayMs: number, answer: Partial<HeartbeatAnswer> = {}) {
  const c = {
    requests: [] as HeartbeatReport[],
    inFlight: 0,
    maxInFlight: 0,
    send: async (request: HeartbeatReport): Promise<HeartbeatAnswer> => {
      c.requests.push(request);
      c.inFlight++;
      c.maxInFlight = Math.max(c.maxInFlight, c.inFlight);
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      c.inFlight--;
      if (answer.leaseMs === -1) throw new Error('coordinator unavailable');
      return { configVersion: 0, drain: false, leaseMs: 1000, voidedAllreduce: '', ...answer };
    },
  };
  return c;
}

describe('worker heartbeat: its own timer, never overlapping', function () {
  it('sends the worker\'s current state on every beat', async () => {
    const c = coordinator(0);
    let step = 0;
    const responses: HeartbeatAnswer[] = [];
    const timer = new HeartbeatTimer({
      intervalMs: 10,
      send: c.send,
      snapshot: () => ({ workerId: 'w-1', state: WorkerLifecycle.Running, lastCompletedStep: step++, configVersion: 2, incarnation: 1 }),
      onResponse: (r) => responses.push(r),
      onError: (e) => assert.fail(String(e)),
    });
    timer.start();
    await pollUntil(() => (responses.length >= 3 ? true : undefined), { timeoutMs: 5000, intervalMs: 5, what: 'three answered heartbeats' });
    await timer.stop();
    assert.deepEqual(c.requests.slice(0, 3).map((r) => r.lastCompletedStep), [0, 1, 2]);
    // An answer that arrives after stop() is not passed on.
    assert.ok(responses.length >= 3 && responses.length <= timer.sent, `${responses.length} answers for ${timer.sent} heartbeats`);
    assert.ok(timer.lastSuccessMs > 0);
  });

  it('a slow coordinator gets one heartbeat at a time', async () => {
    const c = coordinator(30);
    const timer = new HeartbeatTimer({
      intervalMs: 5,
      send: c.send,
      snapshot: () => ({ workerId: 'w', state: WorkerLifecycle.Running, lastCompletedStep: 0, configVersion: 0, incarnation: 0 }),
      onResponse: () => undefined,
      onError: () => undefined,
    });
    timer.start();
    await pollUntil(() => (c.requests.length >= 3 ? true : undefined), { timeoutMs: 5000, intervalMs: 5, what: 'three slow heartbeats' });
    await timer.stop();
    assert.equal(c.maxInFlight, 1);
    assert.equal(c.inFlight, 0, 'stop() waited for the heartbeat in flight');
  });

  it('reports failures and drain requests to the worker', async () => {
    const failing = coordinator(0, { leaseMs: -1 });
    const errors: unknown[] = [];
    const t1 = new HeartbeatTimer({
      intervalMs: 5, send: failing.send, onResponse: () => undefined, onError: (e) => errors.push(e),
      snapshot: () => ({ workerId: 'w', state: WorkerLifecycle.Running, lastCompletedStep: 0, configVersion: 0, incarnation: 0 }),
    });
    t1.start();
    await pollUntil(() => (errors.length >= 2 ? true : undefined), { timeoutMs: 5000, intervalMs: 5, what: 'two failures' });
    await t1.stop();
    assert.equal(t1.lastSuccessMs, 0);

    const draining = coordinator(0, { drain: true });
    let drained = false;
    const t2 = new HeartbeatTimer({
      intervalMs: 5, send: draining.send, onResponse: (r) => (drained ||= r.drain), onError: () => undefined,
      snapshot: () => ({ workerId: 'w', state: WorkerLifecycle.Running, lastCompletedStep: 0, configVersion: 0, incarnation: 0 }),
    });
    t2.start();
    await pollUntil(() => (drained ? true : undefined), { timeoutMs: 5000, intervalMs: 5, what: 'the drain request' });
    await t2.stop();
  });

  it('gives each call a deadline of two intervals, at least 2 s', () => {
    assert.equal(heartbeatDeadlineMs(1000), 2000);
    assert.equal(heartbeatDeadlineMs(5000), 10_000);
    assert.throws(() => new HeartbeatTimer({ intervalMs: 0, send: coordinator(0).send, snapshot: () => ({} as HeartbeatReport), onResponse: () => undefined, onError: () => undefined }),
      /expected > 0 ms/);
  });
});
