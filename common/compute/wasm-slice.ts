import * as tf from '@tensorflow/tfjs';
import { collapseBox, copyBox, type HeapBackend } from './heap-box-copy';
import { KernelArgs, registerWasmKernel, requireStock } from './wasm-kernel-registry';

/**
 * The stock wasm Slice first copies the whole input out of the wasm heap (readSync), then copies
 * one innermost row per TypedArray.set: cropping the border off a [32, 18, 18, 32] activation
 * (the gradient of every ZeroPadding2D) costs ~1 ms. This one reads the heap in place and
 * merges trailing axes that are taken whole (they are contiguous with the axis before them), so
 * the same crop is 512 moves of 512 floats (heap-box-copy.ts). It is data movement only: no arithmetic.
 */

/** Registers the in-place, collapsing Slice for the wasm backend (strings stay with stock). */
export function registerWasmSlice(): void {
  registerWasmKernel(tf.Slice, (stockFunc) => {
    const stock = requireStock(tf.Slice, stockFunc);
    return (args: KernelArgs) => {
      const x = args.inputs.x as tf.TensorInfo;
      if (x.dtype === 'string' || x.dtype === 'complex64') return stock(args);
      const attrs = args.attrs as unknown as tf.SliceAttrs;
      const [begin, size] = tf.slice_util.parseSliceParams(x as tf.Tensor, attrs.begin, attrs.size);
      const backend = args.backend as HeapBackend;
      // Allocate first: allocation may grow the wasm memory, which detaches older heap views.
      const out = backend.makeOutput(size, x.dtype);
      if (size.some((d) => d === 0)) return out;
      copyBox(backend.typedArrayFromHeap(x), backend.typedArrayFromHeap(out), collapseBox(x.shape, begin, size), 'fromBox');
      return out;
    };
  });
}
