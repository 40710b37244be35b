import { GrpcStatus, type JobSpec, RpcError, WorkerIdInUseError, retryTransient } from '../common';
import { type CallPolicy, WORKER_BACKOFF, callWithRetry } from './call-policy';
import { IncompatibleCoordinatorError } from './errors';

/** What the coordinator told the worker when it registered, in the worker's terms. */
export interface Registration {
  /** The id to send on every later call (the coordinator may not grant the one asked for). */
  workerId: string;
  spec: JobSpec;
  /** The spec as the coordinator sent it, to notice a different job after a re-registration. */
  specJson: string;
  configVersion: number;
  /** Negotiated per-message limit; tensors are cut into chunks below it. */
  maxMessageBytes: number;
  heartbeatIntervalMs: number;
  leaseMs: number;
  stepDeadlineMs: number;
  globalStep: number;
  coordinatorVersion: string;
  /** NATS URL of the job's event bus; undefined when the coordinator runs without one. */
  natsUrl: string | undefined;
  jobId: string;
  /** This registration's incarnation: sent on every later call, so a replaced one cannot act for the new one. */
  incarnation: number;
}

/** What the worker says about itself; the model fields are known only after the first registration. */
export interface CapabilityInput {
  workerId: string;
  /** Random per worker process, the same in each of its registrations. */
  processId: string;
  backend: string;
  maxMessageBytes: number;
  architecture?: string;
  modelFingerprint?: string;
  /** host:port of the worker's allreduce data plane; undefined: none. */
  dataAddress?: string;
}

/**
 * The one call registration needs (CoordinatorLink is one): Register with what the worker says about
 * itself, answered with the checked registration.
 */
export interface Registrar {
  /** `host:port` of the coordinator, for error messages. */
  readonly target: string;
  register(input: CapabilityInput, signal?: AbortSignal): Promise<Registration>;
}

/**
 * Registers, waiting with backoff while the coordinator is unreachable (it may start after the worker,
 * or be restarting). A refusal for good (FAILED_PRECONDITION: protocol, version or model mismatch;
 * INVALID_ARGUMENT) becomes IncompatibleCoordinatorError carrying the coordinator's reason.
 */
export async function registerWorker(link: Registrar, capabilities: CapabilityInput,
  policy: CallPolicy & { idInUseWaitMs: number }): Promise<Registration> {
  const started = Date.now();
  const idInUse = (err: unknown): err is RpcError => err instanceof RpcError && err.code === GrpcStatus.ALREADY_EXISTS;
  try {
    // Another live process holds the id: wait for it to go (its lease to expire), but not forever.
    return await retryTransient(() => callWithRetry('Coordinator/Register', () => link.register(capabilities, policy.signal), {
      ...policy,
      idempotent: true,
      // The job is full (maxWorkers live): a place may free up, so wait like for an unreachable coordinator.
      alsoRetry: [GrpcStatus.RESOURCE_EXHAUSTED],
    }), {
      ...WORKER_BACKOFF,
      giveUpAfterMs: policy.idInUseWaitMs,
      signal: policy.signal,
      isTransient: idInUse,
      onRetry: policy.onRetry ? (err, n, ms) => policy.onRetry?.(err as RpcError, n, ms) : undefined,
    });
  } catch (err) {
    if (idInUse(err)) {
      throw new WorkerIdInUseError(capabilities.workerId, `worker id '${capabilities.workerId}' is taken: ${err.details}; ` +
        `gave up after ${Math.round((Date.now() - started) / 1000)} s (idInUseWaitMs ${policy.idInUseWaitMs})`);
    }
    throw asIncompatible(err, link.target);
  }
}

/** A FAILED_PRECONDITION / INVALID_ARGUMENT refusal as IncompatibleCoordinatorError; anything else unchanged. */
export function asIncompatible(err: unknown, target: string): unknown {
  if (err instanceof RpcError && (err.code === GrpcStatus.FAILED_PRECONDITION || err.code === GrpcStatus.INVALID_ARGUMENT)) {
    return new IncompatibleCoordinatorError(target, err.details, { cause: err });
  }
  return err;
}
