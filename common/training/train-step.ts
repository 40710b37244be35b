import * as tf from '@tensorflow/tfjs';
import type { ParamGroupName } from '../job';
import { type ModelParts, namedVariables, preprocess, reseedDropout } from '../models';
import { Rng } from '../random';
import { type BatchMetrics, topKHits } from './classification-metrics';
import { TrainingShapeError } from './errors';

/** A batch as tensors: raw 0..255 pixels [N, 32, 32, 3] and int32 labels [N]. */
export interface TensorBatch {
  x: tf.Tensor4D;
  y: tf.Tensor1D;
}

/** One trainable variable, addressed by a name that is the same in every process. */
export interface TrainableVariable {
  /** The variable's `originalName` (`conv1/kernel`, `head_logits/bias`); see common/models. */
  key: string;
  group: ParamGroupName;
  variable: tf.Variable;
}

/** Options of {@link computeGradients}. */
export interface ComputeGradientsOptions {
  /** No gradients for the backbone, which runs with `training: false` (BatchNorm inference mode). */
  backboneFrozen: boolean;
  /**
   * Seed for the Dropout masks of this call. Without it tfjs draws masks from Math.random and runs are
   * not reproducible. The local trainer passes one per global step; a distributed worker should mix
   * in its shard so shards do not share masks.
   */
  dropoutSeed?: string | number;
}

/** What one worker contributes to a global step: gradient SUMS and metric sums over its samples. */
export interface GradientResult extends BatchMetrics {
  /**
   * Sum over the batch of per-sample loss gradients, keyed by variable `originalName`. Sums, so
   * shards of any sizes add up exactly; divide by the global sample count before an update. Frozen
   * variables are absent. The caller owns (and must dispose) these tensors.
   */
  grads: Map<string, tf.Tensor>;
}

/**
 * Trainable variables of both parts keyed by `originalName`, in model order. The optimizer's
 * `params` map and the parameter groups are built from this.
 */
export function trainableVariables(parts: ModelParts): TrainableVariable[] {
  const named = namedVariables(parts);
  const out: TrainableVariable[] = [];
  for (const group of ['backbone', 'head'] as const) {
    for (const lv of named[group]) {
      if (lv.trainable) out.push({ key: lv.originalName, group, variable: lv.read() as tf.Variable });
    }
  }
  return out;
}

/** Wraps a data-pipeline batch (`makeBatch`) in tensors; the caller disposes them. */
export function toTensorBatch(batch: { x: Float32Array; y: Int32Array }): TensorBatch {
  const n = batch.y.length;
  if (batch.x.length !== n * 32 * 32 * 3) {
    throw new TrainingShapeError('batch.x', `expected ${n * 32 * 32 * 3} values for ${n} images, got ${batch.x.length}`);
  }
  return { x: tf.tensor4d(batch.x, [n, 32, 32, 3]), y: tf.tensor1d(batch.y, 'int32') };
}

/**
 * Sparse softmax cross-entropy of `logits` [N, C] against int32 `labels` [N], SUMMED over the
 * batch (`-sum log softmax(logits)[label]`). Call inside `tf.tidy`.
 */
export function crossEntropySum(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
  const logProbs = tf.logSoftmax(logits);
  return tf.neg(tf.sum(tf.mul(logProbs, tf.oneHot(labels, logits.shape[1])))) as tf.Scalar;
}

/**
 * Forward and backward pass over one batch (a whole global batch, or one worker's shard of it).
 * Gradients are SUMS over samples so the coordinator can add shards and divide by the total count;
 * for that to equal the single-process gradient the model must have no training-mode BatchNorm in
 * the trained path (batch statistics couple the samples of a shard).
 *
 * BatchNorm layers that run in training mode update their moving statistics as a side effect of
 * this forward pass (tfjs-layers writes them during `apply`); with shards, each worker's copy moves
 * towards its own shard's statistics, and the distributed core has to reconcile them.
 */
