import type { IBackoff, IBackoffFactory } from 'cockatiel';
import { type BackoffOptions, compileBackoff, loadCockatiel } from './retry-policy';

/**
 * The retry policy's backoff as waits read synchronously, for a client that runs its own retry loop and
 * only asks how long to wait (nats.js calls `reconnectDelayHandler` on every turn of its dial loop, also
 * while it is only waiting, so the wait is advanced by the caller once per attempt, not per read).
 */
export class BackoffSequence {
  private current: IBackoff<unknown> | undefined;
  private count = 0;

  private constructor(private readonly factory: IBackoffFactory<unknown>, private readonly initialDelayMs: number) {}

  /** The sequence of the policy's backoff between `options`' bounds (loads cockatiel). */
  static async create(options: BackoffOptions = {}): Promise<BackoffSequence> {
    const bounds = compileBackoff(options);
    const { ExponentialBackoff } = await loadCockatiel();
    return new BackoffSequence(new ExponentialBackoff({ initialDelay: bounds.initialDelayMs, maxDelay: bounds.maxDelayMs }), bounds.initialDelayMs);
  }

  /** Attempts since the last `reset`. */
  get attempts(): number {
    return this.count;
  }

  /** The wait to keep before the next attempt (the initial delay before any attempt failed). */
  get delayMs(): number {
    return Math.max(1, Math.round(this.current?.duration ?? this.initialDelayMs));
  }

  /** An attempt started: the wait before the next one is drawn. */
  advance(): void {
    this.count++;
    this.current = this.current ? this.current.next(undefined) : this.factory.next(undefined);
  }

  /** The connection is back: the next outage starts from the first wait. */
  reset(): void {
    this.count = 0;
    this.current = undefined;
  }
}
