/**
 * Hyperparameter sweeps: the sweep spec, the search algorithms (grid, random, TPE), early stopping,
 * shared prefixes derived from each trial's effective per-step configuration, the local executor with
 * resume, and the report. `runSweep` is the entry point `shardwise sweep` calls.
 */
export { FailureBudgetError, SweepLockedError, SweepSpecError, SweepStateError } from './errors';
export { OBJECTIVE_METRICS, type ObjectiveMetric, type ParameterDomain, type ParamValue } from './spec-schema';
export {
  finiteValues, loadSweepSpec, type Observation, parseSweepSpec, type SearchSpace, type SweepSpec, trialJob, type TrialParams,
} from './sweep-spec';
export { createSearch, gridPoint, randomPoint, type SearchAlgorithm } from './search';
export { parzen, suggestTpe, type TpeOptions } from './tpe';
