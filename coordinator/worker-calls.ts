import {
  ConfigError,
  GROUPS,
  NotReadyError,
  WorkerIdInUseError,
  type ParamGroupName,
  stepLearningRates,
  type WireTensor,
} from '../common';
import { PROTOCOL_VERSION, SHARDWISE_VERSION } from '../proto';
import { samplesPerMessage } from './coordinator-options';
import { IncompatibleWorkerError, RegistrationRejectedError, RegistrationRejection } from './errors';
import type { JobContext } from './job-context';
import { CoordinatorState } from './lifecycle';
import { MemberState } from './membership';
import { modelTensors, optimizerTensors } from './step/update-log';

/** What a worker states when it registers. */
export interface WorkerCapabilitiesInput {
  /** Requested id; empty lets the coordinator choose. */
  workerId: string;
  shardwiseVersion: string;
  protocolVersion: number;
  backend: string;
  modelFingerprint: string;
  /** 0: no preference. */
  maxMessageBytes: number;
  pid: number;
  hostname: string;
  /** host:port of its allreduce data plane; empty: none. */
  dataAddress: string;
  /** Random per worker process; '' from a client that sends none (it is then never refused as another process). */
  processId: string;
}

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

function major(version: string): string {
  return version.split('.')[0];
}

/**
 * Registers a worker: it must speak this protocol and shardwise major version and accept messages big
 * enough for one micro-batch. It joins as `joining` and is admitted at the next step boundary, or at once
 * when no round is running. A live worker registering again under its id (it restarted) replaces its old
 * incarnation, whose share is redone.
 */
