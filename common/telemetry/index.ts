/**
 * Prometheus metrics of the coordinator and the workers, on a registry the caller creates and passes in
 * (never prom-client's global one), and the small HTTP endpoint that serves them.
 */
export { createCoordinatorMetrics, type CoordinatorMetrics } from './coordinator-metrics';
export { createWorkerMetrics, type WorkerMetrics } from './worker-metrics';
export { serveMetrics, type MetricsServer, type MetricsServerOptions } from './metrics-server';
export { TimelineError } from './errors';
export {
  closeTimeline,
  openTimeline,
  processTimeline,
  timelinePartsDir,
  type Timeline,
  type TimelineOptions,
  type TraceEvent,
} from './timeline';
export { mergeTimeline, type MergedTimeline } from './timeline-merge';
export {
  GROUP_LABEL,
  GROUPS,
  PHASE_LABEL,
  PHASE_SECONDS_BUCKETS,
  SPLIT_LABEL,
  SPLITS,
  STEP_PHASES,
  STEP_SECONDS_BUCKETS,
  WORKER_LABEL,
  type GroupLabel,
  type PhaseLabel,
  type Split,
  type SplitLabel,
  type StepPhase,
  type WorkerLabel,
} from './labels';
export { countTlsReloads, RELOAD_RESULT_LABEL } from './tls-reload-metrics';
