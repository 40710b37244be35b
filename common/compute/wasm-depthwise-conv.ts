import * as tf from '@tensorflow/tfjs';
import {
  ConvGeometry,
  convGeometry,
  correlateToInputGrad,
  dilateWithTrailingZeros,
  expectOutputGradShape,
  nhwcPadding,
  phaseView,
  tapPixels,
} from './conv-geometry';
import { depthwiseFilterGrad, depthwiseForward, depthwiseInputGrad } from './wasm-depthwise-kernels';
import { asTensor, KernelArgs, registerWasmKernel, requireStock, tidyKernel } from './wasm-kernel-registry';

/**
 * Depthwise convolution on wasm, forward and both gradients: our SIMD kernels (wasm-depthwise-kernels.ts)
 * for MobileNet's case, a channel multiplier of 1 on float32 NHWC data, undilated; compositions of
 * tfjs ops (gradients) or the stock XNNPACK kernel (forward) for the rest.
 */

/** True when our SIMD kernels compute a depthwise convolution of `x` by `filter` with `attrs`. */
function isSimdCase(x: tf.TensorInfo, filter: tf.TensorInfo, attrs: tf.DepthwiseConv2dNativeAttrs): boolean {
  return filter.shape[3] === 1 && x.dtype === 'float32' && filter.dtype === 'float32' &&
    (attrs.dataFormat === undefined || attrs.dataFormat === 'NHWC') &&
    tf.backend_util.tupleValuesAreOne(attrs.dilations ?? 1) &&
    x.shape.every((d) => d > 0);
}

/** Forward depthwise convolution: our SIMD kernel where {@link isSimdCase}, else XNNPACK's. */
function wasmDepthwiseForward(stock: tf.KernelFunc): tf.KernelFunc {
  return (args: KernelArgs) => {
    const attrs = args.attrs as unknown as tf.DepthwiseConv2dNativeAttrs;
    const x = args.inputs.x as tf.TensorInfo;
    const filter = args.inputs.filter as tf.TensorInfo;
    if (!isSimdCase(x, filter, attrs)) return stock(args);
    const g = convGeometry(tf.DepthwiseConv2dNative, x.shape, filter.shape, attrs, true);
    return depthwiseForward(args.backend, x, filter, g);
  };
}

/**
 * Input gradient of a depthwise convolution: our SIMD kernel (wasm-depthwise-kernels.ts)
 * for a channel multiplier of 1. Otherwise a stride-1 depthwise convolution of the
 * stride-dilated output gradient with the spatially flipped filter. With a channel multiplier
 * M > 1 each of the C·M gradient channels is convolved on its own and the M results of each
 * input channel are summed.
 */
export function wasmDepthwiseBackpropInput(args: KernelArgs): tf.TensorInfo {
  const attrs = args.attrs as unknown as tf.DepthwiseConv2dNativeBackpropInputAttrs;
  const filterInfo = args.inputs.filter as tf.TensorInfo;
  const g = convGeometry(tf.DepthwiseConv2dNativeBackpropInput, attrs.inputShape, filterInfo.shape, attrs, true);
  const [kh, kw, channels, multiplier] = filterInfo.shape;
  const dyShape = (args.inputs.dy as tf.TensorInfo).shape;
  expectOutputGradShape(tf.DepthwiseConv2dNativeBackpropInput, dyShape, g, attrs.inputShape[0], channels * multiplier);
  const dyInfo = args.inputs.dy as tf.TensorInfo;
  if (multiplier === 1 && filterInfo.dtype === 'float32' && dyInfo.dtype === 'float32') {
    return depthwiseInputGrad(args.backend, dyInfo, filterInfo, g, [...attrs.inputShape]);
  }
  // A channel multiplier above 1 (MobileNet has none) composes tfjs ops.
  return tidyKernel(() => {
    let filter = asTensor(filterInfo, 'filter') as tf.Tensor4D;
    if (kh > 1 || kw > 1) filter = tf.reverse(filter, [0, 1]);
    const perChannel = tf.reshape(filter, [kh, kw, channels * multiplier, 1]) as tf.Tensor4D;
    const dy = asTensor(args.inputs.dy, 'dy') as tf.Tensor4D;
    const dilated = dilateWithTrailingZeros(dy, g.strideHeight, g.strideWidth);
    const dx = correlateToInputGrad(dilated, g, (input, padding) => tf.depthwiseConv2d(input, perChannel, 1, padding));
    if (multiplier === 1) return dx;
    const [n, h, w] = dx.shape;
    return tf.sum(tf.reshape(dx, [n, h, w, channels, multiplier]), 4);
  });
}

/**
 * Filter gradient for small outputs: dW[kh, kw, c, m] = Σ_{n,oh,ow} x[n, oh·s+kh, ow·s+kw, c]·dy[n, oh, ow, c·M+m]
 * is one depthwise convolution of x viewed as [1, h, w, n·c] (batch moved into the channels)
 * with dy viewed as an [oh, ow, n·c, M] filter, dilated by the forward stride; the n partial
 * filters are then summed. XNNPACK runs it fast only while oh·ow fits its 9-tap kernels.
 */
