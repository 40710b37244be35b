import * as tf from '@tensorflow/tfjs';
import { ComputeError } from './errors';

/** Backend name under which the wasm backend registers its kernels. */
export const WASM_BACKEND = 'wasm';

/** What tfjs passes to a kernel function. */
export type KernelArgs = Parameters<tf.KernelFunc>[0];

/** Builds our kernel function; receives the stock wasm kernel (if any) so it can delegate to it. */
export type KernelFactory = (stock: tf.KernelFunc | undefined) => tf.KernelFunc;

// Marks kernel functions we registered, so registering twice never wraps our own wrapper.
const OURS = Symbol('shardwise.compute.kernel');

/**
 * Registers a kernel for the wasm backend, replacing the stock one if there is one. The stock
 * setup/dispose functions are kept on the new registration: they bind the wasm exports that the
 * stock kernel function (to which ours usually delegates) needs, and tfjs only runs setup
 * functions of the configs registered when the backend initialises. Idempotent.
 */
export function registerWasmKernel(kernelName: string, factory: KernelFactory): void {
  const current = tf.getKernel(kernelName, WASM_BACKEND);
  if (current && (current.kernelFunc as { [OURS]?: boolean })[OURS]) return;
  const kernelFunc = factory(current?.kernelFunc);
  (kernelFunc as { [OURS]?: boolean })[OURS] = true;
  // tfjs warns (not throws) on re-registration; unregistering first keeps the log quiet.
  if (current) tf.unregisterKernel(kernelName, WASM_BACKEND);
  tf.registerKernel({
    kernelName,
    backendName: WASM_BACKEND,
    kernelFunc,
    setupFunc: current?.setupFunc,
    disposeFunc: current?.disposeFunc,
  });
}

/** Whether the wasm backend's `kernelName` is one of ours (for tests that must know which kernel ran). */
export function isOurWasmKernel(kernelName: string): boolean {
  const current = tf.getKernel(kernelName, WASM_BACKEND);
  return current !== undefined && (current.kernelFunc as { [OURS]?: boolean })[OURS] === true;
}

/**
 * A kernel's input as a Tensor we can hand to tf ops. Engine calls pass Tensors already; our own
 * direct calls into stock kernels may pass bare TensorInfos, which get a tracked Tensor view
 * (sharing the data, so no copy) that the surrounding tidy disposes.
 */
export function asTensor(info: tf.TensorInfo | undefined, name: string): tf.Tensor {
  if (info === undefined) throw new ComputeError(`kernel input '${name}' is missing`);
  if (info instanceof tf.Tensor) return info;
  // makeTensorFromTensorInfo does not add a reference to the data; the view's dispose removes one.
  tf.backend().incRef(info.dataId);
  return tf.engine().makeTensorFromTensorInfo(info);
}

/** Stock kernel or a clear error: our overrides only exist where a stock kernel was there first. */
export function requireStock(kernelName: string, stock: tf.KernelFunc | undefined): tf.KernelFunc {
  if (!stock) throw new ComputeError(`expected a stock wasm ${kernelName} kernel to delegate to, found none`);
  return stock;
}

/**
 * Runs a kernel body that composes tf ops and returns its output. The body's intermediates are
 * freed on return; the output survives whether it is a Tensor made by tf ops (tidy keeps it) or
 * a bare TensorInfo from a stock kernel (not yet tracked, so tidy cannot free it).
 */
export function tidyKernel(body: () => tf.TensorInfo): tf.TensorInfo {
  return tf.tidy(body as () => tf.TensorContainer) as unknown as tf.TensorInfo;
}
