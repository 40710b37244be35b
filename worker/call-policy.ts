import { type BackoffOptions, GrpcStatus, RpcError, StreamClosedError, fromServiceError, isRetryableCode, retryTransient } from '../common';
import { CoordinatorUnreachableError } from './errors';

/** How the worker retries one call to the coordinator. */
export interface CallPolicy {
  /** `host:port` of the coordinator, for the error message. */
  target: string;
  /** Give up once the call has kept failing with retryable statuses for this long. */
  retryLimitMs: number;
  /** Stops retrying (and waiting) at once; the last error is thrown. */
  signal?: AbortSignal;
  /** Told before each wait, e.g. to log "coordinator unavailable, retrying in 400 ms". */
  onRetry?: (error: RpcError, attempt: number, delayMs: number) => void;
}

/**
 * The worker's bounds of the one retry policy's backoff (common/retry): waits from about 100 ms up to 2 s.
 * The ceiling is lower than the wire default (5 s) so a restarted coordinator is found within about two
 * seconds of coming back.
 */
export const WORKER_BACKOFF: Required<BackoffOptions> = { initialDelayMs: 100, maxDelayMs: 2000 };

/** Whether `error` says the coordinator no longer knows this worker id (it restarted or expired us). */
export function isUnknownWorker(error: unknown): boolean {
  return error instanceof RpcError && error.code === GrpcStatus.NOT_FOUND;
}

/**
 * Statuses that end a session but not the worker: the coordinator forgot this incarnation (NOT_FOUND), is
 * unreachable or restarting (UNAVAILABLE), or did not answer in time (DEADLINE_EXCEEDED), or the call was
 * cut (CANCELLED, ABORTED). Each is transient: the worker registers again. Anything else (INTERNAL,
 * INVALID_ARGUMENT, a protocol error, an exception in the worker's own code) is a bug or a refusal for
 * good, and retrying it would only hide it.
 */
const SESSION_ENDING_CODES: ReadonlySet<number> = new Set([
  GrpcStatus.NOT_FOUND,
  GrpcStatus.UNAVAILABLE,
  GrpcStatus.DEADLINE_EXCEEDED,
  GrpcStatus.CANCELLED,
  GrpcStatus.ABORTED,
]);

/** Whether `error` is known to be transient and ends the session (the worker registers again), rather than the worker. */
export function endsSession(error: unknown): boolean {
  if (error instanceof StreamClosedError) return true;
  return error instanceof RpcError && SESSION_ENDING_CODES.has(error.code);
}

/**
 * A failed call (a gRPC status) as an RpcError naming the method; anything else is a bug in this process
 * (a TypeError building the request, say) and stays what it is, so it is neither retried nor disguised.
 */
function callError(method: string, error: unknown, idempotent: boolean): unknown {
  const code = (error as { code?: unknown } | undefined)?.code;
  return error instanceof RpcError || typeof code === 'number' ? fromServiceError(method, error, { idempotent }) : error;
}

/**
 * Runs `attempt` (which starts a fresh call with its own deadline each time) until it succeeds or fails
 * with a status that is not worth repeating. UNAVAILABLE is always retried, and DEADLINE_EXCEEDED too
 * for `idempotent` calls; the attempts are not counted but timed, so a coordinator that is down for a
 * minute is waited for, and one that stays down past `retryLimitMs` ends in CoordinatorUnreachableError.
 * Every other failure is thrown at once: a status as the RpcError it is (which codes are retryable is
 * decided in common/wire; `alsoRetry` adds codes that mean "not now" for one call, e.g. a full job at
 * Register), a bug as itself.
 */
export async function callWithRetry<T>(
  method: string,
  attempt: () => Promise<T>,
  policy: CallPolicy & { idempotent: boolean; alsoRetry?: readonly number[] },
): Promise<T> {
  const started = Date.now();
  let lastRetryable: RpcError | undefined;
  try {
    return await retryTransient(
      async () => {
        try {
          return await attempt();
        } catch (err) {
          throw callError(method, err, policy.idempotent);
        }
      },
      {
        ...WORKER_BACKOFF,
        giveUpAfterMs: policy.retryLimitMs,
        signal: policy.signal,
        isTransient: (err) => {
          if (!(err instanceof RpcError)) return false;
          if (!isRetryableCode(err.code, policy.idempotent) && !policy.alsoRetry?.includes(err.code)) return false;
          lastRetryable = err;
          return true;
        },
        onRetry: policy.onRetry ? (err, n, ms) => policy.onRetry?.(err as RpcError, n, ms) : undefined,
      },
    );
  } catch (err) {
    if (err === lastRetryable && !policy.signal?.aborted) {
      throw new CoordinatorUnreachableError(policy.target, method, Date.now() - started, { cause: err });
    }
    throw err;
  }
}
