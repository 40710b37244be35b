import { defaultShardwiseCommand, exitCodeOf, LocalCluster, ManagedChild, withMallocSettings } from '../launcher';
import { processCpuMs } from './process-cpu';
import { delta, scrape, type Scrape } from './scaling-scrape';
import { StepClock } from './scaling-steps';

/** Longest a process may take to start (tsx, tfjs, the model, the data) on a loaded 2-core machine. */
const START_TIMEOUT_MS = 120_000;
/** Longest the bench waits for one step record, and for a finished job to wind down. */
const STEP_TIMEOUT_MS = 120_000;
const FINISH_TIMEOUT_MS = 120_000;
/** Between SIGTERM and SIGKILL when the bench stops its processes. */
const STOP_GRACE_MS = 10_000;

const DATA_LINE = /data: (\d+) training and \d+ validation images/;
const BACKEND_LINE = /shardwise compute: backend .*/;
const RUN_DIR_LINE = /run directory: (.+)$/;

/** What one run is asked to do and how much of it is measured. */
export interface RunPlan {
  /** Job spec file. */
  job: string;
  dataDir: string;
  runsDir: string;
  /** The job's global batch (each measured step consumed that many samples). */
  batchSize: number;
  /** Steps left out at the start: the clock starts when step `warmupSteps - 1` has been applied. */
  warmupSteps: number;
  /** `--set` overrides. @default [] */
  set?: readonly string[];
  /** `--backend` of every process. @default left to them ('auto') */
  backend?: string;
  /** Plaintext, as `shardwise cluster --insecure`. @default false: mutual TLS, as `shardwise cluster` runs */
  insecure?: boolean;
  /** Receives every child line (BENCH_DEBUG). */
  output?: (line: string) => void;
  /** Registers an undo for a signal handler while the run is live; returns its unregistration. */
  track: (stop: () => Promise<unknown>) => () => void;
}

/** Metrics of one process at both ends of the measured window. */
export interface ScrapePair {
  name: string;
  before: Scrape;
  after: Scrape;
}

/** One run's steady state: full steps between two step records, timed by {@link StepClock}. */
export interface RunMeasurement {
  steps: number;
  samples: number;
  seconds: number;
  /** Wall milliseconds of each measured step, in order (see {@link StepClock.stepIntervalsMs}). */
  stepMs: number[];
  /** The `shardwise compute: backend ...` line of the first process that printed one. */
  backendLine?: string;
  /** The coordinator's and every worker's metrics at both ends of the window (distributed runs). */
  scrapes: ScrapePair[];
  /** CPU time (every thread) used over the window, ms, by role. */
  cpuMs: ProcessCpu;
}

/**
 * The processes a run's CPU time is counted by: `coordinator`, `workers` (all of them together) and
 * `trainer` (`train --local`) are child processes; `launcher` is this process, which runs the cluster
 * and reads every child's output.
 */
export type CpuRole = 'coordinator' | 'workers' | 'trainer' | 'launcher';

/** CPU milliseconds by role over a measured window; a role the run has not is absent. */
export type ProcessCpu = Partial<Record<CpuRole, number>>;

/** The child processes whose CPU time a window measures, by role. */
type RolePids = Partial<Record<Exclude<CpuRole, 'launcher'>, readonly number[]>>;

/** CPU milliseconds used so far by each role's processes, and by this process (the launcher). */
function cpuMsByRole(pids: RolePids): ProcessCpu {
  const own = process.cpuUsage();
  const used: ProcessCpu = { launcher: (own.user + own.system) / 1000 };
  for (const [role, list] of Object.entries(pids) as Array<[CpuRole, readonly number[]]>) {
    used[role] = list.reduce((ms, pid) => ms + processCpuMs(pid), 0);
  }
  return used;
}

/** The pid of a process the bench started, which has one once it runs. */
function pidOf(what: string, pid: number | undefined): number {
  if (pid === undefined) throw new Error(`${what} has no process id to read its CPU time from`);
  return pid;
}

/** `after - before`, role by role. */
function cpuSpent(before: ProcessCpu, after: ProcessCpu): ProcessCpu {
  const spent: ProcessCpu = {};
  for (const role of Object.keys(after) as CpuRole[]) spent[role] = (after[role] ?? 0) - (before[role] ?? 0);
  return spent;
}

/** CPU milliseconds of every process of the run together. */
export function totalCpuMs(cpu: ProcessCpu): number {
  return Object.values(cpu).reduce((sum, ms) => sum + ms, 0);
}

/** Samples per second over the window. */
export function imagesPerSecond(m: RunMeasurement): number {
  return m.samples / m.seconds;
}

