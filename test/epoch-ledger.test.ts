import assert from 'node:assert/strict';
import { ExactlyOnceViolationError, JobFailedError, LedgerError } from '../coordinator/errors';
import { assertExactlyOnce, EpochLedger, type LedgerState, RejectReason } from '../coordinator/epoch-ledger';
import { type Share, type StepPlan, StepPlanner, assignMicroBatches, reassign } from '../coordinator/step/step-planner';

const planner = new StepPlanner({ sampleCount: 50, seed: 3, batchSize: 16, microBatchSize: 4 });

/** Accepts every micro-batch of a step from `worker` and closes it. */
function runStep(ledger: EpochLedger, plan: StepPlan, worker = 'w'): void {
  for (const mb of plan.microBatches) {
    assert.deepEqual(ledger.accept(plan, mb.id, worker, mb.sampleIndices), { accepted: true });
  }
  ledger.closeStep(plan, plan.microBatches.length);
}

describe('epoch ledger', () => {
  it('counts a clean epoch exactly once', () => {
    const ledger = new EpochLedger(planner.sampleCount);
    for (let step = 0; step < planner.stepsPerEpoch; step++) runStep(ledger, planner.plan({ epoch: 0, step }));
    const report = ledger.complete(0);
    assert.deepEqual(report, {
      epoch: 0,
      expected: 50,
      counted: 50,
      duplicatesRejected: 0,
      redoneMicroBatches: 0,
      missing: [],
      repeated: [],
      exactlyOnce: true,
    });
    assert.equal(ledger.epoch, 1);
    assert.equal(ledger.openStep, 0);
  });

  it('rejects the late result of a worker whose share was redone, and stays exactly-once', () => {
    const ledger = new EpochLedger(planner.sampleCount);
    let shares: Share[] = [];
    let lateFromB: { plan: StepPlan; id: number } | undefined;
    for (let step = 0; step < planner.stepsPerEpoch; step++) {
      const plan = planner.plan({ epoch: 0, step });
      shares = assignMicroBatches(plan.microBatches.map((m) => m.id), ['b', 'a', 'c']);
      const accept = (worker: string, id: number) =>
        ledger.accept(plan, id, worker, plan.microBatches[id].sampleIndices);
      if (step === 1) {
        // a and c finish; b finishes one micro-batch, then goes silent and is presumed dead.
        for (const s of shares.filter((x) => x.worker !== 'b')) for (const id of s.microBatchIds) accept(s.worker, id);
        const bShare = shares.find((s) => s.worker === 'b')!;
        accept('b', bShare.microBatchIds[0]);
        const extra = reassign('b', shares, ledger.acceptedMicroBatches(), ['a', 'c']);
        assert.deepEqual(extra.flatMap((s) => s.microBatchIds), bShare.microBatchIds.slice(1));
        for (const s of extra) ledger.recordRedone(s.microBatchIds);
        for (const s of extra) for (const id of s.microBatchIds) assert.equal(accept(s.worker, id).accepted, true);
        lateFromB = { plan, id: bShare.microBatchIds[1] };
        // b's result arrives after the redo, before the step closes: a duplicate.
        const late = accept('b', lateFromB.id);
        assert.equal(late.accepted, false);
        assert.equal(!late.accepted && late.reason, RejectReason.Duplicate);
        assert.match(
          !late.accepted ? late.message : '',
          /micro-batch \d+ of epoch 0 step 1 from b: already accepted from [ac]/,
        );
        ledger.closeStep(plan, plan.microBatches.length);
      } else {
        for (const s of shares) for (const id of s.microBatchIds) accept(s.worker, id);
        ledger.closeStep(plan, plan.microBatches.length);
      }
    }
    // Another copy turns up after the step closed.
    const { plan, id } = lateFromB!;
    const closed = ledger.accept(plan, id, 'b', plan.microBatches[id].sampleIndices);
    assert.equal(!closed.accepted && closed.reason, RejectReason.StepClosed);
    const report = ledger.complete(0);
    assert.equal(report.exactlyOnce, true);
    assert.equal(report.counted, 50);
    assert.equal(report.duplicatesRejected, 2);
    assert.equal(report.redoneMicroBatches, 1);
    assert.deepEqual(ledger.counters(), {
      acceptedMicroBatches: 13,
      duplicatesRejected: 2,
      redoneShares: 1,
      redoneMicroBatches: 1,
    });
  });

  it('reports samples counted twice and samples never counted', () => {
    const ledger = new EpochLedger(10);
    ledger.accept({ epoch: 0, step: 0 }, 0, 'a', [0, 1, 2, 3]);
    ledger.accept({ epoch: 0, step: 0 }, 1, 'a', [3, 4, 5]); // a planning bug: sample 3 in two micro-batches
    ledger.closeStep({ epoch: 0, step: 0 }, 2);
    const report = ledger.complete(0);
    assert.equal(report.exactlyOnce, false);
    assert.equal(report.counted, 7);
    assert.deepEqual(report.repeated, [3]);
    assert.deepEqual(report.missing, [6, 7, 8, 9]);
  });

  it('a broken exactly-once fails the job with an error naming the epoch and the missing and duplicated samples', () => {
    const ledger = new EpochLedger(10, { epoch: 2, step: 0 });
    ledger.accept({ epoch: 2, step: 0 }, 0, 'a', [0, 1, 2, 3]);
    ledger.accept({ epoch: 2, step: 0 }, 1, 'a', [3, 4, 5]); // sample 3 in two micro-batches, 6..9 in none
    ledger.closeStep({ epoch: 2, step: 0 }, 2);
    const report = ledger.complete(2);
    let error: unknown;
    try {
      assertExactlyOnce(report);
    } catch (e) {
      error = e;
    }
    assert.ok(error instanceof ExactlyOnceViolationError && error instanceof JobFailedError, `expected an ExactlyOnceViolationError, got ${String(error)}`);
    assert.equal(
      error.message,
      'epoch 2 broke exactly-once: expected each of 10 training samples counted once, counted 7; 4 missing [6, 7, 8, 9], 1 duplicated [3]',
    );
    assert.deepEqual([error.epoch, error.missing, error.repeated], [2, [6, 7, 8, 9], [3]]);
  });

  it('lets a clean epoch go on, and lists at most 20 samples of a large violation', () => {
    const clean = new EpochLedger(planner.sampleCount);
    for (let step = 0; step < planner.stepsPerEpoch; step++) runStep(clean, planner.plan({ epoch: 0, step }));
    assert.doesNotThrow(() => assertExactlyOnce(clean.complete(0)));
    const empty = new EpochLedger(50);
    assert.throws(() => assertExactlyOnce(empty.complete(0)), /counted 0; 50 missing \[0, 1, .*, 19, \.\.\. 30 more\], 0 duplicated \[\]$/);
  });

  it('refuses results for steps not yet open, without calling them duplicates', () => {
    const ledger = new EpochLedger(10);
    const future = ledger.accept({ epoch: 0, step: 1 }, 0, 'a', [0]);
    assert.equal(!future.accepted && future.reason, RejectReason.NotOpen);
    const nextEpoch = ledger.accept({ epoch: 1, step: 0 }, 0, 'a', [0]);
    assert.equal(!nextEpoch.accepted && nextEpoch.reason, RejectReason.NotOpen);
    assert.equal(ledger.counters().duplicatesRejected, 0);
    assert.equal(ledger.counters().acceptedMicroBatches, 0);
  });

  it('throws on out-of-range sample indices without counting any of them', () => {
    const ledger = new EpochLedger(10);
    assert.throws(
      () => ledger.accept({ epoch: 0, step: 0 }, 0, 'a', [1, 2, 10]),
      (e: unknown) =>
        e instanceof LedgerError && /expected sample indices in 0\.\.9, got 10 at position 2/.test(e.message),
    );
    assert.equal(ledger.acceptedMicroBatches().size, 0);
    const retry = ledger.accept({ epoch: 0, step: 0 }, 0, 'a', [1, 2]);
    assert.equal(retry.accepted, true, 'the micro-batch may still be accepted');
  });

  it('will not close a step with micro-batches missing, nor complete an epoch mid-step', () => {
    const ledger = new EpochLedger(20);
    ledger.accept({ epoch: 0, step: 0 }, 0, 'a', [0, 1]);
    ledger.accept({ epoch: 0, step: 0 }, 2, 'a', [4, 5]);
    assert.throws(() => ledger.closeStep({ epoch: 0, step: 0 }, 3), /missing \[1\], accepted \[0, 2\]/);
    assert.throws(() => ledger.closeStep({ epoch: 0, step: 1 }, 3), /open step is epoch 0 step 0/);
    assert.throws(() => ledger.complete(0), /step 0 has 2 accepted micro-batches and was not closed/);
    assert.throws(() => ledger.complete(1), /counting epoch 0/);
  });

  it('survives a checkpoint at a step boundary: the resumed epoch still reports exactly-once', () => {
    const ledger = new EpochLedger(planner.sampleCount);
    runStep(ledger, planner.plan({ epoch: 0, step: 0 }));
    ledger.recordRedone([9]);
    runStep(ledger, planner.plan({ epoch: 0, step: 1 }));
    const saved = JSON.parse(JSON.stringify(ledger)) as LedgerState;
    assert.equal(saved.openStep, 2);
    const resumed = EpochLedger.fromJSON(saved);
    assert.equal(resumed.epoch, 0);
    assert.equal(resumed.openStep, 2);
    const stale = resumed.accept({ epoch: 0, step: 1 }, 0, 'a', [0]);
    assert.equal(!stale.accepted && stale.reason, RejectReason.StepClosed, 'steps before the checkpoint stay closed');
    for (let step = 2; step < planner.stepsPerEpoch; step++) runStep(resumed, planner.plan({ epoch: 0, step }));
    const report = resumed.complete(0);
    assert.equal(report.exactlyOnce, true);
    assert.equal(report.counted, 50);
    assert.equal(report.redoneMicroBatches, 1);
    assert.equal(resumed.counters().redoneShares, 1);
  });

  it('a resume without the saved counts would be caught: a fresh ledger mid-epoch reports the missing samples', () => {
    const fresh = new EpochLedger(planner.sampleCount, { epoch: 0, step: 2 });
    for (let step = 2; step < planner.stepsPerEpoch; step++) runStep(fresh, planner.plan({ epoch: 0, step }));
    const report = fresh.complete(0);
    assert.equal(report.exactlyOnce, false);
    assert.equal(report.missing.length, 32);
  });

  it('refuses to serialise between step boundaries and rejects malformed saved state', () => {
    const ledger = new EpochLedger(10);
    ledger.accept({ epoch: 0, step: 0 }, 0, 'a', [0]);
    assert.throws(() => ledger.toJSON(), /step boundaries only: epoch 0 step 0 has 1 accepted micro-batches/);
    const good = new EpochLedger(10).toJSON();
    assert.throws(
      () => EpochLedger.fromJSON({ ...good, counts: Buffer.alloc(9).toString('base64') }),
      /expected 10 sample counts, found 9/,
    );
    assert.throws(() => EpochLedger.fromJSON({ ...good, epoch: -1 }), /epoch to be an integer >= 0, got -1/);
    assert.throws(() => EpochLedger.fromJSON({ ...good, version: 2 as 1 }), /expected version 1, got 2/);
    assert.throws(
      () => EpochLedger.fromJSON({ ...good, totals: { ...good.totals, redoneShares: 'x' as unknown as number } }),
      /totals\.redoneShares/,
    );
  });
});
