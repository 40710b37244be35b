import { ShardwiseError } from '../common';

/** Base of the errors the worker throws on purpose; callers tell them apart with `instanceof`. */
export class WorkerError extends ShardwiseError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'WorkerError';
  }
}

/**
 * The coordinator stayed unreachable (UNAVAILABLE, or silent past every deadline) for longer than the
 * worker's retry limit. The worker gives up rather than hang: a supervisor (Kubernetes, the local
 * launcher) restarts it, or the operator sees why it stopped.
 */
export class CoordinatorUnreachableError extends WorkerError {
  /** `host:port` the worker dialled. */
  readonly target: string;
  /** The call that kept failing, e.g. `Coordinator/Register`. */
  readonly method: string;
  /** How long the worker kept trying. */
  readonly waitedMs: number;
  constructor(target: string, method: string, waitedMs: number, options?: { cause?: unknown }) {
    const cause = options?.cause instanceof Error ? `; last error: ${options.cause.message}` : '';
    super(
      `coordinator ${target} unreachable: ${method} kept failing for ${Math.round(waitedMs / 1000)} s ` +
        `(expected a coordinator serving gRPC there; is it running and is the address right?)${cause}`,
      options,
    );
    this.name = 'CoordinatorUnreachableError';
    this.target = target;
    this.method = method;
    this.waitedMs = waitedMs;
  }
}

/**
 * The coordinator refused this worker for good (FAILED_PRECONDITION at Register or GetWeights):
 * another protocol or shardwise version, or a model whose variables differ from the coordinator's.
 * Restarting the same build cannot help, so the worker fails with the coordinator's reason.
 */
export class IncompatibleCoordinatorError extends WorkerError {
  /** The coordinator's own explanation (the gRPC status details). */
  readonly reason: string;
  constructor(target: string, reason: string, options?: { cause?: unknown }) {
    super(`coordinator ${target} refused this worker: ${reason}`, options);
    this.name = 'IncompatibleCoordinatorError';
    this.reason = reason;
  }
}

/**
 * A step assignment that cannot be computed as sent: samples whose byte counts do not match their
 * ids, a micro-batch naming a sample the chunk does not carry, a label outside the model's classes.
 */
export class AssignmentError extends WorkerError {
  /** The assignment field at fault, e.g. `samples.images`. */
  readonly field: string;
  /** The step the assignment was for. */
  readonly globalStep: number;
  constructor(field: string, globalStep: number, message: string, options?: { cause?: unknown }) {
    super(`step ${globalStep} assignment, ${field}: ${message}`, options);
    this.name = 'AssignmentError';
    this.field = field;
    this.globalStep = globalStep;
  }
}

/**
 * Weights from the coordinator that do not fit the replica: an unknown variable, a wrong shape or
 * dtype, a full copy that misses variables. Checked before anything is written, so the replica is
 * never left half-updated; the worker then fetches a full copy.
 */
export class ReplicaUpdateError extends WorkerError {
  /** `originalName` of the variable at fault. */
  readonly variable: string;
  constructor(variable: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ReplicaUpdateError';
    this.variable = variable;
  }
}

/**
 * The coordinator's configuration answers contradict each other (GetConfig returned a version older
 * than an assignment it sent): a coordinator bug that computing on a guessed configuration would hide.
 */
export class ConfigSyncError extends WorkerError {
  readonly expectedVersion: number;
  readonly actualVersion: number;
  constructor(expectedVersion: number, actualVersion: number) {
    super(
      `expected the coordinator's configuration at version ${expectedVersion} or later (an assignment asked for it), ` +
        `GetConfig returned version ${actualVersion}`,
    );
    this.name = 'ConfigSyncError';
    this.expectedVersion = expectedVersion;
    this.actualVersion = actualVersion;
  }
}

/** A lifecycle move the worker does not allow, e.g. `run()` on a worker that already stopped. */
export class WorkerStateError extends WorkerError {
  readonly from: string;
  readonly to: string;
  constructor(from: string, to: string) {
    super(`worker lifecycle: cannot go from '${from}' to '${to}'`);
    this.name = 'WorkerStateError';
    this.from = from;
    this.to = to;
  }
}

/** The sums an allreduce asks for are not the ones this worker holds (another step, another layout). */
export class HeldSumsError extends WorkerError {
  constructor(message: string) {
    super(message);
    this.name = 'HeldSumsError';
  }
}
