/**
 * ResNet-18 adapted to 32x32 inputs, as is usual for CIFAR (He et al. 2016; the kuangliu/pytorch-cifar
 * variant): a 3x3 stride-1 stem without max-pooling keeps the small image's resolution, then four stages of
 * two BasicBlocks with 64/128/256/512 channels, the last three halving the resolution.
 * 32x32 input -> 4x4x512 features, 11.2 M parameters.
 */
import * as tf from '@tensorflow/tfjs';
import { type ArchitectureOptions, type SeedSource, backboneInput, backboneModel, batchNorm, conv, convBnRelu, relu } from './blocks';

const STAGE_CHANNELS = [64, 128, 256, 512] as const;
const BLOCKS_PER_STAGE = 2;

/**
 * Builds the ResNet-18 backbone. Layers are named `stem_conv`, `stem_bn`, `stem_relu`, then
 * `stage<s>_block<b>_{conv1,bn1,relu1,conv2,bn2,add,out}` and, where shape changes,
 * `stage<s>_block<b>_{shortcut_conv,shortcut_bn}` (s 1..4, b 1..2).
 */
export function buildResNet18({ inputSize, rng }: ArchitectureOptions): tf.LayersModel {
  const input = backboneInput(inputSize);
  let x = convBnRelu(input, { filters: 64, kernelSize: 3 }, 'stem', rng);
  let channels = 64;
  STAGE_CHANNELS.forEach((filters, s) => {
    for (let b = 0; b < BLOCKS_PER_STAGE; b++) {
      const strides = s > 0 && b === 0 ? 2 : 1;
      x = basicBlock(x, channels, filters, strides, `stage${s + 1}_block${b + 1}`, rng);
      channels = filters;
    }
  });
  return backboneModel(input, x);
}

/** Two 3x3 convolutions plus an identity (or 1x1 projection) shortcut, ReLU after the sum. */
function basicBlock(
  x: tf.SymbolicTensor, inChannels: number, filters: number, strides: number, prefix: string, rng: SeedSource,
): tf.SymbolicTensor {
  let y = conv(x, { filters, kernelSize: 3, strides }, `${prefix}_conv1`, rng);
  y = relu(batchNorm(y, `${prefix}_bn1`), `${prefix}_relu1`);
  y = batchNorm(conv(y, { filters, kernelSize: 3 }, `${prefix}_conv2`, rng), `${prefix}_bn2`);
  let shortcut = x;
  if (strides !== 1 || inChannels !== filters) {
    shortcut = conv(x, { filters, kernelSize: 1, strides }, `${prefix}_shortcut_conv`, rng);
    shortcut = batchNorm(shortcut, `${prefix}_shortcut_bn`);
  }
  const sum = tf.layers.add({ name: `${prefix}_add` }).apply([y, shortcut]) as tf.SymbolicTensor;
  return relu(sum, `${prefix}_out`);
}
