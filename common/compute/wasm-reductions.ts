import * as tf from '@tensorflow/tfjs';
import { registerBroadcastMiddle, sumMiddleAxis } from './wasm-axis-sum';
import { asTensor, KernelArgs, registerWasmKernel, requireStock, tidyKernel } from './wasm-kernel-registry';

/**
 * The stock wasm Sum and Mean only reduce the innermost axes; anything else is first transposed
 * by a slow generic transpose. Batch-norm statistics and their gradients reduce over
 * [batch, height, width] of NHWC tensors, i.e. the leading axes: ~1 ms for a 2 MB tensor. The
 * same reduction is a sum over the middle axis of an [outer, reduced, inner] view: Sum runs our SIMD
 * kernel for it, Mean an average pooling whose window covers the reduced axes, which XNNPACK does
 * in one vectorised read (~0.07 ms). Reductions of a contiguous block of axes with something
 * left after it take that route; innermost or scattered axes stay with the stock kernels.
 */

/** [outer, reduced, inner] sizes when `axes` are one contiguous block followed by other axes. */
export function poolableReduction(
  shape: readonly number[],
  axes: readonly number[],
): { outer: number; reduced: number; inner: number } | undefined {
  if (axes.length === 0) return undefined;
  const sorted = [...axes].sort((a, b) => a - b);
  for (let i = 1; i < sorted.length; i++) if (sorted[i] !== sorted[0] + i) return undefined;
  const first = sorted[0];
  const last = sorted[sorted.length - 1];
  const size = (from: number, to: number) => shape.slice(from, to).reduce((n, d) => n * d, 1);
  const outer = size(0, first);
  const reduced = size(first, last + 1);
  const inner = size(last + 1, shape.length);
  // XNNPACK rejects 1x1 pooling; inner === 1 is the stock kernel's own fast case.
  if (reduced <= 1 || inner <= 1) return undefined;
  return { outer, reduced, inner };
}

function outputShape(shape: readonly number[], axes: readonly number[], keepDims: boolean): number[] {
  return keepDims ? shape.map((d, i) => (axes.includes(i) ? 1 : d)) : shape.filter((_, i) => !axes.includes(i));
}

function registerPooledReduction(kernelName: string, exactSum: boolean): void {
  registerWasmKernel(kernelName, (stockFunc) => {
    const stock = requireStock(kernelName, stockFunc);
    return (args: KernelArgs) => {
      const xInfo = args.inputs.x as tf.TensorInfo;
      const { axis, keepDims } = args.attrs as unknown as tf.SumAttrs;
      if (xInfo.dtype !== 'float32') return stock(args);
      const axes = tf.util.parseAxisParam(axis, xInfo.shape);
      const plan = poolableReduction(xInfo.shape, axes);
      if (!plan) return stock(args);
      if (exactSum) return sumMiddleAxis(args.backend, xInfo, plan, outputShape(xInfo.shape, axes, keepDims));
      return tidyKernel(() => {
        const x4 = tf.reshape(asTensor(xInfo, 'x'), [plan.outer, plan.reduced, 1, plan.inner]) as tf.Tensor4D;
        return tf.reshape(tf.avgPool(x4, [plan.reduced, 1], 1, 'valid'), outputShape(xInfo.shape, axes, keepDims));
      });
    };
  });
}

/** Registers the SIMD Sum (wasm-axis-sum.ts) and the pooled Mean for the wasm backend. */
export function registerWasmReductions(): void {
  registerPooledReduction(tf.Sum, true);
  registerBroadcastMiddle();
  registerPooledReduction(tf.Mean, false);
}
