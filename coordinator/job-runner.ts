import {
  beginEpoch,
  ClassificationMetrics,
  endEpoch,
  type EpochEvent,
  type GroupLearningRates,
  processTimeline,
  type RunDirectory,
  type RunRecorder,
  type ValidationSummary,
} from '../common';
import type { CheckpointStore } from './checkpoint-store';
import { type Boundary, captureCheckpoint, type EpochTrainSums } from './checkpointing';
import { assertExactlyOnce } from './epoch-ledger';
import { PlanningError } from './errors';
import { EvalRound } from './eval-round';
import { busEventFor } from './job-announcer';
import type { JobContext } from './job-context';
import type { Round } from './membership';
import { CoordinatorState } from './lifecycle';
import { runStep, type StepPosition, type StepRound } from './step';

/** How a job ended. */
export interface JobOutcome {
  /** `finished`: every epoch done; `interrupted`: stopped (SIGTERM) with a checkpoint to resume; `failed`. */
  status: 'finished' | 'interrupted' | 'failed';
  /** Global steps completed. */
  globalStep: number;
  /** The last epoch this coordinator finished (none when it finished none since it started). */
  final?: EpochEvent;
  /** Wall time of this coordinator's part of the job. */
  seconds: number;
  /** Why it failed. */
  error?: unknown;
  /**
   * The checkpoint a restart resumes from: the last one written, or the one this coordinator resumed
   * from; never one whose write failed. None when no checkpoint exists.
   */
  checkpoint?: string;
}

/** What the loop writes to besides the job's own state. */
export interface JobRunnerDeps {
  store: CheckpointStore;
  recorder: RunRecorder;
  run: RunDirectory;
  /** Where to start: step 0 of epoch 0, or the boundary a checkpoint recorded. */
  boundary: Boundary;
  /** The checkpoint `boundary` was restored from, if any: the resume point until a newer one is written. */
  resumedFrom?: string;
}

function sumsOf(m: ClassificationMetrics): EpochTrainSums {
  return { lossSum: m.lossSum, correctTop1: m.correctTop1, correctTop5: m.correctTop5, count: m.count };
}

/**
 * The job's loop: for each epoch the schedule's decisions, then each step (wait for workers, open a
 * round, collect every micro-batch, sum in micro-batch order, apply the optimizer, record, checkpoint when
 * due), then the evaluation round, the epoch record, the plateau decision, the exactly-once report and an
 * epoch-end checkpoint. A timer drops workers whose lease or step deadline passed. `stop()` drains: the
 * step in progress gets `drainGraceMs` to finish, then the last boundary is checkpointed.
 */
