/**
 * Single-process fine-tuning core, decomposed the way the distributed trainer splits a step:
 * gradient SUMS per batch or shard (`computeGradients`), one mean update from summed gradients
 * (`applyGradientSums`), and schedule/freeze/plateau decisions that are pure functions of the
 * position or small serialisable state. `runLocalTraining` is the reference loop.
 */
export { AdamOptimizer, type AdamOptions } from './adam';
export { cutMicroBatches, epochBatches, type MicroBatch, stepsPerEpoch } from './batch-plan';
export { type BatchMetrics, ClassificationMetrics, TOP_K, topKHits } from './classification-metrics';
export { DivergenceError, OptimizerStateError, ShareThreadError, TrainingShapeError } from './errors';
export {
  type EpochEvent,
  type FreezeEvent,
  type GroupLearningRates,
  type LrChangeEvent,
  LrChangeReason,
  type MetricsSummary,
  type ScheduledEvent,
  type StepEvent,
  type TrainerEvent,
  TrainerEventType,
  type UnfreezeEvent,
  type ValidationSummary,
} from './events';
export {
  EPOCH_CHECKPOINT_VERSION, type EpochCheckpointInfo, readEpochCheckpointInfo, restoreEpochCheckpoint, saveEpochCheckpoint,
} from './epoch-checkpoint';
export { isBackboneFrozen, scheduledEvents } from './freeze-schedule';
export {
  LocalTrainer,
  type LocalTrainerDeps,
  type TrainingResult,
  evaluateDataset,
  localTrainStep,
  localTrainStepOn,
  runLocalTraining,
} from './local-trainer';
export {
  type LrScheduleConfig,
  type SchedulePosition,
  baseLearningRate,
  groupLearningRates,
  nominalEpochLearningRate,
  phaseBaseLearningRate,
  warmupSteps,
} from './lr-schedule';
export { type Optimizer, type OptimizerState, type VariableOptimizerState, createOptimizer } from './optimizer';
export { SlotOptimizer, type UpdateResult } from './optimizer-base';
export { type PlateauDecision, type PlateauState, ReduceLrOnPlateau } from './reduce-lr-on-plateau';
export { SgdOptimizer, type SgdOptions } from './sgd';
export { type ApplyOrder, OPTIMIZER_PREFIX, UpdateKind } from './replica-update';
export { applyMovingStatDeltas, computeShare, microBatchResult, movingStatistics, type ShareInput, type ShareResult } from './share';
export { ShareSum } from './share-sum';
export { ShareThreads, shareThreadsFor } from './share-threads';
export {
  type ComputeGradientsOptions,
  type GradientResult,
  type TensorBatch,
  type TrainableVariable,
  computeGradients,
  crossEntropySum,
  evaluateBatch,
  toTensorBatch,
  trainableVariables,
} from './train-step';
export {
  type TrainerSnapshot,
  type TrainerState,
  applyGradientMeans,
  applyGradientSums,
  beginGradientStep,
  type UpdateTarget,
  beginEpoch,
  createTrainerState,
  disposeTrainerState,
  endEpoch,
  restoreTrainerState,
  snapshotTrainerState,
  stepLearningRates,
} from './trainer-state';
