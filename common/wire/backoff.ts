import { setTimeout as delay } from 'node:timers/promises';
import { Rng } from '../random';
import { ConfigError } from '../errors';

/** Exponential backoff with jitter: how long to wait before attempt n+1. */
export interface BackoffOptions {
  /** Attempts in all, the first included; 1 means no retry. @default 5 */
  maxAttempts?: number;
  /** Wait before the second attempt. @default 100 */
  initialBackoffMs?: number;
  /** Ceiling of any single wait. @default 5000 */
  maxBackoffMs?: number;
  /** Growth of the wait per attempt. @default 2 */
  multiplier?: number;
  /**
   * Each wait is scaled by a uniform factor in [1 - jitter, 1 + jitter], so workers that failed
   * together do not retry together. @default 0.2
   */
  jitter?: number;
}

/** BackoffOptions with every default filled and checked. */
export type ResolvedBackoff = Required<BackoffOptions>;

/** What `retry` needs besides the backoff. */
export interface RetryOptions extends BackoffOptions {
  /** Whether a failure is worth another attempt (the attempt that failed is 1-based). */
  shouldRetry: (error: unknown, attempt: number) => boolean;
  /** Called before each wait, e.g. to log or count retries. */
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
  /** Stops waiting and rethrows the last error when aborted. */
  signal?: AbortSignal;
  /** Source of the jitter. @default an Rng seeded per process */
  rng?: Rng;
}

/** Fills defaults and rejects settings that would retry forever or never wait. */
export function resolveBackoff(options: BackoffOptions = {}): ResolvedBackoff {
  const r: ResolvedBackoff = {
    maxAttempts: options.maxAttempts ?? 5,
    initialBackoffMs: options.initialBackoffMs ?? 100,
    maxBackoffMs: options.maxBackoffMs ?? 5000,
    multiplier: options.multiplier ?? 2,
    jitter: options.jitter ?? 0.2,
  };
  if (!Number.isInteger(r.maxAttempts) || r.maxAttempts < 1) {
    throw new ConfigError('backoff.maxAttempts', `expected an integer at least 1, got ${r.maxAttempts}`);
  }
  if (!(r.initialBackoffMs >= 0)) throw new ConfigError('backoff.initialBackoffMs', `expected >= 0, got ${r.initialBackoffMs}`);
  if (!(r.maxBackoffMs >= r.initialBackoffMs)) {
    throw new ConfigError('backoff.maxBackoffMs', `expected >= initialBackoffMs (${r.initialBackoffMs}), got ${r.maxBackoffMs}`);
  }
  if (!(r.multiplier >= 1)) throw new ConfigError('backoff.multiplier', `expected >= 1, got ${r.multiplier}`);
  if (!(r.jitter >= 0 && r.jitter <= 1)) throw new ConfigError('backoff.jitter', `expected 0..1, got ${r.jitter}`);
  return r;
}

/** The wait after the `attempt`-th failure (1-based), jittered with `rng`. */
export function backoffDelayMs(attempt: number, backoff: ResolvedBackoff, rng: Rng): number {
  const base = Math.min(backoff.maxBackoffMs, backoff.initialBackoffMs * backoff.multiplier ** (attempt - 1));
  return Math.round(base * rng.uniform(1 - backoff.jitter, 1 + backoff.jitter));
}

let processRng: Rng | undefined;

/**
 * Runs `fn` until it succeeds, `shouldRetry` says no, or the attempts run out; then throws the last
 * error unchanged, so callers see the real cause.
 */
export async function retry<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  const backoff = resolveBackoff(options);
  // Jitter only has to differ between processes; seeding from the pid keeps it off the job's seed.
  const rng = options.rng ?? (processRng ??= new Rng(`backoff-${process.pid}-${Date.now()}`));
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt >= backoff.maxAttempts || options.signal?.aborted || !options.shouldRetry(err, attempt)) throw err;
      const waitMs = backoffDelayMs(attempt, backoff, rng);
      options.onRetry?.(err, attempt, waitMs);
      try {
        await delay(waitMs, undefined, { signal: options.signal });
      } catch {
        throw err;
      }
    }
  }
}
