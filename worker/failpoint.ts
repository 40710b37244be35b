/** The environment variable of {@link killAtFailpoint}: a global step, N >= 1. */
export const KILL_AT_STEP_ENV = 'SHARDWISE_FAILPOINT_KILL_AT_STEP';
/** The environment variable of {@link stopBeforePushFailpoint}: `1` arms it on SIGUSR2. */
export const STOP_BEFORE_PUSH_ENV = 'SHARDWISE_FAILPOINT_STOP_BEFORE_PUSH';
/** The line {@link stopBeforePushFailpoint} logs as the worker stops itself; group 1 is the global step. */
export const STOPPED_BEFORE_PUSH = /failpoint: stopped before pushing its share of step (\d+)/;

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

/** Armed by SIGUSR2 when STOP_BEFORE_PUSH_ENV is `1`; disarmed once it stopped the worker. */
let stopArmed = false;

/**
 * Installs the stop-before-push failpoint's trigger when STOP_BEFORE_PUSH_ENV is `1`: a SIGUSR2 arms it.
 * Unset, the worker does not listen to SIGUSR2 at all.
 */
export function installStopBeforePush(env: NodeJS.ProcessEnv = process.env): void {
  const value = env[STOP_BEFORE_PUSH_ENV];
  if (value === undefined) return;
  if (value !== '1') throw new Error(`${STOP_BEFORE_PUSH_ENV}: expected 1, got '${value}'`);
  process.on('SIGUSR2', () => (stopArmed = true));
}

/**
 * Fault tests' failpoint: once armed (installStopBeforePush, then SIGUSR2), the next training share the
 * worker computes stops the worker itself (SIGSTOP) after the compute and before the push, once, having
 * logged `failpoint: stopped before pushing its share of step S`. The test holds it there as long as it
 * needs and resumes it with SIGCONT. A SIGSTOP sent from outside on the "computing" line can land after
 * the push (the compute takes milliseconds). The stop is real; only its moment is exact.
 */
export function stopBeforePushFailpoint(globalStep: number, log: (line: string) => void): void {
  if (!stopArmed) return;
  stopArmed = false;
  // A pipe write is synchronous on Linux: the line is out before the process stops.
  log(`failpoint: stopped before pushing its share of step ${globalStep}`);
  process.kill(process.pid, 'SIGSTOP');
}
