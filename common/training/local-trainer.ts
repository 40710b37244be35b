import * as tf from '@tensorflow/tfjs';
import { Augmenter, type Cifar10Images, makeBatch } from '../data';
import type { JobSpec } from '../job';
import type { ModelParts } from '../models';
import { cutMicroBatches, epochBatches, stepsPerEpoch } from './batch-plan';
import { ClassificationMetrics } from './classification-metrics';
import { DivergenceError } from './errors';
import { type EpochEvent, type GroupLearningRates, type StepEvent, type TrainerEvent, TrainerEventType } from './events';
import { applyMovingStatDeltas, computeShare, type ShareInput, type ShareResult } from './share';
import type { ShareThreads } from './share-threads';
import { evaluateBatch, toTensorBatch } from './train-step';
import {
  applyGradientSums,
  beginEpoch,
  createTrainerState,
  disposeTrainerState,
  endEpoch,
  type TrainerState,
} from './trainer-state';

/** What {@link runLocalTraining} trains on and reports to. */
export interface LocalTrainerDeps {
  train: Cifar10Images;
  /** Validation images; an empty set (count 0) skips validation and ReduceLROnPlateau. */
  val: Cifar10Images;
  /** Test images (`data.testSet`), evaluated after every epoch and only reported. */
  test?: Cifar10Images;
  parts: ModelParts;
  /** Receives every event synchronously, in order. An exception thrown here stops training. */
  onEvent?: (e: TrainerEvent) => void;
  /** Stops training between steps; `run` then rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Stop once this many epochs are done (a sweep's rung boundary); @default training.epochs */
  untilEpoch?: number;
  /** Called between epochs, after the schedule's end-of-epoch update: where epoch checkpoints are taken. */
  onEpochEnd?: (state: TrainerState) => void | Promise<void>;
  /** Threads that compute each step's micro-batches (the weights do not depend on it); @default this thread */
  threads?: ShareThreads;
}

/** What a finished run returns. */
export interface TrainingResult {
  /** One entry per epoch, as emitted. */
  epochs: EpochEvent[];
  /** The last epoch's event. */
  final: EpochEvent;
  globalSteps: number;
  seconds: number;
}

/**
 * Inference-mode loss, accuracy and confusion counts of `parts` over a whole image set, in batches
 * of `batchSize` without augmentation.
 */
export function evaluateDataset(parts: ModelParts, data: Cifar10Images, batchSize: number, numClasses: number): ClassificationMetrics {
  const metrics = new ClassificationMetrics(numClasses);
  for (let start = 0; start < data.count; start += batchSize) {
    const idx = new Uint32Array(Math.min(batchSize, data.count - start)).map((_, k) => start + k);
    const batch = toTensorBatch(makeBatch(data, idx));
    try {
      metrics.add(evaluateBatch(parts, batch));
    } finally {
      tf.dispose([batch.x, batch.y]);
    }
  }
  return metrics;
}

/**
 * One single-process training step on the samples `indices` of `train`: the step's micro-batches as one
 * share (`computeShare`), then the mean update and the BatchNorm statistics. The distributed trainer splits
 * exactly this: workers compute shares of the micro-batches, the coordinator sums them in micro-batch order
 * and calls `applyGradientSums` and `applyMovingStatDeltas`. Adds the batch's training metrics to `metrics`
 * and returns the step event.
 */
export function localTrainStep(
  state: TrainerState,
  train: Cifar10Images,
  indices: ArrayLike<number>,
  augmenter: Augmenter,
  metrics: ClassificationMetrics,
): StepEvent {
  const t0 = performance.now();
  return applyLocalShare(state, computeShare(state.parts, localShareInput(state, train, indices, augmenter)), metrics, t0);
}

/** {@link localTrainStep} with the share computed by a pool of threads: the same bytes, sooner. */
export async function localTrainStepOn(
  threads: ShareThreads,
  state: TrainerState,
  train: Cifar10Images,
  indices: ArrayLike<number>,
  augmenter: Augmenter,
  metrics: ClassificationMetrics,
): Promise<StepEvent> {
  const t0 = performance.now();
  const result = await threads.computeShare(state.parts, localShareInput(state, train, indices, augmenter));
  return applyLocalShare(state, result, metrics, t0);
}

/** The whole step as one share. */
function localShareInput(state: TrainerState, train: Cifar10Images, indices: ArrayLike<number>, augmenter: Augmenter): ShareInput {
  return {
    data: train,
    microBatches: cutMicroBatches(Uint32Array.from(indices), state.spec.training.microBatchSize),
    augmenter,
    jobSeed: state.spec.seed,
    epoch: state.epoch,
    globalStep: state.globalStep,
    backboneFrozen: state.frozen,
  };
}

