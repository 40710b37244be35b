import { ConfigError, MAX_WORKER_ID_LENGTH } from '../../common';
import { RegistrationRejectedError, RegistrationRejection, WorkerGoneError, WorkerStateError } from '../errors';

/**
 * Lifecycle of one worker incarnation. `joining` workers wait for the next step boundary; only `active`
 * ones get new shares; `draining` ones finish the share they hold and get nothing more; `left` and
 * `failed` are terminal for the incarnation (the id may register again as a new incarnation).
 */
export const MemberState = {
  Joining: 'joining',
  Active: 'active',
  Draining: 'draining',
  Left: 'left',
  Failed: 'failed',
} as const;
export type MemberState = (typeof MemberState)[keyof typeof MemberState];

/** States in which a worker counts towards `maxWorkers` and must keep sending heartbeats. */
const LIVE_STATES: ReadonlySet<MemberState> = new Set([MemberState.Joining, MemberState.Active, MemberState.Draining]);

/** Allowed lifecycle moves; anything else is a coordinator bug and throws WorkerStateError. */
const TRANSITIONS: Readonly<Record<MemberState, readonly MemberState[]>> = {
  joining: ['active', 'left', 'failed'],
  active: ['draining', 'left', 'failed'],
  draining: ['left', 'failed'],
  left: [],
  failed: [],
};

/** Options of {@link Membership}. */
export interface MembershipOptions {
  /** Active workers needed to run a step; below it training waits. @default 1 */
  minWorkers?: number;
  /** Live (joining, active or draining) workers allowed at once; more registrations are rejected. @default 64 */
  maxWorkers?: number;
  /** A worker silent for longer than this is reported by `expired()`. @default 15000 */
  heartbeatTimeoutMs?: number;
}

/** {@link MembershipOptions} with defaults filled and checked. */
export type CompiledMembershipOptions = Required<MembershipOptions>;

/** Fills defaults and checks the fields that depend on each other. */
export function compileMembershipOptions(options: MembershipOptions = {}): CompiledMembershipOptions {
  const out = {
    minWorkers: options.minWorkers ?? 1,
    maxWorkers: options.maxWorkers ?? 64,
    heartbeatTimeoutMs: options.heartbeatTimeoutMs ?? 15_000,
  };
  if (!Number.isInteger(out.minWorkers) || out.minWorkers < 1) {
    throw new ConfigError('minWorkers', `expected an integer >= 1, got ${out.minWorkers}`);
  }
  if (!Number.isInteger(out.maxWorkers) || out.maxWorkers < out.minWorkers) {
    throw new ConfigError('maxWorkers', `expected an integer >= minWorkers (${out.minWorkers}), got ${out.maxWorkers}`);
  }
  if (!(out.heartbeatTimeoutMs > 0) || !Number.isFinite(out.heartbeatTimeoutMs)) {
    throw new ConfigError('heartbeatTimeoutMs', `expected a finite number > 0, got ${out.heartbeatTimeoutMs}`);
  }
  return out;
}

/** A snapshot of one worker's registration (copies: mutating it changes nothing). */
export interface WorkerRecord {
  id: string;
  /** Increases each time the id registers; results and heartbeats must carry the current one. */
  incarnation: number;
  state: MemberState;
  registeredAtMs: number;
  /** When it became active; undefined while joining or if it never got there. */
  admittedAtMs?: number;
  lastHeartbeatMs: number;
  /** `lastHeartbeatMs + heartbeatTimeoutMs`: past it, `expired()` reports the worker. */
  deadlineMs: number;
  /** Why it failed, for `failed` workers. */
  failureReason?: string;
  /** The registering process's random id ('' when it sent none). */
  processId: string;
}

/** What {@link Membership.register} did. */
export interface Registration {
  worker: WorkerRecord;
  /**
   * The previous incarnation of the same id, when it was still live: the worker restarted without
   * saying goodbye. It is now `failed`; the coordinator must reassign any share it held.
   */
  replaced?: WorkerRecord;
}

/** Monotonic membership counters, for metrics and logs. */
export interface MembershipCounters {
  joins: number;
  admissions: number;
  leaves: number;
  failures: number;
  rejectedRegistrations: number;
}

/** Outcome of checking who sent a result. */
export type SenderCheck = { ok: true } | { ok: false; reason: string };

/**
 * The coordinator's worker registry. Time is passed in (`nowMs`) rather than read, so heartbeat expiry
 * is tested without sleeping and the registry stays a pure state machine; the coordinator owns clocks,
 * timers and what to do about expired or failed workers (reassign their shares).
 */
export class Membership {
  readonly options: CompiledMembershipOptions;
  private readonly workers = new Map<string, WorkerRecord>();
  private readonly counts: MembershipCounters = {
    joins: 0,
    admissions: 0,
    leaves: 0,
    failures: 0,
    rejectedRegistrations: 0,
  };

