/**
 * A small VGG (Simonyan & Zisserman 2015) for 32x32 inputs: three blocks of two 3x3 Conv-BN-ReLU layers
 * (64, 128, 256 channels), each followed by 2x2 max-pooling. BatchNorm makes it trainable from scratch
 * at the learning rates fine-tuning jobs use.
 * 32x32 input -> 4x4x256 features, 1.1 M parameters.
 */
import * as tf from '@tensorflow/tfjs';
import { type ArchitectureOptions, backboneInput, backboneModel, convBnRelu, maxPool } from './blocks';

const BLOCK_CHANNELS = [64, 128, 256] as const;

/**
 * Builds the small VGG backbone. Layers are named `block<b>_conv<c>_{conv,bn,relu}` and `block<b>_pool`
 * (b 1..3, c 1..2).
 */
export function buildVggSmall({ inputSize, rng }: ArchitectureOptions): tf.LayersModel {
  const input = backboneInput(inputSize);
  let x = input;
  BLOCK_CHANNELS.forEach((filters, b) => {
    for (let c = 1; c <= 2; c++) x = convBnRelu(x, { filters, kernelSize: 3 }, `block${b + 1}_conv${c}`, rng);
    x = maxPool(x, `block${b + 1}_pool`);
  });
  return backboneModel(input, x);
}
