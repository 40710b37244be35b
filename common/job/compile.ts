import { readFileSync } from 'node:fs';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import type { z } from 'zod';
import { autoscaleDefaults, autoscaleProblems } from './autoscale';
import { JobSpecError } from './errors';
import { jobSpecSchema, type ParsedJobSpec } from './schema';
import type { JobSpec } from './spec';

const BUILT_IN_ARCHITECTURES = new Set(['resnet18', 'alexnet', 'vgg_small', 'small_cnn']);
const ADAMW_DEFAULT_WEIGHT_DECAY = 0.01;
const DEFAULT_MICRO_BATCH_SIZE = 16;
const MIN_DEFAULT_MICRO_BATCH_SIZE = 8;

/**
 * Parses a job spec from YAML or JSON text (JSON is YAML), applies `key.path=value` overrides, validates it
 * against the schema and the cross-field rules, and fills every default. Throws `JobSpecError` listing all
 * problems, each with its field path.
 */
export function parseJobSpec(text: string, source = '<inline>', overrides: readonly string[] = []): JobSpec {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    const where = err instanceof YAMLParseError && err.linePos ? ` at line ${err.linePos[0].line}` : '';
    throw new JobSpecError(source, [`not valid YAML or JSON${where}: ${(err as Error).message.split('\n')[0]}`], {
      cause: err,
    });
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new JobSpecError(source, [`expected a mapping of sections (model, training, ...), got ${describe(raw)}`]);
  }
  for (const override of overrides) applyOverride(raw as Record<string, unknown>, override, source);
  return compileJobSpec(raw, source);
}

/** Reads and parses a job spec file; see `parseJobSpec`. */
export function loadJobSpec(path: string, overrides: readonly string[] = []): JobSpec {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new JobSpecError(path, [`cannot read the file: ${(err as NodeJS.ErrnoException).code ?? err}`], {
      cause: err,
    });
  }
  return parseJobSpec(text, path, overrides);
}

/** Validates an already-parsed object and fills defaults. */
export function compileJobSpec(raw: unknown, source = '<inline>'): JobSpec {
  const result = jobSpecSchema.safeParse(raw, { reportInput: true });
  if (!result.success) throw new JobSpecError(source, result.error.issues.map(formatIssue));
  const parsed = result.data;
  const problems = crossFieldProblems(parsed);
  if (problems.length > 0) throw new JobSpecError(source, problems);
  return withDerivedDefaults(parsed);
}

function crossFieldProblems(spec: ParsedJobSpec): string[] {
  const problems: string[] = [];
  const { model, freeze, training } = spec;
  if (model.architecture === 'layers' && model.path === undefined) {
    problems.push("model.path: required when model.architecture is 'layers' (a model.json path or URL)");
  }
  if (BUILT_IN_ARCHITECTURES.has(model.architecture)) {
    if (model.pretrained === true) {
      problems.push(`model.pretrained: built-in architecture '${model.architecture}' has no pretrained weights`);
    }
    if (model.cutAt !== undefined) problems.push(`model.cutAt: only for 'mobilenet_v1' and 'layers' models`);
  }
  if (freeze.backboneEpochs >= training.epochs && freeze.unfreezeLearningRate !== undefined) {
    problems.push(
      `freeze.unfreezeLearningRate: the backbone never unfreezes (freeze.backboneEpochs=${freeze.backboneEpochs}` +
        ` >= training.epochs=${training.epochs})`,
    );
  }
  if (training.microBatchSize !== undefined && training.microBatchSize > training.batchSize) {
    problems.push(
      `training.microBatchSize: must not exceed training.batchSize (${training.microBatchSize} > ${training.batchSize})`,
    );
  } else if (training.microBatchSize !== undefined && training.batchSize % training.microBatchSize !== 0) {
    problems.push(
      `training.batchSize: ${training.batchSize} is not a multiple of training.microBatchSize ${training.microBatchSize}; ` +
        'every micro-batch must hold the same number of images, since it is the unit of BatchNorm statistics ' +
        `(divisors of ${training.batchSize}: ${divisors(training.batchSize).join(', ')})`,
    );
  } else if (training.microBatchSize === undefined && defaultMicroBatchSize(training.batchSize) === undefined) {
    problems.push(
      `training.microBatchSize: required for training.batchSize ${training.batchSize}, which has no divisor from ` +
        `${MIN_DEFAULT_MICRO_BATCH_SIZE} to ${DEFAULT_MICRO_BATCH_SIZE} to split it into equal micro-batches ` +
        `(divisors: ${divisors(training.batchSize).join(', ')})`,
    );
  }
  const d = spec.distributed;
  if (d.minWorkers > d.maxWorkers) {
    problems.push(`distributed.minWorkers: must not exceed distributed.maxWorkers (${d.minWorkers} > ${d.maxWorkers})`);
  }
  if (d.desiredWorkers < d.minWorkers || d.desiredWorkers > d.maxWorkers) {
    problems.push(`distributed.desiredWorkers: must lie in [minWorkers, maxWorkers] = [${d.minWorkers}, ${d.maxWorkers}], got ${d.desiredWorkers}`);
  }
  if (d.leaseMs <= d.heartbeatIntervalMs) {
    problems.push(`distributed.leaseMs: must exceed distributed.heartbeatIntervalMs (${d.leaseMs} <= ${d.heartbeatIntervalMs})`);
  }
  if (d.compression === 'fp16' && d.exchange !== 'allreduce') {
    problems.push(`distributed.compression: fp16 applies to the allreduce's data plane, expected exchange 'allreduce', got '${d.exchange}'`);
  }
  if (d.plannedExchange && d.exchange !== 'allreduce') {
    problems.push(`distributed.plannedExchange: plans the allreduce, expected exchange 'allreduce', got '${d.exchange}'`);
  }
  if (d.compression === 'none' && d.prescaleFactor !== 1) {
    problems.push(`distributed.prescaleFactor: applies only with compression 'fp16' (none stays bit-exact), got ${d.prescaleFactor}`);
  }
  if (spec.data.valFraction === 0 && !spec.data.testSet) {
    problems.push('data.valFraction: 0 holds out no images to evaluate on; allowed only with data.testSet: true (test_batch.bin)');
  }
  problems.push(...autoscaleProblems(spec));
  if (spec.schedule.warmupEpochs >= training.epochs) {
    problems.push(`schedule.warmupEpochs: must be less than training.epochs (${training.epochs})`);
  }
  return problems;
}

