import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend, KernelShapeError } from '../common/compute';
import { MOVING_AVERAGE_KERNEL, movingAverages } from '../common/compute/wasm-moving-average';
import { Rng } from '../common/random';
import { bitsEqual, maxRelativeError } from './support/floats';

// The one-kernel update of a BatchNorm layer's moving statistics (wasm-moving-average.ts): the bits of the
// stock layer's composed ops on wasm, a relative 1e-5 of them on the plain-JS cpu backend, and no tensor
// composed on the gradient tape when a training-mode layer runs under tf.variableGrads.

const quiet = { log: (): void => undefined };
const MOMENTUM = 0.99;

/** Seeded moving and batch statistics of `channels` values (variances positive). */
function statistics(channels: number): Float32Array[] {
  const rng = new Rng(`moving-average:${channels}`);
  const values = (lo: number, hi: number) => Float32Array.from({ length: channels }, () => rng.uniform(lo, hi));
  return [values(-3, 3), values(0.01, 5), values(-3, 3), values(0.01, 5)];
}

/** `[mean', variance']` on the current backend, by the kernel or (`composed`) by the stock layer's ops. */
function update(channels: number, composed: boolean): Float32Array[] {
  return tf.tidy(() => {
    const [mean, variance, batchMean, batchVariance] = statistics(channels).map((v) => tf.tensor1d(v));
    const out = composed
      ? [mean, variance].map((m, i) => tf.sub(m, tf.mul(tf.sub(m, [batchMean, batchVariance][i]), 1 - MOMENTUM)))
      : movingAverages({ mean, variance }, { mean: batchMean, variance: batchVariance }, MOMENTUM);
    return out.map((t) => t.dataSync() as Float32Array);
  });
}

describe('compute: moving statistics kernel', () => {
  after(async () => {
    await initBackend({ prefer: 'wasm', ...quiet });
  });

  for (const channels of [1, 7, 32, 1024]) {
    it(`${channels} channels: the composed ops' bits on wasm, within 1e-5 of the cpu backend`, async () => {
      await initBackend({ prefer: 'cpu', ...quiet });
      assert.equal(tf.getKernel(MOVING_AVERAGE_KERNEL, 'cpu'), undefined, 'the cpu reference must compose the stock ops');
      const reference = update(channels, true);
      await initBackend({ prefer: 'wasm', ...quiet });
      const profile = await tf.profile(() => void update(channels, false));
      assert.deepEqual(profile.kernelNames, [MOVING_AVERAGE_KERNEL], `the update ran ${profile.kernelNames.join(', ')}`);
      const fused = update(channels, false);
      const composed = update(channels, true);
      fused.forEach((values, i) => {
        assert.ok(bitsEqual(values, composed[i]), `statistic ${i}: not the bits of the composed ops`);
        const err = maxRelativeError(values, reference[i]);
        assert.ok(err <= 1e-5, `statistic ${i}: relative error ${err.toExponential(2)} against cpu`);
      });
    });
  }

  it('saves nothing on the tape: a training-mode BatchNorm under variableGrads runs no Sub', async () => {
    await initBackend({ prefer: 'wasm', ...quiet });
    const layer = tf.layers.batchNormalization({ momentum: MOMENTUM });
    layer.build([4, 8]);
    const x = tf.variable(tf.tensor2d(statistics(32)[0], [4, 8]));
    try {
      const profile = await tf.profile(() => {
        const { value, grads } = tf.variableGrads(() => tf.sum(layer.apply(x, { training: true }) as tf.Tensor) as tf.Scalar, [x]);
        tf.dispose([value, ...Object.values(grads)]);
      });
      assert.ok(profile.kernelNames.includes(MOVING_AVERAGE_KERNEL), `ran ${profile.kernelNames.join(', ')}`);
      // The composed update runs two Subs per statistic (the sum's gradient runs a Multiply of its own).
      assert.ok(!profile.kernelNames.includes(tf.Sub), `the moving statistics ran ${profile.kernelNames.join(', ')}`);
    } finally {
      x.dispose();
      layer.weights.forEach((v) => v.dispose());
    }
  });

  it('refuses statistics of different lengths, naming the input', async () => {
    await initBackend({ prefer: 'wasm', ...quiet });
    const [mean, variance, batchMean, batchVariance] = [tf.zeros([4]), tf.ones([4]), tf.zeros([3]), tf.ones([4])];
    assert.throws(() => tf.engine().runKernel(MOVING_AVERAGE_KERNEL, { mean, variance, batchMean, batchVariance }, { momentum: MOMENTUM }),
      (err: unknown) => err instanceof KernelShapeError && /expected batchMean of shape \[4\], got \[3\]/.test(err.message));
    tf.dispose([mean, variance, batchMean, batchVariance]);
  });
});
