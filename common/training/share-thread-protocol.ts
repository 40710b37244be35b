import * as tf from '@tensorflow/tfjs';
import { readFloatsInto, tensorFromReusedFloats } from '../compute';
import type { AugmentSpec, ModelSpec } from '../job';
import { type ModelParts, namedVariables } from '../models';
import { TrainingShapeError } from './errors';

/**
 * The messages between {@link ShareThreads} and its threads (share-thread-main.ts), and the one layout of
 * the shared weights buffer both sides read. Everything here is structured-cloneable: tensors travel as
 * their float32 values, which is what keeps a thread's micro-batch result bit-identical to the main
 * thread's.
 */

/** Where one model variable sits in the shared weights buffer (float32 elements, not bytes). */
export interface WeightSlot {
  name: string;
  shape: number[];
  offset: number;
  length: number;
}

/** What a thread is started with (its `workerData`). */
export interface ShareThreadInit {
  /** tfjs backend the main thread runs, so both compute with the same kernels. */
  backend: string;
  model: ModelSpec;
  /** Every variable of the model (trainable and BatchNorm statistics) in model order. */
  layout: WeightSlot[];
  /** float32 values at `layout`'s offsets, rewritten by the main thread before each share. */
  weights: SharedArrayBuffer;
  /** Int32 cell 0: the generation of `weights`, bumped (Atomics) after each rewrite. */
  generation: SharedArrayBuffer;
}

/** One micro-batch to compute, with its images, so a thread needs nothing but the message. */
export interface MicroBatchTask {
  type: 'task';
  taskId: number;
  /** The weights generation the result must be computed on. */
  generation: number;
  microBatchId: number;
  /** `count * 32 * 32 * 3` raw pixels of the micro-batch's samples, in micro-batch order. */
  images: Uint8Array;
  labels: Uint8Array;
  /** Training-set ids of the samples: their augmentation seeds. */
  sampleIds: Uint32Array;
  augment: AugmentSpec;
  jobSeed: number;
  epoch: number;
  globalStep: number;
  backboneFrozen: boolean;
}

/** A tensor as plain memory. */
export interface FlatTensor {
  name: string;
  shape: number[];
  values: Float32Array;
}

/** What a thread answers. */
export type ThreadMessage =
  | { type: 'ready' }
  | {
    type: 'result';
    taskId: number;
    grads: FlatTensor[];
    movingStatDeltas: FlatTensor[];
    lossSum: number;
    correctTop1: number;
    correctTop5: number;
    count: number;
  }
  | { type: 'failed'; taskId?: number; name: string; message: string; stack?: string };

/** Every variable of `parts` in model order, backbone first: the order weightsHash reads them in. */
export function allVariables(parts: ModelParts): tf.LayerVariable[] {
  const named = namedVariables(parts);
  return [...named.backbone, ...named.head];
}

/** The buffer layout of `parts`' variables. */
export function weightLayout(parts: ModelParts): WeightSlot[] {
  let offset = 0;
  return allVariables(parts).map((v) => {
    const shape = v.shape.map(Number);
    const length = shape.reduce((a, b) => a * b, 1);
    const slot = { name: v.originalName, shape, offset, length };
    offset += length;
    return slot;
  });
}

/** Float32 elements a layout spans. */
export function layoutLength(layout: readonly WeightSlot[]): number {
  const last = layout[layout.length - 1];
  return last ? last.offset + last.length : 0;
}

/**
 * Checks that `parts` has exactly `layout`'s variables, names and shapes in the same order; a thread's
 * model built from the same spec must, or its gradients would belong to another model.
 */
export function checkLayout(parts: ModelParts, layout: readonly WeightSlot[]): void {
  const own = weightLayout(parts);
  const describe = (s: WeightSlot | undefined) => (s ? `${s.name} [${s.shape}]` : 'nothing');
  for (let i = 0; i < Math.max(own.length, layout.length); i++) {
    const a = layout[i];
    const b = own[i];
    if (!a || !b || a.name !== b.name || a.shape.join() !== b.shape.join()) {
      throw new TrainingShapeError('share thread model', `expected variable ${i} to be ${describe(a)}, the thread's model has ${describe(b)}`);
    }
  }
}

/**
 * Tensors copied one after another into `buffer` from element `start`, as flat views on it (the caller still
 * owns and disposes the tensors). A thread answers with views on its own shared result buffer, so a result
 * costs one copy out of the backend and nothing to send; the buffer is rewritten only for the thread's next
 * task, which the main thread sends after it has read the result. Returns the views and the next free element.
 */
export function flattenInto(tensors: ReadonlyMap<string, tf.Tensor>, buffer: Float32Array, start: number): { flat: FlatTensor[]; end: number } {
  let offset = start;
  const flat = [...tensors].map(([name, t]) => {
    if (offset + t.size > buffer.length) {
      throw new TrainingShapeError('share thread result', `expected at most ${buffer.length} values in the result buffer, ${name} ends at ${offset + t.size}`);
    }
    const values = buffer.subarray(offset, offset + t.size);
    readFloatsInto(t, values);
    offset += t.size;
    return { name, shape: [...t.shape], values };
  });
  return { flat, end: offset };
}

/** Flat tensors back as tensors, copied out of their buffer (which may be reused); the caller owns them. */
export function unflatten(flat: readonly FlatTensor[]): Map<string, tf.Tensor> {
  return new Map(flat.map((f) => [f.name, tensorFromReusedFloats(f.values, f.shape)]));
}
