/**
 * Loads TF.js layers models (model.json + weight shards) from a local path or an http(s) URL.
 *
 * Pure @tensorflow/tfjs has no file:// handler (that lives in tfjs-node, an optional dependency), so the
 * files are read here and handed to `tf.io.fromMemory`. Reading them ourselves also lets every way a model
 * folder can be broken fail with a `ModelLoadError` that names the file and what was wrong with it, instead
 * of a tfjs stack trace from deep inside deserialisation.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../random';
import { ModelLoadError } from './errors';
import { seedInitializers } from './seed-initializers';

/** Options of {@link loadLayersModelFrom}. */
export interface LoadLayersModelOptions {
  /**
   * Load the stored weights. `false` builds the same topology with freshly initialised weights (the
   * from-scratch baseline of a pretrained architecture) and never reads the weight shards.
   * @default true
   */
  weights?: boolean;
  /** Seeds the fresh initialisers when `weights` is false, so the baseline is reproducible. @default 0 */
  seed?: number;
  /**
   * Replaces the input shape stored in the topology (without the batch axis), e.g. `[null, null, 3]` so a
   * model converted for 224x224 accepts any image size. Only sound for layers that do not depend on the
   * spatial size (convolutions, global pooling); a Flatten would fail to build. @default the stored shape
   */
  inputShape?: Array<number | null>;
}

/** One group of `weightsManifest`, as written by tensorflowjs converters and by `saveLayersModel`. */
interface ManifestGroup {
  paths: string[];
  weights: tf.io.WeightsManifestEntry[];
}

/** The parsed and validated parts of a model.json, plus the concatenated weight bytes when read. */
export interface LayersArtifacts {
  /** Resolved location of model.json (absolute path or URL). */
  location: string;
  modelTopology: object;
  format?: string;
  generatedBy?: string;
  convertedBy?: string | null;
  userDefinedMetadata?: object;
  weightSpecs: tf.io.WeightsManifestEntry[];
  /** Present only when the weights were asked for. */
  weightData?: ArrayBuffer;
}

/** Where the files of one model live: a folder on disk or a base URL. */
interface ModelSource {
  /** model.json's location, for messages and errors. */
  location: string;
  readModelJson(): Promise<string>;
  /** Location of a shard named relative to model.json. */
  shardLocation(relative: string): string;
  readShard(relative: string): Promise<Uint8Array>;
}

const MODEL_CLASS_NAMES = new Set(['Model', 'Functional', 'Sequential']);
const DTYPE_BYTES: Record<string, number> = { float32: 4, int32: 4, bool: 1, complex64: 8, uint8: 1, uint16: 2, float16: 2 };

/**
 * Loads a TF.js layers model from `pathOrUrl`: a model.json path, the folder holding it, a file:// URL or
 * an http(s) URL (shards are fetched relative to it). Throws `ModelLoadError` whose `reason` says what
 * was wrong (missing file, truncated JSON, graph model, missing or short shard, HTTP status, ...).
 */
export async function loadLayersModelFrom(
  pathOrUrl: string,
  options: LoadLayersModelOptions = {},
): Promise<tf.LayersModel> {
  const withWeights = options.weights ?? true;
  const artifacts = await readLayersArtifacts(pathOrUrl, { weights: withWeights });
  let topology = withWeights
    ? artifacts.modelTopology
    : seedInitializers(artifacts.modelTopology, new Rng(`${options.seed ?? 0}:layers-init`));
  if (options.inputShape !== undefined) topology = withInputShape(artifacts.location, topology, options.inputShape);

  // One call when weights are given: tfjs then skips the (for ResNet-18, ~1 s) random initialisation.
  const handler = tf.io.fromMemory({
    modelTopology: topology,
    format: artifacts.format,
    userDefinedMetadata: artifacts.userDefinedMetadata,
    ...(artifacts.weightData === undefined ? {} : { weightSpecs: artifacts.weightSpecs, weightData: artifacts.weightData }),
  });
  try {
    return await tf.loadLayersModel(handler);
  } catch (err) {
    throw await classifyBuildError(artifacts.location, topology, artifacts.weightData !== undefined, err);
  }
}

