import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../common/compute';
import { Augmenter } from '../common/data';
import { parseJobSpec } from '../common/job';
import { buildModel, disposeModelParts, type ModelParts } from '../common/models';
import { computeShare, cutMicroBatches, type ShareInput, type ShareResult, ShareThreadError, ShareThreads } from '../common/training';
import { randomImages } from './support/images';

const SPEC = parseJobSpec(
  'model: {architecture: small_cnn, head: seed, headUnits: 8, dropout: 0.3}\n' +
    'data: {augment: {cropPadding: 2, horizontalFlip: true}}\n' +
    'training: {epochs: 1, batchSize: 20, microBatchSize: 4}\noptimizer: {learningRate: 0.1}',
);

/** The share's tensors as bytes, by name, for exact comparison. */
function bytesOf(r: ShareResult): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const [kind, m] of [['grad', r.grads], ['delta', r.movingStatDeltas]] as const) {
    for (const [key, t] of m) out.set(`${kind} ${key}`, Buffer.from((t.dataSync() as Float32Array).buffer.slice(0)));
  }
  return out;
}

function dispose(r: ShareResult): void {
  tf.dispose([...r.grads.values(), ...r.movingStatDeltas.values()]);
}

describe('ShareThreads: a share computed by a pool of threads is bit-identical to computeShare', function () {
  let parts: ModelParts;
  const data = randomImages(40, 9);
  // A worker's received samples: 20 of 40 images, addressed by their training-set ids.
  const sampleIds = Uint32Array.from({ length: 40 }, (_, i) => 1000 + 3 * i);
  // One pool per thread count, shared by the tests: a thread takes seconds to start (tfjs, wasm, the model).
  const pools = new Map<number, ShareThreads>();

  before(async () => {
    await initBackend({ prefer: 'wasm' });
    parts = await buildModel(SPEC.model, 3);
  });
  after(async () => {
    await Promise.all([...pools.values()].map((p) => p.close()));
    disposeModelParts(parts);
  });

  function pool(count: number): ShareThreads {
    const p = pools.get(count) ?? new ShareThreads(count);
    pools.set(count, p);
    return p;
  }

  function input(backboneFrozen: boolean, globalStep: number): ShareInput {
    // Micro-batches of 4 over 20 scattered samples; the last one short (5 micro-batches: an unbalanced tree).
    const step = Uint32Array.from({ length: 18 }, (_, i) => (7 * i + globalStep) % 40);
    return {
      data,
      microBatches: cutMicroBatches(step, SPEC.training.microBatchSize),
      augmenter: new Augmenter(SPEC.data.augment),
      jobSeed: 5,
      epoch: 1,
      globalStep,
      backboneFrozen,
      sampleIds,
    };
  }

  for (const backboneFrozen of [false, true]) {
    it(`1, 2 and 3 threads give computeShare's bytes, metrics and a flat tensor count (backbone ${backboneFrozen ? 'frozen' : 'training'})`, async () => {
      const reference = computeShare(parts, input(backboneFrozen, 2));
      const expected = bytesOf(reference);
      try {
        for (const count of [1, 2, 3]) {
          const threads = pool(count);
          const tensorsBefore = tf.memory().numTensors;
          const result = await threads.computeShare(parts, input(backboneFrozen, 2));
          try {
            assert.deepEqual(bytesOf(result), expected, `${count} threads: the same bytes`);
            for (const key of ['lossSum', 'correctTop1', 'correctTop5', 'count', 'microBatches'] as const) {
              assert.equal(result[key], reference[key], `${count} threads: ${key}`);
            }
          } finally {
            dispose(result);
          }
          assert.equal(tf.memory().numTensors, tensorsBefore, `${count} threads: no tensor left behind`);
        }
      } finally {
        dispose(reference);
      }
    });
  }

  it('follows the weights: after the replica changes, the next share is computed on the new values', async () => {
    const threads = pool(2);
    const first = await threads.computeShare(parts, input(false, 4));
    const firstBytes = bytesOf(first);
    dispose(first);
    const kernel = parts.head.trainableWeights[0];
    kernel.write(tf.tidy(() => tf.add(kernel.read(), 0.25)));
    const reference = computeShare(parts, input(false, 4));
    const result = await threads.computeShare(parts, input(false, 4));
    try {
      assert.deepEqual(bytesOf(result), bytesOf(reference));
      assert.notDeepEqual(bytesOf(result).get('grad head_logits/kernel'), firstBytes.get('grad head_logits/kernel'));
    } finally {
      dispose(result);
      dispose(reference);
    }
  });

  it('a micro-batch that fails in a thread fails the share with its cause, and the pool goes on', async () => {
    const threads = pool(2);
    const bad = input(false, 3);
    // A micro-batch of no sample passes the main thread's copy and fails in the thread's training step.
    bad.microBatches = [...bad.microBatches.slice(0, 2), { id: 9, sampleIndices: new Uint32Array(0) }];
    const tensorsBefore = tf.memory().numTensors;
    await assert.rejects(threads.computeShare(parts, bad), (err: unknown) => {
      assert.ok(err instanceof ShareThreadError, `expected a ShareThreadError, got ${String(err)}`);
      assert.match(err.message, /share thread \d: TrainingShapeError: batch: expected as many labels as images \(at least 1\)/);
      return true;
    });
    assert.equal(tf.memory().numTensors, tensorsBefore, 'the sums of the micro-batches that were computed are freed');
    const ok = await threads.computeShare(parts, input(false, 3));
    dispose(ok);
  });

  it('refuses a sample index outside the share data, naming the micro-batch', async () => {
    const threads = new ShareThreads(2);
    const bad = input(false, 3);
    bad.microBatches = [{ id: 4, sampleIndices: Uint32Array.of(0, 40) }];
    await assert.rejects(threads.computeShare(parts, bad), /micro-batch 4 \(position 0\): sample index 40 is outside 0\.\.39/);
  });

  it('refuses shares once closed', async () => {
    const threads = new ShareThreads(1);
    await threads.close();
    await assert.rejects(threads.computeShare(parts, input(false, 1)), /share threads are closed/);
  });
});
