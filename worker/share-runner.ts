import * as tf from '@tensorflow/tfjs';
import {
  type Augmenter,
  type ModelParts,
  type ShareInput,
  type ShareResult,
  type WireTensor,
  ComputeError,
  computeShare,
  microBatchResult,
  readFloatsInto,
  ShareSum,
  type ShareThreads,
} from '../common';
import type { LocalSamples } from './samples';

/** Lets timers (heartbeats) and I/O run; the compute of one micro-batch itself is synchronous. */
export type Yield = () => Promise<void>;

/** The default {@link Yield}: one turn of the event loop. */
export const yieldToEventLoop: Yield = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * computeShare over `input.microBatches`, one micro-batch at a time with `yieldFn` in between, so the
 * heartbeat timer and the metrics endpoint keep running during a long share. The sums are the same
 * operations in the same order as one computeShare call over all of them (each micro-batch's result added
 * by the summation tree, BatchNorm statistics restored after each), so the result is bit-identical to it.
 * The caller owns the returned tensors.
 */
export async function computeShareStepwise(parts: ModelParts, input: ShareInput, yieldFn: Yield = yieldToEventLoop): Promise<ShareResult> {
  if (input.microBatches.length === 0) return computeShare(parts, input); // throws the shape error
  const sum = new ShareSum(input.microBatches.length);
  try {
    for (const [position, mb] of input.microBatches.entries()) {
      sum.add(position, microBatchResult(parts, input, mb));
      await yieldFn();
    }
    return sum.finish();
  } catch (err) {
    sum.dispose();
    throw err;
  }
}

/** A computed share as plain memory, ready to push (and to push again after a retry). */
export interface ComputedShare {
  globalStep: number;
  epoch: number;
  configVersion: number;
  microBatchIds: number[];
  /** Gradient sums of the unfrozen trainable variables, by `originalName`, in model order. */
  grads: WireTensor[];
  /** Sums of the BatchNorm moving-statistic changes, by `originalName`. */
  statDeltas: WireTensor[];
  sampleCount: number;
  lossSum: number;
  correctTop1: number;
  correctTop5: number;
  /** weightsHash() of the replica the sums were computed on, when the assignment asked for it. */
  weightsHash: string;
  weightsVersion: number;
  computeSeconds: number;
}

/** What one training share is computed from besides the model. */
export interface TrainShareInput {
  samples: LocalSamples;
  augmenter: Augmenter;
  jobSeed: number;
  epoch: number;
  globalStep: number;
  configVersion: number;
  backboneFrozen: boolean;
  weightsVersion: number;
  /** Set when the assignment asked for the replica's hash. */
  weightsHash?: string;
  /** Threads that compute the micro-batches (bit-identical sums); @default this thread, stepwise */
  threads?: ShareThreads;
  /** Where the sums are copied out of tfjs, `floats` values at a time (e.g. a recycled buffer); @default a new buffer */
  sumsBuffer?: (floats: number) => Float32Array;
}

/**
 * Computes a training share on the received samples and copies the sums out of tfjs, disposing every
 * tensor it made: the tensor count is the same before and after.
 */
export async function runTrainShare(parts: ModelParts, input: TrainShareInput, yieldFn: Yield = yieldToEventLoop): Promise<ComputedShare> {
  const t0 = performance.now();
  const share: ShareInput = {
    data: input.samples.data,
    microBatches: input.samples.microBatches,
    sampleIds: input.samples.sampleIds,
    augmenter: input.augmenter,
    jobSeed: input.jobSeed,
    epoch: input.epoch,
    globalStep: input.globalStep,
    backboneFrozen: input.backboneFrozen,
  };
  const result = await (input.threads ? input.threads.computeShare(parts, share) : computeShareStepwise(parts, share, yieldFn));
  try {
    return {
      globalStep: input.globalStep,
      epoch: input.epoch,
      configVersion: input.configVersion,
      microBatchIds: input.samples.microBatches.map((mb) => mb.id),
      grads: toWire(result.grads, input.sumsBuffer),
      statDeltas: toWire(result.movingStatDeltas, input.sumsBuffer),
      sampleCount: result.count,
      lossSum: result.lossSum,
      correctTop1: result.correctTop1,
      correctTop5: result.correctTop5,
      weightsHash: input.weightsHash ?? '',
      weightsVersion: input.weightsVersion,
      computeSeconds: (performance.now() - t0) / 1000,
    };
  } finally {
    tf.dispose([...result.grads.values(), ...result.movingStatDeltas.values()]);
  }
}

/**
 * Copies float32 tensors out of tfjs into one buffer (`buffer`'s, written whole), each tensor's data a view
 * on its part (the caller disposes the tensors). readFloatsInto reads the wasm memory directly into it,
 * where `dataSync` per tensor allocated a buffer of each gradient's own through tfjs' read path: one buffer
 * per share instead of one per variable (fresh memory is dear on a VM; see bench/fresh-memory.ts).
 */
function toWire(tensors: ReadonlyMap<string, tf.Tensor>, buffer: (floats: number) => Float32Array = (floats) => new Float32Array(floats)): WireTensor[] {
  const all = buffer([...tensors.values()].reduce((n, t) => n + t.size, 0));
  let at = 0;
  return [...tensors].map(([name, t]) => {
    if (t.dtype !== 'float32') throw new ComputeError(`share sum '${name}': expected float32, got ${t.dtype}`);
    const data = all.subarray(at, at + t.size);
    readFloatsInto(t, data);
    at += t.size;
    return { name, dtype: 'float32', shape: [...t.shape], data };
  });
}
