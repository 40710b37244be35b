/**
 * Collects log lines (a launcher's, a process's) and lets a test wait for one to appear: the condition is
 * checked on every new line, so no test sleeps or polls for it.
 */
export class LineLog {
  private readonly all: string[] = [];
  private readonly waiters = new Set<{ pattern: RegExp; resolve: (m: RegExpExecArray) => void }>();

  /** Pass this as a `log`/`output`/`onLine` callback. */
  readonly push = (line: string): void => {
    this.all.push(line);
    for (const waiter of [...this.waiters]) {
      const match = waiter.pattern.exec(line);
      if (match) {
        this.waiters.delete(waiter);
        waiter.resolve(match);
      }
    }
  };

  /** Every line so far. */
  get lines(): readonly string[] {
    return this.all;
  }

  /** The lines so far that match `pattern`. */
  matching(pattern: RegExp): string[] {
    return this.all.filter((line) => pattern.test(line));
  }

  /**
   * Resolves at the first line matching `pattern` (from `from`, an index into `lines`, on: default 0, so
   * one already logged counts); rejects after `timeoutMs` with the last lines in the message.
   */
  waitFor(pattern: RegExp, options: { timeoutMs?: number; from?: number } = {}): Promise<RegExpExecArray> {
    for (const line of this.all.slice(options.from ?? 0)) {
      const match = pattern.exec(line);
      if (match) return Promise.resolve(match);
    }
    const timeoutMs = options.timeoutMs ?? 60_000;
    return new Promise((resolve, reject) => {
      const waiter = {
        pattern,
        resolve: (m: RegExpExecArray) => {
          clearTimeout(timer);
          resolve(m);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(`no line matching ${String(pattern)} within ${timeoutMs} ms; last lines:\n${this.all.slice(-40).join('\n')}`));
      }, timeoutMs);
      this.waiters.add(waiter);
    });
  }
}
