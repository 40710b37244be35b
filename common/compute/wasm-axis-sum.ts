import * as tf from '@tensorflow/tfjs';
import { assembleModule, type Code, f32, f32x4, i32, local, ValueType, whileBelow } from './wasm-assembler';
import { WasmHeap } from './wasm-heap';

/**
 * Sum over the middle axis of an [outer, reduced, inner] float32 array: `out[o, i] = Σ_r x[o, r, i]`,
 * added in order r = 0, 1, … into the output row, which stays in L1 while the input streams past once.
 * It replaces the route through average pooling for Sum: XNNPACK builds a pooling operator per call,
 * 3 ms for the [9, 16, 512] sums of a depthwise filter gradient, and pooling computes a mean that has to
 * be multiplied back (one more rounding). This is exact float32 addition in a fixed order.
 */

// Parameters, then locals, by index.
const [X, OUT, OUTER, REDUCED, INNER] = [0, 1, 2, 3, 4];
const [O, R, P, SRC, ROW_END, ROW_VECTOR_END, ZERO] = [5, 6, 7, 8, 9, 10, 11];

/** `for (p = out row start; p < ROW_END; …) body(vector or scalar step)`: SIMD steps, then the tail. */
function overRow(vector: Code, scalar: Code): Code {
  return [
    ...local.set(P, local.get(OUT)),
    ...whileBelow(P, local.get(ROW_VECTOR_END), 16, vector),
    ...whileBelow(P, local.get(ROW_END), 4, scalar),
  ];
}

/** The module exporting `sum_middle(x, out, outer, reduced, inner)` (byte offsets, then counts). */
export function axisSumModule(): Uint8Array {
  const advanceSource = (bytes: number) => local.set(SRC, i32.add(local.get(SRC), i32.const(bytes)));
  const row: Code = [
    ...local.set(ROW_END, i32.add(local.get(OUT), i32.shl(local.get(INNER), i32.const(2)))),
    ...local.set(ROW_VECTOR_END, i32.add(local.get(OUT), i32.shl(i32.and(local.get(INNER), i32.const(-4)), i32.const(2)))),
    ...overRow(f32x4.store(local.get(P), local.get(ZERO)), f32.store(local.get(P), f32.const(0))),
    ...local.set(R, i32.const(0)),
    ...whileBelow(R, local.get(REDUCED), 1, overRow(
      [...f32x4.store(local.get(P), f32x4.add(f32x4.load(local.get(P)), f32x4.load(local.get(SRC)))), ...advanceSource(16)],
      [...f32.store(local.get(P), f32.add(f32.load(local.get(P)), f32.load(local.get(SRC)))), ...advanceSource(4)],
    )),
    ...local.set(OUT, local.get(ROW_END)),
  ];
  return assembleModule([{
    name: 'sum_middle',
    params: [ValueType.i32, ValueType.i32, ValueType.i32, ValueType.i32, ValueType.i32],
    locals: [ValueType.i32, ValueType.i32, ValueType.i32, ValueType.i32, ValueType.i32, ValueType.i32, ValueType.v128],
    body: [
      ...local.set(ZERO, f32x4.splat(f32.const(0))),
      ...local.set(SRC, local.get(X)),
      ...local.set(O, i32.const(0)),
      ...whileBelow(O, local.get(OUTER), 1, row),
    ],
  }]);
}

/**
 * Sums float32 `x`, viewed as [outer, reduced, inner], over its middle axis into a new tensor of
 * `outShape` (outer·inner elements), inside a wasm kernel (`backend` is the kernel's backend).
 */
export function sumMiddleAxis(backend: unknown, x: tf.TensorInfo, plan: { outer: number; reduced: number; inner: number }, outShape: number[]): tf.TensorInfo {
  const heap = new WasmHeap(backend);
  const out = heap.allocate(outShape);
  heap.module('axis-sum', axisSumModule).sum_middle(heap.offset(x), heap.offset(out), plan.outer, plan.reduced, plan.inner);
  return out;
}
