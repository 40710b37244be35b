/**
 * AlexNet (Krizhevsky et al. 2012) adapted to 32x32 inputs: the 11x11 stride-4 first convolution becomes
 * 3x3 stride 1 (a 32x32 image has nothing to stride over), pooling is 2x2, and the fully connected
 * classifier is left to the head. Channel widths follow the torchvision single-tower variant
 * (64, 192, 384, 256, 256); like the original there is no BatchNorm.
 * 32x32 input -> 4x4x256 features, 2.5 M parameters.
 */
import * as tf from '@tensorflow/tfjs';
import { type ArchitectureOptions, backboneInput, backboneModel, heNormal, maxPool } from './blocks';

/** [filters, kernel size, max-pool after] per convolution. */
const CONVS: ReadonlyArray<readonly [number, number, boolean]> = [
  [64, 3, true], [192, 5, true], [384, 3, false], [256, 3, false], [256, 3, true],
];

/**
 * Builds the AlexNet backbone. Layers are named `conv<i>` (with bias, ReLU activation) and `pool<i>`
 * after convolutions 1, 2 and 5.
 */
export function buildAlexNet({ inputSize, rng }: ArchitectureOptions): tf.LayersModel {
  const input = backboneInput(inputSize);
  let x = input;
  CONVS.forEach(([filters, kernelSize, pool], i) => {
    x = tf.layers.conv2d({
      filters, kernelSize, padding: 'same', activation: 'relu', kernelInitializer: heNormal(rng), name: `conv${i + 1}`,
    }).apply(x) as tf.SymbolicTensor;
    if (pool) x = maxPool(x, `pool${i + 1}`);
  });
  return backboneModel(input, x);
}
