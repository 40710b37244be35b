/**
 * A self-contained model for consumers outside shardwise: raw CIFAR-10 pixels in, class probabilities out.
 *
 * Preprocessing is built from layers that tfjs 4.22 can run and round-trip through model.json:
 * `Rescaling` and bilinear `UpSampling2D` (the `Resizing` layer fails inside a model). The result
 * equals `preprocess` + backbone + head + softmax in inference mode.
 */
import * as tf from '@tensorflow/tfjs';
import { type ModelParts, RAW_IMAGE_SIZE } from './parts';

/** Name of the exported model's input layer. */
export const EXPORT_INPUT_NAME = 'raw_pixels';

/** Written into the exported model's userDefinedMetadata (and so into its model.json). */
export interface ExportMetadata {
  shardwise: {
    architecture: string;
    inputSize: number;
    numClasses: number;
    /** The input is raw 0..255 pixels; this is what the model does to them internally. */
    preprocess: ModelParts['preprocess'];
    /** The output is softmax probabilities, not logits. */
    output: 'probabilities';
  };
}

/**
 * Builds one model [N, 32, 32, 3] raw pixels (0..255) -> [N, numClasses] probabilities: Rescaling,
 * bilinear UpSampling2D (when upsample > 1), the backbone and head as nested models, then Softmax.
 * It shares weight variables with `parts` (a snapshot only once saved): do not dispose it separately;
 * `disposeModelParts` releases everything.
 */
export function exportModel(parts: ModelParts): tf.LayersModel {
  const { scale, offset, upsample } = parts.preprocess;
  const input = tf.input({ shape: [RAW_IMAGE_SIZE, RAW_IMAGE_SIZE, 3], name: EXPORT_INPUT_NAME });
  let x = tf.layers.rescaling({ scale, offset, name: 'preprocess_rescale' }).apply(input) as tf.SymbolicTensor;
  if (upsample > 1) {
    x = tf.layers.upSampling2d({ size: [upsample, upsample], interpolation: 'bilinear', name: 'preprocess_upsample' })
      .apply(x) as tf.SymbolicTensor;
  }
  const features = parts.backbone.apply(x) as tf.SymbolicTensor;
  const logits = parts.head.apply(features) as tf.SymbolicTensor;
  const probabilities = tf.layers.softmax({ name: 'probabilities' }).apply(logits) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: probabilities, name: 'shardwise_classifier' });
  const metadata: ExportMetadata = {
    shardwise: {
      architecture: parts.spec.architecture,
      inputSize: parts.inputSize,
      numClasses: parts.spec.numClasses,
      preprocess: { ...parts.preprocess },
      output: 'probabilities',
    },
  };
  model.setUserDefinedMetadata(metadata);
  return model;
}
