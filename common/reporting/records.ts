/**
 * What a run records in `metrics.jsonl`: one JSON object per line, discriminated by `type`. These are
 * reporting's own types, deliberately independent of the trainer's event types, so the trainer can
 * evolve and one adapter maps its events onto these.
 *
 * Indexes (`epoch`, `step`, `globalStep`) are 0-based, as in the job spec; displays add 1.
 */
import { z } from 'zod';

/** Loss and accuracy of one split over one epoch. Accuracies are fractions in [0, 1]. */
export interface SplitMetrics {
  /** Mean cross-entropy loss in nats. */
  loss: number;
  top1: number;
  top5: number;
}

/** Validation metrics, plus the top-1 accuracy of each class when the evaluator computes it. */
export interface ValidationMetrics extends SplitMetrics {
  perClass?: number[];
}

/** One optimiser step. */
export interface StepRecord {
  type: 'step';
  epoch: number;
  /** Step within the epoch. */
  step: number;
  /** Step since the start of the run. */
  globalStep: number;
  /** Training loss of this step's batch, in nats. */
  loss: number;
  /** Learning rate of each parameter group (`backbone`, `head`) used for this step. */
  lr: Record<string, number>;
  /** Training throughput over this step, images per second. */
  samplesPerSec: number;
  /**
   * When the step was recorded, in Unix epoch milliseconds with a sub-millisecond fraction (the processes of a
   * machine share the clock): step times without a reader watching the file. Absent in older runs.
   */
  time?: number;
}

/** The end of an epoch: training means and a full validation pass. */
export interface EpochRecord {
  type: 'epoch';
  epoch: number;
  train: SplitMetrics;
  val: ValidationMetrics;
  /** The official test set (`data.testSet`), when the job evaluates it: reported, never used to decide. */
  test?: SplitMetrics;
  /** Learning rate of each parameter group at the end of the epoch. */
  lr: Record<string, number>;
  /** Whether the backbone was frozen during this epoch. */
  frozen: boolean;
  /** Wall-clock duration of the epoch including validation. */
  seconds: number;
}

/** The backbone was frozen (`freeze`) or unfrozen (`unfreeze`) at the start of `epoch`. */
export interface FreezeRecord {
  type: 'freeze' | 'unfreeze';
  epoch: number;
}

/** The learning rate changed outside the per-step schedule (plateau reduction, unfreeze rate). */
export interface LrChangeRecord {
  type: 'lr-change';
  epoch: number;
  step: number;
  lr: Record<string, number>;
}

/**
 * The exactly-once check of one epoch of a distributed run: every training sample was counted once, however
 * many workers failed and had their micro-batches redone.
 */
export interface EpochReport {
  epoch: number;
  /** Samples in the epoch. */
  expected: number;
  /** Sample countings, repeats included: equals `expected` when every sample was counted exactly once. */
  counted: number;
  /** Repeated results turned away during this epoch (late, or for a step already closed). */
  duplicatesRejected: number;
  /** Micro-batches handed to another worker after their first worker was dropped, during this epoch. */
  redoneMicroBatches: number;
  /** Sample indices never counted, ascending. */
  missing: number[];
  /** Sample indices counted more than once, ascending. */
  repeated: number[];
  /** `missing` and `repeated` are both empty. */
  exactlyOnce: boolean;
}

/** An {@link EpochReport} in metrics.jsonl. */
export type EpochReportRecord = { type: 'epoch-report' } & EpochReport;

/** A comparison of every replica's weights with the coordinator's at one weights version. */
export interface ReplicaHashRecord {
  type: 'replica-hash';
  /** The step whose shares carried the hashes. */
  globalStep: number;
  /** Updates applied to the weights that were hashed. */
  weightsVersion: number;
  /** The coordinator's `weightsHash`. */
  coordinator: string;
  /** Each reporting worker's hash, by worker id. */
  workers: Record<string, string>;
  /** Every worker's hash equals the coordinator's. */
  agree: boolean;
}

/** Every record `metrics.jsonl` may hold. */
export type MetricsRecord =
  | StepRecord
  | EpochRecord
  | FreezeRecord
  | LrChangeRecord
  | EpochReportRecord
  | ReplicaHashRecord;

