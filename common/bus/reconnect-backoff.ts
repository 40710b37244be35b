import { Rng } from '../random';

/**
 * Exponential reconnect backoff with jitter, fed to nats.js as `reconnectDelayHandler`.
 *
 * nats.js calls the handler on every turn of its dial loop (also while it is only waiting), so the delay
 * cannot be advanced by counting calls; it is advanced by the client's `reconnecting` status (one per dial
 * attempt) and reset by `reconnect`. The jitter is drawn once per attempt from an `Rng` seeded by the
 * client name: reproducible for one worker, different between workers, which is what spreads them out.
 */
export class ReconnectBackoff {
  private attempts = 0;
  private current: number;
  private readonly rng: Rng;

  constructor(
    private readonly initialMs: number,
    private readonly maxMs: number,
    private readonly jitter: number,
    seed: string,
  ) {
    this.rng = new Rng(`reconnect:${seed}`);
    this.current = initialMs;
  }

  /** Failed-or-pending dial attempts since the connection was last up. */
  get attemptCount(): number {
    return this.attempts;
  }

  /** The wait nats.js should keep between this attempt and the next. */
  delayMs(): number {
    return this.current;
  }

  /** A dial attempt started: the wait before the next one grows. */
  attemptStarted(): void {
    this.attempts++;
    const base = Math.min(this.maxMs, this.initialMs * 2 ** (this.attempts - 1));
    const factor = 1 + this.jitter * (2 * this.rng.next() - 1);
    this.current = Math.min(this.maxMs, Math.max(1, Math.round(base * factor)));
  }

  /** The connection is back: the next outage starts from the initial wait. */
  reset(): void {
    this.attempts = 0;
    this.current = this.initialMs;
  }
}
