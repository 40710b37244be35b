import { ConfigError } from '../errors';
import { epochPermutation } from '../data';

/** Optimizer steps in one epoch: every sample once, the last partial batch kept. */
export function stepsPerEpoch(sampleCount: number, batchSize: number): number {
  checkBatchSize(batchSize);
  return Math.ceil(sampleCount / batchSize);
}

/**
 * The global batches of one epoch, as sample indices: the seeded permutation of
 * `epochPermutation(count, seed, epoch)` cut into `batchSize` pieces, the last one possibly short.
 * A pure function of its arguments, so a coordinator and its workers agree on every batch (and can
 * cut shards from it) without sending index lists. The arrays are views of one permutation.
 */
export function epochBatches(sampleCount: number, seed: number, epoch: number, batchSize: number): Uint32Array[] {
  checkBatchSize(batchSize);
  const order = epochPermutation(sampleCount, seed, epoch);
  const out: Uint32Array[] = [];
  for (let start = 0; start < sampleCount; start += batchSize) {
    out.push(order.subarray(start, Math.min(sampleCount, start + batchSize)));
  }
  return out;
}

function checkBatchSize(batchSize: number): void {
  if (!(Number.isInteger(batchSize) && batchSize >= 1)) {
    throw new ConfigError('training.batchSize', `expected an integer >= 1, got ${batchSize}`);
  }
}

/** One micro-batch of a step: its id (0-based position within the step) and its samples in order. */
export interface MicroBatch {
  id: number;
  sampleIndices: Uint32Array;
}

/**
 * Cuts a step's samples into micro-batches of `microBatchSize`, the last one possibly short. The local
 * trainer and the distributed coordinator both cut with this: identical cuts are what make 1, 2 or 3
 * workers and a local run agree.
 */
export function cutMicroBatches(stepSamples: Uint32Array, microBatchSize: number): MicroBatch[] {
  if (!(Number.isInteger(microBatchSize) && microBatchSize >= 1)) {
    throw new ConfigError('training.microBatchSize', `expected an integer >= 1, got ${microBatchSize}`);
  }
  const out: MicroBatch[] = [];
  for (let start = 0, id = 0; start < stepSamples.length; start += microBatchSize, id++) {
    out.push({ id, sampleIndices: stepSamples.slice(start, start + microBatchSize) });
  }
  return out;
}
