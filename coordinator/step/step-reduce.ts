import { adoptable, voidPlanned } from './planned-attempt';
import { AllreduceError, type AllreduceMember, allreduceCompression } from '../../common';
import { JobFailedError } from '../errors';
import { COORDINATOR_MEMBER_ID, Reduction } from './reduction';
import { countInLedger } from './step-commit';
import type { StepHost } from './step-host';
import { commitDelay } from './failpoint';
import { prepareNext } from './next-step';
import type { StepPosition } from './step-planner';
import type { StepRound, StepSums } from './step-round';

/** Allreduce attempts in a row that may fail with every member still alive before the job fails. */
export const MAX_UNEXPLAINED_ALLREDUCE_FAILURES = 3;

/** A committed allreduce: the step's sums, and the attempt whose members replay the update. */
export interface ReducedStep {
  sums: StepSums;
  reduction: Reduction;
}

/** What one attempt ended in. */
export type ReduceOutcome = ReducedStep | { failed: 'lost-members' | 'all-alive'; error: AllreduceError };

/**
 * One allreduce attempt of a complete step whose shares (some or all) are held by their workers: the
 * coordinator opens the reduction (every holder with the tree nodes it holds, and itself: an observer that
 * only receives the sum, or a contributor of the nodes a draining worker pushed to it), tells each holder on its next pull, and takes part. The attempt commits when the
 * coordinator's own part completes: every member that completed holds the same bytes, and one that did
 * not is sent to GetWeights by its next assignment. A member lost while it runs voids it at once (see
 * Reduction.lost). When it fails, the coordinator waits until every member has either come back asking for
 * work or been dropped (lease, or the step deadline), takes the sums of the dropped ones back into the
 * step, and returns so the step is collected and tried again.
 */
export async function reduceStep(job: StepHost, round: StepRound, attempt: number, signal: AbortSignal, next?: StepPosition): Promise<ReduceOutcome> {
  const dataPlane = job.dataPlane;
  if (!dataPlane) throw new JobFailedError(`step ${round.globalStep}: workers hold sums, but the coordinator has no data plane`);
  // The coordinator needs the sum for its own replica. It contributes only the shares pushed to it (each a
  // node of the summation tree, like every holder's); with none it observes.
  const contributors = round.contributors(COORDINATOR_MEMBER_ID);
  const holders = contributors.map((c) => c.id).filter((id) => id !== COORDINATOR_MEMBER_ID);
  const observes = !contributors.some((c) => c.id === COORDINATOR_MEMBER_ID);
  const members: AllreduceMember[] = [
    ...(observes ? [{ id: COORDINATOR_MEMBER_ID, address: dataPlane.address, role: 'observer' as const }] : []),
    ...contributors.map(({ id, parts }) => ({ id, parts, address: id === COORDINATOR_MEMBER_ID ? dataPlane.address : job.dataAddressOf(id) })),
  ];
  const rank = members.findIndex((m) => m.id === COORDINATOR_MEMBER_ID);
  const tensors = [...round.gradientSpecs, ...round.statSpecs];
  const timeoutMs = job.spec.distributed.stepDeadlineMs;
  // The incarnations that pushed the held sums: one replaced meanwhile (a restart) is lost with its sums.
  const incarnations = new Map(holders.map((id) => [id, job.liveIncarnation(id) ?? 0]));
  // The step's planned attempt (distributed.plannedExchange) is adopted when its members are these; every
  // member already runs it, so nobody is told. Otherwise it is voided before attempt 1 opens.
  const plan = round.planned;
  const adopted = plan !== undefined && adoptable(round, plan, members);
  round.takePlanned(adopted);
  if (plan && !adopted) {
    job.log(`step ${round.globalStep}: planned allreduce ${plan.order.key} voided: the shares came from ${holders.join(', ')}, not as planned`);
    await voidPlanned(job, plan, 'the shares came in otherwise than planned');
  }
  const key = adopted ? plan.order.key : `${job.jobId}/${job.instanceId}/step-${round.globalStep}/attempt-${attempt}`;
  const reduction = new Reduction(key, members, tensors, round.gradientSpecs.length, timeoutMs, incarnations);
  round.startReduction(reduction);
  if (adopted) reduction.markAllTold();
  job.changed.notify();
  const vector = adopted ? plan.vector : round.allreduceInput((floats) => job.updates.vector(floats));
  const t0 = job.now();
  try {
    const compression = allreduceCompression(job.spec.distributed);
    const exchange = adopted ? plan.exchange : dataPlane.allreduce({ key: reduction.key, members, rank, timeoutMs, compression, tensors }, vector);
    // Awaited below; this only keeps a failure meanwhile from counting as unhandled.
    exchange.catch(() => undefined);
    // A member lost meanwhile fails the attempt at the commit anyway (its micro-batches went back into the
    // step): it is voided at once rather than left to its timeout. That fails the parts linked to this one's;
    // the others hear of it with their next heartbeat (worker-calls.ts, heartbeat).
    reduction.lost.addEventListener('abort', () => dataPlane.abort(reduction.key, String(reduction.lost.reason)), { once: true });
    // The members that complete their part get the next step at once (PreparedStep), planned once the
    // REDUCE orders were written (HTTP/2 sends them at the end of this turn of the event loop), not before.
    if (next && !adopted) {
      await new Promise((resolve) => setImmediate(resolve));
      prepareAhead(job, round, reduction, next);
    }
    const stats = await exchange;
    await commitDelay();
    // Nothing runs between the exchange and the commit but this failpoint's wait; a member lost during it
    // took its micro-batches back into the step (redistribute), so the attempt cannot commit their sums.
    const lost = holders.find((id) => !holdsStill(job, reduction, id));
    if (lost !== undefined) throw new AllreduceError(reduction.key, 'allgather', 'the member was lost before the step committed', { peer: lost });
    for (const share of round.acceptedShares()) {
      if (share.held) countInLedger(job, round, share.worker, share.microBatchIds);
    }
    const m = job.telemetry.metrics;
    m.sentBytes.inc(stats.bytesSent);
    m.receivedBytes.inc(stats.bytesReceived);
    m.allreduceDuration.observe((job.now() - t0) / 1000);
    return { sums: round.sumsFromVector(vector.subarray(0, round.vectorLength)), reduction };
  } catch (err) {
    if (!(err instanceof AllreduceError)) throw err;
    round.reductionFailed();
    job.telemetry.metrics.allreduceFailures.inc();
    job.log(`step ${round.globalStep}: allreduce ${reduction.key} failed (${err.message}); waiting for its members`);
    job.changed.notify();
    await awaitMembers(job, reduction, signal);
    const lost = holders.filter((id) => !holdsStill(job, reduction, id));
    for (const id of lost) job.redistribute(id);
    round.collectAgain();
    job.changed.notify();
    return { failed: lost.length > 0 ? 'lost-members' : 'all-alive', error: err };
  }
}

