/**
 * CIFAR-10 data pipeline: read the official binary batches, download and cache the archive, augment
 * images deterministically per sample, and cut splits, epoch orders and batches.
 */
export {
  CIFAR10_CHANNELS,
  CIFAR10_CLASSES,
  CIFAR10_IMAGE_BYTES,
  CIFAR10_IMAGE_SIZE,
  CIFAR10_RECORD_BYTES,
  CIFAR10_TEST_FILE,
  CIFAR10_TRAIN_FILES,
  type Cifar10ClassName,
  type Cifar10Images,
  classCounts,
  concat,
  decodeCifar10Records,
  encodeCifar10Records,
  loadCifar10,
  readCifar10File,
  subset,
} from './cifar10-reader';
export {
  CIFAR10_ARCHIVE_DIR,
  CIFAR10_MD5,
  CIFAR10_URL,
  type DownloadCifar10Options,
  type ResolveCifar10Options,
  defaultCifar10CacheDir,
  downloadCifar10,
  resolveCifar10Dir,
} from './cifar10-download';
export type { ProgressMode } from './download-progress';
export { type AugmentParams, Augmenter, NO_AUGMENT, sampleSeed } from './augment';
export {
  type Batch,
  type LoadedCifar10,
  type MakeBatchOptions,
  type TrainValSplit,
  applyLimit,
  epochPermutation,
  loadTrainVal,
  makeBatch,
  trainValSplit,
} from './dataset';
export { ChecksumError, DatasetError, DownloadError } from './errors';
