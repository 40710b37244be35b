import assert from 'node:assert/strict';
import * as path from 'node:path';
import { listCheckpoints } from '../coordinator';
import { KILL_AT_STEP_ENV } from '../worker';
import { pause, type WorkerProc } from './support/cluster';
import { assertNoExchangeTimedOut, recordsOf, runRecords, waitForRecords } from './support/cluster-checks';
import { testJobYaml } from './support/cluster-data';
import { pollUntil, withDeadline } from './support/deadline';
import { exitCodeOf } from '../launcher';
import { faultSuite } from './support/fault-suite';

/** A worker's log line after it pushed its share of a step. */
const SHARE_DONE = /step (\d+) \(epoch (\d+)\): \d+\/\d+ micro-batches/;
/** A worker's line as it starts computing a share of a step after the first. */
const COMPUTING_LATER = /step ([1-9]\d*): computing micro-batches/;
/** A worker's line as it starts the planned allreduce of a step after the first: its share just came. */
const PLANNED_LATER = /step ([1-9]\d*): reducing with members .* \(allreduce (\S+\/planned-\d+)\)/;

// Faults injected on purpose into a real cluster (processes, gRPC, nats-server). After each, the job must
// finish with every sample counted exactly once per epoch, replicas agreeing, and the same weights as the
// undisturbed single-process run: a fault may cost time, never correctness.
describe('distributed training survives faults', function () {
  this.timeout(240_000);
  const suite = faultSuite();
  const finish = (runDir: string, run: () => Promise<void>, label: string): Promise<void> => suite.finish(run, runDir, label);

  it('a worker SIGKILLed mid-compute: its share is redone by the other, the job finishes', async () => {
    const job = suite.harness.writeJob('kill-worker', testJobYaml('kill-worker', { minWorkers: 1, leaseMs: 2000 }));
    const coordinator = await suite.harness.startCoordinator({ job });
    // The victim SIGKILLs itself (the worker's failpoint) as it starts computing its first share after step 0:
    // it dies with that share in hand, so its session ends and the coordinator hands the share to the
    // survivor. A kill sent from here at its "computing" line could land after the push.
    const [survivor, victim] = await Promise.all([
      suite.harness.startWorker(coordinator.ready.grpc, 'worker-1'),
      suite.harness.startWorker(coordinator.ready.grpc, 'worker-2', { [KILL_AT_STEP_ENV]: '1' }),
    ]);
    const exit = await withDeadline(victim.child.exited, 120_000, 'the victim to kill itself at its failpoint');
    assert.equal(exit.signal, 'SIGKILL', victim.child.tail(20));
    const killedAt = victim.child.lines().flatMap((l) => COMPUTING_LATER.exec(l)?.[1] ?? []).pop();
    await finish(coordinator.ready.runDir, () => suite.harness.awaitFinished(coordinator, [survivor]), 'after a worker was killed');
    const pushed = victim.child.lines().some((l) => SHARE_DONE.exec(l)?.[1] === killedAt);
    assert.equal(pushed, false, `the victim pushed its share of step ${killedAt} before the kill: not mid-compute`);
    const reports = recordsOf(runRecords(coordinator.ready.runDir), 'epoch-report');
    const redone = reports.reduce((sum, r) => sum + r.redoneMicroBatches, 0);
    assert.ok(redone > 0, `expected the victim's micro-batches redone (killed computing step ${killedAt}); reports: ${JSON.stringify(reports)}`);
  });

  it('a worker drained as its next share came with its plan: the step is planned again under its own key, nobody waits out an exchange', async () => {
    const job = suite.harness.writeJob('drain-planned', testJobYaml('drain-planned', { minWorkers: 1, leaseMs: 10_000 }));
    const coordinator = await suite.harness.startCoordinator({ job });
    const workers = await suite.harness.startWorkers(coordinator.ready.grpc, 2);
    const [stays, leaves] = workers;
    // Its share of a later step usually comes ahead, during the exchange of the step before: the step was
    // prepared with its plan, and the drain drops that prepared step at the commit. Planned again for the
    // worker that stays, under the key of the first plan, the two met and failed, and the share handed out
    // then waited for a coordinator part that had already ended, until its timeout.
    const [, step, key] = await leaves.child.waitForLine(PLANNED_LATER, { what: "worker-2's planned allreduce of a later step", timeoutMs: 120_000 });
    leaves.child.signal('SIGTERM');
    assert.equal(exitCodeOf(await withDeadline(leaves.child.exited, 120_000, 'worker-2 to drain')), 0, leaves.child.tail(20));
    await finish(coordinator.ready.runDir, () => suite.harness.awaitFinished(coordinator, [stays]), 'after a drain with a planned share out');
    assertNoExchangeTimedOut(workers);
    // Each plan of a step has a key of its own: worker-1 never ran one plan's key with two member lists.
    const runs = stays.child.lines().flatMap((l) => {
      const m = /reducing with members (.*) \(allreduce (\S+)\)/.exec(l);
      return m ? [[m[2], m[1]] as const] : [];
    });
    for (const [k, members] of runs) {
      assert.deepEqual(new Set(runs.filter(([other]) => other === k).map(([, m]) => m)), new Set([members]), `allreduce ${k} (drained at step ${step}, ${key})`);
    }
  });

  it('a worker added mid-epoch is admitted at a step boundary with the current weights', async () => {
    const job = suite.harness.writeJob('join', testJobYaml('join', { minWorkers: 1, leaseMs: 15_000 }));
    const coordinator = await suite.harness.startCoordinator({ job });
    const [first] = await suite.harness.startWorkers(coordinator.ready.grpc, 1);
    const runDir = coordinator.ready.runDir;
    await waitForRecords(runDir, (rs) => recordsOf(rs, 'step').find((s) => s.epoch === 0 && s.step >= 1), 'step 1 of epoch 0');
    // Hold the first worker so the epoch cannot end while the second one starts (seconds, under the lease).
    const held = pause([first.child]);
    let joiner: WorkerProc;
    try {
      joiner = await suite.harness.startWorker(coordinator.ready.grpc, 'worker-2');
    } finally {
      held.resume();
    }
    await finish(runDir, () => suite.harness.awaitFinished(coordinator, [first, joiner]), 'with a worker added mid-epoch');
    const hashes = recordsOf(runRecords(runDir), 'replica-hash').filter((h) => 'worker-2' in h.workers);
    assert.ok(hashes.length > 0, 'worker-2 never reported a weights hash');
    const joinedAt = hashes[0].globalStep;
    assert.ok(joinedAt > 1 && joinedAt % suite.harness.stepsPerEpoch !== 0, `worker-2 first computed global step ${joinedAt}, expected mid-epoch`);
    assert.equal(hashes[0].workers['worker-2'], hashes[0].coordinator, 'the joiner started from the current weights');
  });

  it('a coordinator SIGKILLed mid-epoch resumes from its checkpoint; the workers reconnect', async () => {
    const job = suite.harness.writeJob('restart', testJobYaml('restart', { minWorkers: 2, checkpointEverySteps: 2, leaseMs: 10_000 }));
    // A fixed port: the workers dial the address they know, so the new coordinator must come back there.
    const port = await suite.harness.freePort();
    const first = await suite.harness.startCoordinator({ job, port });
    const runDir = first.ready.runDir;
    const workers = await suite.harness.startWorkers(first.ready.grpc, 2);
    await waitForRecords(runDir, (rs) => recordsOf(rs, 'step').find((s) => s.epoch === 0 && s.step >= 3), 'step 3 of epoch 0 (after a checkpoint)');
    const held = pause(workers.map((w) => w.child));
    first.child.signal('SIGKILL');
    await first.child.exited;
    held.resume();
    const killedAfter = recordsOf(runRecords(runDir), 'step').length;
    assert.ok(killedAfter < suite.harness.stepsPerEpoch, `the kill came after epoch 0 ended (${killedAfter} steps recorded)`);
    // The newest checkpoint the killed coordinator left: a mid-epoch one (every 2 steps, at least step 2).
    const [newest] = await listCheckpoints(path.join(runDir, 'checkpoints'));
    const checkpointStep = Number(/step-(\d+)$/.exec(newest ?? '')?.[1]);
    assert.ok(checkpointStep >= 2 && checkpointStep <= killedAfter, `expected a mid-epoch checkpoint, found ${newest}`);

    const second = await suite.harness.startCoordinator({ job, port, runDir });
    assert.equal(second.ready.runDir, runDir);
    // It resumes at that checkpoint's step, not at the epoch's start: ignoring mid-epoch checkpoints fails here.
    const [, from, epoch, step, globalStep] = await second.child.waitForLine(/resuming .* from (\S+): epoch (\d+), step (\d+) \(global step (\d+)\)/,
      { what: "the new coordinator's resume line", timeoutMs: 5000 });
    assert.deepEqual([from, Number(epoch), Number(step), Number(globalStep)], [newest, 0, checkpointStep, checkpointStep]);
    await finish(runDir, () => suite.harness.awaitFinished(second, workers), 'after a coordinator restart');
    assertNoExchangeTimedOut(workers);
  });

  it('a coordinator SIGKILLed while a worker holds sums: the worker drops them when it registers again', async () => {
    // A checkpoint after every step: the new coordinator redoes exactly the step whose sums were held.
    const job = suite.harness.writeJob('restart-held', testJobYaml('restart-held', { minWorkers: 2, checkpointEverySteps: 1, leaseMs: 10_000 }));
    const port = await suite.harness.freePort();
    const first = await suite.harness.startCoordinator({ job, port });
    const runDir = first.ready.runDir;
    const workers = await suite.harness.startWorkers(first.ready.grpc, 2);
    await waitForRecords(runDir, (rs) => recordsOf(rs, 'step').find((s) => s.epoch === 0), 'the first step');
    // With worker-2 frozen no step can be reduced: worker-1 pushes its share of the open step and holds the sums.
    const frozen = pause([workers[1].child]);
    const heldStep = await pollUntil(() => {
      const open = recordsOf(runRecords(runDir), 'step').length;
      const pushed = workers[0].child.lines().some((l) => SHARE_DONE.exec(l)?.[1] === String(open));
      return pushed ? open : undefined;
    }, { timeoutMs: 60_000, intervalMs: 20, what: "worker-1's share of the open step" });
    const held = pause([workers[0].child]);
    first.child.signal('SIGKILL');
    await first.child.exited;
    held.resume();
    frozen.resume();
    const second = await suite.harness.startCoordinator({ job, port, runDir });
    assert.equal(recordsOf(runRecords(runDir), 'step').length, heldStep, 'the new coordinator redoes the held step');
    // Kept, the stale sums would be added to worker-1's new share of the same step: weights off the reference.
    await finish(runDir, () => suite.harness.awaitFinished(second, workers), 'after a restart while sums were held');
    assertNoExchangeTimedOut(workers);
  });

  it('nats-server down across the learning-rate change: workers get the config on their session stream', async () => {
    const job = suite.harness.writeJob('bus-outage', testJobYaml('bus-outage', { minWorkers: 2 }));
    const coordinator = await suite.harness.startCoordinator({ job });
    const runDir = coordinator.ready.runDir;
    const workers = await suite.harness.startWorkers(coordinator.ready.grpc, 2);
    await waitForRecords(runDir, (rs) => recordsOf(rs, 'step').find((s) => s.epoch === 0), 'the first step of epoch 0');
    // Stop the bus before the epoch 1 boundary (unfreeze + new rate), with the workers held meanwhile.
    const held = pause(workers.map((w) => w.child));
    try {
      await suite.harness.nats.stop();
    } finally {
      held.resume();
    }
    assert.ok(!recordsOf(runRecords(runDir), 'step').some((s) => s.epoch === 1), 'epoch 1 began before the bus went down');
    await waitForRecords(runDir, (rs) => recordsOf(rs, 'step').find((s) => s.epoch === 1), 'a step of epoch 1 while the bus is down');
    await suite.harness.nats.restart();
    await finish(runDir, () => suite.harness.awaitFinished(coordinator, workers), 'across a bus outage');
    // The rate change's version, from the coordinator. Each worker must have reached it without the bus: pushed on
    // its session stream, or (a worker dropped and registered again, as a heavily loaded machine can cause) in the
    // answer to its registration.
    const changed = coordinator.child.lines().map((l) => /lr-change to \S+ \(config v(\d+)\)/.exec(l)).find((m) => m !== null);
    assert.ok(changed, 'the coordinator logged no learning-rate change');
    const target = Number(changed[1]);
    for (const w of workers) {
      const seen = w.child.lines().map((l) => /config v(\d+) pushed on the session stream|registered as .* config v(\d+)\)/.exec(l))
        .filter((m) => m !== null).map((m) => Number(m[1] ?? m[2]));
      assert.ok(seen.some((v) => v >= target), `a worker never got config v${target} without the bus; it saw versions ${seen.join(', ')}`);
    }
  });
});
