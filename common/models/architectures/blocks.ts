/**
 * Building blocks shared by the built-in architectures. Every layer gets an explicit, stable name so
 * weight names (`stage2_block1_conv1/kernel`) are the same in every process and every run.
 */
import * as tf from '@tensorflow/tfjs';

/** Where initialiser seeds come from: an `Rng` (common/random.ts) in practice. */
export interface SeedSource {
  /** A 32-bit unsigned integer. */
  uint32(): number;
}

/** Options every built-in architecture takes. */
export interface ArchitectureOptions {
  /** Side length of the square input the backbone sees (a multiple of 32). */
  inputSize: number;
  /** Seeds every kernel initialiser, in layer order. */
  rng: SeedSource;
}

/** A built-in backbone factory: input [N, inputSize, inputSize, 3] -> feature map [N, H, W, C]. */
export type ArchitectureFactory = (options: ArchitectureOptions) => tf.LayersModel;

/** The backbone input: fixed spatial size so shapes are checked when the model is assembled. */
export function backboneInput(inputSize: number): tf.SymbolicTensor {
  return tf.input({ shape: [inputSize, inputSize, 3], name: 'input' });
}

/** He-normal (fan-in) kernel initialiser, the usual choice before ReLU, seeded from `rng`. */
export function heNormal(rng: SeedSource): ReturnType<typeof tf.initializers.heNormal> {
  return tf.initializers.heNormal({ seed: rng.uint32() });
}

/** Convolution options for {@link conv}. */
export interface ConvOptions {
  filters: number;
  kernelSize: number;
  strides?: number;
  /** Bias is pointless right before BatchNorm. @default false */
  useBias?: boolean;
}

/** A 'same'-padded Conv2D with a seeded He-normal kernel. */
export function conv(x: tf.SymbolicTensor, o: ConvOptions, name: string, rng: SeedSource): tf.SymbolicTensor {
  return tf.layers.conv2d({
    filters: o.filters,
    kernelSize: o.kernelSize,
    strides: o.strides ?? 1,
    padding: 'same',
    useBias: o.useBias ?? false,
    kernelInitializer: heNormal(rng),
    name,
  }).apply(x) as tf.SymbolicTensor;
}

/** BatchNormalization with Keras defaults (momentum 0.99, epsilon 1e-3), like the pretrained MobileNet. */
export function batchNorm(x: tf.SymbolicTensor, name: string): tf.SymbolicTensor {
  return tf.layers.batchNormalization({ name }).apply(x) as tf.SymbolicTensor;
}

/** A named ReLU layer (a layer, not a fused activation, so cut points can name it). */
export function relu(x: tf.SymbolicTensor, name: string): tf.SymbolicTensor {
  return tf.layers.reLU({ name }).apply(x) as tf.SymbolicTensor;
}

/** Conv2D -> BatchNorm -> ReLU, named `<prefix>_conv`, `<prefix>_bn`, `<prefix>_relu`. */
export function convBnRelu(x: tf.SymbolicTensor, o: ConvOptions, prefix: string, rng: SeedSource): tf.SymbolicTensor {
  return relu(batchNorm(conv(x, o, `${prefix}_conv`, rng), `${prefix}_bn`), `${prefix}_relu`);
}

/** 2x2 max-pooling with stride 2: halves the feature map. */
export function maxPool(x: tf.SymbolicTensor, name: string): tf.SymbolicTensor {
  return tf.layers.maxPooling2d({ poolSize: 2, strides: 2, name }).apply(x) as tf.SymbolicTensor;
}

/** Wraps the graph as the backbone model; the name is what an exported model calls the nested layer. */
export function backboneModel(input: tf.SymbolicTensor, output: tf.SymbolicTensor): tf.LayersModel {
  return tf.model({ inputs: input, outputs: output, name: 'backbone' });
}
