import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../common/compute';
import {
  buildModel, disposeModelParts, EXPORT_INPUT_NAME, type ExportMetadata, exportModel, loadLayersModelFrom, type ModelParts,
  preprocess, saveLayersModel,
} from '../common/models';
import { makeTempDir, maxAbsDiff, modelSpec, removeDir, SHARED_MOBILENET_JSON } from './model-fixtures';

/** What the trainer's evaluation computes: preprocess + backbone + head in inference mode, then softmax. */
function referenceLogits(parts: ModelParts, raw: tf.Tensor4D): tf.Tensor2D {
  return tf.tidy(() => {
    const feat = parts.backbone.apply(preprocess(parts, raw), { training: false }) as tf.Tensor;
    return parts.head.apply(feat, { training: false }) as tf.Tensor2D;
  });
}

/** Moves the BatchNorm statistics off their 0/1 initial values so inference mode is actually exercised. */
function perturbBatchNorm(parts: ModelParts): void {
  tf.tidy(() => {
    for (const v of [...parts.backbone.weights, ...parts.head.weights]) {
      if (v.originalName.endsWith('moving_mean')) v.write(tf.fill(v.shape as number[], 0.05));
      if (v.originalName.endsWith('moving_variance')) v.write(tf.fill(v.shape as number[], 1.2));
    }
  });
}

describe('models: self-contained export', () => {
  let tmp: string;
  let raw: tf.Tensor4D;
  before(async () => {
    await initBackend({ prefer: 'wasm' });
    tmp = makeTempDir('export');
    raw = tf.randomUniform([3, 32, 32, 3], 0, 255, 'float32', 5) as tf.Tensor4D;
  });
  after(() => {
    raw.dispose();
    removeDir(tmp);
  });

  const cases = [
    { name: 'small_cnn, seed head, 32x32', spec: modelSpec({ head: 'seed' }), needsShared: false },
    { name: 'vgg_small, linear head, upsampled to 64x64', spec: modelSpec({ architecture: 'vgg_small', inputSize: 64 }), needsShared: false },
    { name: 'pretrained MobileNet v1, seed head, upsampled to 96x96',
      spec: modelSpec({ architecture: 'mobilenet_v1', pretrained: true, inputSize: 96, head: 'seed' }), needsShared: true },
  ];
  for (const c of cases) {
    it(`${c.name}: save + load gives the trainer's predictions within 1e-5`, async function () {
      if (c.needsShared && !fs.existsSync(SHARED_MOBILENET_JSON)) this.skip(); // shared MobileNet absent
      const parts = await buildModel(c.spec, 0, { env: {} });
      perturbBatchNorm(parts);
      const exported = exportModel(parts);
      assert.deepEqual(exported.inputs[0].shape, [null, 32, 32, 3]);
      assert.equal(exported.inputLayers[0].name, EXPORT_INPUT_NAME);
      const dir = path.join(tmp, c.spec.architecture);
      await saveLayersModel(exported, dir);

      const loaded = await loadLayersModelFrom(dir);
      assert.deepEqual(loaded.inputs[0].shape, [null, 32, 32, 3]);
      assert.deepEqual(loaded.outputs[0].shape, [null, c.spec.numClasses]);
      const wantLogits = referenceLogits(parts, raw);
      const want = tf.softmax(wantLogits);
      const got = loaded.predict(raw) as tf.Tensor2D;
      const diff = maxAbsDiff(got, want);
      assert.ok(diff <= 1e-5, `probabilities: max |difference| ${diff}`);
      // Logits too: probabilities of a fresh head are all near 1/numClasses and hide feature differences.
      const logitsModel = tf.model({ inputs: loaded.inputs, outputs: loaded.getLayer('probabilities').input as tf.SymbolicTensor });
      const gotLogits = logitsModel.predict(raw) as tf.Tensor2D;
      const logitDiff = maxAbsDiff(gotLogits, wantLogits);
      assert.ok(logitDiff <= 1e-5, `logits: max |difference| ${logitDiff}`);
      const sums = Array.from(got.sum(1).dataSync());
      sums.forEach((s) => assert.ok(Math.abs(s - 1) < 1e-5, `probabilities sum to ${s}`));
      const metadata = loaded.getUserDefinedMetadata() as ExportMetadata;
      assert.deepEqual(metadata.shardwise, {
        architecture: c.spec.architecture, inputSize: c.spec.inputSize, numClasses: c.spec.numClasses,
        preprocess: parts.preprocess, output: 'probabilities',
      });
      tf.dispose([want, got, wantLogits, gotLogits]);
      loaded.dispose();
      disposeModelParts(parts);
    });
  }

  it('runs Dropout and BatchNorm in inference mode (predict is deterministic)', async () => {
    const parts = await buildModel(modelSpec({ head: 'seed', dropout: 0.9 }), 0);
    const exported = exportModel(parts);
    const a = exported.predict(raw) as tf.Tensor;
    const b = exported.predict(raw) as tf.Tensor;
    assert.equal(maxAbsDiff(a, b), 0);
    tf.dispose([a, b]);
    disposeModelParts(parts);
  });

  it('shares weights with the parts: training the head changes what the export predicts', async () => {
    const initial = tf.memory().numTensors;
    const parts = await buildModel(modelSpec({}), 0);
    const exported = exportModel(parts);
    const before = exported.predict(raw) as tf.Tensor;
    const bias = parts.head.getLayer('head_logits').weights[1];
    tf.tidy(() => {
      bias.write(tf.tensor1d([5, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
    });
    const after = exported.predict(raw) as tf.Tensor;
    assert.ok(maxAbsDiff(before, after) > 0.1);
    tf.dispose([before, after]);
    disposeModelParts(parts);
    assert.equal(tf.memory().numTensors, initial, 'disposing the parts also frees what the export references');
  });
});
