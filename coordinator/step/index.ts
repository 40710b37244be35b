/**
 * One training step, plan to commit, in this folder alone. Read it in this order:
 *
 * 1. `step-planner.ts`  plan: the step's samples (a seeded epoch permutation) cut into micro-batches.
 * 2. `run-step.ts`      the driver: opens a StepRound, collects it, allreduces or sums it, commits it;
 *                       retries a failed allreduce and gives up after three unexplained failures.
 * 3. `handout-tracker.ts` hand-out and deadlines: which nodes of the summation tree each worker holds,
 *                       which are overdue, and where a lost worker's micro-batches go.
 * 4. `step-round.ts`    collection: the accepted shares, their tree sum, and the step's `phase`.
 * 5. `step-phase.ts`    the phases (collecting -> reducing -> committed, or reducing -> reduce-failed ->
 *                       collecting) and the only transitions allowed; only StepRound moves them.
 * 6. `reduction.ts`, `step-reduce.ts`  the allreduce: one attempt's members and REDUCE orders, run on the
 *                       data plane with the coordinator observing (or contributing pushed shares).
 * 7. `step-commit.ts`   commit: the ledger count, the optimizer update (deferred on the coordinator's
 *                       replica by `deferred-update.ts`), the update workers follow (`update-log.ts`),
 *                       the step record and metrics.
 *
 * The step asks the job for what it needs through `StepHost` (`step-host.ts`); the job's pulls and
 * pushes reach it through the open round (coordinator/assignment-desk.ts, coordinator/result-intake.ts).
 */
export { runStep, type StepDriver, type StepOutcome } from './run-step';
export type { StepHost, StepLedger } from './step-host';
export {
  StepPlanner,
  assignMicroBatches,
  reassign,
  cutMicroBatches,
  type MicroBatch,
  type Share,
  type StepPlan,
  type StepPlannerOptions,
  type StepPosition,
} from './step-planner';
export { HandoutTracker, type Handout } from './handout-tracker';
export { StepRound, type PreparedStep, type ShareSums, type StepSums, type StepRoundOptions, type AllreduceContributor, runOf } from './step-round';
export type { StepPhase, StepPhaseName } from './step-phase';
export { COORDINATOR_MEMBER_ID, Reduction, type ReduceOrder } from './reduction';
export { countInLedger, shareManifests } from './step-commit';
export { DeferredUpdate } from './deferred-update';
export { releaseReplicaWork } from './next-step';
export { COMMIT_DELAY_ENV } from './failpoint';
export { UpdateLog, modelTensors, optimizerTensors, tensorBytes, type UpdatePayload, type ReducedUpdate } from './update-log';
