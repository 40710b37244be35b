import assert from 'node:assert/strict';
import { HandoutTracker } from '../coordinator';

const DEADLINE_MS = 1000;

/** A collector on a clock the test moves by hand. */
function collector(count: number, workers: string[]): { c: HandoutTracker; clock: { ms: number } } {
  const clock = { ms: 0 };
  return { c: new HandoutTracker(count, workers, { deadlineMs: DEADLINE_MS, now: () => clock.ms }), clock };
}

describe('HandoutTracker: who computes which micro-batches of a round', () => {
  it('cuts contiguous runs over the workers and re-sends a held handout instead of handing out more', () => {
    const { c } = collector(5, ['a', 'b']);
    const a = c.take('a', 10);
    assert.deepEqual(a?.microBatchIds, [0, 1, 2]);
    assert.equal(c.take('a', 10), a, 'asking again: the same handout');
    assert.deepEqual(c.take('b', 10)?.microBatchIds, [3, 4]);
    assert.equal(c.take('c', 10), undefined, 'a worker outside the round has nothing');
  });

  it('hands out at most `limit` micro-batches at a time (what fits in one message), as nodes of the summation tree', () => {
    // 5 micro-batches: [0, 3) = [0, 2) + [2, 3), and [3, 5).
    const { c } = collector(5, ['a']);
    assert.deepEqual(c.take('a', 2)?.microBatchIds, [0, 1]);
    c.accept('a', [0, 1]);
    assert.deepEqual(c.take('a', 2)?.microBatchIds, [2]);
    c.accept('a', [2]);
    assert.deepEqual(c.take('a', 2)?.microBatchIds, [3, 4]);
    c.accept('a', [3, 4]);
    assert.ok(c.complete);
  });

  it('accepts only the handout a worker holds, and each micro-batch once', () => {
    const { c } = collector(4, ['a', 'b']);
    c.take('a', 10);
    assert.match(c.mismatch('a', [2, 3])?.message ?? '', /micro-batches \[2, 3\] are not assigned to worker 'a': it holds \[0, 1\]/);
    assert.match(c.mismatch('b', [2, 3])?.message ?? '', /it holds no assignment now/);
    c.accept('a', [0, 1]);
    assert.throws(() => c.accept('a', [0, 1]), /it holds no assignment now/);
    assert.equal(c.acceptedCount, 2);
  });

  it("spreads a dropped worker's unfinished micro-batches over the survivors, least loaded first, and skips accepted ones", () => {
    // 6 micro-batches: [0, 3) = [0, 2) + [2, 3), [3, 6) = [3, 5) + [5, 6); b's run [2, 3] goes out as two nodes.
    const { c } = collector(6, ['a', 'b', 'c']);
    c.take('a', 10);
    assert.deepEqual(c.take('b', 10)?.microBatchIds, [2]);
    c.accept('b', [2]);
    assert.deepEqual(c.take('b', 10)?.microBatchIds, [3]);
    c.accept('b', [3]);
    assert.deepEqual(c.drop('a', ['b', 'c']), [0, 1]);
    // b is idle (its share is in), c still has [4, 5] queued: b takes the first half.
    assert.deepEqual(c.take('b', 10)?.microBatchIds, [0]);
    assert.deepEqual(c.take('c', 10)?.microBatchIds, [4]);
    c.accept('c', [4]);
    assert.deepEqual(c.take('c', 10)?.microBatchIds, [5]);
    c.accept('c', [5]);
    assert.deepEqual(c.take('c', 10)?.microBatchIds, [1]);
  });

  it('keeps micro-batches with no worker left as orphans until a worker is available again', () => {
    const { c } = collector(3, ['a']);
    c.take('a', 10);
    assert.deepEqual(c.drop('a', []), [0, 1, 2]);
    assert.equal(c.orphanCount, 3);
    assert.equal(c.take('b', 10), undefined);
    assert.equal(c.adoptOrphans(['b']), 3);
    assert.deepEqual(c.take('b', 10)?.microBatchIds, [0, 1, 2]);
  });

  it('reports handouts not returned and queued work not taken within the deadline', () => {
    const { c, clock } = collector(4, ['a', 'b']);
    c.take('a', 1);
    clock.ms = DEADLINE_MS;
    assert.deepEqual(c.overdue(), []);
    clock.ms = DEADLINE_MS + 1;
    assert.deepEqual(c.overdue(), [
      { worker: 'a', missed: 'returned', microBatchIds: [0] },
      { worker: 'b', missed: 'taken', microBatchIds: [2, 3] },
    ]);
    // Returning the handout restarts the clock for what a still has queued.
    c.accept('a', [0]);
    assert.deepEqual(c.overdue().map((o) => o.worker), ['b']);
  });

  it('a draining worker keeps its handout while its queued work moves to the others', () => {
    const { c } = collector(4, ['a', 'b']);
    c.take('a', 1);
    assert.deepEqual(c.release('a', ['b']), [1]);
    assert.deepEqual(c.handout('a')?.microBatchIds, [0]);
    assert.deepEqual(c.take('b', 10)?.microBatchIds, [2, 3]);
    c.accept('b', [2, 3]);
    assert.deepEqual(c.take('b', 10)?.microBatchIds, [1]);
  });
});
