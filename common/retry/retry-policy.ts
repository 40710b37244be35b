import { ConfigError } from '../errors';
import { importEsm } from '../esm-import';

/*
 * The one retry policy of the codebase, on cockatiel: exponential backoff with decorrelated jitter
 * between two bounds, and a retry only for failures the caller names as transient. Everything else (a
 * bug such as a TypeError, a refusal such as INVALID_ARGUMENT) is thrown at once, unchanged: retrying it
 * would only hide it. gRPC calls (common/wire), the worker's calls and registration, the event bus's first
 * connection and its reconnects, and the Kubernetes scale patch all wait by this policy.
 *
 * cockatiel is ESM-only, so it is loaded once per process through `importEsm`; a retry awaits that
 * promise, which is resolved after the first use (one microtask, nothing on a hot path).
 */

/** cockatiel's module namespace (types only: nothing is loaded at compile time). */
export type CockatielModule = typeof import('cockatiel');

let cockatiel: Promise<CockatielModule> | undefined;

/** cockatiel, loaded once per process. */
export function loadCockatiel(): Promise<CockatielModule> {
  cockatiel ??= importEsm<CockatielModule>('cockatiel');
  return cockatiel;
}

/** How long to wait between attempts. */
export interface BackoffOptions {
  /** Scale of the first wait (decorrelated jitter draws around it). @default 100 */
  initialDelayMs?: number;
  /** Ceiling of any single wait. @default 5000 */
  maxDelayMs?: number;
}

/** What to retry, and for how long. */
export interface RetryOptions extends BackoffOptions {
  /**
   * Whether a failure is transient and worth another attempt. Name them (gRPC codes, error classes):
   * anything else is thrown at once as it is.
   */
  isTransient: (error: unknown) => boolean;
  /** Attempts in all, the first included; Infinity: until `giveUpAfterMs` or the signal. @default Infinity */
  maxAttempts?: number;
  /** No further attempt once this long has passed since the first began. @default Infinity */
  giveUpAfterMs?: number;
  /** Stops waiting at once and throws the last error (an attempt in flight is not cut: it has its own). */
  signal?: AbortSignal;
  /** Told before each wait (the attempt that failed is 1-based), e.g. to log the first one. */
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
}

/** RetryOptions with every bound filled and checked. */
interface CompiledRetry {
  initialDelayMs: number;
  maxDelayMs: number;
  maxAttempts: number;
  giveUpAfterMs: number;
}

/** Fills the defaults and rejects bounds that would never wait or never try. */
export function compileBackoff(options: BackoffOptions): Required<BackoffOptions> {
  const initialDelayMs = options.initialDelayMs ?? 100;
  const maxDelayMs = options.maxDelayMs ?? 5000;
  if (!(initialDelayMs > 0)) throw new ConfigError('retry.initialDelayMs', `expected a positive number of ms, got ${initialDelayMs}`);
  if (!(maxDelayMs >= initialDelayMs)) {
    throw new ConfigError('retry.maxDelayMs', `expected at least initialDelayMs (${initialDelayMs}), got ${maxDelayMs}`);
  }
  return { initialDelayMs, maxDelayMs };
}

function compileRetry(options: RetryOptions): CompiledRetry {
  const maxAttempts = options.maxAttempts ?? Infinity;
  if (maxAttempts !== Infinity && (!Number.isInteger(maxAttempts) || maxAttempts < 1)) {
    throw new ConfigError('retry.maxAttempts', `expected an integer at least 1 or Infinity, got ${maxAttempts}`);
  }
  const giveUpAfterMs = options.giveUpAfterMs ?? Infinity;
  if (!(giveUpAfterMs >= 0)) throw new ConfigError('retry.giveUpAfterMs', `expected >= 0, got ${giveUpAfterMs}`);
  return { ...compileBackoff(options), maxAttempts, giveUpAfterMs };
}

/**
 * Runs `attempt` (1-based number given) until it succeeds, fails with an error `isTransient` does not
 * accept, or the attempts, the time or the signal run out; then throws the last error unchanged, so the
 * caller sees the real cause.
 */
export async function retryTransient<T>(attempt: (n: number) => Promise<T>, options: RetryOptions): Promise<T> {
  const bounds = compileRetry(options);
  const { retry, handleWhen, ExponentialBackoff } = await loadCockatiel();
  const { signal } = options;
  const started = Date.now();
  const policy = retry(handleWhen((err) => !signal?.aborted && options.isTransient(err) && Date.now() - started < bounds.giveUpAfterMs), {
    maxAttempts: bounds.maxAttempts - 1,
    backoff: new ExponentialBackoff({ initialDelay: bounds.initialDelayMs, maxDelay: bounds.maxDelayMs }),
  });
  let last: { error: unknown } | undefined;
  let waiting = false;
  policy.onRetry((result) => {
    waiting = true;
    if ('error' in result) options.onRetry?.(result.error, result.attempt, result.delay);
  });
  const run = policy.execute(async ({ attempt: retries }) => {
    waiting = false;
    // Aborted during the wait, after this call already threw the last error: no further attempt.
    if (last && signal?.aborted) throw last.error;
    try {
      return await attempt(retries + 1);
    } catch (error) {
      last = { error };
      throw error;
    }
  });
  if (!signal) return run;
  // cockatiel's wait does not listen to the signal: an abort ends the wait here, with the last error.
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      if (waiting && last) reject(last.error);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    run.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
