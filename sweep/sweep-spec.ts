/**
 * The sweep spec after validation: the base job, the parameters and their domains, the search, the
 * objective, the budget and early stopping. Parameters are checked against the job schema itself (a
 * value is set at the path and the job compiled), so a path the job spec does not have is an error
 * naming the parameter, never a silent no-op.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { compileJobSpec, formatIssue, JobSpecError, type JobSpec } from '../common';
import { SweepSpecError } from './errors';
import {
  type AlgorithmSpec, type EarlyStoppingSpec, type ExecutorType, type KubernetesExecutorSpec, type ObjectiveMetric, type ParameterDomain,
  type ParamValue, sweepSpecSchema,
} from './spec-schema';

/** A validated sweep spec. */
export interface SweepSpec {
  name: string;
  /** The file it came from (`<inline>` otherwise). */
  source: string;
  /** The base job as written (a plain object), before parameters are set. */
  baseJob: Record<string, unknown>;
  /** In the order written: grid search varies the last one fastest. */
  parameters: ReadonlyArray<{ path: string; domain: ParameterDomain }>;
  algorithm: AlgorithmSpec;
  objective: { metric: ObjectiveMetric; direction: 'maximize' | 'minimize' };
  budget: { maxTrials: number; maxConcurrentTrials?: number; maxFailedTrials: number };
  earlyStopping: EarlyStoppingSpec;
  sharedPrefixes: boolean;
  /** Cores the local executor may use; 0 means all of this machine's. */
  cores: number;
  /** Where trials run (`executor.type`). */
  executor: ExecutorType;
  /** `executor.kubernetes`, when given. */
  kubernetes?: KubernetesExecutorSpec;
  /** The sweep's folder: `<outputDir>/<name>`. */
  dir: string;
  /** SHA-256 of the spec as parsed: a resumed sweep must have the same one. */
  hash: string;
}

/** A trial's parameter values, by job field path. */
export type TrialParams = Record<string, ParamValue>;

/** The parameters as a search algorithm sees them. */
export type SearchSpace = SweepSpec['parameters'];

/** A finished trial as a search algorithm sees it: its parameters and its objective, to be MINIMISED. */
export interface Observation {
  params: TrialParams;
  loss: number;
}

const NO_VALIDATION = 'job: data.valFraction is 0, but the objective is always a validation metric ' +
  '(test-set metrics are reported beside it, never used to choose); hold out a validation split';

/** Reads and validates a sweep spec file; the base job path is relative to it. */
export function loadSweepSpec(file: string): SweepSpec {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new SweepSpecError(file, [`cannot read the file: ${(err as NodeJS.ErrnoException).code ?? err}`], { cause: err });
  }
  return parseSweepSpec(text, file);
}

/** Parses a sweep spec from YAML text; `source` names it in errors and anchors a relative base job path. */
export function parseSweepSpec(text: string, source = '<inline>'): SweepSpec {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new SweepSpecError(source, [`not valid YAML: ${(err as Error).message.split('\n')[0]}`], { cause: err });
  }
  const result = sweepSpecSchema.safeParse(raw, { reportInput: true });
  if (!result.success) throw new SweepSpecError(source, result.error.issues.map(formatIssue));
  const parsed = result.data;
  const problems: string[] = [];
  const baseJob = resolveBaseJob(parsed.job, source, problems);
  if (problems.length > 0) throw new SweepSpecError(source, problems);
  const parameters = Object.entries(parsed.parameters).map(([p, domain]) => ({ path: p, domain }));
  for (const { path: p, domain } of parameters) problems.push(...domainProblems(p, domain, baseJob));
  if (parsed.algorithm.type === 'grid') {
    for (const { path: p, domain } of parameters) {
      if (domain.type === 'uniform' || domain.type === 'log-uniform') {
        problems.push(`parameters.${p}: grid search needs a finite list (values or an int range), got a ${domain.type} range`);
      }
    }
  } else if (parsed.budget.maxTrials === undefined) {
    problems.push(`budget.maxTrials: required for ${parsed.algorithm.type} search (only a grid has a natural size)`);
  }
  if (parsed.earlyStopping.type === 'asha' && parsed.earlyStopping.synchronous && parsed.algorithm.type === 'tpe') {
    problems.push('earlyStopping.synchronous: needs every trial up front (grid or random); TPE proposes trials as others finish');
  }
  if (parsed.executor.type === 'kubernetes' && parsed.executor.kubernetes === undefined) {
    problems.push('executor.kubernetes: required with executor.type kubernetes (the image and the ReadWriteMany sharedVolume of the trial pods)');
  }
  if (problems.length > 0) throw new SweepSpecError(source, problems);
  const gridSize = parameters.reduce((n, { domain }) => n * finiteValues(domain).length, 1);
  const metric = parsed.objective.metric;
  return {
    name: parsed.name,
    source,
    baseJob,
    parameters,
    algorithm: parsed.algorithm,
    objective: { metric, direction: parsed.objective.direction ?? (metric === 'val.loss' ? 'minimize' : 'maximize') },
    budget: {
      maxTrials: parsed.budget.maxTrials ?? gridSize,
      maxConcurrentTrials: parsed.budget.maxConcurrentTrials,
      maxFailedTrials: parsed.budget.maxFailedTrials,
    },
    earlyStopping: parsed.earlyStopping,
    sharedPrefixes: parsed.sharedPrefixes,
    cores: parsed.executor.cores,
    executor: parsed.executor.type,
    ...(parsed.executor.kubernetes ? { kubernetes: parsed.executor.kubernetes } : {}),
    dir: path.resolve(parsed.outputDir, parsed.name),
    hash: createHash('sha256').update(JSON.stringify(parsed)).digest('hex').slice(0, 16),
  };
}

