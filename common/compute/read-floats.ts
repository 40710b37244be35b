import * as tf from '@tensorflow/tfjs';
import { KernelShapeError } from './errors';
import { WasmHeap } from './wasm-heap';
import { WASM_BACKEND } from './wasm-kernel-registry';

/**
 * Copies a float32 tensor's values into `target` (as long as the tensor). On wasm the values are read
 * straight from the backend's memory, one copy and no allocation, where `dataSync` copies them out into a
 * fresh buffer first: 29 ms of CPU for a MobileNet's 2.2M gradients, paid for every micro-batch a compute
 * thread hands back. Other backends go through `dataSync`.
 */
export function readFloatsInto(tensor: tf.Tensor, target: Float32Array): void {
  if (target.length !== tensor.size) throw new KernelShapeError('readFloatsInto', 'target', [tensor.size], [target.length]);
  const backend = tf.engine().backendName === WASM_BACKEND && tensor.dtype === 'float32' ? tf.backend() : undefined;
  target.set(backend ? new WasmHeap(backend).floats(tensor) : (tensor.dataSync() as Float32Array));
}

/**
 * A float32 tensor's values without a copy where the backend allows it: on wasm a view on the backend's
 * memory, valid only until the next tfjs call (a kernel that grows the memory detaches it); elsewhere
 * `dataSync`'s copy. For reading at once, e.g. hashing a model without a model-sized copy.
 */
export function floatsView(tensor: tf.Tensor): Float32Array {
  if (tf.engine().backendName === WASM_BACKEND && tensor.dtype === 'float32') return new WasmHeap(tf.backend()).floats(tensor);
  return tensor.dataSync() as Float32Array;
}

/**
 * A float32 tensor of `values` that stays right after `values` is overwritten (a view on a buffer that is
 * reused): wasm copies the values into its memory anyway; the cpu backend keeps the array it is given, so
 * it gets a copy.
 */
export function tensorFromReusedFloats(values: Float32Array, shape: number[]): tf.Tensor {
  return tf.tensor(tf.engine().backendName === WASM_BACKEND ? values : values.slice(), shape, 'float32');
}
