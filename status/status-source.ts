import { randomBytes } from 'node:crypto';
import type { Registry } from 'prom-client';
import { GROUPS, type JobSpec, type MetricsRecord } from '../common';
import { MetricsTail } from './metrics-tail';
import { RegistryReader } from './registry-reader';
import type {
  StatusCursor,
  StatusEpochPoint,
  StatusGroup,
  StatusJob,
  StatusProgress,
  StatusSnapshot,
  StatusStepPoint,
  StatusWorker,
} from './status-types';
import { Timeline, type WorkerView } from './timeline';

/** What a {@link StatusSource} reads; every input is read-only. */
export interface StatusSourceOptions {
  spec: JobSpec;
  stepsPerEpoch: number;
  /** The coordinator's Prometheus registry (gauges for ETA, throughput, workers' step times and samples). */
  registry: Registry;
  /** The run's `metrics.jsonl` (steps, epochs, freeze and learning-rate records). */
  metricsFile: string;
  /** The coordinator's lifecycle state now. */
  state: () => string;
  /** Every worker id's latest membership record. */
  workers: () => readonly WorkerView[];
  /** The checkpoint folders present now, newest first. */
  checkpoints: () => Promise<readonly string[]>;
  /** How often the source looks again, ms. @default 500 */
  refreshMs?: number;
  /** Clock, ms. @default Date.now */
  now?: () => number;
  /** Receives a refresh failure (a damaged metrics line), once per distinct message; the page keeps going. @default ignore */
  warn?: (line: string) => void;
}

/** JSON has no NaN: a diverged loss travels as null and the page leaves a gap. */
function finite(value: number): number | null {
  return Number.isFinite(value) ? value : null;
}

/** The job spec's public fields; nothing else of the spec leaves the coordinator. */
function publicJob(spec: JobSpec, stepsPerEpoch: number, state: string): StatusJob {
  return {
    name: spec.name,
    architecture: spec.model.architecture,
    pretrained: spec.model.pretrained,
    inputSize: spec.model.inputSize,
    epochs: spec.training.epochs,
    stepsPerEpoch,
    batchSize: spec.training.batchSize,
    microBatchSize: spec.training.microBatchSize,
    optimizer: spec.optimizer.type,
    exchange: spec.distributed.exchange,
    minWorkers: spec.distributed.minWorkers,
    maxWorkers: spec.distributed.maxWorkers,
    state,
  };
}

/**
 * The one read-only source behind the status page. Every `refreshMs` it reads what the job already
 * publishes (new lines of `metrics.jsonl`, the Prometheus registry, the membership list, the checkpoint
 * folders, the lifecycle state) and keeps the curves and the timeline; `snapshot` hands them out from a
 * client's cursor. It never writes to the job and holds no reference to the job's mutable state.
 */
export class StatusSource {
  private readonly tail: MetricsTail;
  private readonly reader: RegistryReader;
  private readonly timeline = new Timeline();
  private readonly steps: StatusStepPoint[] = [];
  private readonly epochs: StatusEpochPoint[] = [];
  private readonly lr: Record<string, number> = {};
  private backboneFrozen = false;
  private lastStep: { epoch: number; step: number; globalStep: number } | undefined;
  private readonly now: () => number;
  private readonly timer: NodeJS.Timeout;
  private refreshing: Promise<void> | undefined;
  private readonly listeners = new Set<() => void>();
  private lastWarning: string | undefined;
  private readonly instance = randomBytes(6).toString('hex');

  constructor(private readonly options: StatusSourceOptions) {
    this.tail = new MetricsTail(options.metricsFile);
    this.reader = new RegistryReader(options.registry);
    this.now = options.now ?? Date.now;
    // Records already in the file belong to the run before this coordinator (a resume): they have no time.
    this.ingest(this.tail.read(), null);
    this.timer = setInterval(() => void this.refresh(), options.refreshMs ?? 500);
    this.timer.unref();
  }

  /** Calls `listener` after every refresh (the SSE route sends then); returns the unsubscribe function. */
  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Reads everything again now; concurrent calls share one read. */
  refresh(): Promise<void> {
    this.refreshing ??= this.read()
      .catch((err: unknown) => {
        // Once per distinct problem: a refresh runs twice a second.
        const line = `status page: ${err instanceof Error ? err.message : String(err)}`;
        if (line !== this.lastWarning) this.options.warn?.(line);
        this.lastWarning = line;
      })
      .finally(() => {
        this.refreshing = undefined;
        for (const listener of this.listeners) listener();
      });
    return this.refreshing;
  }