export function computeGradients(parts: ModelParts, batch: TensorBatch, opts: ComputeGradientsOptions): GradientResult {
  const n = checkBatch(batch);
  const vars = trainableVariables(parts).filter((v) => !(opts.backboneFrozen && v.group === 'backbone'));
  if (vars.length === 0) throw new TrainingShapeError('variables', 'expected at least one trainable variable, got none');
  const keyByVarName = new Map(vars.map((v) => [v.variable.name, v.key]));
  if (opts.dropoutSeed !== undefined) reseedDropout(parts, new Rng(`dropout:${opts.dropoutSeed}`));
  let logits: tf.Tensor2D | null = null;
  try {
    const out = tf.tidy(() => {
      const input = preprocess(parts, batch.x);
      // A frozen backbone runs outside the gradient tape: nothing is recorded for it, and BatchNorm
      // uses its moving statistics.
      const frozenFeatures = opts.backboneFrozen ? (parts.backbone.apply(input, { training: false }) as tf.Tensor) : null;
      const { value, grads } = tf.variableGrads(() => {
        const features = frozenFeatures ?? (parts.backbone.apply(input, { training: true }) as tf.Tensor);
        const z = parts.head.apply(features, { training: true }) as tf.Tensor2D;
        // Kept past variableGrads' inner scope for the accuracy counts; disposed in `finally`.
        logits = tf.keep(z);
        return crossEntropySum(z, batch.y);
      }, vars.map((v) => v.variable));
      const hits = topKHits(logits as unknown as tf.Tensor2D, batch.y);
      return { value, grads, top1: hits.top1, topK: hits.topK };
    });
    const grads = new Map<string, tf.Tensor>();
    for (const [varName, g] of Object.entries(out.grads)) grads.set(keyByVarName.get(varName) as string, g);
    const [lossSum, correctTop1, correctTop5] = [out.value, out.top1, out.topK].map((t) => {
      const v = t.dataSync()[0];
      t.dispose();
      return v;
    });
    return { grads, lossSum, correctTop1, correctTop5, count: n };
  } finally {
    (logits as tf.Tensor | null)?.dispose();
  }
}

/**
 * Loss and accuracy sums of one batch in inference mode (both parts `training: false`), with the
 * confusion counts per-class accuracy is computed from.
 */
export function evaluateBatch(parts: ModelParts, batch: TensorBatch): Required<BatchMetrics> {
  const n = checkBatch(batch);
  const out = tf.tidy(() => {
    const features = parts.backbone.apply(preprocess(parts, batch.x), { training: false }) as tf.Tensor;
    const logits = parts.head.apply(features, { training: false }) as tf.Tensor2D;
    const hits = topKHits(logits, batch.y);
    return { loss: crossEntropySum(logits, batch.y), top1: hits.top1, topK: hits.topK, pred: tf.argMax(logits, 1) };
  });
  const numClasses = parts.head.outputs[0].shape[1] as number;
  try {
    const pred = out.pred.dataSync();
    const labels = batch.y.dataSync();
    const confusion = new Uint32Array(numClasses * numClasses);
    for (let i = 0; i < n; i++) confusion[labels[i] * numClasses + pred[i]]++;
    return {
      lossSum: out.loss.dataSync()[0],
      correctTop1: out.top1.dataSync()[0],
      correctTop5: out.topK.dataSync()[0],
      count: n,
      confusion,
    };
  } finally {
    tf.dispose([out.loss, out.top1, out.topK, out.pred]);
  }
}

/** Checks a batch's shapes and dtypes; returns the sample count. */
function checkBatch(batch: TensorBatch): number {
  const { x, y } = batch;
  if (x.rank !== 4 || x.shape[1] !== 32 || x.shape[2] !== 32 || x.shape[3] !== 3) {
    throw new TrainingShapeError('batch.x', `expected raw images [N,32,32,3], got [${x.shape}]`);
  }
  if (y.rank !== 1 || y.dtype !== 'int32') {
    throw new TrainingShapeError('batch.y', `expected int32 labels [N], got ${y.dtype} [${y.shape}]`);
  }
  if (x.shape[0] !== y.shape[0] || y.shape[0] === 0) {
    throw new TrainingShapeError('batch', `expected as many labels as images (at least 1), got ${y.shape[0]} labels for ${x.shape[0]} images`);
  }
  return y.shape[0];
}
