import { openPlannedAttempt, voidPlanned } from './planned-attempt';
import { type ClassificationMetrics, type GroupLearningRates, processTimeline, type RunDirectory, type RunRecorder } from '../../common';
import { JobFailedError, PlanningError } from '../errors';
import { planRound, releaseReplicaWork, stillValid } from './next-step';
import { applyStep } from './step-commit';
import type { StepHost } from './step-host';
import type { StepPosition } from './step-planner';
import { MAX_UNEXPLAINED_ALLREDUCE_FAILURES, reduceStep } from './step-reduce';
import type { Reduction } from './reduction';
import { StepRound, type StepSums } from './step-round';

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
  /**
   * The step the job runs right after this one with nothing between (same epoch, no checkpoint or stop
   * due, nobody waiting to join), or undefined: the one that may be prepared and handed out while this
   * one commits (see PreparedStep). Asked when the allreduce starts and again at the commit.
   */
  next(): StepPosition | undefined;
  /** Opens `round` for the workers at once (the prepared next step, when this one committed). */
  open(round: StepRound): void;
}

/** A committed step: the learning rates its update used, and the next step's round when it is already open. */
export interface StepOutcome {
  lr: GroupLearningRates;
  next?: StepRound;
}

/**
 * Runs one training step from plan to commit, the whole life of a step in order:
 * 1. plan: the step's samples cut into micro-batches (`StepPlanner.plan`) and the manifests a share carries;
 * 2. hand-out and collection: a StepRound (phase `collecting`) that the workers' pulls take nodes of the
 *    summation tree from (`HandoutTracker`) and their pushes fill;
 * 3. the allreduce (phase `reducing`) when workers hold the sums, retried after a failure (`reduce-failed`,
 *    then `collecting` again for the lost members' micro-batches);
 * 4. commit (phase `committed`): `applyStep`.
 * Each phase is a span on the process timeline (`--timeline`): plan, wait for shares, allreduce, commit.
 * Returns the learning rates the update used, or null when a stop came before the step completed.
 * @throws JobFailedError after MAX_UNEXPLAINED_ALLREDUCE_FAILURES failed attempts in a row with every member alive.
 */
export async function runStep(job: StepHost, at: StepPosition, driver: StepDriver, opened?: StepRound): Promise<StepOutcome | null> {
  const timeline = processTimeline();
  let phaseStart = timeline.now();
  const round = opened ?? planRound(job, at, job.weightsVersion);
  if (round.plan.epoch !== at.epoch || round.plan.step !== at.step) {
    throw new PlanningError(`expected the round of epoch ${at.epoch} step ${at.step}, got epoch ${round.plan.epoch} step ${round.plan.step}`);
  }
  timeline.phase('plan', round.globalStep, phaseStart);
  const commit = (sums: StepSums, reduction?: Reduction): StepOutcome => {
    const end = timeline.begin('commit', round.globalStep);
    const prepared = round.next;
    let next: StepRound | undefined;
    try {
      const lr = applyStep(job, round, sums, driver.epochTrain, driver.out, reduction, (rates) => {
        // Its shares went out ahead: the next step's round opens before this step's records are written.
        const then = driver.next();
        if (!prepared || then?.step !== prepared.round.plan.step || then.epoch !== prepared.round.plan.epoch) return;
        if (!stillValid(job, prepared, rates, sums.count)) return;
        next = prepared.round;
        driver.open(next);
        releaseReplicaWork(job, next);
      });
      return { lr, next };
    } finally {
      end();
    }
  };
  let unexplained = 0;
  for (let attempt = 1; ; attempt++) {
    phaseStart = timeline.now();
    if (attempt === 1) {
      openPlannedAttempt(job, round, driver.next());
      // Its members' pulls now carry the plan and, once they pushed, the next step.
      if (round.planned) job.changed.notify();
    }
    if (!(await driver.collect(round))) return null;
    timeline.phase('wait for shares', round.globalStep, phaseStart, { attempt });
    if (round.heldWorkers().length === 0) {
      const plan = round.takePlanned(false);
      if (plan) await voidPlanned(job, plan, 'no worker holds sums');
      return commit(round.sum());
    }
    phaseStart = timeline.now();
    const outcome = await reduceStep(job, round, attempt, driver.signal, driver.next());
    timeline.phase('allreduce', round.globalStep, phaseStart, { attempt });
    if ('sums' in outcome) return commit(outcome.sums, outcome.reduction);
    if (outcome.failed === 'lost-members') unexplained = 0;
    else if (++unexplained >= MAX_UNEXPLAINED_ALLREDUCE_FAILURES) {
      throw new JobFailedError(`step ${round.globalStep}: the allreduce failed ${unexplained} times in a row with every ` +
        `member alive; the last: ${outcome.error.message}`, { cause: outcome.error });
    }
  }
}
