import { type ClassificationMetrics, type GroupLearningRates, type RunDirectory, type RunRecorder, weightsHash } from '../../common';
import { JobFailedError } from '../errors';
import { applyStep, shareManifests } from './step-commit';
import type { StepHost } from './step-host';
import type { StepPosition } from './step-planner';
import { MAX_UNEXPLAINED_ALLREDUCE_FAILURES, reduceStep } from './step-reduce';
import { StepRound } from './step-round';

/** What the job loop lends a step: how to collect a round, its stop signal, and where records go. */
export interface StepDriver {
  /**
   * Opens `round` as the job's round and waits until every micro-batch is in; false when a stop came and
   * the round did not finish within the grace. The round stays open (its allreduce may follow).
   */
  collect(round: StepRound): Promise<boolean>;
  /** Aborts when the job is asked to stop. */
  signal: AbortSignal;
  /** The epoch's running training metrics; the step adds its own. */
  epochTrain: ClassificationMetrics;
  out: { recorder: RunRecorder; run: RunDirectory };
}

/**
 * Runs one training step from plan to commit, the whole life of a step in order:
 * 1. plan: the step's samples cut into micro-batches (`StepPlanner.plan`) and the manifests a share carries;
 * 2. hand-out and collection: a StepRound (phase `collecting`) that the workers' pulls take nodes of the
 *    summation tree from (`HandoutTracker`) and their pushes fill;
 * 3. the allreduce (phase `reducing`) when workers hold the sums, retried after a failure (`reduce-failed`,
 *    then `collecting` again for the lost members' micro-batches);
 * 4. commit (phase `committed`): `applyStep`.
 * Returns the learning rates the update used, or null when a stop came before the step completed.
 * @throws JobFailedError after MAX_UNEXPLAINED_ALLREDUCE_FAILURES failed attempts in a row with every member alive.
 */
export async function runStep(job: StepHost, at: StepPosition, driver: StepDriver): Promise<GroupLearningRates | null> {
  const plan = job.planner.plan(at);
  const d = job.spec.distributed;
  const reportHash = plan.globalStep % d.hashEverySteps === 0 || plan.step === 0;
  const specs = shareManifests(job);
  const round = new StepRound({
    plan,
    configVersion: job.configVersion,
    weightsVersion: job.weightsVersion,
    workers: job.activeWorkers(),
    stepDeadlineMs: d.stepDeadlineMs,
    gradientSpecs: specs.gradients,
    statSpecs: specs.stats,
    coordinatorHash: reportHash ? (job.settleReplica(), weightsHash(job.parts)) : undefined,
    now: () => job.now(),
    split: job.options.split,
  });
  let unexplained = 0;
  for (let attempt = 1; ; attempt++) {
    if (!(await driver.collect(round))) return null;
    if (round.heldWorkers().length === 0) return applyStep(job, round, round.sum(), driver.epochTrain, driver.out);
    const outcome = await reduceStep(job, round, attempt, driver.signal);
    if ('sums' in outcome) return applyStep(job, round, outcome.sums, driver.epochTrain, driver.out, outcome.reduction);
    if (outcome.failed === 'lost-members') unexplained = 0;
    else if (++unexplained >= MAX_UNEXPLAINED_ALLREDUCE_FAILURES) {
      throw new JobFailedError(`step ${round.globalStep}: the allreduce failed ${unexplained} times in a row with every ` +
        `member alive; the last: ${outcome.error.message}`, { cause: outcome.error });
    }
  }
}
