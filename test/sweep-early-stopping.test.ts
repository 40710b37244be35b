import assert from 'node:assert/strict';
import { decideAtRung, type EpochResult, quantile, rungsFor, type TrialRecord } from '../sweep';

const OBJ = { metric: 'val.top1', direction: 'maximize' } as const;
const ASHA = { type: 'asha', gracePeriod: 1, reductionFactor: 2, synchronous: false } as const;

function trial(index: number, top1: number[], state: TrialRecord['state'] = 'pending'): TrialRecord {
  const results: EpochResult[] = top1.map((v, epoch) => ({ epoch, val: { loss: 1 - v, top1: v, top5: 1 }, train: { loss: 1, top1: v }, ranBy: `t${index}` }));
  return {
    id: `t00${index}`, index, params: {}, epochs: 8, workers: 1, jobFile: '', state, fork: null, results, checkpoints: {}, decisions: [],
    runDirs: [], signatures: [],
  };
}

describe('sweep early stopping', () => {
  it('puts ASHA rungs at grace * eta^k below the last epoch, median rungs at every epoch from the grace period', () => {
    assert.deepEqual(rungsFor({ type: 'asha', gracePeriod: 1, reductionFactor: 3, synchronous: false }, 10), [1, 3, 9]);
    assert.deepEqual(rungsFor({ type: 'asha', gracePeriod: 2, reductionFactor: 2, synchronous: false }, 8), [2, 4]);
    assert.deepEqual(rungsFor({ type: 'median', gracePeriod: 2, minTrials: 1 }, 5), [2, 3, 4]);
    assert.deepEqual(rungsFor({ type: 'none' }, 5), []);
  });

  it('waits while an earlier trial has neither reached the rung nor ended, then decides', () => {
    const earlier = [trial(0, [0.5]), trial(1, [])];
    assert.equal(decideAtRung(ASHA, OBJ, trial(2, [0.3]), earlier, 1), null);
    earlier[1].state = 'failed';
    assert.equal(decideAtRung(ASHA, OBJ, trial(2, [0.3]), earlier, 1)?.action, 'stop');
  });

  it('ASHA keeps the top 1/eta of the earlier trials at the rung; the first trial always continues', () => {
    const earlier = [trial(0, [0.2]), trial(1, [0.4]), trial(2, [0.6])];
    assert.equal(decideAtRung(ASHA, OBJ, trial(0, [0.2]), [], 1)?.reason, 'first trial to reach rung 1');
    assert.equal(decideAtRung(ASHA, OBJ, trial(3, [0.41]), earlier, 1)?.action, 'continue');
    const stop = decideAtRung(ASHA, OBJ, trial(3, [0.39]), earlier, 1)!;
    assert.equal(stop.action, 'stop');
    assert.match(stop.reason, /val\.top1 0\.3900 outside the top 1\/2 \(cutoff 0\.4000 over 3 earlier trials at rung 1\)/);
    // A minimised objective: lower loss is better (losses here are 1 - top1, so the same trial stops).
    const byLoss = { metric: 'val.loss', direction: 'minimize' } as const;
    assert.equal(decideAtRung(ASHA, byLoss, trial(3, [0.39]), earlier, 1)?.action, 'stop');
    assert.equal(decideAtRung(ASHA, byLoss, trial(3, [0.41]), earlier, 1)?.action, 'continue');
  });

  it('stops the same trials whatever order the trials arrive at the rung (deterministic)', () => {
    const finals = [0.5, 0.3, 0.7, 0.2, 0.6, 0.1];
    const outcome = (arrival: number[]): string[] => {
      const trials = finals.map((_, i) => trial(i, []));
      const decided = new Map<number, string>();
      for (const i of arrival) {
        trials[i].results = trial(i, [finals[i]]).results;
        // After each arrival, decide every trial that can be decided, in trial order.
        for (const t of trials) {
          if (decided.has(t.index) || t.results.length < 1) continue;
          const d = decideAtRung(ASHA, OBJ, t, trials.slice(0, t.index), 1);
          if (d) decided.set(t.index, d.action);
        }
      }
      return finals.map((_, i) => decided.get(i) ?? 'undecided');
    };
    const inOrder = outcome([0, 1, 2, 3, 4, 5]);
    assert.deepEqual(inOrder, ['continue', 'stop', 'continue', 'stop', 'continue', 'stop']);
    assert.deepEqual(outcome([5, 3, 1, 4, 2, 0]), inOrder);
    assert.deepEqual(outcome([2, 0, 4, 1, 5, 3]), inOrder);
  });

  it('synchronous ASHA waits for every trial at the rung, then keeps the top floor(n / eta) of all, ties to the lower index', () => {
    const sync = { ...ASHA, synchronous: true, reductionFactor: 3 };
    const trials = [trial(0, [0.2]), trial(1, [0.5]), trial(2, [0.5]), trial(3, []), trial(4, [0.9]), trial(5, [0.1])];
    assert.equal(decideAtRung(sync, OBJ, trials[0], trials, 1), null, 'a later trial has not reached the rung');
    trials[3].results = trial(3, [0.4]).results;
    assert.deepEqual(trials.map((t) => decideAtRung(sync, OBJ, t, trials, 1)?.action),
      ['stop', 'continue', 'stop', 'stop', 'continue', 'stop']);
    assert.match(decideAtRung(sync, OBJ, trials[2], trials, 1)!.reason, /val\.top1 0\.5000 ranks 3 of 6 trials at rung 1; the top 2 continue/);
  });

  it('median stopping compares the best so far with the median of earlier running means, after minTrials', () => {
    const median = { type: 'median', gracePeriod: 1, minTrials: 2 } as const;
    const earlier = [trial(0, [0.4, 0.6]), trial(1, [0.2, 0.4])];
    assert.equal(decideAtRung(median, OBJ, trial(2, [0.1, 0.5]), earlier.slice(0, 1), 2)?.action, 'continue');
    assert.equal(decideAtRung(median, OBJ, trial(2, [0.1, 0.41]), earlier, 2)?.action, 'continue'); // median of 0.5 and 0.3 is 0.4: 0.41 >= 0.4
    assert.equal(decideAtRung(median, OBJ, trial(2, [0.1, 0.39]), earlier, 2)?.action, 'stop');
  });

  it('quantile interpolates linearly like numpy', () => {
    assert.equal(quantile([1, 2, 3, 4], 0.5), 2.5);
    assert.equal(quantile([4, 1, 3, 2], 0.75), 3.25);
  });
});
