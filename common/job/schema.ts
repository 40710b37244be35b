import { z } from 'zod';
import { ARCHITECTURES, COMPRESSION_MODES, EXCHANGE_MODES, HEAD_KINDS, LR_SCHEDULES, OPTIMIZERS } from './spec';

// The job spec schema. Every object is strict, so a misspelt key is an error rather than a silent default,
// and every default lives here, once. `prefault({})` parses an omitted section so its own defaults apply.

const positiveInt = z.number().int().positive();
const nonNegativeInt = z.number().int().nonnegative();
const nonNegative = z.number().nonnegative();
const learningRate = z.number().positive().finite();

const augment = z
  .object({
    cropPadding: nonNegativeInt.max(16).default(4),
    horizontalFlip: z.boolean().default(true),
    brightness: nonNegative.default(0.2),
    contrast: nonNegative.default(0.2),
    saturation: nonNegative.default(0.2),
    hue: z.number().min(0).max(0.5).default(0.05),
    rotationDeg: z.number().min(0).max(180).default(15),
  })
  .strict();

const data = z
  .object({
    dataset: z.literal('cifar10').default('cifar10'),
    dir: z.string().min(1).optional(),
    valFraction: z.number().min(0).lt(1).default(0.1),
    testSet: z.boolean().default(false),
    limit: nonNegativeInt.default(0),
    augment: augment.prefault({}),
  })
  .strict();

const model = z
  .object({
    architecture: z.enum(ARCHITECTURES),
    path: z.string().min(1).optional(),
    cutAt: z.string().min(1).optional(),
    pretrained: z.boolean().optional(),
    inputSize: positiveInt.multipleOf(32).max(224).default(32),
    head: z.enum(HEAD_KINDS).default('linear'),
    headUnits: positiveInt.default(16),
    dropout: z.number().min(0).lt(1).default(0.5),
    numClasses: positiveInt.min(2).default(10),
  })
  .strict();

const optimizer = z
  .object({
    type: z.enum(OPTIMIZERS).default('sgd'),
    learningRate: learningRate,
    momentum: z.number().min(0).lt(1).default(0.9),
    nesterov: z.boolean().default(false),
    weightDecay: nonNegative.optional(),
    beta1: z.number().min(0).lt(1).default(0.9),
    beta2: z.number().min(0).lt(1).default(0.999),
    epsilon: z.number().positive().default(1e-7),
  })
  .strict();

const paramGroup = z.object({ lrMultiplier: z.number().positive().finite() }).strict();

const freeze = z
  .object({
    backboneEpochs: nonNegativeInt.default(0),
    unfreezeLearningRate: learningRate.optional(),
  })
  .strict();

const plateau = z
  .object({
    factor: z.number().gt(0).lt(1).default(0.1),
    patience: nonNegativeInt.default(2),
    minDelta: nonNegative.default(1e-4),
    cooldown: nonNegativeInt.default(0),
    minLearningRate: nonNegative.default(0),
  })
  .strict();

const schedule = z
  .object({
    type: z.enum(LR_SCHEDULES).default('constant'),
    warmupEpochs: nonNegative.default(0),
    stepEpochs: positiveInt.default(10),
    gamma: z.number().gt(0).max(1).default(0.1),
    minLearningRate: nonNegative.default(0),
    plateau: plateau.prefault({}),
  })
  .strict();

const training = z
  .object({
    epochs: positiveInt,
    batchSize: positiveInt.default(32),
    microBatchSize: positiveInt.optional(),
    evalBatchSize: positiveInt.default(128),
  })
  .strict();

const output = z
  .object({
    runsDir: z.string().min(1).default('runs'),
    checkpointEveryEpochs: positiveInt.default(1),
  })
  .strict();

// minWorkers and maxWorkers default from the rest of the spec (compileJobSpec).
const autoscale = z
  .object({
    minWorkers: positiveInt.optional(),
    maxWorkers: positiveInt.optional(),
    minEfficiency: z.number().gt(0).max(1).default(0.8),
    measureSteps: positiveInt.default(5),
    cooldownMs: nonNegativeInt.default(60_000),
  })
  .strict();

const distributed = z
  .object({
    minWorkers: positiveInt.default(1),
    maxWorkers: positiveInt.default(16),
    desiredWorkers: positiveInt.default(2),
    stepDeadlineMs: positiveInt.min(100).default(120_000),
    heartbeatIntervalMs: positiveInt.min(10).default(1000),
    leaseMs: positiveInt.min(100).default(10_000),
    checkpointEverySteps: nonNegativeInt.default(0),
    hashEverySteps: positiveInt.default(10),
    maxMessageBytes: positiveInt.min(64 * 1024).default(4 * 1024 * 1024),
    exchange: z.enum(EXCHANGE_MODES).default('allreduce'),
    compression: z.enum(COMPRESSION_MODES).default('none'),
    prescaleFactor: z.number().positive().finite().default(1),
    plannedExchange: z.boolean().optional(),
    autoscale: autoscale.optional(),
  })
  .strict();

/** The raw shape users write (before the cross-field checks and derived defaults in `compileJobSpec`). */
export const jobSpecSchema = z
  .object({
    name: z
      .string()
      .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'must be lower-case letters, digits and dashes (a DNS label)')
      .default('job'),
    seed: nonNegativeInt.default(0),
    data: data.prefault({}),
    model,
    training,
    optimizer,
    paramGroups: z
      .object({
        backbone: paramGroup.prefault({ lrMultiplier: 1 }),
        head: paramGroup.prefault({ lrMultiplier: 10 }),
      })
      .strict()
      .prefault({}),
    freeze: freeze.prefault({}),
    schedule: schedule.prefault({}),
    output: output.prefault({}),
    distributed: distributed.prefault({}),
  })
  .strict();

/** The parsed, defaults-filled shape of the schema (before cross-field checks). */
export type ParsedJobSpec = z.output<typeof jobSpecSchema>;
/** What a user may write: every defaulted field optional. */
export type JobSpecInput = z.input<typeof jobSpecSchema>;
