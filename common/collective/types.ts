import type { MicroBatchRun } from './summation-tree';

/** The coordinator's id in every reduction: an observer, or the contributor of the shares pushed to it. */
export const COORDINATOR_MEMBER_ID = 'coordinator';

/** What a member does in a reduction: adds its input to the sum, or only receives the sum. */
export const MEMBER_ROLES = ['contributor', 'observer'] as const;
/** One of `MEMBER_ROLES`. */
export type MemberRole = (typeof MEMBER_ROLES)[number];

/** One member of a reduction: its id, the host:port of its DataPlane, and whether it contributes. */
export interface AllreduceMember {
  readonly id: string;
  readonly address: string;
  /**
   * 'observer': its input is ignored (taken as zeros) and it owns no segment; it only receives the result
   * (the coordinator, which needs the sum for its own replica but has nothing to add).
   * @default 'contributor'
   */
  readonly role?: MemberRole;
  /**
   * The nodes of the step's summation tree whose sums this contributor brings, ascending: its input is
   * one vector per part, back to back. Either every contributor lists its parts (together they cover the
   * micro-batches [0, leaves) exactly) or none does, and then contributor j brings micro-batch j.
   * @default [{ start: j, end: j + 1 }] for the j-th contributor
   */
  readonly parts?: readonly MicroBatchRun[];
}

/**
 * How the data frames carry the vector. `fp16`: IEEE half floats, rounded to nearest even, half the bytes,
 * as Horovod's and DDP's fp16 compression. Each value is multiplied by `prescale` before its conversion and
 * divided by it after (Horovod's prescale_factor), the parts are added in float32 by the same summation
 * tree, and the owner rounds its reduced segment to fp16 and uses that rounded value itself too, so every
 * member still ends with identical bytes.
 */
export interface AllreduceCompression {
  readonly type: 'fp16';
  /** Multiplies every value before the conversion to fp16; the result is divided by it. @default 1 */
  readonly prescale: number;
}

/** One reduction, described identically at every member. */
export interface AllreduceRequest {
  /** Unique per reduction and identical at every member, e.g. `job-3f2a/step-12/attempt-2`. */
  readonly key: string;
  /**
   * Identical at every member. The contributors' parts are added by the summation tree over micro-batch
   * indices (`TreeSum`), so the member order does not change the bytes; observers may sit anywhere.
   * 1 member: allreduce returns at once.
   */
  readonly members: readonly AllreduceMember[];
  /** This process's index in `members`. */
  readonly rank: number;
  /** Give up (close the reduction's channels, throw AllreduceError) when the reduction is not done within this. */
  readonly timeoutMs: number;
  /** Identical at every member (checked in the handshake). @default none: float32 frames, bit-exact */
  readonly compression?: AllreduceCompression;
  /** The tensors the vector holds back to back, to name one in an error (a value beyond the fp16 range). */
  readonly tensors?: readonly { readonly name: string; readonly shape: readonly number[] }[];
}

/** What one reduction moved, for metrics. */
export interface AllreduceStats {
  /** Payload bytes this member sent (segments only, not frame headers). */
  bytesSent: number;
  /** Payload bytes this member received. */
  bytesReceived: number;
  /** Wall time of the whole reduction, connecting included. */
  ms: number;
}
