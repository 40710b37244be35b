import { randomBytes } from 'node:crypto';
import type { Cifar10Images, DataPlane, JobSpec, ModelParts, TrainerState } from '../common';
import type { ChangeSignal } from './change-signal';
import type { CompiledCoordinatorOptions } from './coordinator-options';
import type { CoordinatorTelemetry } from './coordinator-telemetry';
import type { EpochLedger } from './epoch-ledger';
import { DeferredUpdate } from './step/deferred-update';
import { WorkerGoneError } from './errors';
import type { EvalRound } from './eval-round';
import type { JobAnnouncer } from './job-announcer';
import { type Lifecycle } from './lifecycle';
import { type Membership, type WorkerRecord, MemberState } from './membership';
import type { StepRound } from './step/step-round';
import type { StepPlanner } from './step/step-planner';
import type { UpdateLog } from './step/update-log';

/** What the coordinator remembers about a registered worker beyond its membership record. */
export interface WorkerSession {
  incarnation: number;
  /** Negotiated per-message limit: the smaller of the worker's and the coordinator's. */
  maxMessageBytes: number;
  /** Its weights hash disagreed with the coordinator's: its next assignment sends it to GetWeights. */
  forceFullWeights: boolean;
  /** It was answered STOP (the job is over or it drained). */
  toldStop: boolean;
  /** Last global step whose share from it was counted. */
  lastCountedStep: number;
  /** host:port of its allreduce data plane; empty when it has none (it pushes its sums over gRPC). */
  dataAddress: string;
}

/** A round in progress: a training step or an evaluation pass. */
export type Round = StepRound | EvalRound;

const LIVE: ReadonlySet<string> = new Set([MemberState.Joining, MemberState.Active, MemberState.Draining]);

/** Everything the job holds, handed to its parts at construction. */
export interface JobContextParts {
  options: CompiledCoordinatorOptions;
  jobId: string;
  parts: ModelParts;
  fingerprint: string;
  trainer: TrainerState;
  planner: StepPlanner;
  membership: Membership;
  ledger: EpochLedger;
  data: { train: Cifar10Images; val: Cifar10Images };
  updates: UpdateLog;
  telemetry: CoordinatorTelemetry;
  announcer: JobAnnouncer;
  lifecycle: Lifecycle;
  changed: ChangeSignal;
  configVersion: number;
  weightsVersion: number;
  /** The allreduce data plane, with `distributed.exchange: allreduce`. */
  dataPlane: DataPlane | null;
}

/**
 * The state one job shares between its loop (job-runner), the worker-facing operations (worker-calls,
 * assignment-desk, result-intake) and checkpoints, with the few mutations that keep it consistent:
 * losing a worker redistributes its work, admitting workers updates the gauges, and every change wakes
 * the long polls.
 */
export class JobContext {
  readonly options: CompiledCoordinatorOptions;
  readonly spec: JobSpec;
  readonly jobId: string;
  readonly parts: ModelParts;
  readonly fingerprint: string;
  readonly trainer: TrainerState;
  readonly planner: StepPlanner;
  readonly membership: Membership;
  readonly data: { train: Cifar10Images; val: Cifar10Images };
  readonly updates: UpdateLog;
  readonly telemetry: CoordinatorTelemetry;
  readonly announcer: JobAnnouncer;
  readonly lifecycle: Lifecycle;
  readonly changed: ChangeSignal;
  readonly sessions = new Map<string, WorkerSession>();
  readonly dataPlane: DataPlane | null;
  /**
   * Random per coordinator process, in every allreduce key: a restarted coordinator's step-12 reduction
   * is not mistaken by the workers' data planes for the one its predecessor ran.
   */
  readonly instanceId = randomBytes(4).toString('hex');
  /** The last committed step's update of `parts` and `trainer`, if not applied yet: `settleReplica` first. */
  readonly replicaUpdate = new DeferredUpdate();
  ledger: EpochLedger;
  /** Bumped by every freeze, unfreeze and learning-rate decision. */
  configVersion: number;
  /** Updates applied to the weights (= the trainer's global step). */
  weightsVersion: number;
  round: Round | null = null;
  /** Every epoch is done: pulls answer STOP. */
  finished = false;
  desiredWorkers: number;

  constructor(p: JobContextParts) {
    this.options = p.options;
    this.spec = p.options.spec;
    this.jobId = p.jobId;
    this.parts = p.parts;
    this.fingerprint = p.fingerprint;
    this.trainer = p.trainer;
    this.planner = p.planner;
    this.membership = p.membership;
    this.ledger = p.ledger;
    this.data = p.data;
    this.updates = p.updates;
    this.telemetry = p.telemetry;
    this.announcer = p.announcer;
    this.lifecycle = p.lifecycle;
    this.changed = p.changed;
    this.configVersion = p.configVersion;
    this.weightsVersion = p.weightsVersion;
    this.desiredWorkers = this.spec.distributed.desiredWorkers;
    this.dataPlane = p.dataPlane;
  }