/** The values a finite domain enumerates, in order (a grid's axis); empty for a continuous range. */
export function finiteValues(domain: ParameterDomain): ParamValue[] {
  if (domain.type === 'choice') return domain.values;
  if (domain.type === 'int') {
    const out: number[] = [];
    for (let v = domain.min; v <= domain.max; v += domain.step) out.push(v);
    return out;
  }
  return [];
}

/** The job a trial runs: the base job with each parameter set at its path, named `<sweep>-t<NNN>`. */
export function trialJob(spec: Pick<SweepSpec, 'name' | 'baseJob' | 'source'>, params: TrialParams, index: number): JobSpec {
  const raw = withParams(spec.baseJob, params);
  raw.name = `${spec.name}-t${String(index).padStart(3, '0')}`;
  return compileJobSpec(raw, `${spec.source} trial ${index}`);
}

function withParams(base: Record<string, unknown>, params: TrialParams): Record<string, unknown> {
  const raw = structuredClone(base);
  for (const [p, value] of Object.entries(params)) setPath(raw, p, value);
  return raw;
}

function setPath(target: Record<string, unknown>, dotted: string, value: unknown): void {
  const keys = dotted.split('.');
  let node = target;
  for (const key of keys.slice(0, -1)) {
    const next = node[key];
    if (next === undefined) node[key] = {};
    else if (next === null || typeof next !== 'object' || Array.isArray(next)) {
      throw new SweepSpecError('<parameters>', [`parameters.${dotted}: '${key}' is not a section of the job spec`]);
    }
    node = node[key] as Record<string, unknown>;
  }
  node[keys[keys.length - 1]] = value;
}

function resolveBaseJob(job: string | Record<string, unknown>, source: string, problems: string[]): Record<string, unknown> {
  let raw: unknown = job;
  if (typeof job === 'string') {
    const file = path.resolve(source === '<inline>' ? '.' : path.dirname(source), job);
    try {
      raw = parseYaml(fs.readFileSync(file, 'utf8'));
    } catch (err) {
      problems.push(`job: cannot read the base job ${file}: ${(err as Error).message.split('\n')[0]}`);
      return {};
    }
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    problems.push('job: expected a job spec mapping or a path to one');
    return {};
  }
  try {
    if (compileJobSpec(raw, 'job').data.valFraction === 0) problems.push(NO_VALIDATION);
  } catch (err) {
    if (!(err instanceof JobSpecError)) throw err;
    problems.push(...err.problems.map((p) => `job: ${p}`));
  }
  return raw as Record<string, unknown>;
}

// A domain must be well-formed, and each of its extreme values must make a valid job: that is how a
// path the job spec lacks, or a value its schema refuses, is caught before any trial starts.
function domainProblems(p: string, domain: ParameterDomain, baseJob: Record<string, unknown>): string[] {
  if (domain.type !== 'choice' && !(domain.min < domain.max)) {
    return [`parameters.${p}: expected min < max, got min ${domain.min}, max ${domain.max}`];
  }
  const probes = domain.type === 'choice' ? domain.values : [domain.min, domain.max];
  const out: string[] = [];
  for (const value of probes) {
    try {
      if (compileJobSpec(withParams(baseJob, { [p]: value }), 'job').data.valFraction === 0) return [`parameters.${p} = ${value}: ${NO_VALIDATION}`];
    } catch (err) {
      if (err instanceof SweepSpecError) return [...err.problems];
      if (!(err instanceof JobSpecError)) throw err;
      out.push(...err.problems.map((problem) => `parameters.${p} = ${JSON.stringify(value)}: the job spec refuses it: ${problem}`));
      break;
    }
  }
  return out;
}
