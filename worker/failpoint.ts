/** The environment variable of {@link killAtFailpoint}: a global step, N >= 1. */
export const KILL_AT_STEP_ENV = 'SHARDWISE_FAILPOINT_KILL_AT_STEP';

/** Read once at start, since the check runs on every share of the training step; unset: never. */
const KILL_AT_STEP = killAtStep(process.env[KILL_AT_STEP_ENV]);

function killAtStep(value: string | undefined): number {
  if (value === undefined) return Infinity;
  const step = Number(value);
  if (!Number.isInteger(step) || step < 1) throw new Error(`${KILL_AT_STEP_ENV}: expected a global step >= 1, got '${value}'`);
  return step;
}

/**
 * Fault tests' failpoint: with SHARDWISE_FAILPOINT_KILL_AT_STEP=N set, the worker SIGKILLs itself as it starts
 * computing its first share of a global step at or after N. A kill sent from outside when the worker logs
 * "computing" cannot be sure to land before the share is pushed: a micro-batch of the tests' model computes
 * in a few milliseconds. The kill is real (the process ends on SIGKILL, as the OOM killer would end it);
 * only its moment is exact. Unset, this does nothing.
 */
export function killAtFailpoint(globalStep: number): void {
  if (globalStep >= KILL_AT_STEP) process.kill(process.pid, 'SIGKILL');
}
