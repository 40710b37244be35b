import * as tf from '@tensorflow/tfjs';
import {
  ConvGeometry,
  convGeometry,
  correlateToInputGrad,
  dilateWithTrailingZeros,
  expectOutputGradShape,
} from './conv-geometry';
import { columnsToImage } from './wasm-depthwise-kernels';
import { gemmOfViews } from './wasm-gemm';
import { asTensor, KernelArgs, registerWasmKernel, tidyKernel } from './wasm-kernel-registry';
import { isPointwise } from './wasm-pointwise-conv';

/**
 * dx = dy·Wᵀ for a pointwise convolution, where our SIMD product does not apply (see
 * {@link directPointwiseInputGrad}). XNNPACK packs the right operand of every product
 * (~2.7 ns per element, as slow as a transpose), so there are two ways to pay: transpose and
 * pack the [in, out] filter, or compute dxᵀ = W·dyᵀ, which transposes and packs dy and
 * transposes the result. Deep layers have few pixels and big filters (32 pixels against a
 * 512x1024 filter at 32x32 input), shallow ones the opposite; pick the cheaper per call.
 */
function pointwiseInputGrad(dy: tf.Tensor4D, filter: tf.Tensor4D): tf.Tensor {
  const [n, h, w, outC] = dy.shape;
  const inC = filter.shape[2];
  const pixels = n * h * w;
  const dy2 = tf.reshape(dy, [pixels, outC]);
  const w2 = tf.reshape(filter, [inC, outC]);
  const viaFilter = 2 * inC * outC <= pixels * (2 * outC + inC);
  const dx2 = viaFilter ? tf.matMul(dy2, w2, false, true) : tf.transpose(tf.matMul(w2, dy2, false, true));
  return tf.reshape(dx2, [n, h, w, inC]);
}

/**
 * Few input channels (an RGB stem): the direct correlation below would run XNNPACK with 3
 * output channels, a fraction of its vector width, over a stride-dilated input that is mostly
 * zeros. Instead, columns = dy·Wᵀ ([pixels, in·taps], one product) and col2im, which is the
 * input gradient of im2col (one scalar pass, wasm-depthwise-kernels.ts; at 64x64 MobileNet's conv1
 * took ~7 ms per micro-batch of 16 as the input gradient of a depthwise convolution with a one-hot
 * filter). tfjs computes this gradient even though nothing uses it (its fused conv2d gradient
 * returns dx and dW together), so it is worth keeping cheap.
 */
function inputGradViaColumns(backend: unknown, dy: tf.Tensor4D, filter: tf.Tensor4D, g: ConvGeometry, inputShape: number[]): tf.Tensor {
  const [kh, kw, inC, outC] = filter.shape;
  const taps = kh * kw;
  const [n, oh, ow] = dy.shape;
  const byChannel = tf.reshape(tf.transpose(tf.reshape(filter, [taps, inC, outC]), [1, 0, 2]), [inC * taps, outC]);
  const columns = tf.reshape(tf.matMul(tf.reshape(dy, [n * oh * ow, outC]), byChannel, false, true), [n, oh, ow, inC * taps]);
  return tf.engine().makeTensorFromTensorInfo(columnsToImage(backend, columns, g, inputShape));
}

/**
 * dx = dy·Wᵀ for a pointwise convolution on our SIMD product (float32, a multiple of 8 input channels),
 * which packs Wᵀ straight from the [in, out] filter and reads dy as the [pixels, out] matrix it is: no
 * copy, no op dispatched. Undefined where it does not apply.
 */
function directPointwiseInputGrad(backend: unknown, dy: tf.TensorInfo, filter: tf.TensorInfo, inputShape: number[]): tf.TensorInfo | undefined {
  const [n, h, w, outC] = dy.shape;
  const inC = filter.shape[2];
  return gemmOfViews(backend, dy, filter, { m: n * h * w, n: inC, k: outC, transposeA: false, transposeB: true }, inputShape);
}

/** Input channels up to which the column route beats the direct correlation. */
const MAX_COLUMN_ROUTE_CHANNELS = 8;

/**
 * Input gradient of a 2-D convolution on wasm. The stock kernel is a scalar loop (measured
 * 3.7 GFLOP/s on a 1x1 convolution). Pointwise layers use matrix products; stems with few input
 * channels the column route; any other filter a stride-1 XNNPACK convolution of the
 * stride-dilated output gradient with the spatially flipped filter whose in/out channel axes
 * are swapped.
 */
export function wasmConv2DBackpropInput(args: KernelArgs): tf.TensorInfo {
  const attrs = args.attrs as unknown as tf.Conv2DBackpropInputAttrs;
  const filterInfo = args.inputs.filter as tf.TensorInfo;
  const g = convGeometry(tf.Conv2DBackpropInput, attrs.inputShape, filterInfo.shape, attrs, false);
  const dyShape = (args.inputs.dy as tf.TensorInfo).shape;
  expectOutputGradShape(tf.Conv2DBackpropInput, dyShape, g, attrs.inputShape[0], filterInfo.shape[3]);
  const pointwise = isPointwise(attrs.inputShape, filterInfo.shape, attrs);
  const direct = pointwise ? directPointwiseInputGrad(args.backend, args.inputs.dy as tf.TensorInfo, filterInfo, [...attrs.inputShape]) : undefined;
  if (direct) return direct;
  return tidyKernel(() => {
    const filter = asTensor(filterInfo, 'filter') as tf.Tensor4D;
    const dy = asTensor(args.inputs.dy, 'dy') as tf.Tensor4D;
    if (pointwise) return pointwiseInputGrad(dy, filter);
    if (filterInfo.shape[2] <= MAX_COLUMN_ROUTE_CHANNELS) return inputGradViaColumns(args.backend, dy, filter, g, attrs.inputShape);
    let flipped = tf.transpose(filter, [0, 1, 3, 2]) as tf.Tensor4D;
    if (g.filterHeight > 1 || g.filterWidth > 1) flipped = tf.reverse(flipped, [0, 1]);
    const dilated = dilateWithTrailingZeros(dy, g.strideHeight, g.strideWidth);
    return correlateToInputGrad(dilated, g, (input, padding) => tf.conv2d(input, flipped, 1, padding));
  });
}

/** Registers {@link wasmConv2DBackpropInput} in place of the stock wasm kernel. */
export function registerWasmConv2DBackpropInput(): void {
  registerWasmKernel(tf.Conv2DBackpropInput, () => wasmConv2DBackpropInput);
}
