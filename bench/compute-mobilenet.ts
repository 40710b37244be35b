import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { foldZeroPadding } from '../common';

/** Where the shared ImageNet MobileNet v1 backbone (cut after conv_pw_12_relu) lives. */
export const SHARED_BACKBONE_DIR = path.resolve(__dirname, '../../shared/models/mobilenet_v1_imagenet_conv_pw_12');

/** How the backbone was obtained, for the benchmark's report. */
export type BackboneSource = 'shared weights' | 'shared topology, random weights' | 'built in code, random weights';

interface KerasModelJson {
  modelTopology: tf.io.ModelJSON['modelTopology'];
  weightsManifest: tf.io.WeightsManifestConfig;
}

/**
 * Loads the TF.js layers model in `dir` without tfjs-node: model.json and its weight files are
 * read with fs and handed to tf.io.fromMemory. Without weight files, the topology is built with
 * fresh initial weights (same architecture, same speed).
 */
async function loadFromDisk(dir: string): Promise<{ model: tf.LayersModel; source: BackboneSource }> {
  const json = JSON.parse(readFileSync(path.join(dir, 'model.json'), 'utf8')) as KerasModelJson;
  const files = json.weightsManifest.flatMap((group) => group.paths.map((p) => path.join(dir, p)));
  if (!files.every((f) => existsSync(f))) {
    const model = (await tf.models.modelFromJSON({ modelTopology: json.modelTopology })) as tf.LayersModel;
    return { model, source: 'shared topology, random weights' };
  }
  const buffers = files.map((f) => readFileSync(f));
  const weightData = new Uint8Array(Buffer.concat(buffers)).buffer;
  const weightSpecs = json.weightsManifest.flatMap((group) => group.weights);
  const model = await tf.loadLayersModel(tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs, weightData }));
  return { model, source: 'shared weights' };
}

/** Keras MobileNet v1 (alpha 1, Keras 2.1 layout: explicit ZeroPadding before every 3x3) up to conv_pw_12. */
function buildBackbone(): tf.LayersModel {
  const input = tf.input({ shape: [null, null, 3] as unknown as number[] });
  const bnRelu = (x: tf.SymbolicTensor, name: string) =>
    tf.layers.reLU({ maxValue: 6, name: `${name}_relu` }).apply(
      tf.layers.batchNormalization({ momentum: 0.99, epsilon: 1e-3, name: `${name}_bn` }).apply(x),
    ) as tf.SymbolicTensor;
  const pad = (x: tf.SymbolicTensor, name: string) =>
    tf.layers.zeroPadding2d({ padding: [[1, 1], [1, 1]], name }).apply(x) as tf.SymbolicTensor;
  let x = pad(input, 'conv1_pad');
  x = tf.layers.conv2d({ filters: 32, kernelSize: 3, strides: 2, padding: 'valid', useBias: false, name: 'conv1' }).apply(x) as tf.SymbolicTensor;
  x = bnRelu(x, 'conv1');
  const blocks: [number, number][] = [[64, 1], [128, 2], [128, 1], [256, 2], [256, 1], [512, 2], [512, 1], [512, 1], [512, 1], [512, 1], [512, 1], [1024, 2]];
  blocks.forEach(([filters, stride], i) => {
    const id = i + 1;
    x = pad(x, `conv_pad_${id}`);
    x = tf.layers.depthwiseConv2d({ kernelSize: 3, strides: stride, padding: 'valid', useBias: false, name: `conv_dw_${id}` }).apply(x) as tf.SymbolicTensor;
    x = bnRelu(x, `conv_dw_${id}`);
    x = tf.layers.conv2d({ filters, kernelSize: 1, padding: 'same', useBias: false, name: `conv_pw_${id}` }).apply(x) as tf.SymbolicTensor;
    x = bnRelu(x, `conv_pw_${id}`);
  });
  return tf.model({ inputs: input, outputs: x, name: 'mobilenet_v1_conv_pw_12' });
}

/**
 * The MobileNet v1 backbone: the shared ImageNet weights when present, else the same
 * architecture with random weights (from the shared topology, or built in code). Its paddings are
 * folded into its depthwise convolutions, as the trainers' model zoo folds them (common/models).
 */
export async function loadBackbone(dir: string = SHARED_BACKBONE_DIR): Promise<{ model: tf.LayersModel; source: BackboneSource }> {
  const loaded = existsSync(path.join(dir, 'model.json')) ? await loadFromDisk(dir) : { model: buildBackbone(), source: 'built in code, random weights' as const };
  foldZeroPadding(loaded.model);
  return loaded;
}

/** Backbone + global average pooling + a dense head producing `classes` logits. */
export function withClassifierHead(backbone: tf.LayersModel, classes: number): tf.LayersModel {
  const pooled = tf.layers.globalAveragePooling2d({}).apply(backbone.outputs[0]);
  const logits = tf.layers.dense({ units: classes, name: 'logits' }).apply(pooled) as tf.SymbolicTensor;
  return tf.model({ inputs: backbone.inputs, outputs: logits });
}
