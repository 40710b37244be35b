import { BusEventType, EventBus, type EventSubscription, EventVerifier } from '../common';
import { statusPageUrl } from '../status';
import { exitCodeOf, type ExitStatus, ManagedChild } from './child-process';
import { type ClusterOptions, type CompiledClusterOptions, compileClusterOptions } from './cluster-options';
import { ClusterCredentials } from './cluster-credentials';
import { withCoordinatorHeapCap } from './coordinator-heap';
import { LauncherError } from './errors';
import { type LocalNats, type LocalNatsAccess, startLocalNats } from './nats';
import {
  COORDINATOR_DONE_PATTERN,
  COORDINATOR_READY_PATTERN,
  type CoordinatorReady,
  coordinatorReadyFrom,
} from './ready-lines';
import { describeExit, type WorkerInfo, WorkerPool } from './worker-pool';

/** Why `start()` rejects when `stop()` came first. */
const STOPPED_WHILE_STARTING = 'stopped while starting';
/** nats-server's informational lines (start banner, shutdown); warnings and errors are forwarded. */
const NATS_INFO_LINE = /\[INF\]/;

/** The launcher's lifecycle. `draining`: stopping its children in order. */
export type ClusterState = 'starting' | 'running' | 'draining' | 'stopped' | 'failed';

/**
 * A whole shardwise job on this machine: a nats-server, the coordinator and N worker processes, each a
 * real child process speaking the real protocols (gRPC on loopback, NATS), so what runs here is what runs
 * in a cluster.
 *
 * Order matters in both directions. Start: nats-server (ready when it says so), the coordinator (ready at
 * its ready line, which names its gRPC address), then the workers pointed at it. Stop (`stop()`, Ctrl-C):
 * workers first with SIGTERM (each finishes its share and leaves), then the coordinator (SIGTERM: it
 * checkpoints), then nats-server; each escalates to SIGKILL after `stopGraceMs`.
 *
 * Scaling: the launcher subscribes to the job's bus and reconciles to each `scale` event (published by
 * the coordinator on `shardwise scale`): it starts workers, or drains the newest ones with SIGTERM.
 * It restarts nothing on its own: a worker that dies is logged and left dead (the coordinator redoes its
 * share), and the next `scale` event, even to the same count, starts a replacement. When the coordinator
 * exits, the workers get `workerExitGraceMs` to leave on their own (it told them STOP), then SIGTERM.
 */
export class LocalCluster {
  private clusterState: ClusterState = 'starting';
  private pool: WorkerPool | undefined;
  private nats: LocalNats | undefined;
  private credentials: ClusterCredentials | undefined;
  private bus: EventBus | undefined;
  private subscription: EventSubscription | undefined;
  private coordinatorChild: ManagedChild | undefined;
  private coordinatorReady: CoordinatorReady | undefined;
  private shutdownPromise: Promise<number> | undefined;
  private startPromise: Promise<void> | undefined;
  private stopRequested = false;
  private sawDoneLine = false;

  private constructor(private readonly options: CompiledClusterOptions) {}

  /**
   * Checks the options and reads the job spec (a bad spec fails here), starting nothing yet: install
   * signal handlers that call `stop()`, then `start()`.
   */
  static create(options: ClusterOptions): LocalCluster {
    return new LocalCluster(compileClusterOptions(options));
  }

  /** `create` then `start`. */
  static async start(options: ClusterOptions): Promise<LocalCluster> {
    const cluster = LocalCluster.create(options);
    await cluster.start();
    return cluster;
  }

  /**
   * Starts nats-server, the coordinator and the workers; resolves once every one of them is ready. On any
   * failure (or a `stop()` meanwhile) it stops what it started, in order, and rejects.
   */
  start(): Promise<void> {
    this.startPromise ??= this.startAll().catch(async (err: unknown) => {
      await this.shutdown('failed').catch(() => undefined);
      // A child that ended because stop() signalled it is the stop's doing, not a failure of its own.
      if (this.stopRequested && !(err instanceof LauncherError && err.message === STOPPED_WHILE_STARTING)) {
        throw new LauncherError(STOPPED_WHILE_STARTING, { cause: err });
      }
      throw err;
    });
    return this.startPromise;
  }

  /** Where the lifecycle is. */
  get state(): ClusterState {
    return this.clusterState;
  }

  /** The coordinator's addresses and run directory (from its ready line). */
  get coordinator(): CoordinatorReady {
    if (!this.coordinatorReady) throw new LauncherError('the coordinator has not printed its ready line yet');
    return this.coordinatorReady;
  }

  /** Whether the coordinator printed its done line: the job finished (rather than stopped or failed). */
  get jobFinished(): boolean {
    return this.sawDoneLine;
  }

  /** The coordinator's process id. */
  get coordinatorPid(): number | undefined {
    return this.coordinatorChild?.pid;
  }

  /** The NATS URL, or undefined when running without the bus. */
  get natsUrl(): string | undefined {
    return this.nats?.url;
  }

