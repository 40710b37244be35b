import { type AllreduceMember, COORDINATOR_MEMBER_ID, type WireTensorSpec } from '../../common';

/** The coordinator's id in every reduction (defined with the data plane, which checks it against certificates). */
export { COORDINATOR_MEMBER_ID };

/** What a member is told in its REDUCE assignment (all but `rank` is the same at every member). */
export interface ReduceOrder {
  key: string;
  members: readonly AllreduceMember[];
  rank: number;
  /** Layout of the vector: the gradient sums, then the BatchNorm statistic delta sums. */
  tensors: readonly WireTensorSpec[];
  gradientTensorCount: number;
  timeoutMs: number;
}

/**
 * One allreduce attempt of a step's held sums: its members (every worker that holds an accepted share, and
 * the coordinator, in micro-batch order; see reduceStep), which members were told, and, once it failed, which
 * came back asking for work (alive) so the coordinator knows whom to wait for before it retries. Whether
 * it runs or failed is the step's phase ({@link StepPhase}), not the reduction's. A worker member is the
 * incarnation that pushed its sums: a new incarnation under the same id (a restarted process) holds none
 * of them, so it is neither told nor counted back.
 */
export class Reduction {
  private readonly told = new Set<string>();
  private readonly back = new Set<string>();
  private readonly lostMember = new AbortController();

  constructor(
    readonly key: string,
    readonly members: readonly AllreduceMember[],
    readonly tensors: readonly WireTensorSpec[],
    readonly gradientTensorCount: number,
    readonly timeoutMs: number,
    /** Each worker member's incarnation when the attempt opened. */
    private readonly incarnations: ReadonlyMap<string, number>,
  ) {}

  /** Worker ids among the members (the coordinator left out). */
  get workers(): string[] {
    return this.members.filter((m) => m.id !== COORDINATOR_MEMBER_ID).map((m) => m.id);
  }

  isMember(workerId: string): boolean {
    return this.members.some((m) => m.id === workerId);
  }

  /** The incarnation of worker member `workerId` whose sums this attempt reduces; undefined for a non-member. */
  incarnationOf(workerId: string): number | undefined {
    return this.incarnations.get(workerId);
  }

  /**
   * The member's REDUCE order the first time its incarnation asks (the step is reducing); undefined
   * afterwards, and for any other incarnation of the id.
   */
  orderFor(workerId: string, incarnation: number): ReduceOrder | undefined {
    if (this.told.has(workerId) || this.incarnationOf(workerId) !== incarnation) return undefined;
    const rank = this.members.findIndex((m) => m.id === workerId);
    if (rank < 0) return undefined;
    this.told.add(workerId);
    return {
      key: this.key,
      members: this.members,
      rank,
      tensors: this.tensors,
      gradientTensorCount: this.gradientTensorCount,
      timeoutMs: this.timeoutMs,
    };
  }

  /** Every member already runs this attempt (it was planned, and handed out with the shares): no REDUCE order goes out. */
  markAllTold(): void {
    for (const id of this.workers) this.told.add(id);
  }

  /** A member's incarnation asked for work after the attempt failed (the step is reduce-failed): it is alive. */
  markBack(workerId: string, incarnation: number): void {
    if (this.incarnationOf(workerId) === incarnation) this.back.add(workerId);
  }

  /** Whether the member came back after the failure. */
  isBack(workerId: string): boolean {
    return this.back.has(workerId);
  }

  /**
   * Aborted (its reason names the member) once a worker member's incarnation is lost while the attempt
   * runs: its sums can no longer be committed, so the attempt can only fail, and waiting for its timeout
   * would hold every member (see reduceStep).
   */
  get lost(): AbortSignal {
    return this.lostMember.signal;
  }

  /** Worker member `workerId` is gone (failed, left, or replaced by a new incarnation); a non-member is ignored. */
  memberLost(workerId: string, why: string): void {
    if (this.incarnations.has(workerId) && !this.lostMember.signal.aborted) this.lostMember.abort(`member '${workerId}' was lost while it ran: ${why}`);
  }
}
