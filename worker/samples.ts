import { CIFAR10_IMAGE_BYTES, type Cifar10Images, type MicroBatch } from '../common';
import type { AssignedMicroBatch, SampleChunk } from './assignment';
import { AssignmentError } from './errors';

// A local copy: imported bindings compile to getter calls under CommonJS.
const IMAGE_BYTES = CIFAR10_IMAGE_BYTES;

/**
 * A share's samples as the training code wants them: the received pixels as a small image set, the
 * micro-batches with indices into it, and each image's id in the whole split (augmentation is seeded
 * by that id, so a sample is augmented the same whichever worker gets it).
 */
export interface LocalSamples {
  data: Cifar10Images;
  /** `sampleIds[i]` is the split-wide id of `data`'s image i. */
  sampleIds: Uint32Array;
  /** The assignment's micro-batches, same ids, with `sampleIndices` local to `data`. */
  microBatches: MicroBatch[];
}

/**
 * Checks a share's DataChunk against its micro-batches and wraps it without copying the pixels.
 * Throws AssignmentError when the byte counts do not match the ids, an id repeats, a micro-batch is
 * empty or names a sample the chunk does not carry, or a label is outside `numClasses`.
 */
export function localSamples(
  globalStep: number,
  microBatches: readonly AssignedMicroBatch[],
  samples: SampleChunk | undefined,
  numClasses: number,
): LocalSamples {
  if (microBatches.length === 0) throw new AssignmentError('micro_batches', globalStep, 'expected at least one micro-batch, got none');
  if (!samples) throw new AssignmentError('samples', globalStep, 'expected the pixels of the share, the assignment has none');
  const n = samples.sampleIds.length;
  if (samples.images.length !== n * IMAGE_BYTES) {
    throw new AssignmentError('samples.images', globalStep,
      `expected ${n * IMAGE_BYTES} bytes for ${n} samples of ${IMAGE_BYTES}, got ${samples.images.length}`);
  }
  if (samples.labels.length !== n) {
    throw new AssignmentError('samples.labels', globalStep, `expected ${n} labels, one per sample, got ${samples.labels.length}`);
  }
  for (let i = 0; i < n; i++) {
    if (samples.labels[i] >= numClasses) {
      throw new AssignmentError('samples.labels', globalStep,
        `expected labels 0..${numClasses - 1}, sample ${samples.sampleIds[i]} has ${samples.labels[i]}`);
    }
  }
  const position = new Map<number, number>();
  samples.sampleIds.forEach((id, i) => {
    if (position.has(id)) throw new AssignmentError('samples.sample_indices', globalStep, `expected unique sample ids, ${id} occurs twice`);
    position.set(id, i);
  });
  const local = microBatches.map((mb) => {
    if (mb.sampleIds.length === 0) {
      throw new AssignmentError('micro_batches', globalStep, `expected samples in micro-batch ${mb.id}, it has none`);
    }
    const sampleIndices = new Uint32Array(mb.sampleIds.length);
    mb.sampleIds.forEach((id, k) => {
      const at = position.get(id);
      if (at === undefined) {
        throw new AssignmentError('micro_batches', globalStep, `micro-batch ${mb.id} names sample ${id}, which the samples do not carry`);
      }
      sampleIndices[k] = at;
    });
    return { id: mb.id, sampleIndices };
  });
  return {
    data: { images: samples.images, labels: samples.labels, count: n },
    sampleIds: samples.sampleIds,
    microBatches: local,
  };
}
