import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { decodeMetricsLine, type EpochRecord, mergeTimeline, RUN_FILES, type TraceEvent } from '../common';
import { LocalCluster } from '../launcher';
import { StepClock } from './scaling-steps';
import { type EpochTime, TTA_SCHEDULE, TTA_WORKERS, type TtaSchedule } from './tta-inputs';

/** Longest a process may take to start on a loaded 2-core machine. */
const START_TIMEOUT_MS = 180_000;
const STOP_GRACE_MS = 10_000;

/**
 * Stops whatever a bench has running (a cluster, the peer) when it is interrupted (SIGINT, SIGTERM), then
 * runs `cleanup` and exits. Returns `track`: register a stop function; the function it returns unregisters it.
 */
export function stopOnInterrupt(cleanup: () => void): (stop: () => Promise<unknown>) => () => void {
  const live = new Set<() => Promise<unknown>>();
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    process.once(signal, () => void Promise.allSettled([...live].map((stop) => stop())).then(() => (cleanup(), process.exit(code))));
  }
  return (stop) => {
    live.add(stop);
    return () => live.delete(stop);
  };
}

/** What the shardwise side of bench-tta measured. */
export interface ClusterResult {
  /** From all workers ready (training can start) to the last epoch's record. */
  wallSeconds: number;
  epochs: Array<EpochTime & { loss: number }>;
  runDir: string;
  backendLine?: string;
  /** The merged timeline's events. */
  trace: TraceEvent[];
  /** Global steps of the unfrozen epochs. */
  unfrozenSteps: Set<number>;
}

/**
 * Runs the job on a local cluster (nats-server, `shardwise coordinator`, 2 `shardwise worker` processes,
 * as `shardwise cluster` runs them) with `--timeline` on every process. The clock starts once every worker
 * is ready, as the peer's starts after its processes loaded the model and the data; each epoch ends when
 * its record (after the evaluation) appears in metrics.jsonl.
 */
export async function runTtaCluster(plan: {
  job: string;
  dataDir: string;
  runsDir: string;
  timeline: string;
  backend?: string;
  output?: (line: string) => void;
  track: (stop: () => Promise<unknown>) => () => void;
  /** The job's epochs (the recipe's unless told): how many epoch records to wait for. */
  schedule?: TtaSchedule;
}): Promise<ClusterResult> {
  const { epochs: total, frozen } = plan.schedule ?? TTA_SCHEDULE;
  let backendLine: string | undefined;
  const onLine = (line: string): void => {
    backendLine ??= /shardwise compute: backend .*/.exec(line)?.[0];
    plan.output?.(line);
  };
  const cluster = LocalCluster.create({
    job: plan.job,
    workers: TTA_WORKERS,
    data: plan.dataDir,
    runsDir: plan.runsDir,
    backend: plan.backend,
    coordinatorOutput: 'prefix',
    workerOutput: 'all',
    output: onLine,
    log: onLine,
    env: { ...process.env, SHARDWISE_TIMELINE: plan.timeline },
    workerReadyTimeoutMs: START_TIMEOUT_MS,
    coordinatorReadyTimeoutMs: START_TIMEOUT_MS,
    workerExitGraceMs: STOP_GRACE_MS,
    stopGraceMs: STOP_GRACE_MS,
  });
  const untrack = plan.track(() => cluster.stop());
  const epochEnds = new Map<number, number>();
  let clock: StepClock | undefined;
  try {
    await cluster.start();
    const startMs = performance.now();
    clock = new StepClock(cluster.coordinator.runDir, (record, atMs) => {
      if (record.type === 'epoch') epochEnds.set(record.epoch, atMs);
    });
    const code = await cluster.finished;
    if (code !== 0 || !cluster.jobFinished) throw new Error(`the cluster ended with status ${code} (job finished: ${cluster.jobFinished})`);
    const runDir = cluster.coordinator.runDir;
    const records = readFileSync(path.join(runDir, RUN_FILES.metrics), 'utf8').split('\n').filter((l) => l.trim() !== '').map(decodeMetricsLine);
    const epochRecords = records.filter((r): r is EpochRecord => r.type === 'epoch');
    if (epochRecords.length !== total || epochEnds.size !== total) {
      throw new Error(`expected ${total} epoch records in ${runDir}, found ${epochRecords.length} (${epochEnds.size} seen arriving)`);
    }
    const endOf = (epoch: number): number => epochEnds.get(epoch)!;
    const epochs = epochRecords.map((r) => ({
      epoch: r.epoch + 1,
      frozen: r.frozen,
      top1: r.val.top1,
      loss: r.val.loss,
      seconds: (endOf(r.epoch) - (r.epoch === 0 ? startMs : endOf(r.epoch - 1))) / 1000,
    }));
    const unfrozenSteps = new Set(records.flatMap((r) => (r.type === 'step' && r.epoch >= frozen ? [r.globalStep] : [])));
    const merged = mergeTimeline(plan.timeline);
    const trace = (JSON.parse(readFileSync(merged.file, 'utf8')) as { traceEvents: TraceEvent[] }).traceEvents;
    return { wallSeconds: (endOf(total - 1) - startMs) / 1000, epochs, runDir, backendLine, trace, unfrozenSteps };
  } finally {
    clock?.close();
    await cluster.stop().catch(() => undefined);
    untrack();
  }
}