/** Tells a topology tfjs cannot build from weights that do not fit it, by building the topology alone. */
async function classifyBuildError(location: string, topology: object, hadWeights: boolean, err: unknown): Promise<ModelLoadError> {
  if (hadWeights) {
    const bare = await tf.loadLayersModel(tf.io.fromMemory({ modelTopology: topology })).catch(() => undefined);
    if (bare !== undefined) {
      bare.dispose();
      return new ModelLoadError(location, 'weights-mismatch', `the weights do not fit the architecture: ${errorMessage(err)}`,
        { cause: err });
    }
  }
  return new ModelLoadError(location, 'invalid-topology', `tfjs could not build the architecture: ${errorMessage(err)}`,
    { cause: err });
}

/**
 * Reads and validates model.json and (when `weights` is true) every shard, checking each manifest group's
 * byte count against its weight specs before anything is decoded.
 */
export async function readLayersArtifacts(
  pathOrUrl: string,
  options: { weights: boolean },
): Promise<LayersArtifacts> {
  const source = await openSource(pathOrUrl);
  const text = await source.readModelJson();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ModelLoadError(source.location, 'invalid-json',
      `model.json is not valid JSON (truncated or corrupt? ${text.length} characters): ${errorMessage(err)}`,
      { cause: err });
  }
  const { modelTopology, manifest, format } = validateLayersJson(source.location, json);
  const doc = json as Record<string, unknown>;
  const artifacts: LayersArtifacts = {
    location: source.location,
    modelTopology,
    format,
    generatedBy: typeof doc.generatedBy === 'string' ? doc.generatedBy : undefined,
    convertedBy: typeof doc.convertedBy === 'string' ? doc.convertedBy : null,
    userDefinedMetadata: isObject(doc.userDefinedMetadata) ? doc.userDefinedMetadata : undefined,
    weightSpecs: manifest.flatMap((g) => g.weights),
  };
  if (options.weights) artifacts.weightData = await readWeightGroups(source, manifest);
  return artifacts;
}

/** Checks that `json` is a layers model.json and returns its topology and manifest. */
function validateLayersJson(
  location: string,
  json: unknown,
): { modelTopology: object; manifest: ManifestGroup[]; format?: string } {
  const fail = (found: string): never => {
    throw new ModelLoadError(location, 'not-layers-model',
      `expected a TF.js layers model (format 'layers-model' with a Keras modelTopology), found ${found}`);
  };
  if (!isObject(json)) return fail(`a JSON ${Array.isArray(json) ? 'array' : typeof json}`);
  const format = json.format;
  if (format !== undefined && format !== 'layers-model') return fail(`format '${String(format)}'`);
  const topology = json.modelTopology;
  if (!isObject(topology)) return fail('no modelTopology object');
  const modelConfig = isObject(topology.model_config) ? topology.model_config : topology;
  const className = modelConfig.class_name;
  if (typeof className !== 'string' || !MODEL_CLASS_NAMES.has(className) || !isObject(modelConfig.config)) {
    return fail(Array.isArray(topology.node)
      ? 'a graph-model topology (nodes, not layers)'
      : `modelTopology with class_name ${JSON.stringify(className)}`);
  }
  const rawManifest = json.weightsManifest ?? [];
  if (!Array.isArray(rawManifest)) return fail(`weightsManifest of type ${typeof rawManifest}, expected an array`);
  const manifest = rawManifest.map((group: unknown, i): ManifestGroup => {
    if (!isObject(group) || !Array.isArray(group.paths) || !Array.isArray(group.weights)
      || !group.paths.every((p) => typeof p === 'string')) {
      return fail(`weightsManifest[${i}] without 'paths' and 'weights' arrays`);
    }
    for (const [j, w] of (group.weights as unknown[]).entries()) {
      if (!isObject(w) || typeof w.name !== 'string' || !Array.isArray(w.shape) || typeof w.dtype !== 'string') {
        fail(`weightsManifest[${i}].weights[${j}] without name, shape and dtype`);
      }
    }
    return { paths: group.paths as string[], weights: group.weights as tf.io.WeightsManifestEntry[] };
  });
  return { modelTopology: topology, manifest, format: format as string | undefined };
}

