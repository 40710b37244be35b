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
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { COORDINATOR_DONE_PATTERN, COORDINATOR_READY_PATTERN, defaultShardwiseCommand, ManagedChild } from '../../launcher';
import { writeSignalCifar } from '../support/cluster-data';
import { recordsOf, runRecords, sampleTally } from '../support/cluster-checks';

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
}

/** The line `make soak` prints. */
export function soakLine(r: SoakResult): string {
  return `soak workers=${r.workers} steps=${r.steps} steps_per_s=${r.stepsPerSecond.toFixed(2)} p50_ms=${r.p50Ms.toFixed(1)} ` +
    `p99_ms=${r.p99Ms.toFixed(1)} rss_start_mb=${r.rssStartMb.toFixed(0)} rss_end_mb=${r.rssEndMb.toFixed(0)} ` +
    `open_handles_start=${r.handlesStart} open_handles_end=${r.handlesEnd} samples_lost=${r.samplesLost} ` +
    `samples_duplicated=${r.samplesDuplicated} hash_comparisons=${r.hashComparisons} hash_agree=${r.hashAgree}`;
}

/** Resident memory of `pid` in MiB and its open file descriptors, from /proc. */
function processFootprint(pid: number): { rssMb: number; handles: number } {
  const rssKb = Number(/^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
  return { rssMb: rssKb / 1024, handles: readdirSync(`/proc/${pid}/fd`).length };
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
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
    // Leases generous for 64 workers sharing 2 cores with their coordinator; checkpoints rare (they are not measured).
    `distributed: { minWorkers: ${workers}, desiredWorkers: ${workers}, maxWorkers: ${workers}, leaseMs: 60000, heartbeatIntervalMs: 2000, ` +
      'stepDeadlineMs: 120000, hashEverySteps: 50, checkpointEverySteps: 1000 }',
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
  const coordinator = ManagedChild.spawn({
    name: 'coordinator',
    command: shardwise.command,
    args: [...shardwise.args, 'coordinator', '--job', job, '--data', dataDir, '--runs-dir', path.join(dir, 'runs'), '--backend', 'wasm', '--port', '0', '--metrics-port', '0'],
  });
  const hosts: ManagedChild[] = [];
  try {
    const ready = await coordinator.waitForLine(COORDINATOR_READY_PATTERN, { what: 'the coordinator ready line', timeoutMs: 120_000 });
    const [, grpc, , runDir] = ready;
    const stepEnds: number[] = [];
    const perHost = Math.ceil(workers / options.hosts);
    for (let first = 1; first <= workers; first += perHost) {
      const count = Math.min(perHost, workers - first + 1);
      hosts.push(ManagedChild.spawn({
        name: `workers ${first}-${first + count - 1}`,
        command: process.execPath,
        args: ['--import', 'tsx', path.join(__dirname, 'worker-host.ts'), grpc, String(first), String(count)],
        onLine: first === 1 ? (line) => {
          if (/^soak-1: .*step \d+ \(epoch \d+\): /.test(line)) stepEnds.push(performance.now());
        } : undefined,
      }));
    }
    const failed = Promise.all(hosts.map(async (h) => {
      const status = await h.exited;
      if (status.code !== 0) throw new Error(`${h.name} exited with ${status.code ?? status.signal}:\n${h.tail(40)}`);
    })).then(() => undefined);
    failed.catch(() => undefined); // Raced below; a failure after the job ended is reported by the final await.
    // The warm-up figures, taken once the first worker finished warmupSteps steps.
    let warm: { rssMb: number; handles: number } | undefined;
    let warmAt = 0;
    const pid = coordinator.pid as number;
    await Promise.race([failed, new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        if (stepEnds.length >= options.warmupSteps) {
          clearInterval(timer);
          warm = processFootprint(pid);
          warmAt = stepEnds.length;
          log(`# warm-up done after ${warmAt} steps: coordinator rss ${warm.rssMb.toFixed(0)} MiB, ${warm.handles} open handles`);
          resolve();
        }
      }, 200);
    })]);
    // The end figures, at the last training step (before the job's final evaluation and shutdown).
    let end: { rssMb: number; handles: number } | undefined;
    const lastStep = new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        if (stepEnds.length >= steps || !coordinator.running) {
          clearInterval(timer);
          if (coordinator.running) end = processFootprint(pid);
          resolve();
        }
      }, 100);
    });
    await Promise.race([failed, lastStep]);
    await coordinator.waitForLine(COORDINATOR_DONE_PATTERN, { what: 'the coordinator done line', timeoutMs: 600_000 });
    await failed;
    if (!warm || !end) throw new Error(`the job ended after ${stepEnds.length} of ${steps} steps`);
    const intervals = stepEnds.slice(warmAt).map((t, k) => t - stepEnds[warmAt + k - 1]).filter((ms) => Number.isFinite(ms)).sort((a, b) => a - b);
    const records = runRecords(runDir);
    const { lost: samplesLost, duplicated: samplesDuplicated } = sampleTally(records, epochs, trainImages);
    const hashes = recordsOf(records, 'replica-hash').filter((h) => Object.keys(h.workers).length > 0);
    const seconds = (stepEnds[stepEnds.length - 1] - stepEnds[warmAt - 1]) / 1000;
    return {
      workers, steps, stepsPerSecond: (stepEnds.length - warmAt) / seconds, p50Ms: percentile(intervals, 50), p99Ms: percentile(intervals, 99),
      rssStartMb: warm.rssMb, rssEndMb: end.rssMb, handlesStart: warm.handles, handlesEnd: end.handles, samplesLost, samplesDuplicated,
      hashComparisons: hashes.length,
      hashAgree: hashes.length > 0 && hashes.every((h) => h.agree && Object.values(h.workers).every((hash) => hash === h.coordinator)),
    };
  } finally {
    await Promise.all(hosts.map((h) => h.stop({ graceMs: 5000 })));
    await coordinator.stop({ graceMs: 5000 });
    if (process.env.SHARDWISE_TEST_KEEP !== '1') rmSync(dir, { recursive: true, force: true });
  }
}