  constructor(options: MembershipOptions = {}) {
    this.options = compileMembershipOptions(options);
  }

  /**
   * Registers a worker as `joining` with a fresh incarnation; it becomes active at the next
   * `admitPending()`. The same process registering again under a live id (it lost an answer) replaces
   * its old incarnation, which fails (returned as `replaced`) so its late results are rejected. Another
   * process under a live id is refused until the live incarnation is gone (left, or its lease expired):
   * two pods under one name must not take turns dropping each other mid-step.
   * @throws RegistrationRejectedError when `maxWorkers` live workers are registered already, or
   *   (reason `id-in-use`) another live process holds the id.
   */
  register(workerId: string, nowMs: number, processId = ''): Registration {
    if (workerId.length === 0 || workerId.length > MAX_WORKER_ID_LENGTH) {
      this.counts.rejectedRegistrations++;
      throw new RegistrationRejectedError(
        workerId,
        RegistrationRejection.InvalidId,
        `expected an id of 1..${MAX_WORKER_ID_LENGTH} characters, got ${workerId.length}`,
      );
    }
    const previous = this.workers.get(workerId);
    const previousLive = previous !== undefined && LIVE_STATES.has(previous.state);
    const liveOthers = this.liveCount() - (previousLive ? 1 : 0);
    if (liveOthers >= this.options.maxWorkers) {
      this.counts.rejectedRegistrations++;
      throw new RegistrationRejectedError(
        workerId,
        RegistrationRejection.Full,
        `expected fewer than maxWorkers=${this.options.maxWorkers} live workers, found ${liveOthers}`,
      );
    }
    const leaseOver = previous !== undefined && nowMs > previous.deadlineMs;
    if (previous && previousLive && !leaseOver && previous.processId !== '' && previous.processId !== processId) {
      this.counts.rejectedRegistrations++;
      throw new RegistrationRejectedError(workerId, RegistrationRejection.IdInUse,
        `another live process holds this id (incarnation ${previous.incarnation}, last heartbeat ` +
        `${Math.max(0, nowMs - previous.lastHeartbeatMs)} ms ago); a new process is admitted under it once that one is gone ` +
        `(it leaves, or ${this.options.heartbeatTimeoutMs} ms pass without its heartbeat)`);
    }
    let replaced: WorkerRecord | undefined;
    if (previous && previousLive) {
      this.markFailed(previous, leaseOver
        ? `lease expired (no heartbeat for ${nowMs - previous.lastHeartbeatMs} ms); incarnation ${previous.incarnation + 1} registered`
        : `replaced by incarnation ${previous.incarnation + 1} (worker re-registered)`);
      replaced = { ...previous };
    }
    const record: WorkerRecord = {
      id: workerId,
      incarnation: (previous?.incarnation ?? 0) + 1,
      state: MemberState.Joining,
      registeredAtMs: nowMs,
      lastHeartbeatMs: nowMs,
      deadlineMs: nowMs + this.options.heartbeatTimeoutMs,
      processId,
    };
    this.workers.set(workerId, record);
    this.counts.joins++;
    return { worker: { ...record }, replaced };
  }

  /**
   * Activates every joining worker. Call it between steps only: a worker admitted mid-step would change
   * the set a step was cut over. Returns the admitted workers.
   */
  admitPending(nowMs: number): WorkerRecord[] {
    const admitted: WorkerRecord[] = [];
    for (const record of this.sorted()) {
      if (record.state !== MemberState.Joining) continue;
      this.moveTo(record, MemberState.Active);
      record.admittedAtMs = nowMs;
      this.counts.admissions++;
      admitted.push({ ...record });
    }
    return admitted;
  }

  /**
   * Records a heartbeat, pushing the worker's deadline to `nowMs + heartbeatTimeoutMs`.
   * @throws WorkerGoneError for an unknown id, a stale incarnation or a worker that left or failed:
   *   the worker should register again.
   */
  heartbeat(workerId: string, incarnation: number, nowMs: number): WorkerRecord {
    const record = this.live(workerId, incarnation);
    record.lastHeartbeatMs = Math.max(record.lastHeartbeatMs, nowMs);
    record.deadlineMs = record.lastHeartbeatMs + this.options.heartbeatTimeoutMs;
    return { ...record };
  }

  /** Live workers whose deadline is before `nowMs`, in id order. The coordinator decides to `fail` them. */
  expired(nowMs: number): WorkerRecord[] {
    return this.sorted()
      .filter((r) => LIVE_STATES.has(r.state) && r.deadlineMs < nowMs)
      .map((r) => ({ ...r }));
  }

