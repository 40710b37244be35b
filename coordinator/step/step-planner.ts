import { ConfigError, cutMicroBatches, epochPermutation, type MicroBatch } from '../../common';
import { PlanningError } from '../errors';

export { cutMicroBatches, type MicroBatch };

/**
 * Where training stands: `step` is the index of a step within `epoch` (from 0). As a resume point it
 * names the next step to run; the epoch's sample order is recomputed from the seed, so this pair is all
 * a checkpoint needs to continue mid-epoch.
 */
export interface StepPosition {
  epoch: number;
  step: number;
}

/** Options of {@link StepPlanner}. */
export interface StepPlannerOptions {
  /** Training samples per epoch; sample indices run over 0..sampleCount-1 (positions in the train split). */
  sampleCount: number;
  /** Job seed: with the epoch it fixes the epoch's sample order. */
  seed: number;
  /** Samples per global step, summed over all workers (`training.batchSize`). */
  batchSize: number;
  /**
   * Samples per micro-batch (`training.microBatchSize`), the unit of work and of ghost BatchNorm. Need not
   * divide `batchSize`: each step is cut the same way, its last micro-batch short.
   */
  microBatchSize: number;
}

/** Everything needed to run one global step, independent of which workers run it. */
export interface StepPlan extends StepPosition {
  /** Steps completed before this one since the start of training: `epoch * stepsPerEpoch + step`. */
  globalStep: number;
  /** Samples in the step: `batchSize`, or fewer for the last step of an epoch. */
  sampleCount: number;
  microBatches: readonly MicroBatch[];
}

/** A run of micro-batches given to one worker for one step. */
export interface Share {
  worker: string;
  /** Ascending, contiguous in the list they were cut from. */
  microBatchIds: number[];
}

function checkPositiveInteger(field: string, value: number): void {
  if (!Number.isInteger(value) || value < 1) throw new ConfigError(field, `expected an integer >= 1, got ${value}`);
}

/**
 * Plans steps of a data-parallel job: the seeded order of each epoch, how many global steps it has
 * (the last partial batch is kept, so every sample is seen once per epoch), and which samples form each
 * micro-batch. Pure and deterministic in its options, so a restarted coordinator plans identical steps.
 */
export class StepPlanner {
  readonly sampleCount: number;
  readonly seed: number;
  readonly batchSize: number;
  readonly microBatchSize: number;
  /** Global steps per epoch: `ceil(sampleCount / batchSize)`. */
  readonly stepsPerEpoch: number;
  private cachedEpoch = -1;
  private cachedOrder: Uint32Array = new Uint32Array(0);

  constructor(options: StepPlannerOptions) {
    checkPositiveInteger('sampleCount', options.sampleCount);
    checkPositiveInteger('training.batchSize', options.batchSize);
    checkPositiveInteger('training.microBatchSize', options.microBatchSize);
    if (!Number.isInteger(options.seed)) throw new ConfigError('seed', `expected an integer, got ${options.seed}`);
    if (options.microBatchSize > options.batchSize) {
      throw new ConfigError(
        'training.microBatchSize',
        `expected at most training.batchSize (${options.batchSize}), got ${options.microBatchSize}`,
      );
    }
    this.sampleCount = options.sampleCount;
    this.seed = options.seed;
    this.batchSize = options.batchSize;
    this.microBatchSize = options.microBatchSize;
    this.stepsPerEpoch = Math.ceil(options.sampleCount / options.batchSize);
  }

  /**
   * The epoch's sample order (a copy: callers may keep or mutate it). Recomputed from (seed, epoch), which
   * is why checkpoints store no permutation.
   */
  permutation(epoch: number): Uint32Array {
    return this.order(epoch).slice();
  }

  /** Samples in step `step` of any epoch. */
  stepSampleCount(step: number): number {
    this.checkStep({ epoch: 0, step });
    return Math.min(this.batchSize, this.sampleCount - step * this.batchSize);
  }

  /** Micro-batches in step `step` of any epoch. */
  microBatchCount(step: number): number {
    return Math.ceil(this.stepSampleCount(step) / this.microBatchSize);
  }

  /** The full plan of one step: its samples cut into micro-batches, in the epoch's seeded order. */
  plan(at: StepPosition): StepPlan {
    this.checkStep(at);
    const start = at.step * this.batchSize;
    const samples = this.order(at.epoch).subarray(start, Math.min(start + this.batchSize, this.sampleCount));
    return {
      epoch: at.epoch,
      step: at.step,
      globalStep: this.globalStep(at),
      sampleCount: samples.length,
      microBatches: cutMicroBatches(samples, this.microBatchSize),
    };
  }

  /** Steps completed before `at` since the start of training. */
  globalStep(at: StepPosition): number {
    this.checkStep(at);
    return at.epoch * this.stepsPerEpoch + at.step;
  }

