import type { ScheduleSpec } from '../job';
import { ConfigError } from '../errors';

/** Serialisable state of {@link ReduceLrOnPlateau} (JSON-safe: no Infinity). */
export interface PlateauState {
  /** Lowest validation loss seen; null before the first epoch. */
  best: number | null;
  /** Epochs since `best` improved by more than `minDelta` (outside cooldown). */
  badEpochs: number;
  /** Epochs left in the cooldown after a reduction, during which bad epochs are not counted. */
  cooldownLeft: number;
  /** Multiplier on the scheduled rate; starts at 1 and shrinks by `factor` per reduction. */
  scale: number;
}

/** What one {@link ReduceLrOnPlateau.update} decided. */
export interface PlateauDecision {
  reduced: boolean;
  /** Scale before and after the update (equal unless `reduced`). */
  fromScale: number;
  toScale: number;
}

/**
 * ReduceLROnPlateau on validation loss, with Keras semantics (`minDelta` absolute, a reduction
 * after `patience` epochs without improvement, no reduction once the rate is at its minimum).
 * PyTorch reduces after `patience + 1` bad epochs; we follow Keras because the spec's field names
 * (`minDelta`, `cooldown`) are Keras's. `cooldown` N ignores exactly the N epochs after a reduction
 * (as PyTorch; Keras decrements before checking, which makes its cooldown one epoch shorter). Holds a scale rather than a rate so the coordinator can
 * ship four numbers and every worker derives the same rate.
 */
export class ReduceLrOnPlateau {
  private state: PlateauState = { best: null, badEpochs: 0, cooldownLeft: 0, scale: 1 };

  constructor(private readonly spec: ScheduleSpec['plateau'], initial?: PlateauState) {
    if (!(spec.factor > 0 && spec.factor < 1)) {
      throw new ConfigError('schedule.plateau.factor', `expected in (0, 1), got ${spec.factor}`);
    }
    if (!(Number.isInteger(spec.patience) && spec.patience >= 0)) {
      throw new ConfigError('schedule.plateau.patience', `expected an integer >= 0, got ${spec.patience}`);
    }
    if (initial !== undefined) this.setState(initial);
  }

  /** The current multiplier on the scheduled learning rate. */
  get scale(): number {
    return this.state.scale;
  }

  /**
   * Feeds one epoch's validation loss. `unscaledLr` is the scheduled rate before this scale, so
   * reductions stop once `unscaledLr * scale` has reached `minLearningRate`. A NaN loss counts as
   * no improvement.
   */
  update(valLoss: number, unscaledLr: number): PlateauDecision {
    const st = this.state;
    const fromScale = st.scale;
    const inCooldown = st.cooldownLeft > 0;
    if (inCooldown) {
      st.cooldownLeft--;
      st.badEpochs = 0;
    }
    if (st.best === null ? !Number.isNaN(valLoss) : valLoss < st.best - this.spec.minDelta) {
      st.best = valLoss;
      st.badEpochs = 0;
    } else if (!inCooldown) {
      st.badEpochs++;
      if (st.badEpochs >= this.spec.patience) {
        const current = unscaledLr * st.scale;
        if (current > this.spec.minLearningRate * (1 + 1e-9)) {
          st.scale *= this.spec.factor;
          st.cooldownLeft = this.spec.cooldown;
        }
        st.badEpochs = 0;
      }
    }
    return { reduced: st.scale !== fromScale, fromScale, toScale: st.scale };
  }

  /** A copy of the state. */
  getState(): PlateauState {
    return { ...this.state };
  }

  /** Replaces the state (checkpoint restore, coordinator broadcast). */
  setState(state: PlateauState): void {
    if (!(state.scale > 0 && state.scale <= 1)) {
      throw new ConfigError('plateau.scale', `expected in (0, 1], got ${state.scale}`);
    }
    this.state = { ...state };
  }
}
