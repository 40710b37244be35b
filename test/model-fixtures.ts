// Shared fixtures of the model tests: a tiny generated layers model, temp folders, and a real HTTP server
// serving a model folder (the loader's URL path runs against actual HTTP, not a stub).
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { ModelSpec } from '../common/job';

/** Where the real pretrained MobileNet lives when the shared folder is present. */
export const SHARED_MOBILENET_JSON = path.resolve(__dirname, '../../shared/models/mobilenet_v1_imagenet_conv_pw_12/model.json');

/** Float count of {@link tinyModel}: conv 3x3x3x4 + 4, BN 4x4, dense 4x5 + 5. */
export const TINY_FLOATS = 108 + 4 + 16 + 20 + 5;
/** Weight count of {@link tinyModel}. */
export const TINY_WEIGHTS = 8;

/**
 * A small functional image model: conv (tiny_conv) -> BN (tiny_bn) -> ReLU (tiny_relu) -> GAP (tiny_gap)
 * -> Dense(5) (tiny_dense). Input [N, side, side, 3] (side null = any). `prefix` renames the layers.
 */
export function tinyModel(options: { side?: number | null; prefix?: string; seed?: number } = {}): tf.LayersModel {
  const p = options.prefix ?? 'tiny_';
  const seed = options.seed ?? 7;
  const side = options.side === undefined ? null : options.side;
  const input = tf.input({ shape: [side, side, 3] as number[], name: `${p}input` });
  let x = tf.layers.conv2d({
    filters: 4, kernelSize: 3, padding: 'same', name: `${p}conv`,
    kernelInitializer: tf.initializers.glorotUniform({ seed }), biasInitializer: tf.initializers.constant({ value: 0.1 }),
  }).apply(input) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ name: `${p}bn` }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.reLU({ name: `${p}relu` }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.globalAveragePooling2d({ name: `${p}gap` }).apply(x) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: 5, name: `${p}dense`, kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }) })
    .apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: out, name: `${p}model` });
}

/** A fresh temp folder; remove it with {@link removeDir}. */
export function makeTempDir(tag: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `shardwise-${tag}-`));
}

export function removeDir(dir: string | undefined): void {
  if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true });
}

/** A static file server on 127.0.0.1 (free port) for `root`; answers 404 for missing files. */
export interface StaticServer {
  /** Base URL ending in '/'. */
  url: string;
  /** Paths requested so far, in order. */
  requests: string[];
  close(): Promise<void>;
}

export async function serveDir(root: string): Promise<StaticServer> {
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    const rel = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    requests.push(rel);
    const file = path.join(root, rel);
    if (!file.startsWith(root) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': file.endsWith('.json') ? 'application/json' : 'application/octet-stream' });
    res.end(fs.readFileSync(file));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    requests,
    close: () => new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve()))),
  };
}

/** A ModelSpec with the job-spec defaults, for `buildModel` calls in tests. */
export function modelSpec(overrides: Partial<ModelSpec>): ModelSpec {
  return {
    architecture: 'small_cnn',
    pretrained: false,
    inputSize: 32,
    head: 'linear',
    headUnits: 16,
    dropout: 0.5,
    numClasses: 10,
    ...overrides,
  };
}

/** Values of every variable, keyed by original name. */
export function variableValues(vars: readonly tf.LayerVariable[]): Map<string, Float32Array> {
  return new Map(vars.map((v) => [v.originalName, v.read().dataSync() as Float32Array]));
}

/** Largest absolute difference of two same-shaped tensors. */
export function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}
