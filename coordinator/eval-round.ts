import { type BatchMetrics, ClassificationMetrics, cutMicroBatches, type MicroBatch } from '../common';
import { type Handout, HandoutTracker } from './step';

/** What an evaluation round is created with. */
export interface EvalRoundOptions {
  epoch: number;
  /** The weights being evaluated: the coordinator's weightsVersion (= global steps done). */
  weightsVersion: number;
  configVersion: number;
  /** Images in the validation split. */
  valCount: number;
  /** `training.evalBatchSize`: one micro-batch of the pass. */
  evalBatchSize: number;
  numClasses: number;
  workers: readonly string[];
  deadlineMs: number;
  /** The job's clock. */
  now: () => number;
}

/**
 * The validation pass at the end of an epoch, spread over the workers like a training step: the split
 * cut into micro-batches of `evalBatchSize` (the batches the local trainer evaluates), handed out and
 * redone on failure the same way, and their loss, accuracy and confusion counts added up.
 */
export class EvalRound {
  readonly kind = 'eval' as const;
  readonly epoch: number;
  readonly weightsVersion: number;
  readonly configVersion: number;
  readonly microBatches: readonly MicroBatch[];
  readonly collector: HandoutTracker;
  readonly metrics: ClassificationMetrics;
  /** Settles when every micro-batch is in. */
  readonly completed: Promise<void>;
  private resolve!: () => void;

  constructor(options: EvalRoundOptions) {
    this.epoch = options.epoch;
    this.weightsVersion = options.weightsVersion;
    this.configVersion = options.configVersion;
    const ids = Uint32Array.from({ length: options.valCount }, (_, i) => i);
    this.microBatches = cutMicroBatches(ids, options.evalBatchSize);
    this.collector = new HandoutTracker(this.microBatches.length, options.workers, { deadlineMs: options.deadlineMs, now: options.now });
    this.metrics = new ClassificationMetrics(options.numClasses);
    this.completed = new Promise<void>((resolve) => (this.resolve = resolve));
  }

  /** The global step the pass belongs to (the weights version it evaluates). */
  get globalStep(): number {
    return this.weightsVersion;
  }

  /** Samples in the given micro-batches of the pass. */
  sampleCount(ids: readonly number[]): number {
    return ids.reduce((n, id) => n + (this.microBatches[id]?.sampleIndices.length ?? 0), 0);
  }

  /** Adds an accepted result (the caller checked it against the handout). */
  accept(worker: string, handout: Handout, sums: BatchMetrics): void {
    this.collector.accept(worker, handout.microBatchIds);
    this.metrics.add(sums);
    if (this.collector.complete) this.resolve();
  }
}
