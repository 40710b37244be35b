import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../common/compute';
import { convGeometry } from '../common/compute/conv-geometry';
import { Rng } from '../common/random';
import { isOurWasmKernel } from '../common/compute/wasm-kernel-registry';
import { bitsEqual, maxRelativeError } from './support/floats';

// The depthwise convolution forward of the wasm backend (wasm-depthwise-kernels.ts) against tfjs's
// plain-JS cpu backend to a relative 1e-5, over MobileNet's layers (3x3, stride 1 and 2, explicitly
// padded then 'valid') and odd ones (channel counts with a scalar tail, stride 2 on odd sizes, 'same'
// padding that reaches past the input, explicit asymmetric padding); and bit for bit against the
// documented summation order, which is what makes every thread and process agree.

const TOLERANCE = 1e-5;
const quiet = { log: (): void => undefined };

type Pad = 'same' | 'valid' | tf.backend_util.ExplicitPadding;

interface Case {
  label: string;
  xShape: [number, number, number, number];
  filter: [number, number];
  strides: number;
  pad: Pad;
}

const CASES: Case[] = [
  { label: 'MobileNet conv_dw_1 (s1 valid on a padded 34x34, 32 channels)', xShape: [2, 34, 34, 32], filter: [3, 3], strides: 1, pad: 'valid' },
  { label: 'MobileNet conv_dw_2 (s2 valid on a padded 34x34, 64 channels)', xShape: [2, 34, 34, 64], filter: [3, 3], strides: 2, pad: 'valid' },
  { label: 'MobileNet conv_dw_13 (s1 valid, 6x6, 512 channels)', xShape: [2, 6, 6, 512], filter: [3, 3], strides: 1, pad: 'valid' },
  { label: 's1 same, 3 channels (scalar tail only)', xShape: [2, 7, 6, 3], filter: [3, 3], strides: 1, pad: 'same' },
  { label: 's2 same on odd sizes, 7 channels (SIMD and tail)', xShape: [3, 9, 7, 7], filter: [3, 3], strides: 2, pad: 'same' },
  { label: 's2 valid on odd sizes, 5 channels', xShape: [2, 9, 11, 5], filter: [3, 3], strides: 2, pad: 'valid' },
  { label: 's2 valid, 1x1 output', xShape: [2, 4, 4, 6], filter: [3, 3], strides: 2, pad: 'valid' },
  { label: 'explicit asymmetric pad, 2x3 filter, 9 channels', xShape: [2, 6, 7, 9], filter: [2, 3], strides: 2, pad: [[0, 0], [2, 1], [0, 2], [0, 0]] },
  { label: '5x5 filter s1 same, 1 channel', xShape: [1, 5, 8, 1], filter: [5, 5], strides: 1, pad: 'same' },
];

function uniform(rng: Rng, shape: number[]): Float32Array {
  return Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.uniform(-1, 1));
}

/** tf.depthwiseConv2d on `backend`. */
async function forwardOn(backend: 'wasm' | 'cpu', c: Case, x: Float32Array, w: Float32Array): Promise<Float32Array> {
  await initBackend({ prefer: backend, ...quiet });
  return tf.tidy(() => {
    const filter = tf.tensor4d(w, [...c.filter, c.xShape[3], 1]);
    return tf.depthwiseConv2d(tf.tensor4d(x, c.xShape), filter, c.strides, c.pad).dataSync() as Float32Array;
  });
}

/** The kernel's documented order in float32: each output adds its products to 0, taps row by row. */
function referenceInKernelOrder(c: Case, x: Float32Array, w: Float32Array): Float32Array {
  const [n, h, wd, ch] = c.xShape;
  const g = convGeometry('test', c.xShape, [...c.filter, ch, 1], { strides: c.strides, pad: c.pad }, true);
  const y = new Float32Array(n * g.outHeight * g.outWidth * ch);
  let o = 0;
  for (let b = 0; b < n; b++) {
    for (let oh = 0; oh < g.outHeight; oh++) {
      for (let ow = 0; ow < g.outWidth; ow++, o += ch) {
        for (let i = 0; i < g.filterHeight; i++) {
          const ih = oh * g.strideHeight + i - g.padTop;
          if (ih < 0 || ih >= h) continue;
          for (let j = 0; j < g.filterWidth; j++) {
            const iw = ow * g.strideWidth + j - g.padLeft;
            if (iw < 0 || iw >= wd) continue;
            const xRow = ((b * h + ih) * wd + iw) * ch;
            const wRow = (i * g.filterWidth + j) * ch;
            for (let k = 0; k < ch; k++) y[o + k] = Math.fround(y[o + k] + Math.fround(x[xRow + k] * w[wRow + k]));
          }
        }
      }
    }
  }
  return y;
}

describe('compute: depthwise convolution forward on wasm', () => {
  const rng = new Rng('wasm-depthwise-conv');

  it('is the kernel registered for wasm', async () => {
    await initBackend({ prefer: 'wasm', ...quiet });
    assert.ok(isOurWasmKernel(tf.DepthwiseConv2dNative), 'DepthwiseConv2dNative on wasm is the stock kernel');
  });

  for (const c of CASES) {
    it(`matches the cpu backend and the kernel's summation order: ${c.label}`, async () => {
      const x = uniform(rng, c.xShape);
      const w = uniform(rng, [...c.filter, c.xShape[3], 1]);
      const expected = await forwardOn('cpu', c, x, w);
      const actual = await forwardOn('wasm', c, x, w);
      assert.equal(actual.length, expected.length, 'output size');
      const err = maxRelativeError(actual, expected);
      assert.ok(err <= TOLERANCE, `relative error ${err.toExponential(2)} > ${TOLERANCE}`);
      assert.ok(bitsEqual(actual, referenceInKernelOrder(c, x, w)), 'wasm output differs from the documented summation order');
    });
  }
});
