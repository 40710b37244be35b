import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../common/compute';
import { ConfigError } from '../common/errors';
import {
  buildModel, disposeModelParts, LayerNotFoundError, locateMobilenet, MOBILENET_V1_URL, ModelBuildError, ModelLoadError,
  modelFingerprint, type ModelParts, namedVariables, preprocess, reseedDropout, saveLayersModel, weightsHash,
} from '../common/models';
import { parseJobSpec } from '../common/job';
import { Rng } from '../common/random';
import {
  makeTempDir, modelSpec, removeDir, serveDir, SHARED_MOBILENET_JSON, tinyModel, variableValues,
} from './model-fixtures';

/** Logits of a forward pass in inference mode. */
function logits(parts: ModelParts, raw: tf.Tensor4D): tf.Tensor2D {
  return tf.tidy(() => {
    const feat = parts.backbone.apply(preprocess(parts, raw), { training: false }) as tf.Tensor;
    return parts.head.apply(feat, { training: false }) as tf.Tensor2D;
  });
}

async function rejectsConfig(promise: Promise<unknown>, field: string, message: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    assert.equal(err.field, field);
    assert.match(err.message, message);
    return true;
  });
}

/**
 * Writes the shared MobileNet as the public full model looks: input fixed at 224x224 and a classifier
 * (global pooling + Dense 'preds') after conv_pw_12_relu. Returns the folder.
 */
function writeFullMobilenet(dir: string): string {
  const srcDir = path.dirname(SHARED_MOBILENET_JSON);
  const json = JSON.parse(fs.readFileSync(SHARED_MOBILENET_JSON, 'utf8'));
  const config = json.modelTopology.model_config.config;
  config.layers[0].config.batch_input_shape = [null, 224, 224, 3];
  config.layers.push(
    { name: 'gap', class_name: 'GlobalAveragePooling2D', config: { name: 'gap', trainable: true, data_format: 'channels_last' },
      inbound_nodes: [[['conv_pw_12_relu', 0, 0, {}]]] },
    { name: 'preds', class_name: 'Dense', config: { name: 'preds', trainable: true, units: 3, activation: 'softmax', use_bias: true,
      kernel_initializer: { class_name: 'VarianceScaling', config: { scale: 1, mode: 'fan_avg', distribution: 'uniform', seed: null } },
      bias_initializer: { class_name: 'Zeros', config: {} } }, inbound_nodes: [[['gap', 0, 0, {}]]] },
  );
  config.output_layers = [['preds', 0, 0]];
  json.weightsManifest.push({ paths: ['preds.bin'], weights: [
    { name: 'preds/kernel', shape: [1024, 3], dtype: 'float32' }, { name: 'preds/bias', shape: [3], dtype: 'float32' }] });
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(json));
  fs.copyFileSync(path.join(srcDir, 'weights.bin'), path.join(dir, 'weights.bin'));
  fs.writeFileSync(path.join(dir, 'preds.bin'), Buffer.from(new Float32Array(1024 * 3 + 3).fill(0.01).buffer));
  return dir;
}

