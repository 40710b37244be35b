/**
 * Cutting a model after one of its layers: how a pretrained classifier becomes a feature extractor.
 */
import * as tf from '@tensorflow/tfjs';
import { LayerNotFoundError, ModelBuildError } from './errors';

/** Options of {@link cutAtLayer}. */
export interface CutOptions {
  /** Name of the new model (a layer name when it is nested in an exported model). @default 'backbone' */
  name?: string;
  /**
   * Dispose the weights of the layers after the cut. Only for a source model nothing else uses: its
   * remaining layers become unusable, and it frees e.g. the 1000-class classifier of an ImageNet model.
   * @default false
   */
  releaseUnused?: boolean;
}

/**
 * Returns a new model from `model`'s inputs to the output of the layer `layerName` (inclusive).
 * The new model shares layers and weight variables with `model` (no copy), so variable names and trained
 * values carry over; do not dispose `model` while the cut is in use.
 * Throws `LayerNotFoundError` (listing valid names) when there is no such layer.
 */
export function cutAtLayer(model: tf.LayersModel, layerName: string, options: CutOptions = {}): tf.LayersModel {
  const layer = model.layers.find((l) => l.name === layerName);
  if (layer === undefined) {
    throw new LayerNotFoundError(model.name, layerName, model.layers.map((l) => l.name));
  }
  if (layer.inboundNodes.length !== 1) {
    throw new ModelBuildError(`cannot cut model '${model.name}' at '${layerName}': expected a layer used once, ` +
      `it is used ${layer.inboundNodes.length} times`);
  }
  const cut = tf.model({ inputs: model.inputs, outputs: layer.output as tf.SymbolicTensor, name: options.name ?? 'backbone' });
  if (options.releaseUnused === true) {
    const kept = new Set(cut.layers);
    for (const l of model.layers) if (!kept.has(l)) for (const v of l.weights) v.dispose();
  }
  return cut;
}
