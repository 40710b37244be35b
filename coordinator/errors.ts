import {
  IncompatiblePeerError,
  ShardwiseError,
  StaleRequestError,
  TensorCodecError,
  UnknownWorkerError,
} from '../common';

/** Base of every error the coordinator's planning and bookkeeping throws. */
export class CoordinatorError extends ShardwiseError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CoordinatorError';
  }
}

/**
 * A step or an assignment was asked for that cannot exist: a step past the end of the epoch, no workers
 * to assign micro-batches to, a worker listed twice. These are coordinator bugs, not worker faults.
 */
export class PlanningError extends CoordinatorError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PlanningError';
  }
}

/** Why a registration was turned away; maps to a gRPC status in the wire layer. */
export const RegistrationRejection = {
  /** `maxWorkers` live workers already: the worker may retry later. */
  Full: 'full',
  /** The worker id is malformed (empty, too long). */
  InvalidId: 'invalid-id',
  /** Another live process holds the id: the worker may retry once that one is gone. */
  IdInUse: 'id-in-use',
} as const;
export type RegistrationRejection = (typeof RegistrationRejection)[keyof typeof RegistrationRejection];

/** A worker may not join now; `reason` tells the wire layer which status code to answer with. */
export class RegistrationRejectedError extends CoordinatorError {
  readonly workerId: string;
  readonly reason: RegistrationRejection;
  constructor(workerId: string, reason: RegistrationRejection, message: string) {
    super(`worker ${JSON.stringify(workerId)} rejected: ${message}`);
    this.name = 'RegistrationRejectedError';
    this.workerId = workerId;
    this.reason = reason;
  }
}

/** A lifecycle transition that the worker's current state does not allow (e.g. draining a failed worker). */
export class WorkerStateError extends CoordinatorError {
  readonly workerId: string;
  readonly from: string;
  readonly to: string;
  constructor(workerId: string, from: string, to: string) {
    super(`worker ${JSON.stringify(workerId)}: cannot go from '${from}' to '${to}'`);
    this.name = 'WorkerStateError';
    this.workerId = workerId;
    this.from = from;
    this.to = to;
  }
}

/**
 * The sample ledger was used against its contract: sample indices out of range, a step closed with
 * micro-batches missing, a checkpoint asked for between step boundaries, a malformed saved state.
 */
export class LedgerError extends CoordinatorError {
  readonly epoch?: number;
  readonly step?: number;
  constructor(message: string, context: { epoch?: number; step?: number } = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LedgerError';
    this.epoch = context.epoch;
    this.step = context.step;
  }
}

/** A checkpoint could not be written or read (I/O failure, bad input). */
export class CheckpointError extends CoordinatorError {
  /** The checkpoint folder (or the parent folder, for a failed listing). */
  readonly path: string;
  constructor(path: string, message: string, options?: { cause?: unknown }) {
    super(`checkpoint ${path}: ${message}`, options);
    this.name = 'CheckpointError';
    this.path = path;
  }
}

/**
 * A checkpoint folder exists but one of its files is missing, truncated, unparsable or fails its
 * checksum. `latestCheckpoint` reports it and falls back to the previous checkpoint.
 */
export class CorruptCheckpointError extends CheckpointError {
  /** The offending file inside the checkpoint folder, e.g. `tensors.bin`. */
  readonly file: string;
  constructor(path: string, file: string, message: string, options?: { cause?: unknown }) {
    super(path, `${file}: ${message}`, options);
    this.name = 'CorruptCheckpointError';
    this.file = file;
  }
}

/*
 * Errors a worker's call is answered with. Each subclasses the wire error whose status it must carry
 * (common/wire/grpc-status.ts is the one place that maps classes to codes), and replaces the generic
 * message with one that names the problem in the coordinator's terms.
 */

/**
 * The caller is not (or no longer) a live member: never registered, lease expired, failed for a bad
 * result, replaced by a newer registration, or left. NOT_FOUND: the worker registers again.
 */
export class WorkerGoneError extends UnknownWorkerError {
  /** Why the worker is not a member, e.g. `failed: no heartbeat for 10000 ms`. */
  readonly why: string;
  constructor(workerId: string, why: string, incarnation?: number) {
    super(workerId, incarnation);
    this.name = 'WorkerGoneError';
    this.why = why;
    this.message = `worker '${workerId}' ${why}; register again`;
  }
}

/**
 * The message of a model-fingerprint refusal. It names only what the worker sent: the job's own
 * fingerprint stays out of every reply, so a refused caller cannot learn it and retry with it.
 */
export function incompatibleModel(presented: string): string {
  return `incompatible model: the worker's fingerprint ${presented || '(none)'} is not this job's model (build the worker from the job's spec and version)`;
}

/**
 * The worker runs something this coordinator cannot work with (protocol version, shardwise major
 * version, model fingerprint). FAILED_PRECONDITION: retrying cannot help; the worker must be rebuilt.
 */
export class IncompatibleWorkerError extends IncompatiblePeerError {
  readonly workerId: string;
  constructor(workerId: string, field: string, expected: string | number, actual: string | number, message: string) {
    super(field, expected, actual);
    this.name = 'IncompatibleWorkerError';
    this.workerId = workerId;
    this.message = message;
  }
}

/**
 * A result for a step, a config version or micro-batches the coordinator does not expect from this
 * worker now (a late push after its share was redone elsewhere, a push for another step). FAILED_PRECONDITION:
 * nothing was counted; the worker pulls its next assignment.
 */
export class StaleResultError extends StaleRequestError {
  readonly workerId: string;
  constructor(workerId: string, field: string, expected: number, actual: number, message: string) {
    super(field, expected, actual);
    this.name = 'StaleResultError';
    this.workerId = workerId;
    this.message = message;
  }
}

/**
 * A result that is malformed: a tensor of the wrong name, shape or size, a sample count that does not
 * match the share, counts out of range. INVALID_ARGUMENT: the worker is failed and its share redone.
 * (NaN/Inf values surface as the wire layer's NonFiniteValueError, with the same consequences.)
 */
export class InvalidResultError extends TensorCodecError {
  readonly workerId: string;
  constructor(workerId: string, subject: string, message: string) {
    super(subject, message);
    this.name = 'InvalidResultError';
    this.workerId = workerId;
  }
}

/** The job cannot go on (the model diverged, a checkpoint could not be written); the coordinator fails. */
export class JobFailedError extends CoordinatorError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'JobFailedError';
  }
}

/**
 * An epoch ended without counting every training sample exactly once: its weights were trained on a
 * skipped or repeated sample, so the job stops rather than report a result it cannot vouch for.
 */
export class ExactlyOnceViolationError extends JobFailedError {
  readonly epoch: number;
  /** Sample indices never counted, ascending. */
  readonly missing: readonly number[];
  /** Sample indices counted more than once, ascending. */
  readonly repeated: readonly number[];
  constructor(epoch: number, message: string, samples: { missing: readonly number[]; repeated: readonly number[] }) {
    super(message);
    this.name = 'ExactlyOnceViolationError';
    this.epoch = epoch;
    this.missing = samples.missing;
    this.repeated = samples.repeated;
  }
}

/** A run directory cannot be resumed from: the job spec changed in a way that changes training. */
export class ResumeError extends CoordinatorError {
  readonly runDir: string;
  constructor(runDir: string, message: string, options?: { cause?: unknown }) {
    super(`cannot resume ${runDir}: ${message}`, options);
    this.name = 'ResumeError';
    this.runDir = runDir;
  }
}
