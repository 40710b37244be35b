/**
 * Entry point of one {@link ShareThreads} thread: a model replica that computes micro-batches. It starts
 * the main thread's backend, builds the model from the same spec, checks it has the same variables, and
 * then answers each micro-batch task with that micro-batch's result (`microBatchResult`, the function the
 * main thread runs with one thread), after loading the shared weights when their generation moved.
 */
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { initBackend, type BackendPreference } from '../compute';
import { Augmenter } from '../data';
import { buildModel, type ModelParts } from '../models';
import { microBatchResult } from './share';
import {
  allVariables,
  checkLayout,
  flattenInto,
  layoutLength,
  type MicroBatchTask,
  type ShareThreadInit,
  type ThreadMessage,
} from './share-thread-protocol';

/** Copies the shared weights into the replica's variables. */
function loadWeights(parts: ModelParts, init: ShareThreadInit): void {
  const all = new Float32Array(init.weights);
  tf.tidy(() => {
    allVariables(parts).forEach((v, i) => {
      const slot = init.layout[i];
      v.write(tf.tensor(all.subarray(slot.offset, slot.offset + slot.length), slot.shape, 'float32'));
    });
  });
}

function failure(err: unknown, taskId?: number): ThreadMessage {
  const e = err instanceof Error ? err : new Error(String(err));
  return { type: 'failed', taskId, name: e.name, message: e.message, stack: e.stack };
}

async function main(port: NonNullable<typeof parentPort>, init: ShareThreadInit): Promise<void> {
  await initBackend({ prefer: init.backend as BackendPreference, log: () => undefined });
  const parts = await buildModel(init.model, 0);
  checkLayout(parts, init.layout);
  const generations = new Int32Array(init.generation);
  let loaded = -1;
  // Every result fits: gradients are of trainable variables, statistic deltas of the others.
  const results = new Float32Array(new SharedArrayBuffer(layoutLength(init.layout) * Float32Array.BYTES_PER_ELEMENT));
  const augmenters = new Map<string, Augmenter>();
  port.on('message', (task: MicroBatchTask) => {
    try {
      const current = Atomics.load(generations, 0);
      if (current !== task.generation) {
        throw new RangeError(`expected weights generation ${task.generation} in the shared buffer, found ${current}`);
      }
      if (loaded !== current) {
        loadWeights(parts, init);
        loaded = current;
      }
      const key = JSON.stringify(task.augment);
      const augmenter = augmenters.get(key) ?? new Augmenter(task.augment);
      augmenters.set(key, augmenter);
      const count = task.labels.length;
      const mb = { id: task.microBatchId, sampleIndices: Uint32Array.from({ length: count }, (_, i) => i) };
      const result = microBatchResult(parts, {
        data: { images: task.images, labels: task.labels, count },
        microBatches: [mb],
        sampleIds: task.sampleIds,
        augmenter,
        jobSeed: task.jobSeed,
        epoch: task.epoch,
        globalStep: task.globalStep,
        backboneFrozen: task.backboneFrozen,
      }, mb);
      try {
        const grads = flattenInto(result.grads, results, 0);
        const movingStatDeltas = flattenInto(result.movingStatDeltas, results, grads.end).flat;
        const { lossSum, correctTop1, correctTop5 } = result;
        const message: ThreadMessage = { type: 'result', taskId: task.taskId, grads: grads.flat, movingStatDeltas, lossSum, correctTop1, correctTop5, count };
        port.postMessage(message);
      } finally {
        tf.dispose([...result.grads.values(), ...result.movingStatDeltas.values()]);
      }
    } catch (err) {
      port.postMessage(failure(err, task.taskId));
    }
  });
  port.postMessage({ type: 'ready' } satisfies ThreadMessage);
}

if (!isMainThread && parentPort) {
  const port = parentPort;
  main(port, workerData as ShareThreadInit).catch((err: unknown) => port.postMessage(failure(err)));
}
