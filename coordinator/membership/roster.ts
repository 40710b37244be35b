import { ConfigError, type JobSpec, NotReadyError, WorkerIdInUseError } from '../../common';
import { PROTOCOL_VERSION, SHARDWISE_VERSION } from '../../proto';
import type { ChangeSignal } from '../change-signal';
import { samplesPerMessage } from '../coordinator-options';
import type { CoordinatorTelemetry } from '../coordinator-telemetry';
import { IncompatibleWorkerError, modelMismatchMessage, RegistrationRejectedError, RegistrationRejection, WorkerGoneError } from '../errors';
import type { EvalRound } from '../eval-round';
import type { JobAnnouncer } from '../job-announcer';
import { CoordinatorState, type Lifecycle } from '../lifecycle';
import type { StepPhase, StepRound } from '../step';
import { type Membership, MemberState, type MembershipCounters, type WorkerRecord } from './registry';

/** What the coordinator remembers about a registered worker beyond its membership record (read-only outside). */
export interface WorkerSession {
  readonly incarnation: number;
  /** Negotiated per-message limit: the smaller of the worker's and the coordinator's. */
  readonly maxMessageBytes: number;
  /** Its weights hash disagreed with the coordinator's: its next assignment sends it to GetWeights. */
  readonly forceFullWeights: boolean;
  /** It was answered STOP (the job is over or it drained). */
  readonly toldStop: boolean;
  /** Last global step whose share from it was counted. */
  readonly lastCountedStep: number;
  /** host:port of its allreduce data plane; empty when it has none (it pushes its sums over gRPC). */
  readonly dataAddress: string;
}

type MutableSession = { -readonly [K in keyof WorkerSession]: WorkerSession[K] };

/** What a worker states when it registers. */
export interface WorkerCapabilitiesInput {
  /** Requested id; empty lets the coordinator choose. */
  workerId: string;
  shardwiseVersion: string;
  protocolVersion: number;
  backend: string;
  modelFingerprint: string;
  /** 0: no preference. */
  maxMessageBytes: number;
  pid: number;
  hostname: string;
  /** host:port of its allreduce data plane; empty: none. */
  dataAddress: string;
  /** Random per worker process; '' from a client that sends none (it is then never refused as another process). */
  processId: string;
}

/** A round in progress: a training step or an evaluation pass. */
export type Round = StepRound | EvalRound;

/** The phase of the training step in progress; undefined between rounds and during an evaluation pass. */
export function stepPhaseOf(round: Round | null): StepPhase | undefined {
  return round?.kind === 'train' ? round.phase : undefined;
}

/** What the membership needs of its job, named here so it depends on no job module. */
export interface MembershipHost {
  readonly spec: JobSpec;
  readonly jobId: string;
  readonly fingerprint: string;
  readonly telemetry: CoordinatorTelemetry;
  readonly announcer: JobAnnouncer;
  readonly lifecycle: Lifecycle;
  readonly changed: ChangeSignal;
  /** Where a lost worker's redone micro-batches are recorded. */
  readonly ledger: { recordRedone(microBatchIds: readonly number[]): void };
  /** The round in progress, whose work a lost worker's share goes back to. */
  readonly round: Round | null;
  readonly finished: boolean;
  readonly configVersion: number;
  readonly weightsVersion: number;
  now(): number;
  log(line: string): void;
}

const LIVE: ReadonlySet<string> = new Set([MemberState.Joining, MemberState.Active, MemberState.Draining]);

function major(version: string): string {
  return version.split('.')[0];
}

/**
 * The job's membership, all of it: who registers (and under which incarnation), who leaves, drains or is
 * lost (lease or deadline), what a lost worker's share becomes (the other workers redo it in the same
 * round), how many workers the operator wants, and the gauges. The registry of states is `Membership`
 * (registry.ts); only this class changes it, and every change wakes the long polls.
 */
export class WorkerRoster {
  private readonly sessions = new Map<string, MutableSession>();
  private desired: number;

  constructor(private readonly job: MembershipHost, private readonly registry: Membership) {
    this.desired = job.spec.distributed.desiredWorkers;
  }

