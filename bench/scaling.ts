/**
 * Distributed training on real processes over loopback: nats-server from PATH, `shardwise coordinator`
 * and `shardwise worker` processes started as `shardwise cluster` starts them (launcher's LocalCluster),
 * and `shardwise train --local` as the single-process reference.
 *
 * 1. Scaling: the ImageNet MobileNet v1 backbone (../shared/models/mobilenet_v1_imagenet_conv_pw_12)
 *    trained unfrozen at 32x32, batch 32 in micro-batches of 16, on ../shared/data/cifar10-subset limited
 *    to 640 images (574 training: 17 full steps), with 1 and 2 workers and locally. Steady state: the wall
 *    time from the record of step 2 to that of step 16 in the run's metrics.jsonl (14 steps, 448 images).
 * 2. Overhead: a job with next to nothing to compute (frozen small CNN, linear head: a 650-float
 *    gradient; batch 2 in micro-batches of 1), with 1 and 2 workers: the wall time per step minus that
 *    of the same job under `train --local`, run alternately, p50 and p99, after 10 warm-up steps.
 *
 *   node --import tsx bench/scaling.ts [--only scaling|overhead] [--repeat 3] [--backend auto|wasm|cpu] [--shared DIR]
 *     [--no-planned-exchange]   (the jobs with distributed.plannedExchange: false; it is on by default)
 *
 * Prints `bench-scaling mode=local img_per_s=W`, `bench-scaling workers=1 img_per_s=X`,
 * `bench-scaling workers=2 img_per_s=Y efficiency=Z` (Y / 2X) and `bench-overhead workers=N
 * ms_per_step=X p50_ms=X p99_ms=Y coordinator_cpu_ms_per_step=Z worker_cpu_ms_per_step=W launcher_cpu_ms_per_step=L
 * added_cpu_ms_per_step=A` (CPU time, every thread, per measured step: the coordinator process, each worker
 * process on average, and the launcher, this process, which reads every child's output; A is all of them
 * together minus what `train --local` and this process used per step of the reference run), with `#` lines
 * saying what was measured and where the step time went. On a machine with fewer cores than processes, every
 * CPU millisecond of any of them competes with the workers' compute, and `train --local` computes its
 * micro-batches on every core too.
 * Without ../shared (or the `--shared` folder) it generates random CIFAR-format images and builds the
 * MobileNet topology with random weights (same cost per image). BENCH_DEBUG=1 forwards every process's
 * output to stderr; BENCH_KEEP=1 keeps the temp folder (job files, run directories).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import * as path from 'node:path';
import { coresGiven } from '../common';
import { type BenchInputs, overheadJobYaml, prepareInputs, scalingJobYaml } from './scaling-inputs';
import { type CpuRole, imagesPerSecond, msPerStep, phaseBreakdown, quantile, type RunMeasurement, type RunPlan, runCluster, runLocal, totalCpuMs } from './scaling-runs';

/** Images read for the scaling job: 574 training (17 full steps of 32) and 66 validation on the real subset. */
const SCALING_LIMIT = 640;
const SCALING_BATCH = 32;
/** Steps 0-2 are warm-up: kernel set-up, the workers' first weights download, JIT. */
const SCALING_WARMUP_STEPS = 3;
/** Images for the overhead job: about 360 training, 180 steps of 2. */
const OVERHEAD_LIMIT = 400;
const OVERHEAD_BATCH = 2;
const OVERHEAD_WARMUP_STEPS = 10;

/** Runs of each configuration; the median is reported (other helpers' jobs may share the cores). */
const DEFAULT_REPEAT = 3;

interface Args {
  only?: 'scaling' | 'overhead';
  backend?: string;
  repeat: number;
  shared?: string;
  /** `--insecure`: the clusters in plaintext (default: mutual TLS, as `shardwise cluster`). */
  insecure: boolean;
  /** `--no-planned-exchange`: the jobs without distributed.plannedExchange (on by default). */
  planned: boolean;
}

function parseArgs(argv: string[]): Args {
  const get = (flag: string): string | undefined => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const only = get('--only');
  if (only !== undefined && only !== 'scaling' && only !== 'overhead') throw new Error(`--only: expected scaling or overhead, got ${only}`);
  const repeat = Number(get('--repeat') ?? DEFAULT_REPEAT);
  if (!Number.isInteger(repeat) || repeat < 1) throw new Error(`--repeat: expected an integer >= 1, got ${get('--repeat')}`);
  return { only, backend: get('--backend'), repeat, shared: get('--shared'), insecure: argv.includes('--insecure'), planned: !argv.includes('--no-planned-exchange') };
}

/** Stops of the processes running now, and the temp folder's removal, for a signal that arrives mid-run. */
const live = new Set<() => Promise<unknown>>();
let removeTempDir = (): void => undefined;
const track = (stop: () => Promise<unknown>): (() => void) => {
  live.add(stop);
  return () => live.delete(stop);
};

function onSignal(signal: NodeJS.Signals, code: number): void {
  process.once(signal, () => {
    process.stderr.write(`${signal}: stopping the bench's processes\n`);
    void Promise.allSettled([...live].map((stop) => stop())).then(() => {
      removeTempDir();
      process.exit(code);
    });
  });
}

