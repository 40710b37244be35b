import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend, KernelShapeError } from '../common/compute';
import { RELU6_GRAD_KERNEL, RELU6_KERNEL } from '../common/compute/wasm-relu6';
import { Rng } from '../common/random';

// The one-kernel 'relu6' activation of the wasm backend (wasm-relu6.ts) against tfjs-layers' stock
// minimum(6, relu(x)) on the plain-JS cpu backend: output and gradient, to a relative 1e-5, with values on
// both edges (0 and 6 exactly) and a length that leaves a scalar tail.

const TOLERANCE = 1e-5;
const quiet = { log: (): void => undefined };

/** A 'relu6' Activation layer on `x` on `backend`: y, the gradient of sum(y·w), and the kernels run. */
async function observe(backend: 'wasm' | 'cpu', x: Float32Array, w: Float32Array, shape: number[]) {
  await initBackend({ prefer: backend, ...quiet });
  const layer = tf.layers.activation({ activation: 'relu6' });
  const [xt, wt] = [tf.tensor(x, shape), tf.tensor(w, shape)];
  try {
    let y: Float32Array = new Float32Array();
    let dx: Float32Array = new Float32Array();
    const profile = await tf.profile(() => {
      const g = tf.grad((input: tf.Tensor) => {
        const out = layer.apply(input) as tf.Tensor;
        y = out.dataSync() as Float32Array;
        return tf.sum(tf.mul(out, wt));
      })(xt);
      dx = g.dataSync() as Float32Array;
      g.dispose();
    });
    return { y, dx, kernels: profile.kernelNames };
  } finally {
    tf.dispose([xt, wt]);
  }
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length, 'element counts differ');
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
}

describe('compute: relu6 activation kernel against tfjs-layers on the cpu backend', () => {
  it('output and gradient, with 0 and 6 exactly and a scalar tail', async () => {
    const rng = new Rng('relu6');
    const shape = [3, 5, 7];
    const size = shape.reduce((a, b) => a * b, 1);
    const x = Float32Array.from({ length: size }, (_, i) => (i % 11 === 0 ? 0 : i % 13 === 0 ? 6 : rng.uniform(-3, 9)));
    const w = Float32Array.from({ length: size }, () => rng.uniform(-1, 1));
    const expected = await observe('cpu', x, w, shape);
    const actual = await observe('wasm', x, w, shape);
    assert.ok(actual.kernels.includes(RELU6_KERNEL) && actual.kernels.includes(RELU6_GRAD_KERNEL), `wasm ran ${actual.kernels.join(', ')}`);
    assert.ok(!expected.kernels.includes(RELU6_KERNEL), 'the cpu reference must run the stock activation');
    // Clamping and masking are exact: the results must be the same numbers, 1e-5 is only the contract.
    assert.ok(maxDiff(actual.y, expected.y) <= TOLERANCE * 6, `y differs by ${maxDiff(actual.y, expected.y)}`);
    assert.ok(maxDiff(actual.dx, expected.dx) <= TOLERANCE, `dx differs by ${maxDiff(actual.dx, expected.dx)}`);
    assert.ok(expected.dx.some((v) => v === 0) && expected.dx.some((v) => v !== 0), 'the gradient must be masked somewhere, not everywhere');
  });

  it('refuses a dy shaped unlike x, naming it', async () => {
    await initBackend({ prefer: 'wasm', ...quiet });
    const [x, dy] = [tf.ones([2, 4]), tf.ones([4, 2])];
    assert.throws(() => tf.engine().runKernel(RELU6_GRAD_KERNEL, { x, dy }),
      (err: unknown) => err instanceof KernelShapeError && /expected dy of shape \[2, 4\], got \[4, 2\]/.test(err.message));
    tf.dispose([x, dy]);
  });
});
