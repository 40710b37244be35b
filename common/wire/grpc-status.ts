import { Metadata, ServiceError, status } from '@grpc/grpc-js';
import { ConfigError } from '../errors';
import { type BackoffOptions, retryTransient } from '../retry';
import {
  IncompatiblePeerError,
  MessageTooLargeError,
  NotReadyError,
  PermissionDeniedError,
  RpcError,
  StaleRequestError,
  TensorCodecError,
  UnauthenticatedError,
  UnknownWorkerError,
  WorkerIdInUseError,
} from './errors';

/*
 * The one place that decides which gRPC status a domain error becomes on the server, what a status
 * becomes on the client, and which statuses a client tries again and after how long.
 */

/** Trailer naming the server-side error class, so a client can tell a NonFiniteValueError from others. */
export const ERROR_NAME_TRAILER = 'shardwise-error';

/** The status a handler answers with when it fails with `error`. */
export function statusCodeFor(error: unknown): status {
  if (error instanceof RpcError) return error.code;
  if (error instanceof TensorCodecError || error instanceof ConfigError) return status.INVALID_ARGUMENT;
  if (error instanceof MessageTooLargeError) return status.RESOURCE_EXHAUSTED;
  if (error instanceof IncompatiblePeerError || error instanceof StaleRequestError) return status.FAILED_PRECONDITION;
  if (error instanceof UnknownWorkerError) return status.NOT_FOUND;
  if (error instanceof NotReadyError) return status.UNAVAILABLE;
  if (error instanceof WorkerIdInUseError) return status.ALREADY_EXISTS;
  if (error instanceof UnauthenticatedError) return status.UNAUTHENTICATED;
  if (error instanceof PermissionDeniedError) return status.PERMISSION_DENIED;
  return status.INTERNAL;
}

/** The name of a status code, e.g. `UNAVAILABLE`. */
export function statusName(code: number): string {
  return status[code] ?? `status ${code}`;
}

/**
 * A domain error as the object grpc-js sends as a status: pass it to a unary/client-stream callback
 * or emit it as 'error' on a server stream. The details are the error's own message.
 */
export function toServiceError(error: unknown): Partial<ServiceError> & { code: status; details: string } {
  const code = statusCodeFor(error);
  const metadata = new Metadata();
  let details: string;
  if (error instanceof Error) {
    details = error.message;
    metadata.set(ERROR_NAME_TRAILER, error.name);
  } else {
    details = String(error);
  }
  return { name: 'ServiceError', message: details, code, details, metadata };
}

/** Whether a failed call with `code` is retried: `idempotent` calls may be repeated after a timeout too. */
export function isRetryableCode(code: number, idempotent: boolean): boolean {
  if (code === status.UNAVAILABLE) return true;
  return idempotent && (code === status.DEADLINE_EXCEEDED || code === status.ABORTED);
}

/** What the caller knows about a failed call beyond the error itself. */
export interface FailedCallContext {
  /** Safe to repeat after a timeout; only decides RpcError.retryable. @default true */
  idempotent?: boolean;
  /**
   * Whether this side cancelled the call. When it did not, a CANCELLED status can only mean the
   * server reset the stream (grpc-js forceShutdown, a restart), so it is reported as UNAVAILABLE,
   * which is what it is and what gets retried. Undefined leaves CANCELLED as it is.
   */
  cancelledLocally?: boolean;
}

/**
 * A grpc-js failure as an RpcError naming the method. Errors that are not ServiceErrors (a throw in a
 * serializer, say) become INTERNAL.
 */
export function fromServiceError(method: string, error: unknown, context: FailedCallContext = {}): RpcError {
  if (error instanceof RpcError) return error;
  const e = error as Partial<ServiceError> | undefined;
  let code = typeof e?.code === 'number' ? e.code : status.INTERNAL;
  let details = typeof e?.details === 'string' && e.details !== '' ? e.details : error instanceof Error ? error.message : String(error);
  if (code === status.CANCELLED && context.cancelledLocally === false) {
    code = status.UNAVAILABLE;
    details = `the server reset the call without a status (it stopped or restarted): ${details}`;
  }
  if (code === status.DEADLINE_EXCEEDED) details += ' (the peer did not answer before the call deadline)';
  const remoteName = e?.metadata?.get(ERROR_NAME_TRAILER)[0];
  if (typeof remoteName === 'string') details += ` [${remoteName}]`;
  return new RpcError(method, code, statusName(code), details, isRetryableCode(code, context.idempotent ?? true), { cause: error });
}

/**
 * How a call to the coordinator is retried by the one policy (common/retry): 6 attempts, waits from about
 * 100 ms up to 5 s, long enough to ride out a coordinator restart behind a Service.
 */
export const RPC_RETRY = { maxAttempts: 6, initialDelayMs: 100, maxDelayMs: 5000 } as const;

/** How a call is retried. */
export interface RpcRetryOptions extends BackoffOptions {
  /**
   * Safe to repeat after a timeout (reads, heartbeats). PushGradients and SubmitEval are
   * not: they are retried only on UNAVAILABLE, and the coordinator drops duplicates by (worker, step).
   * @default true
   */
  idempotent?: boolean;
  /** Attempts in all. @default RPC_RETRY.maxAttempts */
  maxAttempts?: number;
  signal?: AbortSignal;
  onRetry?: (error: RpcError, attempt: number, delayMs: number) => void;
}

/**
 * Runs one call (a function that starts a fresh call each time, with its own deadline) under the
 * retry policy; throws the last RpcError.
 */
export function withRpcRetry<T>(method: string, call: () => Promise<T>, options: RpcRetryOptions = {}): Promise<T> {
  const idempotent = options.idempotent ?? true;
  return retryTransient(
    async () => {
      try {
        return await call();
      } catch (err) {
        throw fromServiceError(method, err, { idempotent });
      }
    },
    {
      ...RPC_RETRY,
      ...options,
      isTransient: (err) => err instanceof RpcError && isRetryableCode(err.code, idempotent),
      onRetry: options.onRetry ? (err, attempt, ms) => options.onRetry?.(err as RpcError, attempt, ms) : undefined,
    },
  );
}
