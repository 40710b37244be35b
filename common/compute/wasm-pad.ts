import * as tf from '@tensorflow/tfjs';
import { collapseBox, copyBox, type HeapBackend } from './heap-box-copy';
import { KernelArgs, registerWasmKernel, requireStock } from './wasm-kernel-registry';

/**
 * A constant Pad (PadV2) on wasm that fills the output in place and copies the input into it as whole
 * runs (heap-box-copy.ts). MobileNet's ZeroPadding2D before each of its 13 depthwise convolutions is
 * one: a [16, 32, 32, 64] activation padded by one pixel is 512 moves of 2,048 floats plus a native
 * fill, where the stock kernel walks it element by element (measured ~0.5 ms a call at 64x64 input).
 * Data movement only, so the result is the same bits as the stock kernel's.
 */

/** Registers the in-place, collapsing PadV2 for the wasm backend (other dtypes and scalars stay with stock). */
export function registerWasmPad(): void {
  registerWasmKernel(tf.PadV2, (stockFunc) => {
    const stock = requireStock(tf.PadV2, stockFunc);
    return (args: KernelArgs) => {
      const x = args.inputs.x as tf.TensorInfo;
      const { paddings, constantValue } = args.attrs as unknown as tf.PadV2Attrs;
      if ((x.dtype !== 'float32' && x.dtype !== 'int32') || x.shape.length === 0 || paddings.flat().some((p) => p < 0)) return stock(args);
      const before = paddings.map(([b]) => b);
      const shape = x.shape.map((d, i) => d + paddings[i][0] + paddings[i][1]);
      const backend = args.backend as HeapBackend;
      // Allocate first: allocation may grow the wasm memory, which detaches older heap views.
      const out = backend.makeOutput(shape, x.dtype);
      const padded = backend.typedArrayFromHeap(out);
      padded.fill(constantValue);
      if (x.shape.some((d) => d === 0)) return out;
      copyBox(padded, backend.typedArrayFromHeap(x), collapseBox(shape, before, x.shape), 'intoBox');
      return out;
    };
  });
}
