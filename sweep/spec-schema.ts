import { z } from 'zod';

// The sweep spec schema. Every object is strict (a misspelt key is an error naming it), as in the job
// spec, and every default lives here, once.

const scalar = z.union([z.number(), z.string(), z.boolean()]);

/** A finite list of values to try. A plain YAML list is shorthand for it. */
const choice = z.object({ type: z.literal('choice'), values: z.array(scalar).min(1) }).strict();
/** Integers `min, min+step, ..., <= max`. */
const intRange = z.object({ type: z.literal('int'), min: z.number().int(), max: z.number().int(), step: z.number().int().positive().default(1) }).strict();
/** A real number drawn uniformly from [min, max]. */
const uniform = z.object({ type: z.literal('uniform'), min: z.number().finite(), max: z.number().finite() }).strict();
/** A positive real number whose logarithm is uniform on [log min, log max] (learning rates). */
const logUniform = z.object({ type: z.literal('log-uniform'), min: z.number().positive().finite(), max: z.number().positive().finite() }).strict();

// The union's own message: zod's default ("Invalid input") would not say what a parameter may be.
const domain = z.union([
  z.array(scalar).min(1).transform((values) => ({ type: 'choice' as const, values })),
  z.discriminatedUnion('type', [choice, intRange, uniform, logUniform]),
], { error: 'expected a non-empty list of values, or a mapping with type choice, int, uniform or log-uniform' });

const algorithm = z.discriminatedUnion('type', [
  z.object({ type: z.literal('grid') }).strict(),
  z.object({ type: z.literal('random'), seed: z.number().int().nonnegative().default(0) }).strict(),
  z.object({
    type: z.literal('tpe'),
    seed: z.number().int().nonnegative().default(0),
    /** Random trials before the model takes over. */
    startupTrials: z.number().int().positive().default(10),
    /** Candidates drawn from the good-trials density; the best ratio wins. */
    candidates: z.number().int().positive().default(24),
  }).strict(),
]);

/** The validation metrics a sweep may optimise; test-set metrics are reported, never chosen on. */
export const OBJECTIVE_METRICS = ['val.top1', 'val.top5', 'val.loss'] as const;
export type ObjectiveMetric = (typeof OBJECTIVE_METRICS)[number];

const objective = z.object({
  metric: z.string().refine((m) => (OBJECTIVE_METRICS as readonly string[]).includes(m), {
    message: `expected a validation metric (${OBJECTIVE_METRICS.join(', ')}); test-set metrics are reported beside it, never used to choose`,
  }).transform((m) => m as ObjectiveMetric),
  direction: z.enum(['maximize', 'minimize']).optional(),
}).strict();

const budget = z.object({
  maxTrials: z.number().int().positive().optional(),
  maxConcurrentTrials: z.number().int().positive().optional(),
  maxFailedTrials: z.number().int().nonnegative().default(0),
}).strict();

const earlyStopping = z.discriminatedUnion('type', [
  z.object({ type: z.literal('none') }).strict(),
  z.object({
    type: z.literal('asha'),
    /** Epochs every trial runs before its first rung. */
    gracePeriod: z.number().int().positive().default(1),
    /** Rungs at gracePeriod * reductionFactor^k epochs; the top 1/reductionFactor continue. */
    reductionFactor: z.number().int().min(2).default(3),
    /**
     * Judge a rung once EVERY trial has reached it or ended, keeping the top 1/reductionFactor of all of
     * them (successive halving, as in ASHA's synchronous variant). Stops more, waits more; grid and random only.
     */
    synchronous: z.boolean().default(false),
  }).strict(),
  z.object({
    type: z.literal('median'),
    gracePeriod: z.number().int().positive().default(1),
    /** Earlier trials a decision needs; fewer means the trial continues. */
    minTrials: z.number().int().positive().default(2),
  }).strict(),
]);

/** A Kubernetes object name (DNS-1123 label). */
const dnsLabel = z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'expected a Kubernetes name: lower-case letters, digits and dashes');

