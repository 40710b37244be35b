import * as tf from '@tensorflow/tfjs';
import { KernelArgs, registerWasmKernel, requireStock } from './wasm-kernel-registry';

/**
 * The stock wasm Slice first copies the whole input out of the wasm heap (readSync), then copies
 * one innermost row per TypedArray.set: cropping the border off a [32, 18, 18, 32] activation
 * (the gradient of every ZeroPadding2D) costs ~1 ms. This one reads the heap in place and
 * merges trailing axes that are taken whole (they are contiguous with the axis before them), so
 * the same crop is 512 moves of 512 floats. It is data movement only: no arithmetic.
 */

/** The part of the wasm backend this kernel uses (tfjs does not export the class's type). */
interface HeapBackend {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
}

/** Equivalent slice with trailing whole axes merged into the axis before them. */
export function collapseSlice(
  shape: readonly number[],
  begin: readonly number[],
  size: readonly number[],
): { shape: number[]; begin: number[]; size: number[] } {
  const s = [...shape];
  const b = [...begin];
  const z = [...size];
  while (s.length > 1 && b[s.length - 1] === 0 && z[s.length - 1] === s[s.length - 1]) {
    const inner = s.pop() as number;
    b.pop();
    z.pop();
    const last = s.length - 1;
    s[last] *= inner;
    b[last] *= inner;
    z[last] *= inner;
  }
  return { shape: s, begin: b, size: z };
}

// Below this many elements a plain loop beats a copyWithin call.
const MIN_NATIVE_RUN = 8;

/**
 * Copies the (collapsed) slice: one contiguous run of the last axis per outer index tuple.
 * Source and destination live in the same wasm heap, so each run is one native memmove
 * (copyWithin: ~0.3 ns per float for 64-float runs, against ~0.6 for set(subarray(...)) and
 * ~1.8 for a JS loop).
 */
function copyRuns(
  src: Float32Array | Int32Array | Uint8Array,
  dst: Float32Array | Int32Array | Uint8Array,
  c: { shape: number[]; begin: number[]; size: number[] },
): void {
  const rank = c.shape.length;
  const strides = new Array<number>(rank).fill(1);
  for (let i = rank - 2; i >= 0; i--) strides[i] = strides[i + 1] * c.shape[i + 1];
  const run = c.size[rank - 1];
  const heap = new (src.constructor as Uint8ArrayConstructor)(src.buffer);
  const srcBase = src.byteOffset / src.BYTES_PER_ELEMENT;
  const dstBase = dst.byteOffset / dst.BYTES_PER_ELEMENT;
  const index = new Array<number>(rank - 1).fill(0);
  for (let out = 0; out < dst.length; out += run) {
    let from = srcBase + c.begin[rank - 1];
    for (let i = 0; i < rank - 1; i++) from += (c.begin[i] + index[i]) * strides[i];
    const to = dstBase + out;
    if (run >= MIN_NATIVE_RUN) heap.copyWithin(to, from, from + run);
    else for (let k = 0; k < run; k++) heap[to + k] = heap[from + k];
    for (let i = rank - 2; i >= 0; i--) {
      if (++index[i] < c.size[i]) break;
      index[i] = 0;
    }
  }
}

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
      copyRuns(backend.typedArrayFromHeap(x), backend.typedArrayFromHeap(out), collapseSlice(x.shape, begin, size));
      return out;
    };
  });
}
