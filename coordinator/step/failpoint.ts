import { setTimeout as sleep } from 'node:timers/promises';

/** The environment variable of {@link commitDelay}: milliseconds, N >= 1. */
export const COMMIT_DELAY_ENV = 'SHARDWISE_FAILPOINT_COMMIT_DELAY_MS';

/** Read once at start; unset: no delay. */
const COMMIT_DELAY_MS = delayOf(process.env[COMMIT_DELAY_ENV]);

function delayOf(value: string | undefined): number {
  if (value === undefined) return 0;
  const ms = Number(value);
  if (!Number.isInteger(ms) || ms < 1) throw new Error(`${COMMIT_DELAY_ENV}: expected milliseconds >= 1, got '${value}'`);
  return ms;
}

/**
 * Tests' failpoint: with SHARDWISE_FAILPOINT_COMMIT_DELAY_MS=N set, the coordinator waits N ms after its part
 * of each allreduce completed before it commits the step, as a coordinator slowed by its machine would.
 * The workers' parts complete first, so they ask for the next step while the step is still committing:
 * the moment the next step is handed out ahead, made certain rather than left to the scheduler. The wait
 * is real time (the event loop runs meanwhile, as it would on a loaded machine). Unset, this returns at once.
 */
export async function commitDelay(): Promise<void> {
  if (COMMIT_DELAY_MS > 0) await sleep(COMMIT_DELAY_MS);
}
