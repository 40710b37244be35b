import * as tf from '@tensorflow/tfjs';
import { KernelShapeError, UnsupportedKernelError } from './errors';

/** Sizes of one forward 2-D convolution, NHWC, as its gradient kernels need them. */
export interface ConvGeometry {
  inHeight: number;
  inWidth: number;
  outHeight: number;
  outWidth: number;
  filterHeight: number;
  filterWidth: number;
  strideHeight: number;
  strideWidth: number;
  padTop: number;
  padBottom: number;
  padLeft: number;
  padRight: number;
}

/** Attributes shared by the conv gradient kernels (tfjs spells them the same way in each). */
export interface ConvGradAttrs {
  strides: [number, number] | number;
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  dataFormat?: 'NHWC' | 'NCHW';
  dilations?: [number, number] | number;
}

/**
 * Geometry of the forward convolution whose gradient `kernelName` computes, after rejecting what
 * our kernels do not implement: NCHW data and dilated filters.
 */
export function convGeometry(
  kernelName: string,
  xShape: readonly number[],
  filterShape: readonly number[],
  attrs: ConvGradAttrs,
  depthwise: boolean,
): ConvGeometry {
  if (attrs.dataFormat !== undefined && attrs.dataFormat !== 'NHWC') {
    throw new UnsupportedKernelError(kernelName, 'dataFormat', "'NHWC'", attrs.dataFormat);
  }
  const dilations = attrs.dilations ?? 1;
  if (!tf.backend_util.tupleValuesAreOne(dilations)) {
    throw new UnsupportedKernelError(kernelName, 'dilations', '1', dilations);
  }
  const info = tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
    depthwise,
  );
  return {
    inHeight: info.inHeight,
    inWidth: info.inWidth,
    outHeight: info.outHeight,
    outWidth: info.outWidth,
    filterHeight: info.filterHeight,
    filterWidth: info.filterWidth,
    strideHeight: info.strideHeight,
    strideWidth: info.strideWidth,
    padTop: info.padInfo.top,
    padBottom: info.padInfo.bottom,
    padLeft: info.padInfo.left,
    padRight: info.padInfo.right,
  };
}

/**
 * Throws unless `dy` is [batch, outHeight, outWidth, channels] for geometry `g`: kernels run
 * through tf.engine().runKernel skip the shape checks of the tfjs ops.
 */
export function expectOutputGradShape(
  kernelName: string,
  dyShape: readonly number[],
  g: ConvGeometry,
  batch: number,
  channels: number,
): void {
  const expected = [batch, g.outHeight, g.outWidth, channels];
  if (dyShape.length !== 4 || expected.some((d, i) => d !== dyShape[i])) {
    throw new KernelShapeError(kernelName, 'dy', expected, dyShape);
  }
}

/** Explicit NHWC padding in the form tf.conv2d and tf.depthwiseConv2d accept. */
export function nhwcPadding(top: number, bottom: number, left: number, right: number): tf.backend_util.ExplicitPadding {
  return [[0, 0], [top, bottom], [left, right], [0, 0]];
}

/**
 * `dy` with stride-1 zeros between rows and columns, plus the same number of zero rows/columns
 * after the last ones (they come free with the pad-and-reshape trick; callers count them as
 * padding). [N, OH, OW, C] -> [N, OH*sh, OW*sw, C]. One PadV2 pass, no gather.
 */
export function dilateWithTrailingZeros(dy: tf.Tensor4D, strideHeight: number, strideWidth: number): tf.Tensor4D {
  if (strideHeight === 1 && strideWidth === 1) return dy;
  const [n, oh, ow, c] = dy.shape;
  const spread = tf.pad(tf.reshape(dy, [n, oh, 1, ow, 1, c]), [
    [0, 0], [0, 0], [0, strideHeight - 1], [0, 0], [0, strideWidth - 1], [0, 0],
  ]);
  return tf.reshape(spread, [n, oh * strideHeight, ow * strideWidth, c]);
}