function filterGradByBatchAsChannels(x: tf.Tensor4D, dy: tf.Tensor4D, g: ConvGeometry, filterShape: number[]): tf.Tensor {
  const [kh, kw, channels, multiplier] = filterShape;
  const [n, h, w] = x.shape;
  const [, oh, ow] = dy.shape;
  const xT = tf.reshape(tf.transpose(x, [1, 2, 0, 3]), [1, h, w, n * channels]) as tf.Tensor4D;
  const dyT = tf.reshape(tf.transpose(dy, [1, 2, 0, 3]), [oh, ow, n * channels, multiplier]) as tf.Tensor4D;
  const padding = nhwcPadding(g.padTop, g.padBottom, g.padLeft, g.padRight);
  let out = tf.depthwiseConv2d(xT, dyT, 1, padding, 'NHWC', [g.strideHeight, g.strideWidth]);
  if (out.shape[1] !== kh || out.shape[2] !== kw) {
    out = tf.slice(out, [0, 0, 0, 0], [1, kh, kw, out.shape[3]]);
  }
  const perImage = tf.reshape(out, [kh * kw, n, channels * multiplier]);
  return tf.reshape(tf.sum(perImage, 1), filterShape);
}

/**
 * Filter gradient for larger outputs, one filter tap at a time: the pixels tap (kh, kw) reads
 * (a slice of the stride phase view of x), multiplied by dy and summed over pixels. Three cheap
 * ops per tap, against one depthwise convolution with oh·ow taps, which XNNPACK runs ~10x
 * slower than its size suggests (measured 2.3 ms against 5 ms for MobileNet's conv_dw_1).
 */
function filterGradByTaps(x: tf.Tensor4D, dy: tf.Tensor4D, g: ConvGeometry, filterShape: number[]): tf.Tensor {
  const [kh, kw, channels, multiplier] = filterShape;
  const view = phaseView(x, g);
  const dy3 = tf.reshape(dy, [-1, channels, multiplier]);
  const taps: tf.Tensor[] = [];
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      const pixels = tf.reshape(tapPixels(view, g, i, j), [-1, channels, 1]);
      taps.push(tf.reshape(tf.sum(tf.mul(pixels, dy3), 0), [channels * multiplier]));
    }
  }
  return tf.reshape(tf.stack(taps), filterShape);
}

/** Output positions up to which the batch-as-channels convolution stays on XNNPACK's fast kernels. */
const MAX_FAST_TAPS = 9;

/**
 * Filter gradient of a depthwise convolution (tfjs 4.22's wasm backend has none): our SIMD kernel
 * (wasm-depthwise-kernels.ts) for a channel multiplier of 1, else a composition of ops.
 */
export function wasmDepthwiseBackpropFilter(args: KernelArgs): tf.TensorInfo {
  const attrs = args.attrs as unknown as tf.DepthwiseConv2dNativeBackpropFilterAttrs;
  const xInfo = args.inputs.x as tf.TensorInfo;
  const g = convGeometry(tf.DepthwiseConv2dNativeBackpropFilter, xInfo.shape, attrs.filterShape, attrs, true);
  const dyShape = (args.inputs.dy as tf.TensorInfo).shape;
  const [, , channels, multiplier] = attrs.filterShape;
  expectOutputGradShape(tf.DepthwiseConv2dNativeBackpropFilter, dyShape, g, xInfo.shape[0], channels * multiplier);
  const dyInfo = args.inputs.dy as tf.TensorInfo;
  if (multiplier === 1 && xInfo.dtype === 'float32' && dyInfo.dtype === 'float32') {
    return depthwiseFilterGrad(args.backend, xInfo, dyInfo, g, attrs.filterShape);
  }
  // A channel multiplier above 1 (MobileNet has none) composes tfjs ops.
  return tidyKernel(() => {
    const x = asTensor(xInfo, 'x') as tf.Tensor4D;
    const dy = asTensor(args.inputs.dy, 'dy') as tf.Tensor4D;
    const outputs = dy.shape[1] * dy.shape[2];
    if (outputs <= MAX_FAST_TAPS) return filterGradByBatchAsChannels(x, dy, g, attrs.filterShape);
    return filterGradByTaps(x, dy, g, attrs.filterShape);
  });
}

/** Registers the depthwise convolution and both its gradient kernels for the wasm backend. */
export function registerWasmDepthwiseConv(): void {
  registerWasmKernel(tf.DepthwiseConv2dNative, (stock) => wasmDepthwiseForward(requireStock(tf.DepthwiseConv2dNative, stock)));
  registerWasmKernel(tf.DepthwiseConv2dNativeBackpropInput, () => wasmDepthwiseBackpropInput);
  registerWasmKernel(tf.DepthwiseConv2dNativeBackpropFilter, () => wasmDepthwiseBackpropFilter);
}