describe('models: zoo', () => {
  let tmp: string;
  let raw: tf.Tensor4D;
  before(async () => {
    await initBackend({ prefer: 'wasm' });
    tmp = makeTempDir('zoo');
    raw = tf.randomUniform([2, 32, 32, 3], 0, 255, 'float32', 11) as tf.Tensor4D;
  });
  after(() => {
    raw.dispose();
    removeDir(tmp);
  });

  describe('built-in architectures', () => {
    // [architecture, backbone parameters, feature shape at 32x32]
    const cases = [
      ['small_cnn', 66_144, [8, 8, 64]],
      ['vgg_small', 1_148_096, [4, 4, 256]],
      ['alexnet', 2_448_192, [4, 4, 256]],
      ['resnet18', 11_178_432, [4, 4, 512]],
    ] as const;
    for (const [architecture, params, featShape] of cases) {
      it(`${architecture}: ${params} parameters, features ${featShape.join('x')}, logits [N, numClasses]`, async () => {
        const parts = await buildModel(modelSpec({ architecture, numClasses: 7 }), 0);
        assert.equal(parts.backbone.countParams(), params);
        assert.deepEqual(parts.backbone.outputs[0].shape, [null, ...featShape]);
        assert.deepEqual(parts.backbone.inputs[0].shape, [null, 32, 32, 3]);
        assert.equal(parts.backbone.name, 'backbone');
        assert.equal(parts.head.name, 'head');
        const out = logits(parts, raw);
        assert.deepEqual(out.shape, [2, 7]);
        assert.ok(Array.from(out.dataSync()).every(Number.isFinite));
        out.dispose();
        disposeModelParts(parts);
      });
    }

    it('a ResNet-18 stage changes shape through a projection shortcut; identity blocks have none', async () => {
      const parts = await buildModel(modelSpec({ architecture: 'resnet18' }), 0);
      const names = parts.backbone.layers.map((l) => l.name);
      assert.ok(names.includes('stage2_block1_shortcut_conv'));
      assert.ok(!names.includes('stage1_block1_shortcut_conv'));
      assert.ok(!names.includes('stage2_block2_shortcut_conv'));
      assert.ok(!parts.backbone.layers.some((l) => l.getClassName() === 'MaxPooling2D'), 'no max-pool in the stem');
      disposeModelParts(parts);
    });

    it('is reproducible from the seed, and different seeds give different weights', async () => {
      const a = await buildModel(modelSpec({ head: 'seed' }), 5);
      const b = await buildModel(modelSpec({ head: 'seed' }), 5);
      const c = await buildModel(modelSpec({ head: 'seed' }), 6);
      const values = (p: ModelParts): Map<string, Float32Array> => variableValues([...namedVariables(p).backbone, ...namedVariables(p).head]);
      assert.deepEqual(values(a), values(b));
      const va = values(a);
      const vc = values(c);
      assert.notDeepEqual(va.get('block1_conv1_conv/kernel'), vc.get('block1_conv1_conv/kernel'));
      assert.notDeepEqual(va.get('head_logits/kernel'), vc.get('head_logits/kernel'));
      [a, b, c].forEach(disposeModelParts);
    });

    it('upsamples inside preprocess when inputSize > 32: [N,64,64,3] in [-1, 1], features 16x16', async () => {
      const parts = await buildModel(modelSpec({ inputSize: 64 }), 0);
      assert.deepEqual(parts.preprocess, { scale: 1 / 127.5, offset: -1, upsample: 2 });
      const x = preprocess(parts, raw);
      assert.deepEqual(x.shape, [2, 64, 64, 3]);
      const [lo, hi] = [x.min().dataSync()[0], x.max().dataSync()[0]];
      assert.ok(lo >= -1 && hi <= 1 && hi - lo > 1.5, `range [${lo}, ${hi}]`);
      const edges = preprocess(parts, tf.stack([tf.zeros([32, 32, 3]), tf.fill([32, 32, 3], 255)]) as tf.Tensor4D);
      assert.deepEqual(Array.from(edges.max([1, 2, 3]).dataSync()), [-1, 1]);
      assert.deepEqual(parts.backbone.outputs[0].shape, [null, 16, 16, 64]);
      tf.dispose([x, edges]);
      disposeModelParts(parts);
    });

    it('preprocess rejects anything but [N,32,32,3]', async () => {
      const parts = await buildModel(modelSpec({}), 0);
      const wrong = tf.zeros([1, 28, 28, 3]) as tf.Tensor4D;
      assert.throws(() => preprocess(parts, wrong), /expected raw images \[N,32,32,3\], got \[1,28,28,3\]/);
      wrong.dispose();
      disposeModelParts(parts);
    });

    it('leaves no tensors behind once the parts are disposed', async () => {
      const before = tf.memory().numTensors;
      const parts = await buildModel(modelSpec({ architecture: 'vgg_small', head: 'seed' }), 0);
      logits(parts, raw).dispose();
      disposeModelParts(parts);
      assert.equal(tf.memory().numTensors, before);
    });
  });

  describe('spec errors', () => {
    it('inputSize must be a positive multiple of 32', async () => {
      for (const inputSize of [40, 0, 16, 32.5]) {
        await rejectsConfig(buildModel(modelSpec({ inputSize }), 0), 'model.inputSize', new RegExp(`multiple of 32.*got ${inputSize}`));
      }
    });

    it('an unknown architecture lists the valid names', async () => {
      const spec = modelSpec({ architecture: 'resnet50' as never });
      await rejectsConfig(buildModel(spec, 0), 'model.architecture',
        /unknown architecture 'resnet50'; expected one of mobilenet_v1, resnet18, alexnet, vgg_small, small_cnn, layers/);
    });

    it('built-ins accept only pretrained: false and no cutAt', async () => {
      await rejectsConfig(buildModel(modelSpec({ architecture: 'resnet18', pretrained: true }), 0), 'model.pretrained',
        /'resnet18' has no pretrained weights.*expected false, got true/);
      await rejectsConfig(buildModel(modelSpec({ cutAt: 'block1_pool' }), 0), 'model.cutAt', /only for 'mobilenet_v1' and 'layers'/);
    });

    it("'layers' needs a path", async () => {
      await rejectsConfig(buildModel(modelSpec({ architecture: 'layers' }), 0), 'model.path', /required for architecture 'layers'/);
    });
  });

  describe("'layers': any TF.js layers model", () => {
    let anySize: string;
    let fixedSize: string;
    let source: tf.LayersModel;
    before(async () => {
      source = tinyModel({ prefix: 'zoo_' });
      anySize = path.join(tmp, 'any-size');
      await saveLayersModel(source, anySize);
      fixedSize = path.join(tmp, 'fixed-size');
      const fixed = tinyModel({ side: 32, prefix: 'fixed_' });
      await saveLayersModel(fixed, fixedSize);
      fixed.dispose();
    });
    after(() => source.dispose());

    it('cuts at cutAt, loads the pretrained weights, and puts the head on the cut features', async () => {
      const before = tf.memory().numTensors;
      const parts = await buildModel(modelSpec({ architecture: 'layers', path: anySize, cutAt: 'zoo_relu', pretrained: true, head: 'seed' }), 0);
      assert.deepEqual(parts.backbone.layers.map((l) => l.name), ['zoo_input', 'zoo_conv', 'zoo_bn', 'zoo_relu']);
      assert.deepEqual(parts.backbone.outputs[0].shape, [null, null, null, 4]);
      assert.deepEqual(variableValues(parts.backbone.weights).get('zoo_conv/kernel'), variableValues(source.weights).get('zoo_conv/kernel'));
      const out = logits(parts, raw);
      assert.deepEqual(out.shape, [2, 10]);
      out.dispose();
      disposeModelParts(parts);
      assert.equal(tf.memory().numTensors, before, 'the layers after the cut are released too');
    });

    it('without cutAt the whole model is the backbone; 2-D features get a head without pooling', async () => {
      const parts = await buildModel(modelSpec({ architecture: 'layers', path: anySize, pretrained: true }), 0);
      assert.deepEqual(parts.backbone.outputs[0].shape, [null, 5]);
      assert.deepEqual(parts.head.layers.map((l) => l.name), ['head_input', 'head_logits']);
      disposeModelParts(parts);
    });

    it('pretrained: false re-initialises the same topology, reproducibly', async () => {
      const spec = modelSpec({ architecture: 'layers', path: anySize, cutAt: 'zoo_relu', pretrained: false });
      const a = await buildModel(spec, 3);
      const b = await buildModel(spec, 3);
      const kernel = (m: tf.LayersModel): Float32Array | undefined => variableValues(m.weights).get('zoo_conv/kernel');
      assert.deepEqual(kernel(a.backbone), kernel(b.backbone));
      assert.notDeepEqual(kernel(a.backbone), kernel(source));
      [a, b].forEach(disposeModelParts);
    });

    it('an unknown cutAt lists valid layer names', async () => {
      const spec = modelSpec({ architecture: 'layers', path: anySize, cutAt: 'zoo_nope', pretrained: true });
      await assert.rejects(buildModel(spec, 0), (err: unknown) => {
        assert.ok(err instanceof LayerNotFoundError);
        assert.equal(err.layerName, 'zoo_nope');
        assert.deepEqual(err.validNames, ['zoo_input', 'zoo_conv', 'zoo_bn', 'zoo_relu', 'zoo_gap', 'zoo_dense']);
        assert.match(err.message, /has no layer 'zoo_nope' \(6 layers: zoo_input, zoo_conv, .*zoo_dense\)/);
        return true;
      });
    });

    it('a model with a fixed input size must match inputSize', async () => {
      await rejectsConfig(buildModel(modelSpec({ architecture: 'layers', path: fixedSize, inputSize: 64 }), 0), 'model.inputSize',
        /the backbone takes 32x32 inputs, got inputSize 64/);
      const ok = await buildModel(modelSpec({ architecture: 'layers', path: fixedSize, inputSize: 32 }), 0);
      disposeModelParts(ok);
    });

    it('a loaded model whose weight names clash with the head is refused', async () => {
      const dir = path.join(tmp, 'clash');
      const clash = tinyModel({ prefix: 'head_' }); // has head_dense/kernel, like the 'seed' head
      await saveLayersModel(clash, dir);
      clash.dispose();
      const before = tf.memory().numTensors;
      await assert.rejects(buildModel(modelSpec({ architecture: 'layers', path: dir, head: 'seed', pretrained: true }), 0),
        (err: unknown) => err instanceof ModelBuildError && /weight name 'head_dense\/kernel' occurs in both/.test(err.message));
      assert.equal(tf.memory().numTensors, before, 'a failed build releases what it built');
    });

    it('a missing model file is a ModelLoadError', async () => {
      await assert.rejects(buildModel(modelSpec({ architecture: 'layers', path: path.join(tmp, 'none') }), 0),
        (err: unknown) => err instanceof ModelLoadError && err.reason === 'not-found');
    });
  });

  describe('variable names', () => {
    it('original names are stable and unique per model; tfjs names are unique per process', async () => {
      const a = await buildModel(modelSpec({ head: 'seed' }), 0);
      const b = await buildModel(modelSpec({ head: 'seed' }), 0);
      const va = namedVariables(a);
      const vb = namedVariables(b);
      const original = (v: { backbone: tf.LayerVariable[]; head: tf.LayerVariable[] }): string[] =>
        [...v.backbone, ...v.head].map((x) => x.originalName);
      assert.deepEqual(original(va), original(vb), 'same names, same order in every build');
      assert.equal(new Set(original(va)).size, original(va).length);
      assert.deepEqual(va.head.map((v) => v.originalName), [
        'head_bn1/gamma', 'head_bn1/beta', 'head_bn1/moving_mean', 'head_bn1/moving_variance', 'head_dense/kernel', 'head_dense/bias',
        'head_bn2/gamma', 'head_bn2/beta', 'head_bn2/moving_mean', 'head_bn2/moving_variance', 'head_logits/kernel', 'head_logits/bias',
      ]);
      assert.equal(va.backbone[0].originalName, 'block1_conv1_conv/kernel');
      const all = [...va.backbone, ...va.head, ...vb.backbone, ...vb.head].map((v) => v.name);
      assert.equal(new Set(all).size, all.length, 'no two live variables share a tfjs name');
      assert.equal(va.backbone.length, a.backbone.weights.length);
      assert.deepEqual(va.head.filter((v) => v.trainable).length, 8);
      [a, b].forEach(disposeModelParts);
    });
  });

  describe('dropout seeding', () => {
    it('reseedDropout makes training-mode dropout reproducible, and fresh for a new seed', async () => {
      const parts = await buildModel(modelSpec({ head: 'seed', headUnits: 64, dropout: 0.5 }), 0);
      const feat = tf.tidy(() => parts.backbone.apply(preprocess(parts, raw), { training: false }) as tf.Tensor);
      const train = (seed: number): Float32Array => {
        reseedDropout(parts, new Rng(seed));
        return tf.tidy(() => (parts.head.apply(feat, { training: true }) as tf.Tensor).dataSync() as Float32Array);
      };
      assert.deepEqual(train(1), train(1));
      assert.notDeepEqual(train(1), train(2));
      feat.dispose();
      disposeModelParts(parts);
    });
  });

  describe("'mobilenet_v1'", () => {
    const skipWithoutShared = function (this: Mocha.Context): void {
      if (!fs.existsSync(SHARED_MOBILENET_JSON)) this.skip(); // no shared MobileNet on this machine
    };

    it('locates the model: spec.path, then the env variable, then the shared folder, then the public URL', () => {
      assert.deepEqual(locateMobilenet('/x/model.json', { env: { SHARDWISE_MOBILENET_PATH: '/y' } }), { location: '/x/model.json', source: 'spec' });
      assert.deepEqual(locateMobilenet(undefined, { env: { SHARDWISE_MOBILENET_PATH: '/y' } }), { location: '/y', source: 'env' });
      assert.deepEqual(locateMobilenet(undefined, { env: {}, sharedDir: tmp }), { location: MOBILENET_V1_URL, source: 'url' });
      const shared = path.join(tmp, 'shared');
      fs.mkdirSync(path.join(shared, 'models', 'mobilenet_v1_imagenet_conv_pw_12'), { recursive: true });
      fs.writeFileSync(path.join(shared, 'models', 'mobilenet_v1_imagenet_conv_pw_12', 'model.json'), '{}');
      assert.equal(locateMobilenet(undefined, { env: {}, sharedDir: shared }).source, 'shared');
    });

    it('pretrained: the ImageNet weights, cut after conv_pw_12_relu, 1024 channels at 1/32 of inputSize', async function () {
      skipWithoutShared.call(this);
      const before = tf.memory().numTensors;
      const parts = await buildModel(modelSpec({ architecture: 'mobilenet_v1', pretrained: true, inputSize: 64 }), 0, { env: {} });
      assert.equal(parts.backbone.layers.at(-1)?.name, 'conv_pw_12_relu');
      assert.equal(parts.backbone.countParams(), 2_162_880);
      const bytes = fs.readFileSync(path.join(path.dirname(SHARED_MOBILENET_JSON), 'weights.bin'));
      const kernel = variableValues(parts.backbone.weights).get('conv1/kernel')!;
      assert.deepEqual(Array.from(kernel.slice(0, 8)), Array.from(new Float32Array(bytes.buffer, bytes.byteOffset, 8)));
      const feat = tf.tidy(() => parts.backbone.apply(preprocess(parts, raw), { training: false }) as tf.Tensor);
      assert.deepEqual(feat.shape, [2, 2, 2, 1024]);
      feat.dispose();
      disposeModelParts(parts);
      assert.equal(tf.memory().numTensors, before);
    });

    it('pretrained: false keeps the topology with fresh seeded weights', async function () {
      skipWithoutShared.call(this);
      const spec = modelSpec({ architecture: 'mobilenet_v1', pretrained: false });
      const a = await buildModel(spec, 1, { env: {} });
      const b = await buildModel(spec, 1, { env: {} });
      const pretrained = new Float32Array(fs.readFileSync(path.join(path.dirname(SHARED_MOBILENET_JSON), 'weights.bin')).buffer.slice(0, 32));
      const ka = variableValues(a.backbone.weights).get('conv1/kernel')!;
      assert.deepEqual(ka, variableValues(b.backbone.weights).get('conv1/kernel'));
      assert.notDeepEqual(Array.from(ka.slice(0, 8)), Array.from(pretrained));
      assert.equal(a.backbone.countParams(), 2_162_880);
      [a, b].forEach(disposeModelParts);
    });

    it('a full classifier fixed at 224x224 (like the public URL) is cut, resized to inputSize, and its classifier freed', async function () {
      skipWithoutShared.call(this);
      const dir = writeFullMobilenet(path.join(tmp, 'full-mobilenet'));
      const before = tf.memory().numTensors;
      const parts = await buildModel(modelSpec({ architecture: 'mobilenet_v1', path: dir, pretrained: true, inputSize: 64 }), 0);
      assert.equal(parts.backbone.layers.at(-1)?.name, 'conv_pw_12_relu');
      assert.deepEqual(parts.backbone.inputs[0].shape, [null, null, null, 3]);
      assert.ok(!parts.backbone.weights.some((w) => w.originalName.startsWith('preds')));
      const out = logits(parts, raw);
      assert.deepEqual(out.shape, [2, 10]);
      out.dispose();
      disposeModelParts(parts);
      assert.equal(tf.memory().numTensors, before, 'the cut-off classifier is released too');
    });

    it('loads from a URL given by the env variable, and a failed fetch is a ModelLoadError naming the URL', async function () {
      skipWithoutShared.call(this);
      const server = await serveDir(path.dirname(SHARED_MOBILENET_JSON));
      try {
        const env = { SHARDWISE_MOBILENET_PATH: `${server.url}model.json` };
        const parts = await buildModel(modelSpec({ architecture: 'mobilenet_v1', pretrained: true }), 0, { env });
        assert.deepEqual(server.requests, ['/model.json', '/weights.bin']);
        disposeModelParts(parts);
        const bad = { SHARDWISE_MOBILENET_PATH: `${server.url}nope/model.json` };
        await assert.rejects(buildModel(modelSpec({ architecture: 'mobilenet_v1', pretrained: true }), 0, { env: bad }),
          (err: unknown) => err instanceof ModelLoadError && err.reason === 'http'
            && err.path === bad.SHARDWISE_MOBILENET_PATH && /cannot load MobileNet v1 \(from env\)/.test(err.message));
      } finally {
        await server.close();
      }
    });
  });
});

