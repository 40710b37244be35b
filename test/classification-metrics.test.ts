import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../common/compute';
import { ClassificationMetrics, TrainingShapeError, topKHits } from '../common/training';

function hits(logits: number[][], labels: number[]): { top1: number; top5: number } {
  return tf.tidy(() => {
    const h = topKHits(tf.tensor2d(logits), tf.tensor1d(labels, 'int32'));
    return { top1: h.top1.dataSync()[0], top5: h.topK.dataSync()[0] };
  });
}

describe('classification metrics', () => {
  before(async () => {
    await initBackend({ prefer: 'wasm' });
  });

  it('counts top-1 and top-5 hits by the rank of the true class', () => {
    const row = [0.1, 0.9, 0.3, 0.5, 0.2, 0.8, 0.05]; // ranks: 1,5,3,2,4,0,6 (by descending value)
    assert.deepEqual(hits([row], [1]), { top1: 1, top5: 1 });
    assert.deepEqual(hits([row], [5]), { top1: 0, top5: 1 }, 'second best');
    assert.deepEqual(hits([row], [4]), { top1: 0, top5: 1 }, 'fifth best');
    assert.deepEqual(hits([row], [0]), { top1: 0, top5: 0 }, 'sixth best');
    assert.deepEqual(hits([row, row, row], [1, 0, 6]), { top1: 1, top5: 1 }, 'summed over the batch');
  });

  it('breaks ties towards the lower class index, so a constant head scores chance, not 100%', () => {
    const flat = Array.from({ length: 10 }, () => Array(10).fill(0));
    const labels = Array.from({ length: 10 }, (_, i) => i);
    assert.deepEqual(hits(flat, labels), { top1: 1, top5: 5 });
  });

  it('never counts a NaN true-class logit as a hit; uses every class when there are fewer than 5', () => {
    assert.deepEqual(hits([[NaN, 0, 0]], [0]), { top1: 0, top5: 0 });
    assert.deepEqual(hits([[3, 2, 1], [1, 2, 3]], [2, 0]), { top1: 0, top5: 2 });
  });

  it('rejects labels that do not match the logit rows', () => {
    assert.throws(() => tf.tidy(() => topKHits(tf.zeros([3, 4]) as tf.Tensor2D, tf.tensor1d([1, 2], 'int32'))), TrainingShapeError);
  });

  it('adds shard sums into means; the same sums in any split give the same summary', () => {
    const whole = new ClassificationMetrics(3);
    whole.add({ lossSum: 6, correctTop1: 3, correctTop5: 4, count: 4 });
    const shards = new ClassificationMetrics(3);
    shards.add({ lossSum: 1.5, correctTop1: 1, correctTop5: 1, count: 1 });
    shards.add({ lossSum: 4.5, correctTop1: 2, correctTop5: 3, count: 3 });
    assert.deepEqual(shards.summary(), whole.summary());
    assert.deepEqual(whole.summary(), { loss: 1.5, top1: 0.75, top5: 1, count: 4 });
    const empty = new ClassificationMetrics(3).summary();
    assert.ok(Number.isNaN(empty.loss) && Number.isNaN(empty.top1) && empty.count === 0);
  });

  it('per-class accuracy from confusion counts, null for a class never seen', () => {
    const m = new ClassificationMetrics(3);
    // rows = true class: class 0 -> 2 right, 1 as class 2; class 1 -> 1 right; class 2 absent.
    m.add({ lossSum: 0, correctTop1: 3, correctTop5: 4, count: 4, confusion: Uint32Array.from([2, 0, 1, 0, 1, 0, 0, 0, 0]) });
    m.add({ lossSum: 0, correctTop1: 0, correctTop5: 1, count: 1, confusion: Uint32Array.from([0, 0, 0, 1, 0, 0, 0, 0, 0]) });
    assert.deepEqual(m.perClassAccuracy(), [2 / 3, 0.5, null]);
    assert.deepEqual(m.validationSummary().perClass, [2 / 3, 0.5, null]);
    assert.throws(() => m.add({ lossSum: 0, correctTop1: 0, correctTop5: 0, count: 0, confusion: new Uint32Array(4) }),
      /expected 9 counts/);
  });
});
