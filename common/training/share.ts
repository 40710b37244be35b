import * as tf from '@tensorflow/tfjs';
import { type Augmenter, type Batch, type Cifar10Images, makeBatch } from '../data';
import { type ModelParts, namedVariables } from '../models';
import type { MicroBatch } from './batch-plan';
import type { BatchMetrics } from './classification-metrics';
import { TrainingShapeError } from './errors';
import { computeGradients, toTensorBatch } from './train-step';

/**
 * What one worker contributes to a global step for its run of micro-batches (the local trainer is one
 * worker with every micro-batch). Sums, so shares of any size add up to the whole step.
 */
export interface ShareResult extends BatchMetrics {
  /** Gradient sums over the share's samples, by variable `originalName`; frozen variables absent. */
  grads: Map<string, tf.Tensor>;
  /**
   * Sum over the share's micro-batches of the change each made to a BatchNorm moving statistic, by
   * `originalName`. The replica's statistics are restored after every micro-batch, so the change is
   * applied once per step, on every replica alike, by {@link applyMovingStatDeltas}.
   */
  movingStatDeltas: Map<string, tf.Tensor>;
  microBatches: number;
}

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
 * its gradient is the same whichever worker computes it. Gradients are summed in micro-batch order.
 */
export function computeShare(parts: ModelParts, input: ShareInput): ShareResult {
  if (input.microBatches.length === 0) throw new TrainingShapeError('share', 'expected at least one micro-batch, got none');
  const stats = movingStatistics(parts, input);
  const before = new Map([...stats].map(([key, v]) => [key, tf.keep(v.read().clone())]));
  const result: ShareResult = { grads: new Map(), movingStatDeltas: new Map(), microBatches: 0, lossSum: 0, correctTop1: 0, correctTop5: 0, count: 0 };
  try {
    for (const mb of input.microBatches) {
      const part = microBatchGradients(parts, input, mb);
      addInto(result.grads, part.grads);
      const deltas = new Map<string, tf.Tensor>();
      for (const [key, v] of stats) {
        const start = before.get(key) as tf.Tensor;
        deltas.set(key, tf.sub(v.read(), start));
        v.write(start);
      }
      addInto(result.movingStatDeltas, deltas);
      result.microBatches++;
      result.lossSum += part.lossSum;
      result.correctTop1 += part.correctTop1;
      result.correctTop5 += part.correctTop5;
      result.count += part.count;
    }
    return result;
  } catch (err) {
    tf.dispose([...result.grads.values(), ...result.movingStatDeltas.values()]);
    throw err;
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

/**
 * Adds `part` into `acc` key by key, taking ownership of `part`'s tensors; the order of calls is the order
 * of summation, which is what keeps shares of a step bit-reproducible.
 */
export function addInto(acc: Map<string, tf.Tensor>, part: Map<string, tf.Tensor>): void {
  for (const [key, t] of part) {
    const prev = acc.get(key);
    if (prev === undefined) {
      acc.set(key, t);
    } else {
      acc.set(key, tf.add(prev, t));
      tf.dispose([prev, t]);
    }
  }
}
