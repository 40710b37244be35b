import assert from 'node:assert/strict';
import { NAMESPACE_ENV, WORKER_STATEFULSET_ENV } from '../common';
import { type ExitStatus } from '../launcher';
import { ClusterHarness, type CoordinatorProc } from './support/cluster';
import {
  assertExactlyOnce,
  assertReplicasAgree,
  assertSameWeightsHash,
  assertTrainingFinished,
  finalRunWeights,
  localReference,
  recordsOf,
  runRecords,
  waitForRecords,
} from './support/cluster-checks';
import { DATASET_IMAGES, EPOCHS, testJobYaml } from './support/cluster-data';
import {
  FAKE_COORDINATOR_USER,
  FAKE_NAMESPACE,
  FAKE_WORKERS as WORKERS,
  type FakeCluster,
  type FakeStatefulSetController,
  type PodEvent,
  startFakeCluster,
} from './support/fake-kube';
import { runShardwise } from './support/shardwise-cli';

/** Epochs of the autoscaled job: more than the other tests' 3, so the autoscaler has steps to measure. */
const AUTOSCALE_EPOCHS = 5;

const pod = (ordinal: number): string => `${WORKERS}-${ordinal}`;

/** `shardwise scale --workers N` with only a kubeconfig: the Kubernetes path. */
function shardwiseScale(kubeconfig: string, workers: number): Promise<{ code: number; output: string }> {
  return runShardwise(['scale', '--workers', String(workers), '--statefulset', WORKERS], { ...process.env, KUBECONFIG: kubeconfig });
}

