import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import {
  GROUP_LABEL,
  PHASE_LABEL,
  PHASE_SECONDS_BUCKETS,
  SPLIT_LABEL,
  STEP_PHASES,
  STEP_SECONDS_BUCKETS,
  WORKER_LABEL,
  WORKERS_LABEL,
  type GroupLabel,
  type PhaseLabel,
  type SplitLabel,
  type WorkerLabel,
  type WorkersLabel,
} from './labels';

/**
 * What the coordinator exports: progress and speed of the global job, the split of each step into its
 * phases, per-worker timings (a straggler is the top series of `shardwise_worker_step_seconds`), model
 * quality, the training configuration in force, and cluster membership.
 */
export interface CoordinatorMetrics {
  /** `shardwise_steps_total`: global steps completed (each one optimizer update). */
  steps: Counter;
  /** `shardwise_samples_total`: training samples consumed by completed steps. */
  samples: Counter;
  /** `shardwise_samples_per_second`: throughput over the last steps, as the coordinator measures it. */
  samplesPerSecond: Gauge;
  /** `shardwise_step_duration_seconds`: wall time of a global step, assignment to applied update. */
  stepDuration: Histogram;
  /** `shardwise_step_phase_duration_seconds{phase}`: the step's time in compute, transfer, reduce and wait. */
  stepPhaseDuration: Histogram<PhaseLabel>;
  /** `shardwise_worker_step_seconds{worker}`: each worker's time for its share of the last step. */
  workerStepSeconds: Gauge<WorkerLabel>;
  /** `shardwise_worker_committed_samples_total{worker}`: training samples in each worker's shares of committed steps. */
  workerSamples: Counter<WorkerLabel>;
  /** `shardwise_loss{split}`: mean cross-entropy loss (train: recent steps; validation: last evaluation). */
  loss: Gauge<SplitLabel>;
  /** `shardwise_top1_accuracy_ratio{split}`: top-1 accuracy in [0, 1]. */
  top1Accuracy: Gauge<SplitLabel>;
  /** `shardwise_top5_accuracy_ratio{split}`: top-5 accuracy in [0, 1]. */
  top5Accuracy: Gauge<SplitLabel>;
  /** `shardwise_learning_rate{group}`: learning rate in force for each param group. */
  learningRate: Gauge<GroupLabel>;
  /** `shardwise_param_group_frozen{group}`: 1 while the group is frozen, else 0. */
  frozen: Gauge<GroupLabel>;
  /** `shardwise_config_version`: the training configuration version step assignments carry. */
  configVersion: Gauge;
  /** `shardwise_active_workers`: workers taking part in steps now. */
  activeWorkers: Gauge;
  /** `shardwise_desired_workers`: workers the job asks for (the scale target). */
  desiredWorkers: Gauge;
  /** `shardwise_waiting_for_workers`: 1 while training is paused below minWorkers, else 0. */
  waitingForWorkers: Gauge;
  /**
   * `shardwise_autoscale_efficiency_ratio{workers}`: with `distributed.autoscale`, the throughput per worker
   * last measured at that many workers over the one-worker rate: what the autoscaler compares with
   * `minEfficiency`.
   */
  autoscaleEfficiency: Gauge<WorkersLabel>;
  /** `shardwise_worker_joins_total`: workers admitted. */
  workerJoins: Counter;
  /** `shardwise_worker_leaves_total`: workers that left cleanly (drained). */
  workerLeaves: Counter;
  /** `shardwise_worker_failures_total`: workers dropped for a crash, a missed deadline or a lost link. */
  workerFailures: Counter;
  /** `shardwise_worker_id_in_use_refusals_total`: registrations refused because another live process holds the id. */
  idInUseRefusals: Counter;
  /** `shardwise_redone_shares_total`: step shares reassigned because their worker failed. */
  redoneShares: Counter;
  /** `shardwise_allreduce_duration_seconds`: the coordinator's part of a step's allreduce. */
  allreduceDuration: Histogram;
  /** `shardwise_allreduce_failures_total`: allreduce attempts that failed (a member died or stalled); the step is redone. */
  allreduceFailures: Counter;
  /** `shardwise_ahead_shares_total`: shares of a step handed out before the step they follow committed (see PreparedStep). */
  aheadShares: Counter;
  /** `shardwise_sent_bytes_total`: bytes the coordinator sent to workers. */
  sentBytes: Counter;
  /** `shardwise_received_bytes_total`: bytes the coordinator received from workers. */
  receivedBytes: Counter;
  /** `shardwise_exactly_once_violations_total`: epochs whose report did not count every sample exactly once. */
  exactlyOnceViolations: Counter;
  /** `shardwise_checkpoint_failures_total`: checkpoints that could not be written; training went on from the last good one. */
  checkpointFailures: Counter;
  /** `shardwise_epoch`: the current epoch, from 0. */
  epoch: Gauge;
  /** `shardwise_epoch_progress_ratio`: fraction of the current epoch done, in [0, 1]. */
  epochProgress: Gauge;
  /** `shardwise_eta_seconds`: estimated time until the job finishes. */
  etaSeconds: Gauge;
}

/**
 * Registers the coordinator's metrics in `registry` (never prom-client's global one, so tests and a
 * single-process run can hold several independent registries) and returns them typed.
 */
