import * as tf from '@tensorflow/tfjs';
// The stock wasm kernels must be registered before ours can wrap them.
import '@tensorflow/tfjs-backend-wasm';
import { routeBatchNormTraining } from './batch-norm-layer';
import { fusedBatchNormGradConfig } from './fused-batch-norm-grad';
import { registerFusedOptimizerKernels } from './fused-optimizer';
import { ELEMENTWISE_GRADIENT_OVERRIDES } from './gradient-overrides';
import { registerWasmBatchMatMul } from './wasm-batch-matmul';
import { BATCH_NORM_TRAINING_GRAD_KERNEL, BATCH_NORM_TRAINING_KERNEL, registerWasmBatchNormTraining } from './wasm-batch-norm-training';
import { registerWasmConv2DBackpropFilter } from './wasm-conv2d-backprop-filter';
import { registerWasmConv2DBackpropInput } from './wasm-conv2d-backprop-input';
import { registerWasmDepthwiseConv } from './wasm-depthwise-conv';
import { registerWasmFusedBatchNorm } from './wasm-fused-batch-norm';
import { registerWasmIdentity } from './wasm-identity';
import { registerWasmMinMax } from './wasm-min-max';
import { MOVING_AVERAGE_KERNEL, registerWasmMovingAverage } from './wasm-moving-average';
import { registerWasmPointwiseConv } from './wasm-pointwise-conv';
import { registerWasmReductions } from './wasm-reductions';
import { RELU6_GRAD_KERNEL, RELU6_KERNEL, registerWasmRelu6, routeRelu6Activation } from './wasm-relu6';
import { registerWasmPad } from './wasm-pad';
import { registerWasmSlice } from './wasm-slice';
import { registerWasmTranspose } from './wasm-transpose';

/** Kernels this module registers (the first nine) or replaces for the wasm backend. */
export const WASM_TRAINING_KERNELS = [
  BATCH_NORM_TRAINING_KERNEL,
  BATCH_NORM_TRAINING_GRAD_KERNEL,
  MOVING_AVERAGE_KERNEL,
  RELU6_KERNEL,
  RELU6_GRAD_KERNEL,
  tf.Conv2DBackpropFilter,
  tf.DepthwiseConv2dNativeBackpropFilter,
  tf.DepthwiseConv2dNativeBackpropInput,
  tf.Conv2DBackpropInput,
  tf.DepthwiseConv2dNative,
  tf.Conv2D,
  tf.FusedConv2D,
  tf.BatchMatMul,
  tf._FusedMatMul,
  tf.Transpose,
  tf.Slice,
  tf.PadV2,
  tf.Identity,
  tf.Cast,
  tf.Sum,
  tf.Mean,
  tf.FusedBatchNorm,
  tf.Minimum,
  tf.Maximum,
] as const;

const GRADIENT_OVERRIDES: readonly tf.GradConfig[] = [fusedBatchNormGradConfig, ...ELEMENTWISE_GRADIENT_OVERRIDES];

/** Kernels whose gradient this module replaces (for every backend: they are the same maths). */
export const OVERRIDDEN_GRADIENTS: readonly string[] = GRADIENT_OVERRIDES.map((g) => g.kernelName);

let registered = false;

/**
 * Makes the wasm backend able to train convolutional networks, and fast at it: registers the
 * convolution gradient kernels tfjs 4.22's wasm backend lacks, replaces stock kernels that a
 * MobileNet training step spent most of its time in, and replaces gradients that materialise
 * needless full-size tensors. Safe to call before or after the backend initialises, and more
 * than once.
 */
export function registerWasmTrainingKernels(): void {
  if (registered) return;
  registerWasmTranspose();
  registerWasmSlice();
  registerWasmPad();
  registerWasmIdentity();
  registerWasmBatchMatMul();
  registerWasmReductions();
  registerWasmFusedBatchNorm();
  registerWasmMinMax();
  registerWasmPointwiseConv();
  registerWasmConv2DBackpropInput();
  registerWasmConv2DBackpropFilter();
  registerWasmDepthwiseConv();
  registerFusedOptimizerKernels();
  registerWasmBatchNormTraining();
  registerWasmMovingAverage();
  routeBatchNormTraining();
  registerWasmRelu6();
  routeRelu6Activation();
  // registerGradient replaces silently and gradients are looked up per op call.
  for (const config of GRADIENT_OVERRIDES) tf.registerGradient(config);
  registered = true;
}
