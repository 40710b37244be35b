import { ShardwiseError } from '../errors';

/**
 * Where a reduction was when it failed: checking its arguments, connecting to a member it receives from,
 * agreeing with its peers on the reduction (hello and ready frames), the reduce-scatter (parts of each
 * segment sent to its owner and folded there) or the allgather (reduced segments sent to every member),
 * or shut down by `DataPlane.close`, or voided by this member (`DataPlane.abort`).
 */
export const ALLREDUCE_PHASES = ['start', 'connect', 'handshake', 'reduce-scatter', 'allgather', 'closed', 'aborted'] as const;
/** One of `ALLREDUCE_PHASES`. */
export type AllreducePhase = (typeof ALLREDUCE_PHASES)[number];

/**
 * An allreduce failed: a peer died or closed, the deadline passed, a frame was malformed, held NaN/Inf
 * or had the wrong size, or the members disagree about the reduction. The caller's data is garbage
 * afterwards; the reduction's channels are closed, so every other member fails promptly as well.
 */
export class AllreduceError extends ShardwiseError {
  /** The reduction's key (e.g. `job-3f2a/step-12/attempt-2`). */
  readonly key: string;
  /** Id of the member whose link failed (or that we were waiting for), when one is to blame. */
  readonly peer?: string;
  /** Where the reduction was; see `ALLREDUCE_PHASES`. */
  readonly phase: AllreducePhase;
  constructor(key: string, phase: AllreducePhase, message: string, options: { peer?: string; cause?: unknown } = {}) {
    const where = options.peer === undefined ? '' : ` (peer '${options.peer}')`;
    super(`allreduce '${key}', ${phase}${where}: ${message}`, { cause: options.cause });
    this.name = 'AllreduceError';
    this.key = key;
    this.peer = options.peer;
    this.phase = phase;
  }
}

/** The reduction `key` failed at its start: this member's own input (a pending one) rejected with `err`. */
export function inputNeverCame(key: string, err: unknown): AllreduceError {
  return new AllreduceError(key, 'start', `its own input never came: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
}