// A running job scaled through the Kubernetes API: the fake API server enforces the chart's Role, and its
// StatefulSet controller starts and stops real `shardwise worker` processes (pods) against a real coordinator
// and nats-server. First `shardwise scale` (an operator), then `distributed.autoscale` (the coordinator).
describe('kube: a running job scaled through the Kubernetes API', function () {
  this.timeout(300_000);
  let harness: ClusterHarness;
  let fake: FakeCluster | undefined;

  before(async () => {
    harness = await ClusterHarness.create({ images: DATASET_IMAGES });
  });

  afterEach(async () => {
    await fake?.close();
    fake = undefined;
  });

  after(async () => {
    await harness?.dispose();
  });

  it('scale 2 -> 3 -> 1: the training workers change, every sample once, replicas agree, drained pods exit cleanly', async () => {
    const reference = localReference('test-job', testJobYaml('reference'), harness.dataDir);
    // A long lease: pods are held (SIGSTOP) below so the job cannot run ahead of the scale operations.
    const job = harness.writeJob('kube-scaled', testJobYaml('kube-scaled', { minWorkers: 1, desiredWorkers: 2, leaseMs: 60_000 }));
    const coordinator: CoordinatorProc = await harness.startCoordinator({ job });
    const runDir = coordinator.ready.runDir;
    fake = await startFakeCluster({
      dir: harness.dir,
      replicas: 2,
      startPod: async (name) => (await harness.startWorker(coordinator.ready.grpc, name)).child,
    });
    const { api, controller, kubeconfig } = fake;
    try {
      await controller.settled();
      assert.deepEqual(controller.podNames(), [pod(0), pod(1)]);
      // Training starts with the first pod (minWorkers 1); both must have trained before the scale-up.
      await waitForRecords(runDir, (rs) => recordsOf(rs, 'replica-hash').find((h) => pod(0) in h.workers && pod(1) in h.workers), 'a step computed by both pods');

      let held = hold(controller, [pod(0), pod(1)]);
      try {
        const up = await shardwiseScale(kubeconfig, 3);
        assert.equal(up.code, 0, `shardwise scale --workers 3: ${up.output}`);
        assert.match(up.output, /statefulset training\/demo-shardwise-worker: replicas 2 -> 3/);
        await controller.settled();
      } finally {
        held.resume();
      }
      assert.deepEqual(controller.podNames(), [pod(0), pod(1), pod(2)]);
      const joined = await waitForRecords(runDir, (rs) => recordsOf(rs, 'replica-hash').find((h) => pod(2) in h.workers), `a step computed by ${pod(2)}`);
      assert.ok(joined.globalStep < EPOCHS * harness.stepsPerEpoch - 1, `${pod(2)} joined before the last step`);

      held = hold(controller, [pod(0)]);
      try {
        const down = await shardwiseScale(kubeconfig, 1);
        assert.equal(down.code, 0, `shardwise scale --workers 1: ${down.output}`);
        await coordinator.child.waitForLine(new RegExp(`worker ${pod(2)} is draining`), { what: `${pod(2)} draining`, timeoutMs: 60_000 });
        await coordinator.child.waitForLine(new RegExp(`worker ${pod(1)} is draining`), { what: `${pod(1)} draining`, timeoutMs: 60_000 });
      } finally {
        // The draining pods finish their shares first, the allreduce of sums they hold included, which needs pod 0.
        held.resume();
      }
      await controller.settled();
      assert.deepEqual(controller.podNames(), [pod(0)]);
      await harness.awaitFinished(coordinator, []);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${harness.outputs(60)}`);
    }

    // Highest ordinal first, each drained (exit 0 on SIGTERM, not SIGKILLed), and none told the job was over.
    const removals = controller.events.filter((e) => e.event === 'terminating').map((e) => e.pod);
    assert.deepEqual(removals, [pod(2), pod(1)]);
    for (const name of removals) {
      const exited: PodEvent | undefined = controller.events.find((e) => e.pod === name && e.event === 'exited');
      const exit: ExitStatus | undefined = exited?.exit;
      assert.deepEqual(exit && { code: exit.code, signal: exit.signal }, { code: 0, signal: null }, `${name} exit`);
      // Drained either way a worker ends one: told STOP while it waited, or leaving itself once its last share is in.
      assert.match(exited?.output ?? '', /^shardwise worker: drained: /m, `${name} output`);
      assert.doesNotMatch(exited?.output ?? '', /the job is finished/, `${name} output`);
    }
    // The requests `shardwise scale` made, as the chart's Role allowed them.
    const scaleCalls = api.requests.map((r) => `${r.method} ${r.status} ${r.contentType ?? '-'} ${r.user}`);
    const user = FAKE_COORDINATOR_USER;
    assert.deepEqual(scaleCalls, [
      `GET 200 - ${user}`, `PATCH 200 application/merge-patch+json ${user}`,
      `GET 200 - ${user}`, `PATCH 200 application/merge-patch+json ${user}`,
    ]);

    const records = runRecords(runDir);
    assertTrainingFinished(records, EPOCHS);
    assertExactlyOnce(records, EPOCHS, harness.trainImages);
    const hashes = assertReplicasAgree(records, EPOCHS, harness.stepsPerEpoch);
    // The set of workers that trained changed: two, then three, then one.
    const sets = hashes.map((h) => Object.keys(h.workers).sort().join(',')).filter(Boolean);
    const two = sets.indexOf(`${pod(0)},${pod(1)}`);
    const three = sets.indexOf(`${pod(0)},${pod(1)},${pod(2)}`);
    assert.ok(two >= 0 && three > two, sets.join(' | '));
    assert.equal(sets.at(-1), pod(0), sets.join(' | '));
    assertSameWeightsHash(finalRunWeights(runDir), await reference, 'kube-scaled cluster vs local');
  });

  it('from 1 worker up to the 3 micro-batches per step, every sample once, replicas agree', async () => {
    // A long lease: running pods are held (SIGSTOP) below while a new one starts.
    const job = harness.writeJob('autoscaled', testJobYaml('autoscaled', { minWorkers: 1, desiredWorkers: 1, maxWorkers: 8, leaseMs: 60_000 }));
    // A pod's worker waits for the coordinator, as a real one retries until its Service answers.
    let coordinatorUp!: (address: string) => void;
    const address = new Promise<string>((resolve) => (coordinatorUp = resolve));
    fake = await startFakeCluster({ dir: harness.dir, replicas: 1, startPod: async (name) => (await harness.startWorker(await address, name)).child });
    // Any efficiency pays off: the rule adds workers as soon as it has measured a count, up to the cap of
    // 3 (micro-batches per step), however slow this machine is.
    const coordinator = await harness.startCoordinator({
      job,
      set: [`training.epochs=${AUTOSCALE_EPOCHS}`, 'distributed.autoscale={minEfficiency: 0.01, measureSteps: 1, cooldownMs: 0}'],
      env: { KUBECONFIG: fake.kubeconfig, [WORKER_STATEFULSET_ENV]: WORKERS, [NAMESPACE_ENV]: FAKE_NAMESPACE },
    });
    coordinatorUp(coordinator.ready.grpc);
    const { api, controller } = fake;
    try {
      await coordinator.child.waitForLine(/autoscale: 1-3 workers, .* through the Kubernetes API \(statefulset training\/demo-shardwise-worker\)/, {
        what: 'the autoscaler start line', timeoutMs: 10_000,
      });
      // However slowly a pod starts on this machine, the job must not end before it joined: the running pods
      // are held from each scale-up until the new pod registered.
      for (const running of [1, 2]) {
        await coordinator.child.waitForLine(new RegExp(`autoscale: ${running} -> ${running + 1} workers`), { what: `the scale-up to ${running + 1}`, timeoutMs: 120_000 });
        const held = hold(controller, Array.from({ length: running }, (_, ordinal) => pod(ordinal)));
        try {
          await coordinator.child.waitForLine(new RegExp(`worker ${pod(running)} registered`), { what: `${pod(running)} registered`, timeoutMs: 120_000 });
        } finally {
          held.resume();
        }
      }
      // What the decisions were made on, as the coordinator exports it: 1 and 2 workers measured.
      const metrics = await (await fetch(coordinator.ready.metrics)).text();
      const efficiency = (n: number): number => Number(new RegExp(`^shardwise_autoscale_efficiency_ratio\\{workers="${n}"\\} (\\S+)$`, 'm').exec(metrics)?.[1]);
      assert.equal(efficiency(1), 1, metrics);
      assert.ok(efficiency(2) >= 0.01, `the efficiency at 2 workers that made the scale-up: ${efficiency(2)}`);
      await waitForRecords(coordinator.ready.runDir, (rs) => recordsOf(rs, 'replica-hash').find((h) => pod(2) in h.workers),
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
    assertTrainingFinished(records, AUTOSCALE_EPOCHS);
    assertExactlyOnce(records, AUTOSCALE_EPOCHS, harness.trainImages);
    assertReplicasAgree(records, AUTOSCALE_EPOCHS, harness.stepsPerEpoch);
  });
});

/** Stops the named pods' processes (SIGSTOP) until resumed: the job cannot run ahead meanwhile. */
function hold(controller: FakeStatefulSetController, pods: string[]): { resume: () => void } {
  const pids = pods.map((name) => controller.pidOf(name));
  pids.forEach((pid) => process.kill(pid, 'SIGSTOP'));
  return { resume: () => pids.forEach((pid) => process.kill(pid, 'SIGCONT')) };
}