/**
 * Plans the step after `round` while its attempt `reduction` is still running, for its members to take at
 * once. An attempt already over (failed) has nothing to prepare. With no active worker (all draining, as
 * on Ctrl-C) there is no one to plan it for: the commit's own path decides what follows.
 */
function prepareAhead(job: StepHost, round: StepRound, reduction: Reduction, next: StepPosition): void {
  const phase = round.phase;
  if (phase.name !== 'reducing' || phase.reduction !== reduction || job.activeWorkers().length === 0) return;
  round.prepareNext(prepareNext(job, round, reduction.key, next));
  job.changed.notify();
}

/**
 * Waits until every worker of a failed attempt came back or is gone; a member silent past the step
 * deadline is dropped (its sums are redone by the others), so nobody waits forever.
 */
async function awaitMembers(job: StepHost, reduction: Reduction, signal: AbortSignal): Promise<void> {
  const deadline = job.now() + job.spec.distributed.stepDeadlineMs;
  const pending = (): string[] => reduction.workers.filter((id) => holdsStill(job, reduction, id) && !reduction.isBack(id));
  while (pending().length > 0 && !signal.aborted) {
    const left = deadline - job.now();
    if (left <= 0) {
      for (const id of pending()) {
        job.loseWorker(id, 'failed', `did not come back within ${job.spec.distributed.stepDeadlineMs} ms after allreduce ${reduction.key} failed`);
      }
      return;
    }
    await job.changed.wait(left, signal);
  }
}

/**
 * Whether the incarnation of `workerId` that holds sums in `reduction` is still a live member. A worker
 * whose session ended dropped its sums, even when it registered again under its id before the attempt
 * ended: its new incarnation holds none of them, and the old one's are redone.
 */
function holdsStill(job: StepHost, reduction: Reduction, workerId: string): boolean {
  const live = job.liveIncarnation(workerId);
  return live !== undefined && live === reduction.incarnationOf(workerId);
}
