import * as tf from '@tensorflow/tfjs';
import { assembleModule, type Code, f32, f32x4, i32, local, ValueType, type WasmFunction, whileBelow } from './wasm-assembler';
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

/**
 * `out[o, r, i] = src[o, i] · scale`: the gradient of a mean over the middle axis (scale 1/reduced),
 * written in one pass where a full-size Fill and a broadcasting Mul made three.
 */
function broadcastMiddle(): WasmFunction {
  // Parameters src (X), out, outer, reduced, inner, then the f32 scale; the output pointer advances.
  const SCALE = 5;
  const [o, r, p, rowEnd, rowVectorEnd, scale4, srcRow] = [6, 7, 8, 9, 10, 11, 12];
  const at = (base: number) => i32.add(local.get(base), local.get(p));
  const bytesUpTo = (count: Code) => i32.shl(count, i32.const(2));
  const row: Code = [
    ...local.set(r, i32.const(0)),
    ...whileBelow(r, local.get(REDUCED), 1, [
      ...local.set(p, i32.const(0)),
      ...whileBelow(p, local.get(rowVectorEnd), 16, f32x4.store(at(OUT), f32x4.mul(f32x4.load(at(srcRow)), local.get(scale4)))),
      ...whileBelow(p, local.get(rowEnd), 4, f32.store(at(OUT), f32.mul(f32.load(at(srcRow)), local.get(SCALE)))),
      ...local.set(OUT, i32.add(local.get(OUT), local.get(rowEnd))),
    ]),
    ...local.set(srcRow, i32.add(local.get(srcRow), local.get(rowEnd))),
  ];
  return {
    name: 'broadcast_middle',
    params: [ValueType.i32, ValueType.i32, ValueType.i32, ValueType.i32, ValueType.i32, ValueType.f32],
    locals: [ValueType.i32, ValueType.i32, ValueType.i32, ValueType.i32, ValueType.i32, ValueType.v128, ValueType.i32],
    body: [
      ...local.set(scale4, f32x4.splat(local.get(SCALE))),
      ...local.set(rowEnd, bytesUpTo(local.get(INNER))),
      ...local.set(rowVectorEnd, bytesUpTo(i32.and(local.get(INNER), i32.const(-4)))),
      ...local.set(srcRow, local.get(X)),
      ...local.set(o, i32.const(0)),
      ...whileBelow(o, local.get(OUTER), 1, row),
    ],
  };
}

/**
 * The module exporting `sum_middle(x, out, outer, reduced, inner)` and
 * `broadcast_middle(src, out, outer, reduced, inner, scale)` (byte offsets, counts, then the scale).
 */
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
  return assembleModule([broadcastMiddle(), {
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

/** tfjs kernel name of {@link broadcastMiddleAxis} (wasm only). */
export const BROADCAST_MIDDLE_KERNEL = 'ShardwiseBroadcastMiddle';

/** Attributes of the {@link BROADCAST_MIDDLE_KERNEL} kernel. */
export interface BroadcastMiddleAttrs {
  /** Shape of the output; its elements are outer·reduced·inner. */
  shape: number[];
  outer: number;
  reduced: number;
  inner: number;
  scale: number;
}

/** `out[o, r, i] = src[o, i] · scale` for float32 `src` of outer·inner elements, as a wasm kernel. */
function broadcastMiddleAxis(args: Parameters<tf.KernelFunc>[0]): tf.TensorInfo {
  const src = args.inputs.x as tf.TensorInfo;
  const a = args.attrs as unknown as BroadcastMiddleAttrs;
  const heap = new WasmHeap(args.backend);
  const out = heap.allocate([...a.shape]);
  heap.module('axis-sum', axisSumModule).broadcast_middle(heap.offset(src), heap.offset(out), a.outer, a.reduced, a.inner, Math.fround(a.scale));
  return out;
}

/** Registers {@link BROADCAST_MIDDLE_KERNEL} for the wasm backend. Idempotent. */
export function registerBroadcastMiddle(): void {
  if (tf.getKernel(BROADCAST_MIDDLE_KERNEL, 'wasm')) return;
  tf.registerKernel({ kernelName: BROADCAST_MIDDLE_KERNEL, backendName: 'wasm', kernelFunc: broadcastMiddleAxis as tf.KernelFunc });
}
