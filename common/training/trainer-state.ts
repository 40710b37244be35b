import * as tf from '@tensorflow/tfjs';
import type { JobSpec, ParamGroupName } from '../job';
import type { ModelParts } from '../models';
import { OptimizerStateError } from './errors';
import {
  type GroupLearningRates,
  type LrChangeEvent,
  LrChangeReason,
  type ScheduledEvent,
  TrainerEventType,
} from './events';
import { isBackboneFrozen, scheduledEvents } from './freeze-schedule';
import { baseLearningRate, groupLearningRates, nominalEpochLearningRate } from './lr-schedule';
import { createOptimizer, type Optimizer, type OptimizerState } from './optimizer';
import { type PlateauState, ReduceLrOnPlateau } from './reduce-lr-on-plateau';
import { trainableVariables } from './train-step';

/**
 * Everything that decides the next update besides the weights: optimizer, schedule position,
 * freeze state, plateau scale. The single-process loop and the distributed coordinator (and each
 * worker replaying the coordinator's updates) drive the same state through the same functions:
 * {@link beginEpoch}, {@link stepLearningRates}, {@link applyGradientSums}, {@link endEpoch}.
 */
export interface TrainerState {
  readonly spec: JobSpec;
  readonly parts: ModelParts;
  readonly optimizer: Optimizer;
  /** Present when `schedule.type` is 'plateau'. */
  readonly plateau: ReduceLrOnPlateau | null;
  /** Trainable variables by `originalName`: the optimizer's `params`. */
  readonly params: ReadonlyMap<string, tf.Variable>;
  /** Parameter group of each key in `params`. */
  readonly groupOf: ReadonlyMap<string, ParamGroupName>;
  readonly stepsPerEpoch: number;
  /** Epoch in progress (or last finished); -1 before the first {@link beginEpoch}. */
  epoch: number;
  /** Steps applied in the current epoch. */
  stepInEpoch: number;
  /** Steps applied since the start. */
  globalStep: number;
  /** Whether the backbone is frozen in the current epoch. */
  frozen: boolean;
}

/** The serialisable part of a {@link TrainerState}, for checkpoints and late-joining workers. */
export interface TrainerSnapshot {
  epoch: number;
  stepInEpoch: number;
  globalStep: number;
  optimizer: OptimizerState;
  plateau: PlateauState | null;
}

/** A fresh state at the start of training. `stepsPerEpoch` comes from `stepsPerEpoch(train.count, batchSize)`. */
export function createTrainerState(spec: JobSpec, parts: ModelParts, stepsPerEpoch: number): TrainerState {
  const vars = trainableVariables(parts);
  return {
    spec,
    parts,
    optimizer: createOptimizer(spec.optimizer),
    plateau: spec.schedule.type === 'plateau' ? new ReduceLrOnPlateau(spec.schedule.plateau) : null,
    params: new Map(vars.map((v) => [v.key, v.variable])),
    groupOf: new Map(vars.map((v) => [v.key, v.group])),
    stepsPerEpoch,
    epoch: -1,
    stepInEpoch: 0,
    globalStep: 0,
    frozen: false,
  };
}

/**
 * Enters `epoch`: sets the freeze state and returns what the schedule changes at its start
 * (freeze, unfreeze, lr-change), to be announced before the epoch's first step.
 */
export function beginEpoch(state: TrainerState, epoch: number): ScheduledEvent[] {
  state.epoch = epoch;
  state.stepInEpoch = 0;
  state.frozen = isBackboneFrozen(epoch, state.spec.freeze);
  return scheduledEvents(epoch, state.spec, state.plateau?.scale ?? 1);
}

/** Effective rate of each group for the next step (schedule, warm-up, plateau scale, multipliers). */
export function stepLearningRates(state: TrainerState): GroupLearningRates {
  const base = baseLearningRate(
    { epoch: state.epoch, stepInEpoch: state.stepInEpoch, stepsPerEpoch: state.stepsPerEpoch },
    state.spec,
    state.plateau?.scale ?? 1,
  );
  return groupLearningRates(base, state.spec.paramGroups);
}

/**
 * One optimizer step from gradient SUMS over `count` samples (one process's batch, or all workers'
 * shards added up): divides by `count` and applies each group's rate. Does not take ownership of
 * `gradSums`. Throws when a gradient names an unknown variable or a frozen backbone variable, which
 * would mean a worker and the coordinator disagree about the freeze state. Returns the rates used.
 */
