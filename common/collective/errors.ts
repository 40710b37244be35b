import { ShardwiseError } from '../errors';

/**
 * Where a ring reduction was when it failed: checking its arguments, connecting to the previous member,
 * exchanging hellos, the reduce-scatter or allgather half, or shut down by `DataPlane.close`.
 */
export const RING_PHASES = ['start', 'connect', 'handshake', 'reduce-scatter', 'allgather', 'closed'] as const;
/** One of `RING_PHASES`. */
export type RingPhase = (typeof RING_PHASES)[number];

/**
 * A ring allreduce failed: a peer died or closed, the deadline passed, a frame was malformed, held
 * NaN/Inf or had the wrong size, or the members disagree about the ring. The caller's data is garbage
 * afterwards; the reduction's channels are closed, so every other member fails promptly as well.
 */
export class RingError extends ShardwiseError {
  /** The reduction's key (e.g. `job-3f2a/step-12/attempt-2`). */
  readonly key: string;
  /** Id of the member whose link failed (or that we were waiting for), when one is to blame. */
  readonly peer?: string;
  /** Where the reduction was; see `RING_PHASES`. */
  readonly phase: RingPhase;
  constructor(key: string, phase: RingPhase, message: string, options: { peer?: string; cause?: unknown } = {}) {
    const where = options.peer === undefined ? '' : ` (peer '${options.peer}')`;
    super(`ring allreduce '${key}', ${phase}${where}: ${message}`, { cause: options.cause });
    this.name = 'RingError';
    this.key = key;
    this.peer = options.peer;
    this.phase = phase;
  }
}
