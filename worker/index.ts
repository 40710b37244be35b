/**
 * The shardwise worker: a replica of the coordinator's model (with its own optimizer state under the
 * allreduce) that pulls step assignments, computes gradient sums (or evaluation counts) on the samples
 * they carry, keeps them for the step's allreduce or pushes them back, and applies each step's update.
 * `Worker` is the entry point; the other exports are its parts, for tests and tools.
 */
export { Worker, MAX_CONSECUTIVE_FAILURES, type WorkerExitReason, type WorkerOutcome, type WorkerReadyInfo } from './worker';
export { KILL_AT_STEP_ENV, STOP_BEFORE_PUSH_ENV, STOPPED_BEFORE_PUSH, installStopBeforePush } from './failpoint';
export {
  compileWorkerOptions,
  defaultWorkerId,
  WORKER_MAX_MESSAGE_BYTES,
  type CompiledWorkerOptions,
  type ShareComputer,
  type WorkerOptions,
} from './options';
export { WorkerLifecycle, isFinal, nextLifecycle } from './lifecycle';
export {
  AssignmentKind,
  type AssignedMicroBatch,
  type Assignment,
  type SampleChunk,
  type WeightsUpdate,
} from './assignment';
export { localSamples, type LocalSamples } from './samples';
export { NOT_LOADED, Replica } from './replica';
export { LOG_STEPS_ENV, PROGRESS_INTERVAL_MS, StepProgress, type ShareProgress } from './step-progress';
export { Session, type SessionDeps } from './session';
export { ConfigSync, type ConfigSource, type WorkerConfig } from './config-sync';
export {
  computeShareStepwise,
  runTrainShare,
  yieldToEventLoop,
  type ComputedShare,
  type TrainShareInput,
  type Yield,
} from './share-runner';
export { runEvalShare, type EvalShare } from './eval-runner';
export { HeartbeatTimer, heartbeatDeadlineMs, type HeartbeatAnswer, type HeartbeatOptions, type HeartbeatReport } from './heartbeat';
export {
  CoordinatorLink,
  assignmentFromProto,
  configFromProto,
  evalRequest,
  gradientMessages,
  lifecycleToProto,
  parseRegistration,
  workerCapabilities,
  type CoordinatorLinkOptions,
  type FullWeights,
  type LeaveNotice,
  type PushedOrder,
} from './coordinator-link';
export { callWithRetry, endsSession, isUnknownWorker, WORKER_BACKOFF, type CallPolicy } from './call-policy';
export {
  asIncompatible,
  registerWorker,
  type CapabilityInput,
  type Registrar,
  type Registration,
} from './registration';
export { BusListener, type BusListenerOptions } from './bus-listener';
export {
  AssignmentError,
  ConfigSyncError,
  CoordinatorUnreachableError,
  IncompatibleCoordinatorError,
  ReplicaUpdateError,
  WorkerError,
  WorkerStateError,
} from './errors';
