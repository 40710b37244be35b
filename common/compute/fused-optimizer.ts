import * as tf from '@tensorflow/tfjs';
import { ComputeError, KernelShapeError } from './errors';
import {
  type AdamDecay, adamFunctionName, optimizerModule, type SgdVariant, sgdFunctionName,
} from './optimizer-wasm-module';
import { WasmHeap } from './wasm-heap';
import { WASM_BACKEND } from './wasm-kernel-registry';

/**
 * Optimizer updates as one kernel per variable on the wasm backend: the kernel runs our SIMD function
 * (optimizer-wasm-module.ts) directly on the tensors in the backend's own memory, so nothing is copied,
 * and it allocates the outputs itself. On other backends the optimizers compose tfjs ops instead (the
 * same float32 operations); {@link fusedAdamUpdate} and {@link fusedSgdUpdate} say which by returning
 * undefined.
 */

/** tfjs kernel names of the fused updates. */
export const FUSED_ADAM_KERNEL = 'ShardwiseFusedAdam';
export const FUSED_SGD_KERNEL = 'ShardwiseFusedSgd';

/** What every fused update divides the gradient by first. */
export interface FusedGradientAttrs {
  /**
   * The gradient input is a sum over this many samples: the kernel divides it (float32, the bits of
   * `tf.div(sum, count)`) as it reads it, instead of a separate pass that writes the mean. 1 for a mean.
   */
  gradDivisor: number;
}

/** Scalars of one Adam update. `c1 = 1 - beta1^t`, `c2 = 1 - beta2^t`; `decay = 1 - lr·wd` (AdamW). */
export interface FusedAdamAttrs extends FusedGradientAttrs {
  decayMode: AdamDecay;
  beta1: number;
  beta2: number;
  epsilon: number;
  lr: number;
  weightDecay: number;
  t: number;
}

/** Scalars of one SGD update. */
export interface FusedSgdAttrs extends SgdVariant, FusedGradientAttrs {
  momentumFactor: number;
  lr: number;
  weightDecay: number;
}

/** Every input float32 and shaped like the first (the variable). */
function expectFloat32Like(kernel: string, names: string[], inputs: (tf.TensorInfo | undefined)[]): void {
  inputs.forEach((t, i) => {
    if (!t) throw new ComputeError(`${kernel}: input '${names[i]}' is missing`);
    if (t.dtype !== 'float32') throw new ComputeError(`${kernel}: expected float32 ${names[i]}, got ${t.dtype}`);
    const shape = (inputs[0] as tf.TensorInfo).shape;
    if (t.shape.join(',') !== shape.join(',')) throw new KernelShapeError(kernel, names[i], shape, t.shape);
  });
}

/**
 * Runs export `fn` with the byte offsets of `inputs`, then of freshly allocated outputs (one per
 * `outputs` entry, shaped like the first input), the element count, and `scalars`.
 */
function runFused(args: Parameters<tf.KernelFunc>[0], kernel: string, fn: string, inputNames: string[], outputs: number, scalars: number[]): tf.TensorInfo[] {
  const heap = new WasmHeap(args.backend);
  const inputs = inputNames.map((n) => args.inputs[n] as tf.TensorInfo);
  expectFloat32Like(kernel, inputNames, inputs);
  const shape = [...inputs[0].shape];
  const outs = Array.from({ length: outputs }, () => heap.allocate(shape));
  const exported = heap.module('optimizers', optimizerModule)[fn];
  if (typeof exported !== 'function') throw new ComputeError(`${kernel}: our wasm module has no function ${fn}`);
  exported(...[...inputs, ...outs].map((t) => heap.offset(t)), tf.util.sizeFromShape(shape), ...scalars);
  return outs;
}

/** float32 scalars exactly as tf ops would see them (`tf.mul(x, 1 - beta1)` rounds `1 - beta1` to float32). */
const f32 = Math.fround;

function adamKernel(args: Parameters<tf.KernelFunc>[0]): tf.TensorInfo[] {
  const a = args.attrs as unknown as FusedAdamAttrs;
  const scalars = [
    a.beta1, 1 - a.beta1, a.beta2, 1 - a.beta2, 1 - Math.pow(a.beta1, a.t), 1 - Math.pow(a.beta2, a.t),
    a.epsilon, a.lr, a.weightDecay, 1 - a.lr * a.weightDecay, a.gradDivisor,
  ].map(f32);
  return runFused(args, FUSED_ADAM_KERNEL, adamFunctionName(a.decayMode), ['value', 'grad', 'm', 'v'], 3, scalars);
}

function sgdKernel(args: Parameters<tf.KernelFunc>[0]): tf.TensorInfo[] {
  const a = args.attrs as unknown as FusedSgdAttrs;
  const inputs = a.momentum ? ['value', 'grad', 'buf'] : ['value', 'grad'];
  const scalars = [a.momentumFactor, a.lr, a.weightDecay, a.gradDivisor].map(f32);
  return runFused(args, FUSED_SGD_KERNEL, sgdFunctionName(a), inputs, inputs.length - 1, scalars);
}

let registered = false;

/** Registers the fused optimizer kernels for the wasm backend. Idempotent. */
export function registerFusedOptimizerKernels(): void {
  if (registered) return;
  tf.registerKernel({ kernelName: FUSED_ADAM_KERNEL, backendName: WASM_BACKEND, kernelFunc: adamKernel as tf.KernelFunc });
  tf.registerKernel({ kernelName: FUSED_SGD_KERNEL, backendName: WASM_BACKEND, kernelFunc: sgdKernel as tf.KernelFunc });
  registered = true;
}

const hasKernel = (name: string): boolean => tf.getKernel(name, tf.getBackend()) !== undefined;

/**
 * One Adam update of a variable as a single kernel: `[value', m', v']`, or undefined when the current
 * backend has no fused kernel (the caller then composes tfjs ops).
 */
export function fusedAdamUpdate(value: tf.Tensor, grad: tf.Tensor, m: tf.Tensor, v: tf.Tensor, attrs: FusedAdamAttrs): tf.Tensor[] | undefined {
  if (!hasKernel(FUSED_ADAM_KERNEL)) return undefined;
  return tf.engine().runKernel(FUSED_ADAM_KERNEL, { value, grad, m, v }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
}

/**
 * One SGD update as a single kernel: `[value']`, or `[value', buf']` with momentum; undefined when the
 * current backend has no fused kernel.
 */
export function fusedSgdUpdate(value: tf.Tensor, grad: tf.Tensor, buf: tf.Tensor | undefined, attrs: FusedSgdAttrs): tf.Tensor[] | undefined {
  if (!hasKernel(FUSED_SGD_KERNEL)) return undefined;
  const inputs: tf.NamedTensorMap = buf ? { value, grad, buf } : { value, grad };
  return tf.engine().runKernel(FUSED_SGD_KERNEL, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
}
