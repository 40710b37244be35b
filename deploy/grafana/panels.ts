/**
 * What the shardwise Grafana dashboard shows: every panel as plain data (title, unit, PromQL), so the
 * dashboard builder (dashboard.ts) and a reader see the same list. Metric names are those of
 * common/telemetry; every query is filtered by the `$namespace` variable. Rates use Grafana's
 * `$__rate_interval`; event counts use `$__range`, the dashboard's time range, so a join or a failure stays
 * visible for as long as it is in view.
 */

/** How a panel draws its queries. */
export type PanelKind = 'timeseries' | 'stat' | 'state-timeline';

/** One query of a panel. */
export interface PanelQuery {
  /** PromQL; `$namespace`, `$__rate_interval` and `$__range` are Grafana's to fill. */
  expr: string;
  /** Series name in the legend (Grafana's `{{label}}` template). */
  legend: string;
}

/** One panel of the dashboard. */
export interface PanelSpec {
  kind: PanelKind;
  title: string;
  description: string;
  /** Grafana unit id (`s`, `Bps`, `percentunit`, `short`, ...). */
  unit: string;
  /** Width in grid columns (of 24). */
  width: number;
  queries: readonly PanelQuery[];
}

/** A row of panels under a heading. */
export interface RowSpec {
  title: string;
  panels: readonly PanelSpec[];
}

/** `metric{namespace=~"$namespace"}`: every query is scoped by the dashboard's namespace variable. */
function m(metric: string, labels = ''): string {
  return `${metric}{namespace=~"$namespace"${labels ? `, ${labels}` : ''}}`;
}

function rate(metric: string): string {
  return `rate(${m(metric)}[$__rate_interval])`;
}

/**
 * p-quantile of a histogram over the rate interval, kept apart by `by` (plus `le`), only where the interval
 * holds observations: over a window without any (a worker drained, or between shares) every bucket's rate
 * is 0, and histogram_quantile answers NaN rather than nothing.
 */
function quantile(q: number, histogram: string, by: string[] = []): string {
  const observed = `(sum by (${by.join(', ')}) (${rate(`${histogram}_count`)}) > 0)`;
  return `histogram_quantile(${q}, sum by (${[...by, 'le'].join(', ')}) (${rate(`${histogram}_bucket`)})) and on (${by.join(', ')}) ${observed}`;
}

function increase(metric: string): string {
  return `sum(increase(${m(metric)}[$__range]))`;
}

