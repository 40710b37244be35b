/**
 * The local executor: each stretch of a trial is a child process. A one-worker trial is
 * `shardwise train --local` (one process, epoch checkpoints on, started from a checkpoint and stopped at
 * the next rung boundary); a multi-worker trial is `shardwise cluster` over its whole length, in its own
 * run folder so that a restarted sweep resumes it from the cluster's own checkpoints.
 *
 * How many run at once: a one-worker trial needs one core; a cluster of W workers needs W + 1 (the
 * coordinator computes too), capped at the machine. Trials start while their cores fit in the free cores
 * (and `budget.maxConcurrentTrials` allows); one trial always may start, so on 2 cores a 2-worker trial
 * takes the whole machine and runs alone.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { THREADS_ENV_VAR } from '../common';
import { defaultShardwiseCommand, ManagedChild, type ShardwiseCommand } from '../launcher';
import type { TrialExecutor, TrialExit, TrialRun, TrialRunRequest } from './executor';
import { committedEpochs, runProgress, trialArgs } from './trial-run-dir';

/** Cores one trial occupies on a machine of `cores` cores. */
export function trialCores(workers: number, cores: number): number {
  return Math.min(cores, workers === 1 ? 1 : workers + 1);
}

/** How long a stopped trial process may take to write its checkpoint before SIGKILL. */
const STOP_GRACE_MS = 10_000;

/** A stretch of a trial running as a child process. */
export class LocalTrialRun implements TrialRun {
  readonly child: ManagedChild;
  readonly ended: Promise<void>;

  constructor(readonly request: TrialRunRequest, shardwise: ShardwiseCommand = defaultShardwiseCommand()) {
    fs.mkdirSync(request.runsDir, { recursive: true });
    this.child = ManagedChild.spawn({
      name: `trial ${request.trialId}`,
      command: shardwise.command,
      args: [...shardwise.args, ...trialArgs(request, { exitWithParent: true })],
      // Trials run side by side on one machine (trialCores): one compute thread each unless OMP_NUM_THREADS says otherwise.
      env: { [THREADS_ENV_VAR]: '1', ...process.env },
      // Own process group: a Ctrl-C reaches the sweep, which stops its trials in order.
      detached: true,
      historyLines: 200,
    });
    this.ended = this.child.exited.then(() => undefined);
  }

  exit(): TrialExit | undefined {
    const status = this.child.exitStatus;
    if (status === undefined) return undefined;
    return {
      succeeded: status.code === 0,
      what: `${this.request.workers === 1 ? 'shardwise train --local' : 'shardwise cluster'} exited with ` +
        `${status.code !== null ? `code ${status.code}` : `signal ${status.signal}`}`,
      detail: this.errorTail(),
    };
  }

  committed(): ReturnType<TrialRun['committed']> {
    return committedEpochs(this.request);
  }

  progress(): ReturnType<TrialRun['progress']> {
    return runProgress(this.request);
  }

  cancel(): void {
    this.child.signal('SIGTERM');
  }

  async stop(): Promise<void> {
    await this.child.stop({ signal: 'SIGTERM', graceMs: STOP_GRACE_MS });
  }

  /** The last lines the process printed, for a failure message. */
  private errorTail(): string {
    const lines = this.child.lines().filter((l) => l.trim() !== '' && !/^\s*(epoch \d|\[|█|░)/.test(l));
    return lines.slice(-6).join(' | ').slice(-800);
  }
}

/** Runs trials as child processes on this machine's cores (`executor.cores`, 0: all of them). */
export class LocalExecutor implements TrialExecutor {
  readonly kind = 'local';
  readonly capacity: number;

  /** `shardwise`: the command a trial process runs. @default {@link defaultShardwiseCommand} */
  constructor(cores: number, private readonly shardwise: ShardwiseCommand = defaultShardwiseCommand()) {
    this.capacity = cores > 0 ? cores : os.availableParallelism();
  }

  cost(workers: number): number {
    return trialCores(workers, this.capacity);
  }

  start(request: TrialRunRequest): Promise<TrialRun> {
    return Promise.resolve(new LocalTrialRun(request, this.shardwise));
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
