/**
 * A model as shardwise trains it: a backbone and a head (two LayersModels) plus how raw CIFAR pixels are
 * prepared for the backbone. Keeping them apart lets the trainer run a frozen backbone with BatchNorm in
 * inference mode while the head trains, and group variables by part.
 *
 * Variable naming. Every weight variable has two names:
 * - `originalName`: `<layer name>/<weight name>`, e.g. `conv1/kernel`, `conv1_bn/moving_mean`,
 *   `stage2_block1_conv1/kernel`, `head_logits/bias`. It is the same in every process and every run,
 *   unique within one ModelParts (checked when it is built: head layers all start with `head_`), and is
 *   the name weights are saved and loaded under. Address variables across processes by it.
 * - `name`: tfjs makes it unique per process by suffixing `_1`, `_2`, ... when the same original name was
 *   created before (a second model built in one process has `conv1/kernel_1`). It depends on what else
 *   the process built, so never use it to match variables between processes.
 */
import * as tf from '@tensorflow/tfjs';
import type { ModelSpec } from '../job';
import { Rng } from '../random';
import { ModelBuildError } from './errors';

/** Raw CIFAR side length every shardwise model takes. */
export const RAW_IMAGE_SIZE = 32;

/** How raw 0..255 pixels become backbone inputs: `x * scale + offset`, then bilinear upsampling. */
export interface PreprocessSpec {
  scale: number;
  offset: number;
  /** Integer upsampling factor (inputSize / 32); 1 means none. */
  upsample: number;
}

/** The three parts of a model; see the module comment for how its variables are named. */
export interface ModelParts {
  /** The validated spec the model was built from. */
  spec: ModelSpec;
  /** Preprocessed [N, inputSize, inputSize, 3] -> features [N, H, W, C] (or [N, C]). Named 'backbone'. */
  backbone: tf.LayersModel;
  /** Features -> logits [N, numClasses] (no softmax). Named 'head'. */
  head: tf.LayersModel;
  preprocess: PreprocessSpec;
  /** Side length the backbone sees: 32 * preprocess.upsample. */
  inputSize: number;
}

/** Variables of each part, for param groups and for addressing by `originalName`. */
export interface NamedVariables {
  backbone: tf.LayerVariable[];
  head: tf.LayerVariable[];
}

/**
 * Raw CIFAR pixels [N, 32, 32, 3] (0..255 floats) -> backbone input [N, inputSize, inputSize, 3]:
 * `x * scale + offset`, then the same bilinear resize tfjs's UpSampling2D does (so an exported model
 * predicts exactly what preprocess + backbone + head predict). Caller owns (and disposes) the result.
 */
export function preprocess(parts: ModelParts, rawBatch: tf.Tensor4D): tf.Tensor4D {
  const [, h, w, c] = rawBatch.shape;
  if (h !== RAW_IMAGE_SIZE || w !== RAW_IMAGE_SIZE || c !== 3) {
    throw new ModelBuildError(`preprocess: expected raw images [N,32,32,3], got [${rawBatch.shape.join(',')}]`);
  }
  const { scale, offset, upsample } = parts.preprocess;
  return tf.tidy(() => {
    const x = tf.add(tf.mul(tf.cast(rawBatch, 'float32'), scale), offset) as tf.Tensor4D;
    if (upsample === 1) return x;
    const side = RAW_IMAGE_SIZE * upsample;
    return tf.image.resizeBilinear(x, [side, side]);
  });
}

/**
 * All weight variables of each part (trainable and not: BatchNorm moving statistics included; filter on
 * `v.trainable` for gradients), in a fixed order: layer order, then each layer's creation order.
 */
export function namedVariables(parts: ModelParts): NamedVariables {
  return { backbone: modelVariables(parts.backbone), head: modelVariables(parts.head) };
}

/**
 * Throws `ModelBuildError` when two variables of the parts share an `originalName` (e.g. a loaded model
 * whose layers are already called `head_...`): saving, loading and addressing by name would break.
 */
export function assertUniqueVariableNames(parts: Pick<ModelParts, 'backbone' | 'head'>): void {
  const seen = new Map<string, string>();
  for (const [part, model] of [['backbone', parts.backbone], ['head', parts.head]] as const) {
    for (const v of modelVariables(model)) {
      const other = seen.get(v.originalName);
      if (other !== undefined) {
        throw new ModelBuildError(`weight name '${v.originalName}' occurs in both the ${other} and the ${part}; ` +
          'expected unique names (rename the layers of the loaded model or cut it earlier)');
      }
      seen.set(v.originalName, part);
    }
  }
}

/**
 * Gives every Dropout layer a fresh seed from `rng`. Call it before each training step for reproducible
 * dropout: a tfjs Dropout layer with a fixed seed draws the same mask on every call, and one without a
 * seed draws from Math.random.
 */
export function reseedDropout(parts: ModelParts, rng: Rng): void {
  for (const model of [parts.backbone, parts.head]) {
    for (const layer of allLayers(model)) {
      if (layer.getClassName() === 'Dropout' || layer.getClassName() === 'SpatialDropout1D') {
        // `seed` is a private field of tfjs's Dropout, read on every call().
        (layer as unknown as { seed?: number }).seed = rng.uint32();
      }
    }
  }
}

/**
 * Releases the weights of both parts, also when an exported model still references them (tfjs counts
 * every model a part is nested in; this disposes until the count reaches zero). The parts, and any model
 * exported from them, are unusable afterwards; do not dispose those exported models separately.
 */
export function disposeModelParts(parts: ModelParts): void {
  for (const model of [parts.head, parts.backbone]) {
    while (model.dispose().refCountAfterDispose > 0) {
      // each round drops one reference: the part itself, then each model it was nested into
    }
  }
}

function modelVariables(model: tf.LayersModel): tf.LayerVariable[] {
  const out = new Set<tf.LayerVariable>();
  for (const layer of model.layers) for (const v of layer.weights) out.add(v);
  return [...out];
}

/** Layers of a model, descending into nested models. */
function allLayers(model: tf.LayersModel): tf.layers.Layer[] {
  return model.layers.flatMap((l) => (l instanceof tf.LayersModel ? allLayers(l) : [l]));
}