  /**
   * Starts draining (SIGTERM on the worker): it keeps the share it holds but gets no new one. A joining
   * worker holds nothing, so it leaves at once. Draining twice is harmless.
   */
  drain(workerId: string, incarnation: number): WorkerRecord {
    const record = this.live(workerId, incarnation);
    if (record.state === MemberState.Joining) {
      this.moveTo(record, MemberState.Left);
      this.counts.leaves++;
    } else if (record.state === MemberState.Active) {
      this.moveTo(record, MemberState.Draining);
    }
    return { ...record };
  }

  /**
   * A worker left on purpose (done draining, or said goodbye). Returns the state it left from: from
   * `active` it may still have held a share, which the coordinator must reassign.
   */
  leave(workerId: string, incarnation: number): MemberState {
    const record = this.live(workerId, incarnation);
    const from = record.state;
    this.moveTo(record, MemberState.Left);
    this.counts.leaves++;
    return from;
  }

  /**
   * Marks a live worker failed (missed deadline, dropped connection, bad result). Returns false when the
   * worker was not live (already failed or left), so a failure noticed twice is counted once.
   */
  fail(workerId: string, reason: string): boolean {
    const record = this.workers.get(workerId);
    if (!record || !LIVE_STATES.has(record.state)) return false;
    this.markFailed(record, reason);
    return true;
  }

  /**
   * Whether a result (or any message tied to a share) from this worker incarnation may be used: only
   * the current incarnation, active or draining. Late results from a dropped incarnation fail here.
   */
  checkSender(workerId: string, incarnation: number): SenderCheck {
    const record = this.workers.get(workerId);
    if (!record) return { ok: false, reason: `worker ${JSON.stringify(workerId)} is not registered` };
    if (incarnation !== record.incarnation) {
      const reason = `incarnation ${incarnation} is stale (current is ${record.incarnation})`;
      return { ok: false, reason: `worker ${JSON.stringify(workerId)} ${reason}` };
    }
    if (record.state !== MemberState.Active && record.state !== MemberState.Draining) {
      return { ok: false, reason: `worker ${JSON.stringify(workerId)} is ${record.state}, not active or draining` };
    }
    return { ok: true };
  }

  /** Ids of active workers in a stable (sorted) order: the order shares are cut over. */
  activeWorkers(): string[] {
    return this.sorted()
      .filter((r) => r.state === MemberState.Active)
      .map((r) => r.id);
  }

  /** Whether enough workers are active to run a step. */
  canTrain(): boolean {
    return this.activeWorkers().length >= this.options.minWorkers;
  }

  /** Why training waits ("waiting for workers: 1 active, minWorkers=2"), or undefined when it need not. */
  waitingReason(): string | undefined {
    const active = this.activeWorkers().length;
    if (active >= this.options.minWorkers) return undefined;
    return `waiting for workers: ${active} active, minWorkers=${this.options.minWorkers}`;
  }

  /** Current record of a worker id (its latest incarnation), if it ever registered. */
  get(workerId: string): WorkerRecord | undefined {
    const record = this.workers.get(workerId);
    return record && { ...record };
  }

  /** Every worker id's latest incarnation, in id order. */
  list(): WorkerRecord[] {
    return this.sorted().map((r) => ({ ...r }));
  }

  /** Number of workers in each state. */
  stateCounts(): Record<MemberState, number> {
    const out = { joining: 0, active: 0, draining: 0, left: 0, failed: 0 };
    for (const r of this.workers.values()) out[r.state]++;
    return out;
  }

  /** Monotonic counters since this registry was created. */
  counters(): MembershipCounters {
    return { ...this.counts };
  }

  private liveCount(): number {
    let n = 0;
    for (const r of this.workers.values()) if (LIVE_STATES.has(r.state)) n++;
    return n;
  }

  private sorted(): WorkerRecord[] {
    return [...this.workers.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  private moveTo(record: WorkerRecord, to: MemberState): void {
    if (!TRANSITIONS[record.state].includes(to)) throw new WorkerStateError(record.id, record.state, to);
    record.state = to;
  }

  private markFailed(record: WorkerRecord, reason: string): void {
    this.moveTo(record, MemberState.Failed);
    record.failureReason = reason;
    this.counts.failures++;
  }

  private live(workerId: string, incarnation: number): WorkerRecord {
    const record = this.workers.get(workerId);
    if (!record) throw new WorkerGoneError(workerId, 'is not registered', incarnation);
    if (record.incarnation !== incarnation) {
      throw new WorkerGoneError(workerId, `incarnation ${incarnation} is stale (current is ${record.incarnation})`, incarnation);
    }
    if (!LIVE_STATES.has(record.state)) throw new WorkerGoneError(workerId, `is ${record.state}`, incarnation);
    return record;
  }
}