describe('model fingerprint and weights hash', () => {
  before(async () => {
    await initBackend({ prefer: 'wasm' });
  });

  it('agree for the same spec and seed, and tell different models and values apart', async () => {
    const spec = (over: string[] = []) => parseJobSpec('model: {architecture: small_cnn}\ntraining: {epochs: 1}\noptimizer: {learningRate: 1}', '<t>', over).model;
    const a = await buildModel(spec(), 1);
    const b = await buildModel(spec(), 1);
    const c = await buildModel(spec(), 2);
    const d = await buildModel(spec(['model.head=seed']), 1);
    try {
      assert.equal(modelFingerprint(a), modelFingerprint(b));
      assert.equal(weightsHash(a), weightsHash(b));
      assert.equal(modelFingerprint(a), modelFingerprint(c), 'same structure, other seed');
      assert.notEqual(weightsHash(a), weightsHash(c));
      assert.notEqual(modelFingerprint(a), modelFingerprint(d));
      const v = namedVariables(b).head[0];
      v.write(tf.tidy(() => tf.add(v.read(), 1e-6)));
      assert.notEqual(weightsHash(a), weightsHash(b), 'a tiny change changes the hash');
    } finally {
      [a, b, c, d].forEach(disposeModelParts);
    }
  });

  it('hashes the values read in place on wasm as it hashes copies of them', async () => {
    const parts = await buildModel(parseJobSpec('model: {architecture: small_cnn}\ntraining: {epochs: 1}\noptimizer: {learningRate: 1}').model, 3);
    try {
      assert.equal(tf.getBackend(), 'wasm');
      const copies = createHash('sha256');
      for (const v of [...namedVariables(parts).backbone, ...namedVariables(parts).head]) {
        const values = v.read().dataSync() as Float32Array;
        copies.update(v.originalName);
        copies.update(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
      }
      assert.equal(weightsHash(parts), `sha256:${copies.digest('hex').slice(0, 32)}`);
    } finally {
      disposeModelParts(parts);
    }
  });
});
