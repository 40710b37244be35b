import { ProcessState } from '../common';
import { WorkerStateError } from './errors';

/**
 * Lifecycle of a worker process: `starting` (backend, metrics, registration, first weights), `running`
 * (the step loop), `draining` (finishing the share in progress before leaving), then `stopped` or
 * `failed`, both final.
 */
export const WorkerLifecycle = ProcessState;
export type WorkerLifecycle = ProcessState;

const TRANSITIONS: Readonly<Record<WorkerLifecycle, readonly WorkerLifecycle[]>> = {
  starting: ['running', 'draining', 'stopped', 'failed'],
  running: ['draining', 'stopped', 'failed'],
  draining: ['stopped', 'failed'],
  stopped: [],
  failed: [],
};

/** The state after a move from `from` to `to`; WorkerStateError when the lifecycle does not allow it. */
export function nextLifecycle(from: WorkerLifecycle, to: WorkerLifecycle): WorkerLifecycle {
  if (!TRANSITIONS[from].includes(to)) throw new WorkerStateError(from, to);
  return to;
}

/** Whether no move leaves `state`. */
export function isFinal(state: WorkerLifecycle): boolean {
  return TRANSITIONS[state].length === 0;
}