  /**
   * Applies a committed update still pending on the coordinator's replica. Call before reading the values
   * of the weights or the optimizer state (names and shapes never wait).
   */
  settleReplica(): void {
    this.replicaUpdate.settle();
  }

  /** Milliseconds on the clock leases and deadlines use. */
  now(): number {
    return Date.now();
  }

  log(line: string): void {
    this.options.log(line);
  }

  /**
   * The live member `workerId` and its session; the call counts as a sign of life (heartbeat).
   * @throws WorkerGoneError (NOT_FOUND) when it is not registered, failed or left: it registers again.
   */
  member(workerId: string): { record: WorkerRecord; session: WorkerSession } {
    const record = this.membership.get(workerId);
    if (!record) throw new WorkerGoneError(workerId, 'is not registered (or the coordinator restarted)');
    if (!LIVE.has(record.state)) {
      const why = record.state === MemberState.Failed ? `was dropped (${record.failureReason ?? 'failed'})` : 'has left the job';
      throw new WorkerGoneError(workerId, why);
    }
    const session = this.sessions.get(workerId);
    if (!session || session.incarnation !== record.incarnation) {
      throw new WorkerGoneError(workerId, `has no session for incarnation ${record.incarnation}`);
    }
    return { record: this.membership.heartbeat(workerId, record.incarnation, this.now()), session };
  }

  /** Whether `workerId` is a live member (joining, active or draining). */
  isLive(workerId: string): boolean {
    const record = this.membership.get(workerId);
    return record !== undefined && LIVE.has(record.state);
  }

  /** Admits every joining worker (at a step boundary, or mid-round when a round has no worker left). */
  admitPending(): void {
    for (const w of this.membership.admitPending(this.now())) {
      this.telemetry.metrics.workerJoins.inc();
      this.log(`worker ${w.id} admitted (${this.membership.activeWorkers().length} active)`);
    }
    this.updateGauges();
  }

  /**
   * A worker failed (`failed`: lease expired, missed deadline, corrupt result) or left (`left`). Its
   * unfinished micro-batches go to the other active workers in the same round. A worker that is not live
   * is ignored, so a loss noticed twice counts once.
   */
  loseWorker(workerId: string, how: 'failed' | 'left', reason: string): void {
    const record = this.membership.get(workerId);
    if (!record || !LIVE.has(record.state)) return;
    if (how === 'failed') {
      this.membership.fail(workerId, reason);
      this.telemetry.metrics.workerFailures.inc();
      this.log(`worker ${workerId} failed: ${reason}`);
    } else {
      this.membership.leave(workerId, record.incarnation);
      this.telemetry.metrics.workerLeaves.inc();
      this.log(`worker ${workerId} left${reason ? `: ${reason}` : ''}`);
    }
    this.telemetry.forgetWorker(workerId);
    this.redistribute(workerId);
  }

  /** Moves what `workerId` held in the current round to the active workers (or leaves it for the next one). */
  redistribute(workerId: string): void {
    const round = this.round;
    if (round) {
      const survivors = this.membership.activeWorkers();
      const moved = round.collector.drop(workerId, survivors);
      // Sums it held for the allreduce are gone with it, unless an attempt that may still carry them is running.
      const lost = round.kind === 'train' && round.reduction?.state !== 'running' ? round.revokeHeld(workerId, survivors) : [];
      this.countRedone(round, workerId, [...moved, ...lost]);
    }
    this.updateGauges();
    this.changed.notify();
  }

  /** A draining worker keeps its handout; its queued work moves to the others. */
  releaseQueued(workerId: string): void {
    const round = this.round;
    if (round) {
      const moved = round.collector.release(workerId, this.membership.activeWorkers());
      this.countRedone(round, workerId, moved);
    }
    this.updateGauges();
    this.changed.notify();
  }

  /** Refreshes the membership gauges. */
  updateGauges(): void {
    this.telemetry.setWorkers(this.membership.activeWorkers().length, !this.membership.canTrain());
  }

  private countRedone(round: Round, workerId: string, moved: readonly number[]): void {
    if (moved.length === 0) return;
    if (round.kind === 'train') this.ledger.recordRedone(moved);
    this.telemetry.metrics.redoneShares.inc();
    const where = round.collector.orphanCount > 0 ? 'waiting for a worker' : 'handed to the other workers';
    this.log(`${round.kind === 'train' ? `step ${round.globalStep}` : `evaluation of epoch ${round.epoch}`}: ` +
      `micro-batches [${moved.join(', ')}] of ${workerId} ${where}`);
  }
}
