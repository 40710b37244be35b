import type { EpochReport } from '../common';
import { ExactlyOnceViolationError, LedgerError } from './errors';
import type { StepPosition } from './step';

/** Why a micro-batch result was not counted. */
export const RejectReason = {
  /** This micro-batch of the open step was accepted already (e.g. a late result after a redo). */
  Duplicate: 'duplicate',
  /** The step was closed: every micro-batch of it was accepted already. */
  StepClosed: 'step-closed',
  /** The result names a step not opened yet; a coordinator bug or a forged message. */
  NotOpen: 'not-open',
} as const;
export type RejectReason = (typeof RejectReason)[keyof typeof RejectReason];

/** Outcome of {@link EpochLedger.accept}. */
export type AcceptResult = { accepted: true } | { accepted: false; reason: RejectReason; message: string };


/** Totals over the job (kept across resumes), for metrics. */
export interface LedgerCounters {
  acceptedMicroBatches: number;
  duplicatesRejected: number;
  /** Reassignment events: one per dropped worker's share that was handed on. */
  redoneShares: number;
  redoneMicroBatches: number;
}

/**
 * The ledger as written into a checkpoint. Checkpoints are taken only at step boundaries, so which
 * micro-batches of a half-done step were accepted is never stored: a resumed coordinator redoes that
 * whole step. What is stored is how often each sample of the current epoch was counted, so the epoch's
 * exactly-once report stays correct across a resume.
 */
export interface LedgerState {
  version: 1;
  sampleCount: number;
  epoch: number;
  /** The next step to run in `epoch` (all steps before it are closed). */
  openStep: number;
  /** Per-sample counts of the current epoch, one byte each (saturating at 255), base64. */
  counts: string;
  epochDuplicatesRejected: number;
  epochRedoneMicroBatches: number;
  totals: LedgerCounters;
}

function checkNonNegativeInteger(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw new LedgerError(`ledger state: expected ${field} to be an integer >= 0, got ${JSON.stringify(value)}`);
  }
  return value;
}

/**
 * Exactly-once accounting of samples. The coordinator opens one step at a time; a micro-batch result is
 * counted only the first time it is accepted, so a worker presumed dead whose share was redone cannot
 * add its samples a second time. At the end of an epoch `complete` checks every sample was counted once.
 */
export class EpochLedger {
  readonly sampleCount: number;
  private epochValue: number;
  private openStepValue: number;
  private counts: Uint8Array;
  /** Accepted micro-batch id -> worker, for the open step only. */
  private openAccepted = new Map<number, string>();
  private epochDuplicates = 0;
  private epochRedone = 0;
  private readonly totals: LedgerCounters;

  /** A ledger positioned at `start` with nothing counted yet (a fresh job starts at epoch 0, step 0). */
  constructor(sampleCount: number, start: StepPosition = { epoch: 0, step: 0 }) {
    if (!Number.isInteger(sampleCount) || sampleCount < 1) {
      throw new LedgerError(`expected a sample count >= 1, got ${sampleCount}`);
    }
    this.sampleCount = sampleCount;
    this.epochValue = start.epoch;
    this.openStepValue = start.step;
    this.counts = new Uint8Array(sampleCount);
    this.totals = { acceptedMicroBatches: 0, duplicatesRejected: 0, redoneShares: 0, redoneMicroBatches: 0 };
  }

  /** Restores a ledger written by {@link toJSON}. @throws LedgerError naming the bad field. */
  static fromJSON(state: LedgerState): EpochLedger {
    if (state === null || typeof state !== 'object') throw new LedgerError('ledger state: expected an object');
    if (state.version !== 1) {
      throw new LedgerError(`ledger state: expected version 1, got ${JSON.stringify(state.version)}`);
    }
    const sampleCount = checkNonNegativeInteger(state.sampleCount, 'sampleCount');
    const epoch = checkNonNegativeInteger(state.epoch, 'epoch');
    const openStep = checkNonNegativeInteger(state.openStep, 'openStep');
    const ledger = new EpochLedger(sampleCount, { epoch, step: openStep });
    if (typeof state.counts !== 'string') throw new LedgerError('ledger state: expected counts to be a base64 string');
    const counts = Buffer.from(state.counts, 'base64');
    if (counts.length !== sampleCount) {
      throw new LedgerError(`ledger state: expected ${sampleCount} sample counts, found ${counts.length}`);
    }
    ledger.counts.set(counts);
    ledger.epochDuplicates = checkNonNegativeInteger(state.epochDuplicatesRejected, 'epochDuplicatesRejected');
    ledger.epochRedone = checkNonNegativeInteger(state.epochRedoneMicroBatches, 'epochRedoneMicroBatches');
    const totals = state.totals ?? ({} as LedgerCounters);
    for (const key of ['acceptedMicroBatches', 'duplicatesRejected', 'redoneShares', 'redoneMicroBatches'] as const) {
      ledger.totals[key] = checkNonNegativeInteger(totals[key], `totals.${key}`);
    }
    return ledger;
  }

