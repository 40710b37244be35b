import { THREADS_ENV_VAR } from '../common';
import { exitCodeOf, type ExitStatus, ManagedChild } from './child-process';
import type { ClusterCredentials } from './cluster-credentials';
import { MAX_LOCAL_WORKERS, type ShardwiseCommand } from './cluster-options';
import { LauncherError } from './errors';
import { WORKER_READY_PATTERN, type WorkerReady, workerReadyFrom } from './ready-lines';

/** A worker's routine line per share (or its progress line), dropped with `workerOutput: 'quiet'`. */
const ROUTINE_WORKER_LINE = /: steps? \d+(-\d+)? \(epoch \d+\): |: evaluation after epoch \d+: /;

/** One worker process the launcher started. */
export interface WorkerInfo {
  /** `worker-<n>`, also its `--id` and its log prefix; numbers are never reused within a cluster. */
  id: string;
  pid: number | undefined;
  /** `starting` until its ready line, `draining` once sent SIGTERM, `exited` after. */
  state: 'starting' | 'running' | 'draining' | 'exited';
  /** Its ready line's fields, once printed. */
  ready?: WorkerReady;
  exit?: ExitStatus;
}

/** What a {@link WorkerPool} needs from its cluster. */
export interface WorkerPoolOptions {
  /** The coordinator's gRPC address, passed to every worker. */
  coordinator: string;
  /** Resolves when the coordinator exits: a worker still starting then will never be ready. */
  coordinatorExited: Promise<ExitStatus>;
  shardwise: ShardwiseCommand;
  env: NodeJS.ProcessEnv;
  backend?: string;
  /** The workers' `--nats-credentials` file, when the cluster's NATS server requires users. */
  natsCredentialsFile?: string;
  /** The cluster's credentials: each worker gets `--tls-dir` with its certificate issued before it starts. */
  credentials?: ClusterCredentials;
  workerOutput: 'all' | 'quiet';
  output: (line: string) => void;
  log: (line: string) => void;
  workerReadyTimeoutMs: number;
  stopGraceMs: number;
  /** Whether an unexpected worker exit is news (not while the cluster is starting or stopping). */
  reportExits: () => boolean;
}

interface WorkerSlot {
  info: WorkerInfo;
  child: ManagedChild;
}

/**
 * The worker processes of one local cluster: started `worker-1`, `worker-2`, ... against the coordinator,
 * reconciled to a wanted count one operation at a time, drained newest first.
 */
export class WorkerPool {
  private readonly slots: WorkerSlot[] = [];
  private nextWorker = 1;
  private closed = false;
  // Scale operations run one after another, in arrival order, so two events never interleave.
  private operations: Promise<void> = Promise.resolve();

  constructor(private readonly options: WorkerPoolOptions) {}

  /** A snapshot of every worker started so far, in start order (exited ones included). */
  workers(): WorkerInfo[] {
    return this.slots.map((s) => ({ ...s.info }));
  }

  /** Workers counted toward the wanted number: started and not draining or exited. */
  live(): WorkerInfo[] {
    return this.workers().filter((w) => w.state === 'starting' || w.state === 'running');
  }

  /**
   * Reconciles the live worker count to `count`: starts workers (resolving once they are ready), or sends
   * SIGTERM to the newest ones (resolving once they have left). Queued behind earlier operations.
   */
  scaleTo(count: number): Promise<void> {
    if (!Number.isInteger(count) || count < 0 || count > MAX_LOCAL_WORKERS) {
      return Promise.reject(new LauncherError(`scale: expected a worker count from 0 to ${MAX_LOCAL_WORKERS}, got ${count}`));
    }
    const run = this.operations.then(() => this.reconcile(count));
    this.operations = run.catch(() => undefined);
    return run;
  }

  /**
   * Starts no worker from now on. Workers an operation in flight has started are already in the pool, so
   * `drainAll` stops them too.
   */
  close(): void {
    this.closed = true;
  }

  /** Sends `signal` to every running worker (a stop during the start uses it to end the waits). */
  signalAll(signal: NodeJS.Signals): void {
    for (const slot of this.slots) slot.child.signal(signal);
  }

