import assert from 'node:assert/strict';
import { type ManagedChild } from '../launcher';
import { ClusterHarness, pause } from './support/cluster';
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

/** A worker's log line after it pushed its share of a step. */
const SHARE_DONE = /step (\d+) \(epoch (\d+)\): \d+\/\d+ micro-batches/;
/** What the refused process says as it exits. */
const TAKEN = /worker id 'worker-[12]' is taken: .*another live process holds this id \(incarnation 1, last heartbeat \d+ ms ago\)/;

// Incarnations: a registration under a live worker id is admitted only once the old incarnation is gone
// (it left, or its lease expired), never by dropping a live one mid-step, which made two pods under one
// name fail the job ("the allreduce failed 3 times in a row with every member alive").
describe('distributed training with two processes under one worker id', function () {
  this.timeout(240_000);
  let harness: ClusterHarness;

  before(async function () {
    this.timeout(120_000);
    harness = await ClusterHarness.create({ images: DATASET_IMAGES });
  });

  after(async () => {
    await harness?.dispose();
  });

  it('a second live process under worker-1 is refused while the first lives: the job goes on, the second exits saying why', async () => {
    // 96 steps: on an idle machine with the SIMD kernels 24 steps took about 5 s, as long as the twin waits, and
    // a twin still waiting when the coordinator exits retries the unreachable coordinator for minutes.
    const epochs = 16;
    const job = harness.writeJob('twin', testJobYaml('twin', { minWorkers: 2, leaseMs: 3000 }, { epochs }));
    const coordinator = await harness.startCoordinator({ job });
    const runDir = coordinator.ready.runDir;
    const workers = await harness.startWorkers(coordinator.ready.grpc, 2);
    await waitForRecords(runDir, (rs) => recordsOf(rs, 'step').find((s) => s.step >= 1), 'step 1');
    const before = recordsOf(runRecords(runDir), 'step').length;
    // It waits 5 s for the id to free up, well within the 96-step job: the job outlives its refusals.
    const twin = harness.launchWorker(coordinator.ready.grpc, 'worker-1', ['--id-in-use-wait', '5'], 'worker-1-twin');
    const status = await twin.exited;
    const during = recordsOf(runRecords(runDir), 'step').length - before;
    assert.ok(!coordinator.child.lines().some((l) => /job finished/.test(l)), 'the job ended before the twin gave up: the test proves nothing');
    assert.notEqual(status.code, 0, `the twin should fail; its output:\n${twin.tail(20)}`);
    assert.ok(twin.lines().some((l) => TAKEN.test(l)), `the twin should say why it exits; its output:\n${twin.tail(20)}`);
    assert.ok(during > 0, 'the job went on while the twin was refused');
    try {
      await harness.awaitFinished(coordinator, workers);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${harness.outputs()}`);
    }
    const records = runRecords(runDir);
    assertTrainingFinished(records, epochs);
    assertExactlyOnce(records, epochs, harness.trainImages);
    assertReplicasAgree(records, epochs, harness.stepsPerEpoch);
    // No flapping: the first worker-1 was never dropped, and every step was computed by both workers' first incarnation.
    const log = coordinator.child.lines();
    assert.ok(log.some((l) => /registration refused: worker "worker-1" rejected: another live process holds this id/.test(l)), 'refusals logged');
    assert.deepEqual(log.filter((l) => /worker-1.*(failed|dropped|incarnation 2)/.test(l)), [], 'worker-1 flapped');
  });

  it('a worker killed while it holds sums and started again at once: admitted once its connection closed, nothing counted twice', async () => {
    const reference = await localReference('test-job', testJobYaml('reference'), harness.dataDir);
    // A lease longer than a worker process takes to start: the recreated one registers while it would still run,
    // and is admitted because the killed incarnation's session stream ended with its process, not by the lease.
    const job = harness.writeJob('recreated', testJobYaml('recreated', { minWorkers: 1, leaseMs: 15_000 }));
    const coordinator = await harness.startCoordinator({ job });
    const runDir = coordinator.ready.runDir;
    const [first, second] = await harness.startWorkers(coordinator.ready.grpc, 2);
    await waitForRecords(runDir, (rs) => recordsOf(rs, 'step').find((s) => s.step >= 1), 'step 1');
    // With worker-1 frozen the open step cannot be reduced: worker-2 pushes its share of it and holds the sums.
    const frozen = pause([first.child]);
    let recreated: ManagedChild;
    try {
      const open = recordsOf(runRecords(runDir), 'step').length;
      await second.child.waitForLine(new RegExp(`step ${open} \\(epoch \\d+\\): \\d+/\\d+ micro-batches`), { what: "worker-2's held share", timeoutMs: 60_000 });
      second.child.signal('SIGKILL');
      await second.child.exited;
      // The pod comes back under its name at once, while its old incarnation's lease still runs. Worker-1
      // stays frozen until it is admitted: alone, worker-1 could finish the job before the new process is up.
      recreated = harness.launchWorker(coordinator.ready.grpc, 'worker-2', [], 'worker-2-recreated');
      await coordinator.child.waitForLine(/worker worker-2 registered .*incarnation 2/, { what: 'the recreated worker-2 admitted', timeoutMs: 60_000 });
    } finally {
      frozen.resume();
    }
    try {
      await harness.awaitFinished(coordinator, [first, { child: recreated }]);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${harness.outputs()}`);
    }
    const records = runRecords(runDir);
    assertTrainingFinished(records, EPOCHS);
    assertExactlyOnce(records, EPOCHS, harness.trainImages);
    assertReplicasAgree(records, EPOCHS, harness.stepsPerEpoch);
    assertSameWeightsHash(finalRunWeights(runDir), reference, 'after worker-2 was recreated while holding sums');
    const log = coordinator.child.lines();
    const dropped = log.findIndex((l) => /worker worker-2 failed: its session stream \(incarnation 1\) ended/.test(l));
    const admitted = log.findIndex((l) => /worker worker-2 registered .*incarnation 2/.test(l));
    assert.ok(dropped >= 0, 'the killed incarnation is dropped when its session stream ends');
    assert.ok(admitted > dropped, 'then the recreated worker is admitted as incarnation 2');
    assert.ok(!log.some((l) => /worker-2.*no heartbeat/.test(l)), 'not by the lease');
    assert.ok(recreated.lines().some((l) => SHARE_DONE.test(l)), 'the recreated worker computed shares');
  });
});
