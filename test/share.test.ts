import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../common/compute';
import { Augmenter } from '../common/data';
import { parseJobSpec } from '../common/job';
import { buildModel, disposeModelParts, type ModelParts } from '../common/models';
import {
  applyMovingStatDeltas,
  computeShare,
  cutMicroBatches,
  movingStatistics,
  type ShareInput,
  type ShareResult,
} from '../common/training';
import { randomImages } from './support/images';

const SPEC = parseJobSpec(
  'model: {architecture: small_cnn, head: seed, headUnits: 8, dropout: 0.3}\ntraining: {epochs: 1, batchSize: 12, microBatchSize: 4}\noptimizer: {learningRate: 0.1}',
);


/** Largest |a-b| over the largest |b|: the relative error of the equivalence bar. */
function relativeError(a: tf.Tensor, b: tf.Tensor): number {
  const da = a.dataSync();
  const db = b.dataSync();
  let diff = 0;
  let scale = 1e-12;
  for (let i = 0; i < db.length; i++) {
    diff = Math.max(diff, Math.abs(da[i] - db[i]));
    scale = Math.max(scale, Math.abs(db[i]));
  }
  return diff / scale;
}

function assertSameSums(split: Map<string, tf.Tensor>, whole: Map<string, tf.Tensor>, what: string): void {
  assert.deepEqual([...split.keys()].sort(), [...whole.keys()].sort(), `${what}: same variables`);
  for (const [key, t] of whole) {
    const err = relativeError(split.get(key) as tf.Tensor, t);
    assert.ok(err <= 1e-5, `${what} ${key}: relative error ${err}`);
  }
}

function add(a: ShareResult, b: ShareResult): Map<string, tf.Tensor>[] {
  return [a.grads, a.movingStatDeltas].map((m, i) => {
    const other = i === 0 ? b.grads : b.movingStatDeltas;
    return new Map([...m].map(([k, t]) => [k, other.has(k) ? tf.add(t, other.get(k) as tf.Tensor) : t]));
  });
}

describe('computeShare: micro-batches make a step independent of how it is split', function () {
  let parts: ModelParts;
  const data = randomImages(12, 5);

  before(async () => {
    await initBackend({ prefer: 'wasm' });
    parts = await buildModel(SPEC.model, 3);
  });
  after(() => disposeModelParts(parts));

  function input(microBatchIds: number[], backboneFrozen: boolean): ShareInput {
    const all = cutMicroBatches(Uint32Array.from({ length: 12 }, (_, i) => i), SPEC.training.microBatchSize);
    return {
      data,
      microBatches: all.filter((m) => microBatchIds.includes(m.id)),
      augmenter: new Augmenter(SPEC.data.augment),
      jobSeed: 1,
      epoch: 0,
      globalStep: 7,
      backboneFrozen,
    };
  }

  for (const backboneFrozen of [false, true]) {
    it(`two shares add up to the whole step, BatchNorm and dropout included (backbone ${backboneFrozen ? 'frozen' : 'training'})`, () => {
      const stats = movingStatistics(parts, { backboneFrozen: false });
      const statsBefore = [...stats.values()].map((v) => v.read().dataSync().slice());
      const whole = computeShare(parts, input([0, 1, 2], backboneFrozen));
      const first = computeShare(parts, input([0, 1], backboneFrozen));
      const second = computeShare(parts, input([2], backboneFrozen));
      const [grads, deltas] = add(first, second);
      assertSameSums(grads, whole.grads, 'gradient');
      assertSameSums(deltas, whole.movingStatDeltas, 'moving-statistic delta');
      assert.ok(whole.movingStatDeltas.size > 0, 'the seed head has BatchNorm statistics that move');
      assert.equal(first.count + second.count, whole.count);
      assert.equal(whole.microBatches, 3);
      assert.ok(Math.abs(first.lossSum + second.lossSum - whole.lossSum) <= 1e-4 * Math.abs(whole.lossSum));
      // The replica's statistics are restored after every micro-batch: only applyMovingStatDeltas moves them.
      [...stats.values()].forEach((v, i) => assert.deepEqual(v.read().dataSync(), statsBefore[i]));
      tf.dispose([...grads.values(), ...deltas.values()]);
      for (const r of [whole, first, second]) tf.dispose([...r.grads.values(), ...r.movingStatDeltas.values()]);
    });
  }

  it('a frozen backbone neither computes gradients nor moves its statistics', () => {
    const share = computeShare(parts, input([0], true));
    const backboneKeys = new Set(movingStatistics(parts, { backboneFrozen: false }).keys());
    for (const key of movingStatistics(parts, { backboneFrozen: true }).keys()) backboneKeys.delete(key);
    assert.ok([...share.grads.keys()].every((k) => k.startsWith('head_')), `gradients only for the head: ${[...share.grads.keys()]}`);
    assert.ok([...share.movingStatDeltas.keys()].every((k) => !backboneKeys.has(k)));
    tf.dispose([...share.grads.values(), ...share.movingStatDeltas.values()]);
  });

  it('applyMovingStatDeltas moves the statistics by the mean change per micro-batch', () => {
    const share = computeShare(parts, input([0, 1, 2], false));
    const [key, delta] = [...share.movingStatDeltas][0];
    const stat = movingStatistics(parts, { backboneFrozen: false }).get(key) as tf.LayerVariable;
    const expected = tf.tidy(() => tf.add(stat.read(), tf.div(delta, 3)));
    applyMovingStatDeltas(parts, share.movingStatDeltas, share.microBatches);
    assert.ok(relativeError(stat.read(), expected) <= 1e-6);
    tf.dispose([expected, ...share.grads.values(), ...share.movingStatDeltas.values()]);
  });

  it('keeps the tensor count flat across shares', () => {
    const run = (): void => {
      const r = computeShare(parts, input([0, 1], false));
      applyMovingStatDeltas(parts, r.movingStatDeltas, r.microBatches);
      tf.dispose([...r.grads.values(), ...r.movingStatDeltas.values()]);
    };
    run();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) run();
    assert.equal(tf.memory().numTensors, before);
  });
});
