import * as tf from '@tensorflow/tfjs';
import { BATCH_NORM_PASSES, batchNormModule } from './batch-norm-wasm-module';
import { ComputeError, KernelShapeError } from './errors';
import { type WasmExports, WasmHeap } from './wasm-heap';
import { WASM_BACKEND } from './wasm-kernel-registry';

/**
 * BatchNorm in training mode (statistics of the batch) as one kernel forward and one backward on the wasm
 * backend. tfjs-layers composes it from moments, a broadcasting batchNorm and, backward, the gradients of
 * all of them through the mean and the variance: about 20 ops and as many passes over the activation per
 * layer, a third of a MobileNet step's kernel time. Here the forward pass reads x three times and writes y
 * once; the backward pass reads x and dy twice and writes dx once (batch-norm-wasm-module.ts).
 *
 * The forward kernel returns `[y, mean, variance]` (the biased batch variance, as tf.moments gives it, for
 * the moving statistics); its gradient is that of y: the mean and the variance are statistics the layer
 * stores, never differentiated, so their incoming gradients are ignored.
 */

/** tfjs kernel names (wasm only). */
export const BATCH_NORM_TRAINING_KERNEL = 'ShardwiseBatchNormTraining';
export const BATCH_NORM_TRAINING_GRAD_KERNEL = 'ShardwiseBatchNormTrainingGrad';

/** Attributes of both kernels. */
export interface BatchNormTrainingAttrs {
  varianceEpsilon: number;
}

type KernelArgs = Parameters<tf.KernelFunc>[0];
type Pass = keyof typeof BATCH_NORM_PASSES;

/** Checks the per-channel inputs against x's last axis; returns [rows, channels]. */
function layoutOf(kernel: string, x: tf.TensorInfo, perChannel: Record<string, tf.TensorInfo | undefined>): [number, number] {
  if (x.dtype !== 'float32') throw new ComputeError(`${kernel}: expected float32 x, got ${x.dtype}`);
  if (x.shape.length < 2) throw new ComputeError(`${kernel}: expected x of rank >= 2 (channels last), got shape [${x.shape}]`);
  const channels = x.shape[x.shape.length - 1];
  for (const [name, t] of Object.entries(perChannel)) {
    if (!t) throw new ComputeError(`${kernel}: input '${name}' is missing`);
    if (t.shape.length !== 1 || t.shape[0] !== channels) throw new KernelShapeError(kernel, name, [channels], t.shape);
  }
  return [tf.util.sizeFromShape(x.shape) / channels, channels];
}

/** Runs `pass` of our module on the given tensors (row arrays, then channel arrays), then rows and channels. */
function run(heap: WasmHeap, pass: Pass, tensors: tf.TensorInfo[], rows: number, channels: number): void {
  const exports: WasmExports = heap.module('batch-norm', batchNormModule);
  exports[BATCH_NORM_PASSES[pass].name](...tensors.map((t) => heap.offset(t)), rows, channels);
}

/** Forward: `[y, mean, variance]` with y = (x - mean)·scale/√(variance + ε) + offset. */
function batchNormTrainingKernel(args: KernelArgs): tf.TensorInfo[] {
  const { x, scale, offset } = args.inputs as Record<string, tf.TensorInfo>;
  const [rows, channels] = layoutOf(BATCH_NORM_TRAINING_KERNEL, x, { scale, offset });
  const { varianceEpsilon } = args.attrs as unknown as BatchNormTrainingAttrs;
  const heap = new WasmHeap(args.backend);
  const [y, mean, variance, factor] = [x.shape, [channels], [channels], [channels]].map((s) => heap.allocate([...s]));
  heap.floats(mean).fill(0);
  run(heap, 'sumRows', [x, mean], rows, channels);
  const m = heap.floats(mean);
  for (let c = 0; c < channels; c++) m[c] /= rows;
  heap.floats(variance).fill(0);
  run(heap, 'sumSquaredDeviation', [x, mean, variance], rows, channels);
  const [v, f, g] = [heap.floats(variance), heap.floats(factor), heap.floats(scale)];
  for (let c = 0; c < channels; c++) {
    v[c] /= rows;
    f[c] = g[c] / Math.sqrt(v[c] + varianceEpsilon);
  }
  run(heap, 'scaleShift', [x, y, mean, factor, offset], rows, channels);
  heap.release(factor);
  return [y, mean, variance];
}

