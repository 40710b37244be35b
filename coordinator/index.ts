/**
 * The coordinator: owns a distributed job. It plans every step, hands micro-batches to workers over
 * gRPC, sums their gradient shares in micro-batch order, applies the optimizer, evaluates at epoch ends,
 * checkpoints atomically and resumes mid-epoch, publishes job events on NATS and serves Prometheus
 * metrics. `startCoordinator` is the entry point; the planning and bookkeeping parts are exported for
 * tests and tools.
 */
export { startCoordinator, type RunningCoordinator } from './coordinator';
export {
  compileCoordinatorOptions,
  samplesPerMessage,
  type CompiledCoordinatorOptions,
  type CoordinatorOptions,
} from './coordinator-options';
export type { JobOutcome } from './job-runner';
export { AutoscaleRule, type ScaleDecision, type ThroughputMeasurement } from './autoscale-rule';
export { type JobProgress, ThroughputWindows } from './throughput-window';
export { CoordinatorState } from './lifecycle';
export { trainingSpecHash } from './checkpointing';
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
} from './step';
export { HandoutTracker, type Handout, COMMIT_DELAY_ENV } from './step';
export {
  Membership,
  MemberState,
  compileMembershipOptions,
  type MembershipOptions,
  type MembershipCounters,
  type Registration,
  type WorkerRecord,
} from './membership';
export { assertExactlyOnce, EpochLedger, RejectReason, type LedgerCounters, type LedgerState } from './epoch-ledger';
export { CheckpointStore, latestCheckpoint, listCheckpoints, type LatestCheckpoint } from './checkpoint-store';
export {
  jobSpecHash,
  readCheckpoint,
  type Checkpoint,
  type CheckpointState,
  type NamedTensor,
} from './checkpoint-format';
export {
  CoordinatorError,
  PlanningError,
  RegistrationRejectedError,
  RegistrationRejection,
  WorkerStateError,
  LedgerError,
  CheckpointError,
  CorruptCheckpointError,
  WorkerGoneError,
  IncompatibleWorkerError,
  StaleResultError,
  InvalidResultError,
  JobFailedError,
  ExactlyOnceViolationError,
  ResumeError,
} from './errors';
