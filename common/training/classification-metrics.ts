import * as tf from '@tensorflow/tfjs';
import type { MetricsSummary, ValidationSummary } from './events';
import { TrainingShapeError } from './errors';

/**
 * Sums over one batch, the unit workers report and the coordinator adds up. Sums (not means) so
 * shards of different sizes combine exactly.
 */
export interface BatchMetrics {
  /** Sum of per-sample cross-entropy. */
  lossSum: number;
  correctTop1: number;
  correctTop5: number;
  count: number;
  /** Row-major `numClasses x numClasses` counts, row = true class, column = top-1 prediction. */
  confusion?: Uint32Array;
}

/** Top-k accuracy uses k = 5, or every class when there are fewer. */
export const TOP_K = 5;

/**
 * Tensor-side counts of top-1 and top-k hits for `logits` [N, C] and int32 `labels` [N]. A sample
 * is a top-k hit when fewer than k classes outrank its true class; ties go to the lower class
 * index, as `argMax` does, so a constant (e.g. zero-initialised) head scores chance, not 100%. A
 * NaN true-class logit is never a hit. Call inside `tf.tidy`.
 */
export function topKHits(logits: tf.Tensor2D, labels: tf.Tensor1D, k = TOP_K): { top1: tf.Scalar; topK: tf.Scalar } {
  const [n, c] = logits.shape;
  if (labels.shape[0] !== n) {
    throw new TrainingShapeError('labels', `expected ${n} labels for ${n} logit rows, got ${labels.shape[0]}`);
  }
  const oneHot = tf.oneHot(labels, c);
  const trueLogit = tf.sum(tf.mul(logits, oneHot), 1, true);
  const classIdx = tf.range(0, c, 1, 'int32').reshape([1, c]);
  const before = tf.less(classIdx, labels.reshape([n, 1]));
  const outranks = tf.logicalOr(tf.greater(logits, trueLogit), tf.logicalAnd(tf.equal(logits, trueLogit), before));
  const rank = tf.sum(tf.cast(outranks, 'int32'), 1);
  const valid = tf.logicalNot(tf.isNaN(trueLogit.reshape([n])));
  const hits = (kk: number) => tf.sum(tf.cast(tf.logicalAnd(tf.less(rank, kk), valid), 'int32')) as tf.Scalar;
  return { top1: hits(1), topK: hits(Math.min(k, c)) };
}

/**
 * Adds up {@link BatchMetrics} over an epoch or a validation pass and turns them into rates. Works
 * the same on one process and on the coordinator (add every worker's shard sums).
 */
export class ClassificationMetrics {
  lossSum = 0;
  correctTop1 = 0;
  correctTop5 = 0;
  count = 0;
  /** Row-major confusion counts; only batches that carry one contribute. */
  readonly confusion: Uint32Array;

  constructor(readonly numClasses: number) {
    if (!(Number.isInteger(numClasses) && numClasses >= 2)) {
      throw new TrainingShapeError('numClasses', `expected an integer >= 2, got ${numClasses}`);
    }
    this.confusion = new Uint32Array(numClasses * numClasses);
  }

  /** Adds one batch (or one shard of a batch). */
  add(b: BatchMetrics): void {
    this.lossSum += b.lossSum;
    this.correctTop1 += b.correctTop1;
    this.correctTop5 += b.correctTop5;
    this.count += b.count;
    if (b.confusion !== undefined) {
      if (b.confusion.length !== this.confusion.length) {
        throw new TrainingShapeError('confusion',
          `expected ${this.confusion.length} counts (${this.numClasses} classes squared), got ${b.confusion.length}`);
      }
      for (let i = 0; i < b.confusion.length; i++) this.confusion[i] += b.confusion[i];
    }
  }

  /** Mean loss and accuracies; NaN when nothing was added. */
  summary(): MetricsSummary {
    const n = this.count;
    return {
      loss: n > 0 ? this.lossSum / n : NaN,
      top1: n > 0 ? this.correctTop1 / n : NaN,
      top5: n > 0 ? this.correctTop5 / n : NaN,
      count: n,
    };
  }

  /** Accuracy of each true class from the confusion counts; null for a class never seen. */
  perClassAccuracy(): (number | null)[] {
    const c = this.numClasses;
    const out: (number | null)[] = [];
    for (let t = 0; t < c; t++) {
      let total = 0;
      for (let p = 0; p < c; p++) total += this.confusion[t * c + p];
      out.push(total > 0 ? this.confusion[t * c + t] / total : null);
    }
    return out;
  }

  /** {@link summary} plus per-class accuracy, as validation reports it. */
  validationSummary(): ValidationSummary {
    return { ...this.summary(), perClass: this.perClassAccuracy() };
  }
}
