import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../common/compute';
import { gemmApplies } from '../common/compute/wasm-gemm';
import { Rng } from '../common/random';
import { maxRelativeError } from './support/floats';

// Our SIMD matrix product (common/compute/gemm-wasm-module.ts), reached through the BatchMatMul and
// _FusedMatMul kernels for the shapes it tiles, against tfjs's cpu backend, and against its own
// documented order of float32 operations.

const TOLERANCE = 1e-5;
const quiet = { log: (): void => undefined };

interface Case {
  label: string;
  aShape: number[];
  bShape: number[];
  transposeA: boolean;
  transposeB: boolean;
}

function values(rng: Rng, shape: number[]): Float32Array {
  return Float32Array.from({ length: shape.reduce((n, d) => n * d, 1) }, () => rng.uniform(-1, 1));
}

/** C[i, j] = Σ_k A(i, k)·B(k, j) in float32, k in order, each product rounded before it is added. */
function sequentialProduct(a: Float32Array, b: Float32Array, c: Case): Float32Array {
  const [ar, ac] = c.aShape.slice(-2);
  const [br, bc] = c.bShape.slice(-2);
  const [m, k, n] = [c.transposeA ? ac : ar, c.transposeA ? ar : ac, c.transposeB ? br : bc];
  const out = new Float32Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let sum = 0;
      for (let p = 0; p < k; p++) {
        const x = c.transposeA ? a[p * m + i] : a[i * k + p];
        const y = c.transposeB ? b[j * k + p] : b[p * n + j];
        sum = Math.fround(sum + Math.fround(x * y));
      }
      out[i * n + j] = sum;
    }
  }
  return out;
}

