import assert from 'node:assert/strict';
import { KILL_AT_STEP_ENV } from '../worker';
import { type CoordinatorProc, type WorkerProc } from './support/cluster';
import {
  assertExactlyOnce,
  assertReplicasAgree,
  assertSameWeightsHash,
  assertTrainingFinished,
  finalRunWeights,
  recordsOf,
  runRecords,
} from './support/cluster-checks';
import { testJobYaml } from './support/cluster-data';
import { withDeadline } from './support/deadline';
import { referenceSuite } from './support/reference-suite';

/** Four micro-batches of 8 per step; 144 training images make the last step of an epoch 16 (two micro-batches). */
const TRAINING = { batchSize: 32, epochs: 2 };
/** A worker's log line after it pushed a share: step, epoch, micro-batches of the step it computed. */
const SHARE_DONE = /step (\d+) \(epoch \d+\): (\d+)\/(\d+) micro-batches/;
/** A worker's log line as it starts computing a share of a step after the first. */
const COMPUTING_LATER = /step ([1-9]\d*): computing micro-batches/;

/** Micro-batches each worker pushed per step, as `step -> counts` (a worker with two shares in a step: both). */
function sharesByStep(workers: readonly WorkerProc[]): Map<number, number[]> {
  const out = new Map<number, number[]>();
  for (const w of workers) {
    for (const line of w.child.lines()) {
      const m = SHARE_DONE.exec(line);
      if (m) out.set(Number(m[1]), [...(out.get(Number(m[1])) ?? []), Number(m[2])]);
    }
  }
  return out;
}

