/**
 * One soak run: a real coordinator process and `workers` workers on the default exchange (the allreduce),
 * for `steps` training steps, sized to fit a 2-core machine: the workers are real `Worker`s (gRPC clients,
 * data planes, allreduce, replica updates) hosted in a few processes (worker-host.ts), with fake compute: a
 * synthetic gradient of a small CNN's 650-float linear head, derived from the share's sample ids and the
 * step (synthetic-share.ts), one image per micro-batch, a global batch of one micro-batch per worker. What
 * is measured is the coordinator and the exchange: the coordinator's resident memory and open file
 * descriptors after the warm-up and at the end (from /proc), and the wall time between one worker's
 * consecutive steps. The run is then checked from metrics.jsonl: no sample lost or counted twice, every
 * replica hash equal to the coordinator's.
 */
import { createWriteStream, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import {
  COORDINATOR_DONE_PATTERN, COORDINATOR_READY_PATTERN, coordinatorHeapCapMb, defaultShardwiseCommand, ManagedChild, withCoordinatorHeapCap,
} from '../../launcher';
import { processCpuMs } from '../../bench/process-cpu';
import type { TraceEvent } from '../../common';
import { writeSignalCifar } from '../support/cluster-data';
import { recordsOf, runRecords, sampleTally } from '../support/cluster-checks';
import { GC_PROBE_URL, gcLine, type GcSummary, readGcLog, summarizeGc } from './gc-log';
import { breakDownSteps, breakdownLine, type ClassFigures, type IntervalClass, percentile, type StepMark } from './step-breakdown';

export interface SoakOptions {
  workers: number;
  /** Processes the workers are spread over. */
  hosts: number;
  /** Training steps of the job (rounded up to whole epochs). */
  steps: number;
  /** Steps before the warm-up figures are taken. */
  warmupSteps: number;
  /** Steps per epoch (one validation pass each). */
  stepsPerEpoch: number;
  /**
   * The coordinator's old-generation cap in MiB, 0 for V8's default (for A/B runs).
   * @default what the launcher gives it (coordinatorHeapCapMb of the worker count)
   */
  coordinatorHeapMb?: number;
  log: (line: string) => void;
}

export interface SoakResult {
  workers: number;
  steps: number;
  stepsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  rssStartMb: number;
  rssEndMb: number;
  handlesStart: number;
  handlesEnd: number;
  samplesLost: number;
  samplesDuplicated: number;
  hashComparisons: number;
  hashAgree: boolean;
  /** The coordinator's old-generation cap, MiB (0: V8's default). */
  heapCapMb: number;
  /** The coordinator's CPU time (user + system) per step after the warm-up, ms. */
  coordinatorCpuMsPerStep: number;
  /** The worker hosts' CPU time per step after the warm-up, all together, ms. */
  workersCpuMsPerStep: number;
  /** The step intervals after the warm-up by cause (step-breakdown.ts). */
  breakdown: Record<IntervalClass, ClassFigures>;
  /** The coordinator's GCs after the warm-up. */
  gc: GcSummary;
  /** The coordinator's epoch-end phases after the warm-up: durations in ms, ascending. */
  phases: Record<'evaluate' | 'checkpoint', number[]>;
  /** Steps timed after the warm-up. */
  measuredSteps: number;
  /** The validation passes after the warm-up: how many, and their shares' compute time (ms, ascending). */
  validation: { passes: number; shareMs: number[]; passSumMs: number[] };
}

/** The line `make soak` prints. */
export function soakLine(r: SoakResult): string {
  return `soak workers=${r.workers} steps=${r.steps} steps_per_s=${r.stepsPerSecond.toFixed(2)} p50_ms=${r.p50Ms.toFixed(1)} ` +
    `p99_ms=${r.p99Ms.toFixed(1)} rss_start_mb=${r.rssStartMb.toFixed(0)} rss_end_mb=${r.rssEndMb.toFixed(0)} ` +
    `open_handles_start=${r.handlesStart} open_handles_end=${r.handlesEnd} samples_lost=${r.samplesLost} ` +
    `samples_duplicated=${r.samplesDuplicated} hash_comparisons=${r.hashComparisons} hash_agree=${r.hashAgree} ` +
    `p99_steady_ms=${r.breakdown.steady.p99Ms.toFixed(1)} heap_cap_mb=${r.heapCapMb} live_heap_mb=${r.gc.liveHeapLastMb.toFixed(0)} ` +
    `coordinator_cpu_ms_per_step=${r.coordinatorCpuMsPerStep.toFixed(1)} workers_cpu_ms_per_step=${r.workersCpuMsPerStep.toFixed(1)}`;
}

/** The `# ...` lines that go with the soak line: what the slow steps are made of, and the coordinator's GCs. */
export function soakCompanionLines(r: SoakResult): string[] {
  const v = r.validation;
  return [
    breakdownLine(r.breakdown),
    `# validation passes n=${v.passes} shares=${v.shareMs.length} share_compute_ms p50=${percentile(v.shareMs, 50).toFixed(0)} ` +
      `max=${percentile(v.shareMs, 100).toFixed(0)}; per pass, all shares p50=${percentile(v.passSumMs, 50).toFixed(0)} max=${percentile(v.passSumMs, 100).toFixed(0)}`,
    `# coordinator at epoch ends: ` + (['evaluate', 'checkpoint'] as const).map((name) => {
      const ms = r.phases[name];
      return `${name} n=${ms.length} p50_ms=${percentile(ms, 50).toFixed(0)} max_ms=${percentile(ms, 100).toFixed(0)}`;
    }).join('; '),
    gcLine(r.gc, r.measuredSteps),
  ];
}

/** Checkpoints of the soak job, every this many steps (rare: they are not what is measured). */
const CHECKPOINT_EVERY_STEPS = 1000;


/**
 * Resident memory of `pid` in MiB and its open file descriptors, from /proc, but those on files under
 * `checkpoints` (the run's checkpoint folder): a checkpoint written in the background may be in flight when
 * the figures are taken (the last step is an epoch's end), and is no descriptor left open.
 */
function processFootprint(pid: number, hostPids: readonly number[], checkpoints: string): Footprint {
  const rssKb = Number(/^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
  const target = (fd: string): string => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      return ''; // closed since the listing
    }
  };
  const handles = readdirSync(`/proc/${pid}/fd`).filter((fd) => !target(fd).startsWith(checkpoints)).length;
  return {
    rssMb: rssKb / 1024, handles, cpuMs: processCpuMs(pid),
    workersCpuMs: hostPids.reduce((sum, p) => sum + processCpuMs(p), 0), t: performance.timeOrigin + performance.now(),
  };
}