  /** Resolves once every worker has exited, or after `graceMs`, whichever comes first. */
  async awaitExits(graceMs: number): Promise<void> {
    const running = this.slots.filter((s) => s.info.state !== 'exited');
    if (running.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, graceMs);
    });
    await Promise.race([Promise.all(running.map((s) => s.child.exited)), grace]);
    clearTimeout(timer);
  }

  /** SIGTERM to every worker still running (each finishes its share and leaves), awaiting their exits. */
  async drainAll(): Promise<void> {
    const remaining = this.slots.filter((s) => s.info.state !== 'exited');
    if (remaining.length === 0) return;
    this.options.log(`stopping ${remaining.map((s) => s.info.id).join(', ')}`);
    await Promise.all(remaining.map((slot) => this.drain(slot)));
  }

  private async reconcile(count: number): Promise<void> {
    if (this.closed) return;
    const live = this.slots.filter((s) => s.info.state === 'starting' || s.info.state === 'running');
    if (count > live.length) {
      const ids = Array.from({ length: count - live.length }, () => `worker-${this.nextWorker++}`);
      await this.options.credentials?.issueWorkers(ids);
      const started = ids.map((id) => this.spawn(id));
      await Promise.all(started.map((slot) => this.awaitReady(slot)));
    } else if (count < live.length) {
      const newestFirst = live.slice(count).reverse();
      this.options.log(`draining ${newestFirst.map((s) => s.info.id).join(', ')}`);
      await Promise.all(newestFirst.map((slot) => this.drain(slot)));
    }
  }

  private spawn(id: string): WorkerSlot {
    const { options } = this;
    const args = ['worker', '--coordinator', options.coordinator, '--id', id];
    if (options.credentials) args.push('--tls-dir', options.credentials.dir);
    if (options.backend !== undefined) args.push('--backend', options.backend);
    if (options.natsCredentialsFile !== undefined) args.push('--nats-credentials', options.natsCredentialsFile);
    const child = ManagedChild.spawn({
      name: id,
      command: options.shardwise.command,
      args: [...options.shardwise.args, ...args],
      // Workers on one machine share its cores: one compute thread each unless OMP_NUM_THREADS says
      // otherwise, as torchrun does for the processes it starts.
      env: { [THREADS_ENV_VAR]: '1', ...options.env },
      onLine: (line) => {
        if (options.workerOutput === 'all' || !ROUTINE_WORKER_LINE.test(line)) options.output(`[${id}] ${line}`);
      },
    });
    const slot: WorkerSlot = { info: { id, pid: child.pid, state: 'starting' }, child };
    this.slots.push(slot);
    void child.exited.then((status) => {
      const wasDraining = slot.info.state === 'draining';
      slot.info.state = 'exited';
      slot.info.exit = status;
      if (wasDraining || !options.reportExits()) return;
      if (exitCodeOf(status) === 0) {
        // Told to stop by the coordinator (job finished, or it asked this worker to drain).
        options.log(`${id} left (${describeExit(status)})`);
      } else {
        options.log(
          `${id} exited (${describeExit(status)}); not restarted: its share is redone by the others, and ` +
            '`shardwise scale` starts a replacement',
        );
      }
    });
    return slot;
  }

  private async awaitReady(slot: WorkerSlot): Promise<void> {
    const ready = slot.child.waitForLine(WORKER_READY_PATTERN, {
      what: 'the worker ready line',
      timeoutMs: this.options.workerReadyTimeoutMs,
    });
    // A worker keeps retrying a coordinator that is gone, so its wait must end when the coordinator does.
    const coordinatorGone = this.options.coordinatorExited.then((status) => {
      throw new LauncherError(`the coordinator exited (${describeExit(status)}) while ${slot.info.id} was starting`);
    });
    const match = await Promise.race([ready, coordinatorGone]);
    slot.info.ready = workerReadyFrom(match);
    if (slot.info.state === 'starting') slot.info.state = 'running';
    this.options.log(`${slot.info.id} ready (pid ${slot.info.pid}), metrics ${slot.info.ready.metrics}`);
  }

  private async drain(slot: WorkerSlot): Promise<void> {
    if (slot.info.state === 'exited') return;
    slot.info.state = 'draining';
    const status = await slot.child.stop({ graceMs: this.options.stopGraceMs });
    this.options.log(`${slot.info.id} left (${describeExit(status)})`);
  }
}

/** `exit code 3`, `signal SIGKILL`, or why it never started. */
export function describeExit(status: ExitStatus): string {
  if (status.error) return `could not start: ${status.error.message}`;
  return status.signal !== null ? `signal ${status.signal}` : `exit code ${status.code}`;
}