// The determinism contract: whatever the split of a step's micro-batches over workers (forced, unaligned
// with the summation tree), and with a worker killed mid-compute, the job ends with the weights hash of
// the single-process trainer. A left fold would fail here: 1 + 3 adds a + ((b + c) + d), 2 + 1 + 1 adds
// ((a + b) + c) + d, the trainer (a + b) + (c + d).
describe('distributed training gives the same weights whatever the split', function () {
  this.timeout(240_000);
  const suite = referenceSuite('split-job', testJobYaml('reference', {}, TRAINING));

  async function run(name: string, workers: number, options: { exchange: string; split?: number[]; killMidCompute?: boolean; planned?: boolean }): Promise<{ procs: WorkerProc[]; coordinator: CoordinatorProc }> {
    // minWorkers: every worker is in before training starts, but the kill must not stall the job below it.
    const minWorkers = options.killMidCompute ? workers - 1 : workers;
    const job = suite.harness.writeJob(name, testJobYaml(name, { minWorkers, exchange: options.exchange, leaseMs: 2000, plannedExchange: options.planned ?? false }, TRAINING));
    const coordinator = await suite.harness.startCoordinator({ job, split: options.split });
    // The victim (the last worker) SIGKILLs itself as it starts computing its first share after step 0, through
    // the worker's failpoint: a kill sent from here at its "computing" line can land after the push, as a
    // micro-batch of this model computes in milliseconds. Its micro-batches must be redone.
    const victimEnv = options.killMidCompute ? { [KILL_AT_STEP_ENV]: '1' } : {};
    const procs = await Promise.all(Array.from({ length: workers }, (_, k) =>
      suite.harness.startWorker(coordinator.ready.grpc, `worker-${k + 1}`, k === workers - 1 ? victimEnv : {})));
    let survivors = procs;
    let killedAt = -1;
    try {
      if (options.killMidCompute) {
        const victim = procs[workers - 1];
        const exit = await withDeadline(victim.child.exited, 120_000, 'the victim to kill itself at its failpoint');
        assert.equal(exit.signal, 'SIGKILL', victim.child.tail(20));
        const computing = victim.child.lines().flatMap((l) => COMPUTING_LATER.exec(l)?.[1] ?? []);
        killedAt = Number(computing[computing.length - 1]);
        survivors = procs.slice(0, -1);
      }
      await suite.harness.awaitFinished(coordinator, survivors, 150_000);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${suite.harness.outputs()}`);
    }
    const records = runRecords(coordinator.ready.runDir);
    const stepsPerEpoch = Math.ceil(suite.harness.trainImages / TRAINING.batchSize);
    assertTrainingFinished(records, TRAINING.epochs);
    assertExactlyOnce(records, TRAINING.epochs, suite.harness.trainImages);
    assertReplicasAgree(records, TRAINING.epochs, stepsPerEpoch);
    assertSameWeightsHash(finalRunWeights(coordinator.ready.runDir), suite.reference, name);
    if (killedAt >= 0) {
      const victimPushed = sharesByStep([procs[workers - 1]]).has(killedAt);
      assert.equal(victimPushed, false, `the victim pushed its share of step ${killedAt} before the kill: not mid-compute`);
      const redone = recordsOf(records, 'epoch-report').reduce((sum, r) => sum + r.redoneMicroBatches, 0);
      assert.ok(redone > 0, `expected the victim's micro-batches of step ${killedAt} redone`);
    }
    return { procs, coordinator };
  }

  it('3 workers split 2+1+1, allreduce: the local weights hash', async () => {
    const { procs } = await run('split-2-1-1', 3, { exchange: 'allreduce', split: [2, 1, 1] });
    const full = [...sharesByStep(procs)].filter(([, counts]) => counts.reduce((a, b) => a + b, 0) === 4);
    assert.ok(full.length > 0 && full.every(([, counts]) => [...counts].sort().join() === '1,1,2'), `shares per step: ${JSON.stringify(full)}`);
  });

  it('2 workers split 1+3, allreduce: the 3 go out as two tree nodes, the local weights hash', async () => {
    const { procs } = await run('split-1-3', 2, { exchange: 'allreduce', split: [1, 3] });
    const full = [...sharesByStep(procs)].filter(([, counts]) => counts.reduce((a, b) => a + b, 0) === 4);
    assert.ok(full.length > 0 && full.every(([, counts]) => [...counts].sort().join() === '1,1,2'), `shares per step: ${JSON.stringify(full)}`);
  });

  it('2 workers split 1+3, parameter server: the local weights hash', async () => {
    await run('split-1-3-ps', 2, { exchange: 'parameter-server', split: [1, 3] });
  });

  // Four micro-batches per step but two in an epoch's last step: two of the four workers have no share
  // there. Each must still follow every update by replaying it (the sums sent with an APPLY when it was no
  // member of the allreduce, at once while it waits), never by a full copy: a worker kept waiting through
  // that step fell two updates behind and fetched the whole model, optimizer state included.
  it('4 workers, allreduce: a worker with no share in a step replays the update from the sums sent, no GetWeights after joining', async () => {
    const { procs } = await run('idle-4', 4, { exchange: 'allreduce' });
    const steps = [...sharesByStep(procs)];
    assert.ok(steps.some(([, counts]) => counts.length < procs.length), `expected a step some worker had no share of: ${JSON.stringify(steps)}`);
    for (const w of procs) {
      const loads = w.child.lines().filter((l) => /loaded the coordinator's weights/.test(l));
      assert.equal(loads.length, 1, `${w.ready.id}: expected one full copy (when it joined), got:\n${loads.join('\n')}`);
    }
  });

  it('3 workers, one SIGKILLed mid-compute: its share is redone, the local weights hash', async () => {
    await run('split-kill', 3, { exchange: 'allreduce', killMidCompute: true });
  });

  // distributed.plannedExchange: each share carries its step's allreduce, started with the push.
  it('2 workers, planned exchange: every step reduced by its planned attempt, the local weights hash', async () => {
    const { procs, coordinator } = await run('planned-2', 2, { exchange: 'allreduce', planned: true });
    for (const w of procs) {
      const keys = w.child.lines().flatMap((l) => /reducing with members .* \(allreduce (\S+)\)/.exec(l)?.[1] ?? []);
      assert.ok(keys.length > 0 && keys.every((k) => /\/planned-\d+$/.test(k)), `${w.ready.id} reduced ${keys.join(', ')}`);
    }
    assert.deepEqual(coordinator.child.lines().filter((l) => /voided/.test(l)), [], 'no plan voided');
  });

  it('3 workers, planned exchange, one SIGKILLed mid-compute: the plan is voided, the share redone, the local weights hash', async () => {
    const { coordinator } = await run('planned-kill', 3, { exchange: 'allreduce', killMidCompute: true, planned: true });
    assert.ok(coordinator.child.lines().some((l) => /planned allreduce \S+ voided/.test(l)), coordinator.child.tail(40));
  });
});
