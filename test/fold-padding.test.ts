import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../common/compute';
import { isOurWasmKernel } from '../common/compute/wasm-kernel-registry';
import { foldZeroPadding } from '../common/models';
import { Rng } from '../common/random';
import { bitsEqual } from './support/floats';

// ZeroPadding2D + 'valid' DepthwiseConv2D pairs folded into one explicitly padded depthwise convolution
// (common/models/fold-padding.ts): a training step's output and every gradient are the bits of the unfolded
// model's, on wasm (our depthwise kernels) and on the cpu backend; no PadV2 or Slice runs for the folded
// pairs; inference (which disposes intermediates) still works; the serialised topology does not change.

const quiet = { log: (): void => undefined };

/** Keras 2.1 MobileNet blocks in miniature: stride 1 and stride 2, each padding read by one depthwise layer. */
function miniMobilenet(seed: string): tf.LayersModel {
  const input = tf.input({ shape: [9, 9, 8] });
  let x = input as tf.SymbolicTensor;
  [1, 2, 1].forEach((stride, i) => {
    x = tf.layers.zeroPadding2d({ padding: [[1, 1], [1, 1]], name: `pad_${i}` }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.depthwiseConv2d({ kernelSize: 3, strides: stride, padding: 'valid', useBias: false, name: `dw_${i}` }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.batchNormalization({ name: `bn_${i}` }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.reLU({ maxValue: 6, name: `relu_${i}` }).apply(x) as tf.SymbolicTensor;
  });
  const model = tf.model({ inputs: input, outputs: x });
  const rng = new Rng(seed);
  model.setWeights(model.getWeights().map((w) => tf.tensor(Float32Array.from({ length: w.size }, () => rng.uniform(0.2, 1.5)), w.shape)));
  return model;
}

interface Step {
  y: Float32Array;
  grads: Float32Array[];
  kernels: string[];
}

/** One training-mode forward and backward (loss sum(y·w)) on seeded x: output, input and weight gradients. */
async function step(model: tf.LayersModel): Promise<Step> {
  const rng = new Rng('fold-padding:data');
  const x = tf.variable(tf.tensor4d(Float32Array.from({ length: 2 * 9 * 9 * 8 }, () => rng.uniform(-2, 2)), [2, 9, 9, 8]));
  const vars = [x, ...model.trainableWeights.map((w) => w.read() as tf.Variable)];
  let y: Float32Array = new Float32Array();
  let grads: tf.NamedTensorMap = {};
  try {
    const profile = await tf.profile(() => {
      grads = tf.variableGrads(() => {
        const out = model.apply(x, { training: true }) as tf.Tensor;
        y = out.dataSync() as Float32Array;
        const w = tf.tensor(Float32Array.from({ length: out.size }, (_, i) => Math.sin(i)), out.shape);
        return tf.sum(tf.mul(out, w)) as tf.Scalar;
      }, vars).grads;
    });
    return { y, grads: vars.map((v) => grads[v.name].dataSync() as Float32Array), kernels: profile.kernelNames };
  } finally {
    tf.dispose([x, ...Object.values(grads)]);
  }
}

describe('models: ZeroPadding2D folded into the depthwise convolution that reads it', () => {
  after(async () => {
    await initBackend({ prefer: 'wasm', ...quiet });
  });

  for (const backend of ['wasm', 'cpu'] as const) {
    it(`${backend}: a training step's output and gradients are the unfolded model's bits`, async () => {
      await initBackend({ prefer: backend, ...quiet });
      const [plain, folded] = [miniMobilenet('weights'), miniMobilenet('weights')];
      try {
        const topology = JSON.stringify(folded.toJSON(null, false));
        assert.equal(foldZeroPadding(folded), 3);
        assert.equal(foldZeroPadding(folded), 0, 'folding twice must change nothing');
        assert.equal(JSON.stringify(folded.toJSON(null, false)), topology, 'the serialised topology changed');
        const expected = await step(plain);
        const actual = await step(folded);
        assert.ok(expected.kernels.includes(tf.PadV2) && expected.kernels.includes(tf.Slice), 'the unfolded model must pad and crop');
        for (const k of [tf.PadV2, tf.Slice]) assert.ok(!actual.kernels.includes(k), `the folded model ran ${k}`);
        if (backend === 'wasm') assert.ok(isOurWasmKernel(tf.DepthwiseConv2dNativeBackpropInput), 'our depthwise kernels must be registered');
        assert.ok(bitsEqual(actual.y, expected.y), 'output differs');
        actual.grads.forEach((g, i) => assert.ok(bitsEqual(g, expected.grads[i]), `gradient ${i} differs`));
      } finally {
        plain.dispose();
        folded.dispose();
      }
    });
  }

  it('inference, which frees each intermediate after its last reader, gives the unfolded output', async () => {
    await initBackend({ prefer: 'wasm', ...quiet });
    const [plain, folded] = [miniMobilenet('inference'), miniMobilenet('inference')];
    foldZeroPadding(folded);
    const x = tf.tidy(() => tf.mul(tf.randomUniform([3, 9, 9, 8], -1, 1, 'float32', 3), 1));
    try {
      const before = tf.memory().numTensors;
      const [expected, actual] = [plain, folded].map((m) => tf.tidy(() => (m.predict(x) as tf.Tensor).dataSync() as Float32Array));
      assert.equal(tf.memory().numTensors, before, 'inference leaked tensors');
      assert.ok(bitsEqual(actual, expected), 'inference output differs');
    } finally {
      tf.dispose(x);
      plain.dispose();
      folded.dispose();
    }
  });

  it('leaves a padding read by anything but one valid depthwise convolution alone', async () => {
    await initBackend({ prefer: 'wasm', ...quiet });
    const input = tf.input({ shape: [6, 6, 4] });
    const padded = tf.layers.zeroPadding2d({ padding: 1 }).apply(input) as tf.SymbolicTensor;
    const same = tf.layers.depthwiseConv2d({ kernelSize: 3, padding: 'same' }).apply(padded) as tf.SymbolicTensor;
    const padded2 = tf.layers.zeroPadding2d({ padding: 1 }).apply(same) as tf.SymbolicTensor;
    const conv = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'valid' }).apply(padded2) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: [conv, padded2] });
    try {
      assert.equal(foldZeroPadding(model), 0);
    } finally {
      model.dispose();
    }
  });
});
