import type { DataPlane, JobSpec, ModelParts, TrainerState } from '../../common';
import type { ChangeSignal } from '../change-signal';
import type { CoordinatorTelemetry } from '../coordinator-telemetry';
import type { DeferredUpdate } from './deferred-update';
import type { StepPlanner, StepPosition } from './step-planner';
import type { UpdateLog } from './update-log';

/** The part of the exactly-once ledger a step writes: it counts micro-batches and closes steps. */
export interface StepLedger {
  accept(at: StepPosition, microBatchId: number, worker: string, sampleIndices: ArrayLike<number>): { accepted: true } | { accepted: false; message: string };
  closeStep(at: StepPosition, microBatchCount: number): void;
}

/**
 * What a step needs of the job it belongs to, named here so the step module depends on no other
 * coordinator module (the job's context implements it). Membership changes go through the three
 * methods at the end: the step asks, the membership module decides and redistributes.
 */
export interface StepHost {
  readonly spec: JobSpec;
  readonly jobId: string;
  /** Random per coordinator process: part of every allreduce key. */
  readonly instanceId: string;
  readonly options: { readonly split?: readonly number[] };
  readonly parts: ModelParts;
  readonly trainer: TrainerState;
  readonly planner: StepPlanner;
  readonly ledger: StepLedger;
  readonly updates: UpdateLog;
  readonly replicaUpdate: DeferredUpdate;
  readonly telemetry: CoordinatorTelemetry;
  readonly changed: ChangeSignal;
  /** The allreduce data plane; null with the parameter-server exchange. */
  readonly dataPlane: DataPlane | null;
  readonly configVersion: number;
  readonly weightsVersion: number;
  /** Records that a step committed: the weights are now at `version` (= the trainer's global step). */
  commitWeights(version: number): void;
  /** Applies a committed update still pending on the coordinator's replica (before reading weights). */
  settleReplica(): void;
  now(): number;
  log(line: string): void;
  /** Ids of the active workers, in admission order. */
  activeWorkers(): string[];
  /** host:port of the worker's allreduce data plane; '' when it has none. */
  dataAddressOf(workerId: string): string;
  /** Micro-batches of `size` samples whose pixels fit in one message to `workerId` (at least 1). */
  microBatchesPerMessage(workerId: string, size: number): number;
  /** The incarnation of `workerId` that is a live member (joining, active or draining); undefined when none is. */
  liveIncarnation(workerId: string): number | undefined;
  /** A worker is lost: it is failed, and its work goes to the others. */
  loseWorker(workerId: string, how: 'failed' | 'left', reason: string): void;
  /** What a worker that is gone held in the open round goes to the others. */
  redistribute(workerId: string): void;
}
