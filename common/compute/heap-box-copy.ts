import type * as tf from '@tensorflow/tfjs';

/**
 * Copies between a box inside a larger tensor and a dense tensor, both in the wasm heap: the data
 * movement of Slice (box to dense) and of a constant Pad (dense into the box). Trailing axes the box
 * spans whole are merged into the axis before them (they are contiguous with it), so each remaining
 * run of the last axis is one native memmove.
 */

/** A box `begin`..`begin + size` inside a tensor of `shape`. */
export interface Box {
  shape: number[];
  begin: number[];
  size: number[];
}

/** The same box with trailing axes taken whole merged into the axis before them. */
export function collapseBox(shape: readonly number[], begin: readonly number[], size: readonly number[]): Box {
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

/** A typed view on the tensor's data in the heap. */
export type HeapArray = Float32Array | Int32Array | Uint8Array;

/** The part of the wasm backend the copying kernels use (tfjs does not export the class's type). */
export interface HeapBackend {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): HeapArray;
}

// Below this many elements a plain loop beats a copyWithin call.
const MIN_NATIVE_RUN = 8;

/**
 * Copies `box` of `boxed` to or from the dense `dense` (`direction`), one contiguous run of the last
 * axis per outer index tuple. Both live in the same wasm heap, so each run is one native memmove
 * (copyWithin: ~0.3 ns per float for 64-float runs, against ~0.6 for set(subarray(...)) and ~1.8 for a
 * JS loop).
 */
export function copyBox(boxed: HeapArray, dense: HeapArray, box: Box, direction: 'fromBox' | 'intoBox'): void {
  const rank = box.shape.length;
  const strides = new Array<number>(rank).fill(1);
  for (let i = rank - 2; i >= 0; i--) strides[i] = strides[i + 1] * box.shape[i + 1];
  const run = box.size[rank - 1];
  const heap = new (boxed.constructor as Uint8ArrayConstructor)(boxed.buffer);
  const boxedBase = boxed.byteOffset / boxed.BYTES_PER_ELEMENT;
  const denseBase = dense.byteOffset / dense.BYTES_PER_ELEMENT;
  const index = new Array<number>(rank - 1).fill(0);
  for (let at = 0; at < dense.length; at += run) {
    let inBox = boxedBase + box.begin[rank - 1];
    for (let i = 0; i < rank - 1; i++) inBox += (box.begin[i] + index[i]) * strides[i];
    const [from, to] = direction === 'fromBox' ? [inBox, denseBase + at] : [denseBase + at, inBox];
    if (run >= MIN_NATIVE_RUN) heap.copyWithin(to, from, from + run);
    else for (let k = 0; k < run; k++) heap[to + k] = heap[from + k];
    for (let i = rank - 2; i >= 0; i--) {
      if (++index[i] < box.size[i]) break;
      index[i] = 0;
    }
  }
}
