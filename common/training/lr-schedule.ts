import { type JobSpec, PARAM_GROUPS, type ParamGroupName, type ScheduleSpec } from '../job';

/** The parts of a job spec the learning rates (and freeze schedule) depend on. */
export type LrScheduleConfig = Pick<JobSpec, 'optimizer' | 'schedule' | 'freeze' | 'training' | 'paramGroups'>;

/** Where training stands, in the units schedules are written in. */
export interface SchedulePosition {
  /** 0-based epoch. */
  epoch: number;
  /** 0-based step within the epoch. */
  stepInEpoch: number;
  /** Optimizer steps per epoch (global batches, the last partial one included). */
  stepsPerEpoch: number;
}

/**
 * The rate the schedule starts from in `epoch`: `optimizer.learningRate`, replaced by
 * `freeze.unfreezeLearningRate` (when set) in every epoch the backbone trains, from `backboneEpochs` on.
 * With `backboneEpochs: 0` that is epoch 0: the backbone is never frozen, so it trains at the unfreeze
 * rate throughout, as the seeds' recipe trains an unfrozen pretrained backbone at its lower rate with
 * FREEZE=0 too. Otherwise a 0-frozen-epoch trial of a freeze sweep would also differ in its rate, not only
 * in its frozen phase. The schedule keeps counting epochs from 0 across the switch (a cosine does not
 * restart at unfreeze).
 */
export function phaseBaseLearningRate(epoch: number, cfg: LrScheduleConfig): number {
  const { backboneEpochs, unfreezeLearningRate } = cfg.freeze;
  if (epoch >= backboneEpochs && unfreezeLearningRate !== undefined) return unfreezeLearningRate;
  return cfg.optimizer.learningRate;
}

/**
 * The scheduled rate for `epoch` ignoring warm-up and cosine interpolation: what changes only at
 * epoch boundaries (unfreeze, step decay, plateau reductions). Used to decide when an `lr-change`
 * event is due; cosine annealing moves every step and is not an event.
 */
export function nominalEpochLearningRate(epoch: number, cfg: LrScheduleConfig, plateauScale = 1): number {
  const base = phaseBaseLearningRate(epoch, cfg);
  const s = cfg.schedule;
  switch (s.type) {
    case 'step':
      return base * Math.pow(s.gamma, Math.floor(epoch / s.stepEpochs));
    case 'plateau':
      return plateauRate(base, plateauScale, s);
    case 'constant':
    case 'cosine':
      return base;
  }
}

/** Number of warm-up steps: `warmupEpochs` (may be fractional) in steps, at least 1 when enabled. */
export function warmupSteps(cfg: LrScheduleConfig, stepsPerEpoch: number): number {
  const w = cfg.schedule.warmupEpochs;
  return w > 0 ? Math.max(1, Math.round(w * stepsPerEpoch)) : 0;
}

/**
 * The base learning rate (before per-group multipliers) for one optimizer step: a pure function
 * of the position, so every worker and the coordinator agree without exchanging it.
 *
 * - constant: the phase base rate.
 * - step: times `gamma` every `stepEpochs` epochs.
 * - cosine: per step from the base rate (after warm-up) to `minLearningRate` at the end of
 *   `training.epochs`.
 * - plateau: the base rate times the {@link ReduceLrOnPlateau} scale, floored at its minimum.
 *
 * Warm-up multiplies any of these by `(globalStep + 1) / warmupSteps` while below 1, so the first
 * step already moves (a factor of 0 would waste it) and the last warm-up step reaches the full rate.
 */
export function baseLearningRate(pos: SchedulePosition, cfg: LrScheduleConfig, plateauScale = 1): number {
  const { epoch, stepInEpoch, stepsPerEpoch } = pos;
  const s = cfg.schedule;
  const globalStep = epoch * stepsPerEpoch + stepInEpoch;
  const warm = warmupSteps(cfg, stepsPerEpoch);
  let lr: number;
  if (s.type === 'cosine') {
    const base = phaseBaseLearningRate(epoch, cfg);
    const total = cfg.training.epochs * stepsPerEpoch;
    const span = Math.max(1, total - warm);
    const progress = Math.min(1, Math.max(0, (globalStep - warm) / span));
    const floor = Math.min(s.minLearningRate, base);
    lr = floor + (base - floor) * 0.5 * (1 + Math.cos(Math.PI * progress));
  } else {
    lr = nominalEpochLearningRate(epoch, cfg, plateauScale);
  }
  if (globalStep < warm) lr *= (globalStep + 1) / warm;
  return lr;
}

/** The effective rate of each parameter group: the base rate times the group's multiplier. */
export function groupLearningRates(baseLr: number, paramGroups: JobSpec['paramGroups']): Record<ParamGroupName, number> {
  const out = {} as Record<ParamGroupName, number>;
  for (const g of PARAM_GROUPS) out[g] = baseLr * paramGroups[g].lrMultiplier;
  return out;
}

function plateauRate(base: number, scale: number, s: ScheduleSpec): number {
  return scale < 1 ? Math.max(s.plateau.minLearningRate, base * scale) : base;
}
