import assert from 'node:assert/strict';
import { type AutoscaleSpec, JobSpecError, parseJobSpec } from '../common';
import { AutoscaleRule } from '../coordinator';

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