  /** The epoch being counted. */
  get epoch(): number {
    return this.epochValue;
  }

  /** The step whose results are accepted now; every earlier step of the epoch is closed. */
  get openStep(): number {
    return this.openStepValue;
  }

  /**
   * Counts a micro-batch result once. `sampleIndices` must come from the coordinator's own plan, never
   * from the worker's message, so a worker cannot claim samples it was not given. A repeat is rejected
   * with a reason and counted in `duplicatesRejected`; nothing else changes.
   * @throws LedgerError for an index outside 0..sampleCount-1 (a coordinator bug; nothing is counted).
   */
  accept(at: StepPosition, microBatchId: number, worker: string, sampleIndices: ArrayLike<number>): AcceptResult {
    const where = `micro-batch ${microBatchId} of epoch ${at.epoch} step ${at.step}`;
    const closed = at.epoch < this.epochValue || (at.epoch === this.epochValue && at.step < this.openStepValue);
    if (closed) {
      return this.reject(RejectReason.StepClosed, `${where} from ${worker}: the step was already complete`);
    }
    if (at.epoch !== this.epochValue || at.step !== this.openStepValue) {
      return this.reject(
        RejectReason.NotOpen,
        `${where} from ${worker}: expected the open step (epoch ${this.epochValue} step ${this.openStepValue})`,
      );
    }
    const first = this.openAccepted.get(microBatchId);
    if (first !== undefined) {
      return this.reject(RejectReason.Duplicate, `${where} from ${worker}: already accepted from ${first}`);
    }
    for (let k = 0; k < sampleIndices.length; k++) {
      const i = sampleIndices[k];
      if (!Number.isInteger(i) || i < 0 || i >= this.sampleCount) {
        throw new LedgerError(
          `${where}: expected sample indices in 0..${this.sampleCount - 1}, got ${i} at position ${k}`,
          at,
        );
      }
    }
    for (let k = 0; k < sampleIndices.length; k++) {
      const i = sampleIndices[k];
      if (this.counts[i] < 255) this.counts[i]++;
    }
    this.openAccepted.set(microBatchId, worker);
    this.totals.acceptedMicroBatches++;
    return { accepted: true };
  }

  /** Ids of the open step's micro-batches accepted so far: what `reassign` must not redo. */
  acceptedMicroBatches(): ReadonlySet<number> {
    return new Set(this.openAccepted.keys());
  }

  /** Records that a dropped worker's unfinished micro-batches were handed to others (one share). */
  recordRedone(microBatchIds: readonly number[]): void {
    if (microBatchIds.length === 0) return;
    this.totals.redoneShares++;
    this.totals.redoneMicroBatches += microBatchIds.length;
    this.epochRedone += microBatchIds.length;
  }

  /**
   * Closes the open step once all its `microBatchCount` micro-batches were accepted; results for it
   * arriving later are rejected as `step-closed`. The next step of the epoch opens.
   * @throws LedgerError when `at` is not the open step or a micro-batch is missing.
   */
  closeStep(at: StepPosition, microBatchCount: number): void {
    this.checkOpen(at, 'close');
    const missing: number[] = [];
    for (let id = 0; id < microBatchCount; id++) if (!this.openAccepted.has(id)) missing.push(id);
    if (missing.length > 0 || this.openAccepted.size !== microBatchCount) {
      const accepted = [...this.openAccepted.keys()].sort((a, b) => a - b);
      throw new LedgerError(
        `cannot close epoch ${at.epoch} step ${at.step}: expected micro-batches 0..${microBatchCount - 1} accepted, ` +
          `missing [${missing.join(', ')}], accepted [${accepted.join(', ')}]`,
        at,
      );
    }
    this.openAccepted.clear();
    this.openStepValue++;
  }

