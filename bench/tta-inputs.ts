import { createHash } from 'node:crypto';
import { existsSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { loadTrainVal, parseJobSpec } from '../common';
import { SHARED_DIR } from './scaling-inputs';

/** The recipe's epochs: the backbone frozen for the first FROZEN_EPOCHS, then trained. */
export const TTA_EPOCHS = 8;
export const TTA_FROZEN_EPOCHS = 3;
/** Global batch: 32 per process on either side, 2 processes. */
export const TTA_BATCH = 64;
export const TTA_SIZE = 64;
export const TTA_WORKERS = 2;

/** How many epochs a run trains, the first `frozen` of them with the backbone frozen. */
export interface TtaSchedule {
  epochs: number;
  frozen: number;
}

/** The recipe's schedule, as the PyTorch peer runs it. */
export const TTA_SCHEDULE: TtaSchedule = { epochs: TTA_EPOCHS, frozen: TTA_FROZEN_EPOCHS };

/** One epoch of either side: 1-based, whether the backbone was frozen, held-out top-1 (a fraction), its time. */
export interface EpochTime {
  epoch: number;
  frozen: boolean;
  top1: number;
  seconds: number;
}

/** The folder the PyTorch peer reads its images from (it takes no data flag). */
export const PEER_DATA_DIR = path.join(SHARED_DIR, 'data', 'cifar10-subset');
export const PEER_SCRIPT = path.join(SHARED_DIR, 'peers', 'torch_finetune.py');
export const MOBILENET_MODEL = path.join(SHARED_DIR, 'models', 'mobilenet_v1_imagenet_conv_pw_12', 'model.json');

/**
 * The time-to-accuracy recipe as a shardwise job (the issue's, and torch_finetune.py's): the ImageNet
 * MobileNet v1 at 64x64 with a linear head, 3 frozen then 5 unfrozen epochs, global batch 64, Adam at 1e-3
 * for the head and 1e-4 for the backbone (base rate 1e-4, head multiplier 10, also while frozen), weight
 * decay 1e-4, random crop (pad 4) and flip only, 10% held out. `microBatch` is the span BatchNorm
 * normalises over: 32, the peer's per-process batch, unless the bench is told otherwise; `compression` the
 * data plane's frames (fp16 for its accuracy bound against float32, prescaled by `prescale`); `schedule`
 * shortens the epochs for bench-fp16.
 */
export function ttaJobYaml(microBatch: number, compression: 'none' | 'fp16' = 'none', schedule: TtaSchedule = TTA_SCHEDULE, prescale = 1): string {
  const prescaled = compression === 'fp16' ? `, prescaleFactor: ${prescale}` : '';
  return [
    'name: bench-tta',
    'seed: 0',
    'data: { valFraction: 0.1, augment: { cropPadding: 4, horizontalFlip: true, brightness: 0, contrast: 0, saturation: 0, ' +
      'hue: 0, rotationDeg: 0 } }',
    `model: { architecture: mobilenet_v1, pretrained: true, inputSize: ${TTA_SIZE}, head: linear, path: ${JSON.stringify(MOBILENET_MODEL)} }`,
    `training: { epochs: ${schedule.epochs}, batchSize: ${TTA_BATCH}, microBatchSize: ${microBatch} }`,
    'optimizer: { type: adam, learningRate: 0.0001, weightDecay: 0.0001 }',
    'paramGroups: { backbone: { lrMultiplier: 1 }, head: { lrMultiplier: 10 } }',
    `freeze: { backboneEpochs: ${schedule.frozen} }`,
    `distributed: { desiredWorkers: ${TTA_WORKERS}, minWorkers: ${TTA_WORKERS}, compression: ${compression}${prescaled} }`,
    '',
  ].join('\n');
}

function digestOfBatches(dir: string): string {
  const hash = createHash('sha256');
  for (let i = 1; i <= 5; i++) {
    const file = path.join(dir, `data_batch_${i}.bin`);
    if (existsSync(file)) hash.update(readFileSync(file));
  }
  return hash.digest('hex');
}

/**
 * Checks that `dataDir` holds the images the peer reads (the same folder, or a copy of it): both sides
 * must hold out the same images, and the holdout file indexes into the peer's concatenated batches.
 * @throws Error naming both folders when they differ.
 */
export function checkSameImagesAsPeer(dataDir: string): void {
  if (!existsSync(path.join(PEER_DATA_DIR, 'data_batch_1.bin'))) {
    throw new Error(`bench-tta needs the shared CIFAR-10 subset the PyTorch peer reads, expected ${PEER_DATA_DIR}/data_batch_1.bin`);
  }
  if (realpathSync(dataDir) === realpathSync(PEER_DATA_DIR)) return;
  if (digestOfBatches(dataDir) !== digestOfBatches(PEER_DATA_DIR)) {
    throw new Error(`CIFAR10_DIR=${dataDir} holds other images than the peer's ${PEER_DATA_DIR}: expected the same ` +
      'data_batch_1..5.bin, so that both hold out the same images');
  }
}

/**
 * Writes shardwise's validation indices for the job (the stratified split of `data.valFraction` with the
 * job's seed, indices into the concatenated training batches) as a JSON list to `file`, the peer's
 * `--holdout-file`. Returns the numbers of training and validation images.
 */
export async function writeHoldoutFile(jobYaml: string, dataDir: string, file: string): Promise<{ train: number; val: number }> {
  const spec = parseJobSpec(jobYaml, 'bench-tta job');
  const split = await loadTrainVal({ ...spec.data, dir: dataDir }, spec.seed);
  writeFileSync(file, JSON.stringify([...split.valIndices]));
  return { train: split.train.count, val: split.val.count };
}