/** Backward: `[dx, dScale, dOffset]` of y, through the batch statistics. */
function batchNormTrainingGradKernel(args: KernelArgs): tf.TensorInfo[] {
  const { dy, x, mean, variance, scale } = args.inputs as Record<string, tf.TensorInfo>;
  const [rows, channels] = layoutOf(BATCH_NORM_TRAINING_GRAD_KERNEL, x, { mean, variance, scale });
  if (dy.shape.join(',') !== x.shape.join(',')) throw new KernelShapeError(BATCH_NORM_TRAINING_GRAD_KERNEL, 'dy', x.shape, dy.shape);
  const { varianceEpsilon } = args.attrs as unknown as BatchNormTrainingAttrs;
  const heap = new WasmHeap(args.backend);
  const [dx, dScale, dOffset, k, a, s] = [x.shape, [channels], [channels], [channels], [channels], [channels]].map((sh) => heap.allocate([...sh]));
  heap.floats(dScale).fill(0);
  heap.floats(dOffset).fill(0);
  // Σdy goes to dOffset (it is that gradient), Σdy·(x - mean) to dScale (scaled to its gradient below).
  run(heap, 'gradientSums', [x, dy, mean, dOffset, dScale], rows, channels);
  const [sumDy, sumDyCentered, v, g] = [heap.floats(dOffset), heap.floats(dScale), heap.floats(variance), heap.floats(scale)];
  const [kv, av, sv] = [heap.floats(k), heap.floats(a), heap.floats(s)];
  for (let c = 0; c < channels; c++) {
    const rstd = 1 / Math.sqrt(v[c] + varianceEpsilon);
    kv[c] = g[c] * rstd;
    av[c] = sumDy[c] / rows;
    sv[c] = (sumDyCentered[c] * rstd * rstd) / rows;
    sumDyCentered[c] *= rstd;
  }
  run(heap, 'inputGradient', [x, dy, dx, mean, k, a, s], rows, channels);
  [k, a, s].forEach((t) => heap.release(t));
  return [dx, dScale, dOffset];
}

/** The gradient of the forward kernel's y, by the backward kernel; mean and variance get none. */
const batchNormTrainingGradConfig: tf.GradConfig = {
  kernelName: BATCH_NORM_TRAINING_KERNEL,
  inputsToSave: ['x', 'scale'],
  outputsToSave: [false, true, true],
  gradFunc: (dys, saved, attrs) => {
    const [x, scale, mean, variance] = saved;
    const dy = Array.isArray(dys) ? dys[0] : dys;
    const [dx, dScale, dOffset] = tf.engine().runKernel(BATCH_NORM_TRAINING_GRAD_KERNEL, { dy, x, mean, variance, scale }, attrs) as tf.Tensor[];
    return { x: () => dx, scale: () => dScale, offset: () => dOffset };
  },
};

let registered = false;

/** Registers both kernels for the wasm backend, and the forward kernel's gradient. Idempotent. */
export function registerWasmBatchNormTraining(): void {
  if (registered) return;
  tf.registerKernel({ kernelName: BATCH_NORM_TRAINING_KERNEL, backendName: WASM_BACKEND, kernelFunc: batchNormTrainingKernel as tf.KernelFunc });
  tf.registerKernel({ kernelName: BATCH_NORM_TRAINING_GRAD_KERNEL, backendName: WASM_BACKEND, kernelFunc: batchNormTrainingGradKernel as tf.KernelFunc });
  tf.registerGradient(batchNormTrainingGradConfig);
  registered = true;
}

/**
 * Training-mode BatchNorm over the last axis of `x` as one kernel: `[y, mean, variance]`, or undefined
 * when the current backend has none (the caller then composes tfjs ops).
 */
export function batchNormTraining(x: tf.Tensor, scale: tf.Tensor, offset: tf.Tensor, varianceEpsilon: number): tf.Tensor[] | undefined {
  if (!tf.getKernel(BATCH_NORM_TRAINING_KERNEL, tf.getBackend())) return undefined;
  const attrs: BatchNormTrainingAttrs = { varianceEpsilon };
  return tf.engine().runKernel(BATCH_NORM_TRAINING_KERNEL, { x, scale, offset }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
}
