import { type GroupLearningRates, stepLearningRates, weightsHash } from '../../common';
import { PlanningError } from '../errors';
import { shareManifests } from './step-commit';
import type { StepHost } from './step-host';
import type { StepPosition } from './step-planner';
import { type PreparedStep, StepRound } from './step-round';

/**
 * A step's round as the job opens it: its plan, the manifests a share carries, and whether the replicas
 * report their weights hash (every `hashEverySteps` and at each epoch's first step), computed on the
 * replica at `weightsVersion` only when first read (StepRound.coordinatorHash).
 */
export function planRound(job: StepHost, at: StepPosition, weightsVersion: number): StepRound {
  const plan = job.planner.plan(at);
  const d = job.spec.distributed;
  const reportHash = plan.globalStep % d.hashEverySteps === 0 || plan.step === 0;
  const specs = shareManifests(job);
  return new StepRound({
    plan,
    configVersion: job.configVersion,
    weightsVersion,
    workers: job.activeWorkers(),
    stepDeadlineMs: d.stepDeadlineMs,
    gradientSpecs: specs.gradients,
    statSpecs: specs.stats,
    hashReplica: reportHash ? () => (job.settleReplica(), weightsHash(job.parts)) : undefined,
    now: () => job.now(),
    split: job.options.split,
  });
}

/**
 * Plans the step at `next` to follow `round`'s allreduce attempt `key`, while that attempt runs (or, planned,
 * from `round`'s opening; see planned-attempt.ts): its weights are those after `round`'s update, and the
 * update the members apply is the commit's (the rates of the trainer's next step, over every sample of
 * `round`: the commit counts them all).
 */
export function prepareNext(job: StepHost, round: StepRound, key: string, next: StepPosition): PreparedStep {
  return {
    round: planRound(job, next, job.trainer.globalStep + 1),
    apply: { key, learningRates: stepLearningRates(job.trainer), sampleCount: round.plan.sampleCount, microBatchCount: round.plan.microBatches.length },
    workers: job.activeWorkers(),
  };
}

/**
 * Whether a prepared step may open as is once its predecessor committed with `lr` over `count` samples:
 * the job runs it next, its weights are the committed ones and its workers are the active ones.
 * @throws PlanningError when the update handed out ahead is not the one committed (a bug: the members
 * would apply other rates than the coordinator's replica).
 */
export function stillValid(job: StepHost, prepared: PreparedStep, lr: GroupLearningRates, count: number): boolean {
  const { apply } = prepared;
  const sameRates = Object.entries(lr).every(([group, rate]) => apply.learningRates[group as keyof GroupLearningRates] === rate);
  if (!sameRates || apply.sampleCount !== count) {
    throw new PlanningError(`step ${prepared.round.globalStep - 1}: the update handed out with the next step (rates ` +
      `${JSON.stringify(apply.learningRates)}, ${apply.sampleCount} samples) is not the committed one (${JSON.stringify(lr)}, ${count} samples)`);
  }
  const active = job.activeWorkers();
  return prepared.round.weightsVersion === job.weightsVersion &&
    active.length === prepared.workers.length && active.every((id, k) => id === prepared.workers[k]);
}

/**
 * Once every share of the open step `round` went out, the coordinator's own work on its replica may run:
 * the previous step's update (DeferredUpdate), then this step's hash when the replicas report theirs.
 * Both would otherwise hold the event loop while workers ask for their shares.
 */
export function releaseReplicaWork(job: StepHost, round: StepRound): void {
  if (!round.collector.allHandedOut) return;
  job.replicaUpdate.release();
  round.hashSoon();
}
