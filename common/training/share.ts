import * as tf from '@tensorflow/tfjs';
import { type Augmenter, type Batch, type Cifar10Images, makeBatch } from '../data';
import { type ModelParts, namedVariables } from '../models';
import type { MicroBatch } from './batch-plan';
import type { BatchMetrics } from './classification-metrics';
import { TrainingShapeError } from './errors';
import { type ShareResult, ShareSum } from './share-sum';
import { computeGradients, toTensorBatch } from './train-step';

export type { ShareResult };

/** Where a share's samples come from and how they are augmented. */
export interface ShareInput {
  /** Images the micro-batches' sample indices point into. */
  data: Cifar10Images;
  microBatches: readonly MicroBatch[];
  augmenter: Augmenter;
  jobSeed: number;
  epoch: number;
  globalStep: number;
  backboneFrozen: boolean;
  /**
   * Training-set ids of `data`'s images when it holds only some of them (a worker's received samples):
   * `sampleIds[i]` is the id of image i. Augmentation and seeds follow the id. @default identity
   */
  sampleIds?: ArrayLike<number>;
}

/**
 * The BatchNorm moving statistics (the non-trainable weights) by `originalName`: of both parts, or of the
 * head alone when the backbone is frozen, since a frozen backbone runs BatchNorm in inference mode.
 */
export function movingStatistics(parts: ModelParts, options: { backboneFrozen: boolean }): Map<string, tf.LayerVariable> {
  const named = namedVariables(parts);
  const vars = options.backboneFrozen ? named.head : [...named.backbone, ...named.head];
  return new Map(vars.filter((v) => !v.trainable).map((v) => [v.originalName, v]));
}

/**
 * Forward and backward passes over a run of micro-batches of one step. Each micro-batch is its own
 * BatchNorm batch (ghost batch norm) with its own Dropout seed `(jobSeed, globalStep, micro-batch id)`, so
 * its gradient is the same whichever worker computes it. Gradients and statistic deltas are added by the
 * fixed summation tree over the run's micro-batches (`ShareSum`), which is what keeps every split of a
 * step bit-identical.
 */
export function computeShare(parts: ModelParts, input: ShareInput): ShareResult {
  if (input.microBatches.length === 0) throw new TrainingShapeError('share', 'expected at least one micro-batch, got none');
  const sum = new ShareSum(input.microBatches.length);
  try {
    input.microBatches.forEach((mb, position) => sum.add(position, microBatchResult(parts, input, mb)));
    return sum.finish();
  } catch (err) {
    sum.dispose();
    throw err;
  }
}

/**
 * One micro-batch's gradients, loss and hits, and the change it made to each BatchNorm moving statistic,
 * which is measured and then undone: the replica's statistics move once per step, by the mean change.
 */
export function microBatchResult(parts: ModelParts, input: ShareInput, mb: MicroBatch): ShareResult {
  const stats = movingStatistics(parts, input);
  const before = new Map([...stats].map(([key, v]) => [key, tf.keep(v.read().clone())]));
  try {
    const part = microBatchGradients(parts, input, mb);
    const movingStatDeltas = new Map<string, tf.Tensor>();
    for (const [key, v] of stats) {
      const start = before.get(key) as tf.Tensor;
      movingStatDeltas.set(key, tf.sub(v.read(), start));
      v.write(start);
    }
    return { ...part, movingStatDeltas, microBatches: 1 };
  } finally {
    tf.dispose([...before.values()]);
  }
}

/**
 * Applies the mean moving-statistic change over the step's `microBatches` micro-batches: every replica
 * and the coordinator run this with the same sums, so their statistics stay identical.
 */
export function applyMovingStatDeltas(parts: ModelParts, deltaSums: ReadonlyMap<string, tf.Tensor>, microBatches: number): void {
  if (deltaSums.size === 0) return;
  const stats = movingStatistics(parts, { backboneFrozen: false });
  tf.tidy(() => {
    for (const [key, delta] of deltaSums) {
      const v = stats.get(key);
      if (!v) throw new TrainingShapeError('movingStatDeltas', `expected a BatchNorm statistic of the model, got ${key}`);
      v.write(tf.add(v.read(), tf.div(delta, microBatches)));
    }
  });
}

function microBatchGradients(
  parts: ModelParts,
  input: ShareInput,
  mb: MicroBatch,
): BatchMetrics & { grads: Map<string, tf.Tensor> } {
  const ids = input.sampleIds ? Array.from(mb.sampleIndices, (i) => input.sampleIds?.[i] as number) : undefined;
  const batch: Batch = makeBatch(input.data, mb.sampleIndices, {
    augmenter: input.augmenter,
    jobSeed: input.jobSeed,
    epoch: input.epoch,
    sampleIds: ids,
  });
  const tensors = toTensorBatch(batch);
  try {
    return computeGradients(parts, tensors, {
      backboneFrozen: input.backboneFrozen,
      dropoutSeed: `${input.jobSeed}:${input.globalStep}:${mb.id}`,
    });
  } finally {
    tf.dispose([tensors.x, tensors.y]);
  }
}