  /** Inverse of {@link globalStep}. */
  positionOf(globalStep: number): StepPosition {
    if (!Number.isInteger(globalStep) || globalStep < 0) {
      throw new PlanningError(`expected a global step >= 0, got ${globalStep}`);
    }
    return { epoch: Math.floor(globalStep / this.stepsPerEpoch), step: globalStep % this.stepsPerEpoch };
  }

  /** The step after `at`, rolling over into the next epoch after the last step. */
  next(at: StepPosition): StepPosition {
    this.checkStep(at);
    return at.step + 1 < this.stepsPerEpoch ? { epoch: at.epoch, step: at.step + 1 } : { epoch: at.epoch + 1, step: 0 };
  }

  /** Whether `at` is the last step of its epoch (the epoch's report is due after it). */
  isLastStep(at: StepPosition): boolean {
    this.checkStep(at);
    return at.step === this.stepsPerEpoch - 1;
  }

  private order(epoch: number): Uint32Array {
    if (epoch !== this.cachedEpoch) {
      this.cachedOrder = epochPermutation(this.sampleCount, this.seed, epoch);
      this.cachedEpoch = epoch;
    }
    return this.cachedOrder;
  }

  private checkStep(at: StepPosition): void {
    if (!Number.isInteger(at.epoch) || at.epoch < 0) throw new PlanningError(`expected an epoch >= 0, got ${at.epoch}`);
    if (!Number.isInteger(at.step) || at.step < 0 || at.step >= this.stepsPerEpoch) {
      throw new PlanningError(
        `expected a step in 0..${this.stepsPerEpoch - 1} (${this.sampleCount} samples, batch ${this.batchSize}), ` +
          `got ${at.step}`,
      );
    }
  }
}

function checkDistinct(workers: readonly string[], what: string): void {
  const seen = new Set<string>();
  for (const w of workers) {
    if (seen.has(w)) throw new PlanningError(`${what}: worker ${JSON.stringify(w)} is listed twice`);
    seen.add(w);
  }
}

/**
 * Cuts `microBatchIds` into contiguous runs, one per worker in the given order, as even as possible: the
 * first `n % w` workers get one more (3 over 2 workers: [2, 1]). With more workers than micro-batches the
 * last workers get nothing and are left out of the result (idle this step). Contiguous runs keep each
 * worker's gradient sum a sum over consecutive micro-batches, which the coordinator adds in id order.
 */
export function assignMicroBatches(microBatchIds: readonly number[], workers: readonly string[]): Share[] {
  checkDistinct(workers, 'assignMicroBatches');
  if (microBatchIds.length === 0) return [];
  if (workers.length === 0) {
    throw new PlanningError(`no workers to assign ${microBatchIds.length} micro-batches to`);
  }
  const base = Math.floor(microBatchIds.length / workers.length);
  const extra = microBatchIds.length % workers.length;
  const shares: Share[] = [];
  let next = 0;
  for (let k = 0; k < workers.length && next < microBatchIds.length; k++) {
    const take = base + (k < extra ? 1 : 0);
    shares.push({ worker: workers[k], microBatchIds: microBatchIds.slice(next, next + take) });
    next += take;
  }
  return shares;
}

/**
 * Spreads a dropped worker's unfinished micro-batches over the survivors in the same step: the returned
 * shares are extra work on top of what each survivor already holds. Survivors with the least work this
 * step come first (stable in the given order otherwise), so a worker left idle by the plan picks up
 * work before a busy one. `done` lists micro-batches whose results were already accepted (from the
 * ledger), which are not redone.
 */
export function reassign(
  failedWorker: string,
  shares: readonly Share[],
  done: ReadonlySet<number>,
  survivors: readonly string[],
): Share[] {
  checkDistinct(survivors, 'reassign');
  if (survivors.includes(failedWorker)) {
    throw new PlanningError(`reassign: failed worker ${JSON.stringify(failedWorker)} is listed among the survivors`);
  }
  const unfinished = shares
    .filter((s) => s.worker === failedWorker)
    .flatMap((s) => s.microBatchIds)
    .filter((id) => !done.has(id))
    .sort((a, b) => a - b);
  if (unfinished.length === 0) return [];
  if (survivors.length === 0) {
    throw new PlanningError(
      `no surviving workers to take over micro-batches [${unfinished.join(', ')}] of ${JSON.stringify(failedWorker)}`,
    );
  }
  const load = new Map<string, number>(survivors.map((w) => [w, 0]));
  for (const s of shares) {
    if (!load.has(s.worker)) continue;
    const pending = s.microBatchIds.filter((id) => !done.has(id)).length;
    load.set(s.worker, (load.get(s.worker) ?? 0) + pending);
  }
  const byLoad = survivors
    .map((w, k) => ({ w, k, load: load.get(w) ?? 0 }))
    .sort((a, b) => a.load - b.load || a.k - b.k)
    .map((x) => x.w);
  return assignMicroBatches(unfinished, byLoad);
}
