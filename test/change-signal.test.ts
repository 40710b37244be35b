import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { ChangeSignal } from '../coordinator/change-signal';

describe('ChangeSignal', () => {
  it('wakes every pending wait on notify, and only those pending then', async () => {
    const changed = new ChangeSignal();
    const waits = [changed.wait(Infinity), changed.wait(60_000), changed.wait(60_000, new AbortController().signal)];
    changed.notify();
    assert.deepEqual(await Promise.all(waits), ['changed', 'changed', 'changed']);
    const later = changed.wait(20);
    assert.equal(await later, 'timeout', 'a wait begun after a notify must not see it');
  });

  it('ends the pending waits of an aborted signal only, with one abort listener for all of them', async () => {
    const changed = new ChangeSignal();
    const gone = new AbortController();
    const other = new AbortController();
    const ofGone = [changed.wait(Infinity, gone.signal), changed.wait(60_000, gone.signal)];
    const settledFirst = changed.wait(Infinity, gone.signal);
    changed.notify();
    assert.equal(await settledFirst, 'changed');
    const more = [changed.wait(Infinity, gone.signal), changed.wait(Infinity, gone.signal)];
    const ofOther = changed.wait(Infinity, other.signal);
    assert.equal(getEventListeners(gone.signal, 'abort').length, 1, 'every wait on one signal shares one listener');
    // The first two were woken by the notify above; the next two are pending.
    assert.deepEqual(await Promise.all(ofGone), ['changed', 'changed']);
    gone.abort();
    assert.deepEqual(await Promise.all(more), ['aborted', 'aborted']);
    assert.equal(await changed.wait(Infinity, gone.signal), 'aborted', 'a wait on an aborted signal returns at once');
    changed.notify();
    assert.equal(await ofOther, 'changed', 'another signal\'s abort must not end this wait');
  });

  it("a worker's notify wakes that worker's waits and those about no worker, and leaves the others pending", async () => {
    const changed = new ChangeSignal();
    const settled: string[] = [];
    const track = (name: string, wait: Promise<unknown>) => wait.then((outcome) => settled.push(`${name}:${String(outcome)}`));
    const loop = track('loop', changed.wait(Infinity));
    const w1 = track('w1', changed.wait(Infinity, undefined, 'w1'));
    const w1b = track('w1b', changed.wait(60_000, new AbortController().signal, 'w1'));
    const w2 = track('w2', changed.wait(Infinity, undefined, 'w2'));
    changed.notify('w1');
    await Promise.all([loop, w1, w1b]);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(settled.sort(), ['loop:changed', 'w1:changed', 'w1b:changed']);
    changed.notify('w3'); // nobody waits about w3: w2 stays pending
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(settled.length, 3);
    changed.notify();
    await w2;
    assert.deepEqual(settled.slice(3), ['w2:changed']);
  });

  it('times a wait out when nothing changes, and a timed-out wait is not woken again', async () => {
    const changed = new ChangeSignal();
    const started = performance.now();
    assert.equal(await changed.wait(30), 'timeout');
    assert.ok(performance.now() - started >= 25, 'timed out early');
    changed.notify(); // nothing pending: nothing to wake
    const pending = changed.wait(Infinity);
    changed.notify();
    assert.equal(await pending, 'changed');
  });
});
