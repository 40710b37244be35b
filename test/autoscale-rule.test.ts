import assert from 'node:assert/strict';
import { type AutoscaleSpec, JobSpecError, parseJobSpec } from '../common';
import { AutoscaleRule, type JobProgress, ThroughputWindows } from '../coordinator';

const SPEC: AutoscaleSpec = { minWorkers: 1, maxWorkers: 4, minEfficiency: 0.8, measureSteps: 5, cooldownMs: 1000 };

/** A job whose spec differs only in `distributed`. */
function job(distributed: string, training = '{ epochs: 1, batchSize: 32, microBatchSize: 8 }'): string {
  return `model: { architecture: small_cnn }\ntraining: ${training}\noptimizer: { learningRate: 0.01 }\ndistributed: ${distributed}\n`;
}

describe('autoscale: the rule', () => {
  it('adds a worker while throughput per worker stays at or above minEfficiency of the one-worker rate', () => {
    const rule = new AutoscaleRule(SPEC);
    assert.equal(rule.decide(1, 0), null, 'nothing measured yet');
    rule.observe({ workers: 1, samplesPerSecond: 100, atMs: 10 });
    assert.equal(rule.oneWorkerRate, 100);
    assert.deepEqual(rule.decide(1, 20), { workers: 2, reason: 'throughput per worker at 1 is 100% of the one-worker rate (>= 80%)' });
    // Cooldown: a measurement at 2 right away does not move it.
    rule.observe({ workers: 2, samplesPerSecond: 180, atMs: 500 });
    assert.deepEqual([...rule.efficiencies()], [[1, 1], [2, 0.9]], 'what shardwise_autoscale_efficiency_ratio shows');
    assert.equal(rule.decide(2, 500), null);
    // After the cooldown: 90 per worker = 90% -> a third.
    assert.equal(rule.decide(2, 1020)?.workers, 3);
    assert.equal(rule.efficiency(2), 0.9);
  });

  it('waits for a measurement taken after the last change, at the count now desired', () => {
    const rule = new AutoscaleRule({ ...SPEC, cooldownMs: 0 });
    rule.observe({ workers: 1, samplesPerSecond: 100, atMs: 10 });
    assert.equal(rule.decide(1, 20)?.workers, 2);
    assert.equal(rule.decide(2, 30), null, 'the only measurement predates the change');
    rule.observe({ workers: 1, samplesPerSecond: 100, atMs: 40 });
    assert.equal(rule.decide(2, 50), null, 'measured at 1 worker while 2 are desired');
  });

  it('below minEfficiency: removes a worker and never grows past that count again', () => {
    const rule = new AutoscaleRule({ ...SPEC, cooldownMs: 0 });
    rule.observe({ workers: 1, samplesPerSecond: 100, atMs: 1 });
    assert.equal(rule.decide(1, 2)?.workers, 2);
    rule.observe({ workers: 2, samplesPerSecond: 190, atMs: 3 });
    assert.equal(rule.decide(2, 4)?.workers, 3);
    rule.observe({ workers: 3, samplesPerSecond: 210, atMs: 5 }); // 70 per worker: 70%
    assert.deepEqual(rule.decide(3, 6), { workers: 2, reason: 'throughput per worker at 3 is 70% of the one-worker rate (< 80%)' });
    rule.observe({ workers: 2, samplesPerSecond: 190, atMs: 7 });
    assert.equal(rule.decide(2, 8), null, 'three did not pay off: stays at two');
  });

  it('the one-worker rate is the per-worker rate at the smallest count the job ran with', () => {
    const rule = new AutoscaleRule({ ...SPEC, cooldownMs: 0 });
    rule.observe({ workers: 2, samplesPerSecond: 200, atMs: 1 });
    assert.equal(rule.oneWorkerRate, 100, 'started with two: two is the reference');
    rule.observe({ workers: 3, samplesPerSecond: 240, atMs: 2 });
    assert.equal(rule.efficiency(3), 0.8);
    assert.equal(rule.decide(3, 3)?.workers, 4, 'exactly minEfficiency still adds');
    rule.observe({ workers: 4, samplesPerSecond: 400, atMs: 4 });
    assert.equal(rule.decide(4, 5), null, 'at maxWorkers');
  });

  it('outside [minWorkers, maxWorkers] it moves back at once, cooldown or not', () => {
    const rule = new AutoscaleRule({ ...SPEC, minWorkers: 2, cooldownMs: 60_000 });
    assert.equal(rule.decide(1, 0)?.workers, 2);
    assert.equal(rule.decide(6, 1)?.workers, 4);
  });
});

