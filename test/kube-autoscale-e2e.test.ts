import assert from 'node:assert/strict';
import { NAMESPACE_ENV, WORKER_STATEFULSET_ENV } from '../common';
import { ClusterHarness } from './support/cluster';
import { assertExactlyOnce, assertReplicasAgree, assertTrainingFinished, recordsOf, runRecords, waitForRecords } from './support/cluster-checks';
import { DATASET_IMAGES, testJobYaml } from './support/cluster-data';
import { FAKE_COORDINATOR_USER, FAKE_NAMESPACE, FAKE_WORKERS, type FakeCluster, startFakeCluster } from './support/fake-kube';

/** Epochs of this job: more than the other tests' 3, so the autoscaler has steps to measure. */
const EPOCHS = 5;

// distributed.autoscale applied by the coordinator through the Kubernetes API: the coordinator (with the
// chart's env and the ServiceAccount's token) patches the worker StatefulSet's scale on the fake API server,
// and the fake controller starts the pods.
describe('kube: the coordinator autoscales the worker StatefulSet', function () {
  this.timeout(300_000);
  let harness: ClusterHarness;
  let fake: FakeCluster | undefined;

  before(async () => {
    harness = await ClusterHarness.create({ images: DATASET_IMAGES });
  });

  after(async () => {
    await fake?.close();
    await harness?.dispose();
  });

  it('from 1 worker up to the 3 micro-batches per step, every sample once, replicas agree', async () => {
    const job = harness.writeJob('autoscaled', testJobYaml('autoscaled', { minWorkers: 1, desiredWorkers: 1, maxWorkers: 8 }));
    // A pod's worker waits for the coordinator, as a real one retries until its Service answers.
    let coordinatorUp!: (address: string) => void;
    const address = new Promise<string>((resolve) => (coordinatorUp = resolve));
    fake = await startFakeCluster({ dir: harness.dir, replicas: 1, startPod: async (name) => (await harness.startWorker(await address, name)).child });
    // Any efficiency pays off: the rule adds workers as soon as it has measured a count, up to the cap of
    // 3 (micro-batches per step), however slow this machine is.
    const coordinator = await harness.startCoordinator({
      job,
      set: [`training.epochs=${EPOCHS}`, 'distributed.autoscale={minEfficiency: 0.01, measureSteps: 1, cooldownMs: 0}'],
      env: { KUBECONFIG: fake.kubeconfig, [WORKER_STATEFULSET_ENV]: FAKE_WORKERS, [NAMESPACE_ENV]: FAKE_NAMESPACE },
    });
    coordinatorUp(coordinator.ready.grpc);
    const { api } = fake;
    try {
      await coordinator.child.waitForLine(/autoscale: 1-3 workers, .* through the Kubernetes API \(statefulset training\/demo-shardwise-worker\)/, {
        what: 'the autoscaler start line', timeoutMs: 10_000,
      });
      await waitForRecords(coordinator.ready.runDir, (rs) => recordsOf(rs, 'replica-hash').find((h) => `${FAKE_WORKERS}-2` in h.workers),
        'a step computed by the third pod', 240_000);
      await harness.awaitFinished(coordinator, []);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${harness.outputs(60)}`);
    }
    const patches = api.requestsFor('patch', 'statefulsets/scale');
    assert.deepEqual(patches.map((r) => [(r.body as { spec: { replicas: number } }).spec.replicas, r.status, r.contentType, r.user]), [
      [2, 200, 'application/merge-patch+json', FAKE_COORDINATOR_USER],
      [3, 200, 'application/merge-patch+json', FAKE_COORDINATOR_USER],
    ]);
    assert.equal(api.requests.filter((r) => r.status === 403).length, 0);
    assert.equal(coordinator.child.tail(400).match(/autoscale: 1 -> 2 workers/g)?.length, 1);
    const records = runRecords(coordinator.ready.runDir);
    assertTrainingFinished(records, EPOCHS);
    assertExactlyOnce(records, EPOCHS, harness.trainImages);
    assertReplicasAgree(records, EPOCHS, harness.stepsPerEpoch);
  });
});
