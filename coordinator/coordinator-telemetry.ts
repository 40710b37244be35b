import { Counter, Registry } from 'prom-client';
import { type CoordinatorMetrics, createCoordinatorMetrics, GROUPS, type GroupLearningRates } from '../common';

/** Weight of the newest step in the moving averages of step time and throughput. */
const SMOOTHING = 0.2;

/** Who computed an accepted share, on how many samples, and when it was handed out, pushed and accepted (ms). */
export interface ShareTiming {
  worker: string;
  samples: number;
  handedAtMs: number;
  headerAtMs: number;
  doneAtMs: number;
}

/** What {@link CoordinatorTelemetry.onStep} records. */
export interface StepTelemetry {
  epoch: number;
  stepInEpoch: number;
  stepsPerEpoch: number;
  /** Steps left in the job after this one. */
  stepsLeft: number;
  samples: number;
  seconds: number;
  reduceSeconds: number;
  timings: readonly ShareTiming[];
  workerSeconds: ReadonlyMap<string, number>;
  /** Running training metrics of the epoch. */
  train: { loss: number; top1: number; top5: number };
  lr: GroupLearningRates;
  frozen: boolean;
}

/**
 * The coordinator's Prometheus metrics on their own registry, and the arithmetic that turns a step's
 * timestamps into them. A step's time is split into phases from the critical share: compute (handout to
 * the start of its push: the worker's download and forward/backward), transfer (its gradient upload),
 * reduce (summing and the optimizer update) and wait (the rest: workers pulling, joining, stragglers).
 */
export class CoordinatorTelemetry {
  readonly registry: Registry;
  readonly metrics: CoordinatorMetrics;
  /** `shardwise_replica_hash_mismatches_total`: replica hashes that differed from the coordinator's. */
  readonly hashMismatches: Counter;
  private stepSecondsAverage = 0;
  private samplesPerSecondAverage = 0;

  constructor() {
    this.registry = new Registry();
    this.metrics = createCoordinatorMetrics(this.registry);
    this.hashMismatches = new Counter({
      name: 'shardwise_replica_hash_mismatches_total',
      help: "Replica weight hashes that differed from the coordinator's (the worker is sent full weights).",
      registers: [this.registry],
    });
  }

  /** Records a completed step. */
  onStep(s: StepTelemetry): void {
    const m = this.metrics;
    m.steps.inc();
    m.samples.inc(s.samples);
    m.stepDuration.observe(s.seconds);
    const critical = s.timings.reduce<ShareTiming | undefined>((a, t) => (a === undefined || t.doneAtMs > a.doneAtMs ? t : a), undefined);
    const compute = critical ? Math.max(0, critical.headerAtMs - critical.handedAtMs) / 1000 : 0;
    const transfer = critical ? Math.max(0, critical.doneAtMs - critical.headerAtMs) / 1000 : 0;
    m.stepPhaseDuration.observe({ phase: 'compute' }, compute);
    m.stepPhaseDuration.observe({ phase: 'transfer' }, transfer);
    m.stepPhaseDuration.observe({ phase: 'reduce' }, s.reduceSeconds);
    m.stepPhaseDuration.observe({ phase: 'wait' }, Math.max(0, s.seconds - compute - transfer - s.reduceSeconds));
    for (const [worker, seconds] of s.workerSeconds) m.workerStepSeconds.set({ worker }, seconds);
    for (const t of s.timings) m.workerSamples.inc({ worker: t.worker }, t.samples);
    const rate = s.samples / Math.max(s.seconds, 1e-9);
    this.samplesPerSecondAverage = this.smooth(this.samplesPerSecondAverage, rate);
    this.stepSecondsAverage = this.smooth(this.stepSecondsAverage, s.seconds);
    m.samplesPerSecond.set(this.samplesPerSecondAverage);
    this.setSplit('train', s.train);
    for (const group of GROUPS) m.learningRate.set({ group }, s.lr[group]);
    this.setFrozen(s.frozen);
    m.epoch.set(s.epoch);
    m.epochProgress.set((s.stepInEpoch + 1) / s.stepsPerEpoch);
    m.etaSeconds.set(s.stepsLeft * this.stepSecondsAverage);
  }

  /** Records a finished evaluation. */
  onValidation(val: { loss: number; top1: number; top5: number }): void {
    this.setSplit('validation', val);
  }

  /** The freeze state in force. */
  setFrozen(backboneFrozen: boolean): void {
    this.metrics.frozen.set({ group: 'backbone' }, backboneFrozen ? 1 : 0);
    this.metrics.frozen.set({ group: 'head' }, 0);
  }

  /** Membership gauges. */
  setWorkers(active: number, waiting: boolean): void {
    this.metrics.activeWorkers.set(active);
    this.metrics.waitingForWorkers.set(waiting ? 1 : 0);
  }

  /** Forgets a departed worker's per-worker series, so a dead worker does not look like a straggler. */
  forgetWorker(worker: string): void {
    this.metrics.workerStepSeconds.remove({ worker });
  }

  private setSplit(split: 'train' | 'validation', v: { loss: number; top1: number; top5: number }): void {
    this.metrics.loss.set({ split }, v.loss);
    this.metrics.top1Accuracy.set({ split }, v.top1);
    this.metrics.top5Accuracy.set({ split }, v.top5);
  }

  private smooth(average: number, value: number): number {
    return average === 0 ? value : average + SMOOTHING * (value - average);
  }
}
