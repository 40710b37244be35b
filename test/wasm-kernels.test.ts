import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend, KernelShapeError, UnsupportedKernelError, WASM_TRAINING_KERNELS } from '../common/compute';
import { convGeometry } from '../common/compute/conv-geometry';
import { Rng } from '../common/random';
import { maxRelativeError } from './support/floats';

// Every kernel and gradient the compute engine registers or replaces for wasm, checked against
// tfjs's cpu backend (or, for gradients, a composition of ops whose gradients we do not touch)
// on seeded random inputs.

const TOLERANCE = 1e-5;
const quiet = { log: (): void => undefined };

type Backend = 'wasm' | 'cpu';

interface HostTensor {
  shape: number[];
  values: Float32Array | Int32Array;
  dtype: 'float32' | 'int32';
}

interface Result {
  shape: number[];
  values: Float32Array | Int32Array | Uint8Array;
}

function assertClose(actual: Result, expected: Result, label: string, tolerance = TOLERANCE): void {
  assert.deepEqual(actual.shape, expected.shape, `${label}: shape`);
  const err = maxRelativeError(actual.values, expected.values);
  assert.ok(err <= tolerance, `${label}: relative error ${err.toExponential(2)} > ${tolerance}`);
}

function uniform(rng: Rng, shape: number[], lo = -1, hi = 1): HostTensor {
  const size = shape.reduce((n, d) => n * d, 1);
  return { shape, values: Float32Array.from({ length: size }, () => rng.uniform(lo, hi)), dtype: 'float32' };
}

function upload(inputs: Record<string, HostTensor>): Record<string, tf.Tensor> {
  return Object.fromEntries(Object.entries(inputs).map(([k, t]) => [k, tf.tensor(t.values, t.shape, t.dtype)]));
}

async function runKernelOn(backend: Backend, kernel: string, inputs: Record<string, HostTensor>, attrs: object): Promise<Result> {
  await initBackend({ prefer: backend, ...quiet });
  return tf.tidy(() => {
    const out = tf.engine().runKernel(kernel, upload(inputs), attrs as tf.NamedAttrMap) as tf.Tensor;
    return { shape: out.shape, values: out.dataSync() as Result['values'] };
  });
}

/** Runs `kernel` on wasm and on cpu with the same inputs and asserts the outputs agree. */
async function checkKernel(kernel: string, inputs: Record<string, HostTensor>, attrs: object, label: string): Promise<void> {
  const expected = await runKernelOn('cpu', kernel, inputs, attrs);
  const actual = await runKernelOn('wasm', kernel, inputs, attrs);
  assertClose(actual, expected, `${kernel} ${label}`);
}

/** Gradients of sum(f(...)·dy) with respect to every input, on `backend`. */
async function gradsOn(
  backend: Backend,
  f: (...xs: tf.Tensor[]) => tf.Tensor,
  inputs: HostTensor[],
  dy: HostTensor,
): Promise<Result[]> {
  await initBackend({ prefer: backend, ...quiet });
  return tf.tidy(() => {
    const xs = inputs.map((t) => tf.tensor(t.values, t.shape, t.dtype));
    const grads = tf.grads(f)(xs, tf.tensor(dy.values, dy.shape));
    return grads.map((g) => ({ shape: g.shape, values: g.dataSync() as Float32Array }));
  });
}

