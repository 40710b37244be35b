/** Why {@link ChangeSignal.wait} returned. */
export type WaitOutcome = 'changed' | 'timeout' | 'aborted';

/**
 * One pending `wait`, settled once by whichever comes first: a notify, its timer or its abort signal.
 * A class rather than closures: with 64 workers a step sets up thousands of waits, and a closure, a timer
 * callback and an abort listener per wait were a tenth of the coordinator's CPU (an EventTarget listener
 * costs an add and a remove).
 */
class Waiter {
  timer: NodeJS.Timeout | undefined = undefined;
  private settled = false;

  constructor(
    private readonly owner: ChangeSignal,
    private readonly resolve: (outcome: WaitOutcome) => void,
    /** The worker whose next order this wait decides; undefined for the job's own loops. */
    readonly worker: string | undefined,
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
  /** Waits about no worker in particular: the job's loops. */
  private general = new Set<Waiter>();
  /** Waits that decide a worker's next order (its pulls), by worker. */
  private byWorker = new Map<string, Set<Waiter>>();
  /** The pending waits of each abort signal, which has one 'abort' listener for all of them (added at its first wait). */
  private readonly bySignal = new WeakMap<AbortSignal, Set<Waiter>>();

  /**
   * Wakes every current waiter; given `worker`, only the waits about that worker and those about no worker.
   * The latter is for a change that can alter no other worker's next order: a share of `worker` accepted
   * before the step's last (every accepted share woke every waiting pull: with 64 workers, about 2,000
   * wake-ups per step that each found nothing new).
   */
  notify(worker?: string): void {
    const general = this.general;
    this.general = new Set();
    for (const waiter of general) waiter.settle('changed');
    if (worker === undefined) {
      const byWorker = this.byWorker;
      this.byWorker = new Map();
      for (const waiters of byWorker.values()) for (const waiter of waiters) waiter.settle('changed');
      return;
    }
    const waiters = this.byWorker.get(worker);
    if (!waiters) return;
    this.byWorker.delete(worker);
    for (const waiter of waiters) waiter.settle('changed');
  }

  /**
   * Resolves at the next `notify` (that concerns `worker`, when given: the worker whose next order the
   * caller decides), after `timeoutMs` (Infinity: never), or when `signal` aborts, whichever comes first.
   */
  wait(timeoutMs: number, signal?: AbortSignal, worker?: string): Promise<WaitOutcome> {
    if (signal?.aborted) return Promise.resolve('aborted');
    return new Promise<WaitOutcome>((resolve) => {
      const waiter = new Waiter(this, resolve, worker, signal && this.waitersOf(signal));
      this.pendingOf(worker).add(waiter);
      waiter.ofSignal?.add(waiter);
      if (Number.isFinite(timeoutMs)) waiter.timer = setTimeout(expire, Math.max(0, timeoutMs), waiter);
    });
  }

  /** Drops a settled waiter from the sets that could still settle it (for Waiter). */
  forget(waiter: Waiter): void {
    waiter.ofSignal?.delete(waiter);
    if (waiter.worker === undefined) {
      this.general.delete(waiter);
      return;
    }
    const waiters = this.byWorker.get(waiter.worker);
    if (!waiters?.delete(waiter) || waiters.size > 0) return;
    this.byWorker.delete(waiter.worker);
  }

  private pendingOf(worker: string | undefined): Set<Waiter> {
    if (worker === undefined) return this.general;
    let waiters = this.byWorker.get(worker);
    if (!waiters) {
      waiters = new Set();
      this.byWorker.set(worker, waiters);
    }
    return waiters;
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