/** Wall milliseconds per step over the window. */
export function msPerStep(m: RunMeasurement): number {
  return (1000 * m.seconds) / m.steps;
}

/** The `q` quantile (0..1) of `values` (nearest rank). */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) throw new Error('quantile of no values');
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

/** Lines a run's children printed: the data and backend lines are read from them. */
class OutputLines {
  backendLine?: string;
  trainImages?: number;
  constructor(private readonly forward?: (line: string) => void) {}

  readonly onLine = (line: string): void => {
    this.backendLine ??= BACKEND_LINE.exec(line)?.[0];
    const data = DATA_LINE.exec(line);
    if (data) this.trainImages = Number(data[1]);
    this.forward?.(line);
  };
}

/**
 * The last step of epoch 0 with a full batch: the window ends there, before the epoch's evaluation
 * (and before a short last batch).
 */
function lastFullStep(lines: OutputLines, batchSize: number, warmupSteps: number): number {
  if (lines.trainImages === undefined) throw new Error('no "data: N training ..." line in the output');
  const last = Math.floor(lines.trainImages / batchSize) - 1;
  if (last < warmupSteps) {
    throw new Error(`${lines.trainImages} training images make ${last + 1} full steps of ${batchSize}; ` +
      `expected more than the ${warmupSteps} warm-up steps`);
  }
  return last;
}

/** Times steps `warmupSteps .. last` of the run whose metrics.jsonl is in `runDir`, scraping at both ends. */
async function measureWindow(
  runDir: string,
  plan: RunPlan,
  last: number,
  metricsUrls: ReadonlyArray<{ name: string; url: string }>,
  pids: RolePids,
): Promise<{ steps: number; seconds: number; stepMs: number[]; scrapes: ScrapePair[]; cpuMs: ProcessCpu }> {
  const clock = new StepClock(runDir);
  try {
    const scrapeAll = (): Promise<Scrape[]> => Promise.all(metricsUrls.map((m) => scrape(m.url)));
    const start = await clock.waitFor(plan.warmupSteps - 1, STEP_TIMEOUT_MS);
    const cpuBefore = cpuMsByRole(pids);
    const before = await scrapeAll();
    const end = await clock.waitFor(last, STEP_TIMEOUT_MS);
    const cpuAfter = cpuMsByRole(pids);
    const after = await scrapeAll();
    return {
      steps: last - (plan.warmupSteps - 1),
      seconds: (end.atMs - start.atMs) / 1000,
      stepMs: clock.stepIntervalsMs(plan.warmupSteps - 1, last),
      scrapes: metricsUrls.map((m, i) => ({ name: m.name, before: before[i], after: after[i] })),
      cpuMs: cpuSpent(cpuBefore, cpuAfter),
    };
  } finally {
    clock.close();
  }
}

/**
 * Runs the job on a local cluster of `workers` worker processes, exactly as `shardwise cluster` does
 * (nats-server, `shardwise coordinator`, `shardwise worker` x N, gRPC on loopback), with minWorkers = N
 * so that every measured step is shared by all of them. The job runs to its end; every process is
 * stopped on the way out, also on failure.
 */
export async function runCluster(plan: RunPlan, workers: number): Promise<RunMeasurement> {
  const lines = new OutputLines(plan.output);
  const cluster = LocalCluster.create({
    job: plan.job,
    workers,
    data: plan.dataDir,
    runsDir: plan.runsDir,
    set: [...(plan.set ?? []), `distributed.minWorkers=${workers}`],
    backend: plan.backend,
    insecure: plan.insecure,
    coordinatorOutput: 'prefix',
    workerOutput: 'all',
    output: lines.onLine,
    log: lines.onLine,
    workerReadyTimeoutMs: START_TIMEOUT_MS,
    coordinatorReadyTimeoutMs: START_TIMEOUT_MS,
    workerExitGraceMs: STOP_GRACE_MS,
    stopGraceMs: STOP_GRACE_MS,
  });
  const untrack = plan.track(() => cluster.stop());
  try {
    await cluster.start();
    const last = lastFullStep(lines, plan.batchSize, plan.warmupSteps);
    const urls = [
      { name: 'coordinator', url: cluster.coordinator.metrics },
      ...cluster.workers().map((w) => ({ name: w.id, url: w.ready?.metrics ?? '' })),
    ];
    const pids: RolePids = {
      coordinator: [pidOf('the coordinator', cluster.coordinatorPid)],
      workers: cluster.workers().map((w) => pidOf(w.id, w.pid)),
    };
    const window = await measureWindow(cluster.coordinator.runDir, plan, last, urls, pids);
    const code = await withTimeout(cluster.finished, FINISH_TIMEOUT_MS, 'the cluster to finish the job');
    if (code !== 0 || !cluster.jobFinished) throw new Error(`the cluster ended with status ${code} (job finished: ${cluster.jobFinished})`);
    return { ...window, samples: window.steps * plan.batchSize, backendLine: lines.backendLine };
  } finally {
    await cluster.stop().catch(() => undefined);
    untrack();
  }
}

