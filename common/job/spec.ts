/**
 * The job spec after validation and defaults: what every part of shardwise consumes. Users write it as
 * YAML or JSON (see `parseJobSpec`); every field below is filled, so consumers never re-apply defaults.
 */

/** Which layers a freeze/unfreeze or learning-rate multiplier applies to. */
export const PARAM_GROUPS = ['backbone', 'head'] as const;
export type ParamGroupName = (typeof PARAM_GROUPS)[number];

export const ARCHITECTURES = ['mobilenet_v1', 'resnet18', 'alexnet', 'vgg_small', 'small_cnn', 'layers'] as const;
export type ArchitectureName = (typeof ARCHITECTURES)[number];

export const HEAD_KINDS = ['linear', 'seed'] as const;
export type HeadKind = (typeof HEAD_KINDS)[number];

export const OPTIMIZERS = ['sgd', 'adam', 'adamw'] as const;
export type OptimizerName = (typeof OPTIMIZERS)[number];

export const LR_SCHEDULES = ['constant', 'step', 'cosine', 'plateau'] as const;
export type LrScheduleName = (typeof LR_SCHEDULES)[number];

export interface AugmentSpec {
  /** Random crop back to 32x32 after zero-padding by this many pixels; 0 disables. @default 4 */
  cropPadding: number;
  /** Random horizontal flip with probability 0.5. @default true */
  horizontalFlip: boolean;
  /** Colour jitter strengths, torchvision ColorJitter semantics; 0 disables each. @default 0.2,0.2,0.2,0.05 */
  brightness: number;
  contrast: number;
  saturation: number;
  hue: number;
  /** Random rotation in [-rotationDeg, rotationDeg] degrees; 0 disables. @default 15 */
  rotationDeg: number;
}

export interface DataSpec {
  dataset: 'cifar10';
  /** Folder with data_batch_*.bin; undefined means CIFAR10_DIR, then the download cache. */
  dir?: string;
  /** Fraction of the training images held out (stratified) for validation; 0 only with `testSet`. @default 0.1 */
  valFraction: number;
  /**
   * Also evaluate on CIFAR-10's official test_batch.bin after every epoch, as the seed documents do. Reported
   * as `test`, beside validation; never used for a decision (ReduceLROnPlateau, a sweep's objective). @default false
   */
  testSet: boolean;
  /** Use only the first N training images (before the split); 0 means all. @default 0 */
  limit: number;
  augment: AugmentSpec;
}

export interface ModelSpec {
  architecture: ArchitectureName;
  /** model.json path or http(s) URL; required for 'layers', optional override for 'mobilenet_v1'. */
  path?: string;
  /** Layer name to cut the loaded model after; required for 'layers'. */
  cutAt?: string;
  /** Load pretrained weights (false re-initialises them: the from-scratch baseline). @default true */
  pretrained: boolean;
  /** Side length the backbone sees; raw 32x32 CIFAR images are upsampled inside the model. @default 32 */
  inputSize: number;
  head: HeadKind;
  /** Hidden units of the 'seed' head. @default 16 */
  headUnits: number;
  /** Dropout rate of the 'seed' head. @default 0.5 */
  dropout: number;
  /** @default 10 */
  numClasses: number;
}

export interface OptimizerSpec {
  type: OptimizerName;
  /** Base learning rate of the backbone group (the head gets it times its multiplier). */
  learningRate: number;
  /** SGD momentum. @default 0.9 */
  momentum: number;
  /** @default false */
  nesterov: boolean;
  /** L2 penalty for sgd/adam, decoupled decay for adamw. @default 0 (adamw: 0.01) */
  weightDecay: number;
  /** @default 0.9 */
  beta1: number;
  /** @default 0.999 */
  beta2: number;
  /** @default 1e-7 */
  epsilon: number;
}

export interface ParamGroupSpec {
  /** Multiplies the scheduled learning rate for this group. @default backbone 1, head 10 */
  lrMultiplier: number;
}

export interface FreezeSpec {
  /** Epochs (from 0) during which the backbone is frozen, BatchNorm in inference mode. @default 0 */
  backboneEpochs: number;
  /**
   * Base learning rate in every epoch the backbone trains, from `backboneEpochs` on (from epoch 0 when
   * `backboneEpochs` is 0); undefined keeps optimizer.learningRate. Refused when the backbone never trains.
   */
  unfreezeLearningRate?: number;
}

export interface ScheduleSpec {
  type: LrScheduleName;
  /** Linear warm-up from 0 over this many epochs (per step). @default 0 */
  warmupEpochs: number;
  /** step: multiply by gamma every stepEpochs epochs. @default 10 */
  stepEpochs: number;
  /** @default 0.1 */
  gamma: number;
  /** cosine: floor of the annealed rate. @default 0 */
  minLearningRate: number;
  /** plateau: ReduceLROnPlateau on validation loss. */
  plateau: { factor: number; patience: number; minDelta: number; cooldown: number; minLearningRate: number };
}

