import assert from 'node:assert/strict';
import { PlanningError } from '../coordinator/errors';
import { Reduction, StepPlanner, StepRound } from '../coordinator/step';

const SPEC = { name: 'w', dtype: 'float32' as const, shape: [2] };

/** A 2-worker round of a 4-micro-batch step on a clock that does not move. */
function round(): StepRound {
  const plan = new StepPlanner({ sampleCount: 32, seed: 1, batchSize: 32, microBatchSize: 8 }).plan({ epoch: 0, step: 0 });
  return new StepRound({ plan, configVersion: 0, weightsVersion: 0, workers: ['a', 'b'], stepDeadlineMs: 1000, gradientSpecs: [SPEC], statSpecs: [], now: () => 0 });
}

/** The phase's name, read afresh (assert.equal would narrow `r.phase` for the rest of a test). */
function phaseOf(r: StepRound): string {
  return r.phase.name;
}

function reduction(key: string): Reduction {
  const members = [{ id: 'coordinator', address: 'c:1', role: 'observer' as const }, { id: 'a', address: 'a:1' }, { id: 'b', address: 'b:1' }];
  return new Reduction(key, members, [SPEC], 1, 1000, new Map([['a', 1], ['b', 1]]));
}

describe('a step\'s phase: one field, moved only along the allowed transitions', () => {
  it('collecting -> reducing -> reduce-failed -> collecting -> reducing -> committed', () => {
    const r = round();
    assert.equal(phaseOf(r), 'collecting');
    assert.equal(r.reduceOrderFor('a', 1), undefined, 'no REDUCE order while collecting');
    const first = reduction('job/step-0/attempt-1');
    r.startReduction(first);
    assert.equal(phaseOf(r), 'reducing');
    assert.deepEqual([r.reduceOrderFor('a', 1)?.rank, r.reduceOrderFor('a', 1)], [1, undefined], 'a member is told once per attempt');
    r.reductionFailed();
    assert.equal(phaseOf(r), 'reduce-failed');
    assert.equal(r.reduceOrderFor('b', 1), undefined);
    assert.deepEqual([first.isBack('b'), first.isBack('a')], [true, false], 'a member that asks after the failure is alive');
    r.collectAgain();
    r.startReduction(reduction('job/step-0/attempt-2'));
    assert.equal(r.reduceOrderFor('b', 1)?.key, 'job/step-0/attempt-2');
    r.commit();
    assert.equal(phaseOf(r), 'committed');
  });

  it('tells and counts back only the incarnation that pushed the sums, not a new one under its id', () => {
    const r = round();
    const attempt = reduction('job/step-0/attempt-1');
    r.startReduction(attempt);
    assert.equal(r.reduceOrderFor('a', 2), undefined, 'a restarted worker holds none of its old incarnation\'s sums');
    assert.equal(r.reduceOrderFor('a', 1)?.rank, 1, 'the incarnation that pushed is still told');
    r.reductionFailed();
    r.reduceOrderFor('b', 2);
    assert.equal(attempt.isBack('b'), false, 'a new incarnation asking is not the member coming back');
    r.reduceOrderFor('b', 1);
    assert.equal(attempt.isBack('b'), true);
  });

  it('refuses a move the table does not allow, naming the step and both phases', () => {
    const r = round();
    assert.throws(() => r.reductionFailed(), (e: unknown) => e instanceof PlanningError && /step 0: an allreduce failed in phase 'collecting'/.test(e.message));
    assert.throws(() => r.collectAgain(), (e: unknown) => e instanceof PlanningError && /cannot go from phase 'collecting' to 'collecting'/.test(e.message));
    r.commit();
    assert.throws(() => r.startReduction(reduction('k')), (e: unknown) => e instanceof PlanningError && /from phase 'committed' to 'reducing'/.test(e.message));
  });
});
