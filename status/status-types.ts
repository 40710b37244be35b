/**
 * The JSON the status page reads (`/status.json`, and each `/events` message): the job's public facts, where
 * it stands, its workers, the learning rate and freeze state of each parameter group, and the append-only
 * series (step losses, epoch results, timeline events). Series are sent from a cursor on, so a page that
 * already holds the first 500 steps receives only the new ones.
 */

/** The job spec's public fields: what was trained and how, never paths, hosts or anything credential-like. */
export interface StatusJob {
  name: string;
  architecture: string;
  pretrained: boolean;
  inputSize: number;
  epochs: number;
  stepsPerEpoch: number;
  batchSize: number;
  microBatchSize: number;
  optimizer: string;
  exchange: string;
  minWorkers: number;
  maxWorkers: number;
  /** The coordinator's lifecycle state: starting, running, draining, stopped or failed. */
  state: string;
}

/** Where the job stands, from the coordinator's Prometheus gauges. */
export interface StatusProgress {
  /** The current epoch, from 0. */
  epoch: number;
  /** Fraction of the current epoch done, in [0, 1]. */
  epochProgress: number;
  /** Global steps committed. */
  globalSteps: number;
  /** Steps of the whole job. */
  totalSteps: number;
  /** Estimated seconds until the job finishes; null before the first step. */
  etaSeconds: number | null;
  /** Throughput over the last steps, images per second. */
  samplesPerSecond: number;
  activeWorkers: number;
  desiredWorkers: number;
  /** Training is paused below minWorkers. */
  waitingForWorkers: boolean;
  /** Latest running training loss and accuracy of the epoch, and the latest validation ones (null before any). */
  train: { loss: number | null; top1: number | null };
  validation: { loss: number | null; top1: number | null };
}

/** Learning rate and freeze state of one parameter group. */
export interface StatusGroup {
  group: string;
  learningRate: number | null;
  frozen: boolean;
}

/** One worker id's latest incarnation. */
export interface StatusWorker {
  id: string;
  incarnation: number;
  /** joining, active, draining, left or failed. */
  state: string;
  /** Its time for its share of the last step, seconds; null when it has none. */
  stepSeconds: number | null;
  /** Training samples in its shares of committed steps. */
  samples: number;
  /** When its last heartbeat (any call) arrived, on the coordinator's clock (ms since the epoch). */
  lastHeartbeatMs: number;
  failureReason?: string;
}

/** One committed step of the loss curve. */
export interface StatusStepPoint {
  globalStep: number;
  epoch: number;
  /** Null when the loss was not finite (a diverged step). */
  loss: number | null;
  samplesPerSec: number;
  /**
   * The epoch's running training top-1 (the `shardwise_top1_accuracy_ratio{split="train"}` gauge) as the
   * source saw it after this step; set on the last step of each refresh, null on the others.
   */
  runningTop1: number | null;
}

/** The end of one epoch: training means and the validation pass. */
export interface StatusEpochPoint {
  epoch: number;
  /** The global step count at the end of the epoch, so epoch points sit on the step axis. */
  globalSteps: number;
  /** Null where the value was not finite (or no validation ran). */
  trainLoss: number | null;
  trainTop1: number | null;
  valLoss: number | null;
  valTop1: number | null;
  frozen: boolean;
  seconds: number;
}

/** The kinds of timeline entries. */
export const STATUS_EVENT_KINDS = ['freeze', 'unfreeze', 'lr-change', 'join', 'leave', 'failure', 'checkpoint', 'state'] as const;
/** One of {@link STATUS_EVENT_KINDS}. */
export type StatusEventKind = (typeof STATUS_EVENT_KINDS)[number];

/** One timeline entry. */
export interface StatusEvent {
  kind: StatusEventKind;
  /** When the status source saw it (coordinator clock, ms); null for records from before a resume. */
  atMs: number | null;
  /** The epoch it belongs to, when it has one. */
  epoch?: number;
  /** What happened, for a person. */
  text: string;
}

/** How much of each series a client already holds. */
export interface StatusCursor {
  steps: number;
  epochs: number;
  events: number;
}

/** An append-only series from `from` on: `items[k]` is entry `from + k`. */
export interface StatusSlice<T> {
  from: number;
  items: T[];
}

/** Everything the page shows. */
export interface StatusSnapshot {
  /** The coordinator's clock when the snapshot was taken (ms), so ages do not depend on the browser's clock. */
  nowMs: number;
  /**
   * Random per source (per coordinator process): a page that sees it change (a restarted, resumed coordinator)
   * drops what it holds and reads everything again, since the new process numbers its series afresh.
   */
  instance: string;
  job: StatusJob;
  progress: StatusProgress;
  groups: StatusGroup[];
  workers: StatusWorker[];
  steps: StatusSlice<StatusStepPoint>;
  epochs: StatusSlice<StatusEpochPoint>;
  events: StatusSlice<StatusEvent>;
}