  /**
   * Ends the epoch: checks every sample was counted exactly once, then opens step 0 of the next epoch
   * with fresh counts. The report is returned rather than thrown so the coordinator can log and export
   * it either way.
   * @throws LedgerError when `epoch` is not the current one or the open step has accepted results.
   */
  complete(epoch: number): EpochReport {
    if (epoch !== this.epochValue) {
      throw new LedgerError(`cannot complete epoch ${epoch}: the ledger is counting epoch ${this.epochValue}`, {
        epoch,
      });
    }
    if (this.openAccepted.size > 0) {
      throw new LedgerError(
        `cannot complete epoch ${epoch}: step ${this.openStepValue} has ${this.openAccepted.size} accepted ` +
          'micro-batches and was not closed',
        { epoch, step: this.openStepValue },
      );
    }
    const missing: number[] = [];
    const repeated: number[] = [];
    let counted = 0;
    for (let i = 0; i < this.sampleCount; i++) {
      const c = this.counts[i];
      counted += c;
      if (c === 0) missing.push(i);
      else if (c > 1) repeated.push(i);
    }
    const report: EpochReport = {
      epoch,
      expected: this.sampleCount,
      counted,
      duplicatesRejected: this.epochDuplicates,
      redoneMicroBatches: this.epochRedone,
      missing,
      repeated,
      exactlyOnce: missing.length === 0 && repeated.length === 0,
    };
    this.epochValue++;
    this.openStepValue = 0;
    this.counts.fill(0);
    this.epochDuplicates = 0;
    this.epochRedone = 0;
    return report;
  }

  /** Totals over the job. */
  counters(): LedgerCounters {
    return { ...this.totals };
  }

  /**
   * The state to checkpoint. Only valid at a step boundary (see {@link LedgerState}).
   * @throws LedgerError when the open step already has accepted results.
   */
  toJSON(): LedgerState {
    if (this.openAccepted.size > 0) {
      throw new LedgerError(
        `checkpoints are taken at step boundaries only: epoch ${this.epochValue} step ${this.openStepValue} ` +
          `has ${this.openAccepted.size} accepted micro-batches`,
        { epoch: this.epochValue, step: this.openStepValue },
      );
    }
    return {
      version: 1,
      sampleCount: this.sampleCount,
      epoch: this.epochValue,
      openStep: this.openStepValue,
      counts: Buffer.from(this.counts.buffer, this.counts.byteOffset, this.counts.byteLength).toString('base64'),
      epochDuplicatesRejected: this.epochDuplicates,
      epochRedoneMicroBatches: this.epochRedone,
      totals: { ...this.totals },
    };
  }

  private reject(reason: RejectReason, message: string): AcceptResult {
    // A result for a step not yet open is no repeat of anything: reject it without counting it as one.
    if (reason !== RejectReason.NotOpen) {
      this.epochDuplicates++;
      this.totals.duplicatesRejected++;
    }
    return { accepted: false, reason, message };
  }

  private checkOpen(at: StepPosition, what: string): void {
    if (at.epoch !== this.epochValue || at.step !== this.openStepValue) {
      throw new LedgerError(
        `cannot ${what} epoch ${at.epoch} step ${at.step}: ` +
          `the open step is epoch ${this.epochValue} step ${this.openStepValue}`,
        at,
      );
    }
  }
}

/** Sample indices an exactly-once error lists before it only says how many more there are. */
const LISTED_SAMPLES = 20;

function listed(indices: readonly number[]): string {
  const shown = indices.slice(0, LISTED_SAMPLES).join(', ');
  return indices.length > LISTED_SAMPLES ? `[${shown}, ... ${indices.length - LISTED_SAMPLES} more]` : `[${shown}]`;
}

/**
 * Decides whether an epoch's report lets the job go on: every sample counted exactly once.
 * @throws ExactlyOnceViolationError naming the epoch and the missing and repeated sample indices.
 */
export function assertExactlyOnce(report: EpochReport): void {
  if (report.missing.length === 0 && report.repeated.length === 0) return;
  throw new ExactlyOnceViolationError(
    report.epoch,
    `epoch ${report.epoch} broke exactly-once: expected each of ${report.expected} training samples counted once, ` +
      `counted ${report.counted}; ${report.missing.length} missing ${listed(report.missing)}, ` +
      `${report.repeated.length} duplicated ${listed(report.repeated)}`,
    { missing: report.missing, repeated: report.repeated },
  );
}
