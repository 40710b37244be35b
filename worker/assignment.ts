import {
  type AllreduceMember,
  type ApplyOrder,
  type UpdateKind,
  type WireTensor,
  type WireTensorSpec,
} from '../common';

/** What the coordinator asks for in one order on the Session stream (an `as const` object, not an enum). */
export const AssignmentKind = {
  /** Compute gradient sums for the micro-batches and push them. */
  Train: 'train',
  /** Evaluate the validation micro-batches and submit the counts. */
  Eval: 'eval',
  /** Nothing for this worker now; pull again after `retryAfterMs`. */
  Wait: 'wait',
  /** The job is over, or this worker was drained: leave and exit. */
  Stop: 'stop',
  /** Allreduce the sums held for the step with the members in `reduce`, then pull again. */
  Reduce: 'reduce',
} as const;
export type AssignmentKind = (typeof AssignmentKind)[keyof typeof AssignmentKind];

/** One micro-batch of the share, by sample id (into the TRAIN split, or the VAL split for EVAL). */
export interface AssignedMicroBatch {
  id: number;
  sampleIds: Uint32Array;
}

/** The pixels and labels that came with a share, in the order of `sampleIds`. */
export interface SampleChunk {
  sampleIds: Uint32Array;
  /** One byte per sample. */
  labels: Uint8Array;
  /** `32 * 32 * 3` bytes per sample, NHWC. */
  images: Uint8Array;
}

/** The weights update that precedes an assignment. */
export interface WeightsUpdate {
  kind: UpdateKind;
  /** The step whose update this is. */
  step: number;
  /** By `originalName`; empty unless `kind` is 'weights'. */
  tensors: ReadonlyMap<string, WireTensor>;
  /** With kind 'apply'. */
  apply?: ApplyOrder;
}

/** A REDUCE order: the members, this worker's place in it, and the layout of the vector. */
export interface ReduceOrder {
  key: string;
  members: AllreduceMember[];
  rank: number;
  tensors: WireTensorSpec[];
  gradientTensorCount: number;
  timeoutMs: number;
}

/** An order in the worker's own terms, as the coordinator link decodes it. */
export interface Assignment {
  kind: AssignmentKind;
  globalStep: number;
  epoch: number;
  /** The configuration (freeze state) the share must be computed with. */
  configVersion: number;
  microBatches: AssignedMicroBatch[];
  samples: SampleChunk | undefined;
  update: WeightsUpdate;
  /** The coordinator's weights version once `update` is applied: what the replica must hold to compute. */
  weightsVersion: number;
  /** Put the replica's weightsHash into the push (replica agreement check). */
  reportWeightsHash: boolean;
  /** Micro-batches of the whole step or evaluation pass, for progress lines. */
  stepMicroBatchCount: number;
  retryAfterMs: number;
  waitReason: string;
  /** With kind 'reduce'. */
  reduce?: ReduceOrder;
}
