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
