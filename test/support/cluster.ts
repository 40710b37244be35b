/**
 * The distributed integration tests' harness: a real nats-server, real coordinator and worker processes
 * (`shardwise coordinator` / `shardwise worker`, gRPC on loopback), a tiny generated CIFAR-format dataset,
 * and the checks every such test makes on the run directory: exactly-once per epoch, replicas agreeing,
 * training finished, weights equal to the single-process reference.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import {
  COORDINATOR_DONE_PATTERN,
  COORDINATOR_READY_PATTERN,
  type CoordinatorReady,
  coordinatorReadyFrom,
  exitCodeOf,
  ManagedChild,
  WORKER_READY_PATTERN,
  type WorkerReady,
  workerReadyFrom,
} from '../../launcher';
import { THREADS_ENV_VAR } from '../../common/compute';
import { LOG_STEPS_ENV } from '../../worker/step-progress';
import { compiledShardwise } from './compiled-shardwise';
import { pollUntil, withDeadline } from './deadline';
import { getFreePort } from './free-port';
import { NatsServer } from './nats-server';
import { DATASET_IMAGES, datasetShape, writeSignalCifar } from './cluster-data';

/** Backend of every process (and of the in-process reference): the same kernels, so results can match. */
export const TEST_BACKEND = 'wasm';
/** Set SHARDWISE_TEST_VERBOSE=1 to see every child's output live, prefixed with its name. */
const VERBOSE = process.env.SHARDWISE_TEST_VERBOSE === '1';
/** Coordinator or worker start (tfjs, model, data) on a loaded 2-core machine. */
const START_TIMEOUT_MS = 90_000;

/** A coordinator process and what its ready line said. */
export interface CoordinatorProc {
  child: ManagedChild;
  ready: CoordinatorReady;
}

/** A worker process and what its ready line said. */
export interface WorkerProc {
  child: ManagedChild;
  ready: WorkerReady;
}

/** Freezes processes (SIGSTOP) so the job cannot move on while a fault is injected; `resume` thaws them. */
export function pause(children: readonly ManagedChild[]): { resume: () => void } {
  for (const c of children) c.signal('SIGSTOP');
  return { resume: () => children.forEach((c) => c.signal('SIGCONT')) };
}

/**
 * Resolves once `child` is stopped (state T in /proc), as a failpoint that logs its line and then stops its
 * own process leaves it: a SIGCONT sent between the two would be lost, and the child stay stopped for good.
 */
export async function untilStopped(child: ManagedChild): Promise<void> {
  const state = (): string | undefined => {
    try {
      return readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1]?.[0];
    } catch {
      return undefined; // exited: the wait below names it
    }
  };
  await pollUntil(() => (state() === 'T' ? true : undefined), { timeoutMs: 30_000, intervalMs: 5, what: `${child.name} to stop itself` });
}

/** Flags of a `shardwise coordinator` start. */
export interface CoordinatorStart {
  job: string;
  /** `--run-dir`: resume from its checkpoints. */
  runDir?: string;
  /** gRPC port; fix it to restart a coordinator where its workers look for it. @default 0 */
  port?: number;
  /** Connect to the harness's nats-server. @default true */
  bus?: boolean;
  set?: readonly string[];
  /** Extra environment variables of the process. */
  env?: NodeJS.ProcessEnv;
  /** `--split`: micro-batches per worker and step, forced. @default an even cut */
  split?: readonly number[];
  /** More flags, e.g. `--tls-dir` and a secured bus's `--nats` and `--nats-credentials` (with `bus: false`). */
  args?: readonly string[];
}

/**
 * One test's world: a temp folder with the dataset and job files, a nats-server, and every process the
 * test started, all of which `dispose()` stops (so a failed test leaves nothing running).
 */
export class ClusterHarness {
  readonly nats: NatsServer;
  readonly dir: string;
  readonly dataDir: string;
  readonly runsDir: string;
  /** Training images per epoch of the tests' job on the generated dataset (what exactly-once counts). */
  trainImages = 0;
  /** Global steps per epoch of the tests' job on the generated dataset. */
  stepsPerEpoch = 0;
  private readonly children: ManagedChild[] = [];
  private readonly shardwise = compiledShardwise();

  private constructor(nats: NatsServer, dir: string, dataDir?: string) {
    this.nats = nats;
    this.dir = dir;
    this.dataDir = dataDir ?? path.join(dir, 'cifar');
    this.runsDir = path.join(dir, 'runs');
  }

  /**
   * A temp folder with a generated dataset of `images` images (default DATASET_IMAGES), or the given
   * CIFAR-10 folder `dataDir`, and a fresh nats-server.
   */
  static async create(options: { images?: number; dataSeed?: number; dataDir?: string } = {}): Promise<ClusterHarness> {
    const nats = await NatsServer.start();
    const harness = new ClusterHarness(nats, mkdtempSync(path.join(tmpdir(), 'shardwise-dist-')), options.dataDir);
    if (!options.dataDir) {
      mkdirSync(harness.dataDir);
      writeSignalCifar(harness.dataDir, options.images ?? DATASET_IMAGES, options.dataSeed ?? 11);
      Object.assign(harness, await datasetShape(harness.dataDir));
    }
    return harness;
  }

  /** Writes a job spec file; `runsDir` and `data.dir` are set by the harness through flags. */
  writeJob(name: string, yaml: string): string {
    const file = path.join(this.dir, `${name}.yaml`);
    writeFileSync(file, yaml);
    return file;
  }

