/**
 * The model zoo: turns a validated `ModelSpec` into `ModelParts` (backbone + head + preprocessing).
 *
 * Choices:
 * - Every architecture takes pixels scaled to [-1, 1] (`x / 127.5 - 1`): what the pretrained MobileNet
 *   expects, what most converted Keras models expect, and fine for the BatchNorm'd built-ins.
 * - Built-ins ('resnet18', 'alexnet', 'vgg_small', 'small_cnn') are always trained from scratch; they
 *   accept only `pretrained: false` (the job-spec layer defaults it so) and no `cutAt`.
 * - 'mobilenet_v1' and 'layers' with `pretrained: false` keep the topology and re-initialise every weight
 *   with seeded initialisers: the from-scratch baseline of the same architecture.
 */
import * as tf from '@tensorflow/tfjs';
import { ARCHITECTURES, type ModelSpec } from '../job';
import { ConfigError } from '../errors';
import { Rng } from '../random';
import { BUILTIN_ARCHITECTURES, BUILTIN_FACTORIES, type BuiltinArchitecture } from './architectures';
import { cutAtLayer } from './cut';
import { ModelBuildError, ModelLoadError } from './errors';
import { foldZeroPadding } from './fold-padding';
import { buildHead } from './heads';
import { loadLayersModelFrom } from './layers-loader';
import { locateMobilenet, MOBILENET_PATH_ENV, MOBILENET_V1_CUT_LAYER, type LocateMobilenetOptions } from './mobilenet';
import { assertUniqueVariableNames, type ModelParts, type PreprocessSpec, RAW_IMAGE_SIZE } from './parts';

/** Options of {@link buildModel} beyond the spec: where to look for MobileNet (tests override these). */
export type BuildModelOptions = LocateMobilenetOptions;

/** Pixel scaling shared by every architecture: 0..255 -> [-1, 1]. */
const PIXEL_SCALE = 1 / 127.5;
const PIXEL_OFFSET = -1;

/**
 * Builds the model described by `spec`; `seed` determines every initial weight (backbone and head draw
 * from separate streams, so changing the backbone leaves the head's initialisation alone).
 * Throws `ConfigError` for spec problems (unknown architecture, inputSize not a multiple of 32, pretrained
 * built-in), `ModelLoadError` when a model file cannot be loaded, `LayerNotFoundError` for a bad `cutAt`,
 * and `ModelBuildError` when the backbone does not fit (input size, channels, clashing weight names).
 */
export async function buildModel(spec: ModelSpec, seed: number, options: BuildModelOptions = {}): Promise<ModelParts> {
  const upsample = checkInputSize(spec.inputSize);
  const backbone = await buildBackbone(spec, seed, options);
  // MobileNet's explicit paddings run inside its depthwise convolutions: the same bits, no padded copies.
  foldZeroPadding(backbone);
  let head: tf.LayersModel | undefined;
  try {
    checkBackboneShapes(backbone, spec);
    head = buildHead(spec.head, backbone.outputs[0].shape.slice(1), spec, new Rng(`${seed}:head`));
    const preprocess: PreprocessSpec = { scale: PIXEL_SCALE, offset: PIXEL_OFFSET, upsample };
    const parts: ModelParts = { spec, backbone, head, preprocess, inputSize: spec.inputSize };
    assertUniqueVariableNames(parts);
    return parts;
  } catch (err) {
    head?.dispose();
    backbone.dispose();
    throw err;
  }
}

/** inputSize must be a positive multiple of 32; returns the upsampling factor. */
function checkInputSize(inputSize: number): number {
  if (!Number.isInteger(inputSize) || inputSize < RAW_IMAGE_SIZE || inputSize % RAW_IMAGE_SIZE !== 0) {
    throw new ConfigError('model.inputSize', `expected a positive multiple of 32 (32, 64, 96, ...), got ${inputSize}`);
  }
  return inputSize / RAW_IMAGE_SIZE;
}

