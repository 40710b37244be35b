import type { ParamGroupName } from '../job';

/**
 * The kinds of event the training loop emits. A reporting helper turns them into a run directory,
 * the distributed coordinator publishes them on the bus; neither needs to know the loop itself.
 */
export const TrainerEventType = {
  Step: 'step',
  Epoch: 'epoch',
  Freeze: 'freeze',
  Unfreeze: 'unfreeze',
  LrChange: 'lr-change',
} as const;
export type TrainerEventType = (typeof TrainerEventType)[keyof typeof TrainerEventType];

/** Effective learning rate of each parameter group (base rate times the group multiplier). */
export type GroupLearningRates = Record<ParamGroupName, number>;

/** Why the scheduled rate changed at an epoch boundary. */
export const LrChangeReason = { Unfreeze: 'unfreeze', StepDecay: 'step-decay', Plateau: 'plateau' } as const;
export type LrChangeReason = (typeof LrChangeReason)[keyof typeof LrChangeReason];

/** Loss and accuracy over a set of samples. */
export interface MetricsSummary {
  /** Mean cross-entropy per sample (NaN when `count` is 0). */
  loss: number;
  /** Fraction of samples whose true class has the highest logit. */
  top1: number;
  /** Fraction whose true class is among the 5 highest logits (all of them when there are <= 5 classes). */
  top5: number;
  count: number;
}

/** Validation metrics with accuracy per class (null for a class with no validation sample). */
export interface ValidationSummary extends MetricsSummary {
  perClass: (number | null)[];
}

/** One optimizer step finished. */
export interface StepEvent {
  type: typeof TrainerEventType.Step;
  epoch: number;
  /** 0-based step within the epoch. */
  step: number;
  stepsPerEpoch: number;
  /** 0-based step since the start of training. */
  globalStep: number;
  /** Samples in this global batch (the last one of an epoch may be short). */
  count: number;
  /** Mean training loss over the batch, in training mode (augmentation, dropout). */
  loss: number;
  top1: number;
  lr: GroupLearningRates;
  /** Batch samples over the wall time of the whole step (batch assembly, gradients, update). */
  samplesPerSec: number;
}

/** One epoch finished, validation included. */
export interface EpochEvent {
  type: typeof TrainerEventType.Epoch;
  epoch: number;
  /** Global steps completed so far. */
  globalStep: number;
  /** Running metrics over the epoch's steps, in training mode. */
  train: MetricsSummary;
  /** null when the job holds out no validation images. */
  val: ValidationSummary | null;
  /** The official test set (`data.testSet`), when evaluated; never used for a decision. */
  test?: ValidationSummary;
  /** Rates of the epoch's last step. */
  lr: GroupLearningRates;
  /** Whether the backbone was frozen during this epoch. */
  frozen: boolean;
  /** Wall time of the epoch, validation included. */
  seconds: number;
}

/** The backbone is frozen from this epoch on (no gradients, BatchNorm in inference mode). */
export interface FreezeEvent {
  type: typeof TrainerEventType.Freeze;
  epoch: number;
  group: ParamGroupName;
}

/** The backbone trains from this epoch on. */
export interface UnfreezeEvent {
  type: typeof TrainerEventType.Unfreeze;
  epoch: number;
  group: ParamGroupName;
}

/**
 * The scheduled rate changes at the start of `epoch`. Continuous changes (warm-up, cosine) are not
 * events; the `step` events carry the exact rate of every step.
 */
export interface LrChangeEvent {
  type: typeof TrainerEventType.LrChange;
  epoch: number;
  reason: LrChangeReason;
  /** Base rate (before group multipliers) before and after the change. */
  from: number;
  to: number;
  /** Effective rates of the groups after the change. */
  lr: GroupLearningRates;
}

/** Everything the training loop reports, discriminated by `type`. */
export type TrainerEvent = StepEvent | EpochEvent | FreezeEvent | UnfreezeEvent | LrChangeEvent;

/** Events decided by the schedule alone, known before the epoch runs. */
export type ScheduledEvent = FreezeEvent | UnfreezeEvent | LrChangeEvent;
