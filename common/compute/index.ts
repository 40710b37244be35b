// The compute engine: picks the tfjs backend and makes the wasm backend able to train fast.
export {
  initBackend,
  currentBackend,
  resolvePreference,
  BACKEND_ENV_VAR,
  type BackendName,
  type BackendPreference,
  type BackendOptions,
  type BackendInfo,
} from './backend';
export { registerWasmTrainingKernels, WASM_TRAINING_KERNELS, OVERRIDDEN_GRADIENTS } from './register-wasm-kernels';
export { ComputeError, BackendUnavailableError, UnsupportedKernelError, KernelShapeError } from './errors';
export {
  fusedAdamUpdate,
  fusedSgdUpdate,
  FUSED_ADAM_KERNEL,
  FUSED_SGD_KERNEL,
  type FusedAdamAttrs,
  type FusedSgdAttrs,
} from './fused-optimizer';
export type { AdamDecay } from './optimizer-wasm-module';
export { floatsView, readFloatsInto, tensorFromReusedFloats } from './read-floats';
export { decodeFp16Simd, encodeFp16Simd } from './fp16-wasm-kernel';
export { THREADS_ENV_VAR, cgroupCores, coresGiven, parseThreads, resolveThreads } from './compute-threads';
export { wasmGemm, gemmApplies, type GemmShape } from './wasm-gemm';
