import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ConfigError, loadJobSpec } from '../common';
import { coordinatorHeapCapMb } from './coordinator-heap';
import { withMallocSettings } from './malloc-env';

/** How to run the `shardwise` command line as a child process. */
export interface ShardwiseCommand {
  command: string;
  /** Arguments before the subcommand (e.g. `--import tsx cli/index.ts`). */
  args: readonly string[];
}

/** What `shardwise cluster` is asked to run. */
export interface ClusterOptions {
  /** Job spec file (YAML or JSON), passed to the coordinator as is. */
  job: string;
  /** Workers started at once. @default the job's `distributed.desiredWorkers` */
  workers?: number;
  /** CIFAR-10 folder for the coordinator (`--data`). @default the job's data.dir, CIFAR10_DIR, then download */
  data?: string;
  /** Parent folder of run directories (`--runs-dir`). @default the job's output.runsDir */
  runsDir?: string;
  /** Run directory to use or resume from (`--run-dir`). @default a new one under runsDir */
  runDir?: string;
  /** `key.path=value` overrides of the job spec, given to the coordinator. @default [] */
  set?: readonly string[];
  /** `--backend` of the coordinator and every worker. @default left to them ('auto') */
  backend?: string;
  /**
   * Start a nats-server and connect the coordinator to it. Without it training is still correct (workers
   * fetch each config change over gRPC) but slower to react, and `shardwise scale` cannot reach the
   * launcher: it keeps the workers it has. @default true
   */
  bus?: boolean;
  /** The NATS server binary. @default 'nats-server' */
  natsCommand?: string;
  /** How to start shardwise. @default this checkout's cli/index.ts under the same node, through tsx */
  shardwise?: ShardwiseCommand;
  /**
   * `inherit`: the coordinator writes straight to this terminal (its progress bars redraw in place);
   * `prefix`: its lines are read and forwarded as `[coordinator] ...` (a log file, CI, tests).
   * @default 'inherit' when stderr is a terminal, else 'prefix'
   */
  coordinatorOutput?: 'inherit' | 'prefix';
  /**
   * `all`: every worker line is forwarded; `quiet`: a worker's routine per-share lines (`step 12 (epoch 1):
   * ...`, `evaluation after epoch ...`) are dropped, so they do not scroll the coordinator's progress bars
   * away; joins, leaves, warnings and errors still come through.
   * @default 'quiet' when the coordinator writes to the terminal (`coordinatorOutput: 'inherit'`), else 'all'
   */
  workerOutput?: 'all' | 'quiet';
  /** Receives forwarded child lines (`[worker-1] ...`). @default writes to stderr */
  output?: (line: string) => void;
  /** Receives the launcher's own lines. @default writes `[cluster] ...` to stderr */
  log?: (line: string) => void;
  /** A worker not ready this long after it was started fails the start (or the scale-up). @default 120000 */
  workerReadyTimeoutMs?: number;
  /** Limit on the coordinator's start (model, data, a possible download); 0 waits while it runs. @default 0 */
  coordinatorReadyTimeoutMs?: number;
  /** After the coordinator has exited, how long workers get to leave on their own before SIGTERM. @default 30000 */
  workerExitGraceMs?: number;
  /** Between SIGTERM and SIGKILL for each child when stopping. @default 30000 */
  stopGraceMs?: number;
  /** Environment of every child, with glibc malloc settings it does not set itself (malloc-env.ts). @default process.env */
  env?: NodeJS.ProcessEnv;
  /**
   * Plaintext gRPC and data plane, no certificates, no join token: any local process can join the job.
   * Otherwise the launcher makes a development CA, certificates and a join token (ClusterCredentials) and
   * every process speaks mutual TLS. @default false
   */
  insecure?: boolean;
}

