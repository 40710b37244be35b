import type { FreezeSpec } from '../job';
import { ConfigError } from '../errors';
import { LrChangeReason, TrainerEventType, type ScheduledEvent } from './events';
import { groupLearningRates, nominalEpochLearningRate, phaseBaseLearningRate, type LrScheduleConfig } from './lr-schedule';

/**
 * Whether the backbone is frozen during `epoch`: epochs `[0, backboneEpochs)`. While frozen it gets
 * no gradients and runs with `training: false`, so BatchNorm uses (and keeps) its moving statistics.
 */
export function isBackboneFrozen(epoch: number, freeze: FreezeSpec): boolean {
  return epoch < freeze.backboneEpochs;
}

/**
 * What changes at the START of `epoch`, in the order to apply and announce it: freeze (epoch 0),
 * unfreeze (epoch `backboneEpochs`), then a change of the scheduled rate (unfreeze rate, step
 * decay). `plateauScale` is the ReduceLROnPlateau scale in force (it does not move at a boundary
 * by itself; plateau reductions are announced by whoever applies them).
 */
export function scheduledEvents(epoch: number, cfg: LrScheduleConfig, plateauScale = 1): ScheduledEvent[] {
  const { backboneEpochs } = cfg.freeze;
  if (!(Number.isInteger(backboneEpochs) && backboneEpochs >= 0)) {
    throw new ConfigError('freeze.backboneEpochs', `expected an integer >= 0, got ${backboneEpochs}`);
  }
  const out: ScheduledEvent[] = [];
  if (epoch === 0 && backboneEpochs > 0) {
    out.push({ type: TrainerEventType.Freeze, epoch, group: 'backbone' });
  }
  if (epoch > 0 && epoch === backboneEpochs) {
    out.push({ type: TrainerEventType.Unfreeze, epoch, group: 'backbone' });
  }
  if (epoch > 0) {
    const from = nominalEpochLearningRate(epoch - 1, cfg, plateauScale);
    const to = nominalEpochLearningRate(epoch, cfg, plateauScale);
    if (from !== to) {
      const unfreezeSwitch = phaseBaseLearningRate(epoch - 1, cfg) !== phaseBaseLearningRate(epoch, cfg);
      out.push({
        type: TrainerEventType.LrChange,
        epoch,
        reason: unfreezeSwitch ? LrChangeReason.Unfreeze : LrChangeReason.StepDecay,
        from,
        to,
        lr: groupLearningRates(to, cfg.paramGroups),
      });
    }
  }
  return out;
}