describe('autoscale: throughput windows', () => {
  /** Workers w0..w(n-1), each last counted at `counted`. */
  const look = (windows: ThroughputWindows, p: { workers: number; counted: number; desired?: number; step: number; atMs: number }) => {
    const active: JobProgress['active'] = Array.from({ length: p.workers }, (_, i) => ({ id: `w${i}`, lastCountedStep: p.counted }));
    return windows.look({ active, desiredWorkers: p.desired ?? p.workers, step: p.step, atMs: p.atMs });
  };

  it('measures measureSteps steps at a steady count, as samples per second', () => {
    const windows = new ThroughputWindows(2, 32, 100);
    assert.equal(look(windows, { workers: 1, counted: 0, step: 0, atMs: 0 }), undefined, 'no share counted yet');
    assert.equal(look(windows, { workers: 1, counted: 1, step: 2, atMs: 1000 }), undefined, 'the window opens');
    assert.equal(look(windows, { workers: 1, counted: 2, step: 3, atMs: 1500 }), undefined, 'one step in');
    assert.deepEqual(look(windows, { workers: 1, counted: 3, step: 4, atMs: 2000 }), { workers: 1, samplesPerSecond: 64, atMs: 2000 });
  });

  it("leaves out a new worker's warm-up: nothing is measured until every active worker had a share counted after the change", () => {
    const windows = new ThroughputWindows(1, 32, 100);
    look(windows, { workers: 1, counted: 0, step: 0, atMs: 0 });
    look(windows, { workers: 1, counted: 1, step: 2, atMs: 100 });
    assert.ok(look(windows, { workers: 1, counted: 2, step: 3, atMs: 200 }), 'steady at one worker');
    // A second worker is admitted at step 3; its first share (step 3) takes 5 s: weights download and first kernels.
    const joined = (counted: number[], step: number, atMs: number) =>
      windows.look({ active: counted.map((c, i) => ({ id: `w${i}`, lastCountedStep: c })), desiredWorkers: 2, step, atMs });
    assert.equal(joined([3, 0], 3, 250), undefined);
    assert.equal(joined([3, 3], 4, 5200), undefined, "the slow step held the new worker's first share: not measured");
    assert.equal(joined([4, 4], 5, 5300), undefined, 'the window opens after a share counted past the change');
    assert.deepEqual(joined([5, 5], 6, 5400), { workers: 2, samplesPerSecond: 320, atMs: 5400 });
  });

  it('a worker replaced under the same count warms up again; a count other than the desired one is not measured', () => {
    const windows = new ThroughputWindows(1, 32, 100);
    look(windows, { workers: 2, counted: 0, step: 0, atMs: 0 });
    look(windows, { workers: 2, counted: 1, step: 2, atMs: 0 });
    assert.ok(look(windows, { workers: 2, counted: 2, step: 3, atMs: 100 }));
    const replaced = [{ id: 'w0', lastCountedStep: 3 }, { id: 'w9', lastCountedStep: 3 }];
    assert.equal(windows.look({ active: replaced, desiredWorkers: 2, step: 4, atMs: 3000 }), undefined);
    assert.equal(look(windows, { workers: 2, counted: 9, desired: 3, step: 10, atMs: 4000 }), undefined, 'draining toward 3');
    assert.equal(look(windows, { workers: 2, counted: 10, desired: 3, step: 11, atMs: 4100 }), undefined);
  });

  it('drops a window that spans an epoch end (its evaluation is not training)', () => {
    const windows = new ThroughputWindows(2, 32, 4);
    look(windows, { workers: 1, counted: 0, step: 0, atMs: 0 });
    look(windows, { workers: 1, counted: 2, step: 3, atMs: 0 });
    assert.equal(look(windows, { workers: 1, counted: 4, step: 5, atMs: 9000 }), undefined, 'steps 3-4 cross the end of epoch 0');
    assert.ok(look(windows, { workers: 1, counted: 6, step: 7, atMs: 9100 }), 'steps 5-6 lie in epoch 1');
  });
});

describe('autoscale: distributed.autoscale in the job spec', () => {
  it('defaults the bounds and caps maxWorkers at the micro-batches per step', () => {
    const spec = parseJobSpec(job('{ maxWorkers: 8, autoscale: {} }'));
    assert.deepEqual(spec.distributed.autoscale, { minWorkers: 1, maxWorkers: 4, minEfficiency: 0.8, measureSteps: 5, cooldownMs: 60_000 });
    const uncapped = parseJobSpec(job('{ maxWorkers: 3, autoscale: { minEfficiency: 0.5 } }'));
    assert.equal(uncapped.distributed.autoscale?.maxWorkers, 3);
    assert.equal(parseJobSpec(job('{}')).distributed.autoscale, undefined, 'absent: no autoscaling');
  });

  it('refuses bad values by name', () => {
    const refused = (distributed: string): string => {
      try {
        parseJobSpec(job(distributed));
      } catch (err) {
        assert.ok(err instanceof JobSpecError, String(err));
        return err.message;
      }
      assert.fail(`accepted ${distributed}`);
    };
    assert.match(refused('{ autoscale: { minEfficency: 0.5 } }'), /distributed\.autoscale: unknown key 'minEfficency'/);
    assert.match(refused('{ autoscale: { minEfficiency: 1.5 } }'), /distributed\.autoscale\.minEfficiency: .*<=1/);
    assert.match(refused('{ maxWorkers: 4, autoscale: { maxWorkers: 6 } }'), /distributed\.autoscale\.maxWorkers: must not exceed distributed\.maxWorkers \(6 > 4\)/);
    assert.match(refused('{ minWorkers: 2, autoscale: { minWorkers: 1 } }'), /distributed\.autoscale\.minWorkers: must lie in \[distributed\.minWorkers, distributed\.maxWorkers\] = \[2, 16\], got 1/);
    assert.match(refused('{ autoscale: { minWorkers: 3, maxWorkers: 2 } }'), /distributed\.autoscale\.minWorkers: must not exceed distributed\.autoscale\.maxWorkers \(3 > 2\)/);
  });
});