/** The dashboard's rows, top to bottom. */
export const DASHBOARD_ROWS: readonly RowSpec[] = [
  {
    title: 'Progress',
    panels: [
      { kind: 'timeseries', title: 'Throughput', unit: 'short', width: 8,
        description: 'Training samples per second: the whole job (coordinator) and each worker\'s compute.',
        queries: [
          { expr: `sum(${rate('shardwise_samples_total')})`, legend: 'job samples/s' },
          { expr: `sum by (pod) (${rate('shardwise_worker_samples_total')})`, legend: '{{pod}}' },
        ] },
      { kind: 'timeseries', title: 'Epoch progress', unit: 'short', width: 8,
        description: 'Epochs done (the current epoch plus the fraction of it done).',
        queries: [{ expr: `max(${m('shardwise_epoch')} + ${m('shardwise_epoch_progress_ratio')})`, legend: 'epochs done' }] },
      { kind: 'stat', title: 'ETA', unit: 's', width: 8,
        description: 'Estimated time until the job finishes, from the recent step time.',
        queries: [{ expr: `max(${m('shardwise_eta_seconds')})`, legend: 'ETA' }] },
    ],
  },
  {
    title: 'Step time',
    panels: [
      { kind: 'timeseries', title: 'Step time p50 / p95', unit: 's', width: 8,
        description: 'Wall time of a global step, assignment to applied update.',
        queries: [
          { expr: quantile(0.5, 'shardwise_step_duration_seconds'), legend: 'p50' },
          { expr: quantile(0.95, 'shardwise_step_duration_seconds'), legend: 'p95' },
        ] },
      { kind: 'timeseries', title: 'Share time per worker p50 / p95', unit: 's', width: 8,
        description: 'Each worker\'s time for its share of a step; a straggler is the top line.',
        queries: [
          { expr: quantile(0.5, 'shardwise_worker_share_duration_seconds', ['pod']), legend: '{{pod}} p50' },
          { expr: quantile(0.95, 'shardwise_worker_share_duration_seconds', ['pod']), legend: '{{pod}} p95' },
        ] },
      { kind: 'timeseries', title: 'Step time breakdown', unit: 's', width: 8,
        description: 'Mean seconds per step in compute, transfer, reduce and wait.',
        queries: [{
          expr: `sum by (phase) (${rate('shardwise_step_phase_duration_seconds_sum')}) / sum by (phase) (${rate('shardwise_step_phase_duration_seconds_count')})`,
          legend: '{{phase}}',
        }] },
    ],
  },
  {
    title: 'Quality',
    panels: [
      { kind: 'timeseries', title: 'Loss', unit: 'short', width: 12,
        description: 'Mean cross-entropy: train over recent steps, validation at the last evaluation.',
        queries: [{ expr: `max by (split) (${m('shardwise_loss')})`, legend: '{{split}}' }] },
      { kind: 'timeseries', title: 'Accuracy top-1 / top-5', unit: 'percentunit', width: 12,
        description: 'Top-1 and top-5 accuracy, train and validation.',
        queries: [
          { expr: `max by (split) (${m('shardwise_top1_accuracy_ratio')})`, legend: '{{split}} top-1' },
          { expr: `max by (split) (${m('shardwise_top5_accuracy_ratio')})`, legend: '{{split}} top-5' },
        ] },
    ],
  },
  {
    title: 'Configuration',
    panels: [
      { kind: 'timeseries', title: 'Learning rate per parameter group', unit: 'short', width: 12,
        description: 'The learning rate in force for each parameter group (steps show schedule, unfreeze and plateau changes).',
        queries: [{ expr: `max by (group) (${m('shardwise_learning_rate')})`, legend: '{{group}}' }] },
      { kind: 'state-timeline', title: 'Freeze state', unit: 'short', width: 12,
        description: '1 while a parameter group is frozen.',
        queries: [{ expr: `max by (group) (${m('shardwise_param_group_frozen')})`, legend: '{{group}}' }] },
    ],
  },
  {
    title: 'Workers',
    panels: [
      { kind: 'timeseries', title: 'Active vs desired workers', unit: 'short', width: 12,
        description: 'Workers taking part in steps, the scale target, and whether training waits below minWorkers.',
        queries: [
          { expr: `max(${m('shardwise_active_workers')})`, legend: 'active' },
          { expr: `max(${m('shardwise_desired_workers')})`, legend: 'desired' },
          { expr: `max(${m('shardwise_waiting_for_workers')})`, legend: 'waiting below minWorkers' },
        ] },
      { kind: 'stat', title: 'Joins, leaves, failures, redone shares', unit: 'short', width: 12,
        description: 'Membership events in the time range; redone shares are step shares recomputed after a failure.',
        queries: [
          { expr: increase('shardwise_worker_joins_total'), legend: 'joins' },
          { expr: increase('shardwise_worker_leaves_total'), legend: 'leaves' },
          { expr: increase('shardwise_worker_failures_total'), legend: 'failures' },
          { expr: increase('shardwise_redone_shares_total'), legend: 'redone shares' },
        ] },
    ],
  },
  {
    title: 'Traffic and invariants',
    panels: [
      { kind: 'timeseries', title: 'Bytes per second', unit: 'Bps', width: 12,
        description: 'gRPC traffic of the coordinator (assignments out, gradients in) and of all workers.',
        queries: [
          { expr: `sum(${rate('shardwise_sent_bytes_total')})`, legend: 'coordinator sent' },
          { expr: `sum(${rate('shardwise_received_bytes_total')})`, legend: 'coordinator received' },
          { expr: `sum(${rate('shardwise_worker_sent_bytes_total')})`, legend: 'workers sent' },
        ] },
      { kind: 'stat', title: 'Exactly-once violations, replica hash mismatches', unit: 'short', width: 12,
        description: 'Must stay 0: epochs that did not count every sample once, and worker replicas whose weights differed.',
        queries: [
          { expr: `sum(${m('shardwise_exactly_once_violations_total')})`, legend: 'exactly-once violations' },
          { expr: increase('shardwise_replica_hash_mismatches_total'), legend: 'hash mismatches' },
        ] },
    ],
  },
];