/** `ClusterOptions` with the defaults filled in and the job's name read from its spec. */
export interface CompiledClusterOptions {
  job: string;
  /** The job's name: its bus subject token (`job_id`). */
  jobId: string;
  workers: number;
  data?: string;
  runsDir?: string;
  runDir?: string;
  set: readonly string[];
  backend?: string;
  bus: boolean;
  natsCommand: string;
  shardwise: ShardwiseCommand;
  coordinatorOutput: 'inherit' | 'prefix';
  workerOutput: 'all' | 'quiet';
  output: (line: string) => void;
  log: (line: string) => void;
  workerReadyTimeoutMs: number;
  coordinatorReadyTimeoutMs: number;
  workerExitGraceMs: number;
  stopGraceMs: number;
  env: NodeJS.ProcessEnv;
  insecure: boolean;
  /** The coordinator's old-generation cap in MiB, from the job's maxWorkers (coordinator-heap.ts). */
  coordinatorHeapMb: number;
}

/** Largest worker count the launcher starts on one machine; beyond it is almost surely a typo. */
export const MAX_LOCAL_WORKERS = 64;

/**
 * The shardwise command of this checkout: the same node binary running the entry point beside this file,
 * so it works from any working directory (the children keep the user's, so relative paths in flags still
 * mean what the user meant). Compiled (`npm run build`, what the images run) that is `cli/index.js` under
 * dist/; from source it is `cli/index.ts` with tsx loaded by absolute URL.
 */
export function defaultShardwiseCommand(): ShardwiseCommand {
  if (path.extname(__filename) === '.js') {
    return { command: process.execPath, args: [path.resolve(__dirname, '..', 'cli', 'index.js')] };
  }
  const tsx = pathToFileURL(require.resolve('tsx')).href;
  return { command: process.execPath, args: ['--import', tsx, path.resolve(__dirname, '..', 'cli', 'index.ts')] };
}

function nonNegativeMs(field: string, value: number | undefined, fallback: number): number {
  const ms = value ?? fallback;
  if (!Number.isFinite(ms) || ms < 0) throw new ConfigError(field, `expected milliseconds >= 0, got ${ms}`);
  return ms;
}

/**
 * Fills the defaults of `ClusterOptions` and checks them; reads the job spec (with the overrides) so a bad
 * spec fails here, before any process starts, and to learn the job's name and desired worker count.
 * @throws ConfigError naming the field; JobSpecError for a bad job spec.
 */
export function compileClusterOptions(options: ClusterOptions): CompiledClusterOptions {
  const set = options.set ?? [];
  const spec = loadJobSpec(options.job, set);
  const workers = options.workers ?? spec.distributed.desiredWorkers;
  const most = Math.min(spec.distributed.maxWorkers, MAX_LOCAL_WORKERS);
  if (!Number.isInteger(workers) || workers < 1 || workers > most) {
    const limit = most === spec.distributed.maxWorkers ? `the job's distributed.maxWorkers` : 'the local limit';
    throw new ConfigError('workers', `expected an integer from 1 to ${most} (${limit}), got ${workers}`);
  }
  const coordinatorOutput = options.coordinatorOutput ?? (process.stderr.isTTY ? 'inherit' : 'prefix');
  const write = (line: string): void => {
    process.stderr.write(`${line}\n`);
  };
  return {
    job: options.job,
    jobId: spec.name,
    workers,
    coordinatorHeapMb: coordinatorHeapCapMb(spec.distributed.maxWorkers),
    data: options.data,
    runsDir: options.runsDir,
    runDir: options.runDir,
    set,
    backend: options.backend,
    bus: options.bus ?? true,
    natsCommand: options.natsCommand ?? 'nats-server',
    shardwise: options.shardwise ?? defaultShardwiseCommand(),
    coordinatorOutput,
    workerOutput: options.workerOutput ?? (coordinatorOutput === 'inherit' ? 'quiet' : 'all'),
    output: options.output ?? write,
    log: options.log ?? ((line) => write(`[cluster] ${line}`)),
    workerReadyTimeoutMs: nonNegativeMs('workerReadyTimeoutMs', options.workerReadyTimeoutMs, 120_000),
    coordinatorReadyTimeoutMs: nonNegativeMs('coordinatorReadyTimeoutMs', options.coordinatorReadyTimeoutMs, 0),
    workerExitGraceMs: nonNegativeMs('workerExitGraceMs', options.workerExitGraceMs, 30_000),
    stopGraceMs: nonNegativeMs('stopGraceMs', options.stopGraceMs, 30_000),
    env: withMallocSettings(options.env ?? process.env),
    insecure: options.insecure ?? false,
  };
}
