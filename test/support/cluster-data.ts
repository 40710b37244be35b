/**
 * Inputs of the distributed tests: a small CIFAR-format dataset whose classes are learnable, and the job
 * they train. One spec serves every test, so one single-process reference serves them all.
 */
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { encodeCifar10Records, loadTrainVal } from '../../common/data';
import { parseJobSpec } from '../../common/job';
import { stepsPerEpoch } from '../../common/training';
import { signalImages } from './images';

export { signalImages };


/** Writes `count` signal images as `data_batch_1.bin` (the official binary format) into `dir`. */
export function writeSignalCifar(dir: string, count: number, seed: number): void {
  writeFileSync(path.join(dir, 'data_batch_1.bin'), encodeCifar10Records(signalImages(count, seed)));
}

/** Images in the tests' dataset: about 144 training + 48 validation with valFraction 0.25 (stratified). */
export const DATASET_IMAGES = 192;
/** Epochs of the tests' job. */
export const EPOCHS = 3;
/** Global batch of the tests' job. */
export const BATCH_SIZE = 24;

/** How the tests' job cuts the dataset in `dataDir`: what exactly-once counts, and the step count. */
export async function datasetShape(dataDir: string): Promise<{ trainImages: number; stepsPerEpoch: number }> {
  const spec = parseJobSpec(testJobYaml('shape'));
  const { train } = await loadTrainVal({ ...spec.data, dir: dataDir }, spec.seed);
  return { trainImages: train.count, stepsPerEpoch: stepsPerEpoch(train.count, BATCH_SIZE) };
}

/**
 * The tests' job: the small CNN (BatchNorm in every block) with the `seed` head (dropout), augmentation
 * on, Adam; epoch 0 frozen, then unfrozen with a smaller rate (a freeze, an unfreeze and a learning-rate
 * change inside 18 steps). A global batch of 24 in micro-batches of 8: three micro-batches per step, so
 * 1, 2 and 3 workers all share real work. `distributed` lines tune failure detection for tests; `training`
 * changes the global batch (32: four micro-batches per step, for the forced splits) or the epochs.
 */
export function testJobYaml(name: string, distributed: Record<string, number | string | boolean> = {}, training: { batchSize?: number; epochs?: number } = {}): string {
  const dist: Record<string, number | string | boolean> = { heartbeatIntervalMs: 200, leaseMs: 3000, hashEverySteps: 1, ...distributed };
  // The spec requires minWorkers <= desiredWorkers (default 2).
  if (Number(dist.minWorkers ?? 1) > Number(dist.desiredWorkers ?? 2)) dist.desiredWorkers = dist.minWorkers;
  return [
    `name: ${name}`,
    'seed: 7',
    'data: { valFraction: 0.25 }',
    'model: { architecture: small_cnn, head: seed, headUnits: 16, dropout: 0.3 }',
    `training: { epochs: ${training.epochs ?? EPOCHS}, batchSize: ${training.batchSize ?? BATCH_SIZE}, microBatchSize: 8, evalBatchSize: 16 }`,
    'optimizer: { type: adam, learningRate: 0.003 }',
    'freeze: { backboneEpochs: 1, unfreezeLearningRate: 0.001 }',
    `distributed: { ${Object.entries(dist).map(([k, v]) => `${k}: ${v}`).join(', ')} }`,
    '',
  ].join('\n');
}
