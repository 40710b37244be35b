import { GROUPS, type ParamGroupName, stepLearningRates, type WireTensor } from '../common';
import { SHARDWISE_VERSION } from '../proto';
import { IncompatibleWorkerError, modelMismatchMessage } from './errors';
import type { JobContext } from './job-context';
import { MemberState, stepPhaseOf, type WorkerCapabilitiesInput } from './membership';
import { modelTensors, optimizerTensors } from './step';

export type { WorkerCapabilitiesInput };

/** The answer to a registration. */
export interface Registered {
  workerId: string;
  jobSpecJson: string;
  configVersion: number;
  maxMessageBytes: number;
  heartbeatIntervalMs: number;
  leaseMs: number;
  stepDeadlineMs: number;
  globalStep: number;
  coordinatorVersion: string;
  natsUrl: string;
  jobId: string;
}

/** Freeze state and learning rate of the parameter groups, at a config version. */
export interface ConfigSnapshot {
  configVersion: number;
  globalStep: number;
  epoch: number;
  groups: { name: ParamGroupName; frozen: boolean; learningRate: number }[];
}

/** The full weights a joiner copies. */
export interface WeightsSnapshot {
  globalStep: number;
  configVersion: number;
  tensors: WireTensor[];
  optimizerStateIncluded: boolean;
  optimizerIterations: number;
  /** Updates each variable's optimizer state has received, when the state is included. */
  optimizerVariableSteps: Record<string, number>;
  /** The worker's negotiated message limit: tensors are cut into chunks below it. */
  maxMessageBytes: number;
}

/**
 * Registers a worker (see WorkerRoster.register: the checks, incarnations, admission) and answers with
 * what it needs to start: the job spec, limits, leases and where the job stands.
 */
export function registerWorker(job: JobContext, caps: WorkerCapabilitiesInput): Registered {
  const { workerId, maxMessageBytes } = job.members.register(caps);
  const d = job.spec.distributed;
  return {
    workerId,
    jobSpecJson: JSON.stringify(job.spec),
    configVersion: job.configVersion,
    maxMessageBytes,
    heartbeatIntervalMs: d.heartbeatIntervalMs,
    leaseMs: d.leaseMs,
    stepDeadlineMs: d.stepDeadlineMs,
    globalStep: job.weightsVersion,
    coordinatorVersion: SHARDWISE_VERSION,
    natsUrl: job.options.natsUrl ?? '',
    jobId: job.jobId,
  };
}

/** Config in force: what a worker that missed a bus event (or just joined) fetches. */
export function configFor(job: JobContext, workerId: string): ConfigSnapshot {
  job.members.member(workerId);
  return currentConfig(job);
}

/** The current config snapshot. */
export function currentConfig(job: JobContext): ConfigSnapshot {
  const { trainer } = job;
  const lr = trainer.epoch >= 0 ? stepLearningRates(trainer) : { backbone: 0, head: 0 };
  return {
    configVersion: job.configVersion,
    globalStep: job.weightsVersion,
    epoch: Math.max(0, trainer.epoch),
    groups: GROUPS.map((name) => ({ name, frozen: name === 'backbone' && trainer.frozen, learningRate: lr[name] })),
  };
}

/**
 * Records a heartbeat; tells the worker the config version, whether to drain, and the allreduce attempt
 * of the open step that failed here while its members are awaited (a member still in it ends its part).
 */
export function heartbeat(job: JobContext, workerId: string): { configVersion: number; drain: boolean; leaseMs: number; voidedAllreduce: string } {
  const { record } = job.members.member(workerId);
  const phase = stepPhaseOf(job.round);
  return {
    configVersion: job.configVersion,
    drain: job.finished || record.state === MemberState.Draining,
    leaseMs: job.spec.distributed.leaseMs,
    voidedAllreduce: phase?.name === 'reduce-failed' && phase.reduction.isMember(workerId) ? phase.reduction.key : '',
  };
}

/** A worker leaves, at once or (`drain`) after the share it holds; see WorkerRoster.leave. */
export function leaveJob(job: JobContext, workerId: string, drain: boolean, reason: string): { lastCountedStep: number } {
  return job.members.leave(workerId, drain, reason);
}

/**
 * The full weights (and on request the optimizer state) for a joining or resynchronising worker. A
 * worker whose model fingerprint differs is failed: it built another model and can never compute a share.
 */
export function weightsFor(job: JobContext, workerId: string, modelFingerprint: string, includeOptimizer: boolean): WeightsSnapshot {
  const { session } = job.members.member(workerId);
  if (modelFingerprint !== job.fingerprint) {
    const message = modelMismatchMessage(modelFingerprint);
    job.loseWorker(workerId, 'failed', message);
    throw new IncompatibleWorkerError(workerId, 'modelFingerprint', job.fingerprint, modelFingerprint, message);
  }
  job.members.needsFullWeights(workerId, false);
  job.settleReplica();
  const tensors = modelTensors(job.parts);
  let iterations = 0;
  let variableSteps: Record<string, number> = {};
  if (includeOptimizer) {
    const optimizer = optimizerTensors(job.trainer);
    tensors.push(...optimizer.tensors);
    iterations = optimizer.iterations;
    variableSteps = optimizer.variableSteps;
  }
  job.telemetry.metrics.sentBytes.inc(tensors.reduce((n, t) => n + t.data.byteLength, 0));
  return {
    globalStep: job.weightsVersion,
    configVersion: job.configVersion,
    tensors,
    optimizerStateIncluded: includeOptimizer,
    optimizerIterations: iterations,
    optimizerVariableSteps: variableSteps,
    maxMessageBytes: session.maxMessageBytes,
  };
}

/** The operator's (or the autoscaler's) desired worker count; see WorkerRoster.scale. */
export function scaleJob(job: JobContext, desired: number): { desiredWorkers: number; activeWorkers: number } {
  return job.members.scale(desired);
}
