import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../common/compute';
import { loadLayersModelFrom, ModelLoadError, ModelSaveError, saveLayersModel } from '../common/models';
import {
  makeTempDir, maxAbsDiff, removeDir, serveDir, SHARED_MOBILENET_JSON, type StaticServer, TINY_FLOATS, TINY_WEIGHTS,
  tinyModel, variableValues,
} from './model-fixtures';

/** Asserts that `promise` rejects with a ModelLoadError of `reason` whose message matches `message`. */
async function rejectsWith(promise: Promise<unknown>, reason: string, message: RegExp, pathEnd?: string): Promise<ModelLoadError> {
  let caught: unknown;
  try {
    await promise;
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ModelLoadError, `expected a ModelLoadError, got ${String(caught)}`);
  assert.equal(caught.reason, reason, caught.message);
  assert.match(caught.message, message);
  if (pathEnd !== undefined) assert.ok(caught.path.endsWith(pathEnd), `path ${caught.path} should end with ${pathEnd}`);
  return caught;
}

describe('models: layers loader and saver', () => {
  let tmp: string;
  let source: tf.LayersModel;
  let modelDir: string;
  const input = (): tf.Tensor4D => tf.tidy(() => tf.randomUniform([2, 8, 8, 3], -1, 1, 'float32', 3) as tf.Tensor4D);

  before(async () => {
    await initBackend({ prefer: 'wasm' });
    tmp = makeTempDir('loader');
    source = tinyModel();
    modelDir = path.join(tmp, 'tiny');
    await saveLayersModel(source, modelDir);
  });
  after(() => removeDir(tmp));

  /** A copy of the saved tiny model in a fresh folder, to corrupt. */
  function copyModel(name: string): string {
    const dir = path.join(tmp, name);
    fs.cpSync(modelDir, dir, { recursive: true });
    return dir;
  }

  describe('saveLayersModel', () => {
    it('writes the standard layers format: model.json + one weights.bin of the manifest size', () => {
      const json = JSON.parse(fs.readFileSync(path.join(modelDir, 'model.json'), 'utf8'));
      assert.equal(json.format, 'layers-model');
      assert.equal(json.modelTopology.class_name, 'Model');
      assert.deepEqual(json.weightsManifest.map((g: { paths: string[] }) => g.paths), [['weights.bin']]);
      assert.equal(json.weightsManifest[0].weights.length, TINY_WEIGHTS);
      assert.equal(fs.statSync(path.join(modelDir, 'weights.bin')).size, TINY_FLOATS * 4);
    });

    it('stores original weight names, not the process-unique suffixed ones', async () => {
      const second = tinyModel(); // same layer names: tfjs suffixes its variables with _1
      assert.ok(second.weights.some((w) => w.name !== w.originalName));
      const dir = path.join(tmp, 'second');
      await saveLayersModel(second, dir);
      const names = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'))
        .weightsManifest[0].weights.map((w: { name: string }) => w.name);
      assert.deepEqual([...names].sort(), second.weights.map((w) => w.originalName).sort());
      assert.ok(names.includes('tiny_conv/kernel'));
      assert.ok(!names.some((n: string) => /_\d+$/.test(n)), names.join(', '));
      second.dispose();
    });

    it('replaces an existing folder as a whole and leaves no temp folders behind', async () => {
      const dir = path.join(tmp, 'replace', 'ckpt');
      await saveLayersModel(source, dir);
      fs.writeFileSync(path.join(dir, 'stale.txt'), 'old');
      await saveLayersModel(source, dir);
      assert.deepEqual(fs.readdirSync(dir).sort(), ['model.json', 'weights.bin']);
      assert.deepEqual(fs.readdirSync(path.dirname(dir)), ['ckpt']);
    });

    it('fails with ModelSaveError, creating nothing, when the folder cannot be written', async () => {
      const blocker = path.join(tmp, 'a-file');
      fs.writeFileSync(blocker, 'x');
      const target = path.join(blocker, 'ckpt');
      await assert.rejects(saveLayersModel(source, target), (err: unknown) => {
        assert.ok(err instanceof ModelSaveError);
        assert.equal(err.path, target);
        return true;
      });
      assert.equal(fs.existsSync(target), false);
    });
  });

  describe('loadLayersModelFrom', () => {
    it('round-trips weights and predictions, from model.json, its folder or a file:// URL', async () => {
      const x = input();
      const expected = source.predict(x) as tf.Tensor;
      const want = variableValues(source.weights);
      for (const where of [path.join(modelDir, 'model.json'), modelDir, pathToFileURL(path.join(modelDir, 'model.json')).href]) {
        const loaded = await loadLayersModelFrom(where);
        assert.deepEqual(variableValues(loaded.weights), want, where);
        assert.ok(maxAbsDiff(loaded.predict(x) as tf.Tensor, expected) === 0, where);
        loaded.dispose();
      }
      tf.dispose([x, expected]);
    });

    it('weights:false builds the topology with fresh weights, reproducible from the seed, without reading shards', async () => {
      const dir = copyModel('no-weights');
      fs.rmSync(path.join(dir, 'weights.bin'));
      const a = await loadLayersModelFrom(dir, { weights: false, seed: 1 });
      const b = await loadLayersModelFrom(dir, { weights: false, seed: 1 });
      const c = await loadLayersModelFrom(dir, { weights: false, seed: 2 });
      assert.deepEqual(a.layers.map((l) => l.name), source.layers.map((l) => l.name));
      const kernel = (m: tf.LayersModel): Float32Array => variableValues(m.weights).get('tiny_conv/kernel')!;
      assert.deepEqual(kernel(a), kernel(b));
      assert.notDeepEqual(kernel(a), kernel(c));
      assert.notDeepEqual(kernel(a), variableValues(source.weights).get('tiny_conv/kernel'));
      [a, b, c].forEach((m) => m.dispose());
    });

    it('inputShape overrides the stored input size (a 32x32 model then runs on 64x64 images)', async () => {
      const dir = path.join(tmp, 'fixed32');
      const fixed = tinyModel({ side: 32, prefix: 'fixed_' });
      await saveLayersModel(fixed, dir);
      const loaded = await loadLayersModelFrom(dir, { inputShape: [null, null, 3] });
      assert.deepEqual(loaded.inputs[0].shape, [null, null, null, 3]);
      assert.deepEqual(variableValues(loaded.weights), variableValues(fixed.weights));
      const out = tf.tidy(() => loaded.predict(tf.zeros([1, 64, 64, 3])) as tf.Tensor);
      assert.deepEqual(out.shape, [1, 5]);
      tf.dispose([out]);
      [fixed, loaded].forEach((m) => m.dispose());
    });

    it('reports a missing model.json', async () => {
      await rejectsWith(loadLayersModelFrom(path.join(tmp, 'nowhere', 'model.json')), 'not-found', /model\.json does not exist/,
        path.join('nowhere', 'model.json'));
    });

    it('reports a truncated model.json as invalid JSON, naming the file', async () => {
      const dir = copyModel('truncated-json');
      const file = path.join(dir, 'model.json');
      fs.writeFileSync(file, fs.readFileSync(file, 'utf8').slice(0, 200));
      const err = await rejectsWith(loadLayersModelFrom(dir), 'invalid-json', /not valid JSON \(truncated or corrupt\? 200 characters\)/);
      assert.equal(err.path, file);
      assert.ok(err.message.startsWith(file));
    });

    it('rejects a graph model and other JSON that is not a layers model', async () => {
      const dir = path.join(tmp, 'graph');
      fs.mkdirSync(dir);
      fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify({
        format: 'graph-model', modelTopology: { node: [] }, weightsManifest: [],
      }));
      await rejectsWith(loadLayersModelFrom(dir), 'not-layers-model', /expected a TF\.js layers model.*found format 'graph-model'/);
      fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify({ modelTopology: { node: [] } }));
      await rejectsWith(loadLayersModelFrom(dir), 'not-layers-model', /graph-model topology/);
      fs.writeFileSync(path.join(dir, 'model.json'), '[1, 2]');
      await rejectsWith(loadLayersModelFrom(dir), 'not-layers-model', /found a JSON array/);
    });

    it('reports a missing weight shard by its path', async () => {
      const dir = copyModel('missing-shard');
      fs.rmSync(path.join(dir, 'weights.bin'));
      await rejectsWith(loadLayersModelFrom(dir), 'missing-shard', /weight shard 'weights\.bin' listed in model\.json does not exist/,
        path.join('missing-shard', 'weights.bin'));
    });

    it('reports a truncated weights.bin with expected and found sizes', async () => {
      const dir = copyModel('short-shard');
      const file = path.join(dir, 'weights.bin');
      fs.writeFileSync(file, fs.readFileSync(file).subarray(0, 100));
      await rejectsWith(loadLayersModelFrom(dir), 'shard-size',
        new RegExp(`weights\\.bin: expected ${TINY_FLOATS * 4} bytes for ${TINY_WEIGHTS} weights, found 100$`), file);
    });

    it('reports weights that do not fit the architecture', async () => {
      const dir = copyModel('renamed-weight');
      const file = path.join(dir, 'model.json');
      const json = JSON.parse(fs.readFileSync(file, 'utf8'));
      json.weightsManifest[0].weights[0].name = 'elsewhere/kernel';
      fs.writeFileSync(file, JSON.stringify(json));
      await rejectsWith(loadLayersModelFrom(dir), 'weights-mismatch', /do not fit the architecture.*elsewhere\/kernel/);
    });

    it('reports a topology tfjs cannot build', async () => {
      const dir = copyModel('bad-layer');
      const file = path.join(dir, 'model.json');
      const json = JSON.parse(fs.readFileSync(file, 'utf8'));
      json.modelTopology.config.layers[1].class_name = 'NoSuchLayer';
      fs.writeFileSync(file, JSON.stringify(json));
      await rejectsWith(loadLayersModelFrom(dir, { weights: false }), 'invalid-topology', /NoSuchLayer/);
    });
  });

  describe('over HTTP', () => {
    let server: StaticServer;
    before(async () => {
      server = await serveDir(tmp);
    });
    after(async () => server.close());

    it('loads model.json and its shard from a URL', async () => {
      const loaded = await loadLayersModelFrom(`${server.url}tiny/model.json`);
      assert.deepEqual(variableValues(loaded.weights), variableValues(source.weights));
      assert.deepEqual(server.requests.slice(-2), ['/tiny/model.json', '/tiny/weights.bin']);
      loaded.dispose();
    });

    it('writes what tfjs\'s own http loader reads (standard layers format)', async () => {
      const loaded = await tf.loadLayersModel(`${server.url}tiny/model.json`);
      assert.deepEqual(variableValues(loaded.weights), variableValues(source.weights));
      loaded.dispose();
    });

    it('reports HTTP error statuses of model.json and of shards', async () => {
      await rejectsWith(loadLayersModelFrom(`${server.url}absent/model.json`), 'http', /expected HTTP 200, got 404 Not Found/,
        '/absent/model.json');
      await rejectsWith(loadLayersModelFrom(`${server.url}missing-shard/model.json`), 'http',
        /fetching weight shard 'weights\.bin': expected HTTP 200, got 404/, '/missing-shard/weights.bin');
    });

    it('reports a server that cannot be reached', async () => {
      const gone = await serveDir(tmp);
      await gone.close();
      await rejectsWith(loadLayersModelFrom(`${gone.url}tiny/model.json`), 'http', /could not fetch model\.json: .*ECONNREFUSED/);
    });
  });

  describe('the real MobileNet v1 backbone', () => {
    it('loads with all 125 weights and gives 1024 channels at 1/32 resolution', async function () {
      if (!fs.existsSync(SHARED_MOBILENET_JSON)) this.skip(); // shared folder absent: nothing real to load
      const model = await loadLayersModelFrom(SHARED_MOBILENET_JSON);
      assert.equal(model.layers.length, 89);
      assert.equal(model.weights.length, 125);
      assert.equal(model.countParams(), 2_162_880);
      const bytes = fs.readFileSync(path.join(path.dirname(SHARED_MOBILENET_JSON), 'weights.bin'));
      const first = new Float32Array(bytes.buffer, bytes.byteOffset, 4); // conv1/kernel comes first
      assert.deepEqual(Array.from(model.getLayer('conv1').getWeights()[0].dataSync().slice(0, 4)), Array.from(first));
      const out = tf.tidy(() => model.predict(tf.zeros([1, 64, 64, 3])) as tf.Tensor);
      assert.deepEqual(out.shape, [1, 2, 2, 1024]);
      out.dispose();
      model.dispose();
    });
  });
});