const fmt = (x: number, digits = 1): string => x.toFixed(digits);

/** A configuration run `repeat` times: its runs and the median one (by the reported figure). */
interface Series {
  runs: RunMeasurement[];
  median: RunMeasurement;
}

/**
 * Runs every configuration `repeat` times, interleaved (a, b, c, a, b, c, ...) so that a slow spell of
 * the machine falls on all of them alike rather than on one.
 */
async function runSeries(
  configs: ReadonlyArray<() => Promise<RunMeasurement>>,
  repeat: number,
  figure: (m: RunMeasurement) => number,
): Promise<Series[]> {
  const runs = configs.map((): RunMeasurement[] => []);
  for (let r = 0; r < repeat; r++) {
    for (const [i, config] of configs.entries()) runs[i].push(await config());
  }
  return runs.map((list) => {
    const sorted = [...list].sort((a, b) => figure(a) - figure(b));
    return { runs: list, median: sorted[Math.floor((sorted.length - 1) / 2)] };
  });
}

function spread(series: Series, figure: (m: RunMeasurement) => number, digits: number): string {
  return series.runs.length === 1 ? '' : ` (runs: ${series.runs.map((m) => fmt(figure(m), digits)).join(', ')})`;
}

function breakdownLine(label: string, m: RunMeasurement): string {
  const { phases, workerComputeMs, workerPhases, sentBytes, receivedBytes } = phaseBreakdown(m);
  const list = (p: Record<string, number>): string => Object.entries(p).map(([phase, ms]) => `${phase} ${fmt(ms)}`).join(', ');
  const parts = `${list(phases)}; slowest worker's phases (ms/step): ${list(workerPhases)}`;
  const kb = (bytes: number): string => `${fmt(bytes / 1024, 0)} KiB`;
  return `# ${label} (median run): ${fmt(msPerStep(m))} ms per step over ${m.steps} steps; coordinator phases (ms/step): ${parts}; ` +
    `slowest worker's compute ${fmt(workerComputeMs)} ms per share; coordinator sent ${kb(sentBytes)} and received ` +
    `${kb(receivedBytes)} per step`;
}

type BasePlan = Omit<RunPlan, 'job' | 'batchSize' | 'warmupSteps'>;

/** CPU milliseconds per measured step of `role` over every run (per worker for `workers`). */
function cpuMsPerStep(runs: readonly RunMeasurement[], role: CpuRole, workers = 1): number {
  const perProcess = role === 'workers' ? workers : 1;
  return runs.reduce((ms, m) => ms + (m.cpuMs[role] ?? Number.NaN), 0) / stepsOf(runs) / perProcess;
}

/** CPU ms per step of every process of the runs together (the launcher included). */
function totalCpuMsPerStep(runs: readonly RunMeasurement[]): number {
  return runs.reduce((ms, m) => ms + totalCpuMs(m.cpuMs), 0) / stepsOf(runs);
}

function stepsOf(runs: readonly RunMeasurement[]): number {
  return runs.reduce((n, m) => n + m.steps, 0);
}

async function scaling(dir: string, inputs: BenchInputs, base: BasePlan, repeat: number): Promise<void> {
  const job = path.join(dir, 'scaling.yaml');
  writeFileSync(job, scalingJobYaml(inputs, SCALING_LIMIT));
  const plan: RunPlan = { ...base, job, batchSize: SCALING_BATCH, warmupSteps: SCALING_WARMUP_STEPS };
  console.log(`# bench-scaling: MobileNet v1 (${inputs.modelSource}) unfrozen, 32x32, batch ${SCALING_BATCH} in ` +
    `micro-batches of 16, on ${inputs.dataSource} limited to ${SCALING_LIMIT}; img_per_s = training images / wall time ` +
    `from the step-${SCALING_WARMUP_STEPS - 1} record to the last full step's record in metrics.jsonl, median of ${repeat} runs`);
  console.log(`# this machine has ${availableParallelism()} CPU cores, shared by the coordinator, the workers and nats-server ` +
    '(each tfjs process computes on one thread): 2 workers cannot reach 2x here, efficiency < 1 is expected');
  const [local, one, two] = await runSeries([() => runLocal(plan), () => runCluster(plan, 1), () => runCluster(plan, 2)], repeat, msPerStep);
  if (local.median.backendLine) console.log(`# ${local.median.backendLine}`);
  console.log(`bench-scaling mode=local img_per_s=${fmt(imagesPerSecond(local.median))}`);
  console.log(`# local${spread(local, imagesPerSecond, 1)}: ${fmt(msPerStep(local.median))} ms per step over ${local.median.steps} steps`);
  console.log(`bench-scaling workers=1 img_per_s=${fmt(imagesPerSecond(one.median))}`);
  console.log(breakdownLine(`workers=1${spread(one, imagesPerSecond, 1)}`, one.median));
  const efficiency = imagesPerSecond(two.median) / (2 * imagesPerSecond(one.median));
  console.log(`bench-scaling workers=2 img_per_s=${fmt(imagesPerSecond(two.median))} efficiency=${fmt(efficiency, 2)}`);
  console.log(breakdownLine(`workers=2${spread(two, imagesPerSecond, 1)}`, two.median));
}