  /**
   * Registers a worker: it must speak this protocol and shardwise major version and accept messages big
   * enough for one micro-batch. It joins as `joining` and is admitted at the next step boundary, or at once
   * when no round is running. The same process registering again replaces its old incarnation, whose share
   * is redone; another process under a live id is refused (WorkerIdInUseError) until that one is gone.
   */
  register(caps: WorkerCapabilitiesInput): { workerId: string; maxMessageBytes: number } {
    const { job } = this;
    if (job.lifecycle.state !== CoordinatorState.Running || job.finished) {
      throw new NotReadyError(`the coordinator is ${job.finished ? 'finishing (the job is done)' : job.lifecycle.state}; ` +
        'registration is closed');
    }
    const requested = caps.workerId;
    if (caps.protocolVersion !== PROTOCOL_VERSION) {
      throw new IncompatibleWorkerError(requested, 'protocolVersion', PROTOCOL_VERSION, caps.protocolVersion,
        `incompatible protocol: worker speaks ${caps.protocolVersion}, coordinator ${PROTOCOL_VERSION}`);
    }
    if (caps.shardwiseVersion !== '' && major(caps.shardwiseVersion) !== major(SHARDWISE_VERSION)) {
      throw new IncompatibleWorkerError(requested, 'shardwiseVersion', SHARDWISE_VERSION, caps.shardwiseVersion,
        `incompatible shardwise version: worker runs ${caps.shardwiseVersion}, coordinator ${SHARDWISE_VERSION} (major versions differ)`);
    }
    if (caps.modelFingerprint !== '' && caps.modelFingerprint !== job.fingerprint) {
      throw new IncompatibleWorkerError(requested, 'modelFingerprint', job.fingerprint, caps.modelFingerprint,
        modelMismatchMessage(caps.modelFingerprint));
    }
    const own = job.spec.distributed.maxMessageBytes;
    const maxMessageBytes = caps.maxMessageBytes > 0 ? Math.min(caps.maxMessageBytes, own) : own;
    const largest = Math.max(job.spec.training.microBatchSize, job.spec.training.evalBatchSize);
    if (samplesPerMessage(maxMessageBytes) < largest) {
      throw new ConfigError('max_message_bytes', `a worker must accept messages that carry one micro-batch of ${largest} samples, ` +
        `${maxMessageBytes} bytes hold ${samplesPerMessage(maxMessageBytes)}`);
    }
    const id = requested !== '' ? requested : this.chooseId(caps);
    let registration;
    try {
      registration = this.registry.register(id, job.now(), caps.processId);
    } catch (err) {
      if (err instanceof RegistrationRejectedError && err.reason === RegistrationRejection.Full) {
        throw new NotReadyError(`${err.message}; try again later`, { cause: err });
      }
      if (err instanceof RegistrationRejectedError && err.reason === RegistrationRejection.IdInUse) {
        job.log(`registration refused: ${err.message} (${caps.hostname || '?'} pid ${caps.pid || '?'})`);
        job.telemetry.metrics.idInUseRefusals.inc();
        throw new WorkerIdInUseError(id, err.message);
      }
      if (err instanceof RegistrationRejectedError) throw new ConfigError('worker_id', err.message, { cause: err });
      throw err;
    }
    if (registration.replaced) {
      job.telemetry.metrics.workerFailures.inc();
      job.log(`worker ${id}: incarnation ${registration.replaced.incarnation} dropped (${registration.replaced.failureReason})`);
      this.gone(id, `incarnation ${registration.replaced.incarnation} was replaced`);
    }
    this.sessions.set(id, {
      incarnation: registration.worker.incarnation,
      maxMessageBytes,
      forceFullWeights: false,
      toldStop: false,
      lastCountedStep: 0,
      dataAddress: caps.dataAddress,
    });
    job.log(`worker ${id} registered (${caps.hostname || '?'} pid ${caps.pid || '?'}, backend ${caps.backend || '?'}, ` +
      `incarnation ${registration.worker.incarnation})`);
    if (job.round === null) this.admitPending();
    this.updateGauges();
    job.changed.notify();
    return { workerId: id, maxMessageBytes };
  }

  private chooseId(caps: WorkerCapabilitiesInput): string {
    const base = `${caps.hostname || 'worker'}-${caps.pid || this.registry.list().length + 1}`;
    let id = base;
    for (let n = 2; this.registry.get(id) !== undefined; n++) id = `${base}-${n}`;
    return id;
  }