describe('compute: wasm training kernels against the cpu backend', () => {
  const rng = new Rng('wasm-kernels');

  before(async () => {
    await initBackend({ prefer: 'wasm', ...quiet });
  });

  it('registers every kernel it claims for wasm', () => {
    for (const name of WASM_TRAINING_KERNELS) assert.ok(tf.getKernel(name, 'wasm'), `${name} is not registered for wasm`);
  });

  // [label, input shape, filter shape, strides, pad]
  const convCases: [string, number[], number[], number, 'same' | 'valid' | tf.backend_util.ExplicitPadding][] = [
    ['3x3 s1 same', [2, 7, 7, 3], [3, 3, 3, 4], 1, 'same'],
    ['3x3 s2 same', [2, 7, 7, 3], [3, 3, 3, 4], 2, 'same'],
    ['3x3 s2 valid (trailing row unread)', [2, 8, 9, 3], [3, 3, 3, 5], 2, 'valid'],
    ['3x3 s1 valid', [1, 6, 5, 2], [3, 3, 2, 3], 1, 'valid'],
    ['2x3 s2 explicit', [2, 7, 6, 3], [2, 3, 3, 4], 2, [[0, 0], [1, 2], [2, 0], [0, 0]]],
    ['1x1 s1 (filter-sized dx route)', [2, 5, 5, 6], [1, 1, 6, 4], 1, 'same'],
    ['1x1 s1 (transposed dx route)', [1, 1, 2, 12], [1, 1, 12, 16], 1, 'valid'],
    ['1x1 s2 odd', [2, 5, 7, 4], [1, 1, 4, 6], 2, 'same'],
    ['1x1 s1, 8 -> 16 channels (our SIMD product on the tensors in place)', [2, 5, 3, 8], [1, 1, 8, 16], 1, 'valid'],
    ['3x3 s2 same, 10 input channels (per-tap dW, direct dx routes)', [2, 7, 6, 10], [3, 3, 10, 4], 2, 'same'],
    ['3x3 s1 valid, 9 input channels (per-tap dW, direct dx routes)', [1, 5, 6, 9], [3, 3, 9, 2], 1, 'valid'],
    ['1x1 over 9800 pixels (dW summed in row blocks)', [2, 70, 70, 2], [1, 1, 2, 3], 1, 'same'],
    ['3x3 over 9800 pixels (im2col dW in row blocks)', [2, 70, 70, 2], [3, 3, 2, 3], 1, 'same'],
    ['3x3 over 9800 pixels, 12 input channels (per-tap dW)', [2, 70, 70, 12], [3, 3, 12, 3], 1, 'same'],
  ];

  for (const [label, xShape, fShape, strides, pad] of convCases) {
    it(`Conv2DBackpropFilter and Conv2DBackpropInput: ${label}`, async () => {
      const g = convGeometry('test', xShape, fShape, { strides, pad }, false);
      const dyShape = [xShape[0], g.outHeight, g.outWidth, fShape[3]];
      const x = uniform(rng, xShape);
      const dy = uniform(rng, dyShape);
      const filter = uniform(rng, fShape);
      const common = { strides, pad, dataFormat: 'NHWC' };
      await checkKernel('Conv2DBackpropFilter', { x, dy }, { ...common, filterShape: fShape }, label);
      await checkKernel('Conv2DBackpropInput', { dy, filter }, { ...common, inputShape: xShape }, label);
      await checkKernel('Conv2D', { x, filter }, { ...common, dilations: 1 }, label);
    });
  }

  // [label, input shape, channel multiplier, strides, pad]
  const depthwiseCases: [string, number[], number, number, 'same' | 'valid' | tf.backend_util.ExplicitPadding][] = [
    ['s1 same', [2, 7, 7, 5], 1, 1, 'same'],
    ['s1 same, 13 channels (SIMD steps and a scalar tail)', [2, 6, 6, 13], 1, 1, 'same'],
    ['s2 same odd', [2, 9, 7, 5], 1, 2, 'same'],
    ['s2 valid even (MobileNet)', [2, 10, 10, 4], 1, 2, 'valid'],
    ['s1 valid', [3, 5, 4, 6], 1, 1, 'valid'],
    ['s2 valid, 1x1 output', [2, 4, 4, 3], 1, 2, 'valid'],
    ['multiplier 2, s2 same (per-tap ops)', [2, 7, 8, 3], 2, 2, 'same'],
    ['multiplier 3, s1 valid, small output (batch-as-channels ops)', [2, 4, 5, 2], 3, 1, 'valid'],
    ['explicit pad', [2, 6, 7, 3], 1, 2, [[0, 0], [2, 1], [0, 2], [0, 0]]],
  ];

  for (const [label, xShape, multiplier, strides, pad] of depthwiseCases) {
    it(`DepthwiseConv2dNativeBackpropFilter and ...BackpropInput: ${label}`, async () => {
      const fShape = [3, 3, xShape[3], multiplier];
      const g = convGeometry('test', xShape, fShape, { strides, pad }, true);
      const x = uniform(rng, xShape);
      const dy = uniform(rng, [xShape[0], g.outHeight, g.outWidth, xShape[3] * multiplier]);
      const filter = uniform(rng, fShape);
      const common = { strides, pad, dilations: 1 };
      await checkKernel('DepthwiseConv2dNativeBackpropFilter', { x, dy }, { ...common, filterShape: fShape }, label);
      await checkKernel('DepthwiseConv2dNativeBackpropInput', { dy, filter }, { ...common, inputShape: xShape }, label);
    });
  }

  it('rejects dilated and NCHW gradients, and mis-shaped dy, with clear errors', async () => {
    await initBackend({ prefer: 'wasm', ...quiet });
    const dy = tf.zeros([1, 3, 3, 2]);
    const filter = tf.zeros([3, 3, 2, 1]);
    const wideFilter = tf.zeros([3, 3, 2, 4]);
    assert.throws(
      () => tf.engine().runKernel('DepthwiseConv2dNativeBackpropInput', { dy, filter }, { strides: 1, pad: 'same', dilations: 2, inputShape: [1, 3, 3, 2] }),
      (err: unknown) => err instanceof UnsupportedKernelError && err.attr === 'dilations' && /expected dilations 1, got 2/.test(err.message),
    );
    assert.throws(
      () => tf.engine().runKernel('Conv2DBackpropFilter', { x: dy, dy }, { strides: 1, pad: 'same', dataFormat: 'NCHW', filterShape: [1, 1, 2, 2] }),
      (err: unknown) => err instanceof UnsupportedKernelError && err.attr === 'dataFormat',
    );
    assert.throws(
      () => tf.engine().runKernel('Conv2DBackpropInput', { dy, filter: wideFilter }, { strides: 1, pad: 'same', dataFormat: 'NHWC', inputShape: [1, 3, 3, 2] }),
      (err: unknown) => err instanceof KernelShapeError && /expected dy of shape \[1, 3, 3, 4\], got \[1, 3, 3, 2\]/.test(err.message),
    );
    tf.dispose([dy, filter, wideFilter]);
  });

  it('BatchMatMul and _FusedMatMul with every transpose combination', async () => {
    for (const [transposeA, transposeB] of [[false, false], [true, false], [false, true], [true, true]]) {
      const a = uniform(rng, transposeA ? [16, 5] : [5, 16]);
      const b = uniform(rng, transposeB ? [3, 16] : [16, 3]);
      await checkKernel('BatchMatMul', { a, b }, { transposeA, transposeB }, `2-D ${transposeA}/${transposeB}`);
      const a3 = uniform(rng, transposeA ? [2, 24, 5] : [2, 5, 24]);
      const b3 = uniform(rng, transposeB ? [2, 7, 24] : [2, 24, 7]);
      await checkKernel('BatchMatMul', { a: a3, b: b3 }, { transposeA, transposeB }, `3-D ${transposeA}/${transposeB}`);
      // The _FusedMatMul kernel takes rank-3 operands (tf.fused.matMul reshapes before calling it).
      const bias = uniform(rng, [7]);
      const fusedAttrs = { transposeA, transposeB, activation: 'relu' };
      await checkKernel('_FusedMatMul', { a: a3, b: b3, bias }, fusedAttrs, `fused ${transposeA}/${transposeB}`);
    }
  });

  it('BatchMatMul and _FusedMatMul stay right when one buffer is packed under two shapes', async () => {
    // tfjs caches XNNPACK's packed right operand by data id; reshape shares data ids.
    const b = uniform(rng, [24, 12]);
    const a1 = uniform(rng, [3, 24]);
    const a2 = uniform(rng, [3, 12]);
    const bias = uniform(rng, [24]);
    const run = async (backend: Backend) => {
      await initBackend({ prefer: backend, ...quiet });
      return tf.tidy(() => {
        const t = upload({ a1, a2, b, bias });
        tf.matMul(t.a1, t.b).dataSync();
        const plain = tf.matMul(t.a2, tf.reshape(t.b, [12, 24]));
        const fused = tf.fused.matMul({ a: t.a2 as tf.Tensor2D, b: tf.reshape(t.b, [12, 24]) as tf.Tensor2D, bias: t.bias, activation: 'relu' });
        return [plain, fused].map((r) => ({ shape: r.shape, values: r.dataSync() as Float32Array }));
      });
    };
    const expected = await run('cpu');
    const actual = await run('wasm');
    assertClose(actual[0], expected[0], 'BatchMatMul after repacking');
    assertClose(actual[1], expected[1], '_FusedMatMul after repacking');
  });

  it('Identity and same-dtype Cast share data; other casts convert', async () => {
    const x = uniform(rng, [4, 6], -3, 3);
    await checkKernel('Identity', { x }, {}, 'float32');
    await checkKernel('Cast', { x }, { dtype: 'float32' }, 'float32 to float32');
    await checkKernel('Cast', { x }, { dtype: 'int32' }, 'float32 to int32');
    await initBackend({ prefer: 'wasm', ...quiet });
    const t = tf.tensor(x.values, x.shape);
    const copy = tf.clone(t);
    t.dispose();
    assertClose({ shape: copy.shape, values: copy.dataSync() as Float32Array }, x, 'clone outlives its source');
    copy.dispose();
  });

  it('Transpose: split 2-D and batched swaps, and the stock cases', async () => {
    const cases: [number[], number[]][] = [
      [[64, 5], [1, 0]],
      [[3, 16, 5], [0, 2, 1]],
      [[2, 3, 8, 5], [0, 3, 1, 2]],
      [[1, 16, 1, 6], [3, 2, 1, 0]],
      [[7, 5], [1, 0]],
      [[2, 3, 4], [2, 0, 1]],
    ];
    for (const [shape, perm] of cases) await checkKernel('Transpose', { x: uniform(rng, shape) }, { perm }, `${shape} by ${perm}`);
  });

  it('Slice: crops, 6-D phase views, int32 and empty slices', async () => {
    const ints: HostTensor = { shape: [4, 6], values: Int32Array.from({ length: 24 }, (_, i) => i * 7 - 30), dtype: 'int32' };
    const cases: [HostTensor, number[], number[]][] = [
      [uniform(rng, [2, 9, 9, 5]), [0, 1, 1, 0], [2, 7, 7, 5]],
      [uniform(rng, [2, 5, 2, 4, 2, 3]), [0, 1, 1, 0, 0, 0], [2, 4, 1, 3, 1, 3]],
      [uniform(rng, [300]), [17], [200]],
      [uniform(rng, [3, 130]), [1, 0], [2, 130]],
      [ints, [1, 2], [2, 3]],
      [uniform(rng, [4, 5]), [1, 1], [0, 3]],
    ];
    for (const [x, begin, size] of cases) await checkKernel('Slice', { x }, { begin, size }, `${x.shape} at ${begin} size ${size}`);
  });

  it('Sum and Mean over leading, middle, trailing and scattered axes', async () => {
    // Uniform in [0, 1): sums without cancellation, so 1e-5 bounds accumulation order only.
    const x = uniform(rng, [4, 5, 6, 7], 0, 1);
    const cases: [number[], boolean][] = [[[0, 1, 2], false], [[1, 2], true], [[0], false], [[3], false], [[0, 2], false], [[0, 1, 2, 3], false]];
    for (const [axis, keepDims] of cases) {
      await checkKernel('Sum', { x }, { axis, keepDims }, `axes ${axis}`);
      await checkKernel('Mean', { x }, { axis, keepDims }, `axes ${axis}`);
    }
    // A depthwise filter gradient's per-image sum: whole SIMD rows, no scalar tail.
    await checkKernel('Sum', { x: uniform(rng, [9, 16, 12], 0, 1) }, { axis: 1, keepDims: false }, 'middle axis, rows of 12');
    const ints: HostTensor = { shape: [3, 4, 2], values: Int32Array.from({ length: 24 }, (_, i) => i), dtype: 'int32' };
    await checkKernel('Sum', { x: ints }, { axis: [0, 1], keepDims: false }, 'int32');
  });

  it('FusedBatchNorm with and without scale and offset', async () => {
    const x = uniform(rng, [2, 5, 4, 6], -3, 5);
    const mean = uniform(rng, [6]);
    const variance = uniform(rng, [6], 0.1, 2);
    const scale = uniform(rng, [6]);
    const offset = uniform(rng, [6]);
    await checkKernel('FusedBatchNorm', { x, mean, variance, scale, offset }, { varianceEpsilon: 1e-3 }, 'full');
    await checkKernel('FusedBatchNorm', { x, mean, variance }, { varianceEpsilon: 1e-3 }, 'bare');
  });

  it('Minimum and Maximum against scalars (clip route) and tensors (stock route)', async () => {
    const x = uniform(rng, [3, 4, 5], -8, 8);
    const six: HostTensor = { shape: [], values: Float32Array.of(6), dtype: 'float32' };
    const other = uniform(rng, [3, 4, 5], -8, 8);
    for (const kernel of ['Minimum', 'Maximum']) {
      await checkKernel(kernel, { a: six, b: x }, {}, 'scalar first');
      await checkKernel(kernel, { a: x, b: six }, {}, 'scalar second');
      await checkKernel(kernel, { a: x, b: other }, {}, 'tensors');
    }
  });

  it('Conv2D and FusedConv2D pointwise (matrix-product route) with bias and activation', async () => {
    const x = uniform(rng, [2, 3, 4, 6]);
    const filter = uniform(rng, [1, 1, 6, 5]);
    const bias = uniform(rng, [5]);
    const attrs = { strides: 1, pad: 'same', dataFormat: 'NHWC', dilations: 1 };
    await checkKernel('Conv2D', { x, filter }, attrs, 'pointwise');
    await checkKernel('FusedConv2D', { x, filter, bias }, { ...attrs, activation: 'relu6' }, 'bias+relu6');
    await checkKernel('FusedConv2D', { x, filter }, { ...attrs, activation: 'linear' }, 'linear');
  });

  it('pointwise convolution and both its gradients on our SIMD product dispatch no other kernel', async () => {
    await initBackend({ prefer: 'wasm', ...quiet });
    const [x, filter, dy] = [[2, 3, 4, 8], [1, 1, 8, 16], [2, 3, 4, 16]].map((shape) => tf.tensor(uniform(rng, shape).values, shape));
    const common = { strides: 1, pad: 'valid', dataFormat: 'NHWC' };
    const calls: [string, tf.NamedTensorMap, object][] = [
      ['Conv2D', { x, filter }, { ...common, dilations: 1 }],
      ['FusedConv2D', { x, filter }, { ...common, dilations: 1, activation: 'linear' }],
      ['Conv2DBackpropInput', { dy, filter }, { ...common, inputShape: x.shape }],
      ['Conv2DBackpropFilter', { x, dy }, { ...common, filterShape: filter.shape }],
    ];
    for (const [kernel, inputs, attrs] of calls) {
      const profile = await tf.profile(() => tf.engine().runKernel(kernel, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor);
      assert.deepEqual(profile.kernelNames, [kernel], `${kernel} ran ${profile.kernelNames.join(', ')}`);
      (profile.result as tf.Tensor).dispose();
    }
    tf.dispose([x, filter, dy]);
  });
});

describe('compute: gradient overrides against independent references', () => {
  const rng = new Rng('gradient-overrides');
  const eps = 1e-3;

  /** Batch norm written with ops whose gradients we do not replace (Sum, Sub, Mul, Rsqrt, Add). */
  function primitiveBatchNorm(x: tf.Tensor, mean: tf.Tensor, variance: tf.Tensor, scale: tf.Tensor, offset: tf.Tensor): tf.Tensor {
    return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps))), scale), offset);
  }

  function primitiveMoments(x: tf.Tensor): [tf.Tensor, tf.Tensor] {
    const n = x.size / x.shape[x.rank - 1];
    const axes = [0, 1, 2];
    const mean = tf.div(tf.sum(x, axes), n);
    return [mean, tf.div(tf.sum(tf.square(tf.sub(x, mean)), axes), n)];
  }

  it('FusedBatchNorm gradient with given statistics (inference form), all five inputs', async () => {
    const inputs = [uniform(rng, [2, 4, 3, 5], -2, 3), uniform(rng, [5]), uniform(rng, [5], 0.2, 2), uniform(rng, [5]), uniform(rng, [5])];
    const dy = uniform(rng, [2, 4, 3, 5]);
    const fused = (x: tf.Tensor, m: tf.Tensor, v: tf.Tensor, s: tf.Tensor, o: tf.Tensor) => tf.batchNorm(x, m, v, o, s, eps);
    const expected = await gradsOn('cpu', primitiveBatchNorm, inputs, dy);
    const actual = await gradsOn('wasm', fused, inputs, dy);
    ['x', 'mean', 'variance', 'scale', 'offset'].forEach((name, i) => assertClose(actual[i], expected[i], `d${name}`));
  });

  it('FusedBatchNorm + moments gradient (training form), through Mean and Sub', async () => {
    const inputs = [uniform(rng, [4, 3, 3, 6], -1, 4), uniform(rng, [6]), uniform(rng, [6])];
    const dy = uniform(rng, [4, 3, 3, 6]);
    const fused = (x: tf.Tensor, s: tf.Tensor, o: tf.Tensor) => {
      const { mean, variance } = tf.moments(x, [0, 1, 2]);
      return tf.batchNorm(x, mean, variance, o, s, eps);
    };
    const primitive = (x: tf.Tensor, s: tf.Tensor, o: tf.Tensor) => primitiveBatchNorm(x, ...primitiveMoments(x), s, o);
    const expected = await gradsOn('cpu', primitive, inputs, dy);
    const actual = await gradsOn('wasm', fused, inputs, dy);
    ['x', 'scale', 'offset'].forEach((name, i) => assertClose(actual[i], expected[i], `d${name}`));
  });

  /** dy masked elementwise by `keep`, as a Result. */
  function masked(dy: HostTensor, keep: (i: number) => boolean): Result {
    return { shape: dy.shape, values: dy.values.map((v, i) => (keep(i) ? v : 0)) as Float32Array };
  }

  it('Relu6 gradient passes dy where 0 < x <= 6', async () => {
    const x = uniform(rng, [4, 50], -3, 9);
    x.values[0] = 6;
    x.values[1] = 0;
    const dy = uniform(rng, [4, 50]);
    const [dx] = await gradsOn('wasm', (t) => tf.relu6(t), [x], dy);
    assertClose(dx, masked(dy, (i) => x.values[i] > 0 && x.values[i] <= 6), 'relu6');
  });

  it('Minimum and Maximum gradients, with ties and a broadcast scalar', async () => {
    const a = uniform(rng, [3, 40], -2, 2);
    const b = uniform(rng, [3, 40], -2, 2);
    b.values[5] = a.values[5];
    const dy = uniform(rng, [3, 40]);
    const [minA, minB] = await gradsOn('wasm', (p, q) => tf.minimum(p, q), [a, b], dy);
    assertClose(minA, masked(dy, (i) => a.values[i] <= b.values[i]), 'min da');
    assertClose(minB, masked(dy, (i) => a.values[i] > b.values[i]), 'min db');
    const [maxA, maxB] = await gradsOn('wasm', (p, q) => tf.maximum(p, q), [a, b], dy);
    assertClose(maxA, masked(dy, (i) => a.values[i] >= b.values[i]), 'max da');
    assertClose(maxB, masked(dy, (i) => a.values[i] < b.values[i]), 'max db');
    const limit: HostTensor = { shape: [], values: Float32Array.of(0.5), dtype: 'float32' };
    const [dLimit, dx] = await gradsOn('wasm', (s, t) => tf.minimum(s, t), [limit, a], dy);
    const expected = Array.from(dy.values).reduce((sum, v, i) => (a.values[i] >= 0.5 ? sum + v : sum), 0);
    assert.ok(Math.abs(dLimit.values[0] - expected) <= 1e-5 * Math.max(1, Math.abs(expected)), `d(limit) ${dLimit.values[0]} vs ${expected}`);
    assertClose(dx, masked(dy, (i) => a.values[i] < 0.5), 'min(scalar, x) dx');
  });

  it('Mean gradient spreads dy / n over the reduced axes', async () => {
    const x = uniform(rng, [3, 4, 5]);
    const dy = uniform(rng, [5]);
    const [dx] = await gradsOn('wasm', (t) => tf.mean(t, [0, 1]), [x], dy);
    const expected = Float32Array.from({ length: 60 }, (_, i) => dy.values[i % 5] / 12);
    assertClose(dx, { shape: [3, 4, 5], values: expected }, 'mean');
    // A middle axis: [o, r, i] takes dy[o, i] / 4; rows of 8 are whole SIMD steps.
    const dyMiddle = uniform(rng, [3, 1, 8]);
    const [dxMiddle] = await gradsOn('wasm', (t) => tf.mean(t, 1, true), [uniform(rng, [3, 4, 8])], dyMiddle);
    const spread = Float32Array.from({ length: 96 }, (_, k) => dyMiddle.values[Math.floor(k / 32) * 8 + (k % 8)] / 4);
    assertClose(dxMiddle, { shape: [3, 4, 8], values: spread }, 'mean over the middle axis');
  });
});

