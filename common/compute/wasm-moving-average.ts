import * as tf from '@tensorflow/tfjs';
import { ComputeError, KernelShapeError } from './errors';
import { WasmHeap } from './wasm-heap';
import { WASM_BACKEND } from './wasm-kernel-registry';

/**
 * A BatchNorm layer's two moving statistics updated by one kernel: `m - (m - batch)·(1 - momentum)` for the
 * mean and for the variance, the stock layer's formula. Composed, that is six ops per layer and call, and
 * they run on the gradient tape (tfjs-layers updates the statistics inside the forward pass), which clones
 * both inputs of every Sub and Mul for a backward pass that never comes: on a MobileNet micro-batch 150
 * kernel calls and 300 Identity clones, each a tfjs dispatch. This kernel has no gradient, so the tape
 * saves nothing for it. The statistics are a few hundred floats, so it computes in JavaScript on views of
 * the backend's memory, each step rounded to float32 as the composed ops round it: the same bits.
 */

/** tfjs kernel name (wasm only). */
export const MOVING_AVERAGE_KERNEL = 'ShardwiseMovingAverage';

/** Attributes of {@link MOVING_AVERAGE_KERNEL}. */
export interface MovingAverageAttrs {
  /** The layer's momentum: the share of the old value kept. */
  momentum: number;
}

const INPUTS = ['mean', 'variance', 'batchMean', 'batchVariance'] as const;

/** `[mean', variance']` from the moving statistics and the batch's. */
function movingAverageKernel(args: Parameters<tf.KernelFunc>[0]): tf.TensorInfo[] {
  const inputs = INPUTS.map((name) => {
    const t = args.inputs[name] as tf.TensorInfo | undefined;
    if (!t) throw new ComputeError(`${MOVING_AVERAGE_KERNEL}: input '${name}' is missing`);
    if (t.dtype !== 'float32') throw new ComputeError(`${MOVING_AVERAGE_KERNEL}: expected float32 ${name}, got ${t.dtype}`);
    return t;
  });
  const shape = inputs[0].shape;
  inputs.forEach((t, i) => {
    if (t.shape.join(',') !== shape.join(',')) throw new KernelShapeError(MOVING_AVERAGE_KERNEL, INPUTS[i], shape, t.shape);
  });
  // tf.mul(t, 1 - momentum) multiplies by the float32 rounding of the scalar.
  const decay = Math.fround(1 - (args.attrs as unknown as MovingAverageAttrs).momentum);
  const heap = new WasmHeap(args.backend);
  const outs = [heap.allocate([...shape]), heap.allocate([...shape])];
  // Views after the last allocation: allocating may grow the memory, which detaches older views.
  const [mean, variance, batchMean, batchVariance] = inputs.map((t) => heap.floats(t));
  const update = (moving: Float32Array, batch: Float32Array, out: Float32Array): void => {
    // Each product and difference rounded to float32 (Math.fround; the store rounds the last), as the ops do.
    for (let c = 0; c < moving.length; c++) out[c] = moving[c] - Math.fround(Math.fround(moving[c] - batch[c]) * decay);
  };
  update(mean, batchMean, heap.floats(outs[0]));
  update(variance, batchVariance, heap.floats(outs[1]));
  return outs;
}

let registered = false;

/** Registers the kernel for the wasm backend. Idempotent. */
export function registerWasmMovingAverage(): void {
  if (registered) return;
  tf.registerKernel({ kernelName: MOVING_AVERAGE_KERNEL, backendName: WASM_BACKEND, kernelFunc: movingAverageKernel as tf.KernelFunc });
  registered = true;
}

/** The stock layer's update of one statistic: `moving - (moving - batch)·(1 - momentum)`, composed. */
function composedMovingAverage(moving: tf.Tensor, batch: tf.Tensor, momentum: number): tf.Tensor {
  return tf.sub(moving, tf.mul(tf.sub(moving, batch), 1 - momentum));
}

/**
 * The updated moving mean and variance `[mean', variance']`: one kernel where the backend has it, else the
 * stock layer's composed ops (the same float32 operations, so the same values).
 */
export function movingAverages(
  moving: { mean: tf.Tensor; variance: tf.Tensor },
  batch: { mean: tf.Tensor; variance: tf.Tensor },
  momentum: number,
): [tf.Tensor, tf.Tensor] {
  if (!tf.getKernel(MOVING_AVERAGE_KERNEL, tf.getBackend())) {
    return [composedMovingAverage(moving.mean, batch.mean, momentum), composedMovingAverage(moving.variance, batch.variance, momentum)];
  }
  const inputs = { mean: moving.mean, variance: moving.variance, batchMean: batch.mean, batchVariance: batch.variance };
  const attrs: MovingAverageAttrs = { momentum };
  return tf.engine().runKernel(MOVING_AVERAGE_KERNEL, inputs, attrs as unknown as tf.NamedAttrMap) as [tf.Tensor, tf.Tensor];
}