/** The coordinator's memory, handles and CPU so far, the worker hosts' CPU, and when (epoch ms). */
interface Footprint {
  rssMb: number;
  handles: number;
  cpuMs: number;
  workersCpuMs: number;
  t: number;
}

/** The coordinator's evaluate and checkpoint spans that started after `from` (epoch ms), in ms, ascending. */
function coordinatorPhases(timelineFile: string, from: number): SoakResult['phases'] {
  const { traceEvents } = JSON.parse(readFileSync(timelineFile, 'utf8')) as { traceEvents: TraceEvent[] };
  const of = (name: string) => traceEvents.filter((e) => e.name === name && e.ts >= from * 1000).map((e) => (e.dur ?? 0) / 1000).sort((a, b) => a - b);
  return { evaluate: of('evaluate'), checkpoint: of('checkpoint') };
}

/** The validation shares' compute times, and each pass's total, in ms, ascending. */
function validationFigures(shares: ReadonlyArray<{ epoch: number; seconds: number }>): SoakResult['validation'] {
  const byEpoch = new Map<number, number>();
  for (const e of shares) byEpoch.set(e.epoch, (byEpoch.get(e.epoch) ?? 0) + e.seconds * 1000);
  const ascending = (a: number, b: number) => a - b;
  return { passes: byEpoch.size, shareMs: shares.map((e) => e.seconds * 1000).sort(ascending), passSumMs: [...byEpoch.values()].sort(ascending) };
}

/** The soak job: 64 micro-batches of one image per step, the backbone frozen throughout (a 650-float gradient). */
function soakJobYaml(workers: number, epochs: number): string {
  return [
    'name: soak',
    'seed: 3',
    'data: { valFraction: 0.05, augment: { cropPadding: 0, horizontalFlip: false, brightness: 0, contrast: 0, saturation: 0, hue: 0, rotationDeg: 0 } }',
    'model: { architecture: small_cnn, pretrained: false, inputSize: 32, head: linear }',
    `training: { epochs: ${epochs}, batchSize: ${workers}, microBatchSize: 1, evalBatchSize: ${workers} }`,
    'optimizer: { type: adam, learningRate: 0.001 }',
    `freeze: { backboneEpochs: ${epochs} }`,
    // Checkpoints every CHECKPOINT_EVERY_STEPS steps only, not at each 50-step epoch's end: a checkpoint (fsynced files
    // and folder) took about 1 s on this machine, so one per epoch made every epoch's end a slow step. The
    // breakdown still times the ones written.
    `output: { checkpointEveryEpochs: ${epochs} }`,
    // Leases generous for 64 workers sharing 2 cores with their coordinator.
    `distributed: { minWorkers: ${workers}, desiredWorkers: ${workers}, maxWorkers: ${workers}, leaseMs: 60000, heartbeatIntervalMs: 2000, ` +
      `stepDeadlineMs: 120000, hashEverySteps: 50, checkpointEverySteps: ${CHECKPOINT_EVERY_STEPS} }`,
    '',
  ].join('\n');
}

