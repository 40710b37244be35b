import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { loadTrainVal } from '../common/data';
import { loadJobSpec } from '../common/job';
import { stepsPerEpoch } from '../common/training';
import { ClusterHarness } from './support/cluster';
import {
  assertExactlyOnce,
  assertReplicasAgree,
  assertSameWeightsHash,
  assertTrainingFinished,
  finalRunWeights,
  initialWeights,
  localReference,
  recordsOf,
  relativeDifference,
  runCleanJob,
  runRecords,
} from './support/cluster-checks';
import { testJobYaml } from './support/cluster-data';
import { referenceSuite } from './support/reference-suite';


// Real coordinator and worker processes over gRPC on loopback with a real nats-server, against the
// single-process trainer in this process: same seed, same global batch and micro-batch, and a freeze
// (epoch 0), an unfreeze and a learning-rate change (epoch 1) inside the 18 steps.
describe('distributed training equals the single-process trainer', function () {
  this.timeout(240_000);
  const suite = referenceSuite('test-job', testJobYaml('reference'));

  before(async () => {
    // Equality must not be vacuous: the reference moved every trainable variable away from its start.
    const start = await initialWeights(testJobYaml('reference'));
    const unmoved = [...suite.reference].filter(([name, w]) => !/moving_/.test(name) && relativeDifference(w.values, start.get(name)!.values) === 0);
    assert.deepEqual(unmoved.map(([name]) => name), [], 'variables the reference did not train');
  });

  const runs = [1, 2, 3].flatMap((workers) => (['parameter-server', 'allreduce'] as const).map((exchange) => ({ workers, exchange })));
  for (const { workers, exchange } of runs) {
    it(`${workers} worker process(es), ${exchange}: the same weights, every sample once per epoch, replicas agree`, async () => {
      // minWorkers = workers: training starts only when all of them are in, so each run really uses that many.
      const name = `equiv-${workers}-${exchange}`;
      const job = suite.harness.writeJob(name, testJobYaml(name, { minWorkers: workers, exchange }));
      const { coordinator, workers: procs, records, hashes } = await runCleanJob(suite.harness, job, workers);
      const reporting = new Set(hashes.flatMap((h) => Object.keys(h.workers)));
      assert.deepEqual([...reporting].sort(), procs.map((p) => p.ready.id).sort(), 'workers whose replicas were compared');
      // The schedule changed inside the window: frozen in epoch 0, unfrozen with a new rate in epoch 1.
      const changes = records.flatMap((r) => (r.type === 'freeze' || r.type === 'unfreeze' || r.type === 'lr-change' ? [`${r.type}@${r.epoch}`] : []));
      assert.deepEqual(changes, ['freeze@0', 'unfreeze@1', 'lr-change@1']);
      assert.deepEqual(recordsOf(records, 'epoch').map((e) => e.frozen), [true, false, false]);
      const final = finalRunWeights(coordinator.ready.runDir);
      assertSameWeightsHash(final, suite.reference, `${workers} worker(s) ${exchange} vs local`);
    });
  }
});

// The main job itself (examples/demo.yaml: the ImageNet MobileNet v1 backbone at 64x64, linear head, two
// frozen epochs then unfrozen with a smaller rate) on the first 160 real CIFAR-10 images, shortened to 3
// epochs: 2 worker processes reach the weights `train --local` reaches. Skipped without the shared files.
describe('distributed demo job equals the single-process trainer', function () {
  this.timeout(240_000);
  const shared = path.resolve(__dirname, '../../shared');
  const dataDir = path.join(shared, 'data', 'cifar10-subset');
  const modelJson = path.join(shared, 'models', 'mobilenet_v1_imagenet_conv_pw_12', 'model.json');
  const demo = path.resolve(__dirname, '../examples/demo.yaml');
  const overrides = ['data.limit=160', 'training.epochs=3', 'distributed.hashEverySteps=1'];
  let harness: ClusterHarness | undefined;

  before(function () {
    if (!existsSync(dataDir) || !existsSync(modelJson)) {
      console.warn(`    skipped: needs ${dataDir} and ${modelJson}`);
      this.skip();
    }
  });

  after(async () => {
    await harness?.dispose();
  });

  it('pretrained MobileNet, freeze then unfreeze, 2 workers: the same weights as local', async () => {
    harness = await ClusterHarness.create({ dataDir });
    const spec = loadJobSpec(demo, overrides);
    const reference = localReference('demo', spec, dataDir);
    const coordinator = await harness.startCoordinator({ job: demo, set: overrides });
    const procs = await harness.startWorkers(coordinator.ready.grpc, 2);
    try {
      await harness.awaitFinished(coordinator, procs);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${harness.outputs()}`);
    }
    const { train } = await loadTrainVal({ ...spec.data, dir: dataDir }, spec.seed);
    const records = runRecords(coordinator.ready.runDir);
    assertTrainingFinished(records, 3);
    assertExactlyOnce(records, 3, train.count);
    assertReplicasAgree(records, 3, stepsPerEpoch(train.count, spec.training.batchSize));
    assert.deepEqual(recordsOf(records, 'epoch').map((e) => e.frozen), [true, true, false]);
    assertSameWeightsHash(finalRunWeights(coordinator.ready.runDir), await reference, 'demo job, 2 workers vs local');
  });
});