/** Padding (possibly negative, meaning "crop") along one axis for an input-gradient correlation. */
interface AxisPads {
  before: number;
  after: number;
}

/**
 * The input gradient of a convolution is a stride-1 correlation of the dilated output gradient
 * with the flipped filter. Rows of dx are i = 0..in-1; row i reads dilated rows i - (k-1-padBefore)
 * .. i + padBefore. `dilatedLength` counts the trailing zeros of dilateWithTrailingZeros.
 */
function inputGradPads(inLength: number, dilatedLength: number, filterLength: number, padBefore: number): AxisPads {
  const before = filterLength - 1 - padBefore;
  return { before, after: inLength + filterLength - 1 - dilatedLength - before };
}

/**
 * Runs `correlate` (a stride-1 convolution taking explicit padding) so that its output is
 * exactly the [inHeight, inWidth] input gradient. Negative padding, which convolution kernels
 * reject, becomes zero padding followed by a crop of the (small) result: it only arises with
 * explicit paddings larger than the filter.
 */
export function correlateToInputGrad(
  dilated: tf.Tensor4D,
  g: ConvGeometry,
  correlate: (input: tf.Tensor4D, padding: tf.backend_util.ExplicitPadding) => tf.Tensor4D,
): tf.Tensor4D {
  const rows = inputGradPads(g.inHeight, dilated.shape[1], g.filterHeight, g.padTop);
  const cols = inputGradPads(g.inWidth, dilated.shape[2], g.filterWidth, g.padLeft);
  const clamp = (p: number) => Math.max(p, 0);
  const out = correlate(dilated, nhwcPadding(clamp(rows.before), clamp(rows.after), clamp(cols.before), clamp(cols.after)));
  const top = clamp(rows.before) - rows.before;
  const left = clamp(cols.before) - cols.before;
  if (top === 0 && left === 0 && out.shape[1] === g.inHeight && out.shape[2] === g.inWidth) return out;
  return tf.slice(out, [0, top, left, 0], [out.shape[0], g.inHeight, g.inWidth, out.shape[3]]);
}

/**
 * x with the convolution's padding (bottom/right extended to a multiple of the stride) viewed
 * as [n, H/sh, sh, W/sw, sw, c]: the pixels one filter tap reads at stride s are then a plain
 * slice (see {@link tapPixels}). tf.stridedSlice on wasm is a per-element JS loop, and a strided
 * 1x1 depthwise convolution misses XNNPACK's fast kernels; slicing this view is a block copy.
 */
export function phaseView(x: tf.Tensor4D, g: ConvGeometry): tf.Tensor {
  const [n, h, w, c] = x.shape;
  const roundUp = (v: number, m: number) => Math.ceil(v / m) * m;
  const height = roundUp(h + g.padTop + g.padBottom, g.strideHeight);
  const width = roundUp(w + g.padLeft + g.padRight, g.strideWidth);
  const padBottom = height - h - g.padTop;
  const padRight = width - w - g.padLeft;
  const needsPad = g.padTop > 0 || padBottom > 0 || g.padLeft > 0 || padRight > 0;
  const padded = needsPad ? tf.pad(x, nhwcPadding(g.padTop, padBottom, g.padLeft, padRight)) : x;
  return tf.reshape(padded, [n, height / g.strideHeight, g.strideHeight, width / g.strideWidth, g.strideWidth, c]);
}

/** The [n·oh·ow, c] pixels that filter tap (i, j) reads, sliced from a {@link phaseView}. */
export function tapPixels(view: tf.Tensor, g: ConvGeometry, i: number, j: number): tf.Tensor2D {
  const [n, , sh, , sw, c] = view.shape;
  const begin = [0, Math.floor(i / sh), i % sh, Math.floor(j / sw), j % sw, 0];
  const pixels = tf.slice(view, begin, [n, g.outHeight, 1, g.outWidth, 1, c]);
  return tf.reshape(pixels, [n * g.outHeight * g.outWidth, c]);
}