/** Runs the job in one process (`shardwise train --local`): the single-process reference. */
export async function runLocal(plan: RunPlan): Promise<RunMeasurement> {
  const lines = new OutputLines(plan.output);
  const shardwise = defaultShardwiseCommand();
  const args = ['train', '--local', '--job', plan.job, '--data', plan.dataDir, '--runs-dir', plan.runsDir];
  for (const override of plan.set ?? []) args.push('--set', override);
  if (plan.backend !== undefined) args.push('--backend', plan.backend);
  const child = ManagedChild.spawn({
    name: 'train-local',
    command: shardwise.command,
    args: [...shardwise.args, ...args],
    // The malloc settings the cluster's processes get, so the reference is measured alike.
    env: withMallocSettings(process.env),
    onLine: (line) => lines.onLine(`[train-local] ${line}`),
  });
  const untrack = plan.track(() => child.stop({ graceMs: STOP_GRACE_MS }));
  try {
    const runDir = (await child.waitForLine(RUN_DIR_LINE, { what: 'the run directory line', timeoutMs: START_TIMEOUT_MS }))[1];
    const last = lastFullStep(lines, plan.batchSize, plan.warmupSteps);
    const window = await measureWindow(runDir, plan, last, [], { trainer: [pidOf('train --local', child.pid)] });
    const status = await withTimeout(child.exited, FINISH_TIMEOUT_MS, 'the local training to finish');
    if (exitCodeOf(status) !== 0) throw new Error(`shardwise train --local exited with ${exitCodeOf(status)}:\n${child.tail()}`);
    return { ...window, samples: window.steps * plan.batchSize, backendLine: lines.backendLine };
  } finally {
    await child.stop({ graceMs: STOP_GRACE_MS });
    untrack();
  }
}

/**
 * The coordinator's step phases over the window, in ms per step (its `shardwise_step_phase_duration_seconds`:
 * compute = handout of the critical share to the start of its push, transfer = the push, reduce = summing
 * and the optimizer, wait = the rest), and the slowest worker's mean compute per share (its
 * `shardwise_worker_share_phase_duration_seconds{phase="compute"}`: the forward/backward pass alone).
 */
export function phaseBreakdown(m: RunMeasurement): {
  phases: Record<string, number>;
  workerComputeMs: number;
  /** The slowest worker's phases, in ms per step. */
  workerPhases: Record<string, number>;
  /** The coordinator's bytes sent (samples, updates) and received (gradients) per step. */
  sentBytes: number;
  receivedBytes: number;
} {
  const coordinator = m.scrapes.find((s) => s.name === 'coordinator');
  if (!coordinator) throw new Error('no coordinator metrics were scraped');
  const steps = delta(coordinator.before, coordinator.after, 'shardwise_steps_total');
  const phases: Record<string, number> = {};
  for (const phase of ['compute', 'transfer', 'reduce', 'wait']) {
    phases[phase] = (1000 * delta(coordinator.before, coordinator.after, `shardwise_step_phase_duration_seconds_sum{phase="${phase}"}`)) / steps;
  }
  let workerComputeMs = 0;
  let workerPhases: Record<string, number> = {};
  for (const w of m.scrapes.filter((s) => s !== coordinator)) {
    const series = 'shardwise_worker_share_phase_duration_seconds';
    const shares = delta(w.before, w.after, `${series}_count{phase="compute"}`);
    const seconds = delta(w.before, w.after, `${series}_sum{phase="compute"}`);
    if (shares > 0 && (1000 * seconds) / shares >= workerComputeMs) {
      workerComputeMs = (1000 * seconds) / shares;
      // Per step, not per observation: a worker may wait or reduce more than once in a step.
      workerPhases = Object.fromEntries(['wait', 'transfer', 'compute', 'reduce'].map((phase) =>
        [phase, (1000 * delta(w.before, w.after, `${series}_sum{phase="${phase}"}`)) / steps]));
    }
  }
  const sentBytes = delta(coordinator.before, coordinator.after, 'shardwise_sent_bytes_total') / steps;
  const receivedBytes = delta(coordinator.before, coordinator.after, 'shardwise_received_bytes_total') / steps;
  return { phases, workerComputeMs, workerPhases, sentBytes, receivedBytes };
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