/** The `type` values of `MetricsRecord`, for messages and checks. */
export const METRICS_RECORD_TYPES = [
  'step', 'epoch', 'freeze', 'unfreeze', 'lr-change', 'epoch-report', 'replica-hash',
] as const;
export type MetricsRecordType = (typeof METRICS_RECORD_TYPES)[number];

// JSON has no NaN or Infinity (JSON.stringify turns them into null), yet a diverging run produces
// exactly those losses and they must survive the round trip: they are written as these strings.
const NON_FINITE = ['NaN', 'Infinity', '-Infinity'] as const;

// zod's own number schema rejects NaN and ±Infinity, which are legitimate values here.
const num = z.unknown().transform((v, ctx): number => {
  if (typeof v === 'number') return v;
  if ((NON_FINITE as readonly unknown[]).includes(v)) return Number(v);
  ctx.addIssue({ code: 'custom', message: `expected a number (or "NaN", "Infinity", "-Infinity"), found ${JSON.stringify(v) ?? 'nothing'}` });
  return z.NEVER;
});
const index = z.number().int().nonnegative();
const lrs = z.record(z.string(), num);
const split = z.object({ loss: num, top1: num, top5: num });

const stepSchema = z.object({
  type: z.literal('step'),
  epoch: index,
  step: index,
  globalStep: index,
  loss: num,
  lr: lrs,
  samplesPerSec: num,
  time: z.number().optional(),
});

const epochSchema = z.object({
  type: z.literal('epoch'),
  epoch: index,
  train: split,
  val: split.extend({ perClass: z.array(num).optional() }),
  test: split.optional(),
  lr: lrs,
  frozen: z.boolean(),
  seconds: num,
});

const freezeSchema = z.object({ type: z.enum(['freeze', 'unfreeze']), epoch: index });

const lrChangeSchema = z.object({ type: z.literal('lr-change'), epoch: index, step: index, lr: lrs });

const epochReportSchema = z.object({
  type: z.literal('epoch-report'),
  epoch: index,
  expected: index,
  counted: index,
  duplicatesRejected: index,
  redoneMicroBatches: index,
  missing: z.array(index),
  // Runs written before the field existed carry none.
  repeated: z.array(index).default([]),
  exactlyOnce: z.boolean(),
});

const replicaHashSchema = z.object({
  type: z.literal('replica-hash'),
  globalStep: index,
  weightsVersion: index,
  coordinator: z.string(),
  workers: z.record(z.string(), z.string()),
  agree: z.boolean(),
});

const SCHEMAS = {
  step: stepSchema,
  epoch: epochSchema,
  freeze: freezeSchema,
  unfreeze: freezeSchema,
  'lr-change': lrChangeSchema,
  'epoch-report': epochReportSchema,
  'replica-hash': replicaHashSchema,
} satisfies Record<MetricsRecordType, z.ZodType<MetricsRecord, unknown>>;

/** Serialises a record as one JSON line (with its newline), keeping NaN and ±Infinity readable. */
export function encodeMetricsLine(record: MetricsRecord): string {
  const json = JSON.stringify(record, (_key, value: unknown) =>
    typeof value === 'number' && !Number.isFinite(value) ? String(value) : value,
  );
  return `${json}\n`;
}

/**
 * Parses one line back into a record. Throws a plain `Error` describing what is wrong; the caller
 * wraps it with the file and line number.
 */
export function decodeMetricsLine(line: string): MetricsRecord {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (err) {
    throw new Error(`expected a JSON object, found invalid JSON (${(err as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Error(`expected a JSON object, found ${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value}`);
  }
  const type = (value as { type?: unknown }).type;
  if (typeof type !== 'string' || !(METRICS_RECORD_TYPES as readonly string[]).includes(type)) {
    throw new Error(`expected "type" to be one of ${METRICS_RECORD_TYPES.join(', ')}, found ${JSON.stringify(type) ?? 'none'}`);
  }
  const parsed = SCHEMAS[type as MetricsRecordType].safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue.path.length > 0 ? issue.path.join('.') : '(record)';
    throw new Error(`"${type}" record: ${where}: ${issue.message}`);
  }
  return parsed.data;
}