export class JobRunner {
  /** Settles once the job finished, was interrupted, or failed. */
  readonly done: Promise<JobOutcome>;
  private boundary: Boundary;
  private epochTrain: ClassificationMetrics;
  private epochStartedMs = Date.now();
  private lastLr: GroupLearningRates | null = null;
  /** The next step's round, opened when the step before it committed (its shares went out ahead). */
  private opened: StepRound | undefined;
  /** Shares of this epoch handed out ahead of the commit of the step before theirs. */
  private epochAhead = 0;
  private lastEpoch: EpochEvent | undefined;
  private readonly startedMs = Date.now();
  private readonly stopping = new AbortController();
  private resolveDone!: (outcome: JobOutcome) => void;
  private started = false;
  private lastCheckpoint: string | undefined;
  /** The checkpoint writes queued so far, one at a time in order; settles when the last is written (or failed). */
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly job: JobContext,
    private readonly deps: JobRunnerDeps,
  ) {
    this.boundary = deps.boundary;
    this.lastCheckpoint = deps.resumedFrom;
    this.epochTrain = new ClassificationMetrics(job.spec.model.numClasses);
    Object.assign(this.epochTrain, deps.boundary.epochTrain);
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
  }

  /** Enters the starting epoch if it was not entered before the checkpoint, so GetConfig is right from the first call. */
  prepare(): void {
    const { position } = this.boundary;
    if (position.epoch < this.job.spec.training.epochs && this.job.trainer.epoch < position.epoch) this.enterEpoch(position.epoch);
    this.job.telemetry.setFrozen(this.job.trainer.frozen);
  }

  /** Starts the loop (once). */
  start(): void {
    if (this.started) return;
    this.started = true;
    void this.loop().then(this.resolveDone);
  }

  /** Drains: no new round starts; the one in progress gets `drainGraceMs`; then a checkpoint. */
  stop(): void {
    if (this.job.lifecycle.state === CoordinatorState.Running) this.job.lifecycle.moveTo(CoordinatorState.Draining);
    this.stopping.abort();
    this.job.changed.notify();
  }

  private get stopRequested(): boolean {
    return this.stopping.signal.aborted;
  }

  private async loop(): Promise<JobOutcome> {
    const { job } = this;
    const d = job.spec.distributed;
    const sweep = setInterval(() => job.members.sweep(), Math.max(20, Math.min(d.leaseMs, d.stepDeadlineMs) / 4));
    try {
      let at = this.boundary.position;
      const epochs = job.spec.training.epochs;
      const steps = job.planner.stepsPerEpoch;
      while (at.epoch < epochs) {
        if (this.stopRequested) return await this.interrupt();
        if (job.trainer.epoch < at.epoch) this.enterEpoch(at.epoch);
        while (at.step < steps) {
          if (!(await this.runStep(at))) return await this.interrupt();
          at = { epoch: at.epoch, step: at.step + 1 };
          this.boundary = { position: at, ledger: job.ledger.toJSON(), epochTrain: sumsOf(this.epochTrain) };
          if (d.checkpointEverySteps > 0 && job.weightsVersion % d.checkpointEverySteps === 0) await this.checkpoint('step');
          if (this.stopRequested) return await this.interrupt();
        }
        if (this.opened) throw new PlanningError(`step ${this.opened.globalStep} was opened after the last step of epoch ${at.epoch}`);
        if (!(await this.finishEpoch(at.epoch))) return await this.interrupt();
        at = { epoch: at.epoch + 1, step: 0 };
      }
      return await this.finish();
    } catch (err) {
      return await this.fail(err);
    } finally {
      clearInterval(sweep);
    }
  }

  private enterEpoch(epoch: number): void {
    const { job } = this;
    job.settleReplica();
    for (const event of beginEpoch(job.trainer, epoch)) {
      job.bumpConfig();
      job.announcer.announce(busEventFor(event, job.jobId, job.configVersion, job.weightsVersion));
      this.deps.recorder.onEvent(event);
      job.log(`epoch ${epoch}: ${event.type}${event.type === 'lr-change' ? ` to ${event.to}` : ''} (config v${job.configVersion})`);
    }
    job.telemetry.setFrozen(job.trainer.frozen);
    job.telemetry.metrics.configVersion.set(job.configVersion);
    this.epochStartedMs = Date.now();
    this.epochAhead = 0;
  }

  /** Admits joiners and waits until minWorkers are active; false when a stop came first. */
  private async waitForWorkers(): Promise<boolean> {
    const { job } = this;
    job.members.admitPending();
    let told = false;
    while (!job.members.canTrain()) {
      if (this.stopRequested) return false;
      if (!told) job.log(job.members.waitingReason() ?? 'waiting for workers');
      told = true;
      job.members.updateGauges();
      await job.changed.wait(Infinity, this.stopping.signal);
      job.members.admitPending();
    }
    job.members.updateGauges();
    return !this.stopRequested;
  }

  /**
   * Runs `round` to completion; false when a stop came and the round did not finish within the grace.
   * `keep` leaves it the job's round afterwards (its allreduce follows).
   */
  private async collect(round: Round, keep = false): Promise<boolean> {
    const { job } = this;
    job.openRound(round);
    const signal = this.stopping.signal;
    let onStop = (): void => undefined;
    const stopped = new Promise<void>((resolve) => {
      onStop = resolve;
      if (signal.aborted) resolve();
      else signal.addEventListener('abort', onStop, { once: true });
    });
    try {
      await Promise.race([round.completed, stopped]);
      return await this.finishWithinGrace(round);
    } finally {
      signal.removeEventListener('abort', onStop);
      if (!keep) this.closeRound();
    }
  }

  /**
   * After a stop: waits up to drainGraceMs for `round` to complete, but not once no live worker is left
   * to complete it (every worker drained away). Rejections of the round pass through.
   */
  private async finishWithinGrace(round: Round): Promise<boolean> {
    const { job } = this;
    const deadline = job.now() + job.options.drainGraceMs;
    while (!round.collector.complete) {
      const left = deadline - job.now();
      if (left <= 0 || !job.members.list().some((w) => job.isLive(w.id))) return false;
      await Promise.race([round.completed, job.changed.wait(left)]);
    }
    return true;
  }

  private closeRound(): void {
    this.job.closeRound();
  }

  /**
   * Waits for workers, then runs the step (coordinator/step); false when a stop came first. The round
   * of the step after it stays open when the step opened it at its commit (see StepDriver.next).
   */
  private async runStep(at: StepPosition): Promise<boolean> {
    const opened = this.opened;
    this.opened = undefined;
    let next: StepRound | undefined;
    try {
      if (!(await this.waitForWorkers())) return false;
      const outcome = await runStep(this.job, at, {
        collect: (round) => this.collect(round, true),
        signal: this.stopping.signal,
        epochTrain: this.epochTrain,
        out: this.deps,
        next: () => this.followingStep(at),
        open: (round) => this.job.openRound(round),
      }, opened);
      if (outcome === null) return false;
      this.lastLr = outcome.lr;
      next = outcome.next;
      this.epochAhead += next?.handedAhead ?? 0;
      return true;
    } finally {
      this.opened = next;
      if (!next) this.closeRound();
    }
  }

  /**
   * The step the loop runs right after `at` with nothing between: in the same epoch, with no checkpoint
   * due after `at` and no stop asked for. Undefined otherwise: then no step is handed out ahead.
   */
  private followingStep(at: StepPosition): StepPosition | undefined {
    const { job } = this;
    const every = job.spec.distributed.checkpointEverySteps;
    if (this.stopRequested || at.step + 1 >= job.planner.stepsPerEpoch) return undefined;
    if (every > 0 && (job.planner.globalStep(at) + 1) % every === 0) return undefined;
    return { epoch: at.epoch, step: at.step + 1 };
  }

  /** Evaluation, the epoch record, the plateau decision, the exactly-once report, a checkpoint (every output.checkpointEveryEpochs). */
  private async finishEpoch(epoch: number): Promise<boolean> {
    const { job } = this;
    job.log(`epoch ${epoch}: ${this.epochAhead} shares handed out ahead (before the step they follow committed)`);
    job.settleReplica();
    const endEvaluation = processTimeline().begin('evaluate', job.weightsVersion - 1, { epoch });
    const val = await this.evaluate(epoch);
    endEvaluation();
    if (val === false) return false;
    const event: EpochEvent = {
      type: 'epoch',
      epoch,
      globalStep: job.weightsVersion,
      train: this.epochTrain.summary(),
      val,
      lr: this.lastLr ?? { backbone: 0, head: 0 },
      frozen: job.trainer.frozen,
      seconds: (Date.now() - this.epochStartedMs) / 1000,
    };
    this.deps.recorder.onEvent(event);
    this.lastEpoch = event;
    if (val) job.telemetry.onValidation(val);
    for (const change of endEpoch(job.trainer, val?.loss ?? null)) {
      job.bumpConfig();
      job.announcer.announce(busEventFor(change, job.jobId, job.configVersion, job.weightsVersion));
      this.deps.recorder.onEvent(change);
      job.log(`epoch ${epoch}: plateau, learning rate ${change.from} -> ${change.to} from epoch ${change.epoch} (config v${job.configVersion})`);
    }
    job.telemetry.metrics.configVersion.set(job.configVersion);
    const report = job.ledger.complete(epoch);
    this.deps.run.appendMetrics({ type: 'epoch-report', ...report });
    if (!report.exactlyOnce) job.telemetry.metrics.exactlyOnceViolations.inc();
    // Weights trained on a skipped or repeated sample are not the job's result: fail, with no checkpoint.
    assertExactlyOnce(report);
    this.epochTrain = new ClassificationMetrics(job.spec.model.numClasses);
    this.boundary = { position: { epoch: epoch + 1, step: 0 }, ledger: job.ledger.toJSON(), epochTrain: sumsOf(this.epochTrain) };
    // output.checkpointEveryEpochs, as the local trainer honours it: with short epochs a checkpoint at each
    // one (fsynced files and folder, about 1 s on a busy disk) stalls training more often than it protects.
    const every = job.spec.output.checkpointEveryEpochs;
    if ((epoch + 1) % every === 0 || epoch === job.spec.training.epochs - 1) await this.checkpoint('epoch end');
    return true;
  }

  /** The validation pass over the workers; null without a validation split, false when interrupted. */
  private async evaluate(epoch: number): Promise<ValidationSummary | null | false> {
    const { job } = this;
    if (job.data.val.count === 0) return null;
    if (!(await this.waitForWorkers())) return false;
    const round = new EvalRound({
      epoch,
      weightsVersion: job.weightsVersion,
      configVersion: job.configVersion,
      valCount: job.data.val.count,
      evalBatchSize: job.spec.training.evalBatchSize,
      numClasses: job.spec.model.numClasses,
      workers: job.members.activeWorkers(),
      deadlineMs: job.spec.distributed.stepDeadlineMs,
      now: () => job.now(),
    });
    if (!(await this.collect(round))) return false;
    return round.metrics.validationSummary();
  }

  /**
   * Checkpoints the current boundary: its state and tensors are captured now (a copy), and written in the
   * background while training goes on (the fsynced files took 0.1-1 s
   * at every epoch end; PyTorch's async_save does the same). It becomes the resume point once written. A
   * write that fails (disk full, folder gone) does not stop training: it is counted and logged, and the last
   * good checkpoint stays the resume point. A capture that fails is a bug and fails the job. At most one write
   * is in flight: a checkpoint due while the one before is still being written waits for it first, so captured
   * states never pile up in memory when the disk is slower than the steps. Resolves once the write started, or
   * with `waitForWrite` once it ended; whoever reports the resume point waits for {@link written} first.
   */
  private async checkpoint(why: string, waitForWrite = false): Promise<void> {
    await this.writing;
    const { job } = this;
    const step = job.weightsVersion;
    const endCapture = processTimeline().begin('checkpoint', step - 1, { why });
    const { state, tensors } = captureCheckpoint(job, this.boundary);
    endCapture();
    const write = (async () => {
      const startUs = processTimeline().now();
      try {
        this.lastCheckpoint = await this.deps.store.write(state, tensors);
        job.log(`checkpoint ${this.lastCheckpoint} (${why}, global step ${step})`);
      } catch (err) {
        job.telemetry.metrics.checkpointFailures.inc();
        const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : '';
        job.log(`error: the ${why} checkpoint at global step ${step} could not be written, training goes on: ` +
          `${err instanceof Error ? err.message : String(err)}${cause}; the resume point stays ${this.resumePoint()}`);
      } finally {
        processTimeline().background('checkpoint write', step - 1, startUs, { why });
      }
    })();
    this.writing = write;
    if (waitForWrite) await write;
  }

  /** Every checkpoint queued so far is written (or failed): the resume point is final until the next. */
  private written(): Promise<void> {
    return this.writing;
  }

  private resumePoint(): string {
    return this.lastCheckpoint ?? 'none (a restart starts from scratch)';
  }

  private async interrupt(): Promise<JobOutcome> {
    const { job } = this;
    this.dropOpened();
    await this.checkpoint('shutdown', true);
    job.log(`job interrupted at global step ${job.weightsVersion}; resume point: ${this.resumePoint()}`);
    job.lifecycle.moveTo(CoordinatorState.Stopped);
    return this.outcome('interrupted');
  }

  /**
   * Lets every live worker hear STOP (on its next pull) and leave, within stopGraceMs; a worker that
   * vanishes instead is dropped when its lease expires.
   */
  private async tellWorkersToStop(): Promise<void> {
    const { job } = this;
    const deadline = Date.now() + job.options.stopGraceMs;
    for (;;) {
      const live = job.members.list().filter((w) => ['joining', 'active', 'draining'].includes(w.state));
      const left = deadline - Date.now();
      if (live.length === 0) return;
      if (left <= 0) {
        job.log(`not every worker left within ${job.options.stopGraceMs} ms: ` +
          live.map((w) => `${w.id} (${job.members.session(w.id)?.toldStop ? 'told to stop' : 'not told yet'})`).join(', '));
        return;
      }
      await job.changed.wait(left);
    }
  }

  /** Closes a step round opened ahead when the loop stops before running it (its shares are refused as stale). */
  private dropOpened(): void {
    if (!this.opened) return;
    this.opened = undefined;
    this.closeRound();
  }

  private async finish(): Promise<JobOutcome> {
    const { job } = this;
    await this.written();
    job.finish();
    job.log(`job finished after ${job.weightsVersion} steps (last checkpoint: ${this.resumePoint()}); telling workers to stop`);
    await this.tellWorkersToStop();
    job.lifecycle.moveTo(CoordinatorState.Stopped);
    return this.outcome('finished');
  }

  private async fail(err: unknown): Promise<JobOutcome> {
    this.dropOpened();
    const { job } = this;
    await this.written();
    job.log(`error: the job failed: ${err instanceof Error ? err.message : String(err)}`);
    if (!job.lifecycle.ended) job.lifecycle.moveTo(CoordinatorState.Failed);
    job.changed.notify();
    await this.tellWorkersToStop();
    return { ...this.outcome('failed'), error: err };
  }

  private outcome(status: JobOutcome['status']): JobOutcome {
    return {
      status,
      globalStep: this.job.weightsVersion,
      final: this.lastEpoch,
      seconds: (Date.now() - this.startedMs) / 1000,
      checkpoint: this.lastCheckpoint,
    };
  }
}
