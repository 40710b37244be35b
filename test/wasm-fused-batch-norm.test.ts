import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../common/compute';
import { Rng } from '../common/random';
import { bitsEqual, maxRelativeError } from './support/floats';

// Batch norm in inference mode (wasm-fused-batch-norm.ts): one pass over the activation where the module
// applies, the bits of the three broadcasting ops it replaces on wasm, a relative 1e-5 of the cpu backend.

const quiet = { log: (): void => undefined };
const EPSILON = 1e-3;

/** A seeded activation [2, 3, 5, channels] and its per-channel mean, variance, scale and offset. */
function inputs(channels: number): { x: Float32Array; params: Float32Array[] } {
  const rng = new Rng(`fused-batch-norm:${channels}`);
  const values = (n: number, lo: number, hi: number) => Float32Array.from({ length: n }, () => rng.uniform(lo, hi));
  return { x: values(30 * channels, -40, 40), params: [values(channels, -5, 5), values(channels, 0.01, 9), values(channels, -2, 2), values(channels, -3, 3)] };
}

/** tf.batchNorm (FusedBatchNorm) on the current backend, or (`composed`) the three broadcasting ops. */
function normalize(channels: number, composed: boolean): Float32Array {
  const { x, params } = inputs(channels);
  return tf.tidy(() => {
    const input = tf.tensor4d(x, [2, 3, 5, channels]);
    const [mean, variance, scale, offset] = params.map((p) => tf.tensor1d(p));
    const factor = tf.mul(tf.rsqrt(tf.add(variance, tf.scalar(EPSILON))), scale);
    const y = composed ? tf.add(tf.mul(tf.sub(input, mean), factor), offset) : tf.batchNorm(input, mean, variance, offset, scale, EPSILON);
    return y.dataSync() as Float32Array;
  });
}

describe('compute: batch norm in inference mode', () => {
  after(async () => {
    await initBackend({ prefer: 'wasm', ...quiet });
  });

  for (const channels of [4, 32, 1024, 6]) {
    const path = channels % 4 === 0 ? 'one pass' : 'the three ops (channels not a multiple of 4)';
    it(`${channels} channels, ${path}: the composed ops' bits on wasm, within 1e-5 of the cpu backend`, async () => {
      await initBackend({ prefer: 'cpu', ...quiet });
      const reference = normalize(channels, false);
      await initBackend({ prefer: 'wasm', ...quiet });
      const profile = await tf.profile(() => void normalize(channels, false));
      assert.equal(profile.kernelNames.includes(tf.Sub), channels % 4 !== 0, `batchNorm ran ${profile.kernelNames.join(', ')}`);
      const ours = normalize(channels, false);
      assert.ok(bitsEqual(ours, normalize(channels, true)), 'not the bits of the composed ops');
      const err = maxRelativeError(ours, reference);
      assert.ok(err <= 1e-5, `relative error ${err.toExponential(2)} against cpu`);
    });
  }
});
