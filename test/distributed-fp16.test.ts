import assert from 'node:assert/strict';
import { parseJobSpec } from '../common/job';
import { exitCodeOf } from '../launcher';
import {
  finalRunWeights,
  recordsOf,
  runRecords,
  relativeDifference,
  runCleanJob,
} from './support/cluster-checks';
import { EPOCHS, testJobYaml } from './support/cluster-data';
import { referenceSuite } from './support/reference-suite';
import { withDeadline } from './support/deadline';

describe('job spec: distributed.compression', () => {
  const spec = (distributed: string): string =>
    `model: { architecture: small_cnn }\ntraining: { epochs: 1 }\noptimizer: { learningRate: 0.1 }\ndistributed: ${distributed}\n`;

  it('defaults to none (bit-exact) with prescale 1', () => {
    const d = parseJobSpec(spec('{}')).distributed;
    assert.equal(d.compression, 'none');
    assert.equal(d.prescaleFactor, 1);
  });

  it('refuses an unknown mode, fp16 without the allreduce, and a prescale without fp16, naming the field', () => {
    assert.throws(() => parseJobSpec(spec('{ compression: bf16 }')), /distributed\.compression: .*"none".*"fp16"/);
    assert.throws(() => parseJobSpec(spec('{ compression: fp16, exchange: parameter-server }')),
      /distributed\.compression: fp16 applies to the allreduce's data plane, expected exchange 'allreduce', got 'parameter-server'/);
    assert.throws(() => parseJobSpec(spec('{ prescaleFactor: 4 }')), /distributed\.prescaleFactor: applies only with compression 'fp16'/);
    assert.throws(() => parseJobSpec(spec('{ compression: fp16, prescaleFactor: 0 }')), /distributed\.prescaleFactor/);
  });
});

// Real coordinator and 2 worker processes with fp16 gradients on the data plane: every replica ends with the
// coordinator's bytes (hashes compared every step), every sample once, and weights near the float32 run's.
describe('distributed training with fp16 compression', function () {
  this.timeout(240_000);
  const suite = referenceSuite('test-job', testJobYaml('reference'));

  it('2 worker processes: the replicas agree every step, and the weights stay near the float32 trainer\'s', async () => {
    const job = suite.harness.writeJob('fp16', testJobYaml('fp16', { minWorkers: 2, compression: 'fp16', prescaleFactor: 4 }));
    const { coordinator, hashes } = await runCleanJob(suite.harness, job, 2);
    assert.deepEqual([...new Set(hashes.flatMap((h) => Object.keys(h.workers)))].sort(), ['worker-1', 'worker-2']);
    const final = finalRunWeights(coordinator.ready.runDir);
    const differences = [...suite.reference].map(([name, w]) => ({ name, d: relativeDifference(final.get(name)!.values, w.values) }));
    // fp16 really was on the wire: rounded gradients moved the weights off the float32 trainer's bytes...
    assert.ok(differences.some((x) => x.d > 0), 'the weights equal the float32 run: fp16 was not used');
    // ...but only by rounding: most tensors stay within 1% of the float32 run's.
    const sorted = differences.map((x) => x.d).sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)];
    assert.ok(median < 0.01, `median relative difference ${median} from the float32 trainer's`);
    // BatchNorm betas start at 0, and Adam turns rounding on their near-zero gradients into rate-sized steps
    // (docs/distributed-design.md), so relative to their size they move most. In absolute terms no element
    // may be further off than the whole run's Adam steps could carry it: one rate-sized step per step.
    const steps = EPOCHS * suite.harness.stepsPerEpoch;
    const travel = steps * parseJobSpec(testJobYaml('reference')).optimizer.learningRate;
    for (const [name, w] of suite.reference) {
      const got = final.get(name)!.values;
      const worst = w.values.reduce((m, v, i) => Math.max(m, Math.abs(got[i] - v)), 0);
      assert.ok(worst < travel, `${name} is ${worst} off the float32 trainer's, beyond ${steps} steps at the top rate (${travel})`);
    }
  });

  it('a prescale that throws gradients beyond the fp16 range fails the job naming the tensor, never training on an Inf', async () => {
    const job = suite.harness.writeJob('fp16-overflow', testJobYaml('fp16-overflow', { minWorkers: 2, compression: 'fp16', prescaleFactor: 1e30 }));
    const coordinator = await suite.harness.startCoordinator({ job });
    await suite.harness.startWorkers(coordinator.ready.grpc, 2);
    const status = await withDeadline(coordinator.child.exited, 180_000, 'the coordinator to fail the job');
    const output = coordinator.child.lines().join('\n');
    assert.notEqual(exitCodeOf(status), 0, `the coordinator should fail the job; its output:\n${coordinator.child.tail(30)}`);
    assert.match(output, /the allreduce failed 3 times in a row with every member alive; the last: .*the reduced gradient of tensor '[^']+' at element \d+ is beyond the fp16 range \(±65504\) after prescaling by 1e\+30/);
    // No step committed: the first step's sums were already out of range, so no replica moved on an Inf.
    assert.deepEqual(recordsOf(runRecords(coordinator.ready.runDir), 'step'), []);
  });
});
