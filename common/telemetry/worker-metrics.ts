import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { UNVERIFIED_REASONS } from '../bus';
import {
  GROUP_LABEL,
  PHASE_LABEL,
  REASON_LABEL,
  PHASE_SECONDS_BUCKETS,
  STEP_PHASES,
  STEP_SECONDS_BUCKETS,
  type GroupLabel,
  type PhaseLabel,
  type ReasonLabel,
} from './labels';

/**
 * What a worker exports about itself. Names start with `shardwise_worker_` so that a single-process run
 * can register coordinator and worker metrics in one registry without a clash, and so that a dashboard
 * never mixes a worker's share figures with the coordinator's global ones.
 */
export interface WorkerMetrics {
  /** `shardwise_worker_shares_total`: step shares this worker computed and returned. */
  shares: Counter;
  /** `shardwise_worker_samples_total`: training samples this worker processed. */
  samples: Counter;
  /** `shardwise_worker_samples_per_second`: this worker's compute throughput over recent shares. */
  samplesPerSecond: Gauge;
  /** `shardwise_worker_share_duration_seconds`: wall time of one share, assignment received to result sent. */
  shareDuration: Histogram;
  /** `shardwise_worker_share_phase_duration_seconds{phase}`: a share's time in compute, transfer, reduce, wait. */
  sharePhaseDuration: Histogram<PhaseLabel>;
  /** `shardwise_worker_train_loss`: mean loss of this worker's recent shares. */
  trainLoss: Gauge;
  /** `shardwise_worker_learning_rate{group}`: the learning rate this worker applies per param group. */
  learningRate: Gauge<GroupLabel>;
  /** `shardwise_worker_param_group_frozen{group}`: 1 while the group is frozen on this worker. */
  frozen: Gauge<GroupLabel>;
  /** `shardwise_worker_config_version`: the configuration version this worker runs with. */
  configVersion: Gauge;
  /** `shardwise_worker_sent_bytes_total`: bytes sent to the coordinator. */
  sentBytes: Counter;
  /** `shardwise_worker_received_bytes_total`: bytes received from the coordinator. */
  receivedBytes: Counter;
  /** `shardwise_worker_bus_connected`: 1 while connected to the event bus (0: events may be missed). */
  busConnected: Gauge;
  /** `shardwise_worker_bus_reconnects_total`: event bus reconnections (each one triggers a reconcile). */
  busReconnects: Counter;
  /** `shardwise_worker_bus_rejected_events_total`: bus messages rejected as corrupt or unknown. */
  busRejectedEvents: Counter;
  /**
   * `shardwise_worker_bus_unverified_events_total{reason}`: well-formed events this worker could not verify
   * (`UNVERIFIED_REASONS`), dropped; in an `--insecure` job every event, taken anyway, as `unsigned`.
   */
  busUnverifiedEvents: Counter<ReasonLabel>;
}

/** Registers a worker's metrics in `registry` (never the global one) and returns them typed. */
export function createWorkerMetrics(registry: Registry): WorkerMetrics {
  const registers = [registry];
  const counter = (name: string, help: string) => new Counter({ name, help, registers });
  const gauge = (name: string, help: string) => new Gauge({ name, help, registers });

  const sharePhaseDuration = new Histogram({
    name: 'shardwise_worker_share_phase_duration_seconds',
    help: "Time of this worker's step share spent in each phase (compute, transfer, reduce, wait).",
    labelNames: PHASE_LABEL,
    buckets: [...PHASE_SECONDS_BUCKETS],
    registers,
  });
  for (const phase of STEP_PHASES) sharePhaseDuration.zero({ phase });
  const busUnverifiedEvents = new Counter({
    name: 'shardwise_worker_bus_unverified_events_total',
    help: 'Event bus events this worker could not verify (unsigned, bad-signature, other-job, stale replay), dropped; ' +
      'in an --insecure job every event, taken unverified, as unsigned.',
    labelNames: REASON_LABEL,
    registers,
  });
  // Zero from the start, so an alert on a rise sees the first forged event.
  for (const reason of UNVERIFIED_REASONS) busUnverifiedEvents.inc({ reason }, 0);

  return {
    shares: counter('shardwise_worker_shares_total', 'Step shares computed and returned.'),
    samples: counter('shardwise_worker_samples_total', 'Training samples processed.'),
    samplesPerSecond: gauge('shardwise_worker_samples_per_second', 'Compute throughput over recent shares.'),
    shareDuration: new Histogram({
      name: 'shardwise_worker_share_duration_seconds',
      help: 'Wall time of one step share, assignment received to result sent.',
      buckets: [...STEP_SECONDS_BUCKETS],
      registers,
    }),
    sharePhaseDuration,
    trainLoss: gauge('shardwise_worker_train_loss', "Mean loss of this worker's recent shares."),
    learningRate: new Gauge({
      name: 'shardwise_worker_learning_rate',
      help: 'Learning rate this worker applies per param group.',
      labelNames: GROUP_LABEL,
      registers,
    }),
    frozen: new Gauge({
      name: 'shardwise_worker_param_group_frozen',
      help: '1 while the param group is frozen on this worker, else 0.',
      labelNames: GROUP_LABEL,
      registers,
    }),
    configVersion: gauge('shardwise_worker_config_version', 'Configuration version this worker runs with.'),
    sentBytes: counter('shardwise_worker_sent_bytes_total', 'Bytes sent to the coordinator.'),
    receivedBytes: counter('shardwise_worker_received_bytes_total', 'Bytes received from the coordinator.'),
    busConnected: gauge('shardwise_worker_bus_connected', '1 while connected to the event bus, else 0.'),
    busReconnects: counter('shardwise_worker_bus_reconnects_total', 'Event bus reconnections.'),
    busRejectedEvents: counter(
      'shardwise_worker_bus_rejected_events_total',
      'Event bus messages rejected as corrupt or unknown.',
    ),
    busUnverifiedEvents,
  };
}
