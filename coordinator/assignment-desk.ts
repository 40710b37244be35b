import { type MicroBatch, UpdateKind } from '../common';
import { plannedOrderFor } from './step/planned-attempt';
import { PlanningError } from './errors';
import type { JobContext } from './job-context';
import { CoordinatorState } from './lifecycle';
import { MemberState, stepPhaseOf, type WorkerRecord, type WorkerSession } from './membership';
import { gatherSamples, type SampleChunk, sampleBytes } from './sample-chunk';
import { type PreparedStep, type ReduceOrder, type Handout, releaseReplicaWork, type StepRound, tensorBytes, type UpdatePayload } from './step';

/** What a worker is told to do next. */
export const AssignmentKind = { Train: 'train', Eval: 'eval', Wait: 'wait', Stop: 'stop', Reduce: 'reduce' } as const;
export type AssignmentKind = (typeof AssignmentKind)[keyof typeof AssignmentKind];

/** An order on a Session stream in domain terms; coordinator-service turns it into proto messages. */
export interface Assignment {
  kind: AssignmentKind;
  globalStep: number;
  epoch: number;
  configVersion: number;
  /** TRAIN: ids within the step and training-split sample ids; EVAL: ids within the pass and validation ids. */
  microBatches: readonly MicroBatch[];
  samples?: SampleChunk;
  stepMicroBatchCount: number;
  update: UpdatePayload;
  /** The coordinator's weights version once `update` is applied. */
  weightsVersion: number;
  reportWeightsHash: boolean;
  retryAfterMs: number;
  waitReason: string;
  /** The worker's negotiated message limit: update tensors are cut into chunks below it. */
  maxMessageBytes: number;
  /** Present with kind `reduce`, and on a TRAIN that carries its step's planned allreduce. */
  reduce?: ReduceOrder;
}

/** What a worker says when it pulls. */
export interface PullRequest {
  workerId: string;
  /** Updates applied to its replica. */
  weightsVersion: number;
  /** How long it lets the call be held. */
  maxWaitMs: number;
  /** The allreduce whose result it holds or is reducing, not applied yet ('' or absent: none); see ReadyState.reducedKey. */
  reducedKey?: string;
  /**
   * The ready stands for one the worker will send once done with its share of this step (a planned TRAIN
   * stands for it, SessionOrders.readyAfter): no share is handed out for it while an earlier step is open.
   */
  followsStep?: number;
}

/** retry_after_ms of a WAIT (unused by Session-stream workers, which simply ask again): 0 after a full wait. */
const RETRY_AFTER_SHORT_POLL_MS = 100;

type Decision = { handout: Handout; ahead?: PreparedStep } | { stop: string } | { wait: string } | { reduce: ReduceOrder; step: number };

/**
 * Decides a ready worker's next order: waits (up to its max_wait_ms, capped by maxPullWaitMs) until there is work
 * for the worker, the job ends, or time runs out, re-examining the job each time it changes. Every
 * answer brings the worker's replica up to date (WEIGHTS, or WEIGHTS_REF to call GetWeights).
 * @throws WorkerGoneError when the worker is not a live member (NOT_FOUND: it registers again).
 */
export async function pullAssignment(job: JobContext, request: PullRequest, signal?: AbortSignal): Promise<Assignment> {
  const waitMs = Math.max(0, Math.min(request.maxWaitMs, job.options.maxPullWaitMs));
  const deadline = job.now() + waitMs;
  for (;;) {
    const { record, session } = job.members.member(request.workerId);
    const decision = decide(job, record, request);
    if ('handout' in decision) return workAssignment(job, decision.handout, request, session, decision.ahead);
    if ('reduce' in decision) {
      return { ...waitOrStop(job, AssignmentKind.Reduce, request, session, '', 0), globalStep: decision.step, reduce: decision.reduce };
    }
    if ('stop' in decision) {
      job.members.toldStop(request.workerId);
      return waitOrStop(job, AssignmentKind.Stop, request, session, decision.stop, 0);
    }
    const left = deadline - job.now();
    if (left <= 0 || signal?.aborted) {
      return waitOrStop(job, AssignmentKind.Wait, request, session, decision.wait, waitMs > 0 ? 0 : RETRY_AFTER_SHORT_POLL_MS);
    }
    // A worker with nothing to do in a round on the newest weights gets the update it lacks at once (a
    // WAIT carrying it) and applies it while it waits: kept waiting, it would fall two updates behind when
    // that round commits (an epoch's short last step, more workers than micro-batches) and then need a
    // full GetWeights on the path of the next step it computes.
    if (idleOneUpdateBehind(job, request, session)) return waitOrStop(job, AssignmentKind.Wait, request, session, decision.wait, 0);
    await job.changed.wait(left, signal, request.workerId);
  }
}

