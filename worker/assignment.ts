import {
  type AllreduceMember,
  type ApplyOrder,
  type GroupLearningRates,
  specFromProto,
  UpdateKind,
  type WireTensor,
  type WireTensorSpec,
} from '../common';
import { type StepAssignment, StepKind, UpdateKind as ProtoUpdateKind } from '../proto';
import { AssignmentError } from './errors';

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

/** An order in the worker's own terms; built only by {@link assignmentFromProto}. */
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

const KINDS: Partial<Record<StepKind, AssignmentKind>> = {
  [StepKind.TRAIN]: AssignmentKind.Train,
  [StepKind.EVAL]: AssignmentKind.Eval,
  [StepKind.WAIT]: AssignmentKind.Wait,
  [StepKind.STOP]: AssignmentKind.Stop,
  [StepKind.REDUCE]: AssignmentKind.Reduce,
};

const UPDATES: Partial<Record<ProtoUpdateKind, UpdateKind>> = {
  [ProtoUpdateKind.NONE]: UpdateKind.None,
  [ProtoUpdateKind.WEIGHTS]: UpdateKind.Weights,
  [ProtoUpdateKind.WEIGHTS_REF]: UpdateKind.WeightsRef,
  [ProtoUpdateKind.APPLY]: UpdateKind.Apply,
};

/**
 * The generated StepAssignment (plus the update tensors reassembled from the chunks after it) as an
 * {@link Assignment}. An unspecified kind is an AssignmentError; an unspecified update kind on a
 * message without update tensors (WAIT/STOP from a terse coordinator) reads as 'none'.
 */
export function assignmentFromProto(a: StepAssignment, updateTensors: ReadonlyMap<string, WireTensor>): Assignment {
  const kind = KINDS[a.kind];
  if (kind === undefined) {
    throw new AssignmentError('kind', a.globalStep, `expected TRAIN, EVAL, WAIT, STOP or REDUCE, got enum value ${a.kind}`);
  }
  let update = UPDATES[a.updateKind];
  if (update === undefined) {
    if (a.updateKind !== ProtoUpdateKind.UNSPECIFIED || a.updateTensors.length > 0) {
      throw new AssignmentError('update_kind', a.globalStep, `expected NONE, WEIGHTS, WEIGHTS_REF or APPLY, got enum value ${a.updateKind}`);
    }
    update = UpdateKind.None;
  }
  if (update !== UpdateKind.Weights && updateTensors.size > 0) {
    throw new AssignmentError('update_tensors', a.globalStep, `expected no tensors with update kind '${update}', got ${updateTensors.size}`);
  }
  if (kind === AssignmentKind.Reduce && !a.reduce) throw new AssignmentError('reduce', a.globalStep, 'expected a ReduceSpec with STEP_KIND_REDUCE, got none');
  if (update === UpdateKind.Apply && !a.apply) throw new AssignmentError('apply', a.globalStep, 'expected an ApplySpec with UPDATE_KIND_APPLY, got none');
  const s = a.samples;
  const r = a.reduce;
  const apply = a.apply && {
    key: a.apply.key,
    learningRates: Object.fromEntries(a.apply.groups.map((g) => [g.name, g.learningRate])) as GroupLearningRates,
    sampleCount: a.apply.sampleCount,
    microBatchCount: a.apply.microBatchCount,
  };
  return {
    kind,
    globalStep: a.globalStep,
    epoch: a.epoch,
    configVersion: a.configVersion,
    microBatches: a.microBatches.map((mb) => ({ id: mb.id, sampleIds: Uint32Array.from(mb.sampleIndices) })),
    samples: s ? { sampleIds: Uint32Array.from(s.sampleIndices), labels: s.labels, images: s.images } : undefined,
    update: { kind: update, step: a.updateStep, tensors: updateTensors, apply },
    weightsVersion: a.weightsVersion,
    reportWeightsHash: a.reportWeightsHash,
    stepMicroBatchCount: a.stepMicroBatchCount,
    retryAfterMs: a.retryAfterMs,
    waitReason: a.waitReason,
    reduce: r && {
      key: r.key,
      members: r.members.map((m): AllreduceMember => m.observer
        ? { id: m.id, address: m.address, role: 'observer' }
        : { id: m.id, address: m.address, role: 'contributor', parts: m.parts.map((p) => ({ start: p.start, end: p.end })) }),
      rank: r.rank,
      tensors: r.tensors.map(specFromProto),
      gradientTensorCount: r.gradientTensorCount,
      timeoutMs: r.timeoutMs,
    },
  };
}