/** Runs the soak; throws when the job could not run to its end. */
export async function runSoak(options: SoakOptions): Promise<SoakResult> {
  const { workers, log } = options;
  const epochs = Math.ceil(options.steps / options.stepsPerEpoch);
  const steps = epochs * options.stepsPerEpoch;
  const dir = mkdtempSync(path.join(tmpdir(), 'shardwise-soak-'));
  const dataDir = path.join(dir, 'cifar');
  mkdirSync(dataDir);
  // valFraction 0.05 of the images is held out: the rest is exactly stepsPerEpoch global batches.
  const trainImages = options.stepsPerEpoch * workers;
  writeSignalCifar(dataDir, Math.round(trainImages / 0.95), 3);
  const job = path.join(dir, 'soak.yaml');
  writeFileSync(job, soakJobYaml(workers, epochs));
  log(`# soak: ${workers} workers, ${epochs} epochs of ${options.stepsPerEpoch} steps (${steps} steps), warm-up ${options.warmupSteps} steps`);
  const shardwise = defaultShardwiseCommand();
  const heapCapMb = options.coordinatorHeapMb ?? coordinatorHeapCapMb(workers);
  const gcFile = path.join(dir, 'coordinator-gc.jsonl');
  const timelineFile = path.join(dir, 'timeline.json');
  // With SHARDWISE_TEST_KEEP=1 every process's output goes to output.log in the kept folder, each line
  // with the time it was read (epoch ms) and its process: what a slow step's neighbours did.
  const output = process.env.SHARDWISE_TEST_KEEP === '1' ? createWriteStream(path.join(dir, 'output.log')) : undefined;
  const keep = (who: string) => (line: string) => output?.write(`${Date.now()} ${who}: ${line}\n`);
  const probed = { ...process.env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import ${GC_PROBE_URL}`.trim(), SHARDWISE_SOAK_GC_FILE: gcFile };
  const coordinator = ManagedChild.spawn({
    name: 'coordinator',
    command: shardwise.command,
    args: [...shardwise.args, 'coordinator', '--job', job, '--data', dataDir, '--runs-dir', path.join(dir, 'runs'), '--backend', 'wasm', '--port', '0', '--metrics-port', '0',
      // The coordinator's phases (evaluate, checkpoint) show what an epoch's end costs; one small append per step.
      '--timeline', timelineFile],
    // The cap as the launcher gives it (NODE_OPTIONS), so the soak measures what users run.
    env: heapCapMb > 0 ? withCoordinatorHeapCap(probed, heapCapMb) : probed,
    onLine: keep('coordinator'),
  });
  const hosts: ManagedChild[] = [];
  try {
    const ready = await coordinator.waitForLine(COORDINATOR_READY_PATTERN, { what: 'the coordinator ready line', timeoutMs: 120_000 });
    const [, grpc, , runDir] = ready;
    const stepEnds: StepMark[] = [];
    /** Each validation share's compute time (a real forward pass: only training is synthetic). */
    const evalSeconds: Array<{ epoch: number; seconds: number }> = [];
    const perHost = Math.ceil(workers / options.hosts);
    for (let first = 1; first <= workers; first += perHost) {
      const count = Math.min(perHost, workers - first + 1);
      hosts.push(ManagedChild.spawn({
        name: `workers ${first}-${first + count - 1}`,
        command: process.execPath,
        args: ['--import', 'tsx', path.join(__dirname, 'worker-host.ts'), grpc, String(first), String(count)],
        onLine: (line) => {
          keep(`host ${first}`)(line);
          const mark = first === 1 ? /^soak-1: .*step (\d+) \(epoch (\d+)\): /.exec(line) : null;
          if (mark) stepEnds.push({ t: performance.timeOrigin + performance.now(), step: Number(mark[1]), epoch: Number(mark[2]) });
          const evaluated = /: evaluation after epoch (\d+): .*, ([\d.]+) s$/.exec(line);
          if (evaluated) evalSeconds.push({ epoch: Number(evaluated[1]), seconds: Number(evaluated[2]) });
        },
      }));
    }
    const failed = Promise.all(hosts.map(async (h) => {
      const status = await h.exited;
      if (status.code !== 0) throw new Error(`${h.name} exited with ${status.code ?? status.signal}:\n${h.tail(40)}`);
    })).then(() => undefined);
    failed.catch(() => undefined); // Raced below; a failure after the job ended is reported by the final await.
    // The warm-up figures, taken once the first worker finished warmupSteps steps.
    let warm: Footprint | undefined;
    let warmAt = 0;
    const pid = coordinator.pid as number;
    const hostPids = hosts.map((h) => h.pid as number);
    await Promise.race([failed, new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        if (stepEnds.length >= options.warmupSteps) {
          clearInterval(timer);
          warm = processFootprint(pid, hostPids, path.resolve(runDir, 'checkpoints'));
          warmAt = stepEnds.length;
          log(`# warm-up done after ${warmAt} steps: coordinator rss ${warm.rssMb.toFixed(0)} MiB, ${warm.handles} open handles`);
          resolve();
        }
      }, 200);
    })]);
    // The end figures, at the last training step (before the job's final evaluation and shutdown).
    let end: Footprint | undefined;
    const lastStep = new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        if (stepEnds.length >= steps || !coordinator.running) {
          clearInterval(timer);
          if (coordinator.running) end = processFootprint(pid, hostPids, path.resolve(runDir, 'checkpoints'));
          resolve();
        }
      }, 100);
    });
    await Promise.race([failed, lastStep]);
    await coordinator.waitForLine(COORDINATOR_DONE_PATTERN, { what: 'the coordinator done line', timeoutMs: 600_000 });
    await failed;
    if (!warm || !end) {
      // The steps are counted on soak-1's lines: one dropped from the job (a lease missed under load) stops
      // counting while the job goes on, which the tails tell apart from a job that ended early.
      throw new Error(`the job ended after ${stepEnds.length} of ${steps} steps counted on soak-1's lines; the coordinator's last output:\n` +
        `${coordinator.tail(40)}\n${hosts[0].name}'s last output:\n${hosts[0].tail(40)}`);
    }
    const measured = stepEnds.slice(warmAt - 1);
    const intervals = measured.slice(1).map((m, k) => m.t - measured[k].t).sort((a, b) => a - b);
    const measuredSteps = stepEnds.length - warmAt;
    const records = runRecords(runDir);
    // The coordinator exits after its done line; once it has, the probe has flushed its log.
    await coordinator.stop({ graceMs: 30_000 });
    const gc = readGcLog(gcFile);
    const { lost: samplesLost, duplicated: samplesDuplicated } = sampleTally(records, epochs, trainImages);
    const hashes = recordsOf(records, 'replica-hash').filter((h) => Object.keys(h.workers).length > 0);
    const seconds = (stepEnds[stepEnds.length - 1].t - stepEnds[warmAt - 1].t) / 1000;
    return {
      workers, steps, stepsPerSecond: measuredSteps / seconds, p50Ms: percentile(intervals, 50), p99Ms: percentile(intervals, 99),
      rssStartMb: warm.rssMb, rssEndMb: end.rssMb, handlesStart: warm.handles, handlesEnd: end.handles, samplesLost, samplesDuplicated,
      hashComparisons: hashes.length,
      hashAgree: hashes.length > 0 && hashes.every((h) => h.agree && Object.values(h.workers).every((hash) => hash === h.coordinator)),
      heapCapMb,
      coordinatorCpuMsPerStep: (end.cpuMs - warm.cpuMs) / measuredSteps,
      workersCpuMsPerStep: (end.workersCpuMs - warm.workersCpuMs) / measuredSteps,
      breakdown: breakDownSteps(measured, CHECKPOINT_EVERY_STEPS, gc),
      gc: summarizeGc(gc, warm.t, end.t),
      measuredSteps,
      phases: coordinatorPhases(timelineFile, warm.t),
      validation: validationFigures(evalSeconds.filter((e) => e.epoch >= stepEnds[warmAt].epoch)),
    };
  } finally {
    await Promise.all(hosts.map((h) => h.stop({ graceMs: 5000 })));
    await coordinator.stop({ graceMs: 5000 });
    output?.end();
    if (process.env.SHARDWISE_TEST_KEEP !== '1') rmSync(dir, { recursive: true, force: true });
  }
}
