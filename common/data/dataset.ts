import { ConfigError } from '../errors';
import type { DataSpec } from '../job';
import { Rng } from '../random';
import { Augmenter, sampleSeed } from './augment';
import {
  CIFAR10_CLASSES,
  CIFAR10_IMAGE_BYTES,
  type Cifar10Images,
  loadCifar10,
  subset,
} from './cifar10-reader';
import { type ResolveCifar10Options, resolveCifar10Dir } from './cifar10-download';

// A local copy: imported bindings compile to getter calls under CommonJS.
const IMAGE_BYTES = CIFAR10_IMAGE_BYTES;

/** A stratified train/validation split, with the positions of each part in the data it was cut from. */
export interface TrainValSplit {
  train: Cifar10Images;
  val: Cifar10Images;
  /** Ascending indices into the original data. */
  trainIndices: Uint32Array;
  valIndices: Uint32Array;
}

/**
 * Keeps the first `limit` images (0 keeps all). Applied before the split, as DataSpec.limit says, so a
 * small run sees the same images whatever its validation fraction.
 */
export function applyLimit(data: Cifar10Images, limit: number): Cifar10Images {
  if (!Number.isInteger(limit) || limit < 0) {
    throw new ConfigError('data.limit', `expected an integer >= 0, got ${limit}`);
  }
  if (limit === 0 || limit >= data.count) return data;
  return {
    images: data.images.slice(0, limit * IMAGE_BYTES),
    labels: data.labels.slice(0, limit),
    count: limit,
  };
}

/**
 * Holds out `valFraction` of each class (rounded per class), chosen by a seeded shuffle. Stratifying
 * keeps the class balance of a small validation set equal to the training set's, so validation accuracy
 * on a few hundred images is not skewed by chance. Deterministic in (data labels, valFraction, seed).
 */
export function trainValSplit(data: Cifar10Images, valFraction: number, seed: number): TrainValSplit {
  if (!(valFraction >= 0 && valFraction < 1)) {
    throw new ConfigError('data.valFraction', `expected a number in [0, 1), got ${valFraction}`);
  }
  const byClass: number[][] = CIFAR10_CLASSES.map(() => []);
  for (let i = 0; i < data.count; i++) byClass[data.labels[i]].push(i);
  const isVal = new Uint8Array(data.count);
  const rng = new Rng(`split:${seed}`);
  let valCount = 0;
  for (const members of byClass) {
    const take = Math.round(members.length * valFraction);
    const order = rng.permutation(members.length);
    for (let k = 0; k < take; k++) isVal[members[order[k]]] = 1;
    valCount += take;
  }
  const trainIndices = new Uint32Array(data.count - valCount);
  const valIndices = new Uint32Array(valCount);
  let t = 0;
  let v = 0;
  for (let i = 0; i < data.count; i++) {
    if (isVal[i]) valIndices[v++] = i;
    else trainIndices[t++] = i;
  }
  return { train: subset(data, trainIndices), val: subset(data, valIndices), trainIndices, valIndices };
}

/**
 * The sample order of one epoch: a seeded permutation of 0..count-1. Every worker computes the same
 * order from (seed, epoch) alone, so shards can be cut from it without sending index lists around.
 */
export function epochPermutation(count: number, seed: number, epoch: number): Uint32Array {
  if (!Number.isInteger(count) || count < 0) throw new RangeError(`epochPermutation: expected a count >= 0, got ${count}`);
  return new Rng(`epoch:${seed}:${epoch}`).permutation(count);
}

/** Options of {@link makeBatch}. */
export interface MakeBatchOptions {
  /** Augments each image; omitted means the images are used as stored (evaluation). */
  augmenter?: Augmenter;
  /** Job seed mixed into every sample's augmentation seed. @default 0 */
  jobSeed?: number;
  /** Epoch mixed into every sample's augmentation seed. @default 0 */
  epoch?: number;
  /**
   * The samples' ids in the whole training set, for their augmentation seeds, when `data` holds only some
   * of them (a worker receives just its micro-batches). @default `indices`
   */
  sampleIds?: ArrayLike<number>;
}

/** A batch ready to wrap in tensors: `tf.tensor4d(x, [B, 32, 32, 3])` and `tf.tensor1d(y, 'int32')`. */
export interface Batch {
  /** B*32*32*3 floats, NHWC, raw 0..255 values (the model does its own scaling). */
  x: Float32Array;
  y: Int32Array;
  /** The indices into `data` the batch was made from, in batch order. */
  indices: Uint32Array;
}

/**
 * Gathers the images at `indices` into a batch, augmenting each with the seed
 * `sampleSeed(jobSeed, epoch, index)`: the seed follows the sample, not its position in the batch or
 * the worker that happens to process it.
 */
export function makeBatch(data: Cifar10Images, indices: ArrayLike<number>, options: MakeBatchOptions = {}): Batch {
  const count = indices.length;
  if (options.sampleIds !== undefined && options.sampleIds.length !== count) {
    throw new RangeError(`makeBatch: expected ${count} sampleIds, one per index, got ${options.sampleIds.length}`);
  }
  const x = new Float32Array(count * IMAGE_BYTES);
  const y = new Int32Array(count);
  const idx = Uint32Array.from(indices as ArrayLike<number>);
  const { augmenter } = options;
  const jobSeed = options.jobSeed ?? 0;
  const epoch = options.epoch ?? 0;
  const scratch = new Uint8Array(IMAGE_BYTES);
  for (let k = 0; k < count; k++) {
    const i = indices[k];
    if (!Number.isInteger(i) || i < 0 || i >= data.count) {
      throw new RangeError(`makeBatch: index ${i} at position ${k} is outside 0..${data.count - 1}`);
    }
    let image = data.images.subarray(i * IMAGE_BYTES, (i + 1) * IMAGE_BYTES);
    if (augmenter && !augmenter.isIdentity) {
      image = augmenter.apply(image, sampleSeed(jobSeed, epoch, options.sampleIds?.[k] ?? i), scratch);
    }
    x.set(image, k * IMAGE_BYTES);
    y[k] = data.labels[i];
  }
  return { x, y, indices: idx };
}

/** What {@link loadTrainVal} returns: the split plus where the data came from. */
export interface LoadedCifar10 extends TrainValSplit {
  /** Folder the batches were read from. */
  dir: string;
  /** test_batch.bin, when `DataSpec.testSet` asks for it. */
  test?: Cifar10Images;
}

/**
 * Everything a training job needs from DataSpec in one call: locate the data (spec.dir, CIFAR10_DIR,
 * the cache, else download), read the training batches, keep the first `limit` images, and split off
 * the stratified validation set with the job seed.
 */
export async function loadTrainVal(
  spec: DataSpec,
  seed: number,
  resolve: Omit<ResolveCifar10Options, 'dir'> = {},
): Promise<LoadedCifar10> {
  const dir = await resolveCifar10Dir({ ...resolve, dir: spec.dir });
  const all = applyLimit(await loadCifar10(dir, 'train'), spec.limit);
  const test = spec.testSet ? await loadCifar10(dir, 'test') : undefined;
  return { ...trainValSplit(all, spec.valFraction, seed), dir, ...(test ? { test } : {}) };
}
