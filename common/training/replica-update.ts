import type { GroupLearningRates } from './events';

/*
 * How a worker's replica follows the coordinator's weights: the words both roles use for it. The
 * coordinator picks the kind and writes the apply order; the worker reads them. One definition, so the two
 * sides cannot drift apart.
 */

/** How a worker's replica is brought to the coordinator's weights before it computes. */
export const UpdateKind = {
  /** Its weights are current. */
  None: 'none',
  /** It is one update behind: the new values of what the last update changed follow. */
  Weights: 'weights',
  /** It is further behind (or its hash disagreed): it must fetch a full copy with GetWeights. */
  WeightsRef: 'weights-ref',
  /** It took part in the last update's allreduce: it applies the optimizer to the sums it holds. */
  Apply: 'apply',
} as const;
/** One of {@link UpdateKind}'s values. */
export type UpdateKind = (typeof UpdateKind)[keyof typeof UpdateKind];

/** How the coordinator applied an allreduce's sums, for the members to do the same. */
export interface ApplyOrder {
  /** The reduction whose sums were applied. */
  key: string;
  learningRates: GroupLearningRates;
  sampleCount: number;
  microBatchCount: number;
}

/** Prefix of optimizer slots in GetWeights and checkpoints: `optimizer/<slot>/<variable>`. */
export const OPTIMIZER_PREFIX = 'optimizer/';
