import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../common/compute';
import { parseJobSpec } from '../common/job';
import { buildModel, disposeModelParts, type ModelParts, namedVariables } from '../common/models';
import { Rng } from '../common/random';
import {
  computeGradients,
  evaluateBatch,
  type GradientResult,
  type TensorBatch,
  trainableVariables,
  TrainingShapeError,
} from '../common/training';

/**
 * A tiny model built by hand from layers whose gradients every backend has (pooling, dense, BN):
 * backbone avgpool 8x8 -> flatten -> dense(12, tanh) [-> BN]; head [dropout ->] dense(10) logits.
 */
function tinyParts(seed: number, opts: { bn?: boolean; dropout?: number } = {}): ModelParts {
  const rng = new Rng(seed);
  const init = () => tf.initializers.glorotUniform({ seed: rng.uint32() });
  const backbone = tf.sequential({ name: 'backbone' });
  backbone.add(tf.layers.averagePooling2d({ inputShape: [32, 32, 3], poolSize: 8, name: 'bb_pool' }));
  backbone.add(tf.layers.flatten({ name: 'bb_flat' }));
  backbone.add(tf.layers.dense({ units: 12, activation: 'tanh', kernelInitializer: init(), name: 'bb_dense' }));
  if (opts.bn) backbone.add(tf.layers.batchNormalization({ name: 'bb_bn' }));
  const head = tf.sequential({ name: 'head' });
  if (opts.dropout) head.add(tf.layers.dropout({ inputShape: [12], rate: opts.dropout, name: 'head_dropout' }));
  head.add(tf.layers.dense({ inputShape: [12], units: 10, kernelInitializer: init(), name: 'head_logits' }));
  return { ...tinyPartsShell(), backbone, head };
}

/** The non-layer fields of a hand-built ModelParts. */
function tinyPartsShell(): Omit<ModelParts, 'backbone' | 'head'> {
  const spec = parseJobSpec('name: t\nmodel: { architecture: small_cnn }\ntraining: { epochs: 1 }\noptimizer: { type: sgd, learningRate: 0.1 }').model;
  return { spec, preprocess: { scale: 1 / 127.5, offset: -1, upsample: 1 }, inputSize: 32 };
}

/** A tiny conv backbone: avgpool to 8x8, conv 3x3x4 [-> BN], ReLU, global average pool; dense head. */
function tinyConvParts(seed: number, bn: boolean): ModelParts {
  const rng = new Rng(seed);
  const backbone = tf.sequential({ name: 'backbone' });
  backbone.add(tf.layers.averagePooling2d({ inputShape: [32, 32, 3], poolSize: 4, name: 'cb_pool' }));
  backbone.add(tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', name: 'cb_conv',
    kernelInitializer: tf.initializers.heNormal({ seed: rng.uint32() }) }));
  if (bn) backbone.add(tf.layers.batchNormalization({ name: 'cb_bn' }));
  backbone.add(tf.layers.reLU({ name: 'cb_relu' }));
  backbone.add(tf.layers.globalAveragePooling2d({ name: 'cb_gap' }));
  const head = tf.sequential({ name: 'head' });
  head.add(tf.layers.dense({ inputShape: [4], units: 10, name: 'head_logits',
    kernelInitializer: tf.initializers.glorotUniform({ seed: rng.uint32() }) }));
  return { ...tinyPartsShell(), backbone, head };
}

/** `n` random raw images and labels. */
function randomBatch(n: number, seed: number): { x: Float32Array; y: Int32Array } {
  const rng = new Rng(seed);
  return {
    x: Float32Array.from({ length: n * 32 * 32 * 3 }, () => rng.int(256)),
    y: Int32Array.from({ length: n }, () => rng.int(10)),
  };
}

function tensors(b: { x: Float32Array; y: Int32Array }, from = 0, to = b.y.length): TensorBatch {
  return {
    x: tf.tensor4d(b.x.subarray(from * 3072, to * 3072), [to - from, 32, 32, 3]),
    y: tf.tensor1d(b.y.subarray(from, to), 'int32'),
  };
}

