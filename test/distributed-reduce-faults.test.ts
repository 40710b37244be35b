import assert from 'node:assert/strict';
import { ClusterHarness, pause, type WorkerProc } from './support/cluster';
import { assertRunMatchesReference, localReference, recordsOf, runRecords, type WeightMap } from './support/cluster-checks';
import { DATASET_IMAGES, EPOCHS, testJobYaml } from './support/cluster-data';

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

// Faults inside a step's allreduce (the phase after every share is in): a member killed in the exchange
// itself. Each must cost time only: the job finishes, every sample is counted once, and the weights are the single-process trainer's.
describe('distributed training survives faults in the allreduce', function () {
  this.timeout(240_000);
  let harness: ClusterHarness;
  let reference: WeightMap;

  before(async function () {
    this.timeout(120_000);
    harness = await ClusterHarness.create({ images: DATASET_IMAGES });
    reference = await localReference('test-job', testJobYaml('reference'), harness.dataDir);
  });

  after(async () => {
    await harness?.dispose();
  });

  /**
   * The step both workers compute a share of: `second`'s next share once `first` pushed one (so both are
   * members). Resolves as `second` starts computing it, before it can push.
   */
  async function nextSharedStep(first: WorkerProc, second: WorkerProc): Promise<number> {
    await first.child.waitForLine(SHARE_DONE, { what: `a share of ${first.child.name}`, timeoutMs: 120_000 });
    const [, step] = await second.child.waitForLine(COMPUTING, { what: `${second.child.name} computing its next share`, timeoutMs: 120_000, onlyNew: true });
    return Number(step);
  }

  async function finish(run: () => Promise<void>, runDir: string, label: string): Promise<void> {
    try {
      await run();
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${harness.outputs()}`);
    }
    assertRunMatchesReference(runDir, harness, reference, label, EPOCHS);
  }

  it('a worker SIGKILLed inside the allreduce: the coordinator retries the step without it', async () => {
    const job = harness.writeJob('kill-in-reduce', testJobYaml('kill-in-reduce', { minWorkers: 1, leaseMs: 10_000, stepDeadlineMs: 20_000 }));
    const coordinator = await harness.startCoordinator({ job });
    const [survivor, victim] = await harness.startWorkers(coordinator.ready.grpc, 2);
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
    await finish(() => harness.awaitFinished(coordinator, [survivor]), coordinator.ready.runDir, 'after a worker was killed in the allreduce');
    const failed = coordinator.child.lines().filter((l) => l.includes(`step ${step}: allreduce `) && l.includes(' failed '));
    assert.ok(failed.length > 0, `the coordinator never retried step ${step}'s allreduce; its output:\n${coordinator.child.tail(40)}`);
    const redone = recordsOf(runRecords(coordinator.ready.runDir), 'epoch-report').reduce((sum, r) => sum + r.redoneMicroBatches, 0);
    assert.ok(redone > 0, `the victim's micro-batches of step ${step} were not redone`);
  });
});
