/**
 * Classification heads put on top of a backbone's features. A head is its own LayersModel so the trainer
 * can run it in training mode while a frozen backbone runs in inference mode.
 *
 * Every head layer name starts with `head_`, which keeps head weight names (`head_logits/kernel`) apart
 * from backbone weight names when both are saved or addressed together.
 */
import * as tf from '@tensorflow/tfjs';
import type { HeadKind } from '../job';
import { Rng } from '../random';
import { ModelBuildError } from './errors';

/** What a head needs besides its kind and the feature shape. */
export interface HeadOptions {
  numClasses: number;
  /** Hidden units of the 'seed' head. */
  headUnits: number;
  /** Dropout rate of the 'seed' head, in [0, 1). */
  dropout: number;
}

/** Prefix of every head layer name (and hence of every head weight's original name). */
export const HEAD_LAYER_PREFIX = 'head_';

/**
 * Builds a head model named 'head' taking features of `featureShape` (without the batch axis: [H, W, C]
 * or [C]; H and W may be null) and returning logits [N, numClasses] (no softmax).
 * - 'linear': GlobalAveragePooling2D (4-D features only), Dense(numClasses).
 * - 'seed': GlobalAveragePooling2D (4-D only), BatchNorm, Dense(headUnits), ReLU, Dropout(dropout),
 *   BatchNorm, Dense(numClasses).
 * Kernels are Glorot-uniform seeded from `rng`, biases zero. Dropout is left unseeded here (a seeded tfjs
 * Dropout layer draws the same mask on every call); see `reseedDropout`.
 */
export function buildHead(kind: HeadKind, featureShape: ReadonlyArray<number | null>, options: HeadOptions, rng: Rng): tf.LayersModel {
  if (featureShape.length !== 3 && featureShape.length !== 1) {
    throw new ModelBuildError(`head: expected features of rank 4 [N,H,W,C] or 2 [N,C], got [N,${featureShape.join(',')}]`);
  }
  const channels = featureShape[featureShape.length - 1];
  if (channels === null) throw new ModelBuildError('head: expected a known feature channel count, got null');
  const glorot = (): ReturnType<typeof tf.initializers.glorotUniform> => tf.initializers.glorotUniform({ seed: rng.uint32() });
  const name = (s: string): string => `${HEAD_LAYER_PREFIX}${s}`;

  const input = tf.input({ shape: [...featureShape] as number[], name: name('input') });
  let x: tf.SymbolicTensor = input;
  if (featureShape.length === 3) {
    x = tf.layers.globalAveragePooling2d({ name: name('gap') }).apply(x) as tf.SymbolicTensor;
  }
  if (kind === 'seed') {
    if (!Number.isInteger(options.headUnits) || options.headUnits < 1) {
      throw new ModelBuildError(`head: expected headUnits to be a positive integer, got ${options.headUnits}`);
    }
    if (!(options.dropout >= 0 && options.dropout < 1)) {
      throw new ModelBuildError(`head: expected dropout in [0, 1), got ${options.dropout}`);
    }
    x = tf.layers.batchNormalization({ name: name('bn1') }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.dense({ units: options.headUnits, kernelInitializer: glorot(), name: name('dense') })
      .apply(x) as tf.SymbolicTensor;
    x = tf.layers.reLU({ name: name('relu') }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.dropout({ rate: options.dropout, name: name('dropout') }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.batchNormalization({ name: name('bn2') }).apply(x) as tf.SymbolicTensor;
  } else if (kind !== 'linear') {
    throw new ModelBuildError(`head: unknown kind '${String(kind)}', expected 'linear' or 'seed'`);
  }
  if (!Number.isInteger(options.numClasses) || options.numClasses < 2) {
    throw new ModelBuildError(`head: expected numClasses to be an integer >= 2, got ${options.numClasses}`);
  }
  const logits = tf.layers.dense({ units: options.numClasses, kernelInitializer: glorot(), name: name('logits') })
    .apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: logits, name: 'head' });
}
