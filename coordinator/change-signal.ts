/** Why {@link ChangeSignal.wait} returned. */
export type WaitOutcome = 'changed' | 'timeout' | 'aborted';

/**
 * One pending `wait`, settled once by whichever comes first: a notify, its timer or its abort signal.
 * A class rather than closures: every accepted share wakes every waiting pull, so with 64 workers a step
 * sets up thousands of waits, and a closure, a timer callback and an abort listener per wait were a tenth
 * of the coordinator's CPU (an EventTarget listener costs an add and a remove).
 */
class Waiter {
  timer: NodeJS.Timeout | undefined = undefined;
  private settled = false;

  constructor(
    private readonly owner: ChangeSignal,
    private readonly resolve: (outcome: WaitOutcome) => void,
    /** The pending waits of the abort signal this one ends on, if any. */
    readonly ofSignal: Set<Waiter> | undefined,
  ) {}

  settle(outcome: WaitOutcome): void {
    if (this.settled) return;
    this.settled = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.owner.forget(this);
    this.resolve(outcome);
  }
}

function expire(waiter: Waiter): void {
  waiter.settle('timeout');
}

/**
 * Wakes everyone waiting for the job's state to change: a step opened, a share was reassigned, a worker
 * was admitted, the job finished. Long polls and the job loop wait on it (with a deadline) and then
 * re-examine the state, instead of polling on a timer.
 */
export class ChangeSignal {
  private waiters = new Set<Waiter>();
  /** The pending waits of each abort signal, which has one 'abort' listener for all of them (added at its first wait). */
  private readonly bySignal = new WeakMap<AbortSignal, Set<Waiter>>();

  /** Wakes every current waiter. */
  notify(): void {
    const waiters = this.waiters;
    this.waiters = new Set();
    for (const waiter of waiters) waiter.settle('changed');
  }

  /**
   * Resolves at the next `notify`, after `timeoutMs` (Infinity: never), or when `signal` aborts,
   * whichever comes first.
   */
  wait(timeoutMs: number, signal?: AbortSignal): Promise<WaitOutcome> {
    if (signal?.aborted) return Promise.resolve('aborted');
    return new Promise<WaitOutcome>((resolve) => {
      const waiter = new Waiter(this, resolve, signal && this.waitersOf(signal));
      this.waiters.add(waiter);
      waiter.ofSignal?.add(waiter);
      if (Number.isFinite(timeoutMs)) waiter.timer = setTimeout(expire, Math.max(0, timeoutMs), waiter);
    });
  }

  /** Drops a settled waiter from the sets that could still settle it (for Waiter). */
  forget(waiter: Waiter): void {
    this.waiters.delete(waiter);
    waiter.ofSignal?.delete(waiter);
  }

  private waitersOf(signal: AbortSignal): Set<Waiter> {
    let waiters = this.bySignal.get(signal);
    if (!waiters) {
      const pending = new Set<Waiter>();
      signal.addEventListener('abort', () => {
        for (const waiter of [...pending]) waiter.settle('aborted');
      }, { once: true });
      this.bySignal.set(signal, pending);
      waiters = pending;
    }
    return waiters;
  }
}
