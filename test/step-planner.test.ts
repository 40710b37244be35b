import assert from 'node:assert/strict';
import { epochPermutation } from '../common/data';
import { ConfigError } from '../common/errors';
import { PlanningError } from '../coordinator/errors';
import { type Share, StepPlanner, assignMicroBatches, cutMicroBatches, reassign } from '../coordinator/step/step-planner';

const OPTIONS = { sampleCount: 100, seed: 7, batchSize: 32, microBatchSize: 8 };

function sizes(shares: readonly Share[]): number[] {
  return shares.map((s) => s.microBatchIds.length);
}

describe('step planner', () => {
  it('keeps the last partial batch: 100 samples in batches of 32 make 4 steps', () => {
    const planner = new StepPlanner(OPTIONS);
    assert.equal(planner.stepsPerEpoch, 4);
    assert.deepEqual([0, 1, 2, 3].map((s) => planner.stepSampleCount(s)), [32, 32, 32, 4]);
    assert.deepEqual([0, 1, 2, 3].map((s) => planner.microBatchCount(s)), [4, 4, 4, 1]);
    assert.equal(new StepPlanner({ ...OPTIONS, sampleCount: 96 }).stepsPerEpoch, 3);
  });

  it('cuts every step into micro-batches that walk the seeded permutation once', () => {
    const planner = new StepPlanner(OPTIONS);
    const order = epochPermutation(100, 7, 2);
    const walked: number[] = [];
    for (let step = 0; step < planner.stepsPerEpoch; step++) {
      const plan = planner.plan({ epoch: 2, step });
      assert.equal(plan.globalStep, 2 * 4 + step);
      assert.deepEqual(
        plan.microBatches.map((m) => m.id),
        plan.microBatches.map((_, k) => k),
      );
      for (const mb of plan.microBatches) walked.push(...mb.sampleIndices);
      assert.equal(
        plan.microBatches.reduce((n, m) => n + m.sampleIndices.length, 0),
        plan.sampleCount,
      );
    }
    assert.deepEqual(walked, [...order]);
    assert.deepEqual([...walked].sort((a, b) => a - b), [...Array(100).keys()]);
  });

  it('leaves only the last micro-batch of the last step short', () => {
    const planner = new StepPlanner({ sampleCount: 70, seed: 1, batchSize: 32, microBatchSize: 8 });
    const last = planner.plan({ epoch: 0, step: 2 });
    assert.deepEqual(last.microBatches.map((m) => m.sampleIndices.length), [6]);
    const full = planner.plan({ epoch: 0, step: 1 });
    assert.deepEqual(full.microBatches.map((m) => m.sampleIndices.length), [8, 8, 8, 8]);
    const odd = new StepPlanner({ sampleCount: 75, seed: 1, batchSize: 32, microBatchSize: 8 });
    assert.deepEqual(odd.plan({ epoch: 0, step: 2 }).microBatches.map((m) => m.sampleIndices.length), [8, 3]);
  });

  it('is a pure function of its options: a restarted coordinator plans the same step', () => {
    const a = new StepPlanner(OPTIONS);
    a.plan({ epoch: 0, step: 0 }); // warm a's cache on another epoch first
    const b = new StepPlanner(OPTIONS);
    assert.deepEqual(a.plan({ epoch: 3, step: 2 }), b.plan({ epoch: 3, step: 2 }));
    assert.notDeepEqual([...a.permutation(0)], [...a.permutation(1)], 'epochs must be shuffled differently');
    const other = new StepPlanner({ ...OPTIONS, seed: 8 });
    assert.notDeepEqual([...other.permutation(0)], [...a.permutation(0)], 'seeds must shuffle differently');
  });

  it('hands out copies: mutating a plan does not change the next one', () => {
    const planner = new StepPlanner(OPTIONS);
    const first = planner.plan({ epoch: 0, step: 0 });
    const kept = [...first.microBatches[0].sampleIndices];
    first.microBatches[0].sampleIndices.fill(0);
    planner.permutation(0).fill(0);
    assert.deepEqual([...planner.plan({ epoch: 0, step: 0 }).microBatches[0].sampleIndices], kept);
  });

  it('maps between (epoch, step) and global steps and rolls over epochs', () => {
    const planner = new StepPlanner(OPTIONS);
    for (const g of [0, 3, 4, 17]) assert.equal(planner.globalStep(planner.positionOf(g)), g);
    assert.deepEqual(planner.positionOf(9), { epoch: 2, step: 1 });
    assert.deepEqual(planner.next({ epoch: 1, step: 2 }), { epoch: 1, step: 3 });
    assert.deepEqual(planner.next({ epoch: 1, step: 3 }), { epoch: 2, step: 0 });
    assert.equal(planner.isLastStep({ epoch: 1, step: 3 }), true);
    assert.equal(planner.isLastStep({ epoch: 1, step: 2 }), false);
  });

  it('refuses steps outside the epoch and bad options, naming the field', () => {
    const planner = new StepPlanner(OPTIONS);
    assert.throws(
      () => planner.plan({ epoch: 0, step: 4 }),
      (e: unknown) => e instanceof PlanningError && /0\.\.3/.test(e.message) && /got 4/.test(e.message),
    );
    assert.throws(() => planner.plan({ epoch: -1, step: 0 }), PlanningError);
    assert.throws(
      () => new StepPlanner({ ...OPTIONS, batchSize: 0 }),
      (e: unknown) => e instanceof ConfigError && e.field === 'training.batchSize',
    );
    assert.throws(
      () => new StepPlanner({ ...OPTIONS, microBatchSize: 64 }),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.field === 'training.microBatchSize' &&
        /at most training\.batchSize \(32\), got 64/.test(e.message),
    );
    assert.throws(() => new StepPlanner({ ...OPTIONS, sampleCount: 2.5 }), ConfigError);
  });

  it('cutMicroBatches cuts like the planner (the local trainer reuses it)', () => {
    const samples = Uint32Array.from([5, 4, 3, 2, 1]);
    assert.deepEqual(
      cutMicroBatches(samples, 2).map((m) => [m.id, [...m.sampleIndices]]),
      [[0, [5, 4]], [1, [3, 2]], [2, [1]]],
    );
  });
});