function withDerivedDefaults(spec: ParsedJobSpec): JobSpec {
  const builtIn = BUILT_IN_ARCHITECTURES.has(spec.model.architecture);
  const weightDecay = spec.optimizer.weightDecay ?? (spec.optimizer.type === 'adamw' ? ADAMW_DEFAULT_WEIGHT_DECAY : 0);
  // crossFieldProblems refused a batch size without a default micro-batch size.
  const microBatchSize = spec.training.microBatchSize ?? (defaultMicroBatchSize(spec.training.batchSize) as number);
  const { autoscale, plannedExchange, ...rest } = spec.distributed;
  const distributed = { ...rest, plannedExchange: plannedExchange ?? rest.exchange === 'allreduce' };
  return {
    ...spec,
    model: { ...spec.model, pretrained: spec.model.pretrained ?? !builtIn },
    optimizer: { ...spec.optimizer, weightDecay },
    training: {
      ...spec.training,
      microBatchSize,
    },
    distributed: autoscale ? { ...distributed, autoscale: autoscaleDefaults(spec, autoscale, microBatchSize) } : distributed,
  };
}

/**
 * The largest divisor of the batch size up to 16, so that every micro-batch of a full step holds the same
 * number of images (a micro-batch is the unit of BatchNorm statistics). A batch of 16 or fewer is one
 * micro-batch. Undefined when the only divisors are too small for BatchNorm statistics (e.g. 34 = 2 x 17):
 * the user must choose.
 */
function defaultMicroBatchSize(batchSize: number): number | undefined {
  if (batchSize <= DEFAULT_MICRO_BATCH_SIZE) return batchSize;
  const size = Math.max(...divisors(batchSize).filter((d) => d <= DEFAULT_MICRO_BATCH_SIZE));
  return size >= MIN_DEFAULT_MICRO_BATCH_SIZE ? size : undefined;
}

function divisors(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i + 1).filter((d) => n % d === 0);
}

/**
 * One zod issue as `field.path: problem`, unknown keys named and the offending value quoted: how every spec
 * error in shardwise reads. Parse with `{ reportInput: true }` so the issue carries the value it refused; an
 * issue without one is a missing field.
 */
export function formatIssue(issue: z.core.$ZodIssue): string {
  const field = issue.path.length > 0 ? issue.path.join('.') : '(top level)';
  if (issue.code === 'unrecognized_keys') {
    return `${field}: unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `'${k}'`).join(', ')}`;
  }
  if (!('input' in issue) || issue.input === undefined) return `${field}: required`;
  const got = `got ${quote(issue.input)}`;
  if (issue.code === 'invalid_type') return `${field}: expected ${typeName(issue.expected)}, ${got}`;
  return `${field}: ${issue.message}, ${got}`;
}

function typeName(expected: string): string {
  if (expected === 'int') return 'an integer';
  if (expected === 'object') return 'a mapping';
  if (expected === 'array') return 'a list';
  return `a ${expected}`;
}

/** A refused value as the user wrote it, cut short: strings quoted, so `"32"` reads apart from `32`. */
function quote(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  const text = typeof value === 'string' ? JSON.stringify(value) : String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** Sets `a.b.c=value` in a parsed spec; the value is parsed as YAML so numbers and booleans keep their type. */
function applyOverride(target: Record<string, unknown>, override: string, source: string): void {
  const eq = override.indexOf('=');
  if (eq <= 0) throw new JobSpecError(source, [`override '${override}': expected key.path=value`]);
  const keys = override.slice(0, eq).split('.');
  const value: unknown = parseYaml(override.slice(eq + 1));
  let node = target;
  for (const key of keys.slice(0, -1)) {
    const next = node[key];
    if (next === undefined) node[key] = {};
    else if (next === null || typeof next !== 'object' || Array.isArray(next)) {
      throw new JobSpecError(source, [`override '${override}': '${key}' is not a section`]);
    }
    node = node[key] as Record<string, unknown>;
  }
  node[keys[keys.length - 1]] = value;
}

function describe(value: unknown): string {
  if (value === null || value === undefined) return 'an empty document';
  return Array.isArray(value) ? 'a list' : `a ${typeof value}`;
}