  /**
   * The live member `workerId` and its session; the call counts as a sign of life (heartbeat).
   * @throws WorkerGoneError (NOT_FOUND) when it is not registered, failed or left: it registers again.
   */
  member(workerId: string): { record: WorkerRecord; session: WorkerSession } {
    const record = this.registry.get(workerId);
    if (!record) throw new WorkerGoneError(workerId, 'is not registered (or the coordinator restarted)');
    if (!LIVE.has(record.state)) {
      const why = record.state === MemberState.Failed ? `was dropped (${record.failureReason ?? 'failed'})` : 'has left the job';
      throw new WorkerGoneError(workerId, why);
    }
    const session = this.sessions.get(workerId);
    if (!session || session.incarnation !== record.incarnation) {
      throw new WorkerGoneError(workerId, `has no session for incarnation ${record.incarnation}`);
    }
    return { record: this.registry.heartbeat(workerId, record.incarnation, this.job.now()), session };
  }

  /** The worker's session, if it registered (live or not). */
  session(workerId: string): WorkerSession | undefined {
    return this.sessions.get(workerId);
  }

  /** The worker was answered STOP (the job is over, or it drained). */
  toldStop(workerId: string): void {
    const session = this.sessions.get(workerId);
    if (session) session.toldStop = true;
    this.job.changed.notify();
  }

  /** A share of the worker's was counted at `globalStep`: what a later Leave reports back. */
  counted(workerId: string, globalStep: number): void {
    const session = this.sessions.get(workerId);
    if (session) session.lastCountedStep = globalStep;
  }

  /** Whether the worker's next assignment sends it to GetWeights (its hash disagreed), or not (it just copied them). */
  needsFullWeights(workerId: string, needs: boolean): void {
    const session = this.sessions.get(workerId);
    if (session) session.forceFullWeights = needs;
  }

  /** Whether `workerId` is a live member (joining, active or draining). */
  isLive(workerId: string): boolean {
    const record = this.registry.get(workerId);
    return record !== undefined && LIVE.has(record.state);
  }

  /**
   * A worker leaves: at once (its unfinished micro-batches are redone by others) or, with `drain`, after
   * the share it holds (it gets nothing more and is answered STOP once that share is in). Leaving twice,
   * or after being dropped, is harmless.
   */
  leave(workerId: string, drain: boolean, reason: string): { lastCountedStep: number } {
    const lastCountedStep = this.sessions.get(workerId)?.lastCountedStep ?? 0;
    const record = this.registry.get(workerId);
    if (!record || !LIVE.has(record.state)) return { lastCountedStep };
    if (drain && record.state !== MemberState.Joining) {
      this.registry.drain(workerId, record.incarnation);
      this.job.log(`worker ${workerId} is draining${reason ? `: ${reason}` : ''}`);
      this.releaseQueued(workerId);
    } else {
      this.lose(workerId, 'left', reason);
    }
    return { lastCountedStep };
  }

  /**
   * A worker failed (`failed`: lease expired, missed deadline, corrupt result) or left (`left`). Its
   * unfinished micro-batches go to the other active workers in the same round. A worker that is not live
   * is ignored, so a loss noticed twice counts once.
   */
  lose(workerId: string, how: 'failed' | 'left', reason: string): void {
    const { job } = this;
    const record = this.registry.get(workerId);
    if (!record || !LIVE.has(record.state)) return;
    if (how === 'failed') {
      this.registry.fail(workerId, reason);
      job.telemetry.metrics.workerFailures.inc();
      job.log(`worker ${workerId} failed: ${reason}`);
    } else {
      this.registry.leave(workerId, record.incarnation);
      job.telemetry.metrics.workerLeaves.inc();
      job.log(`worker ${workerId} left${reason ? `: ${reason}` : ''}`);
    }
    job.telemetry.forgetWorker(workerId);
    this.gone(workerId, how === 'failed' ? `it failed: ${reason}` : `it left${reason ? `: ${reason}` : ''}`);
  }

  /**
   * A worker's incarnation is gone (`why`): an allreduce attempt running with its sums can only fail now, so
   * it is told (see Reduction.lost), and what the worker held goes to the others.
   */
  private gone(workerId: string, why: string): void {
    const phase = stepPhaseOf(this.job.round);
    if (phase?.name === 'reducing') phase.reduction.memberLost(workerId, why);
    this.redistribute(workerId);
  }

  /** Moves what `workerId` held in the current round to the active workers (or leaves it for the next one). */
  redistribute(workerId: string): void {
    const round = this.job.round;
    if (round) {
      const survivors = this.registry.activeWorkers();
      const moved = round.collector.drop(workerId, survivors);
      // Sums it held for the allreduce are gone with it, unless an attempt that may still carry them is running.
      const lost = round.kind === 'train' && round.phase.name !== 'reducing' ? round.revokeHeld(workerId, survivors) : [];
      this.countRedone(round, workerId, [...moved, ...lost]);
    }
    this.updateGauges();
    this.job.changed.notify();
  }

