import { PlanningError } from '../errors';
import type { Reduction } from './reduction';

/**
 * Where a training step is, in one place. A step collects its micro-batches' shares; a complete step
 * whose sums some workers hold is allreduced; an allreduce that failed goes back to collecting (the sums
 * of members that died are computed again) and is tried again; a step commits once its sums are known
 * (added on the coordinator, or allreduced). Only the step module moves a step from one phase to the next.
 */
export type StepPhase =
  | { readonly name: 'collecting' }
  | { readonly name: 'reducing'; readonly reduction: Reduction }
  | { readonly name: 'reduce-failed'; readonly reduction: Reduction }
  | { readonly name: 'committed' };

/** One of the phases' names. */
export type StepPhaseName = StepPhase['name'];

/** The moves a step may make. */
const TRANSITIONS: Readonly<Record<StepPhaseName, readonly StepPhaseName[]>> = {
  collecting: ['reducing', 'committed'],
  reducing: ['reduce-failed', 'committed'],
  'reduce-failed': ['collecting'],
  committed: [],
};

/**
 * The phase after `from` moves to `to`.
 * @throws PlanningError for a move the table does not allow: a coordinator bug, never a worker's fault.
 */
export function nextPhase(globalStep: number, from: StepPhase, to: StepPhase): StepPhase {
  if (!TRANSITIONS[from.name].includes(to.name)) {
    throw new PlanningError(`step ${globalStep}: cannot go from phase '${from.name}' to '${to.name}'`);
  }
  return to;
}
