import { ShardwiseError } from '../common';

/** A sweep spec failed to load or validate. Lists every problem, each naming its field. */
export class SweepSpecError extends ShardwiseError {
  /** Where the spec came from (a file path, or `<inline>`). */
  readonly source: string;
  /** One line per problem: `field.path: what is wrong`. */
  readonly problems: readonly string[];
  constructor(source: string, problems: readonly string[], options?: { cause?: unknown }) {
    super(`invalid sweep spec ${source}:\n  - ${problems.join('\n  - ')}`, options);
    this.name = 'SweepSpecError';
    this.source = source;
    this.problems = problems;
  }
}

/** Another sweep process holds the sweep folder's lock. */
export class SweepLockedError extends ShardwiseError {
  /** The lock file. */
  readonly lockFile: string;
  /** Process id written in the lock. */
  readonly pid: number;
  constructor(lockFile: string, pid: number) {
    super(`sweep is already running: lock ${lockFile} is held by process ${pid}; ` +
      'wait for it or stop it (Ctrl-C) before starting this sweep again');
    this.name = 'SweepLockedError';
    this.lockFile = lockFile;
    this.pid = pid;
  }
}

/** The sweep's state file cannot be used (damaged, or written for a different sweep spec). */
export class SweepStateError extends ShardwiseError {
  /** The state file. */
  readonly file: string;
  constructor(file: string, message: string, options?: { cause?: unknown }) {
    super(`sweep state ${file}: ${message}`, options);
    this.name = 'SweepStateError';
    this.file = file;
  }
}

/** More trials failed than `budget.maxFailedTrials` allows: the sweep stops. */
export class FailureBudgetError extends ShardwiseError {
  readonly failed: number;
  readonly maxFailedTrials: number;
  constructor(failed: number, maxFailedTrials: number, lastError: string) {
    super(`sweep stopped: ${failed} trials failed, more than budget.maxFailedTrials=${maxFailedTrials}; last error: ${lastError}`);
    this.name = 'FailureBudgetError';
    this.failed = failed;
    this.maxFailedTrials = maxFailedTrials;
  }
}