/** Applies a computed step (update, statistics, metrics) and returns its event; frees the result. */
function applyLocalShare(state: TrainerState, result: ShareResult, metrics: ClassificationMetrics, t0: number): StepEvent {
  const { epoch, stepInEpoch: step, globalStep } = state;
  let lr: GroupLearningRates;
  try {
    if (!Number.isFinite(result.lossSum)) throw new DivergenceError(epoch, globalStep, result.lossSum / result.count);
    lr = applyGradientSums(state, result.grads, result.count);
    applyMovingStatDeltas(state.parts, result.movingStatDeltas, result.microBatches);
  } finally {
    tf.dispose([...result.grads.values(), ...result.movingStatDeltas.values()]);
  }
  metrics.add(result);
  const seconds = (performance.now() - t0) / 1000;
  return {
    type: TrainerEventType.Step,
    epoch,
    step,
    stepsPerEpoch: state.stepsPerEpoch,
    globalStep,
    count: result.count,
    loss: result.lossSum / result.count,
    top1: result.correctTop1 / result.count,
    lr,
    samplesPerSec: result.count / Math.max(seconds, 1e-9),
  };
}

/**
 * The single-process trainer: the reference the distributed trainer must match step for step.
 * Per epoch: schedule events, the seeded global batches of `training.batchSize` (last partial batch
 * kept), one {@link localTrainStep} each, validation in `evalBatchSize` batches, ReduceLROnPlateau.
 * It writes no files: everything it learns goes out as events.
 */
export class LocalTrainer {
  /** The schedule/optimizer state it drives; exposed for checkpoints and inspection. */
  readonly state: TrainerState;
  private readonly augmenter: Augmenter;

  constructor(readonly spec: JobSpec, private readonly deps: LocalTrainerDeps) {
    this.state = createTrainerState(spec, deps.parts, stepsPerEpoch(deps.train.count, spec.training.batchSize));
    this.augmenter = new Augmenter(spec.data.augment);
  }

  /** Trains from the state's next epoch to `training.epochs`. */
  async run(): Promise<TrainingResult> {
    const { spec, deps, state } = this;
    const emit = (e: TrainerEvent): void => deps.onEvent?.(e);
    const t0 = performance.now();
    const epochs: EpochEvent[] = [];
    const until = Math.min(deps.untilEpoch ?? spec.training.epochs, spec.training.epochs);
    for (let epoch = state.epoch + 1; epoch < until; epoch++) {
      const te = performance.now();
      beginEpoch(state, epoch).forEach(emit);
      const trainMetrics = new ClassificationMetrics(spec.model.numClasses);
      let last: StepEvent | null = null;
      for (const indices of epochBatches(deps.train.count, spec.seed, epoch, spec.training.batchSize)) {
        deps.signal?.throwIfAborted();
        last = deps.threads
          ? await localTrainStepOn(deps.threads, state, deps.train, indices, this.augmenter, trainMetrics)
          : localTrainStep(state, deps.train, indices, this.augmenter, trainMetrics);
        emit(last);
        // Let timers, I/O and abort signals run between steps; the step itself is synchronous.
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      const val = deps.val.count > 0
        ? evaluateDataset(deps.parts, deps.val, spec.training.evalBatchSize, spec.model.numClasses).validationSummary()
        : null;
      const test = deps.test
        ? evaluateDataset(deps.parts, deps.test, spec.training.evalBatchSize, spec.model.numClasses).validationSummary()
        : undefined;
      const event: EpochEvent = {
        type: TrainerEventType.Epoch,
        epoch,
        globalStep: state.globalStep,
        train: trainMetrics.summary(),
        val,
        ...(test ? { test } : {}),
        lr: last?.lr ?? { backbone: 0, head: 0 },
        frozen: state.frozen,
        seconds: (performance.now() - te) / 1000,
      };
      epochs.push(event);
      emit(event);
      endEpoch(state, val?.loss ?? null).forEach(emit);
      await deps.onEpochEnd?.(state);
    }
    if (epochs.length === 0) throw new RangeError(`no epoch left to train: state is at epoch ${state.epoch}, stopping before ${until}`);
    return { epochs, final: epochs[epochs.length - 1], globalSteps: state.globalStep, seconds: (performance.now() - t0) / 1000 };
  }

  /** Frees the optimizer state (the model parts belong to the caller). */
  dispose(): void {
    disposeTrainerState(this.state);
  }
}

/** Trains `deps.parts` on `spec` in this process and frees the optimizer afterwards. */
export async function runLocalTraining(spec: JobSpec, deps: LocalTrainerDeps): Promise<TrainingResult> {
  const trainer = new LocalTrainer(spec, deps);
  try {
    return await trainer.run();
  } finally {
    trainer.dispose();
  }
}