  /** The bus's users and their credentials files (only the coordinator's may publish), with the bus. */
  get natsAccess(): LocalNatsAccess | undefined {
    return this.nats?.access;
  }

  /** The `--tls-dir` every process was given (removed when the cluster stops), or undefined with `insecure`. */
  get tlsDir(): string | undefined {
    return this.credentials?.dir;
  }

  /** A snapshot of every worker started so far, in start order (exited ones included). */
  workers(): WorkerInfo[] {
    return this.pool?.workers() ?? [];
  }

  /** Workers counted toward the desired number: started and not draining or exited. */
  liveWorkers(): WorkerInfo[] {
    return this.pool?.live() ?? [];
  }

  /**
   * Resolves with the launcher's exit status once everything has stopped: the coordinator's exit status
   * (128 + signal number if a signal ended it).
   */
  get finished(): Promise<number> {
    return this.shutdown('coordinator');
  }

  /**
   * Reconciles the live worker count to `count`: starts workers (resolving once they are ready), or sends
   * SIGTERM to the newest ones (resolving once they have left). Queued behind earlier scale operations.
   */
  scaleTo(count: number): Promise<void> {
    if (!this.pool) return Promise.reject(new LauncherError('scale: the coordinator is not ready yet'));
    return this.pool.scaleTo(count);
  }

  /**
   * Stops the cluster in order (workers drain, then the coordinator, then nats-server) and resolves
   * with the coordinator's exit status. Safe to call more than once and while it is already stopping.
   */
  stop(): Promise<number> {
    if (this.clusterState === 'starting' && this.startPromise) {
      // Interrupt the waits for ready lines: the start then fails and cleans up in order itself.
      this.stopRequested = true;
      this.pool?.close();
      this.coordinatorChild?.signal('SIGTERM');
      this.pool?.signalAll('SIGTERM');
      return this.startPromise.then(
        () => this.shutdown('requested'),
        () => this.shutdown('failed'),
      );
    }
    return this.shutdown('requested');
  }

  /** Last resort (a second Ctrl-C): SIGKILL every child at once. */
  kill(): void {
    this.pool?.signalAll('SIGKILL');
    this.coordinatorChild?.signal('SIGKILL');
    this.nats?.process.signal('SIGKILL');
  }

  private async startAll(): Promise<void> {
    const { options } = this;
    if (options.bus) {
      this.nats = await startLocalNats({
        command: options.natsCommand,
        secureJob: options.jobId,
        onLine: (line) => {
          if (!NATS_INFO_LINE.test(line)) options.output(`[nats] ${line}`);
        },
      });
      options.log(`nats-server: ${this.nats.url} (pid ${this.nats.process.pid})`);
      this.throwIfStopRequested();
    } else {
      options.log('running without the event bus (--no-bus): config changes reach workers over gRPC; `shardwise scale` will not start or stop workers here');
    }
    if (options.insecure) {
      options.log('warning: --insecure: plaintext gRPC and data plane, no join token; any local process can register, read the weights and join an allreduce');
    } else {
      this.credentials = await ClusterCredentials.create();
      options.log(`security: mutual TLS with a development CA and a join token in ${this.credentials.dir} (removed at the end)`);
      this.throwIfStopRequested();
    }
    const coordinator = this.spawnCoordinator();
    const ready = await coordinator.waitForLine(COORDINATOR_READY_PATTERN, {
      what: 'the coordinator ready line',
      timeoutMs: options.coordinatorReadyTimeoutMs,
    });
    this.coordinatorReady = coordinatorReadyFrom(ready);
    this.throwIfStopRequested();
    options.log(`coordinator: grpc ${this.coordinatorReady.grpc}, metrics ${this.coordinatorReady.metrics}, ` +
      `status page ${statusPageUrl(this.coordinatorReady.metrics)} (pid ${coordinator.pid})`);
    options.log(`run directory: ${this.coordinatorReady.runDir}`);
    this.pool = new WorkerPool({
      coordinator: this.coordinatorReady.grpc,
      coordinatorExited: coordinator.exited,
      shardwise: options.shardwise,
      env: options.env,
      backend: options.backend,
      natsCredentialsFile: this.nats?.access?.files.worker,
      credentials: this.credentials,
      workerOutput: options.workerOutput,
      output: options.output,
      log: options.log,
      workerReadyTimeoutMs: options.workerReadyTimeoutMs,
      stopGraceMs: options.stopGraceMs,
      reportExits: () => this.clusterState === 'running',
    });
    if (this.nats) await this.watchScaleEvents(this.nats.url);
    await this.scaleTo(options.workers);
    this.throwIfStopRequested();
    this.clusterState = 'running';
    options.log(
      `running ${options.workers} worker(s); change it with: shardwise scale --coordinator ${this.coordinatorReady.grpc}` +
        `${this.credentials ? ` --tls-dir ${this.credentials.dir}` : ''} --workers N`,
    );
  }

  private throwIfStopRequested(): void {
    if (this.stopRequested) throw new LauncherError(STOPPED_WHILE_STARTING);
  }

