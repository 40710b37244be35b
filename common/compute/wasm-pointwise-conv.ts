import * as tf from '@tensorflow/tfjs';
import { gemmOfViews } from './wasm-gemm';
import { asTensor, KernelArgs, registerWasmKernel, requireStock, tidyKernel } from './wasm-kernel-registry';

/**
 * A 1x1 convolution with stride 1 and no padding is a matrix product of the [pixels, in] input
 * with the [in, out] filter. XNNPACK packs the filter of a convolution far more slowly than the
 * weights of a matrix product: with weights that change every training step, a 512→1024
 * pointwise layer on 32 pixels takes ~12 ms as tf.conv2d against ~2.2 ms as tf.matMul
 * (measured). MobileNet's 13 pointwise layers carry 95% of its weights, so both the plain and
 * the fused (bias/activation) convolution are routed to the matrix product when they qualify: straight to
 * our SIMD product on the tensors as they are (no Reshape or matMul op to dispatch) where it applies.
 */

/** x·W on our SIMD product, read in place, or undefined where it does not apply. */
function directPointwise(args: KernelArgs, x: tf.TensorInfo, filter: tf.TensorInfo): tf.TensorInfo | undefined {
  const [n, h, w, inC] = x.shape;
  const outC = filter.shape[3];
  return gemmOfViews(args.backend, x, filter, { m: n * h * w, n: outC, k: inC, transposeA: false }, [n, h, w, outC]);
}

interface ConvAttrs {
  strides: [number, number] | number;
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dataFormat?: 'NHWC' | 'NCHW';
  dilations?: [number, number] | number;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

/** True when a convolution of `xShape` by `filterShape` with `attrs` is a plain matrix product. */
export function isPointwise(xShape: readonly number[], filterShape: readonly number[], attrs: ConvAttrs): boolean {
  if (filterShape[0] !== 1 || filterShape[1] !== 1) return false;
  if (attrs.dataFormat !== undefined && attrs.dataFormat !== 'NHWC') return false;
  if (!tf.backend_util.tupleValuesAreOne(attrs.strides)) return false;
  if (!tf.backend_util.tupleValuesAreOne(attrs.dilations ?? 1)) return false;
  const info = tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
  );
  const p = info.padInfo;
  return p.top === 0 && p.bottom === 0 && p.left === 0 && p.right === 0;
}

/** Registers the matrix-product route for pointwise Conv2D and FusedConv2D on wasm. */
export function registerWasmPointwiseConv(): void {
  registerWasmKernel(tf.Conv2D, (stockFunc) => {
    const stock = requireStock(tf.Conv2D, stockFunc);
    return (args: KernelArgs) => {
      const x = args.inputs.x as tf.TensorInfo;
      const filter = args.inputs.filter as tf.TensorInfo;
      if (!isPointwise(x.shape, filter.shape, args.attrs as unknown as ConvAttrs)) return stock(args);
      const direct = directPointwise(args, x, filter);
      if (direct) return direct;
      return tidyKernel(() => {
        const [n, h, w, inC] = x.shape;
        const outC = filter.shape[3];
        const product = tf.matMul(tf.reshape(asTensor(x, 'x'), [n * h * w, inC]), tf.reshape(asTensor(filter, 'filter'), [inC, outC]));
        return tf.reshape(product, [n, h, w, outC]);
      });
    };
  });
  registerWasmKernel(tf.FusedConv2D, (stockFunc) => {
    const stock = requireStock(tf.FusedConv2D, stockFunc);
    return (args: KernelArgs) => {
      const { x, filter, bias, preluActivationWeights } = args.inputs as Record<string, tf.TensorInfo | undefined>;
      const attrs = args.attrs as unknown as tf.FusedConv2DAttrs;
      if (!x || !filter || preluActivationWeights || (bias && bias.shape.length !== 1)) return stock(args);
      if (!isPointwise(x.shape, filter.shape, attrs)) return stock(args);
      const linear = attrs.activation === undefined || attrs.activation === 'linear';
      const direct = !bias && linear ? directPointwise(args, x, filter) : undefined;
      if (direct) return direct;
      return tidyKernel(() => {
        const [n, h, w, inC] = x.shape;
        const outC = filter.shape[3];
        const product = tf.fused.matMul({
          a: tf.reshape(asTensor(x, 'x'), [n * h * w, inC]) as tf.Tensor2D,
          b: tf.reshape(asTensor(filter, 'filter'), [inC, outC]) as tf.Tensor2D,
          bias: bias ? asTensor(bias, 'bias') : undefined,
          activation: attrs.activation,
          leakyreluAlpha: attrs.leakyreluAlpha,
        });
        return tf.reshape(product, [n, h, w, outC]);
      });
    };
  });
}