  /** Everything the page shows, with the series from `cursor` on. */
  async snapshot(cursor: StatusCursor = { steps: 0, epochs: 0, events: 0 }): Promise<StatusSnapshot> {
    const r = this.reader;
    const nowMs = this.now();
    const stepSeconds = await r.byLabel('shardwise_worker_step_seconds', 'worker');
    const samples = await r.byLabel('shardwise_worker_committed_samples_total', 'worker');
    const workers: StatusWorker[] = this.options.workers().map((w) => ({
      id: w.id,
      incarnation: w.incarnation,
      state: w.state,
      stepSeconds: stepSeconds.get(w.id) ?? null,
      samples: samples.get(w.id) ?? 0,
      lastHeartbeatMs: w.lastHeartbeatMs,
      ...(w.failureReason ? { failureReason: w.failureReason } : {}),
    }));
    const groups: StatusGroup[] = GROUPS.map((group) => ({
      group,
      learningRate: this.lr[group] ?? null,
      frozen: group === 'backbone' && this.backboneFrozen,
    }));
    const slice = <T>(items: readonly T[], from: number) => ({ from: Math.min(from, items.length), items: items.slice(from) });
    return {
      nowMs,
      instance: this.instance,
      job: publicJob(this.options.spec, this.options.stepsPerEpoch, this.options.state()),
      progress: await this.progress(),
      groups,
      workers,
      steps: slice(this.steps, cursor.steps),
      epochs: slice(this.epochs, cursor.epochs),
      events: slice(this.timeline.events, cursor.events),
    };
  }

  /** Stops looking. */
  close(): void {
    clearInterval(this.timer);
    this.listeners.clear();
  }

  private async read(): Promise<void> {
    const nowMs = this.now();
    // The gauge moves with every committed step; sampled once per refresh, it draws the live accuracy curve.
    // It is read before the records so that the steps and their accuracy are added in one synchronous go.
    const runningTop1 = await this.reader.value('shardwise_top1_accuracy_ratio', { split: 'train' });
    const stepsBefore = this.steps.length;
    this.ingest(this.tail.read(), nowMs);
    if (this.steps.length > stepsBefore) this.steps[this.steps.length - 1].runningTop1 = runningTop1;
    this.timeline.onState(this.options.state(), nowMs);
    this.timeline.onWorkers(this.options.workers(), nowMs);
    this.timeline.onCheckpoints(await this.options.checkpoints(), nowMs);
  }

  private ingest(records: readonly MetricsRecord[], atMs: number | null): void {
    this.timeline.onRecords(records, atMs);
    for (const record of records) this.onRecord(record);
  }

  private onRecord(r: MetricsRecord): void {
    switch (r.type) {
      case 'step':
        this.steps.push({ globalStep: r.globalStep, epoch: r.epoch, loss: finite(r.loss), samplesPerSec: r.samplesPerSec, runningTop1: null });
        this.lastStep = { epoch: r.epoch, step: r.step, globalStep: r.globalStep };
        Object.assign(this.lr, r.lr);
        break;
      case 'epoch':
        this.epochs.push({
          epoch: r.epoch,
          globalSteps: (r.epoch + 1) * this.options.stepsPerEpoch,
          trainLoss: finite(r.train.loss),
          trainTop1: finite(r.train.top1),
          valLoss: finite(r.val.loss),
          valTop1: finite(r.val.top1),
          frozen: r.frozen,
          seconds: r.seconds,
        });
        break;
      case 'lr-change':
        Object.assign(this.lr, r.lr);
        break;
      case 'freeze':
      case 'unfreeze':
        this.backboneFrozen = r.type === 'freeze';
        break;
      default:
        break;
    }
  }

  private async progress(): Promise<StatusProgress> {
    const r = this.reader;
    const { epochs } = this.options.spec.training;
    const { stepsPerEpoch } = this.options;
    const last = this.lastStep;
    const eta = await r.value('shardwise_eta_seconds');
    const split = async (split: string) => ({
      loss: await r.value('shardwise_loss', { split }),
      top1: await r.value('shardwise_top1_accuracy_ratio', { split }),
    });
    // Once an epoch's record is in (evaluation done), the job stands at the start of the next one.
    const ended = last !== undefined && this.epochs.some((e) => e.epoch === last.epoch);
    return {
      epoch: last ? (ended ? last.epoch + 1 : last.epoch) : 0,
      epochProgress: last && !ended ? (last.step + 1) / stepsPerEpoch : 0,
      globalSteps: last ? last.globalStep + 1 : 0,
      totalSteps: epochs * stepsPerEpoch,
      etaSeconds: last ? eta : null,
      samplesPerSecond: (await r.value('shardwise_samples_per_second')) ?? 0,
      activeWorkers: (await r.value('shardwise_active_workers')) ?? 0,
      desiredWorkers: (await r.value('shardwise_desired_workers')) ?? 0,
      waitingForWorkers: (await r.value('shardwise_waiting_for_workers')) === 1,
      train: await split('train'),
      validation: await split('validation'),
    };
  }
}
