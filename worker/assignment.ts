import type { WireTensor } from '../common';
import { type StepAssignment, StepKind, UpdateKind } from '../proto';
import { AssignmentError } from './errors';

/** What the coordinator asks for in one PullStep answer (an `as const` object, not an enum). */
export const AssignmentKind = {
  /** Compute gradient sums for the micro-batches and push them. */
  Train: 'train',
  /** Evaluate the validation micro-batches and submit the counts. */
  Eval: 'eval',
  /** Nothing for this worker now; pull again after `retryAfterMs`. */
  Wait: 'wait',
  /** The job is over, or this worker was drained: leave and exit. */
  Stop: 'stop',
} as const;
export type AssignmentKind = (typeof AssignmentKind)[keyof typeof AssignmentKind];

/** How the replica catches up before computing. */
export const UpdateKindName = {
  /** The replica is current. */
  None: 'none',
  /** The tensors that follow are the new values of what the last update changed. */
  Weights: 'weights',
  /** The replica is too far behind for a delta: fetch a full copy with GetWeights. */
  WeightsRef: 'weights-ref',
} as const;
export type UpdateKindName = (typeof UpdateKindName)[keyof typeof UpdateKindName];

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
  kind: UpdateKindName;
  /** The step whose update this is. */
  step: number;
  /** By `originalName`; empty unless `kind` is 'weights'. */
  tensors: ReadonlyMap<string, WireTensor>;
}

/** A PullStep answer in the worker's own terms; built only by {@link assignmentFromProto}. */
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
}

const KINDS: Partial<Record<StepKind, AssignmentKind>> = {
  [StepKind.TRAIN]: AssignmentKind.Train,
  [StepKind.EVAL]: AssignmentKind.Eval,
  [StepKind.WAIT]: AssignmentKind.Wait,
  [StepKind.STOP]: AssignmentKind.Stop,
};

const UPDATES: Partial<Record<UpdateKind, UpdateKindName>> = {
  [UpdateKind.NONE]: UpdateKindName.None,
  [UpdateKind.WEIGHTS]: UpdateKindName.Weights,
  [UpdateKind.WEIGHTS_REF]: UpdateKindName.WeightsRef,
};

/**
 * The generated StepAssignment (plus the update tensors reassembled from the chunks after it) as an
 * {@link Assignment}. An unspecified kind is an AssignmentError; an unspecified update kind on a
 * message without update tensors (WAIT/STOP from a terse coordinator) reads as 'none'.
 */
export function assignmentFromProto(a: StepAssignment, updateTensors: ReadonlyMap<string, WireTensor>): Assignment {
  const kind = KINDS[a.kind];
  if (kind === undefined) {
    throw new AssignmentError('kind', a.globalStep, `expected TRAIN, EVAL, WAIT or STOP, got enum value ${a.kind}`);
  }
  let update = UPDATES[a.updateKind];
  if (update === undefined) {
    if (a.updateKind !== UpdateKind.UNSPECIFIED || a.updateTensors.length > 0) {
      throw new AssignmentError('update_kind', a.globalStep, `expected NONE, WEIGHTS or WEIGHTS_REF, got enum value ${a.updateKind}`);
    }
    update = UpdateKindName.None;
  }
  if (update !== UpdateKindName.Weights && updateTensors.size > 0) {
    throw new AssignmentError('update_tensors', a.globalStep, `expected no tensors with update kind '${update}', got ${updateTensors.size}`);
  }
  const s = a.samples;
  return {
    kind,
    globalStep: a.globalStep,
    epoch: a.epoch,
    configVersion: a.configVersion,
    microBatches: a.microBatches.map((mb) => ({ id: mb.id, sampleIds: Uint32Array.from(mb.sampleIndices) })),
    samples: s ? { sampleIds: Uint32Array.from(s.sampleIndices), labels: s.labels, images: s.images } : undefined,
    update: { kind: update, step: a.updateStep, tensors: updateTensors },
    weightsVersion: a.weightsVersion,
    reportWeightsHash: a.reportWeightsHash,
    stepMicroBatchCount: a.stepMicroBatchCount,
    retryAfterMs: a.retryAfterMs,
    waitReason: a.waitReason,
  };
}