async function buildBackbone(spec: ModelSpec, seed: number, options: BuildModelOptions): Promise<tf.LayersModel> {
  const arch = spec.architecture;
  if (arch === 'mobilenet_v1') {
    const found = locateMobilenet(spec.path, options);
    let source: tf.LayersModel;
    try {
      // Converted MobileNets fix their input at 224x224; the convolutional part runs at any size.
      source = await loadLayersModelFrom(found.location, { weights: spec.pretrained, seed, inputShape: [null, null, 3] });
    } catch (err) {
      if (!(err instanceof ModelLoadError)) throw err;
      const hint = found.source === 'url'
        ? `; no local copy was found: set model.path or ${MOBILENET_PATH_ENV} to a MobileNet v1 model.json`
        : '';
      throw new ModelLoadError(err.path, err.reason, `cannot load MobileNet v1 (from ${found.source}): ${err.detail}${hint}`,
        { cause: err });
    }
    return cutOrDispose(source, spec.cutAt ?? MOBILENET_V1_CUT_LAYER);
  }
  if (arch === 'layers') {
    if (spec.path === undefined || spec.path === '') {
      throw new ConfigError('model.path', "required for architecture 'layers' (a model.json path or http(s) URL)");
    }
    const source = await loadLayersModelFrom(spec.path, { weights: spec.pretrained, seed });
    return cutOrDispose(source, spec.cutAt);
  }
  if (isBuiltin(arch)) {
    if (spec.pretrained) {
      throw new ConfigError('model.pretrained', `built-in architecture '${arch}' has no pretrained weights ` +
        '(built-ins always train from scratch); expected false, got true');
    }
    if (spec.cutAt !== undefined) {
      throw new ConfigError('model.cutAt', `only for 'mobilenet_v1' and 'layers', got it for '${arch}'`);
    }
    return BUILTIN_FACTORIES[arch]({ inputSize: spec.inputSize, rng: new Rng(`${seed}:backbone`) });
  }
  throw new ConfigError('model.architecture', `unknown architecture '${String(arch)}'; expected one of ${ARCHITECTURES.join(', ')}`);
}

function isBuiltin(arch: string): arch is BuiltinArchitecture {
  return (BUILTIN_ARCHITECTURES as readonly string[]).includes(arch);
}

/**
 * Cuts a freshly loaded model after `layerName` (or re-wraps its single output when undefined, so the
 * backbone is always named 'backbone') and frees the unused rest; disposes the source on failure.
 */
function cutOrDispose(source: tf.LayersModel, layerName: string | undefined): tf.LayersModel {
  try {
    if (layerName !== undefined) return cutAtLayer(source, layerName, { releaseUnused: true });
    if (source.outputs.length !== 1) {
      throw new ModelBuildError(`model '${source.name}' has ${source.outputs.length} outputs; expected 1 ` +
        '(set model.cutAt to the layer whose output the head should see)');
    }
    return tf.model({ inputs: source.inputs, outputs: source.outputs[0], name: 'backbone' });
  } catch (err) {
    source.dispose();
    throw err;
  }
}

/** The backbone must take one [N, inputSize|null, inputSize|null, 3] input and give rank-4 or rank-2 features. */
function checkBackboneShapes(backbone: tf.LayersModel, spec: ModelSpec): void {
  if (backbone.inputs.length !== 1) {
    throw new ModelBuildError(`backbone: expected 1 input, got ${backbone.inputs.length}`);
  }
  const shape = backbone.inputs[0].shape;
  const [, h, w, c] = shape;
  if (shape.length !== 4 || c !== 3) {
    throw new ModelBuildError(`backbone: expected an image input [N,H,W,3], got [${shape.map(String).join(',')}]`);
  }
  if ((h !== null && h !== spec.inputSize) || (w !== null && w !== spec.inputSize)) {
    throw new ConfigError('model.inputSize', `the backbone takes ${h}x${w} inputs, got inputSize ${spec.inputSize}`);
  }
  const out = backbone.outputs[0].shape;
  if (out.length !== 4 && out.length !== 2) {
    throw new ModelBuildError(`backbone: expected features [N,H,W,C] or [N,C], got [${out.map(String).join(',')}]`);
  }
}
