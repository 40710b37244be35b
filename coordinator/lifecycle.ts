import { ProcessState } from '../common';
import { CoordinatorError } from './errors';

/**
 * Lifecycle of the coordinator process. `running` serves workers and trains; `draining` (SIGTERM) hands
 * out no new work, lets the step in progress finish within a grace period and checkpoints; `stopped` and
 * `failed` are final.
 */
export const CoordinatorState = ProcessState;
export type CoordinatorState = ProcessState;

const MOVES: Readonly<Record<CoordinatorState, readonly CoordinatorState[]>> = {
  starting: ['running', 'stopped', 'failed'],
  running: ['draining', 'stopped', 'failed'],
  draining: ['stopped', 'failed'],
  stopped: [],
  failed: [],
};

/** The coordinator's state with its allowed moves and listeners (the bus announces each move). */
export class Lifecycle {
  private current: CoordinatorState = CoordinatorState.Starting;
  private readonly listeners = new Set<(state: CoordinatorState) => void>();

  get state(): CoordinatorState {
    return this.current;
  }

  /** Whether the state is final. */
  get ended(): boolean {
    return this.current === CoordinatorState.Stopped || this.current === CoordinatorState.Failed;
  }

  /** Moves to `to`; a move to the current state is a no-op. @throws CoordinatorError for a move not allowed. */
  moveTo(to: CoordinatorState): void {
    if (to === this.current) return;
    if (!MOVES[this.current].includes(to)) throw new CoordinatorError(`coordinator lifecycle: cannot go from '${this.current}' to '${to}'`);
    this.current = to;
    for (const listener of this.listeners) listener(to);
  }

  /** Calls `listener` after every move. */
  onChange(listener: (state: CoordinatorState) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
