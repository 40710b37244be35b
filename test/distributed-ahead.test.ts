import assert from 'node:assert/strict';
import { COMMIT_DELAY_ENV } from '../coordinator';
import { KILL_AT_STEP_ENV } from '../worker';
import { withDeadline } from './support/deadline';
import { testJobYaml } from './support/cluster-data';
import { faultSuite } from './support/fault-suite';

/** The coordinator's line at each epoch's end: how many shares went out before the step they follow committed. */
const AHEAD = /epoch \d+: (\d+) shares handed out ahead/;
/** A coordinator slowed between its part of each allreduce and the commit (the failpoint), so the workers ask first. */
const SLOW_COMMIT = { [COMMIT_DELAY_ENV]: '400' };

function aheadShares(lines: readonly string[]): number {
  return lines.reduce((n, line) => n + Number(AHEAD.exec(line)?.[1] ?? 0), 0);
}

// A member whose part of a step's allreduce completed gets its share of the next step at once, with that
// result as its update, while the coordinator commits (coordinator/step/next-step.ts). The coordinator's
// commit is slowed on purpose so the workers' requests come first at every step. The job must still end
// with the single-process trainer's weights, every sample counted once, replicas agreeing (suite.finish).
describe('distributed training: the next step handed out while a step commits', function () {
  this.timeout(240_000);
  const suite = faultSuite();

  it('members start the next step on their own allreduce result: the same weights, every sample once', async () => {
    const job = suite.harness.writeJob('ahead', testJobYaml('ahead', { minWorkers: 2 }));
    const coordinator = await suite.harness.startCoordinator({ job, env: SLOW_COMMIT });
    const workers = await suite.harness.startWorkers(coordinator.ready.grpc, 2);
    await suite.finish(() => suite.harness.awaitFinished(coordinator, workers), coordinator.ready.runDir, 'with shares handed out ahead');
    const ahead = aheadShares(coordinator.child.lines());
    assert.ok(ahead > 0, `expected shares handed out ahead of the commit; the coordinator said:\n${coordinator.child.tail(30)}`);
  });

  it('a member killed computing a share handed out ahead: the attempt fails, the prepared step is dropped, nothing counted twice', async () => {
    const job = suite.harness.writeJob('ahead-kill', testJobYaml('ahead-kill', { minWorkers: 1, leaseMs: 2000 }));
    const coordinator = await suite.harness.startCoordinator({ job, env: SLOW_COMMIT });
    // The victim SIGKILLs itself as it starts computing step 4 (the worker's failpoint; by then both workers
    // are members, a joiner being admitted at a step boundary): its share of step 4 came ahead, while step 3
    // was committing. The coordinator loses it before that commit, so step 3's attempt fails with the next
    // step already handed out: the survivor's share of it is refused as stale, its replica (one update
    // ahead) is copied back, and it redoes the victim's micro-batches of step 3 with the sums it kept.
    const [survivor, victim] = await Promise.all([
      suite.harness.startWorker(coordinator.ready.grpc, 'worker-1'),
      suite.harness.startWorker(coordinator.ready.grpc, 'worker-2', { [KILL_AT_STEP_ENV]: '4' }),
    ]);
    const exit = await withDeadline(victim.child.exited, 120_000, 'the victim to kill itself at its failpoint');
    assert.equal(exit.signal, 'SIGKILL', victim.child.tail(20));
    await suite.finish(() => suite.harness.awaitFinished(coordinator, [survivor]), coordinator.ready.runDir, 'after a member with a share handed out ahead was killed');
    assert.ok(victim.child.lines().some((l) => /step 3: reducing with members/.test(l)), `the victim was no member of step 3:\n${victim.child.tail(30)}`);
    assert.ok(coordinator.child.lines().some((l) => /step 3: allreduce \S+ failed .*lost before the step committed/.test(l)),
      `expected step 3's attempt to fail on the lost member; the coordinator said:\n${coordinator.child.tail(40)}`);
    assert.ok(survivor.child.lines().some((l) => /step 4: result not counted, the coordinator has moved on/.test(l)),
      `expected the survivor's share of step 4, handed out ahead, refused as stale:\n${survivor.child.tail(40)}`);
  });
});
