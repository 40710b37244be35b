/**
 * Hyperparameter sweeps: the sweep spec, the search algorithms (grid, random, TPE), early stopping,
 * shared prefixes derived from each trial's effective per-step configuration, the local executor with
 * resume, and the report. `runSweep` is the entry point `shardwise sweep` calls.
 */
export { FailureBudgetError, SweepLockedError, SweepSpecError, SweepStateError } from './errors';
export { type EarlyStoppingSpec, type ExecutorType, type KubernetesExecutorSpec, OBJECTIVE_METRICS, type ObjectiveMetric, type ParameterDomain, type ParamValue } from './spec-schema';
export {
  finiteValues, loadSweepSpec, type Observation, parseSweepSpec, type SearchSpace, type SweepSpec, trialJob, type TrialParams,
} from './sweep-spec';
export { createSearch, gridPoint, randomPoint, type SearchAlgorithm } from './search';
export { parzen, suggestTpe, type TpeOptions } from './tpe';
export { epochSignatures, sharedEpochs } from './effective-config';
export { decideAtRung, objectiveValue, type Objective, quantile, rungsFor, score } from './early-stopping';
export type { CommittedEpochs, TrialExecutor, TrialExit, TrialRun, TrialRunRequest } from './executor';
export { LocalExecutor, LocalTrialRun, trialCores } from './local-executor';
export { KubernetesExecutor, type KubernetesExecutorOptions } from './kubernetes-executor';
export { createExecutor, type ExecutorChoice } from './create-executor';
export { JOB_NAME_LABEL, SWEEP_LABEL, TRIAL_LABEL, trialJobManifest, trialJobName } from './kube-trial-job';
export { committedEpochs, runProgress, trialArgs, trialRunDir } from './trial-run-dir';
export { LiveTable, type LiveTableStream } from './live-table';
export { formatTable, trialRows, type TrialRow } from './results-table';
export { curvesSpec, paramsSpec } from './report-charts';
export { bestTrial, sweepSavings, type SweepSavings, trialModelDir, writeSweepReport } from './sweep-report';
export { runSweep, type RunSweepOptions, type SweepOutcome } from './sweep-controller';
export { SWEEP_LOCK_FILE, SweepLock } from './sweep-lock';
export {
  emptyState, type EpochResult, isTerminal, readSweepState, type RungDecision, SWEEP_STATE_FILE, type SweepState, trainedEpochs,
  type TrialRecord, type TrialState, writeSweepState,
} from './sweep-state';
export { createTrial, type ForkCandidate, forkFor, runTrialEpochs, TrainCounts, trialId } from './trial-planner';
