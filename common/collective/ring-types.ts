/** One member of a ring: its id and the host:port of its DataPlane. */
export interface RingMember {
  readonly id: string;
  readonly address: string;
}

/** One reduction, described identically at every member. */
export interface RingReduction {
  /** Unique per reduction and identical at every member, e.g. `job-3f2a/step-12/attempt-2`. */
  readonly key: string;
  /** Ring order (identical at every member). 1 member: allreduce returns at once. */
  readonly members: readonly RingMember[];
  /** This process's index in `members`. */
  readonly rank: number;
  /** Give up (close the ring's channels, throw RingError) when the reduction is not done within this. */
  readonly timeoutMs: number;
}

/** What one reduction moved, for metrics. */
export interface RingStats {
  /** Payload bytes this member sent (segments only, not frame headers). */
  bytesSent: number;
  /** Payload bytes this member received. */
  bytesReceived: number;
  /** Wall time of the whole reduction, connecting included. */
  ms: number;
}
