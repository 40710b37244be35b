import assert from 'node:assert/strict';
import { coordinatorHeapCapMb } from '../launcher';
import { runSoak, soakLine } from './soak/run-soak';
import { INTERVAL_CLASSES } from './soak/step-breakdown';
import { syntheticShare, syntheticValue } from './soak/synthetic-share';
import { buildModel, disposeModelParts, initBackend, parseJobSpec } from '../common';
import type { LocalSamples } from '../worker';

describe('soak: the synthetic share', () => {
  before(async () => {
    await initBackend({ prefer: 'cpu', log: () => undefined });
  });

  /** A share of `ids` split into micro-batches of `per` samples. */
  function samplesOf(ids: number[], per: number): LocalSamples {
    const microBatches = [];
    for (let k = 0; k < ids.length; k += per) microBatches.push({ id: k / per, sampleIndices: Uint32Array.from(ids.slice(k, k + per), (_, j) => k + j) });
    return { data: { images: new Uint8Array(0), labels: new Uint8Array(0), count: ids.length }, sampleIds: Uint32Array.from(ids), microBatches };
  }

  it('has the shapes of the unfrozen variables, depends only on the samples and the step, and sums exactly over any split', async () => {
    const spec = parseJobSpec(['name: t', 'model: { architecture: small_cnn, pretrained: false, inputSize: 32, head: linear }',
      'training: { epochs: 1, batchSize: 4, microBatchSize: 1 }', 'optimizer: { type: adam, learningRate: 0.001 }', ''].join('\n'));
    const parts = await buildModel(spec.model, 3);
    try {
      const share = (ids: number[], per: number, globalStep = 4, backboneFrozen = true) => syntheticShare(parts, {
        samples: samplesOf(ids, per), augmenter: undefined as never, jobSeed: 3, epoch: 0, globalStep, configVersion: 1, backboneFrozen, weightsVersion: 2,
      });
      const whole = await share([5, 9, 12, 40], 1);
      assert.deepEqual(whole.grads.map((g) => [g.name, g.shape]), [['head_logits/kernel', [64, 10]], ['head_logits/bias', [10]]]);
      assert.equal(whole.sampleCount, 4);
      assert.ok(whole.correctTop1 <= whole.correctTop5 && whole.correctTop5 <= whole.sampleCount);
      // The same samples in other micro-batches, or as two shares added, give the same bytes.
      const [a, b] = [await share([5, 9], 2), await share([12, 40], 1)];
      const added = a.grads[0].data.map((v, i) => v + b.grads[0].data[i]);
      assert.deepEqual((await share([5, 9, 12, 40], 4)).grads[0].data, whole.grads[0].data);
      assert.deepEqual(added, whole.grads[0].data);
      assert.equal(whole.grads[1].data[3], [5, 9, 12, 40].reduce((s, id) => s + syntheticValue(id, 4, 3), 0));
      assert.notDeepEqual((await share([5, 9, 12, 40], 1, 5)).grads[0].data, whole.grads[0].data, 'another step, another gradient');
      const unfrozen = await share([5], 1, 4, false);
      assert.ok(unfrozen.grads.length > whole.grads.length && unfrozen.statDeltas.length > 0, 'an unfrozen backbone adds its variables and statistics');
    } finally {
      disposeModelParts(parts);
    }
  });
});

// The short soak of `make test`: the `make soak` harness, a real coordinator and 16 real Workers in 2
// processes with the synthetic share, for 40 steps. It asserts what must hold at any length (every sample
// counted once, the replicas equal, no descriptor left open); the timing figures are `make soak`'s.
describe('soak: 16 workers, 40 steps', function () {
  this.timeout(300_000);

  it('counts every sample once, keeps the replicas equal and leaves no descriptor open', async () => {
    const lines: string[] = [];
    const r = await runSoak({ workers: 16, hosts: 2, steps: 40, warmupSteps: 10, stepsPerEpoch: 20, log: (l) => lines.push(l) });
    const line = soakLine(r);
    process.stdout.write(`    ${line}\n`);
    assert.deepEqual({ lost: r.samplesLost, duplicated: r.samplesDuplicated, agree: r.hashAgree }, { lost: 0, duplicated: 0, agree: true }, `${line}\n${lines.join('\n')}`);
    assert.ok(r.hashComparisons >= 2, line);
    // One more is allowed: the status page lists the checkpoint folder twice a second (a directory handle).
    assert.ok(r.handlesEnd <= r.handlesStart + 1, `expected the coordinator's open handles flat, ${line}`);
    // The companions are measured, not assumed: every timed interval is in one class, the coordinator
    // ran with the launcher's cap, its GC log and timeline were read.
    const classified = INTERVAL_CLASSES.reduce((n, k) => n + r.breakdown[k].count, 0);
    assert.equal(classified, r.measuredSteps, `every interval after the warm-up in one class, ${line}`);
    assert.equal(r.breakdown.epoch_end.count, 1, `one epoch began after the warm-up, ${line}`);
    assert.equal(r.heapCapMb, coordinatorHeapCapMb(16));
    assert.ok(r.gc.minorCount > 0, `the coordinator's scavenges were logged, ${line}`);
    assert.ok(r.phases.evaluate.length >= 1 && r.validation.passes >= 1, `the validation passes were timed, ${line}`);
    assert.ok(r.coordinatorCpuMsPerStep > 0 && r.workersCpuMsPerStep > 0, line);
  });
});