describe('compute: a MobileNet-style training step on wasm', () => {
  const classes = 4;

  /** ZeroPadding + strided conv, BN, relu6, depthwise, pointwise, pooling, dense: every kernel kind. */
  function smallMobileNet(seed: number): tf.LayersModel {
    const rng = new Rng(seed);
    const init = () => tf.initializers.glorotUniform({ seed: rng.uint32() });
    const bnRelu6 = (x: tf.SymbolicTensor) =>
      tf.layers.activation({ activation: 'relu6' }).apply(tf.layers.batchNormalization({ epsilon: 1e-3 }).apply(x)) as tf.SymbolicTensor;
    const input = tf.input({ shape: [12, 12, 3] });
    let x = tf.layers.zeroPadding2d({ padding: [[1, 1], [1, 1]] }).apply(input) as tf.SymbolicTensor;
    x = bnRelu6(tf.layers.conv2d({ filters: 8, kernelSize: 3, strides: 2, useBias: false, kernelInitializer: init() }).apply(x) as tf.SymbolicTensor);
    x = tf.layers.zeroPadding2d({ padding: [[1, 1], [1, 1]] }).apply(x) as tf.SymbolicTensor;
    x = bnRelu6(tf.layers.depthwiseConv2d({ kernelSize: 3, strides: 2, useBias: false, depthwiseInitializer: init() }).apply(x) as tf.SymbolicTensor);
    x = bnRelu6(tf.layers.conv2d({ filters: 16, kernelSize: 1, useBias: false, kernelInitializer: init() }).apply(x) as tf.SymbolicTensor);
    x = tf.layers.depthwiseConv2d({ kernelSize: 3, padding: 'same', useBias: false, depthwiseInitializer: init() }).apply(x) as tf.SymbolicTensor;
    const pooled = tf.layers.globalAveragePooling2d({}).apply(bnRelu6(x));
    const logits = tf.layers.dense({ units: classes, kernelInitializer: init() }).apply(pooled) as tf.SymbolicTensor;
    return tf.model({ inputs: input, outputs: logits });
  }

  function batch(seed: number): { x: tf.Tensor4D; y: tf.Tensor2D } {
    const rng = new Rng(seed);
    const x = tf.tensor4d(Float32Array.from({ length: 6 * 12 * 12 * 3 }, () => rng.uniform(-1, 1)), [6, 12, 12, 3]);
    const y = tf.oneHot(tf.tensor1d(Int32Array.from({ length: 6 }, () => rng.int(classes)), 'int32'), classes) as tf.Tensor2D;
    return { x, y };
  }

  const lossOf = (model: tf.LayersModel, x: tf.Tensor, y: tf.Tensor) => () =>
    tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar;

  async function gradientsOn(backend: Backend, model: tf.LayersModel, x: tf.Tensor, y: tf.Tensor): Promise<Map<string, Result>> {
    await initBackend({ prefer: backend, ...quiet });
    const values = tf.tidy(() => {
      const { grads } = tf.variableGrads(lossOf(model, x, y));
      return Object.fromEntries(Object.entries(grads).map(([name, g]) => [name, { shape: g.shape, values: g.dataSync() as Float32Array }]));
    });
    return new Map(Object.entries(values));
  }

  it('computes the same weight gradients on wasm as on cpu', async () => {
    const model = smallMobileNet(7);
    const { x, y } = batch(8);
    try {
      const expected = await gradientsOn('cpu', model, x, y);
      const actual = await gradientsOn('wasm', model, x, y);
      assert.equal(actual.size, model.trainableWeights.length);
      // Rounding compounds through seven layers (measured ~7e-7); each kernel alone is held to 1e-5.
      for (const [name, grad] of expected) assertClose(actual.get(name) as Result, grad, name, 1e-4);
    } finally {
      model.dispose();
      tf.dispose([x, y]);
    }
  });

  it('keeps tensor and wasm buffer counts flat across Adam steps and fits one batch', async () => {
    await initBackend({ prefer: 'wasm', ...quiet });
    const model = smallMobileNet(11);
    const { x, y } = batch(12);
    const optimizer = tf.train.adam(0.01);
    const step = () => tf.tidy(() => (optimizer.minimize(lossOf(model, x, y), true) as tf.Scalar).dataSync()[0]);
    try {
      const first = step();
      const tensorsAfterFirst = tf.memory().numTensors;
      // Buffers in the wasm heap, tracked or not: catches kernels that drop stock outputs.
      const buffersAfterFirst = tf.engine().backend.numDataIds();
      let last = first;
      for (let i = 0; i < 8; i++) {
        last = step();
        assert.equal(tf.memory().numTensors, tensorsAfterFirst, `tensor count changed at step ${i + 2}`);
        assert.equal(tf.engine().backend.numDataIds(), buffersAfterFirst, `wasm buffer count changed at step ${i + 2}`);
      }
      assert.ok(Number.isFinite(last) && last < first, `loss should fall on a repeated batch: ${first} -> ${last}`);
    } finally {
      optimizer.dispose();
      model.dispose();
      tf.dispose([x, y]);
    }
  });
});