async function productOn(backend: 'wasm' | 'cpu', kernel: string, a: Float32Array, b: Float32Array, c: Case): Promise<{ shape: number[]; values: Float32Array }> {
  await initBackend({ prefer: backend, ...quiet });
  return tf.tidy(() => {
    const inputs = { a: tf.tensor(a, c.aShape), b: tf.tensor(b, c.bShape) };
    const attrs = { transposeA: c.transposeA, transposeB: c.transposeB, ...(kernel === '_FusedMatMul' ? { activation: 'linear' } : {}) };
    const out = tf.engine().runKernel(kernel, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
    return { shape: out.shape, values: out.dataSync() as Float32Array };
  });
}

describe('compute: the wasm SIMD matrix product', () => {
  const rng = new Rng('wasm-gemm');
  // A filter gradient xᵀ·dy over many pixels (several blocks of k), products over several blocks of k and of
  // rows of C (the last ones partial) in both layouts of A, row counts that are no multiple of 4, a forward
  // product, an input gradient dy·Wᵀ, a single k, and leading axes of 1.
  const cases: Case[] = [
    { label: 'Aᵀ·B over 1100 rows (5 blocks of k)', aShape: [1100, 12], bShape: [1100, 24], transposeA: true, transposeB: false },
    { label: 'A·B, 3 blocks of k and 3 of rows', aShape: [520, 600], bShape: [600, 24], transposeA: false, transposeB: false },
    { label: 'Aᵀ·B, 3 blocks of k and 2 of rows', aShape: [600, 264], bShape: [600, 16], transposeA: true, transposeB: false },
    { label: 'Aᵀ·B, 27 rows of C (a tail of 3 past the tiles), 3 blocks of k', aShape: [600, 27], bShape: [600, 32], transposeA: true, transposeB: false },
    { label: 'A·B, 7 rows of C (a tail of 3), 2 blocks of k', aShape: [7, 300], bShape: [300, 16], transposeA: false, transposeB: false },
    { label: 'A·B, 2 rows of C (no whole tile)', aShape: [2, 20], bShape: [20, 8], transposeA: false, transposeB: false },
    { label: 'A·B', aShape: [36, 20], bShape: [20, 16], transposeA: false, transposeB: false },
    { label: 'A·Bᵀ', aShape: [20, 40], bShape: [8, 40], transposeA: false, transposeB: true },
    { label: 'A·Bᵀ, 3 blocks of k and 2 strips (dx = dy·Wᵀ)', aShape: [36, 600], bShape: [16, 600], transposeA: false, transposeB: true },
    { label: 'Aᵀ·Bᵀ', aShape: [9, 4], bShape: [32, 9], transposeA: true, transposeB: true },
    { label: 'k = 1', aShape: [4, 1], bShape: [1, 8], transposeA: false, transposeB: false },
    { label: 'leading axes of 1', aShape: [1, 1, 8, 30], bShape: [1, 30, 16], transposeA: false, transposeB: false },
  ];

  after(async () => {
    await initBackend({ prefer: 'wasm', ...quiet });
  });

  for (const c of cases) {
    it(`BatchMatMul and _FusedMatMul: ${c.label}, against cpu and the sequential float32 sum`, async () => {
      const [ar, ac] = c.aShape.slice(-2);
      const [br, bc] = c.bShape.slice(-2);
      const shape = { m: c.transposeA ? ac : ar, k: c.transposeA ? ar : ac, n: c.transposeB ? br : bc, transposeA: c.transposeA };
      assert.ok(gemmApplies(shape), `${c.label}: expected the direct route for ${JSON.stringify(shape)}`);
      const [a, b] = [values(rng, c.aShape), values(rng, c.bShape)];
      const expected = await productOn('cpu', 'BatchMatMul', a, b, c);
      for (const kernel of ['BatchMatMul', '_FusedMatMul']) {
        const actual = await productOn('wasm', kernel, a, b, c);
        assert.deepEqual(actual.shape, expected.shape, `${kernel} ${c.label}: shape`);
        const err = maxRelativeError(actual.values, expected.values);
        assert.ok(err <= TOLERANCE, `${kernel} ${c.label}: relative error ${err.toExponential(2)} > ${TOLERANCE}`);
        assert.deepEqual(actual.values, sequentialProduct(a, b, c), `${kernel} ${c.label}: not the sequential float32 sum`);
      }
    });
  }

  it('reads a transposed B in place: A·Bᵀ runs no Transpose', async () => {
    await initBackend({ prefer: 'wasm', ...quiet });
    const [a, b] = [tf.tensor(values(rng, [12, 40]), [12, 40]), tf.tensor(values(rng, [16, 40]), [16, 40])];
    const profile = await tf.profile(() => tf.matMul(a, b, false, true));
    assert.deepEqual(profile.kernelNames, [tf.BatchMatMul], `A·Bᵀ ran ${profile.kernelNames.join(', ')}`);
    tf.dispose([a, b, profile.result as tf.Tensor]);
  });

  it('takes any row count but only whole strips of 8 columns, large products included (it beats XNNPACK there too)', () => {
    assert.equal(gemmApplies({ m: 6, n: 8, k: 3, transposeA: false }), true);
    assert.equal(gemmApplies({ m: 4, n: 10, k: 3, transposeA: false }), false);
    assert.equal(gemmApplies({ m: 1024, n: 10, k: 64, transposeA: true }), false);
    assert.equal(gemmApplies({ m: 512, n: 1024, k: 64, transposeA: true }), true);
    assert.equal(gemmApplies({ m: 256, n: 1024, k: 64, transposeA: false }), true);
  });

  it('frees everything it allocates (scratch strips and tail tile): tensor and wasm buffer counts stay flat', async () => {
    await initBackend({ prefer: 'wasm', ...quiet });
    const a = tf.tensor(values(rng, [62, 40]), [62, 40]); // 62 rows: a tail tile too
    const b = tf.tensor(values(rng, [16, 40]), [16, 40]);
    const before = { tensors: tf.memory().numTensors, buffers: tf.backend().numDataIds() };
    for (let i = 0; i < 3; i++) tf.tidy(() => void tf.matMul(a, b, false, true).dataSync());
    assert.deepEqual({ tensors: tf.memory().numTensors, buffers: tf.backend().numDataIds() }, before);
    tf.dispose([a, b]);
  });
});
