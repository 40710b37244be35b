import * as tf from '@tensorflow/tfjs';
import { assembleModule, type Code, f32, f32x4, i32, local, select, v128, ValueType, type WasmFunction, whileBelow } from './wasm-assembler';
import { ComputeError, KernelShapeError } from './errors';
import { WasmHeap } from './wasm-heap';
import { WASM_BACKEND } from './wasm-kernel-registry';

/**
 * tfjs-layers' 'relu6' activation, `minimum(6, relu(x))`, as one kernel forward and one backward on the
 * wasm backend. The stock composition runs Relu and a clip forward, and backward the gradients of both
 * (Step, Sub, Mul per operand): seven passes over the activation of every MobileNet layer where these take
 * two. The gradient is the composition's own: dy where 0 < x < 6, else 0 (at x = 6 exactly tfjs's Minimum
 * sends the gradient to the constant 6).
 */

/** tfjs kernel names (wasm only). */
export const RELU6_KERNEL = 'ShardwiseRelu6';
export const RELU6_GRAD_KERNEL = 'ShardwiseRelu6Grad';

const SIX = 6;

/**
 * `name(…pointers, count)` over float32 elements: SIMD steps of four, then the scalar tail. `body` gets the
 * element address of a pointer parameter and the lane width's instructions.
 */
function elementwise(name: string, pointers: number, body: (at: (pointer: number) => Code, vector: boolean) => Code): WasmFunction {
  const [byte, vectorEnd, end] = [pointers + 1, pointers + 2, pointers + 3];
  const at = (pointer: number) => i32.add(local.get(pointer), local.get(byte));
  return {
    name,
    params: [...Array.from({ length: pointers }, () => ValueType.i32), ValueType.i32],
    locals: [ValueType.i32, ValueType.i32, ValueType.i32],
    body: [
      ...local.set(end, i32.shl(local.get(pointers), i32.const(2))),
      ...local.set(vectorEnd, i32.shl(i32.and(local.get(pointers), i32.const(-4)), i32.const(2))),
      ...whileBelow(byte, local.get(vectorEnd), 16, body(at, true)),
      ...whileBelow(byte, local.get(end), 4, body(at, false)),
    ],
  };
}

/** `relu6(x, y, count)`: y = min(max(x, 0), 6). `relu6_grad(x, dy, dx, count)`: dx = dy where 0 < x < 6, else 0. */
function relu6Module(): Uint8Array {
  const [X, Y] = [0, 1];
  const [GX, DY, DX] = [0, 1, 2];
  const forward = elementwise('relu6', 2, (at, vector) => {
    const ops = vector ? f32x4 : f32;
    const constant = (v: number) => (vector ? f32x4.splat(f32.const(v)) : f32.const(v));
    return ops.store(at(Y), ops.min(ops.max(ops.load(at(X)), constant(0)), constant(SIX)));
  });
  const backward = elementwise('relu6_grad', 3, (at, vector) => {
    if (vector) {
      const x = f32x4.load(at(GX));
      const inside = v128.and(f32x4.gt(x, f32x4.splat(f32.const(0))), f32x4.lt(x, f32x4.splat(f32.const(SIX))));
      return f32x4.store(at(DX), v128.and(f32x4.load(at(DY)), inside));
    }
    const x = f32.load(at(GX));
    return f32.store(at(DX), select(f32.load(at(DY)), f32.const(0), i32.and(f32.gt(x, f32.const(0)), f32.lt(x, f32.const(SIX)))));
  });
  return assembleModule([forward, backward]);
}

type KernelArgs = Parameters<tf.KernelFunc>[0];

function float32Input(kernel: string, args: KernelArgs, name: string): tf.TensorInfo {
  const t = args.inputs[name] as tf.TensorInfo | undefined;
  if (!t) throw new ComputeError(`${kernel}: input '${name}' is missing`);
  if (t.dtype !== 'float32') throw new ComputeError(`${kernel}: expected float32 ${name}, got ${t.dtype}`);
  return t;
}

function relu6Kernel(args: KernelArgs): tf.TensorInfo {
  const x = float32Input(RELU6_KERNEL, args, 'x');
  const heap = new WasmHeap(args.backend);
  const y = heap.allocate([...x.shape]);
  heap.module('relu6', relu6Module).relu6(heap.offset(x), heap.offset(y), tf.util.sizeFromShape(x.shape));
  return y;
}

function relu6GradKernel(args: KernelArgs): tf.TensorInfo {
  const [x, dy] = ['x', 'dy'].map((n) => float32Input(RELU6_GRAD_KERNEL, args, n));
  if (dy.shape.join(',') !== x.shape.join(',')) throw new KernelShapeError(RELU6_GRAD_KERNEL, 'dy', x.shape, dy.shape);
  const heap = new WasmHeap(args.backend);
  const dx = heap.allocate([...x.shape]);
  heap.module('relu6', relu6Module).relu6_grad(heap.offset(x), heap.offset(dy), heap.offset(dx), tf.util.sizeFromShape(x.shape));
  return dx;
}

let registered = false;

/** Registers both kernels for the wasm backend and the forward kernel's gradient. Idempotent. */
export function registerWasmRelu6(): void {
  if (registered) return;
  tf.registerKernel({ kernelName: RELU6_KERNEL, backendName: WASM_BACKEND, kernelFunc: relu6Kernel as tf.KernelFunc });
  tf.registerKernel({ kernelName: RELU6_GRAD_KERNEL, backendName: WASM_BACKEND, kernelFunc: relu6GradKernel as tf.KernelFunc });
  tf.registerGradient({
    kernelName: RELU6_KERNEL,
    inputsToSave: ['x'],
    gradFunc: (dy, saved) => ({ x: () => tf.engine().runKernel(RELU6_GRAD_KERNEL, { x: saved[0], dy: dy as tf.Tensor }) as tf.Tensor }),
  });
  registered = true;
}

// Marks our wrapper, so patching twice never wraps it again.
const OURS = Symbol('shardwise.compute.relu6Activation');

/**
 * Routes tfjs-layers' 'relu6' activation through {@link RELU6_KERNEL} where the current backend has it
 * (every instance, present and future); other backends keep the stock composition. Idempotent.
 */
export function routeRelu6Activation(): void {
  const layer = tf.layers.activation({ activation: 'relu6' }) as unknown as { activation: object };
  const proto = Object.getPrototypeOf(layer.activation) as { apply: ((x: tf.Tensor) => tf.Tensor) & { [OURS]?: boolean } };
  if (proto.apply[OURS]) return;
  const stock = proto.apply;
  const apply = function (this: unknown, x: tf.Tensor): tf.Tensor {
    if (x.dtype !== 'float32' || !tf.getKernel(RELU6_KERNEL, tf.getBackend())) return stock.call(this, x);
    return tf.engine().runKernel(RELU6_KERNEL, { x }) as tf.Tensor;
  };
  (apply as { [OURS]?: boolean })[OURS] = true;
  proto.apply = apply;
}