export function createCoordinatorMetrics(registry: Registry): CoordinatorMetrics {
  const registers = [registry];
  const counter = (name: string, help: string) => new Counter({ name, help, registers });
  const gauge = (name: string, help: string) => new Gauge({ name, help, registers });

  const stepPhaseDuration = new Histogram({
    name: 'shardwise_step_phase_duration_seconds',
    help: 'Time of a global step spent in each phase (compute, transfer, reduce, wait).',
    labelNames: PHASE_LABEL,
    buckets: [...PHASE_SECONDS_BUCKETS],
    registers,
  });
  // Zeroed so every phase has a series from the first scrape, and rate() works from the start.
  for (const phase of STEP_PHASES) stepPhaseDuration.zero({ phase });

  return {
    steps: counter('shardwise_steps_total', 'Global training steps completed.'),
    samples: counter('shardwise_samples_total', 'Training samples consumed by completed steps.'),
    samplesPerSecond: gauge('shardwise_samples_per_second', 'Training throughput over recent steps.'),
    stepDuration: new Histogram({
      name: 'shardwise_step_duration_seconds',
      help: 'Wall time of a global step, from assignment to applied update.',
      buckets: [...STEP_SECONDS_BUCKETS],
      registers,
    }),
    stepPhaseDuration,
    workerStepSeconds: new Gauge({
      name: 'shardwise_worker_step_seconds',
      help: "Each worker's time for its share of the last step; the slowest is the straggler.",
      labelNames: WORKER_LABEL,
      registers,
    }),
    workerSamples: new Counter({
      name: 'shardwise_worker_committed_samples_total',
      help: "Training samples in each worker's shares of committed steps.",
      labelNames: WORKER_LABEL,
      registers,
    }),
    loss: new Gauge({
      name: 'shardwise_loss',
      help: 'Mean cross-entropy loss (train: recent steps, validation: last evaluation).',
      labelNames: SPLIT_LABEL,
      registers,
    }),
    top1Accuracy: new Gauge({
      name: 'shardwise_top1_accuracy_ratio',
      help: 'Top-1 accuracy in [0, 1].',
      labelNames: SPLIT_LABEL,
      registers,
    }),
    top5Accuracy: new Gauge({
      name: 'shardwise_top5_accuracy_ratio',
      help: 'Top-5 accuracy in [0, 1].',
      labelNames: SPLIT_LABEL,
      registers,
    }),
    learningRate: new Gauge({
      name: 'shardwise_learning_rate',
      help: 'Learning rate in force for each param group.',
      labelNames: GROUP_LABEL,
      registers,
    }),
    frozen: new Gauge({
      name: 'shardwise_param_group_frozen',
      help: '1 while the param group is frozen, else 0.',
      labelNames: GROUP_LABEL,
      registers,
    }),
    configVersion: gauge('shardwise_config_version', 'Training configuration version carried by step assignments.'),
    activeWorkers: gauge('shardwise_active_workers', 'Workers taking part in steps.'),
    desiredWorkers: gauge('shardwise_desired_workers', 'Workers the job asks for.'),
    waitingForWorkers: gauge('shardwise_waiting_for_workers', '1 while training is paused below minWorkers, else 0.'),
    autoscaleEfficiency: new Gauge({
      name: 'shardwise_autoscale_efficiency_ratio',
      help: 'Autoscaler: throughput per worker last measured at this many workers, over the one-worker rate.',
      labelNames: WORKERS_LABEL,
      registers,
    }),
    workerJoins: counter('shardwise_worker_joins_total', 'Workers admitted to the job.'),
    workerLeaves: counter('shardwise_worker_leaves_total', 'Workers that left cleanly.'),
    workerFailures: counter('shardwise_worker_failures_total', 'Workers dropped for a crash, deadline or lost link.'),
    idInUseRefusals: counter('shardwise_worker_id_in_use_refusals_total', 'Registrations refused: another live process holds the worker id.'),
    redoneShares: counter('shardwise_redone_shares_total', 'Step shares reassigned after their worker failed.'),
    allreduceDuration: new Histogram({
      name: 'shardwise_allreduce_duration_seconds',
      help: "The coordinator's part of a step's ring allreduce, from connecting to its peers to holding the sum.",
      buckets: [...PHASE_SECONDS_BUCKETS],
      registers,
    }),
    allreduceFailures: counter('shardwise_allreduce_failures_total', 'Allreduce attempts that failed; the step was collected and reduced again.'),
    aheadShares: counter('shardwise_ahead_shares_total', 'Shares of a step handed out while the step before it committed (the worker was reducing it or held its result).'),
    sentBytes: counter('shardwise_sent_bytes_total', 'Bytes sent to workers.'),
    receivedBytes: counter('shardwise_received_bytes_total', 'Bytes received from workers.'),
    exactlyOnceViolations: counter('shardwise_exactly_once_violations_total', 'Epochs whose report did not count every training sample exactly once.'),
    checkpointFailures: counter('shardwise_checkpoint_failures_total', 'Checkpoints that could not be written (the last good one stays the resume point).'),
    epoch: gauge('shardwise_epoch', 'Current epoch, from 0.'),
    epochProgress: gauge('shardwise_epoch_progress_ratio', 'Fraction of the current epoch done, in [0, 1].'),
    etaSeconds: gauge('shardwise_eta_seconds', 'Estimated time until the job finishes.'),
  };
}
