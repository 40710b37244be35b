import assert from 'node:assert/strict';
import { exitCodeOf } from '../launcher';
import { ClusterHarness } from './support/cluster';
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
import { EPOCHS, testJobYaml } from './support/cluster-data';
import { alive } from './support/process-alive';

// `shardwise cluster` as a user runs it: a real command process that starts nats-server, the coordinator
// and workers. Ctrl-C (SIGINT) stops everything in order and leaves a resumable run; the same command with
// --run-dir finishes it, with the weights of an uninterrupted single-process run.
describe('shardwise cluster (the command): Ctrl-C, then resume with --run-dir', function () {
  this.timeout(240_000);
  let harness: ClusterHarness;

  before(async () => {
    harness = await ClusterHarness.create();
  });

  after(async () => {
    await harness?.dispose();
  });

  it('SIGINT stops workers, coordinator and nats-server and exits 0; --run-dir resumes and finishes', async () => {
    const reference = localReference('test-job', testJobYaml('reference'), harness.dataDir);
    const job = harness.writeJob('cli', testJobYaml('cli', { minWorkers: 2 }));
    const first = harness.launchCluster(job);
    const [, runDir] = await first.waitForLine(/^\[cluster\] run directory: (.+)$/, { timeoutMs: 120_000 });
    await first.waitForLine(/^\[cluster\] running 2 worker\(s\)/, { timeoutMs: 120_000 });
    await waitForRecords(runDir, (rs) => recordsOf(rs, 'step').find((s) => s.globalStep >= 1), 'two steps');
    const pids = first.lines().flatMap((l) => /^\[cluster\] .*\(pid (\d+)\)/.exec(l)?.[1] ?? []).map(Number);
    assert.equal(pids.length, 4, `expected nats-server, coordinator and 2 worker pids in:\n${first.tail(60)}`);
    first.signal('SIGINT');
    const status = await first.exited;
    assert.equal(exitCodeOf(status), 0, first.tail(60));
    assert.deepEqual(pids.filter(alive), [], 'processes left running after the launcher exited');
    assert.ok(first.lines().some((l) => l.includes(`resume it with: shardwise cluster --job ${job} --run-dir ${runDir}`)), first.tail(20));
    const stoppedAt = recordsOf(runRecords(runDir), 'step').length;
    assert.ok(stoppedAt < EPOCHS * harness.stepsPerEpoch, 'the job had finished before the interrupt');

    const second = harness.launchCluster(job, ['--run-dir', runDir]);
    assert.equal(exitCodeOf(await second.exited), 0, second.tail(60));
    assert.ok(second.lines().some((l) => /^\[cluster\] after epoch 3: validation top-1 \d+\.\d%/.test(l)), second.tail(20));
    assert.ok(!second.lines().some((l) => l.includes('did not finish')), second.tail(20));
    const records = runRecords(runDir);
    assertTrainingFinished(records, EPOCHS);
    assertExactlyOnce(records, EPOCHS, harness.trainImages);
    assertReplicasAgree(records, EPOCHS, harness.stepsPerEpoch);
    assertSameWeightsHash(finalRunWeights(runDir), await reference, 'interrupted and resumed vs local');
  });
});