export interface TrainingSpec {
  epochs: number;
  /** Global batch size (summed over workers in a distributed job). @default 32 */
  batchSize: number;
  /**
   * Samples per micro-batch: the unit of work a worker computes and the span BatchNorm normalises over (ghost
   * batch norm), fixed so results do not depend on how many workers share a step. @default min(batchSize, 16)
   */
  microBatchSize: number;
  /** @default 128 */
  evalBatchSize: number;
}

export interface OutputSpec {
  /** Parent folder of run directories. @default 'runs' */
  runsDir: string;
  /** Write a checkpoint every N epochs (the last epoch always). @default 1 */
  checkpointEveryEpochs: number;
}

export interface DistributedSpec {
  /** Training runs while at least this many workers are active, and waits below it. @default 1 */
  minWorkers: number;
  /** Registrations beyond this many live workers are refused. @default 16 */
  maxWorkers: number;
  /** Workers the launcher starts (local cluster, Helm replicas); `shardwise scale` changes it. @default 2 */
  desiredWorkers: number;
  /** A share not returned this long after it was handed out is redone by the other workers. @default 120000 */
  stepDeadlineMs: number;
  /** Workers send a heartbeat this often. @default 1000 */
  heartbeatIntervalMs: number;
  /** A worker silent this long is dropped and its share redone. @default 10000 */
  leaseMs: number;
  /** Checkpoint every N global steps as well as at the epoch ends output.checkpointEveryEpochs picks; 0 means those only. @default 0 */
  checkpointEverySteps: number;
  /** Compare every replica's weight hash with the coordinator's every N steps (and at epoch ends). @default 10 */
  hashEverySteps: number;
  /** Largest gRPC message in either direction; tensors travel in chunks below it. @default 4194304 */
  maxMessageBytes: number;
  /**
   * How a step's gradient sums meet. `allreduce`: the workers that computed shares reduce them among
   * themselves over a raw-TCP data plane (common/collective), the coordinator receiving the sum too, and
   * each applies the optimizer itself, as Horovod and DDP do. `parameter-server`: every worker pushes its
   * sums to the coordinator over gRPC and receives the changed weights back (W x model size through one
   * process). @default 'allreduce'
   */
  exchange: ExchangeMode;
  /**
   * What the allreduce's frames carry. `none`: float32, bit-exact (every replica equals the single-process
   * trainer's). `fp16`: IEEE half floats rounded to nearest even, half the bytes; every replica still holds
   * the same bytes, but no longer the single-process trainer's. Allreduce only. @default 'none'
   */
  compression: CompressionMode;
  /**
   * With `fp16`: gradient sums are multiplied by this before the conversion and divided by it after
   * (Horovod's prescale_factor), to keep them inside fp16's range (±65504) and above its subnormals.
   * A reduced value beyond the range fails the step with an error naming the tensor. @default 1
   */
  prescaleFactor: number;
  /**
   * Allreduce only: a step's allreduce is planned when the step opens and handed out with its shares, so
   * each worker starts it as it pushes its share, and its push is answered with its next share at once;
   * the coordinator adopts the plan when every share is in as planned, else voids it and runs the usual
   * attempt (coordinator/step/planned-attempt.ts). @default false
   */
  plannedExchange: boolean;
  /** The coordinator changes the worker count itself (see {@link AutoscaleSpec}); absent: only operators scale. */
  autoscale?: AutoscaleSpec;
}

/**
 * Autoscaling: the coordinator adds a worker while the throughput per worker stays at or above
 * `minEfficiency` of the one-worker rate (the per-worker throughput measured at the smallest worker count
 * the job has run with), and removes one, for good, when a count falls below it. It acts through the
 * Kubernetes API in a cluster (the worker StatefulSet's scale), else through the local launcher.
 */
export interface AutoscaleSpec {
  /** Fewest workers it scales to. @default distributed.minWorkers */
  minWorkers: number;
  /**
   * Most workers it scales to, capped at the micro-batches per step (more workers would idle).
   * @default the micro-batches per step, or distributed.maxWorkers if fewer
   */
  maxWorkers: number;
  /** Add a worker while throughput per worker is at least this fraction of the one-worker rate. @default 0.8 */
  minEfficiency: number;
  /** Steps measured at a worker count before deciding on it. @default 5 */
  measureSteps: number;
  /** No change sooner than this after the previous one. @default 60000 */
  cooldownMs: number;
}

/** The data-plane encodings of {@link DistributedSpec.compression}. */
export const COMPRESSION_MODES = ['none', 'fp16'] as const;
export type CompressionMode = (typeof COMPRESSION_MODES)[number];

/** The gradient exchange modes of {@link DistributedSpec.exchange}. */
export const EXCHANGE_MODES = ['allreduce', 'parameter-server'] as const;
export type ExchangeMode = (typeof EXCHANGE_MODES)[number];

export interface JobSpec {
  name: string;
  /** Seeds shuffling, augmentation, initialisation, dropout. @default 0 */
  seed: number;
  data: DataSpec;
  model: ModelSpec;
  training: TrainingSpec;
  optimizer: OptimizerSpec;
  paramGroups: Record<ParamGroupName, ParamGroupSpec>;
  freeze: FreezeSpec;
  schedule: ScheduleSpec;
  output: OutputSpec;
  distributed: DistributedSpec;
}
