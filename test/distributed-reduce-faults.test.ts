import assert from 'node:assert/strict';
import { pause, type WorkerProc } from './support/cluster';
import { recordsOf, runRecords } from './support/cluster-checks';
import { testJobYaml } from './support/cluster-data';
import { faultSuite } from './support/fault-suite';
import { TcpProxy } from './support/tcp-proxy';

/** A worker's line after the coordinator accepted its share of a step. */
const SHARE_DONE = /step (\d+) \(epoch \d+\): \d+\/\d+ micro-batches/;
/** A worker's line as it starts computing a share (before the compute). */
const COMPUTING = /step (\d+): computing micro-batches/;

/** A worker's line when the coordinator accepted its share of `step`. */
function shareDone(step: number): RegExp {
  return new RegExp(`step ${step} \\(epoch \\d+\\): \\d+/\\d+ micro-batches`);
}

/** The line a worker logs as it enters the allreduce of `step`. */
function reducing(step: number): RegExp {
  return new RegExp(`step ${step}: reducing with members (.+) \\(allreduce (\\S+)\\)`);
}

/** Whether `worker` logged that the coordinator accepted its share of `step`. */
function pushed(worker: WorkerProc, step: number): boolean {
  return worker.child.lines().some((l) => SHARE_DONE.exec(l)?.[1] === String(step));
}

// Faults inside a step's allreduce (the phase after every share is in): a member killed in the exchange
// itself, and a push the coordinator accepted whose answer never reached the worker. Each must cost time
// only: the job finishes, every sample is counted once, and the weights are the single-process trainer's.
describe('distributed training survives faults in the allreduce', function () {
  this.timeout(240_000);
  const suite = faultSuite();

  /**
   * The step both workers compute a share of: `second`'s next share once `first` pushed one (so both are
   * members). Resolves as `second` starts computing it, before it can push.
   */
  async function nextSharedStep(first: WorkerProc, second: WorkerProc): Promise<number> {
    await first.child.waitForLine(SHARE_DONE, { what: `a share of ${first.child.name}`, timeoutMs: 120_000 });
    const [, step] = await second.child.waitForLine(COMPUTING, { what: `${second.child.name} computing its next share`, timeoutMs: 120_000, onlyNew: true });
    return Number(step);
  }


  it('a worker SIGKILLed inside the allreduce: the coordinator retries the step without it', async () => {
    const job = suite.harness.writeJob('kill-in-reduce', testJobYaml('kill-in-reduce', { minWorkers: 1, leaseMs: 10_000, stepDeadlineMs: 20_000 }));
    const coordinator = await suite.harness.startCoordinator({ job });
    const [survivor, victim] = await suite.harness.startWorkers(coordinator.ready.grpc, 2);
    const step = await nextSharedStep(survivor, victim);
    // Stage the fault without a sleep: the victim is held mid-compute until the survivor's share is in and
    // the survivor is held too; then the victim pushes, the step's REDUCE orders go out, and the victim's
    // exchange cannot finish (the survivor's sums are missing) when it is killed on its line.
    const victimHeld = pause([victim.child]);
    let survivorHeld: { resume: () => void } | undefined;
    try {
      await survivor.child.waitForLine(shareDone(step), { what: `the survivor's share of step ${step}`, timeoutMs: 60_000 });
      survivorHeld = pause([survivor.child]);
    } finally {
      victimHeld.resume();
    }
    try {
      const [, members] = await victim.child.waitForLine(reducing(step), { what: `the victim entering the allreduce of step ${step}`, timeoutMs: 60_000 });
      victim.child.signal('SIGKILL');
      assert.match(members, /worker-1/, `the survivor is a member of the allreduce the victim entered: ${members}`);
    } finally {
      survivorHeld?.resume();
    }
    await suite.finish(() => suite.harness.awaitFinished(coordinator, [survivor]), coordinator.ready.runDir, 'after a worker was killed in the allreduce');
    const failed = coordinator.child.lines().filter((l) => l.includes(`step ${step}: allreduce `) && l.includes(' failed '));
    assert.ok(failed.length > 0, `the coordinator never retried step ${step}'s allreduce; its output:\n${coordinator.child.tail(40)}`);
    const redone = recordsOf(runRecords(coordinator.ready.runDir), 'epoch-report').reduce((sum, r) => sum + r.redoneMicroBatches, 0);
    assert.ok(redone > 0, `the victim's micro-batches of step ${step} were not redone`);
  });

  it('a push accepted but its answer lost on the wire: the worker drops its sums, the coordinator forfeits them', async () => {
    const job = suite.harness.writeJob('lost-answer', testJobYaml('lost-answer', { minWorkers: 1, leaseMs: 10_000, stepDeadlineMs: 10_000 }));
    const coordinator = await suite.harness.startCoordinator({ job });
    // worker-2 talks to the coordinator through the proxy (gRPC only: its data plane is direct).
    const proxy = await TcpProxy.start(coordinator.ready.grpc);
    try {
      const [direct, proxied] = await Promise.all([
        suite.harness.startWorker(coordinator.ready.grpc, 'worker-1'),
        suite.harness.startWorker(proxy.address, 'worker-2'),
      ]);
      const step = await nextSharedStep(direct, proxied);
      // From here worker-2 hears nothing: its push of this step goes through, the answer does not.
      proxy.holdReplies();
      // REDUCE orders go out only once every share of the step is accepted: worker-1 entering the exchange
      // with worker-2 among the members proves the coordinator took worker-2's push. Cut before the answer.
      const [, members] = await direct.child.waitForLine(reducing(step), { what: `worker-1 entering the allreduce of step ${step}`, timeoutMs: 60_000 });
      proxy.cut();
      assert.match(members, /worker-2/, `worker-2's share of step ${step} was accepted (a member of its allreduce): ${members}`);
      await proxied.child.waitForLine(/session ended \(.*\); dropping the sums it held/, { what: 'worker-2 ending its session', timeoutMs: 60_000 });
      assert.equal(pushed(proxied, step), false, `worker-2 heard the answer to its push of step ${step}: the answer was not lost`);
      await suite.finish(() => suite.harness.awaitFinished(coordinator, [direct, proxied]), coordinator.ready.runDir, 'after a lost push answer');
      assert.ok(proxy.connections >= 2, `worker-2 did not reconnect through the proxy (${proxy.connections} connections)`);
    } finally {
      await proxy.close();
    }
  });
});
