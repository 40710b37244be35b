import { type ReadyState, statusCodeFor } from '../common';
import { type Assignment, AssignmentKind, pullAssignment } from './assignment-desk';
import { InvalidResultError, WorkerGoneError } from './errors';
import type { JobContext } from './job-context';
import { type GradientPush, receiveGradients, type WireChunk } from './result-intake';
import { CoordinatorState } from './lifecycle';
import { type ConfigSnapshot, currentConfig } from './worker-calls';

/** One pushed order: the configuration first when it moved past the worker's, then the assignment. */
export interface Order {
  config?: ConfigSnapshot;
  assignment: Assignment;
}

/** The answer to a held share's header sent on the stream: accepted (code 0), or the status a push would fail with. */
export interface HeldAnswer {
  globalStep: number;
  /** 0: accepted; otherwise the gRPC status code of the refusal (statusCodeFor), and why. */
  code: number;
  details: string;
  workersReported: number;
}

/** A SessionReady the coordinator stands in for (see SessionOrders.readyAfter). */
export type StandingReady = ReadyState & { followsStep?: number };

/** A held push carries no chunks. */
// eslint-disable-next-line require-yield
async function* noChunks(): AsyncGenerator<WireChunk> {
  return;
}

/** Sessions open now, by job: a worker incarnation has at most one. */
const openSessions = new WeakMap<JobContext, Map<string, number>>();

/**
 * The coordinator's side of one worker's Session stream (one incarnation's session). It answers each
 * SessionReady with the worker's next order the moment the job has one (the assignment desk decides what;
 * this waits on the job's change signal, so no answer waits on a timer), and when the stream ends for any
 * reason it takes back what that incarnation held: a session is the incarnation's life line, so the
 * worker, which sees the same end, drops its held sums at the same moment and registers again.
 */
export class SessionOrders {
  /** The newest configuration version the worker has (said or was sent). */
  private configSent = -1;
  private closed = false;

  private constructor(
    private readonly job: JobContext,
    readonly workerId: string,
    readonly incarnation: number,
  ) {}

  /**
   * Opens the session of `workerId`'s live `incarnation`.
   * @throws WorkerGoneError (NOT_FOUND) when that incarnation is not the live one, or already has a session.
   */
  static open(job: JobContext, workerId: string, incarnation: number): SessionOrders {
    const record = job.members.member(workerId).record;
    if (record.incarnation !== incarnation) {
      throw new WorkerGoneError(workerId, `incarnation ${incarnation} is not the live one (${record.incarnation})`);
    }
    const open = openSessions.get(job) ?? new Map<string, number>();
    openSessions.set(job, open);
    if (open.get(workerId) === incarnation) {
      throw new WorkerGoneError(workerId, `incarnation ${incarnation} already has a session stream; register again for a new one`);
    }
    open.set(workerId, incarnation);
    return new SessionOrders(job, workerId, incarnation);
  }

  /**
   * The next order for a worker in `state`: work, an allreduce or STOP as soon as there is one, or a
   * WAIT once `state.maxWaitMs` passed with nothing to do.
   * @throws WorkerGoneError once this incarnation is no longer the live member.
   */
  async next(state: StandingReady, gone: AbortSignal): Promise<Order> {
    this.checkLive();
    this.configSent = Math.max(this.configSent, state.configVersion);
    const request = { workerId: this.workerId, weightsVersion: state.weightsVersion, maxWaitMs: state.maxWaitMs, reducedKey: state.reducedKey, followsStep: state.followsStep };
    const assignment = await pullAssignment(this.job, request, gone);
    // A newer incarnation may have registered while this one waited: its work is not this stream's.
    this.checkLive();
    const order: Order = { assignment };
    const config = currentConfig(this.job);
    if (config.configVersion > this.configSent && assignment.kind !== AssignmentKind.Stop) {
      this.configSent = config.configVersion;
      order.config = config;
    }
    return order;
  }