export function registerWorker(job: JobContext, caps: WorkerCapabilitiesInput): Registered {
  if (job.lifecycle.state !== CoordinatorState.Running || job.finished) {
    throw new NotReadyError(`the coordinator is ${job.finished ? 'finishing (the job is done)' : job.lifecycle.state}; ` +
      'registration is closed');
  }
  const requested = caps.workerId;
  if (caps.protocolVersion !== PROTOCOL_VERSION) {
    throw new IncompatibleWorkerError(requested, 'protocolVersion', PROTOCOL_VERSION, caps.protocolVersion,
      `incompatible protocol: worker speaks ${caps.protocolVersion}, coordinator ${PROTOCOL_VERSION}`);
  }
  if (caps.shardwiseVersion !== '' && major(caps.shardwiseVersion) !== major(SHARDWISE_VERSION)) {
    throw new IncompatibleWorkerError(requested, 'shardwiseVersion', SHARDWISE_VERSION, caps.shardwiseVersion,
      `incompatible shardwise version: worker runs ${caps.shardwiseVersion}, coordinator ${SHARDWISE_VERSION} (major versions differ)`);
  }
  if (caps.modelFingerprint !== '' && caps.modelFingerprint !== job.fingerprint) {
    throw new IncompatibleWorkerError(requested, 'modelFingerprint', job.fingerprint, caps.modelFingerprint,
      `incompatible model: expected ${job.fingerprint}, got ${caps.modelFingerprint}`);
  }
  const own = job.spec.distributed.maxMessageBytes;
  const maxMessageBytes = caps.maxMessageBytes > 0 ? Math.min(caps.maxMessageBytes, own) : own;
  const largest = Math.max(job.spec.training.microBatchSize, job.spec.training.evalBatchSize);
  if (samplesPerMessage(maxMessageBytes) < largest) {
    throw new ConfigError('max_message_bytes', `a worker must accept messages that carry one micro-batch of ${largest} samples, ` +
      `${maxMessageBytes} bytes hold ${samplesPerMessage(maxMessageBytes)}`);
  }
  const id = requested !== '' ? requested : chooseId(job, caps);
  let registration;
  try {
    registration = job.membership.register(id, job.now(), caps.processId);
  } catch (err) {
    if (err instanceof RegistrationRejectedError && err.reason === RegistrationRejection.Full) {
      throw new NotReadyError(`${err.message}; try again later`, { cause: err });
    }
    if (err instanceof RegistrationRejectedError && err.reason === RegistrationRejection.IdInUse) {
      job.log(`registration refused: ${err.message} (${caps.hostname || '?'} pid ${caps.pid || '?'})`);
      job.telemetry.metrics.idInUseRefusals.inc();
      throw new WorkerIdInUseError(id, err.message);
    }
    if (err instanceof RegistrationRejectedError) throw new ConfigError('worker_id', err.message, { cause: err });
    throw err;
  }
  if (registration.replaced) {
    job.telemetry.metrics.workerFailures.inc();
    job.log(`worker ${id}: incarnation ${registration.replaced.incarnation} dropped (${registration.replaced.failureReason})`);
    job.redistribute(id);
  }
  job.sessions.set(id, {
    incarnation: registration.worker.incarnation,
    maxMessageBytes,
    forceFullWeights: false,
    toldStop: false,
    lastCountedStep: 0,
    dataAddress: caps.dataAddress,
  });
  job.log(`worker ${id} registered (${caps.hostname || '?'} pid ${caps.pid || '?'}, backend ${caps.backend || '?'}, ` +
    `incarnation ${registration.worker.incarnation})`);
  if (job.round === null) job.admitPending();
  job.updateGauges();
  job.changed.notify();
  const d = job.spec.distributed;
  return {
    workerId: id,
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

function chooseId(job: JobContext, caps: WorkerCapabilitiesInput): string {
  const base = `${caps.hostname || 'worker'}-${caps.pid || job.membership.list().length + 1}`;
  let id = base;
  for (let n = 2; job.membership.get(id) !== undefined; n++) id = `${base}-${n}`;
  return id;
}

/** Config in force: what a worker that missed a bus event (or just joined) fetches. */
export function configFor(job: JobContext, workerId: string): ConfigSnapshot {
  job.member(workerId);
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

/** Records a heartbeat; tells the worker the config version and whether to drain. */
export function heartbeat(job: JobContext, workerId: string): { configVersion: number; drain: boolean; leaseMs: number } {
  const { record } = job.member(workerId);
  return {
    configVersion: job.configVersion,
    drain: job.finished || record.state === MemberState.Draining,
    leaseMs: job.spec.distributed.leaseMs,
  };
}

/**
 * A worker leaves: at once (its unfinished micro-batches are redone by others) or, with `drain`, after
 * the share it holds (it gets nothing more and is answered STOP once that share is in). Leaving twice,
 * or after being dropped, is harmless.
 */
export function leaveJob(job: JobContext, workerId: string, drain: boolean, reason: string): { lastCountedStep: number } {
  const lastCountedStep = job.sessions.get(workerId)?.lastCountedStep ?? 0;
  const record = job.membership.get(workerId);
  if (!record || ![MemberState.Joining, MemberState.Active, MemberState.Draining].includes(record.state as never)) {
    return { lastCountedStep };
  }
  if (drain && record.state !== MemberState.Joining) {
    job.membership.drain(workerId, record.incarnation);
    job.log(`worker ${workerId} is draining${reason ? `: ${reason}` : ''}`);
    job.releaseQueued(workerId);
  } else {
    job.loseWorker(workerId, 'left', reason);
  }
  return { lastCountedStep };
}

/**
 * The full weights (and on request the optimizer state) for a joining or resynchronising worker. A
 * worker whose model fingerprint differs is failed: it built another model and can never compute a share.
 */
export function weightsFor(job: JobContext, workerId: string, modelFingerprint: string, includeOptimizer: boolean): WeightsSnapshot {
  const { session } = job.member(workerId);
  if (modelFingerprint !== job.fingerprint) {
    const message = `incompatible model: expected ${job.fingerprint}, got ${modelFingerprint || '(none)'}`;
    job.loseWorker(workerId, 'failed', message);
    throw new IncompatibleWorkerError(workerId, 'modelFingerprint', job.fingerprint, modelFingerprint, message);
  }
  session.forceFullWeights = false;
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

/**
 * Records the number of workers the operator wants (`shardwise scale`) and announces it; launchers act
 * on the announcement. Must lie in [minWorkers, maxWorkers].
 */
export function scaleJob(job: JobContext, desired: number): { desiredWorkers: number; activeWorkers: number } {
  const { minWorkers, maxWorkers } = job.spec.distributed;
  if (!Number.isInteger(desired) || desired < minWorkers || desired > maxWorkers) {
    throw new ConfigError('desired_workers', `expected an integer in [minWorkers, maxWorkers] = [${minWorkers}, ${maxWorkers}], ` +
      `got ${desired}`);
  }
  job.desiredWorkers = desired;
  job.telemetry.metrics.desiredWorkers.set(desired);
  job.announcer.announce({
    type: 'scale',
    desiredWorkers: desired,
    jobId: job.jobId,
    configVersion: job.configVersion,
    effectiveStep: job.weightsVersion,
  });
  job.log(`scale: ${desired} workers desired (${job.membership.activeWorkers().length} active)`);
  return { desiredWorkers: desired, activeWorkers: job.membership.activeWorkers().length };
}