/** Where trials run on Kubernetes: one Job per trial stretch, the sweep folder on a ReadWriteMany claim. */
const kubernetesExecutor = z.object({
  /** The shardwise image of the trial pods (deploy/Dockerfile; its entrypoint is the `shardwise` CLI). */
  image: z.string().min(1),
  imagePullPolicy: z.enum(['Always', 'IfNotPresent', 'Never']).default('IfNotPresent'),
  /** @default the kubeconfig context's namespace, then the pod's */
  namespace: dnsLabel.optional(),
  /**
   * The ReadWriteMany claim holding the sweep folder (state, trial specs, run folders, fork checkpoints) and
   * where it is mounted: in every trial pod, and where this sweep runs (so outputDir must lie under it).
   */
  sharedVolume: z.object({ claimName: dnsLabel, mountPath: z.string().regex(/^\//, 'expected an absolute path') }).strict(),
  /** A claim holding CIFAR-10, mounted read-only at the same path as here (`--data` must lie under it or the shared volume). */
  dataset: z.object({ claimName: dnsLabel, mountPath: z.string().regex(/^\//, 'expected an absolute path') }).strict().optional(),
  /** Trial Jobs at once (budget.maxConcurrentTrials, when lower, wins). */
  parallelism: z.number().int().positive().default(4),
  /** Environment of the trial containers (e.g. SHARDWISE_MOBILENET_PATH). */
  env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name'), z.string()).default({}),
  /** The shardwise chart a multi-worker trial is rendered from. @default this installation's helm/shardwise */
  chart: z.string().min(1).optional(),
  /** Container resources of a one-worker trial pod, as in a pod spec (`{requests: {cpu: "1"}}`). */
  resources: z.object({
    requests: z.record(z.string(), z.string()).optional(),
    limits: z.record(z.string(), z.string()).optional(),
  }).strict().optional(),
}).strict();

const executor = z.object({
  /** Where trials run; `shardwise sweep --executor` overrides it. */
  type: z.enum(['local', 'kubernetes']).default('local'),
  /** Local: cores the trials may use; 0 means all of this machine's. */
  cores: z.number().int().nonnegative().default(0),
  kubernetes: kubernetesExecutor.optional(),
}).strict();

/** The raw shape of a sweep spec (before the base job and parameters are checked against the job schema). */
export const sweepSpecSchema = z.object({
  name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,40}$/, 'must be lower-case letters, digits and dashes'),
  /** The base job: a path (relative to the sweep file) or an inline job spec. */
  job: z.union([z.string().min(1), z.record(z.string(), z.unknown())]),
  /** Job field path (`optimizer.learningRate`) -> the values to try. */
  parameters: z.record(z.string().regex(/^[A-Za-z]\w*(\.[A-Za-z]\w*)*$/, 'expected a job field path like optimizer.learningRate'), domain)
    .refine((p) => Object.keys(p).length > 0, { message: 'expected at least one parameter' }),
  algorithm: algorithm.prefault({ type: 'grid' }),
  objective,
  budget: budget.prefault({}),
  earlyStopping: earlyStopping.prefault({ type: 'none' }),
  /** Run the epochs trials agree on once and fork from the checkpoint where they diverge. */
  sharedPrefixes: z.boolean().default(true),
  executor: executor.prefault({}),
  /** Parent folder of sweep folders. */
  outputDir: z.string().min(1).default('runs/sweeps'),
}).strict();

/** The parsed sweep spec (defaults filled). */
export type ParsedSweepSpec = z.output<typeof sweepSpecSchema>;
/** One parameter's domain. */
export type ParameterDomain = z.output<typeof domain>;
/** The search algorithm section. */
export type AlgorithmSpec = z.output<typeof algorithm>;
/** The early-stopping section. */
export type EarlyStoppingSpec = z.output<typeof earlyStopping>;
/** The `executor.kubernetes` section. */
export type KubernetesExecutorSpec = z.output<typeof kubernetesExecutor>;
/** Where trials run. */
export type ExecutorType = z.output<typeof executor>['type'];
/** A parameter value as it is written into the job spec. */
export type ParamValue = z.output<typeof scalar>;