  /**
   * The SessionReady a REDUCE order stands for: a worker told to reduce is ready for its next order as its
   * part starts, on the weights the order brings it to, holding (or reducing) that attempt's result. So the
   * coordinator decides that order at once, with no ready of the worker's own: the next step's share
   * (PreparedStep) follows the REDUCE on the stream and is there when the worker's part ends, rather than a
   * hop after a ready that the coordinator would read only once its own part and the commit are done. A
   * worker whose part fails drops that order, as it would drop the answer to a ready of its own.
   * A TRAIN with its step's planned allreduce stands for one too: the ready the worker would send with its
   * push, holding that attempt's result (`followsStep`: no other share before that step is open), so its
   * next share is on its way while it computes, not a round trip after its push.
   * Undefined after any other order: the worker sends its next SessionReady itself.
   */
  static readyAfter(ready: ReadyState, order: Assignment): StandingReady | undefined {
    if (!order.reduce) return undefined;
    if (order.kind === AssignmentKind.Reduce) return { ...ready, weightsVersion: order.weightsVersion, reducedKey: order.reduce.key };
    if (order.kind !== AssignmentKind.Train) return undefined;
    return { ...ready, weightsVersion: order.weightsVersion, reducedKey: order.reduce.key, followsStep: order.globalStep };
  }

  /**
   * A share's header whose sums the worker keeps for the allreduce, sent on this stream: accepted into the
   * round as a PushGradients header would be, or refused with the status that call would have failed with.
   * It comes with the SessionReady in the same HeldShare, so the order that answers that ready
   * (the REDUCE once every share is in) already counts this share: no round trip for the push's answer.
   * A share of a step handed out ahead (PreparedStep) that comes before the step it follows committed
   * waits for that commit (or the attempt's failure, which makes it stale).
   * @throws WorkerGoneError once this incarnation is no longer the live member (the stream ends).
   */
  async held(push: GradientPush, gone: AbortSignal): Promise<HeldAnswer> {
    this.checkLive();
    while (this.aheadOfCommit(push.globalStep) && !gone.aborted) await this.job.changed.wait(Infinity, gone);
    this.checkLive();
    try {
      if (push.workerId !== this.workerId) {
        throw new InvalidResultError(push.workerId, 'worker_id', `Session: expected worker_id '${this.workerId}' throughout, got '${push.workerId}'`);
      }
      if (!push.held) throw new InvalidResultError(this.workerId, 'held', 'Session: a share sent on the session stream must be held (held = true)');
      const accepted = await receiveGradients(this.job, push, noChunks());
      return { globalStep: accepted.globalStep, code: 0, details: '', workersReported: accepted.workersReported };
    } catch (err) {
      if (err instanceof WorkerGoneError) throw err;
      return { globalStep: push.globalStep, code: statusCodeFor(err), details: err instanceof Error ? err.message : String(err), workersReported: 0 };
    }
  }

  /** Whether `globalStep` is the step prepared while the open step's allreduce runs (not open for pushes yet). */
  private aheadOfCommit(globalStep: number): boolean {
    const round = this.job.round;
    return round?.kind === 'train' && round.next?.round.globalStep === globalStep;
  }

  /**
   * The stream ended (`why`): the incarnation is over. A worker that was told STOP has left; any other
   * is dropped, and what it held in the round (handouts, sums kept for the allreduce) is redone. Idempotent.
   */
  close(why: string): void {
    if (this.closed) return;
    this.closed = true;
    const open = openSessions.get(this.job);
    if (open?.get(this.workerId) === this.incarnation) open.delete(this.workerId);
    const { job } = this;
    const record = job.members.get(this.workerId);
    if (!record || record.incarnation !== this.incarnation || !job.isLive(this.workerId)) return;
    // A coordinator that is stopping cuts every stream itself; the checkpoint already says what counts.
    if (job.lifecycle.state === CoordinatorState.Stopped || job.lifecycle.state === CoordinatorState.Failed) return;
    const told = job.members.session(this.workerId)?.toldStop ?? false;
    job.loseWorker(this.workerId, told ? 'left' : 'failed', `its session stream (incarnation ${this.incarnation}) ended: ${why}`);
  }

  private checkLive(): void {
    // member() says why a member is gone (dropped for what, left); a newer incarnation is said here.
    const { record } = this.job.members.member(this.workerId);
    if (this.closed || record.incarnation !== this.incarnation) {
      throw new WorkerGoneError(this.workerId, `incarnation ${this.incarnation} was replaced by incarnation ${record.incarnation}`);
    }
  }
}
