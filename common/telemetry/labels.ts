import { PARAM_GROUPS } from '../job';

/**
 * Label names and their values, declared `as const` so that prom-client's generic types turn a wrong label
 * name into a compile error (`gauge.set({ grup: 'head' }, 1)` does not type-check).
 */

/** The parts a step's time splits into; their sum approximates the whole step. */
export const STEP_PHASES = [
  /** Forward and backward pass on the worker. */
  'compute',
  /** Moving weights, gradients and batches over the network. */
  'transfer',
  /** Averaging gradients across workers and applying the update. */
  'reduce',
  /** Idle: the fastest waiting for the slowest, or a worker waiting for its assignment. */
  'wait',
] as const;
export type StepPhase = (typeof STEP_PHASES)[number];

/** Which data a loss or accuracy figure was measured on. */
export const SPLITS = ['train', 'validation'] as const;
export type Split = (typeof SPLITS)[number];

/** Param-group label values, the groups of the job spec. */
export const GROUPS = PARAM_GROUPS;

export const PHASE_LABEL = ['phase'] as const;
export const WORKER_LABEL = ['worker'] as const;
export const SPLIT_LABEL = ['split'] as const;
export const GROUP_LABEL = ['group'] as const;
export const REASON_LABEL = ['reason'] as const;
export const WORKERS_LABEL = ['workers'] as const;

/** Label name types, for the metric object interfaces. */
export type PhaseLabel = (typeof PHASE_LABEL)[number];
export type WorkerLabel = (typeof WORKER_LABEL)[number];
export type SplitLabel = (typeof SPLIT_LABEL)[number];
export type GroupLabel = (typeof GROUP_LABEL)[number];
export type ReasonLabel = (typeof REASON_LABEL)[number];
export type WorkersLabel = (typeof WORKERS_LABEL)[number];

/** Buckets of a whole step or share: from 10 ms (tiny models) to 2 minutes (a slow worker on a big batch). */
export const STEP_SECONDS_BUCKETS: readonly number[] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

/** Buckets of one phase: finer at the low end, where transfer and reduce of small models sit. */
export const PHASE_SECONDS_BUCKETS: readonly number[] = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
];
