import { ShardwiseError } from '../errors';

/** Why a model could not be loaded; lets callers and tests branch without parsing messages. */
export const MODEL_LOAD_REASONS = [
  'not-found', // model.json (or the folder) does not exist
  'read-failed', // it exists but could not be read
  'invalid-json', // model.json is truncated or not JSON
  'not-layers-model', // JSON, but not a TF.js layers model (e.g. a graph model)
  'missing-shard', // a weight file named in weightsManifest is absent
  'shard-size', // the weight files do not hold the bytes the manifest specifies
  'http', // an http(s) request failed or answered with an error status
  'invalid-topology', // tfjs could not build the architecture
  'weights-mismatch', // the weights do not fit the architecture (names, shapes)
] as const;
/** One of {@link MODEL_LOAD_REASONS}. */
export type ModelLoadReason = (typeof MODEL_LOAD_REASONS)[number];

/** A TF.js layers model (model.json + shards) could not be read, validated or built. */
export class ModelLoadError extends ShardwiseError {
  /** The model.json path or URL (or the shard) the problem is about. */
  readonly path: string;
  readonly reason: ModelLoadReason;
  /** The message without the leading path, for callers that add their own context. */
  readonly detail: string;
  constructor(path: string, reason: ModelLoadReason, detail: string, options?: { cause?: unknown }) {
    super(`${path}: ${detail}`, options);
    this.name = 'ModelLoadError';
    this.path = path;
    this.reason = reason;
    this.detail = detail;
  }
}

/** Writing a model to disk failed; nothing was left half-written at `path`. */
export class ModelSaveError extends ShardwiseError {
  /** The destination folder. */
  readonly path: string;
  constructor(path: string, message: string, options?: { cause?: unknown }) {
    super(`${path}: ${message}`, options);
    this.name = 'ModelSaveError';
    this.path = path;
  }
}

/** A layer name (e.g. a cut point) does not exist in the model. */
export class LayerNotFoundError extends ShardwiseError {
  readonly layerName: string;
  readonly modelName: string;
  /** Every layer name of the model, in topological order. */
  readonly validNames: readonly string[];
  constructor(modelName: string, layerName: string, validNames: readonly string[]) {
    const shown = validNames.length <= 12
      ? validNames.join(', ')
      : `${validNames.slice(0, 5).join(', ')}, ..., ${validNames.slice(-5).join(', ')}`;
    super(`model '${modelName}' has no layer '${layerName}' (${validNames.length} layers: ${shown})`);
    this.name = 'LayerNotFoundError';
    this.layerName = layerName;
    this.modelName = modelName;
    this.validNames = validNames;
  }
}

/** A model cannot be assembled or used as asked: incompatible shapes, clashing weight names. */
export class ModelBuildError extends ShardwiseError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ModelBuildError';
  }
}