  /** Starts `shardwise coordinator` and resolves at its ready line. */
  async startCoordinator(start: CoordinatorStart): Promise<CoordinatorProc> {
    const args = ['coordinator', '--job', start.job, '--data', this.dataDir, '--runs-dir', this.runsDir];
    args.push('--host', '127.0.0.1', '--port', String(start.port ?? 0), '--metrics-port', '0', '--backend', TEST_BACKEND);
    if (start.bus ?? true) args.push('--nats', this.nats.url);
    if (start.runDir) args.push('--run-dir', start.runDir);
    for (const override of start.set ?? []) args.push('--set', override);
    if (start.split) args.push('--split', start.split.join(','));
    args.push(...(start.args ?? []));
    const child = this.spawn('coordinator', args, start.env);
    const match = await child.waitForLine(COORDINATOR_READY_PATTERN, { what: 'the coordinator ready line', timeoutMs: START_TIMEOUT_MS });
    return { child, ready: coordinatorReadyFrom(match) };
  }

  /** Starts `shardwise worker --id <id>` (plus `args`) against `coordinator` without waiting for it. */
  launchWorker(coordinator: string, id: string, args: readonly string[] = [], name = id, env: NodeJS.ProcessEnv = {}): ManagedChild {
    return this.spawn(name, ['worker', '--coordinator', coordinator, '--id', id, '--metrics-port', '0', '--backend', TEST_BACKEND, ...args], env);
  }

  /** Starts any `shardwise` command (`args` after the program); like every child, stopped at dispose. */
  launch(name: string, args: string[]): ManagedChild {
    return this.spawn(name, args);
  }

  /** Starts `shardwise cluster` with 2 workers on the harness's data and runs folder, plus `extra` flags. */
  launchCluster(job: string, extra: readonly string[] = []): ManagedChild {
    return this.spawn('shardwise-cluster', ['cluster', '--job', job, '--workers', '2', '--data', this.dataDir,
      '--runs-dir', this.runsDir, '--backend', TEST_BACKEND, ...extra]);
  }

  /** Starts `shardwise worker --id <id>` against `coordinator` and resolves at its ready line. */
  async startWorker(coordinator: string, id: string, env: NodeJS.ProcessEnv = {}): Promise<WorkerProc> {
    const child = this.launchWorker(coordinator, id, [], id, env);
    const match = await child.waitForLine(WORKER_READY_PATTERN, { what: 'the worker ready line', timeoutMs: START_TIMEOUT_MS });
    return { child, ready: workerReadyFrom(match) };
  }

  /** Starts `count` workers `worker-1..count` in parallel. */
  startWorkers(coordinator: string, count: number, firstIndex = 1): Promise<WorkerProc[]> {
    return Promise.all(Array.from({ length: count }, (_, k) => this.startWorker(coordinator, `worker-${firstIndex + k}`)));
  }

  /** A free loopback port for a coordinator that must come back on the same address. */
  freePort(): Promise<number> {
    return getFreePort('127.0.0.1');
  }

  /**
   * Waits for the job to finish: the coordinator prints its done line and exits 0, and every worker
   * leaves with 0. Fails with the processes' output otherwise.
   */
  async awaitFinished(coordinator: CoordinatorProc, workers: readonly Pick<WorkerProc, 'child'>[], timeoutMs = 240_000): Promise<void> {
    await coordinator.child.waitForLine(COORDINATOR_DONE_PATTERN, { what: 'the coordinator done line', timeoutMs });
    const status = await coordinator.child.exited;
    assert.equal(exitCodeOf(status), 0, `coordinator exit status; its output:\n${coordinator.child.tail(60)}`);
    for (const worker of workers) {
      const exit = await withDeadline(worker.child.exited, 60_000, `${worker.child.name} to exit after STOP`);
      assert.equal(exitCodeOf(exit), 0, `${worker.child.name} exit status; its output:\n${worker.child.tail(60)}`);
    }
  }

  /** Every child's recent output, for a failure message. */
  outputs(lines = 40): string {
    return this.children.map((c) => `--- ${c.name} (pid ${c.pid}) ---\n${c.tail(lines)}`).join('\n');
  }

  /** Stops every process still running (SIGTERM, SIGKILL after 5 s), the nats-server, and removes the folder. */
  async dispose(): Promise<void> {
    await Promise.all(this.children.map((c) => c.stop({ graceMs: 5000 })));
    await this.nats.stop();
    if (process.env.SHARDWISE_TEST_KEEP !== '1') rmSync(this.dir, { recursive: true, force: true });
  }

  private spawn(name: string, args: string[], env: NodeJS.ProcessEnv = {}): ManagedChild {
    const child = ManagedChild.spawn({
      name,
      command: this.shardwise.command,
      args: [...this.shardwise.args, ...args],
      // One compute thread per process unless a test asks for more (--threads): they share the machine.
      // Workers log every step (--log-steps): the fault tests act on those lines.
      env: { ...process.env, SHARDWISE_DEBUG: '1', [THREADS_ENV_VAR]: '1', [LOG_STEPS_ENV]: '1', ...env },
      onLine: VERBOSE ? (line) => process.stderr.write(`[${name}] ${line}\n`) : undefined,
    });
    this.children.push(child);
    return child;
  }
}
