import { type AllreduceMember, AllreduceError, allreduceCompression, COORDINATOR_MEMBER_ID } from '../../common';
import { prepareNext } from './next-step';
import type { Handout } from './handout-tracker';
import type { ReduceOrder } from './reduction';
import type { StepHost } from './step-host';
import type { StepPosition } from './step-planner';
import type { PlannedAttempt, PlanOrder, StepRound } from './step-round';

/*
 * `distributed.plannedExchange`: a step's allreduce decided when the step opens, so that it is off the
 * path between the workers' computes. When the round is cut (HandoutTracker), each worker's share is one
 * run of micro-batches, a node of the summation tree, so the attempt the step will have if every worker
 * returns its share is known then: its members are the coordinator (observing) and each worker with its run.
 *
 * - Each share goes out with that attempt (its TRAIN carries the order a REDUCE would). A worker starts the
 *   exchange as it pushes the share's header, instead of after a REDUCE a round trip later.
 * - The coordinator takes part from the step's opening, and prepares the next step then (PreparedStep), so
 *   a member's push is answered with its next share at once.
 * - When every share is in, the coordinator adopts the attempt if the holders are the plan's (the common
 *   case): nobody is told anything, and the step commits when its own part ends. Otherwise (a share redone
 *   elsewhere, a drain, a member lost) it voids it: its own part fails, which closes its links, so every
 *   member's part fails at once, as a failed attempt today; the step prepared with it goes too, and the
 *   step is reduced by attempt 1 as without a plan.
 *
 * A worker applies the result only on an order naming the attempt, as for any attempt, and a share computed
 * on a voided attempt's result is refused as stale (the replica is copied back by GetWeights).
 */
/** The plan of `round` as the job is now, or undefined when it cannot have one. */
function planOf(job: StepHost, round: StepRound): PlanOrder | undefined {
  const d = job.spec.distributed;
  if (!d.plannedExchange || d.exchange !== 'allreduce' || !job.dataPlane) return undefined;
  const shares = round.collector.initialShares;
  if (shares.length === 0) return undefined;
  const members: AllreduceMember[] = [{ id: COORDINATOR_MEMBER_ID, address: job.dataPlane.address, role: 'observer' }];
  for (const share of shares) {
    const address = job.dataAddressOf(share.worker);
    // A worker without a data plane pushes its sums; one whose run needs two messages is two tree nodes.
    if (!address || share.microBatchIds.length > job.microBatchesPerMessage(share.worker, job.spec.training.microBatchSize)) return undefined;
    const ids = share.microBatchIds;
    members.push({ id: share.worker, parts: [{ start: ids[0], end: ids[ids.length - 1] + 1 }], address });
  }
  return {
    key: `${job.jobId}/${job.instanceId}/step-${round.globalStep}/planned-${round.serial}`,
    members,
    tensors: [...round.gradientSpecs, ...round.statSpecs],
    gradientTensorCount: round.gradientSpecs.length,
    timeoutMs: d.stepDeadlineMs,
  };
}

/**
 * Opens `round`'s planned attempt when the job asks for one and the round can have one: the coordinator's
 * part starts, and the step at `next` is prepared for the members to take as they push.
 */
export function openPlannedAttempt(job: StepHost, round: StepRound, next?: StepPosition): void {
  const plan = round.plannedOrder(() => planOf(job, round));
  const dataPlane = job.dataPlane;
  if (!plan || !dataPlane) return;
  const vector = round.allreduceInput((floats) => job.updates.vector(floats));
  const compression = allreduceCompression(job.spec.distributed);
  // The coordinator observes: the plan's first member.
  const exchange = dataPlane.allreduce({ key: plan.key, members: plan.members, rank: 0, timeoutMs: plan.timeoutMs, compression, tensors: plan.tensors }, vector);
  const attempt: PlannedAttempt = { order: plan, exchange, vector, failed: false };
  // Awaited when the step is reduced (adopted) or voided; meanwhile a failure only stops the plan going out
  // with more shares: a member handed it now would wait for the coordinator's part until its timeout.
  exchange.catch(() => {
    attempt.failed = true;
  });
  round.openPlanned(attempt, next && prepareNext(job, round, plan.key, next));
}

/**
 * The planned attempt's order for `handout` (decided at the step's first share handed out, which may be
 * ahead of the step's opening), when it is the share the plan gave its worker.
 */
export function plannedOrderFor(job: StepHost, round: StepRound, handout: Handout): ReduceOrder | undefined {
  const plan = round.plannedOrder(() => planOf(job, round));
  if (!plan || round.planned?.failed) return undefined;
  const rank = plan.members.findIndex((m) => m.id === handout.worker);
  const run = plan.members[rank]?.parts?.[0];
  const ids = handout.microBatchIds;
  if (!run || run.start !== ids[0] || run.end !== ids[ids.length - 1] + 1) return undefined;
  round.planHandedTo.add(handout.worker);
  return { ...plan, rank };
}

/**
 * Whether the planned attempt can be adopted: `members` (decided when every share is in) are the plan's,
 * and each worker among them was handed the plan with its share (so it runs it).
 */
export function adoptable(round: StepRound, planned: PlannedAttempt, members: readonly AllreduceMember[]): boolean {
  const text = (list: readonly AllreduceMember[]): string => JSON.stringify(list.map((m) => [m.id, m.address, m.parts ?? []]));
  return text(planned.order.members) === text(members) && members.every((m) => m.id === COORDINATOR_MEMBER_ID || round.planHandedTo.has(m.id));
}

/** Voids a planned attempt: the coordinator's part fails, which fails every member's at once; resolves once it ended. */
export async function voidPlanned(job: StepHost, planned: PlannedAttempt, why: string): Promise<void> {
  job.dataPlane?.abort(planned.order.key, why);
  await planned.exchange.catch((err: unknown) => {
    if (!(err instanceof AllreduceError)) throw err;
  });
}
