/**
 * A small CNN: two blocks of two 3x3 Conv-BN-ReLU layers (32 and 64 channels) with 2x2 max-pooling.
 * The cheapest built-in, for smoke tests and quick baselines.
 * 32x32 input -> 8x8x64 features, 65 k parameters.
 */
import * as tf from '@tensorflow/tfjs';
import { type ArchitectureOptions, backboneInput, backboneModel, convBnRelu, maxPool } from './blocks';

const BLOCK_CHANNELS = [32, 64] as const;

/** Builds the small CNN backbone. Layers are named `block<b>_conv<c>_{conv,bn,relu}` and `block<b>_pool`. */
export function buildSmallCnn({ inputSize, rng }: ArchitectureOptions): tf.LayersModel {
  const input = backboneInput(inputSize);
  let x = input;
  BLOCK_CHANNELS.forEach((filters, b) => {
    for (let c = 1; c <= 2; c++) x = convBnRelu(x, { filters, kernelSize: 3 }, `block${b + 1}_conv${c}`, rng);
    x = maxPool(x, `block${b + 1}_pool`);
  });
  return backboneModel(input, x);
}
