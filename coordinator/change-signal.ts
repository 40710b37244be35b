/** Why {@link ChangeSignal.wait} returned. */
export type WaitOutcome = 'changed' | 'timeout' | 'aborted';

/**
 * Wakes everyone waiting for the job's state to change: a step opened, a share was reassigned, a worker
 * was admitted, the job finished. Long polls and the job loop wait on it (with a deadline) and then
 * re-examine the state, instead of polling on a timer.
 */
export class ChangeSignal {
  private waiters = new Set<(outcome: WaitOutcome) => void>();

  /** Wakes every current waiter. */
  notify(): void {
    const waiters = this.waiters;
    this.waiters = new Set();
    for (const wake of waiters) wake('changed');
  }

  /**
   * Resolves at the next `notify`, after `timeoutMs` (Infinity: never), or when `signal` aborts,
   * whichever comes first.
   */
  wait(timeoutMs: number, signal?: AbortSignal): Promise<WaitOutcome> {
    if (signal?.aborted) return Promise.resolve('aborted');
    return new Promise<WaitOutcome>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const done = (outcome: WaitOutcome): void => {
        this.waiters.delete(done);
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        resolve(outcome);
      };
      const onAbort = (): void => done('aborted');
      this.waiters.add(done);
      if (Number.isFinite(timeoutMs)) timer = setTimeout(() => done('timeout'), Math.max(0, timeoutMs));
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}
