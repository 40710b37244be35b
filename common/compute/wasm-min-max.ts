import * as tf from '@tensorflow/tfjs';
import { asTensor, KernelArgs, registerWasmKernel, requireStock, tidyKernel } from './wasm-kernel-registry';

/**
 * The stock wasm Minimum/Maximum broadcast with a generic loop (~0.5 ms for a 2 MB tensor
 * against a scalar; XNNPACK binary ops take ~0.07 ms). tfjs-layers' 'relu6' activation is
 * minimum(6, relu(x)), once per MobileNet layer, so a float tensor against a scalar becomes a
 * ClipByValue with an infinite other bound. Every other case goes to the stock kernel.
 */
function registerScalarClip(kernelName: string, bounds: (s: number) => [number, number]): void {
  registerWasmKernel(kernelName, (stockFunc) => {
    const stock = requireStock(kernelName, stockFunc);
    return (args: KernelArgs) => {
      const a = args.inputs.a as tf.TensorInfo;
      const b = args.inputs.b as tf.TensorInfo;
      const size = (t: tf.TensorInfo) => t.shape.reduce((n, d) => n * d, 1);
      const [tensor, scalar] = size(a) === 1 ? [b, a] : [a, b];
      if (a.dtype !== 'float32' || b.dtype !== 'float32' || size(scalar) !== 1 || size(tensor) === 1) return stock(args);
      // The result has the broadcast rank: a [1,1] scalar against [n] gives [1,n].
      if (scalar.shape.length > tensor.shape.length) return stock(args);
      const value = (tf.backend().readSync(scalar.dataId) as Float32Array)[0];
      if (Number.isNaN(value)) return stock(args);
      const [lo, hi] = bounds(value);
      return tidyKernel(() => tf.clipByValue(asTensor(tensor, 'x'), lo, hi));
    };
  });
}

/** Registers the scalar fast path of Minimum and Maximum for the wasm backend. */
export function registerWasmMinMax(): void {
  registerScalarClip(tf.Minimum, (s) => [-Infinity, s]);
  registerScalarClip(tf.Maximum, (s) => [s, Infinity]);
}