describe('micro-batch assignment', () => {
  it('gives contiguous runs as even as possible, larger runs first', () => {
    assert.deepEqual(assignMicroBatches([0, 1, 2], ['a', 'b']), [
      { worker: 'a', microBatchIds: [0, 1] },
      { worker: 'b', microBatchIds: [2] },
    ]);
    assert.deepEqual(sizes(assignMicroBatches([0, 1, 2, 3, 4, 5, 6], ['a', 'b', 'c'])), [3, 2, 2]);
    assert.deepEqual(sizes(assignMicroBatches([0, 1, 2, 3], ['a'])), [4]);
  });

  it('leaves extra workers idle when there are fewer micro-batches than workers', () => {
    const shares = assignMicroBatches([0, 1], ['a', 'b', 'c', 'd']);
    assert.deepEqual(shares.map((s) => s.worker), ['a', 'b']);
    assert.deepEqual(sizes(shares), [1, 1]);
  });

  it('covers every micro-batch exactly once for any worker count', () => {
    const ids = [...Array(13).keys()];
    for (let w = 1; w <= 16; w++) {
      const workers = [...Array(w).keys()].map((k) => `w${k}`);
      const shares = assignMicroBatches(ids, workers);
      assert.deepEqual(shares.flatMap((s) => s.microBatchIds), ids, `${w} workers`);
      const counts = sizes(shares);
      assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, `uneven split ${counts} over ${w} workers`);
    }
  });

  it('rejects no workers and duplicate workers', () => {
    assert.deepEqual(assignMicroBatches([], []), []);
    assert.throws(
      () => assignMicroBatches([0], []),
      (e: unknown) => e instanceof PlanningError && /no workers to assign 1/.test(e.message),
    );
    assert.throws(() => assignMicroBatches([0, 1], ['a', 'a']), /listed twice/);
  });
});

describe('reassignment after a worker drops', () => {
  const shares = assignMicroBatches([0, 1, 2, 3, 4, 5, 6, 7], ['a', 'b', 'c']); // a:[0,1,2] b:[3,4,5] c:[6,7]

  it("spreads the failed worker's unfinished micro-batches over the survivors", () => {
    const extra = reassign('b', shares, new Set([3]), ['a', 'c']);
    assert.deepEqual(extra.flatMap((s) => s.microBatchIds).sort(), [4, 5]);
    assert.deepEqual(sizes(extra), [1, 1]);
    // c holds less work than a, so it comes first.
    assert.deepEqual(extra, [
      { worker: 'c', microBatchIds: [4] },
      { worker: 'a', microBatchIds: [5] },
    ]);
  });

  it('prefers a survivor that had nothing to do this step', () => {
    const few = assignMicroBatches([0, 1], ['a', 'b', 'c']); // c idle
    assert.deepEqual(reassign('a', few, new Set(), ['b', 'c']), [{ worker: 'c', microBatchIds: [0] }]);
  });

  it('does not count finished work of survivors as load', () => {
    const extra = reassign('c', shares, new Set([0, 1, 2]), ['a', 'b']);
    assert.deepEqual(extra, [{ worker: 'a', microBatchIds: [6] }, { worker: 'b', microBatchIds: [7] }]);
  });

  it('returns nothing when the failed worker had finished or held nothing', () => {
    assert.deepEqual(reassign('c', shares, new Set([6, 7]), ['a', 'b']), []);
    assert.deepEqual(reassign('z', shares, new Set(), ['a', 'b']), []);
  });

  it('refuses a survivor list that includes the failed worker or is empty', () => {
    assert.throws(() => reassign('a', shares, new Set(), ['a', 'b']), /listed among the survivors/);
    assert.throws(
      () => reassign('a', shares, new Set([0]), []),
      (e: unknown) => e instanceof PlanningError && /micro-batches \[1, 2\] of "a"/.test(e.message),
    );
  });
});