  /** A draining worker keeps its handout; its queued work moves to the others. */
  private releaseQueued(workerId: string): void {
    const round = this.job.round;
    if (round) this.countRedone(round, workerId, round.collector.release(workerId, this.registry.activeWorkers()));
    this.updateGauges();
    this.job.changed.notify();
  }

  /** Drops workers whose lease passed, and those that missed the open round's deadline; their work goes to the others. */
  sweep(): void {
    const d = this.job.spec.distributed;
    for (const w of this.registry.expired(this.job.now())) this.lose(w.id, 'failed', `no heartbeat for ${d.leaseMs} ms`);
    for (const o of this.job.round?.collector.overdue() ?? []) {
      this.lose(o.worker, 'failed', `missed the step deadline: micro-batches [${o.microBatchIds.join(', ')}] ` +
        `not ${o.missed} within ${d.stepDeadlineMs} ms`);
    }
  }

  /** Admits every joining worker (at a step boundary, or mid-round when a round has no worker left). */
  admitPending(): void {
    for (const w of this.registry.admitPending(this.job.now())) {
      this.job.telemetry.metrics.workerJoins.inc();
      this.job.log(`worker ${w.id} admitted (${this.registry.activeWorkers().length} active)`);
    }
    this.updateGauges();
  }

  /**
   * Records the number of workers the operator wants (`shardwise scale`, the autoscaler) and announces it;
   * launchers act on the announcement. Must lie in [minWorkers, maxWorkers].
   */
  scale(desired: number): { desiredWorkers: number; activeWorkers: number } {
    const { job } = this;
    const { minWorkers, maxWorkers } = job.spec.distributed;
    if (!Number.isInteger(desired) || desired < minWorkers || desired > maxWorkers) {
      throw new ConfigError('desired_workers', `expected an integer in [minWorkers, maxWorkers] = [${minWorkers}, ${maxWorkers}], ` +
        `got ${desired}`);
    }
    this.restoreDesired(desired);
    job.announcer.announce({ type: 'scale', desiredWorkers: desired, jobId: job.jobId, configVersion: job.configVersion, effectiveStep: job.weightsVersion });
    job.log(`scale: ${desired} workers desired (${this.registry.activeWorkers().length} active)`);
    return { desiredWorkers: desired, activeWorkers: this.registry.activeWorkers().length };
  }

  /** Sets the desired worker count without announcing it (a resumed job's, from its checkpoint). */
  restoreDesired(desired: number): void {
    this.desired = desired;
    this.job.telemetry.metrics.desiredWorkers.set(desired);
  }

  /** The number of workers the operator wants. */
  get desiredWorkers(): number {
    return this.desired;
  }

  /** Refreshes the membership gauges. */
  updateGauges(): void {
    this.job.telemetry.setWorkers(this.registry.activeWorkers().length, !this.registry.canTrain());
  }

  /** Ids of the active workers, in admission order. */
  activeWorkers(): string[] {
    return this.registry.activeWorkers();
  }

  /** Whether enough workers are active to run a step. */
  canTrain(): boolean {
    return this.registry.canTrain();
  }

  /** Why training waits, when it does. */
  waitingReason(): string | undefined {
    return this.registry.waitingReason();
  }

  /** The worker's record, live or not. */
  get(workerId: string): WorkerRecord | undefined {
    return this.registry.get(workerId);
  }

  /** Every worker ever registered, live or not. */
  list(): WorkerRecord[] {
    return this.registry.list();
  }

  /** Joins, leaves and failures so far. */
  counters(): MembershipCounters {
    return this.registry.counters();
  }

  private countRedone(round: Round, workerId: string, moved: readonly number[]): void {
    if (moved.length === 0) return;
    if (round.kind === 'train') this.job.ledger.recordRedone(moved);
    this.job.telemetry.metrics.redoneShares.inc();
    const where = round.collector.orphanCount > 0 ? 'waiting for a worker' : 'handed to the other workers';
    this.job.log(`${round.kind === 'train' ? `step ${round.globalStep}` : `evaluation of epoch ${round.epoch}`}: ` +
      `micro-batches [${moved.join(', ')}] of ${workerId} ${where}`);
  }
}