function decide(job: JobContext, record: WorkerRecord, request: PullRequest): Decision {
  if (job.finished) return { stop: 'the job is finished' };
  if (job.lifecycle.state === CoordinatorState.Failed) return { stop: 'the job failed' };
  const round = job.round;
  if (record.state === MemberState.Draining && job.lifecycle.state !== CoordinatorState.Running) {
    return { stop: 'drained: the coordinator is stopping; the job resumes from its checkpoint' };
  }
  if (job.lifecycle.state !== CoordinatorState.Running && round === null) {
    return { wait: 'the coordinator is shutting down; a restarted coordinator resumes from its checkpoint' };
  }
  const id = record.id;
  const phase = stepPhaseOf(round);
  if (round?.kind === 'train' && (phase?.name === 'reducing' || phase?.name === 'reduce-failed')) {
    // The step's shares are in; its members allreduce them (a member told once per attempt). After a
    // failed attempt, a member that asks is alive: the job loop waiting for the members is woken.
    const order = round.reduceOrderFor(id, record.incarnation);
    if (order) return { reduce: order, step: round.globalStep };
    const ahead = aheadHandout(job, round, record, request);
    if (ahead) return ahead;
    const failed = phase.name === 'reduce-failed';
    if (failed) job.changed.notify();
    return { wait: `step ${round.globalStep}: allreduce ${phase.reduction.key} ${failed ? 'failed; re-planning' : 'in progress'}` };
  }
  if (record.state === MemberState.Draining) {
    const held = round?.collector.handout(id);
    if (held) return { handout: held };
    // Sums it holds for this step's allreduce would be redone elsewhere if it left now, and added in another
    // order than the trainer's: it stays for the allreduce while the step can still complete.
    if (round?.kind === 'train' && round.heldWorkers().includes(id) && (round.collector.complete || job.members.activeWorkers().length > 0)) {
      return { wait: `step ${round.globalStep}: draining once the allreduce of the sums this worker holds is done` };
    }
    return { stop: 'drained: this worker has nothing left to finish; the job goes on without it' };
  }
  if (round?.kind === 'train' && phase?.name === 'collecting' && request.reducedKey && request.reducedKey === round.planned?.order.key) {
    // A member running the step's planned attempt gets its share of the next step at once (PreparedStep).
    const ahead = aheadHandout(job, round, record, request);
    if (ahead) return ahead;
  }
  if (request.followsStep !== undefined && computing(round, id, request.followsStep)) {
    // Asked for the worker while it computes its share of that step: not that share again, nor anything else.
    return { wait: `this worker's share of step ${request.followsStep} is not in yet` };
  }
  if (round === null) return { wait: job.members.waitingReason() ?? 'between steps' };
  const what = round.kind === 'train' ? `step ${round.globalStep}` : `the evaluation of epoch ${round.epoch}`;
  if (round.collector.orphanCount > 0) {
    // Every worker that held these micro-batches is gone: admit joiners now rather than at the boundary.
    if (record.state === MemberState.Joining) job.members.admitPending();
    round.collector.adoptOrphans(job.members.activeWorkers());
  }
  if (job.members.get(id)?.state === MemberState.Joining) {
    return { wait: `joining: admitted at the next step boundary (${what} in progress)` };
  }
  const size = round.kind === 'train' ? job.spec.training.microBatchSize : job.spec.training.evalBatchSize;
  const handout = round.collector.take(id, job.microBatchesPerMessage(id, size));
  if (handout) return { handout };
  return { wait: `nothing to do in ${what}: its ${round.collector.microBatchCount} micro-batches are with other workers` };
}

/**
 * Whether `worker` still holds its handout of step `step`: of the open round, or of the step prepared to
 * follow it. A share pushed, redone elsewhere, or dropped with a voided plan is no longer held.
 */
function computing(round: JobContext['round'], worker: string, step: number): boolean {
  if (round?.kind !== 'train') return false;
  const holding = round.globalStep === step ? round : round.next?.round.globalStep === step ? round.next.round : undefined;
  return holding?.collector.handout(worker) !== undefined;
}

/**
 * The next step's share for an active member of the allreduce in progress (it holds or is reducing the
 * result, `reducedKey`, on the step's weights), taken from the step prepared for that attempt: it applies
 * the result and computes on while the coordinator commits (see PreparedStep).
 */
