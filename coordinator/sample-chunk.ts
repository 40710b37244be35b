import { CIFAR10_IMAGE_BYTES, type Cifar10Images, type MicroBatch } from '../common';

/**
 * The samples of an assignment: pixels and labels of every sample of its micro-batches, in micro-batch
 * order, so a worker needs no copy of the dataset. `indices` are the samples' ids in their split.
 */
export interface SampleChunk {
  indices: Uint32Array;
  labels: Uint8Array;
  /** uint8 NHWC, 32 * 32 * 3 bytes per sample. */
  images: Uint8Array;
}

/** Gathers the samples of `microBatches` from `data` (the training or validation split). */
export function gatherSamples(data: Cifar10Images, microBatches: readonly MicroBatch[]): SampleChunk {
  const count = microBatches.reduce((n, mb) => n + mb.sampleIndices.length, 0);
  const indices = new Uint32Array(count);
  const labels = new Uint8Array(count);
  const images = new Uint8Array(count * CIFAR10_IMAGE_BYTES);
  let k = 0;
  for (const mb of microBatches) {
    for (let j = 0; j < mb.sampleIndices.length; j++, k++) {
      const i = mb.sampleIndices[j];
      indices[k] = i;
      labels[k] = data.labels[i];
      images.set(data.images.subarray(i * CIFAR10_IMAGE_BYTES, (i + 1) * CIFAR10_IMAGE_BYTES), k * CIFAR10_IMAGE_BYTES);
    }
  }
  return { indices, labels, images };
}

/** Bytes of a chunk's payload (pixels and labels), for the sent-bytes counter. */
export function sampleBytes(chunk: SampleChunk): number {
  return chunk.images.byteLength + chunk.labels.byteLength + chunk.indices.length * 4;
}