function withBatch<T>(b: TensorBatch, f: (b: TensorBatch) => T): T {
  try {
    return f(b);
  } finally {
    tf.dispose([b.x, b.y]);
  }
}

function disposeGrads(r: GradientResult): void {
  tf.dispose([...r.grads.values()]);
}

/** max |a - b| relative to max |a| over all entries. */
function maxRelDiff(a: Float32Array | Int32Array | Uint8Array, b: Float32Array | Int32Array | Uint8Array): number {
  let diff = 0;
  let scale = 1e-12;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(a[i]));
  }
  return diff / scale;
}

function values(v: tf.LayerVariable): Float32Array {
  return Float32Array.from(v.read().dataSync() as Float32Array);
}

describe('train step', () => {
  before(async () => {
    await initBackend({ prefer: 'wasm' });
  });

  it('gradients of a batch of 8 equal the sum of its halves (no BatchNorm), loss and counts too', () => {
    const parts = tinyParts(1);
    const data = randomBatch(8, 2);
    const whole = withBatch(tensors(data), (b) => computeGradients(parts, b, { backboneFrozen: false }));
    const a = withBatch(tensors(data, 0, 4), (b) => computeGradients(parts, b, { backboneFrozen: false }));
    const b = withBatch(tensors(data, 4, 8), (bb) => computeGradients(parts, bb, { backboneFrozen: false }));
    assert.deepEqual([...whole.grads.keys()].sort(), ['bb_dense/bias', 'bb_dense/kernel', 'head_logits/bias', 'head_logits/kernel']);
    for (const [key, g] of whole.grads) {
      const sum = tf.add(a.grads.get(key) as tf.Tensor, b.grads.get(key) as tf.Tensor);
      const rel = maxRelDiff(g.dataSync() as Float32Array, sum.dataSync() as Float32Array);
      sum.dispose();
      assert.ok(rel <= 1e-5, `${key}: halves differ from the whole by ${rel} (relative)`);
    }
    assert.ok(Math.abs(whole.lossSum - (a.lossSum + b.lossSum)) <= 1e-5 * whole.lossSum);
    assert.equal(whole.count, 8);
    assert.equal(whole.correctTop1, a.correctTop1 + b.correctTop1);
    assert.equal(whole.correctTop5, a.correctTop5 + b.correctTop5);
    [whole, a, b].forEach(disposeGrads);
    disposeModelParts(parts);
  });

  it('is the SUM of per-sample gradients: N times the gradient of tf.losses mean cross-entropy', () => {
    const parts = tinyParts(3);
    const data = randomBatch(6, 4);
    const ours = withBatch(tensors(data), (b) => computeGradients(parts, b, { backboneFrozen: false }));
    const vars = trainableVariables(parts);
    const ref = withBatch(tensors(data), (b) => tf.variableGrads(() => {
      const features = parts.backbone.apply(tf.sub(tf.mul(b.x, 1 / 127.5), 1), { training: true }) as tf.Tensor;
      const logits = parts.head.apply(features, { training: true }) as tf.Tensor2D;
      return tf.losses.softmaxCrossEntropy(tf.oneHot(b.y, 10), logits) as tf.Scalar;
    }, vars.map((v) => v.variable)));
    for (const v of vars) {
      const expected = tf.mul(ref.grads[v.variable.name], 6);
      const rel = maxRelDiff(ours.grads.get(v.key)?.dataSync() as Float32Array, expected.dataSync() as Float32Array);
      expected.dispose();
      assert.ok(rel <= 1e-5, `${v.key}: relative difference ${rel}`);
    }
    assert.ok(Math.abs(ours.lossSum - 6 * ref.value.dataSync()[0]) <= 1e-4);
    tf.dispose([ref.value, ...Object.values(ref.grads)]);
    disposeGrads(ours);
    disposeModelParts(parts);
  });

  it('frozen backbone: no backbone gradients, BatchNorm statistics untouched, and shards still add up', () => {
    const parts = tinyParts(5, { bn: true });
    const data = randomBatch(8, 6);
    const bn = namedVariables(parts).backbone.filter((v) => !v.trainable);
    assert.deepEqual(bn.map((v) => v.originalName), ['bb_bn/moving_mean', 'bb_bn/moving_variance']);
    const before = bn.map(values);
    const whole = withBatch(tensors(data), (b) => computeGradients(parts, b, { backboneFrozen: true }));
    const a = withBatch(tensors(data, 0, 3), (b) => computeGradients(parts, b, { backboneFrozen: true }));
    const b = withBatch(tensors(data, 3, 8), (bb) => computeGradients(parts, bb, { backboneFrozen: true }));
    assert.deepEqual([...whole.grads.keys()].sort(), ['head_logits/bias', 'head_logits/kernel']);
    bn.forEach((v, i) => assert.deepEqual(values(v), before[i], `${v.originalName} moved while frozen`));
    for (const [key, g] of whole.grads) {
      const sum = tf.add(a.grads.get(key) as tf.Tensor, b.grads.get(key) as tf.Tensor);
      assert.ok(maxRelDiff(g.dataSync() as Float32Array, sum.dataSync() as Float32Array) <= 1e-5, key);
      sum.dispose();
    }
    [whole, a, b].forEach(disposeGrads);
    // Unfrozen, the training-mode forward pass moves the moving statistics (documented side effect).
    const unfrozen = withBatch(tensors(data), (bb) => computeGradients(parts, bb, { backboneFrozen: false }));
    assert.ok(unfrozen.grads.has('bb_bn/gamma') && unfrozen.grads.has('bb_dense/kernel'));
    assert.notDeepEqual(values(bn[0]), before[0]);
    disposeGrads(unfrozen);
    disposeModelParts(parts);
  });

  it('seeds dropout: the same seed gives the same gradients, another seed other ones', () => {
    const parts = tinyParts(7, { dropout: 0.5 });
    const data = randomBatch(8, 8);
    const run = (seed: string) => withBatch(tensors(data), (b) => computeGradients(parts, b, { backboneFrozen: false, dropoutSeed: seed }));
    const [r1, r2, r3] = [run('a'), run('a'), run('b')];
    const k = (r: GradientResult) => Array.from(r.grads.get('head_logits/kernel')?.dataSync() as Float32Array);
    assert.deepEqual(k(r1), k(r2));
    assert.notDeepEqual(k(r1), k(r3));
    [r1, r2, r3].forEach(disposeGrads);
    disposeModelParts(parts);
  });

  it('keeps the tensor count flat across steps (the caller disposes the gradients)', () => {
    const parts = tinyParts(9, { bn: true, dropout: 0.2 });
    const data = randomBatch(4, 10);
    const step = (frozen: boolean) => withBatch(tensors(data), (b) => disposeGrads(computeGradients(parts, b, { backboneFrozen: frozen })));
    step(false);
    const start = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      step(i % 2 === 0);
      withBatch(tensors(data), (b) => evaluateBatch(parts, b));
    }
    assert.equal(tf.memory().numTensors, start);
    disposeModelParts(parts);
  });

  it('evaluateBatch: inference-mode sums and a confusion matrix that agrees with them', () => {
    const parts = tinyParts(11, { bn: true, dropout: 0.5 });
    const data = randomBatch(16, 12);
    const moving = namedVariables(parts).backbone.filter((v) => !v.trainable).map(values);
    const e1 = withBatch(tensors(data), (b) => evaluateBatch(parts, b));
    const e2 = withBatch(tensors(data), (b) => evaluateBatch(parts, b));
    assert.deepEqual(e2, e1, 'deterministic: dropout off, moving statistics used');
    namedVariables(parts).backbone.filter((v) => !v.trainable).forEach((v, i) => assert.deepEqual(values(v), moving[i]));
    assert.equal(e1.count, 16);
    assert.equal(e1.confusion.reduce((s, c) => s + c, 0), 16);
    let diagonal = 0;
    for (let c = 0; c < 10; c++) diagonal += e1.confusion[c * 11];
    assert.equal(diagonal, e1.correctTop1);
    assert.ok(e1.correctTop5 >= e1.correctTop1 && e1.lossSum > 0);
    disposeModelParts(parts);
  });

  it('rejects batches of the wrong shape or dtype, naming what was expected', () => {
    const parts = tinyParts(13);
    const bad: TensorBatch = { x: tf.zeros([2, 16, 16, 3]) as tf.Tensor4D, y: tf.tensor1d([1, 2], 'int32') };
    assert.throws(() => computeGradients(parts, bad, { backboneFrozen: false }), /batch.x: expected raw images \[N,32,32,3\], got \[2,16,16,3\]/);
    const floatLabels: TensorBatch = { x: tf.zeros([2, 32, 32, 3]) as tf.Tensor4D, y: tf.tensor1d([1, 2]) };
    assert.throws(() => evaluateBatch(parts, floatLabels), TrainingShapeError);
    const mismatch: TensorBatch = { x: tf.zeros([3, 32, 32, 3]) as tf.Tensor4D, y: tf.tensor1d([1, 2], 'int32') };
    assert.throws(() => computeGradients(parts, mismatch, { backboneFrozen: true }), /2 labels for 3 images/);
    tf.dispose([bad.x, bad.y, floatLabels.x, floatLabels.y, mismatch.x, mismatch.y]);
    disposeModelParts(parts);
  });

  it('conv backbone: halves add up without BatchNorm; frozen/unfrozen gradient sets with it', () => {
    const plain = tinyConvParts(15, false);
    const data = randomBatch(8, 14);
    const whole = withBatch(tensors(data), (b) => computeGradients(plain, b, { backboneFrozen: false }));
    const a = withBatch(tensors(data, 0, 5), (b) => computeGradients(plain, b, { backboneFrozen: false }));
    const b = withBatch(tensors(data, 5, 8), (bb) => computeGradients(plain, bb, { backboneFrozen: false }));
    const g = whole.grads.get('cb_conv/kernel') as tf.Tensor;
    assert.deepEqual(g.shape, [3, 3, 3, 4]);
    assert.ok(tf.tidy(() => tf.max(tf.abs(g)).dataSync()[0]) > 0, 'conv kernel gradient is all zero');
    for (const [key, gw] of whole.grads) {
      const sum = tf.add(a.grads.get(key) as tf.Tensor, b.grads.get(key) as tf.Tensor);
      const rel = maxRelDiff(gw.dataSync() as Float32Array, sum.dataSync() as Float32Array);
      sum.dispose();
      assert.ok(rel <= 1e-5, `${key}: halves differ from the whole by ${rel} (relative)`);
    }
    [whole, a, b].forEach(disposeGrads);
    disposeModelParts(plain);

    const withBn = tinyConvParts(16, true);
    const frozen = withBatch(tensors(data), (bb) => computeGradients(withBn, bb, { backboneFrozen: true }));
    const all = withBatch(tensors(data), (bb) => computeGradients(withBn, bb, { backboneFrozen: false }));
    assert.deepEqual([...frozen.grads.keys()].sort(), ['head_logits/bias', 'head_logits/kernel']);
    assert.deepEqual([...all.grads.keys()].sort(),
      ['cb_bn/beta', 'cb_bn/gamma', 'cb_conv/bias', 'cb_conv/kernel', 'head_logits/bias', 'head_logits/kernel']);
    [frozen, all].forEach(disposeGrads);
    disposeModelParts(withBn);
  });

  it('built-in small_cnn: gradients for every backbone and head variable', async () => {
    const spec = parseJobSpec('name: t\nmodel: { architecture: small_cnn, head: seed }\ntraining: { epochs: 1 }\noptimizer: { type: sgd, learningRate: 0.1 }');
    const parts = await buildModel(spec.model, 1);
    const all = withBatch(tensors(randomBatch(4, 17)), (b) => computeGradients(parts, b, { backboneFrozen: false }));
    assert.deepEqual([...all.grads.keys()].sort(), trainableVariables(parts).map((v) => v.key).sort());
    disposeGrads(all);
    disposeModelParts(parts);
  });
});
