import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { type BoundTrial, stoppingBound } from '../bench/stopping-bound';
import { boundLines, readCurvesCsv } from '../bench/sweep-bound';
import { epochSignatures, gridPoint, loadSweepSpec, runTrialEpochs, trialId, trialJob } from '../sweep';

const UNFROZEN = ['u', 'u', 'u', 'u'];

function trial(id: string, scores: number[], fork: BoundTrial['fork'] = null, phases = UNFROZEN.slice(0, scores.length)): BoundTrial {
  return { id, scores, phases, fork };
}

describe('bench/sweep-bound: the cheapest early stopping that ranks by the metric', () => {
  it('stops every other trial after its first epoch when the best leads from epoch 1', () => {
    const trials = [trial('t000', [0.2, 0.3, 0.4, 0.5]), trial('t001', [0.3, 0.4, 0.5, 0.6]), trial('t002', [0.1, 0.2, 0.3, 0.4])];
    // The best is t001 (0.6 at the end), in the middle of trial order.
    const b = stoppingBound(trials, 1, 'global');
    assert.deepEqual(b.stops, [1, 4, 1]);
    assert.equal(b.minRunTrialEpochs, 6); // 4 for the best, 1 each: nothing cheaper is conceivable
    assert.equal(b.naiveTrialEpochs, 12);
    assert.equal(b.maxSavedFraction, 0.5);
    assert.equal(b.optimalSchedules, 1);
  });

  it('stops nothing below a best trial that trails every other until its last epoch', () => {
    const trials = [trial('t000', [0.5, 0.6, 0.7, 0.75]), trial('t001', [0.1, 0.2, 0.3, 0.8]), trial('t002', [0.4, 0.5, 0.6, 0.7])];
    const b = stoppingBound(trials, 1, 'global');
    assert.deepEqual(b.stops, [4, 4, 4]);
    assert.equal(b.minRunTrialEpochs, 12);
    assert.equal(b.maxSavedFraction, 0);
  });

  it('stops a trial where it ranks lowest, not before: the cheapest stop is the first epoch the best is ahead', () => {
    // t001 leads the best at epochs 1 and 2, trails it at 3: it can stop at 3 and no earlier.
    const trials = [trial('t000', [0.2, 0.3, 0.6, 0.9]), trial('t001', [0.3, 0.4, 0.5, 0.8])];
    assert.deepEqual(stoppingBound(trials, 0, 'global').stops, [4, 3]);
  });

  it('lets either side of a tie stop (twins in a shared prefix are equal there)', () => {
    const trials = [trial('t000', [0.5, 0.6, 0.7]), trial('t001', [0.5, 0.4, 0.3])];
    assert.deepEqual(stoppingBound(trials, 0, 'global').stops, [3, 1]);
    // One image behind at epoch 1 is not a tie the other way: the best cannot trail a stopped trial.
    const behind = [trial('t000', [0.4996, 0.6, 0.7]), trial('t001', [0.5, 0.4, 0.3])];
    assert.deepEqual(stoppingBound(behind, 0, 'global').stops, [3, 2]);
  });

  it('counts a shared prefix once: a twin stopped inside it costs nothing more', () => {
    // t002 forks from t001 after 2 epochs; both trail the best from epoch 1 and stop there.
    const twins = [trial('t000', [0.6, 0.7, 0.8, 0.9]), trial('t001', [0.3, 0.4, 0.5, 0.6]),
      trial('t002', [0.3, 0.4, 0.2, 0.1], { from: 't001', epochs: 2 })];
    const b = stoppingBound(twins, 0, 'global');
    assert.deepEqual(b.stops, [4, 1, 1]);
    assert.equal(b.minRunTrialEpochs, 5); // 4 + 1 + 0: the twin's epoch 1 is its donor's
    // Past the prefix the twin pays its own epochs: forced to epoch 3 by a best that trails until then.
    const late = [trial('t000', [0.1, 0.2, 0.6, 0.9]), trial('t001', [0.3, 0.4, 0.5, 0.6]),
      trial('t002', [0.3, 0.4, 0.2, 0.1], { from: 't001', epochs: 2 })];
    const c = stoppingBound(late, 0, 'global');
    assert.deepEqual(c.stops, [4, 3, 3]);
    assert.equal(c.minRunTrialEpochs, 4 + 3 + 1);
  });

  it('ranks only within a phase under `phase`: a frozen group nobody frozen outranks stops at once', () => {
    const frozen = ['f', 'f', 'u'];
    const trials = [trial('t000', [0.2, 0.3, 0.9], null, ['u', 'u', 'u']), trial('t001', [0.5, 0.6, 0.4], null, frozen),
      trial('t002', [0.4, 0.5, 0.3], { from: 't001', epochs: 1 }, frozen)];
    assert.deepEqual(stoppingBound(trials, 0, 'global').stops, [3, 3, 3]);
    const b = stoppingBound(trials, 0, 'phase');
    assert.deepEqual(b.stops, [3, 1, 1]);
    assert.equal(b.minRunTrialEpochs, 3 + 1 + 0); // t002's frozen epoch 1 is t001's
  });

  it('still ranks inside a phase under `phase`', () => {
    // The best is frozen for 2 epochs: the frozen t001 leads it at epoch 1 and can stop only at 2; the
    // unfrozen t002 leads it throughout, but no unfrozen trial continues, so it stops at 1.
    const frozen = ['f', 'f', 'u'];
    const trials = [trial('t000', [0.3, 0.5, 0.9], null, frozen), trial('t001', [0.4, 0.45, 0.3], null, frozen),
      trial('t002', [0.9, 0.9, 0.1], null, ['u', 'u', 'u'])];
    assert.deepEqual(stoppingBound(trials, 0, 'phase').stops, [3, 2, 1]);
    assert.deepEqual(stoppingBound(trials, 0, 'global').stops, [3, 2, 3]);
  });

  it('refuses more schedules than its limit, and bad input, naming the problem', () => {
    const trials = [trial('t000', [0.1, 0.2, 0.3, 0.4]), trial('t001', [0.1, 0.2, 0.3, 0.4]), trial('t002', [0.1, 0.2, 0.3, 0.4])];
    assert.throws(() => stoppingBound(trials, 0, 'global', 15), /expected at most 15 stopping schedules to try, got 16/);
    assert.throws(() => stoppingBound(trials, 3, 'global'), /expected the best trial's index in 0..2, got 3/);
    assert.throws(() => stoppingBound([trial('t000', [0.1, 0.2], null, ['u'])], 0, 'global'), /expected one phase per scored epoch/);
  });
});

describe('runTrialEpochs: trial-epochs as make bench-sweep counts them', () => {
  const trials = [{ id: 't000', fork: null }, { id: 't001', fork: { from: 't000', epochs: 3 } }];
  it('takes a forked trial\'s first epochs from its donor, as far as the donor got', () => {
    assert.equal(runTrialEpochs(trials, [5, 7]), 5 + 4);
    assert.equal(runTrialEpochs(trials, [1, 7]), 1 + 6); // the donor stopped before the fork point
    assert.equal(runTrialEpochs(trials, [5, 2]), 5 + 0); // stopped inside the prefix: nothing of its own
  });
  it('fails on a donor that is not among the trials', () => {
    assert.throws(() => runTrialEpochs([{ id: 't001', fork: { from: 't000', epochs: 1 } }], [3]), /expected its donor t000 among the trials/);
  });
});

describe('bench/sweep-bound on sweeps/seeds-freeze-lr.yaml', () => {
  const spec = loadSweepSpec(path.resolve(__dirname, '..', 'sweeps', 'seeds-freeze-lr.yaml'));
  // The bench grid's validation top-1 in images of 2,546 (docs/sweeps-bench.md); t000 wins, 1 image ahead of
  // t001 and 2 of t005 at epoch 3, behind one of them at every other epoch before the last.
  const images = [
    [575, 845, 985, 986, 1069, 1117, 1204], [625, 929, 984, 1021, 1066, 1078, 1158], [440, 562, 717, 926, 1097, 1186, 1198],
    [772, 901, 837, 954, 1004, 1037, 1043], [440, 562, 617, 701, 809, 839, 975], [772, 901, 983, 1043, 1020, 902, 1042],
  ];
  const params = images.map((_, k) => gridPoint(spec.parameters, k)!);
  // The planner's signatures on any training set size: the 2- and 5-frozen trials share their frozen epochs.
  const signatures = params.map((p, k) => epochSignatures(trialJob(spec, p, k), 320));
  const ids = images.map((_, k) => trialId(k));

  it('derives phases and prefixes from the trials\' jobs and finds the bound by hand', () => {
    const lines = boundLines(spec, { ids, params, values: images.map((r) => r.map((n) => n / 2546)), signatures });
    assert.deepEqual(lines, [
      'bench-sweep-bound comparison=global best=t000 naive_trial_epochs=42 min_run_trial_epochs=15 max_saved_fraction=0.643 ' +
        'schedule=t000:7,t001:3,t002:1,t003:3,t004:1,t005:3 optimal_schedules=1',
      'bench-sweep-bound comparison=phase best=t000 naive_trial_epochs=42 min_run_trial_epochs=12 max_saved_fraction=0.714 ' +
        'schedule=t000:7,t001:3,t002:1,t003:1,t004:1,t005:1 optimal_schedules=1',
    ]);
  });

  it('without shared prefixes pays the twins\' epochs in full', () => {
    const lines = boundLines(spec, { ids, params, values: images.map((r) => r.map((n) => n / 2546)), signatures: ids.map(() => []) });
    // The same stops, but t004 and t005 pay the 1 and 2 epochs they took from t002 and t003: 15 + 3.
    assert.match(lines[0], / min_run_trial_epochs=18 .* schedule=t000:7,t001:3,t002:1,t003:3,t004:1,t005:3 /);
  });

  it('reads a curves CSV in trial order, refusing anything else', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sweep-bound-'));
    const file = path.join(dir, 'curves.csv');
    fs.writeFileSync(file, 'trial,1,2\nt000,22.6,33.2\nt001,24.6,36.5\n');
    assert.deepEqual(readCurvesCsv(file), { ids: ['t000', 't001'], values: [[22.6, 33.2], [24.6, 36.5]] });
    fs.writeFileSync(file, 'trial,1,3\nt000,22.6,33.2\n');
    assert.throws(() => readCurvesCsv(file), /expected a header trial,1,2,...,E, got trial,1,3/);
    fs.writeFileSync(file, 'trial,1,2\nt001,22.6,33.2\n');
    assert.throws(() => readCurvesCsv(file), /expected row 1 to be t000 and 2 numbers, got t001,22.6,33.2/);
    fs.writeFileSync(file, 'trial,1,2\nt000,22.6,"33.2"\n');
    assert.throws(() => readCurvesCsv(file), /expected row 1 to be t000 and 2 numbers/);
    fs.rmSync(dir, { recursive: true });
  });
});
