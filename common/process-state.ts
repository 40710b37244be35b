/**
 * The lifecycle states every long-running shardwise process (coordinator, worker) goes through: `starting`,
 * `running`, `draining` (finishing what is in progress before leaving), then `stopped` or `failed`, both
 * final. Each role decides which moves it allows.
 */
export const ProcessState = {
  Starting: 'starting',
  Running: 'running',
  Draining: 'draining',
  Stopped: 'stopped',
  Failed: 'failed',
} as const;
export type ProcessState = (typeof ProcessState)[keyof typeof ProcessState];
