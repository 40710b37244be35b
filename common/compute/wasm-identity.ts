import * as tf from '@tensorflow/tfjs';
import { KernelArgs, registerWasmKernel, requireStock } from './wasm-kernel-registry';

/** The part of the wasm backend these kernels use. */
interface RefCountingBackend {
  incRef(dataId: tf.DataId): void;
}

/** Returns `x` itself as the kernel output, sharing its data under one more reference. */
function share(args: KernelArgs): tf.TensorInfo {
  const x = args.inputs.x as tf.TensorInfo;
  (args.backend as RefCountingBackend).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

/**
 * The stock wasm Identity, and Cast to the dtype a tensor already has, copy their input. tfjs
 * runs Identity on every tensor it saves for the backward pass (~790 per MobileNet training
 * step, ~25 ms of copies at 64x64), and tfjs ops cast float32 activations to float32 (moments,
 * the Relu gradient, every avgPool). Tensors are immutable (variables swap their data, kernels
 * write only fresh outputs), so both can share the data with one more reference, as the cpu
 * backend's Identity and the wasm Reshape already do.
 */
export function registerWasmIdentity(): void {
  registerWasmKernel(tf.Identity, (stockFunc) => {
    const stock = requireStock(tf.Identity, stockFunc);
    return (args: KernelArgs) => ((args.inputs.x as tf.TensorInfo).dtype === 'string' ? stock(args) : share(args));
  });
  registerWasmKernel(tf.Cast, (stockFunc) => {
    const stock = requireStock(tf.Cast, stockFunc);
    return (args: KernelArgs) => {
      const x = args.inputs.x as tf.TensorInfo;
      const { dtype } = args.attrs as unknown as tf.CastAttrs;
      return x.dtype === dtype && dtype !== 'string' ? share(args) : stock(args);
    };
  });
}
