import assert from 'node:assert/strict';
import { LocalCluster } from '../launcher';
import { ClusterHarness, TEST_BACKEND } from './support/cluster';
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
import { LineLog } from './support/cluster-lines';
import { shardwiseScale } from './support/shardwise-cli';

// The launcher end to end: `shardwise cluster`'s LocalCluster with the real coordinator and workers, scaled
// by `shardwise scale` through the coordinator (Scale RPC -> `scale` bus event -> the launcher).
describe('distributed: shardwise scale against a launcher-run cluster', function () {
  this.timeout(240_000);
  let harness: ClusterHarness;
  let cluster: LocalCluster | undefined;
  const log = new LineLog();
  const output = new LineLog();

  before(async () => {
    harness = await ClusterHarness.create({ images: DATASET_IMAGES });
  });

  after(async () => {
    await cluster?.stop();
    await harness?.dispose();
  });

  it('scale up adds a worker mid-training, scale down drains the newest; the job finishes correctly', async () => {
    const reference = localReference('test-job', testJobYaml('reference'), harness.dataDir);
    // A long lease: workers are held (SIGSTOP) for seconds below, so that the job cannot run ahead of the
    // scale operations; a held worker must not be dropped for its silence.
    const job = harness.writeJob('scaled', testJobYaml('scaled', { minWorkers: 2, leaseMs: 60_000 }));
    cluster = await LocalCluster.start({
      job,
      workers: 2,
      data: harness.dataDir,
      runsDir: harness.runsDir,
      backend: TEST_BACKEND,
      coordinatorOutput: 'prefix',
      output: output.push,
      log: log.push,
    });
    const { grpc, runDir } = cluster.coordinator;
    const pids = new Map(cluster.workers().map((w) => [w.id, w.pid!]));
    const hold = (ids: string[]): { resume: () => void } => {
      ids.forEach((id) => process.kill(pids.get(id)!, 'SIGSTOP'));
      return { resume: () => ids.forEach((id) => process.kill(pids.get(id)!, 'SIGCONT')) };
    };
    try {
      await waitForRecords(runDir, (rs) => recordsOf(rs, 'step').find((s) => s.epoch === 0), 'the first step');
      let held = hold(['worker-1', 'worker-2']);
      try {
        const up = await shardwiseScale(grpc, cluster.tlsDir, 3);
        assert.equal(up.code, 0, `shardwise scale --workers 3: ${up.output}`);
        await log.waitFor(/^worker-3 ready/, { timeoutMs: 120_000 });
      } finally {
        held.resume();
      }
      const joined = await waitForRecords(runDir, (rs) => recordsOf(rs, 'replica-hash').find((h) => 'worker-3' in h.workers), 'a step computed by worker-3');
      assert.ok(joined.globalStep < EPOCHS * harness.stepsPerEpoch - 1, 'worker-3 joined before the last step');
      held = hold(['worker-1']);
      try {
        const down = await shardwiseScale(grpc, cluster.tlsDir, 2);
        assert.equal(down.code, 0, `shardwise scale --workers 2: ${down.output}`);
        await output.waitFor(/^\[coordinator\] worker worker-3 is draining/, { timeoutMs: 120_000 });
      } finally {
        // worker-3 finishes its share first, the allreduce of sums it holds included, which needs worker-1.
        held.resume();
      }
      await log.waitFor(/^worker-3 left \(exit code 0\)/, { timeoutMs: 120_000 });
    } catch (err) {
      throw new Error(`${(err as Error).message}\nlauncher:\n${log.lines.join('\n')}\nprocesses:\n${output.lines.slice(-80).join('\n')}`);
    }
    assert.deepEqual(cluster.liveWorkers().map((w) => w.id), ['worker-1', 'worker-2']);
    const code = await cluster.finished;
    assert.equal(code, 0, `launcher exit status\n${log.lines.join('\n')}\n${output.lines.slice(-80).join('\n')}`);
    const records = runRecords(runDir);
    assertTrainingFinished(records, EPOCHS);
    assertExactlyOnce(records, EPOCHS, harness.trainImages);
    assertReplicasAgree(records, EPOCHS, harness.stepsPerEpoch);
    assertSameWeightsHash(finalRunWeights(runDir), await reference, 'scaled cluster vs local');
    // The launcher acted on the coordinator's scale events, one each.
    assert.equal(log.matching(/^scale event: 3 worker\(s\) wanted/).length, 1, log.lines.join('\n'));
    assert.equal(log.matching(/^scale event: 2 worker\(s\) wanted/).length, 1, log.lines.join('\n'));
  });
});

