import assert from 'node:assert/strict';
import { COORDINATOR_MEMBER_ID } from '../common';
import { STOP_BEFORE_PUSH_ENV, STOPPED_BEFORE_PUSH } from '../worker';
import { type CoordinatorProc, pause, untilStopped, type WorkerProc } from './support/cluster';
import { assertNoExchangeTimedOut, recordsOf, runRecords } from './support/cluster-checks';
import { datasetShape, EPOCHS, testJobYaml } from './support/cluster-data';
import { pollUntil } from './support/deadline';
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

/** The coordinator's count of shares handed out ahead of the commit (shardwise_ahead_shares_total). */
async function aheadShares(metricsUrl: string): Promise<number> {
  const text = await (await fetch(metricsUrl)).text();
  const line = /^shardwise_ahead_shares_total (\S+)$/m.exec(text);
  if (!line) throw new Error(`expected shardwise_ahead_shares_total in ${metricsUrl}`);
  return Number(line[1]);
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

  /** Starts `worker-1` and `worker-2`, `held` (both: 'both') with the stop-before-push failpoint installed. */
  async function startPair(grpc: string, held: 'worker-1' | 'worker-2' | 'both'): Promise<WorkerProc[]> {
    const env = (id: string): NodeJS.ProcessEnv => (id === held || held === 'both' ? { [STOP_BEFORE_PUSH_ENV]: '1' } : {});
    return Promise.all(['worker-1', 'worker-2'].map((id) => suite.harness.startWorker(grpc, id, env(id))));
  }

  /**
   * Once both workers pushed a share of the same step (both are members, past the admission of the later
   * one), stops `held` after it computed its next share and before it pushes it (the failpoint, armed by
   * SIGUSR2): returns that step, which `other` has a share of too. A SIGSTOP sent from here on the worker's
   * "computing" line could land after its push.
   */
  async function stopBeforePush(held: WorkerProc, other: WorkerProc): Promise<number> {
    const steps = (w: WorkerProc): Set<string> => new Set(w.child.lines().flatMap((l) => SHARE_DONE.exec(l)?.[1] ?? []));
    await pollUntil(() => ([...steps(held)].some((s) => steps(other).has(s)) ? true : undefined),
      { timeoutMs: 120_000, intervalMs: 20, what: `${held.child.name} and ${other.child.name} pushing shares of the same step` });
    held.child.signal('SIGUSR2');
    const [, step] = await held.child.waitForLine(STOPPED_BEFORE_PUSH, { what: `${held.child.name} stopped before a push`, timeoutMs: 60_000, onlyNew: true });
    await untilStopped(held.child); // the line comes just before the stop: a SIGCONT in between would be lost
    return Number(step);
  }

  it('a worker SIGKILLed inside the allreduce: the coordinator retries the step without it', async () => {
    // The REDUCE path: a planned exchange (the default) that fails falls back on it, and without the plan the
    // victim's line below marks its entry into that step's REDUCE attempt (with the plan it precedes the compute).
    const job = suite.harness.writeJob('kill-in-reduce', testJobYaml('kill-in-reduce', { minWorkers: 1, leaseMs: 10_000, stepDeadlineMs: 20_000, plannedExchange: false }));
    const coordinator = await suite.harness.startCoordinator({ job });
    const [survivor, victim] = await startPair(coordinator.ready.grpc, 'worker-2');
    // Stage the fault without a sleep: the victim is stopped before its push until the survivor's share is
    // in and the survivor is held too; then the victim pushes, the step's REDUCE orders go out, and the
    // victim's exchange cannot finish (the survivor's sums are missing) when it is killed on its line.
    const step = await stopBeforePush(victim, survivor);
    let survivorHeld: { resume: () => void } | undefined;
    try {
      await survivor.child.waitForLine(shareDone(step), { what: `the survivor's share of step ${step}`, timeoutMs: 60_000 });
      survivorHeld = pause([survivor.child]);
    } finally {
      victim.child.signal('SIGCONT');
    }
    try {
      const [, members] = await victim.child.waitForLine(reducing(step), { what: `the victim entering the allreduce of step ${step}`, timeoutMs: 60_000 });
      victim.child.signal('SIGKILL');
      assert.match(members, /worker-1/, `the survivor is a member of the allreduce the victim entered: ${members}`);
    } finally {
      survivorHeld?.resume();
    }
    await suite.finish(() => suite.harness.awaitFinished(coordinator, [survivor]), coordinator.ready.runDir, 'after a worker was killed in the allreduce');
    // A small vector is reduced directly (every member adds every part): the victim's part may have reached
    // the coordinator before the kill, and the survivor's too (its link to the victim, pooled, looked alive),
    // so the coordinator can hold every part and commit while the survivor's part failed. The survivor then
    // catches up from the committed weights. Either way the job ends as the undisturbed one (finish above).
    const failed = coordinator.child.lines().filter((l) => l.includes(`step ${step}: allreduce `) && l.includes(' failed '));
    const caughtUp = survivor.child.lines().some((l) => l.includes(`the coordinator committed allreduce`) && l.includes(`/step-${step}/`));
    assert.ok(failed.length > 0 || caughtUp, `the coordinator neither retried step ${step}'s allreduce nor committed it with the survivor catching up; its output:\n${coordinator.child.tail(40)}`);
    if (failed.length > 0) {
      const redone = recordsOf(runRecords(coordinator.ready.runDir), 'epoch-report').reduce((sum, r) => sum + r.redoneMicroBatches, 0);
      assert.ok(redone > 0, `the victim's micro-batches of step ${step} were not redone`);
    }
  });

  /** A member frozen inside a step's allreduce, staged by {@link freezeInAllreduce}. */
  interface Frozen {
    step: number;
    /** The attempt the survivor entered, and its members in member order. */
    key: string;
    members: string[];
    /** shardwise_ahead_shares_total before the survivor pushed its share of `step`. */
    aheadBefore: number;
  }

  /**
   * Stages it without a sleep (the REDUCE path): `survivor` is stopped before its push while `victim`'s share
   * of the same step goes in; `victim` is then frozen (SIGSTOP, which closes none of its connections) before
   * its REDUCE can reach it, and `survivor`, resumed, pushes last and enters the step's allreduce with
   * `victim` among its members, an exchange that now waits for the frozen member. A step `fits` refuses is
   * let go and the next one staged. `victim` stays frozen; the caller ends it.
   */
  async function freezeInAllreduce(coordinator: CoordinatorProc, survivor: WorkerProc, victim: WorkerProc, fits: (step: number) => boolean = () => true): Promise<Frozen> {
    let step = await stopBeforePush(survivor, victim);
    while (!fits(step)) {
      survivor.child.signal('SIGCONT');
      step = await stopBeforePush(survivor, victim);
    }
    let aheadBefore = 0;
    try {
      await victim.child.waitForLine(shareDone(step), { what: `the victim's share of step ${step}`, timeoutMs: 60_000 });
      pause([victim.child]);
      aheadBefore = await aheadShares(coordinator.ready.metrics);
    } finally {
      survivor.child.signal('SIGCONT');
    }
    const [, listed, key] = await survivor.child.waitForLine(reducing(step), { what: `the survivor entering the allreduce of step ${step}`, timeoutMs: 60_000 });
    const members = listed.split(', ');
    assert.ok(members.includes(victim.child.name), `the victim is a member of the allreduce the survivor entered: ${listed}`);
    return { step, key, members, aheadBefore };
  }

  /**
   * Runs `body` while `victim` is frozen, then kills it. The job must then finish with `survivor` (exactly
   * once, the reference weights), and neither it nor the coordinator may have waited out an exchange's timeout.
   */
  async function outlastFrozen(coordinator: CoordinatorProc, survivor: WorkerProc, victim: WorkerProc, label: string, body: () => Promise<void>): Promise<void> {
    try {
      await body();
    } finally {
      victim.child.signal('SIGKILL');
    }
    await suite.finish(() => suite.harness.awaitFinished(coordinator, [survivor]), coordinator.ready.runDir, label);
    assertNoExchangeTimedOut([coordinator, survivor]);
  }

  it('a member frozen before its allreduce, then killed: the survivor drops the next share it was handed during the exchange', async () => {
    // The REDUCE path, where the next share rides behind the REDUCE: with the plan (the default), a member
    // frozen after its push has already sent its part, so the exchange does not wait for it.
    const job = suite.harness.writeJob('void-ahead', testJobYaml('void-ahead', { minWorkers: 1, leaseMs: 10_000, stepDeadlineMs: 20_000, plannedExchange: false }));
    const coordinator = await suite.harness.startCoordinator({ job });
    const [survivor, victim] = await startPair(coordinator.ready.grpc, 'worker-1');
    await outlastFrozen(coordinator, survivor, victim, 'after a void share handed out ahead', async () => {
      // Nothing is handed out ahead of the evaluation that follows an epoch's last step: stage on another.
      const { stepsPerEpoch } = await datasetShape(suite.harness.dataDir);
      const { step, key, aheadBefore } = await freezeInAllreduce(coordinator, survivor, victim, (s) => (s + 1) % stepsPerEpoch !== 0);
      // Each REDUCE stands for its worker's next ready, so the frozen victim is handed its share of the next
      // step too: wait for both, or the victim's alone could pass for the survivor's.
      await pollUntil(async () => ((await aheadShares(coordinator.ready.metrics)) >= aheadBefore + 2 ? true : undefined),
        { timeoutMs: 30_000, intervalMs: 20, what: `both members' shares of step ${step + 1} handed out during allreduce ${key}` });
      victim.child.signal('SIGKILL');
      const [, dropped] = await survivor.child.waitForLine(new RegExp(`step ${step + 1}: not computing it, allreduce (\\S+) that it follows failed here`),
        { what: `the survivor dropping its share of step ${step + 1}`, timeoutMs: 60_000 });
      assert.equal(dropped, key, `the survivor dropped a share that follows allreduce ${dropped}, not the one that failed`);
    });
  });

  it('a member frozen inside its allreduce: dropped when its lease runs out, it voids the attempt then, not at the attempt\'s timeout', async () => {
    // A frozen process (a paused VM, a stuck driver, a cut network) closes none of its connections, so no
    // member's part fails by itself: only the coordinator, which drops it when its lease (3 s) runs out,
    // can end the attempt before its timeout (stepDeadlineMs, 60 s).
    const job = suite.harness.writeJob('frozen-in-reduce', testJobYaml('frozen-in-reduce', { minWorkers: 1, leaseMs: 3_000, stepDeadlineMs: 60_000, plannedExchange: false }));
    const coordinator = await suite.harness.startCoordinator({ job });
    const [survivor, victim] = await startPair(coordinator.ready.grpc, 'worker-1');
    await outlastFrozen(coordinator, survivor, victim, 'after a member froze inside its allreduce', async () => {
      const { step, key } = await freezeInAllreduce(coordinator, survivor, victim);
      const failed = await coordinator.child.waitForLine(new RegExp(`step ${step}: allreduce (\\S+) failed \\((.*)\\); waiting for its members`),
        { what: `the coordinator ending allreduce ${key}`, timeoutMs: 30_000 });
      assert.equal(failed[1], key, `the coordinator ended allreduce ${failed[1]}, not the one the victim froze in`);
      assert.match(failed[2], /member 'worker-2' was lost while it ran: it failed/, 'the attempt ended for the lost member');
    });
  });

  it('a segment owner frozen inside its allreduce: the contributor linked only to it ends its part at its next heartbeat', async () => {
    // Unfrozen, the tests' model sends 67 K floats: one segment, owned by the member with micro-batch 0, the
    // others sending to it only, and the coordinator observing it only. Frozen, the owner closes nothing, and
    // the coordinator's own part failing (when the owner's lease runs out) closes only its link to the owner:
    // the other contributor learns of it from its heartbeat, not from the attempt's timeout (60 s).
    const job = suite.harness.writeJob('frozen-owner', testJobYaml('frozen-owner', { minWorkers: 1, leaseMs: 3_000, stepDeadlineMs: 60_000, plannedExchange: false }));
    const coordinator = await suite.harness.startCoordinator({ job });
    const workers = await startPair(coordinator.ready.grpc, 'both');
    const { stepsPerEpoch } = await datasetShape(suite.harness.dataDir);
    /** The micro-batches `w` computed of `step`, from its "computing" line. */
    const computed = (w: WorkerProc, step: number): number[] | undefined => {
      const pattern = new RegExp(`step ${step}: computing micro-batches \\[([\\d, ]*)\\]`);
      return w.child.lines().map((l) => pattern.exec(l)?.[1]).find((m) => m !== undefined)?.split(', ').map(Number);
    };
    // The owner of an unfrozen step both workers had a share of: the one that computed micro-batch 0.
    const shared = await pollUntil(() => {
      const steps = [...Array(EPOCHS * stepsPerEpoch).keys()];
      return steps.find((s) => s >= stepsPerEpoch && workers.every((w) => pushed(w, s)));
    }, { timeoutMs: 120_000, intervalMs: 20, what: 'both workers pushing shares of an unfrozen step' });
    const victim = workers.find((w) => computed(w, shared)?.includes(0));
    const survivor = workers.find((w) => w !== victim);
    assert.ok(victim && survivor, `neither worker computed micro-batch 0 of step ${shared}`);
    await outlastFrozen(coordinator, survivor, victim, 'after a segment owner froze inside its allreduce', async () => {
      const { step, key, members } = await freezeInAllreduce(coordinator, survivor, victim, (s) => s >= stepsPerEpoch && computed(survivor, s)?.includes(0) === false);
      assert.equal(members.find((m) => m !== COORDINATOR_MEMBER_ID), victim.child.name, `the frozen worker owns the segment (the first contributor): ${members.join(', ')}`);
      const [, failedKey, failedWhy] = await survivor.child.waitForLine(new RegExp(`step ${step}: allreduce (\\S+) failed \\((.*)\\); the coordinator re-plans`),
        { what: `the survivor's part of allreduce ${key} ending`, timeoutMs: 30_000 });
      assert.equal(failedKey, key, `the survivor's part of allreduce ${failedKey} ended, not the one the owner froze in`);
      assert.match(failedWhy, /aborted: the coordinator failed this attempt \(heartbeat\)/, `the survivor's part ended otherwise: ${failedWhy}`);
    });
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
