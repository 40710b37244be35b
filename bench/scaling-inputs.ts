import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { encodeCifar10Records, initBackend, Rng, saveLayersModel } from '../common';
import { loadBackbone } from './compute-mobilenet';

/** The shared folder beside the repository (real CIFAR-10 records, the ImageNet MobileNet). */
export const SHARED_DIR = path.resolve(__dirname, '../../shared');
const CIFAR_IMAGE_BYTES = 32 * 32 * 3;

/** Where the bench's jobs read their images and their MobileNet, and what those are, for the report. */
export interface BenchInputs {
  dataDir: string;
  dataSource: string;
  /** `model.path` of the MobileNet jobs. */
  mobilenetPath: string;
  modelSource: string;
}

/**
 * The real inputs when `sharedDir` has them (the model is then passed by path, so a `sharedDir` other
 * than the default means what it says); otherwise a generated CIFAR-format file of `images` random
 * images (speed does not depend on the pixels) and the MobileNet v1 topology built in code with random
 * weights, saved under `dir` (the same layers and shapes, hence the same cost per image).
 */
export async function prepareInputs(dir: string, images: number, sharedDir: string = SHARED_DIR): Promise<BenchInputs> {
  const sharedCifar = path.join(sharedDir, 'data', 'cifar10-subset');
  const sharedMobilenet = path.join(sharedDir, 'models', 'mobilenet_v1_imagenet_conv_pw_12', 'model.json');
  let dataDir = sharedCifar;
  let dataSource = `CIFAR-10 subset (${sharedCifar})`;
  if (!existsSync(path.join(sharedCifar, 'data_batch_1.bin'))) {
    dataDir = path.join(dir, 'cifar');
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(path.join(dataDir, 'data_batch_1.bin'), encodeCifar10Records(randomImages(images)));
    dataSource = `${images} generated random images (no ${sharedCifar})`;
  }
  if (existsSync(sharedMobilenet)) {
    return { dataDir, dataSource, mobilenetPath: sharedMobilenet, modelSource: `ImageNet weights (${sharedMobilenet})` };
  }
  await initBackend({ prefer: 'cpu' });
  const { model } = await loadBackbone(path.join(dir, 'no-shared-backbone'));
  const modelDir = path.join(dir, 'mobilenet');
  try {
    await saveLayersModel(model, modelDir);
  } finally {
    model.dispose();
  }
  return {
    dataDir,
    dataSource,
    mobilenetPath: path.join(modelDir, 'model.json'),
    modelSource: `MobileNet v1 topology built in code, random weights (no ${sharedMobilenet})`,
  };
}

function randomImages(count: number): { images: Uint8Array; labels: Uint8Array; count: number } {
  const rng = new Rng('bench-scaling-images');
  const images = new Uint8Array(count * CIFAR_IMAGE_BYTES);
  for (let i = 0; i < images.length; i++) images[i] = rng.int(256);
  const labels = Uint8Array.from({ length: count }, (_, n) => n % 10);
  return { images, labels, count };
}

/**
 * The scaling job: the MobileNet v1 backbone trained end to end (never frozen) at 32x32 with a linear
 * head, global batch 32 in micro-batches of 16, augmentation on (the defaults), one epoch.
 */
export function scalingJobYaml(inputs: BenchInputs, limit: number): string {
  return [
    'name: bench-scaling',
    'seed: 0',
    `data: { valFraction: 0.1, limit: ${limit} }`,
    `model: { architecture: mobilenet_v1, pretrained: true, inputSize: 32, head: linear, path: ${JSON.stringify(inputs.mobilenetPath)} }`,
    'training: { epochs: 1, batchSize: 32, microBatchSize: 16 }',
    'optimizer: { type: adam, learningRate: 0.0003 }',
    'freeze: { backboneEpochs: 0 }',
    'distributed: { desiredWorkers: 2 }',
    '',
  ].join('\n');
}

/**
 * The overhead job: next to nothing to compute, so the step time is the coordinator's and the
 * protocol's. The small CNN stays frozen the whole job (forward only, in inference mode) under a linear
 * head of 650 weights: a gradient of 650 floats and an update of the same. Global batch 2 in
 * micro-batches of 1, no augmentation.
 */
export function overheadJobYaml(limit: number): string {
  return [
    'name: bench-overhead',
    'seed: 0',
    `data: { valFraction: 0.1, limit: ${limit}, augment: { cropPadding: 0, horizontalFlip: false, brightness: 0, ` +
      'contrast: 0, saturation: 0, hue: 0, rotationDeg: 0 } }',
    'model: { architecture: small_cnn, pretrained: false, inputSize: 32, head: linear }',
    'training: { epochs: 1, batchSize: 2, microBatchSize: 1 }',
    'optimizer: { type: adam, learningRate: 0.001 }',
    'freeze: { backboneEpochs: 1 }',
    'distributed: { desiredWorkers: 2 }',
    '',
  ].join('\n');
}
