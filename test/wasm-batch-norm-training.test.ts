import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend, KernelShapeError } from '../common/compute';
import { BATCH_NORM_TRAINING_GRAD_KERNEL, BATCH_NORM_TRAINING_KERNEL } from '../common/compute/wasm-batch-norm-training';
import { Rng } from '../common/random';
import { maxRelativeError } from './support/floats';

// The one-kernel training-mode BatchNorm of the wasm backend (wasm-batch-norm-training.ts, routed by
// batch-norm-layer.ts) against tfjs-layers' stock BatchNormalization on the plain-JS cpu backend: output,
// moving statistics and the gradients of x, gamma and beta, to a relative 1e-5.

const TOLERANCE = 1e-5;
const quiet = { log: (): void => undefined };

/** What one training-mode call of a BatchNormalization layer gives, as host arrays. */
interface Observed {
  y: Float32Array;
  dx: Float32Array;
  dGamma: Float32Array;
  dBeta: Float32Array;
  movingMean: Float32Array;
  movingVariance: Float32Array;
  kernels: string[];
}

/**
 * A BatchNormalization layer with seeded weights, called once in training mode on seeded x on `backend`:
 * y, the moving statistics after the call, and the gradients of sum(y·w). Same seed, same inputs.
 */
async function observe(backend: 'wasm' | 'cpu', shape: number[], seed: string): Promise<Observed> {
  await initBackend({ prefer: backend, ...quiet });
  const rng = new Rng(seed);
  const channels = shape[shape.length - 1];
  const values = (n: number, lo: number, hi: number) => Float32Array.from({ length: n }, () => rng.uniform(lo, hi));
  const size = shape.reduce((a, b) => a * b, 1);
  const layer = tf.layers.batchNormalization({ momentum: 0.9 });
  layer.build(shape);
  layer.setWeights([values(channels, 0.5, 1.5), values(channels, -1, 1), values(channels, -0.5, 0.5), values(channels, 0.5, 2)]
    .map((v) => tf.tensor1d(v)));
  // x as a variable, so one training call gives the gradients of x and of the weights.
  const x = tf.variable(tf.tensor(values(size, -2, 3), shape));
  const w = tf.tensor(values(size, -1, 1), shape);
  const [gamma, beta] = layer.trainableWeights.map((v) => v.read() as tf.Variable);
  try {
    let y: Float32Array = new Float32Array();
    let grads: tf.NamedTensorMap = {};
    const profile = await tf.profile(() => {
      grads = tf.variableGrads(() => {
        const out = layer.apply(x, { training: true }) as tf.Tensor;
        y = out.dataSync() as Float32Array;
        return tf.sum(tf.mul(out, w)) as tf.Scalar;
      }, [x, gamma, beta]).grads;
    });
    const [dx, dGamma, dBeta] = [x, gamma, beta].map((v) => grads[v.name].dataSync() as Float32Array);
    const [movingMean, movingVariance] = layer.getWeights().slice(2).map((t) => t.dataSync() as Float32Array);
    tf.dispose(Object.values(grads));
    return { y, dx, dGamma, dBeta, movingMean, movingVariance, kernels: profile.kernelNames };
  } finally {
    tf.dispose([x, w]);
    layer.weights.forEach((v) => v.dispose());
  }
}

describe('compute: BatchNorm training kernel against tfjs-layers on the cpu backend', () => {
  // [label, shape]: NHWC with a channel count that fills whole SIMD steps, one with a scalar tail, rank 2.
  const cases: [string, number[]][] = [
    ['NHWC, 8 channels (SIMD steps)', [4, 5, 5, 8]],
    ['NHWC, 6 channels (SIMD step and scalar tail)', [2, 3, 3, 6]],
    ['rank 2, 7 channels (a dense head)', [5, 7]],
    ['a MobileNet-sized activation (2,048 rows)', [8, 16, 16, 32]],
  ];
  for (const [label, shape] of cases) {
    it(`${label}: output, moving statistics and gradients`, async () => {
      const expected = await observe('cpu', shape, label);
      const actual = await observe('wasm', shape, label);
      assert.ok(actual.kernels.includes(BATCH_NORM_TRAINING_KERNEL), `wasm ran ${actual.kernels.join(', ')}, not ${BATCH_NORM_TRAINING_KERNEL}`);
      assert.ok(actual.kernels.includes(BATCH_NORM_TRAINING_GRAD_KERNEL), `wasm ran no ${BATCH_NORM_TRAINING_GRAD_KERNEL}`);
      assert.ok(!expected.kernels.includes(BATCH_NORM_TRAINING_KERNEL), 'the cpu reference must run the stock layer');
      for (const key of ['y', 'dx', 'dGamma', 'dBeta', 'movingMean', 'movingVariance'] as const) {
        const err = maxRelativeError(actual[key], expected[key]);
        assert.ok(err <= TOLERANCE, `${key}: relative error ${err.toExponential(2)} > ${TOLERANCE}`);
      }
    });
  }

  it('leaves inference mode to the stock layer', async () => {
    await initBackend({ prefer: 'wasm', ...quiet });
    const layer = tf.layers.batchNormalization();
    layer.build([2, 4]);
    const x = tf.ones([2, 4]);
    const profile = await tf.profile(() => layer.apply(x, { training: false }) as tf.Tensor);
    assert.ok(!profile.kernelNames.includes(BATCH_NORM_TRAINING_KERNEL), `inference ran ${profile.kernelNames.join(', ')}`);
    tf.dispose([x, profile.result as tf.Tensor]);
    layer.weights.forEach((v) => v.dispose());
  });

  it('refuses a scale that does not match the channels, naming it', async () => {
    await initBackend({ prefer: 'wasm', ...quiet });
    const [x, scale, offset] = [tf.ones([2, 3, 4]), tf.ones([3]), tf.zeros([4])];
    assert.throws(() => tf.engine().runKernel(BATCH_NORM_TRAINING_KERNEL, { x, scale, offset }, { varianceEpsilon: 1e-3 }),
      (err: unknown) => err instanceof KernelShapeError && /expected scale of shape \[4\], got \[3\]/.test(err.message));
    tf.dispose([x, scale, offset]);
  });
});
