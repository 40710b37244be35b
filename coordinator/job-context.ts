import { randomBytes } from 'node:crypto';
import type { Cifar10Images, DataPlane, JobSpec, ModelParts, TrainerState } from '../common';
import type { ChangeSignal } from './change-signal';
import { type CompiledCoordinatorOptions, samplesPerMessage } from './coordinator-options';
import type { CoordinatorTelemetry } from './coordinator-telemetry';
import type { EpochLedger } from './epoch-ledger';
import type { JobAnnouncer } from './job-announcer';
import { type Lifecycle } from './lifecycle';
import { type Membership, type MembershipHost, type Round, WorkerRoster } from './membership';
import { DeferredUpdate, type StepHost, type StepPlanner, type UpdateLog } from './step';

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
 * The state one job shares between its loop (job-runner), the step (coordinator/step), the membership
 * (coordinator/membership), the worker-facing operations (worker-calls, assignment-desk, result-intake)
 * and checkpoints. Its fields are read-only: the versions, the open round and the end of the job change
 * through the methods below, which wake the long polls; the members change through `members`.
 */
export class JobContext implements StepHost, MembershipHost {
  readonly options: CompiledCoordinatorOptions;
  readonly spec: JobSpec;
  readonly jobId: string;
  readonly parts: ModelParts;
  readonly fingerprint: string;
  readonly trainer: TrainerState;
  readonly planner: StepPlanner;
  /** Who the workers are: registration, leaving, losses, draining, scaling. */
  readonly members: WorkerRoster;
  readonly ledger: EpochLedger;
  readonly data: { train: Cifar10Images; val: Cifar10Images };
  readonly updates: UpdateLog;
  readonly telemetry: CoordinatorTelemetry;
  readonly announcer: JobAnnouncer;
  readonly lifecycle: Lifecycle;
  readonly changed: ChangeSignal;
  readonly dataPlane: DataPlane | null;
  /**
   * Random per coordinator process, in every allreduce key: a restarted coordinator's step-12 reduction
   * is not mistaken by the workers' data planes for the one its predecessor ran.
   */
  readonly instanceId = randomBytes(4).toString('hex');
  /** The last committed step's update of `parts` and `trainer`, if not applied yet: `settleReplica` first. */
  readonly replicaUpdate = new DeferredUpdate();
  private config: number;
  private weights: number;
  private openRoundValue: Round | null = null;
  private finishedValue = false;

  constructor(p: JobContextParts) {
    this.options = p.options;
    this.spec = p.options.spec;
    this.jobId = p.jobId;
    this.parts = p.parts;
    this.fingerprint = p.fingerprint;
    this.trainer = p.trainer;
    this.planner = p.planner;
    this.ledger = p.ledger;
    this.data = p.data;
    this.updates = p.updates;
    this.telemetry = p.telemetry;
    this.announcer = p.announcer;
    this.lifecycle = p.lifecycle;
    this.changed = p.changed;
    this.config = p.configVersion;
    this.weights = p.weightsVersion;
    this.dataPlane = p.dataPlane;
    this.members = new WorkerRoster(this, p.membership);
  }

  /** Bumped by every freeze, unfreeze and learning-rate decision. */
  get configVersion(): number {
    return this.config;
  }

  /** Updates applied to the weights (= the trainer's global step). */
  get weightsVersion(): number {
    return this.weights;
  }

  /** The round in progress (a training step or an evaluation pass), or null between rounds. */
  get round(): Round | null {
    return this.openRoundValue;
  }

  /** Every epoch is done: pulls answer STOP. */
  get finished(): boolean {
    return this.finishedValue;
  }

  /** A freeze, unfreeze or learning-rate decision: the next config version, which it returns. */
  bumpConfig(): number {
    return ++this.config;
  }

  /** A step committed: the weights are at `version` now (= the trainer's global step). */
  commitWeights(version: number): void {
    this.weights = version;
  }

  /** Opens `round` for the workers' pulls and pushes. */
  openRound(round: Round): void {
    this.openRoundValue = round;
    this.changed.notify();
  }

  /** Closes the round in progress (the step committed, the evaluation ended, or the job stops). */
  closeRound(): void {
    this.openRoundValue = null;
    this.changed.notify();
  }

  /** Every epoch is done: from now on pulls answer STOP. */
  finish(): void {
    this.finishedValue = true;
    this.changed.notify();
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

  /** Ids of the active workers, in admission order. */
  activeWorkers(): string[] {
    return this.members.activeWorkers();
  }

  /** host:port of the worker's allreduce data plane; '' when it has none. */
  dataAddressOf(workerId: string): string {
    return this.members.session(workerId)?.dataAddress ?? '';
  }

  /** Micro-batches of `size` samples whose pixels fit in one message to `workerId` (at least 1). */
  microBatchesPerMessage(workerId: string, size: number): number {
    const maxMessageBytes = this.members.session(workerId)?.maxMessageBytes ?? this.spec.distributed.maxMessageBytes;
    return Math.max(1, Math.floor(samplesPerMessage(maxMessageBytes) / size));
  }

  /** Whether `workerId` is a live member (joining, active or draining). */
  isLive(workerId: string): boolean {
    return this.members.isLive(workerId);
  }

  /** The incarnation of `workerId` that is a live member; undefined when none is. */
  liveIncarnation(workerId: string): number | undefined {
    return this.members.isLive(workerId) ? this.members.get(workerId)?.incarnation : undefined;
  }

  /** A worker failed or left; its work goes to the others (see WorkerRoster.lose). */
  loseWorker(workerId: string, how: 'failed' | 'left', reason: string): void {
    this.members.lose(workerId, how, reason);
  }

  /** What `workerId` held in the open round goes to the others (see WorkerRoster.redistribute). */
  redistribute(workerId: string): void {
    this.members.redistribute(workerId);
  }
}
