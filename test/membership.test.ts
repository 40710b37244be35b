import assert from 'node:assert/strict';
import { ConfigError } from '../common/errors';
import { UnknownWorkerError } from '../common';
import { RegistrationRejectedError, RegistrationRejection } from '../coordinator/errors';
import { Membership, MemberState, compileMembershipOptions } from '../coordinator/membership';

const TIMEOUT_MS = 1000;

function registry(options: { minWorkers?: number; maxWorkers?: number } = {}): Membership {
  return new Membership({ heartbeatTimeoutMs: TIMEOUT_MS, ...options });
}

describe('membership', () => {
  it('admits joiners only at a step boundary', () => {
    const m = registry();
    const { worker } = m.register('w1', 0);
    assert.equal(worker.state, MemberState.Joining);
    assert.equal(worker.incarnation, 1);
    assert.deepEqual(m.activeWorkers(), []);
    assert.equal(m.checkSender('w1', 1).ok, false, 'a joiner holds no share, so it cannot send results');
    const admitted = m.admitPending(50);
    assert.deepEqual(admitted.map((w) => [w.id, w.state, w.admittedAtMs]), [['w1', 'active', 50]]);
    assert.deepEqual(m.activeWorkers(), ['w1']);
    assert.deepEqual(m.admitPending(60), [], 'nobody left to admit');
  });

  it('lists active workers in a stable order whatever the join order', () => {
    const m = registry();
    for (const id of ['w3', 'w1', 'w2']) m.register(id, 0);
    m.admitPending(0);
    assert.deepEqual(m.activeWorkers(), ['w1', 'w2', 'w3']);
  });

  it('waits below minWorkers with a message saying why', () => {
    const m = registry({ minWorkers: 2 });
    assert.equal(m.canTrain(), false);
    assert.equal(m.waitingReason(), 'waiting for workers: 0 active, minWorkers=2');
    m.register('a', 0);
    m.register('b', 0);
    m.admitPending(0);
    m.fail('b', 'test');
    assert.equal(m.canTrain(), false);
    assert.equal(m.waitingReason(), 'waiting for workers: 1 active, minWorkers=2');
    m.register('c', 1);
    assert.equal(m.canTrain(), false, 'a joiner does not count until admitted');
    m.admitPending(2);
    assert.equal(m.canTrain(), true);
    assert.equal(m.waitingReason(), undefined);
  });

  it('rejects registrations over maxWorkers with a clear reason, and accepts again after a leave', () => {
    const m = registry({ maxWorkers: 2 });
    m.register('a', 0);
    m.register('b', 0);
    assert.throws(
      () => m.register('c', 0),
      (e: unknown) =>
        e instanceof RegistrationRejectedError &&
        e.reason === 'full' &&
        e.workerId === 'c' &&
        /maxWorkers=2 live workers, found 2/.test(e.message),
    );
    assert.equal(m.counters().rejectedRegistrations, 1);
    m.admitPending(0);
    m.leave('a', 1);
    assert.equal(m.register('c', 1).worker.state, 'joining');
    // A live worker re-registering does not need a free slot: it takes its own.
    assert.equal(m.register('b', 2).worker.incarnation, 2);
    assert.throws(
      () => m.register('', 0),
      (e: unknown) => e instanceof RegistrationRejectedError && e.reason === 'invalid-id',
    );
  });

  it('reports workers past their heartbeat deadline, using the time passed in', () => {
    const m = registry();
    m.register('a', 0);
    m.register('b', 0);
    m.admitPending(0);
    assert.deepEqual(m.expired(TIMEOUT_MS), [], 'exactly at the deadline is not yet past it');
    m.heartbeat('a', 1, 800);
    assert.deepEqual(m.expired(TIMEOUT_MS + 1).map((w) => w.id), ['b']);
    assert.equal(m.get('a')?.deadlineMs, 800 + TIMEOUT_MS);
    m.heartbeat('a', 1, 500); // a late-delivered older heartbeat must not pull the deadline back
    assert.equal(m.get('a')?.deadlineMs, 800 + TIMEOUT_MS);
    assert.deepEqual(m.expired(2000).map((w) => w.id), ['a', 'b']);
    assert.equal(m.fail('b', 'missed heartbeat deadline'), true);
    assert.deepEqual(m.expired(5000).map((w) => w.id), ['a'], 'failed workers are no longer reported');
    assert.equal(m.get('b')?.failureReason, 'missed heartbeat deadline');
  });

  it('drains: the worker keeps its share, gets no new one, then leaves', () => {
    const m = registry();
    m.register('a', 0);
    m.register('b', 0);
    m.admitPending(0);
    assert.equal(m.drain('a', 1).state, MemberState.Draining);
    assert.deepEqual(m.activeWorkers(), ['b'], 'a draining worker gets no new share');
    assert.deepEqual(m.checkSender('a', 1), { ok: true }, 'its current share still counts');
    assert.equal(m.drain('a', 1).state, MemberState.Draining, 'a second SIGTERM changes nothing');
    assert.equal(m.leave('a', 1), MemberState.Draining);
    assert.equal(m.get('a')?.state, MemberState.Left);
    assert.equal(m.checkSender('a', 1).ok, false);
    assert.throws(
      () => m.heartbeat('a', 1, 10),
      (e: unknown) => e instanceof UnknownWorkerError && /left; register again/.test(e.message),
    );
  });

  it('lets a draining joiner leave at once: it holds nothing', () => {
    const m = registry();
    m.register('a', 0);
    assert.equal(m.drain('a', 1).state, MemberState.Left);
    assert.deepEqual(m.admitPending(1), []);
  });

  it('gives a re-registered id a new incarnation so late results of the old one are rejected', () => {
    const m = registry();
    m.register('a', 0);
    m.admitPending(0);
    m.fail('a', 'connection dropped');
    const again = m.register('a', 100);
    assert.equal(again.worker.incarnation, 2);
    assert.equal(again.replaced, undefined, 'the old incarnation was already failed');
    m.admitPending(100);
    const stale = m.checkSender('a', 1);
    assert.equal(stale.ok, false);
    assert.match(stale.ok ? '' : stale.reason, /incarnation 1 is stale \(current is 2\)/);
    assert.deepEqual(m.checkSender('a', 2), { ok: true });
    assert.throws(
      () => m.heartbeat('a', 1, 200),
      (e: unknown) => e instanceof UnknownWorkerError && e.incarnation === 1,
    );
  });

  it('refuses another live process under a live id until the first is gone, and admits it then', () => {
    const m = registry();
    m.register('a', 0, 'process-1');
    m.admitPending(0);
    m.heartbeat('a', 1, 900);
    assert.throws(() => m.register('a', 1000, 'process-2'), (e: unknown) => e instanceof RegistrationRejectedError &&
      e.reason === RegistrationRejection.IdInUse &&
      /another live process holds this id \(incarnation 1, last heartbeat 100 ms ago\); a new process is admitted under it once that one is gone/.test(e.message));
    assert.deepEqual(m.activeWorkers(), ['a'], 'the live incarnation is untouched');
    assert.equal(m.counters().rejectedRegistrations, 1);
    // Its lease expires: the other process is admitted as incarnation 2, the first fails (its shares are redone).
    const next = m.register('a', 900 + m.options.heartbeatTimeoutMs + 1, 'process-2');
    assert.equal(next.worker.incarnation, 2);
    assert.match(next.replaced?.failureReason ?? '', /lease expired \(no heartbeat for \d+ ms\); incarnation 2 registered/);
  });

  it('fails the old incarnation when the same process registers again (it lost the answer)', () => {
    const m = registry();
    m.register('a', 0, 'process-1');
    m.admitPending(0);
    const again = m.register('a', 10, 'process-1');
    assert.equal(again.replaced?.incarnation, 1);
    assert.equal(again.replaced?.state, MemberState.Failed);
    assert.match(again.replaced?.failureReason ?? '', /replaced by incarnation 2/);
    assert.equal(again.worker.state, MemberState.Joining);
    assert.deepEqual(m.activeWorkers(), []);
  });

  it('counts joins, admissions, leaves and failures once each', () => {
    const m = registry();
    m.register('a', 0);
    m.register('b', 0);
    m.register('c', 0);
    m.admitPending(0);
    m.leave('a', 1);
    assert.equal(m.fail('b', 'x'), true);
    assert.equal(m.fail('b', 'noticed twice'), false);
    assert.equal(m.fail('a', 'already left'), false);
    assert.equal(m.fail('nobody', 'x'), false);
    m.register('b', 5);
    assert.deepEqual(m.counters(), { joins: 4, admissions: 3, leaves: 1, failures: 1, rejectedRegistrations: 0 });
    assert.deepEqual(m.stateCounts(), { joining: 1, active: 1, draining: 0, left: 1, failed: 0 });
    assert.deepEqual(
      m.list().map((w) => `${w.id}#${w.incarnation}:${w.state}`),
      ['a#1:left', 'b#2:joining', 'c#1:active'],
    );
  });

  it('hands out snapshots, not its own records', () => {
    const m = registry();
    const { worker } = m.register('a', 0);
    worker.state = MemberState.Active;
    assert.equal(m.get('a')?.state, MemberState.Joining);
  });

  it('checks its options and names the field', () => {
    assert.deepEqual(compileMembershipOptions(), { minWorkers: 1, maxWorkers: 64, heartbeatTimeoutMs: 15000 });
    assert.throws(
      () => compileMembershipOptions({ minWorkers: 0 }),
      (e: unknown) => e instanceof ConfigError && e.field === 'minWorkers',
    );
    assert.throws(
      () => compileMembershipOptions({ minWorkers: 3, maxWorkers: 2 }),
      (e: unknown) => e instanceof ConfigError && e.field === 'maxWorkers' && /minWorkers \(3\), got 2/.test(e.message),
    );
    assert.throws(() => compileMembershipOptions({ heartbeatTimeoutMs: 0 }), ConfigError);
  });
});