async function overhead(dir: string, base: BasePlan, repeat: number): Promise<void> {
  const job = path.join(dir, 'overhead.yaml');
  writeFileSync(job, overheadJobYaml(OVERHEAD_LIMIT));
  const plan: RunPlan = { ...base, job, batchSize: OVERHEAD_BATCH, warmupSteps: OVERHEAD_WARMUP_STEPS };
  console.log('# bench-overhead: frozen small CNN + linear head (650-float gradient), batch 2 in micro-batches of 1, ' +
    'no augmentation; overhead per step = wall time per step of the job on N workers minus that of the same job ' +
    `under train --local, run alternately (local, 1 worker, 2 workers) ${repeat} times; a step's wall time is the ` +
    `time between its record and the previous one in metrics.jsonl, after ${OVERHEAD_WARMUP_STEPS} warm-up steps; ` +
    'ms_per_step and p50_ms are the difference of the medians over every measured step of every run, p99_ms that of ' +
    'the 99th percentiles');
  console.log(`# cores: ${coresGiven()}; with 2 workers the job is 4 processes (coordinator, 2 workers, nats-server) beside this one: ` +
    'on fewer cores they take turns, and the overhead counts their added CPU time (added_cpu_ms_per_step) more than the path ' +
    '(docs/step-path-latency.md)');
  const [local, ...clusters] = await runSeries([() => runLocal(plan), () => runCluster(plan, 1), () => runCluster(plan, 2)], repeat, msPerStep);
  const steps = (s: Series): number[] => s.runs.flatMap((m) => m.stepMs);
  const localSteps = steps(local);
  const q = (values: number[], p: number): number => quantile(values, p);
  console.log(`# local: p50 ${fmt(q(localSteps, 0.5), 2)} ms, p99 ${fmt(q(localSteps, 0.99), 2)} ms per step over ${localSteps.length} steps` +
    `${spread(local, msPerStep, 2)}; CPU ${fmt(totalCpuMsPerStep(local.runs), 2)} ms per step (train --local ` +
    `${fmt(cpuMsPerStep(local.runs, 'trainer'), 2)}, this process ${fmt(cpuMsPerStep(local.runs, 'launcher'), 2)})`);
  for (const [i, s] of clusters.entries()) {
    const workers = i + 1;
    const all = steps(s);
    const p50 = q(all, 0.5) - q(localSteps, 0.5);
    const p99 = q(all, 0.99) - q(localSteps, 0.99);
    console.log(`bench-overhead workers=${workers} ms_per_step=${fmt(p50, 2)} p50_ms=${fmt(p50, 2)} p99_ms=${fmt(p99, 2)} ` +
      `coordinator_cpu_ms_per_step=${fmt(cpuMsPerStep(s.runs, 'coordinator'), 2)} ` +
      `worker_cpu_ms_per_step=${fmt(cpuMsPerStep(s.runs, 'workers', workers), 2)} ` +
      `launcher_cpu_ms_per_step=${fmt(cpuMsPerStep(s.runs, 'launcher'), 2)} ` +
      `added_cpu_ms_per_step=${fmt(totalCpuMsPerStep(s.runs) - totalCpuMsPerStep(local.runs), 2)}`);
    console.log(`# workers=${workers}: p50 ${fmt(q(all, 0.5), 2)} ms, p99 ${fmt(q(all, 0.99), 2)} ms per step over ${all.length} steps; ` +
      `minus the slowest worker's compute per share: ${fmt(msPerStep(s.median) - phaseBreakdown(s.median).workerComputeMs, 2)} ms`);
    console.log(breakdownLine(`workers=${workers}${spread(s, msPerStep, 2)}`, s.median));
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  onSignal('SIGINT', 130);
  onSignal('SIGTERM', 143);
  const dir = mkdtempSync(path.join(tmpdir(), 'shardwise-bench-scaling-'));
  removeTempDir = (): void => {
    if (process.env.BENCH_KEEP === '1') process.stderr.write(`kept ${dir}\n`);
    else rmSync(dir, { recursive: true, force: true });
  };
  try {
    const inputs = await prepareInputs(dir, SCALING_LIMIT, args.shared);
    const base = {
      dataDir: inputs.dataDir,
      runsDir: path.join(dir, 'runs'),
      backend: args.backend,
      insecure: args.insecure,
      set: args.planned ? [] : ['distributed.plannedExchange=false'],
      output: process.env.BENCH_DEBUG === '1' ? (line: string) => process.stderr.write(`${line}\n`) : undefined,
      track,
    };
    console.log(`# security: ${args.insecure ? 'plaintext (--insecure)' : 'mutual TLS and a join token, as shardwise cluster runs by default'}`);
    console.log(`# distributed.plannedExchange: ${args.planned}`);
    if (args.only !== 'overhead') await scaling(dir, inputs, base, args.repeat);
    if (args.only !== 'scaling') await overhead(dir, base, args.repeat);
  } finally {
    removeTempDir();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