/** Reads every group's shards, checks each group's total size, and concatenates them in manifest order. */
async function readWeightGroups(source: ModelSource, manifest: ManifestGroup[]): Promise<ArrayBuffer> {
  const parts: Uint8Array[] = [];
  for (const group of manifest) {
    const shards = await Promise.all(group.paths.map((p) => source.readShard(p)));
    const found = shards.reduce((n, s) => n + s.byteLength, 0);
    const expected = expectedGroupBytes(group.weights);
    if (expected !== undefined && found !== expected) {
      const where = group.paths.length === 1 ? source.shardLocation(group.paths[0]) : source.location;
      const what = group.paths.length === 1 ? '' : `shards ${group.paths.join(' + ')}: `;
      throw new ModelLoadError(where, 'shard-size',
        `${what}expected ${expected} bytes for ${group.weights.length} weights, found ${found}`);
    }
    parts.push(...shards);
  }
  const total = parts.reduce((n, p) => n + p.byteLength, 0);
  const out = new Uint8Array(total);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.byteLength;
  }
  return out.buffer;
}

/** Bytes the weights of one group occupy; undefined when not computable statically (string weights). */
function expectedGroupBytes(weights: tf.io.WeightsManifestEntry[]): number | undefined {
  let total = 0;
  for (const w of weights) {
    const dtype = w.quantization?.dtype ?? w.dtype;
    const bytes = DTYPE_BYTES[dtype];
    if (bytes === undefined) return undefined;
    total += w.shape.reduce((a, b) => a * b, 1) * bytes;
  }
  return total;
}

/** A copy of `topology` whose single input takes `[null, ...inputShape]`. */
function withInputShape(location: string, topology: object, inputShape: Array<number | null>): object {
  const copy = structuredClone(topology) as Record<string, unknown>;
  const modelConfig = (isObject(copy.model_config) ? copy.model_config : copy) as { class_name: string; config: unknown };
  const layers = isObject(modelConfig.config) && Array.isArray(modelConfig.config.layers) ? modelConfig.config.layers : [];
  // Functional models declare their input in InputLayers; Sequential ones in the first layer's config.
  const holders = modelConfig.class_name === 'Sequential'
    ? layers.slice(0, 1)
    : layers.filter((l: unknown) => isObject(l) && l.class_name === 'InputLayer');
  if (holders.length !== 1 || !isObject(holders[0]) || !isObject(holders[0].config)) {
    throw new ModelLoadError(location, 'invalid-topology',
      `cannot override the input shape: expected one input layer, found ${holders.length}`);
  }
  holders[0].config.batch_input_shape = [null, ...inputShape];
  return copy;
}

/** Turns a user-supplied location into a source; a folder means the model.json inside it. */
async function openSource(pathOrUrl: string): Promise<ModelSource> {
  if (/^https?:\/\//i.test(pathOrUrl)) return urlSource(pathOrUrl);
  let file = pathOrUrl.startsWith('file://') ? fileURLToPath(pathOrUrl) : path.resolve(pathOrUrl);
  const stat = await fs.stat(file).catch(() => undefined);
  if (stat?.isDirectory()) file = path.join(file, 'model.json');
  return fileSource(file);
}

function fileSource(modelJson: string): ModelSource {
  const dir = path.dirname(modelJson);
  const read = async (file: string, missing: 'not-found' | 'missing-shard', what: string): Promise<Buffer> => {
    try {
      return await fs.readFile(file);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new ModelLoadError(file, missing, `${what} does not exist`, { cause: err });
      throw new ModelLoadError(file, 'read-failed', `cannot read ${what}: ${code ?? errorMessage(err)}`, { cause: err });
    }
  };
  return {
    location: modelJson,
    readModelJson: async () => (await read(modelJson, 'not-found', 'model.json')).toString('utf8'),
    shardLocation: (rel) => path.resolve(dir, rel),
    readShard: async (rel) => read(path.resolve(dir, rel), 'missing-shard', `weight shard '${rel}' listed in model.json`),
  };
}

function urlSource(url: string): ModelSource {
  const get = async (target: string, what: string): Promise<Response> => {
    let res: Response;
    try {
      res = await fetch(target);
    } catch (err) {
      const cause = (err as { cause?: unknown }).cause;
      throw new ModelLoadError(target, 'http',
        `could not fetch ${what}: ${errorMessage(cause ?? err)}`, { cause: err });
    }
    if (!res.ok) {
      throw new ModelLoadError(target, 'http', `fetching ${what}: expected HTTP 200, got ${res.status} ${res.statusText}`);
    }
    return res;
  };
  return {
    location: url,
    readModelJson: async () => (await get(url, 'model.json')).text(),
    shardLocation: (rel) => new URL(rel, url).href,
    readShard: async (rel) => new Uint8Array(await (await get(new URL(rel, url).href, `weight shard '${rel}'`)).arrayBuffer()),
  };
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
