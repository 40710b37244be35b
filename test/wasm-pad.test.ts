import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../common/compute';
import { Rng } from '../common/random';
import { isOurWasmKernel } from '../common/compute/wasm-kernel-registry';
import { bitsEqual } from './support/floats';

// The in-place constant Pad of the wasm backend (wasm-pad.ts) against tfjs's plain-JS cpu backend: data
// movement only, so the same bits, over MobileNet's ZeroPadding2D, the 6-D pads that dilate a gradient,
// asymmetric and one-sided pads, int32 with a constant, and empty inputs.

const quiet = { log: (): void => undefined };

interface Case {
  label: string;
  shape: number[];
  paddings: [number, number][];
  constant?: number;
  dtype?: 'float32' | 'int32';
}

const CASES: Case[] = [
  { label: "MobileNet's ZeroPadding2D", shape: [2, 16, 16, 64], paddings: [[0, 0], [1, 1], [1, 1], [0, 0]] },
  { label: '6-D stride dilation (one-sided, short runs)', shape: [2, 5, 1, 4, 1, 3], paddings: [[0, 0], [0, 0], [0, 1], [0, 0], [0, 1], [0, 0]] },
  { label: 'asymmetric on every axis, with a constant', shape: [3, 4, 5], paddings: [[1, 0], [2, 3], [0, 4]], constant: -2.5 },
  { label: 'rank 1', shape: [7], paddings: [[3, 2]] },
  { label: 'int32 with a constant', shape: [4, 6], paddings: [[1, 2], [0, 1]], constant: 9, dtype: 'int32' },
  { label: 'empty input: all constant', shape: [2, 0, 3], paddings: [[0, 0], [1, 1], [0, 0]], constant: 1 },
  { label: 'no padding: a copy', shape: [2, 3, 4], paddings: [[0, 0], [0, 0], [0, 0]] },
];

async function padOn(backend: 'wasm' | 'cpu', c: Case, values: Float32Array | Int32Array): Promise<{ shape: number[]; values: tf.TypedArray }> {
  await initBackend({ prefer: backend, ...quiet });
  return tf.tidy(() => {
    const out = tf.pad(tf.tensor(values, c.shape, c.dtype ?? 'float32'), c.paddings, c.constant ?? 0);
    return { shape: out.shape, values: out.dataSync() };
  });
}

describe('compute: constant Pad on wasm', () => {
  const rng = new Rng('wasm-pad');

  for (const c of CASES) {
    it(`gives the cpu backend's bits: ${c.label}`, async () => {
      const size = c.shape.reduce((a, b) => a * b, 1);
      const values = c.dtype === 'int32'
        ? Int32Array.from({ length: size }, () => rng.int(1000) - 500)
        : Float32Array.from({ length: size }, () => rng.uniform(-1, 1));
      const expected = await padOn('cpu', c, values);
      const actual = await padOn('wasm', c, values);
      assert.deepEqual(actual.shape, expected.shape, 'shape');
      assert.ok(bitsEqual(actual.values, expected.values), 'padded values differ');
    });
  }

  it('is the kernel registered for wasm, and its gradient crops dy back', async () => {
    await initBackend({ prefer: 'wasm', ...quiet });
    assert.ok(isOurWasmKernel(tf.PadV2), 'PadV2 on wasm is the stock kernel');
    const x = tf.tensor3d([1, 2, 3, 4], [1, 2, 2]);
    const dy = tf.range(0, 16).reshape([1, 4, 4]);
    const dx = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.pad(t, [[0, 0], [1, 1], [1, 1]]), dy)))(x);
    assert.deepEqual(Array.from(dx.dataSync()), [5, 6, 9, 10]);
    tf.dispose([x, dy, dx]);
  });
});
