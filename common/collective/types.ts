/** What a member does in a reduction: adds its input to the sum, or only receives the sum. */
export const MEMBER_ROLES = ['contributor', 'observer'] as const;
/** One of `MEMBER_ROLES`. */
export type MemberRole = (typeof MEMBER_ROLES)[number];

/** One member of a reduction: its id, the host:port of its DataPlane, and whether it contributes. */
export interface RingMember {
  readonly id: string;
  readonly address: string;
  /**
   * 'observer': its input is ignored (taken as zeros) and it owns no segment; it only receives the result
   * (the coordinator, which needs the sum for its own replica but has nothing to add).
   * @default 'contributor'
   */
  readonly role?: MemberRole;
}

/** One reduction, described identically at every member. */
export interface RingReduction {
  /** Unique per reduction and identical at every member, e.g. `job-3f2a/step-12/attempt-2`. */
  readonly key: string;
  /**
   * Identical at every member. The contributors' inputs are summed in this order (a left fold), bit for
   * bit; observers may sit anywhere. 1 contributor and no observer: allreduce returns at once.
   */
  readonly members: readonly RingMember[];
  /** This process's index in `members`. */
  readonly rank: number;
  /** Give up (close the reduction's channels, throw RingError) when the reduction is not done within this. */
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