  private spawnCoordinator(): ManagedChild {
    const { options } = this;
    const args = ['coordinator', '--job', options.job];
    if (this.nats) args.push('--nats', this.nats.url);
    if (this.nats?.access) args.push('--nats-credentials', this.nats.access.files.coordinator);
    if (this.credentials) args.push('--tls-dir', this.credentials.dir);
    if (options.data !== undefined) args.push('--data', options.data);
    if (options.runsDir !== undefined) args.push('--runs-dir', options.runsDir);
    if (options.runDir !== undefined) args.push('--run-dir', options.runDir);
    for (const override of options.set) args.push('--set', override);
    if (options.backend !== undefined) args.push('--backend', options.backend);
    const child = ManagedChild.spawn({
      name: 'coordinator',
      command: options.shardwise.command,
      args: [...options.shardwise.args, ...args],
      env: withCoordinatorHeapCap(options.env, options.coordinatorHeapMb),
      stderr: options.coordinatorOutput === 'inherit' ? 'inherit' : 'pipe',
      onLine: (line) => {
        if (COORDINATOR_DONE_PATTERN.test(line)) this.sawDoneLine = true;
        options.output(`[coordinator] ${line}`);
      },
    });
    this.coordinatorChild = child;
    void child.exited.then((status) => {
      if (this.clusterState === 'running') {
        options.log(`the coordinator exited (${describeExit(status)})`);
        void this.shutdown('coordinator');
      }
    });
    return child;
  }

  private async watchScaleEvents(url: string): Promise<void> {
    const { options } = this;
    this.bus = await EventBus.connect({
      servers: url,
      jobId: options.jobId,
      name: 'launcher',
      credentials: this.nats?.access?.credentials.launcher,
      onError: (err) => options.log(`event bus: ${err.message}`),
    });
    this.subscription = await this.bus.subscribe((event) => {
      if (event.type !== BusEventType.Scale) return;
      if (this.clusterState !== 'running' && this.clusterState !== 'starting') return;
      options.log(`scale event: ${event.desiredWorkers} worker(s) wanted, ${this.liveWorkers().length} running`);
      // Not awaited: the subscription must keep delivering while workers start (a scale-up takes seconds).
      this.scaleTo(event.desiredWorkers).catch((err: unknown) => options.log(`scale to ${event.desiredWorkers} failed: ${(err as Error).message}`));
    }, { verifier: new EventVerifier({
      jobId: options.jobId,
      // A secure cluster starts workers only for a scale event the coordinator signed, not for anyone who
      // holds the coordinator's NATS password.
      key: this.credentials?.busKey(options.jobId),
      // Scale events carry the version in force rather than a new one: no configuration to replay into.
      versionInForce: () => -1,
      onUnverified: (error, first) => {
        // An --insecure cluster warned at start that its bus is open; a secure one logs each reason once.
        if (first && !error.accepted) options.log(`event bus: ${error.message}; further ones are not logged`);
      },
    }) });
  }

  /**
   * The one way down, whatever triggered it: `coordinator` (it exited, or someone awaits `finished`),
   * `requested` (stop, Ctrl-C) or `failed` (the start failed). Memoised, so every caller gets the same
   * outcome; `finished` only attaches to it, it does not start it.
   */
  private shutdown(reason: 'coordinator' | 'requested' | 'failed'): Promise<number> {
    if (this.shutdownPromise) return this.shutdownPromise;
    const coordinator = this.coordinatorChild;
    if (reason === 'coordinator' && coordinator?.running) {
      // Someone awaits `finished` while the coordinator still runs: wait for its exit, which comes back here.
      return coordinator.exited.then(() => this.shutdown('coordinator'));
    }
    this.shutdownPromise = this.stopAll(reason);
    return this.shutdownPromise;
  }

  private async stopAll(reason: 'coordinator' | 'requested' | 'failed'): Promise<number> {
    const { options } = this;
    const failed = reason === 'failed';
    this.clusterState = 'draining';
    if (this.pool) {
      this.pool.close();
      // After the coordinator's end the workers were told STOP; give them time to leave by themselves.
      if (reason === 'coordinator') await this.pool.awaitExits(options.workerExitGraceMs);
      await this.pool.drainAll();
    }
    let status: ExitStatus | undefined;
    if (this.coordinatorChild) {
      if (this.coordinatorChild.running) options.log('stopping the coordinator');
      status = await this.coordinatorChild.stop({ graceMs: options.stopGraceMs });
    }
    await this.subscription?.stop().catch(() => undefined);
    await this.bus?.close().catch(() => undefined);
    if (this.nats) await this.nats.process.stop({ graceMs: options.stopGraceMs });
    this.credentials?.remove();
    const code = status ? exitCodeOf(status) : 1;
    this.clusterState = failed || code !== 0 ? 'failed' : 'stopped';
    if (!failed) options.log(`stopped; the coordinator's exit status was ${code}`);
    return code;
  }
}
