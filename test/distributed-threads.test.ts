import assert from 'node:assert/strict';
import { initBackend } from '../common/compute';
import { loadTrainVal } from '../common/data';
import { parseJobSpec } from '../common/job';
import { buildModel, disposeModelParts, namedVariables } from '../common/models';
import { runLocalTraining, ShareThreads } from '../common/training';
import { ClusterHarness, TEST_BACKEND } from './support/cluster';
import {
  assertReplicasAgree,
  assertSameWeightsHash,
  assertTrainingFinished,
  finalRunWeights,
  localReference,
  runRecords,
  type WeightMap,
} from './support/cluster-checks';
import { DATASET_IMAGES, testJobYaml } from './support/cluster-data';

/** Four micro-batches of 8 per step: two per thread of a 2-thread single process, one per thread of 2 x 2. */
const TRAINING = { batchSize: 32, epochs: 2 };
const THREADS_LINE = /compute: 2 threads per share/;

// Threads are an implementation detail of where a share is computed: the single-process trainer and a
// 2-worker job reach the 1-thread single-process trainer's weights hash with 2 threads each.
describe('compute threads: the weights do not depend on the thread count', function () {
  this.timeout(240_000);
  let harness: ClusterHarness;
  let reference: WeightMap;
  const job = testJobYaml('threads', { minWorkers: 2, exchange: 'allreduce' }, TRAINING);

  before(async function () {
    this.timeout(120_000);
    harness = await ClusterHarness.create({ images: DATASET_IMAGES });
    reference = await localReference('threads-job', job, harness.dataDir);
  });

  after(async () => {
    await harness?.dispose();
  });

  it('the single-process trainer with 2 threads: the 1-thread weights hash', async () => {
    await initBackend({ prefer: TEST_BACKEND, log: () => undefined });
    const spec = parseJobSpec(job);
    const data = await loadTrainVal({ ...spec.data, dir: harness.dataDir }, spec.seed);
    const parts = await buildModel(spec.model, spec.seed);
    const threads = new ShareThreads(2);
    try {
      await runLocalTraining(spec, { train: data.train, val: data.val, parts, threads });
      const { backbone, head } = namedVariables(parts);
      const weights: WeightMap = new Map([...backbone, ...head].map((v) => [
        v.originalName, { shape: [...v.shape] as number[], values: Float32Array.from(v.read().dataSync() as Float32Array) },
      ]));
      assertSameWeightsHash(weights, reference, 'train --local with 2 threads');
    } finally {
      await threads.close();
      disposeModelParts(parts);
    }
  });

  it('2 workers with --threads 2 each, allreduce: the 1-thread weights hash', async () => {
    const coordinator = await harness.startCoordinator({ job: harness.writeJob('threads', job) });
    const workers = ['worker-1', 'worker-2'].map((id) => harness.launchWorker(coordinator.ready.grpc, id, ['--threads', '2']));
    try {
      await Promise.all(workers.map((w) => w.waitForLine(THREADS_LINE, { what: 'the worker computing with 2 threads', timeoutMs: 120_000 })));
      await harness.awaitFinished(coordinator, workers.map((child) => ({ child })), 180_000);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${harness.outputs()}`);
    }
    const records = runRecords(coordinator.ready.runDir);
    assertTrainingFinished(records, TRAINING.epochs);
    assertReplicasAgree(records, TRAINING.epochs, Math.ceil(harness.trainImages / TRAINING.batchSize));
    assertSameWeightsHash(finalRunWeights(coordinator.ready.runDir), reference, '2 workers x 2 threads');
    assert.ok(workers.every((w) => w.lines().some((line) => THREADS_LINE.test(line))));
  });
});