export function applyGradientSums(
  state: TrainerState,
  gradSums: ReadonlyMap<string, tf.Tensor>,
  count: number,
): GroupLearningRates {
  const lr = beginGradientStep(state, gradSums.keys(), count);
  applyGradientMeans(state, gradSums, count, lr);
  return lr;
}

/**
 * The bookkeeping half of `applyGradientSums`, for a caller that applies the update itself later (the
 * coordinator, off the step's critical path): checks the gradients' names and `count`, takes the rates of
 * the step, and counts the step. The update must then be `applyGradientMeans(state, sums, count, rates)`,
 * before anything reads the weights or the optimizer state. Returns the rates.
 */
export function beginGradientStep(state: TrainerState, names: Iterable<string>, count: number): GroupLearningRates {
  if (!(Number.isInteger(count) && count >= 1)) {
    throw new OptimizerStateError(`expected a sample count >= 1 for the gradient sums, got ${count}`);
  }
  for (const key of names) {
    const group = state.groupOf.get(key);
    if (group === undefined) {
      throw new OptimizerStateError(`gradient for ${key}, but the model has no such trainable variable`, { variable: key });
    }
    if (group === 'backbone' && state.frozen) {
      throw new OptimizerStateError(`gradient for backbone variable ${key} while the backbone is frozen (epoch ${state.epoch})`,
        { variable: key });
    }
  }
  const lr = stepLearningRates(state);
  state.stepInEpoch++;
  state.globalStep++;
  return lr;
}

/** The parts of a trainer an update needs: what a worker replaying the coordinator's updates holds. */
export type UpdateTarget = Pick<TrainerState, 'optimizer' | 'params' | 'groupOf'>;

/**
 * The update itself, shared by `applyGradientSums` and the workers that replay an allreduce: the sums
 * divided by `count`, then one optimizer step with each group's rate. The same operations in the same
 * order on the same bytes give the same weights in every process.
 */
export function applyGradientMeans(target: UpdateTarget, gradSums: ReadonlyMap<string, tf.Tensor>, count: number, lr: GroupLearningRates): void {
  // The optimizer divides by `count` as it reads each sum (in its fused kernel on wasm): no pass over
  // memory, kernel call and tensor per variable for the means alone.
  target.optimizer.apply(target.params, gradSums, (key) => lr[target.groupOf.get(key) as ParamGroupName], count);
}

/**
 * Leaves the current epoch: feeds the validation loss to ReduceLROnPlateau (when the schedule is
 * 'plateau' and there is a validation loss) and returns the resulting lr-change, which takes effect
 * at the next epoch. Nothing is returned after the last epoch.
 */
export function endEpoch(state: TrainerState, valLoss: number | null): LrChangeEvent[] {
  if (state.plateau === null || valLoss === null) return [];
  const next = state.epoch + 1;
  const unscaled = nominalEpochLearningRate(next, state.spec, 1);
  const d = state.plateau.update(valLoss, unscaled);
  if (!d.reduced || next >= state.spec.training.epochs) return [];
  const to = nominalEpochLearningRate(next, state.spec, d.toScale);
  return [{
    type: TrainerEventType.LrChange,
    epoch: next,
    reason: LrChangeReason.Plateau,
    from: nominalEpochLearningRate(next, state.spec, d.fromScale),
    to,
    lr: groupLearningRates(to, state.spec.paramGroups),
  }];
}

/** A copy of the serialisable state. */
export function snapshotTrainerState(state: TrainerState): TrainerSnapshot {
  return {
    epoch: state.epoch,
    stepInEpoch: state.stepInEpoch,
    globalStep: state.globalStep,
    optimizer: state.optimizer.getState(),
    plateau: state.plateau?.getState() ?? null,
  };
}

/** Restores a snapshot (the weights are restored separately, by the model checkpoint). */
export function restoreTrainerState(state: TrainerState, snap: TrainerSnapshot): void {
  if ((snap.plateau === null) !== (state.plateau === null)) {
    throw new OptimizerStateError(`snapshot ${snap.plateau === null ? 'lacks' : 'has'} plateau state, ` +
      `schedule type is ${state.spec.schedule.type}`);
  }
  state.optimizer.setState(snap.optimizer);
  if (snap.plateau !== null) state.plateau?.setState(snap.plateau);
  state.epoch = snap.epoch;
  state.stepInEpoch = snap.stepInEpoch;
  state.globalStep = snap.globalStep;
  state.frozen = snap.epoch >= 0 && isBackboneFrozen(snap.epoch, state.spec.freeze);
}

/** Frees the optimizer's slots; the model parts belong to the caller. */
export function disposeTrainerState(state: TrainerState): void {
  state.optimizer.dispose();
}