function aheadHandout(job: JobContext, round: StepRound, record: WorkerRecord, request: PullRequest): Decision | undefined {
  const prepared = round.next;
  if (!prepared || !request.reducedKey || request.reducedKey !== prepared.apply.key) return undefined;
  if (record.state !== MemberState.Active || request.weightsVersion !== round.weightsVersion) return undefined;
  const handout = prepared.round.collector.take(record.id, job.microBatchesPerMessage(record.id, job.spec.training.microBatchSize));
  if (!handout) return undefined;
  prepared.round.handedAhead++;
  job.telemetry.metrics.aheadShares.inc();
  return { handout, ahead: prepared };
}

/**
 * Whether a round on the current weights is open (its commit is the next update), while the worker's
 * replica is one update behind and that update can be sent (APPLY or WEIGHTS, not a GetWeights). Right
 * after a commit, before the next round opens, it is not: that round's hand-out brings the update.
 */
function idleOneUpdateBehind(job: JobContext, request: PullRequest, session: WorkerSession): boolean {
  if (job.round === null || job.round.weightsVersion !== job.weightsVersion || request.weightsVersion !== job.weightsVersion - 1) return false;
  const kind = updateFor(job, request, session).kind;
  return kind === UpdateKind.Apply || kind === UpdateKind.Weights;
}

/** The update a worker needs; one with a data plane keeps its optimizer state and replays allreduce updates. */
function updateFor(job: JobContext, request: PullRequest, session: WorkerSession): UpdatePayload {
  return job.updates.payloadFor(request.weightsVersion, job.weightsVersion, session.forceFullWeights, request.workerId, session.dataAddress !== '');
}

/**
 * A TRAIN or EVAL order for `handout` of the open round, or of the step prepared `ahead` (its update is
 * the allreduce the worker holds, applied as the commit will, and its weights are the next version).
 */
function workAssignment(job: JobContext, handout: Handout, request: PullRequest, session: WorkerSession, ahead?: PreparedStep): Assignment {
  const round = ahead?.round ?? job.round;
  if (round === null) throw new PlanningError(`worker ${handout.worker}: a handout without a round in progress`);
  const update: UpdatePayload = ahead
    ? { kind: UpdateKind.Apply, updateStep: ahead.round.weightsVersion - 1, tensors: [], apply: ahead.apply }
    : updateFor(job, request, session);
  const microBatches =
    round.kind === 'train'
      ? handout.microBatchIds.map((id) => round.plan.microBatches[id])
      : handout.microBatchIds.map((id) => round.microBatches[id]);
  const samples = gatherSamples(round.kind === 'train' ? job.data.train : job.data.val, microBatches);
  if (round.kind === 'train' && !ahead) releaseReplicaWork(job, round);
  job.telemetry.metrics.sentBytes.inc(sampleBytes(samples) + tensorBytes(update.tensors));
  return {
    kind: round.kind === 'train' ? AssignmentKind.Train : AssignmentKind.Eval,
    globalStep: round.kind === 'train' ? round.globalStep : round.weightsVersion,
    epoch: round.kind === 'train' ? round.plan.epoch : round.epoch,
    configVersion: round.configVersion,
    microBatches,
    samples,
    stepMicroBatchCount: round.collector.microBatchCount,
    update,
    weightsVersion: ahead ? ahead.round.weightsVersion : job.weightsVersion,
    reportWeightsHash: round.kind === 'train' && round.reportsHash,
    retryAfterMs: 0,
    waitReason: '',
    maxMessageBytes: session.maxMessageBytes,
    // A share of a step with a planned attempt carries it: the worker starts it as it pushes the share.
    reduce: round.kind === 'train' ? plannedOrderFor(job, round, handout) : undefined,
  };
}

function waitOrStop(
  job: JobContext,
  kind: AssignmentKind,
  request: PullRequest,
  session: WorkerSession,
  reason: string,
  retryAfterMs: number,
): Assignment {
  const update = kind === AssignmentKind.Stop ? { kind: UpdateKind.None, updateStep: 0, tensors: [] } : updateFor(job, request, session);
  job.telemetry.metrics.sentBytes.inc(tensorBytes(update.tensors));
  return {
    kind,
    globalStep: job.weightsVersion,
    epoch: Math.max(0, job.trainer.epoch),
    configVersion: job.configVersion,
    microBatches: [],
    stepMicroBatchCount: 0,
    update,
    weightsVersion: job.weightsVersion,
    reportWeightsHash: false,
    retryAfterMs,
    waitReason: reason,
    maxMessageBytes: session.maxMessageBytes,
  };
}
