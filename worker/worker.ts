import { setImmediate as nextTurn } from 'node:timers/promises';
import * as tf from '@tensorflow/tfjs';
import { Registry } from 'prom-client';
import {
  DataPlane,
  GrpcStatus,
  AllreduceError,
  RpcError,
  type MetricsServer,
  type WorkerMetrics,
  countTlsReloads,
  createWorkerMetrics,
  initBackend,
  processTimeline,
  allreduceCompression,
  serveMetrics,
  type ShareThreads,
  shareThreadsFor,
  UpdateKind,
  type WireTensor,
} from '../common';
import { type Assignment, AssignmentKind, type ReduceOrder } from './assignment';
import { endsSession } from './call-policy';
import { ConfigSync, type WorkerConfig } from './config-sync';
import { CoordinatorLink, type PendingAnswer } from './coordinator-link';
import { HeldSumsError, ReplicaUpdateError, WorkerError } from './errors';
import { killAtFailpoint, stopBeforePushFailpoint } from './failpoint';
import { HeldSums, type ReducedSums } from './held-sums';
import { StepProgress } from './step-progress';
import { runEvalShare } from './eval-runner';
import { WorkerLifecycle, isFinal, nextLifecycle } from './lifecycle';
import { type CompiledWorkerOptions, type WorkerOptions, compileWorkerOptions } from './options';
import { localSamples } from './samples';
import { type ReadyProgress, Session } from './session';
import type { ComputedShare } from './share-runner';

/** Why {@link Worker.run} returned. */
export type WorkerExitReason = 'job-finished' | 'drained' | 'grace-expired';

/** What a finished worker reports. */
export interface WorkerOutcome {
  reason: WorkerExitReason;
  /** Training shares whose gradients the coordinator accepted. */
  trainShares: number;
  /** Evaluation shares the coordinator accepted. */
  evalShares: number;
}

/** What the ready line says, once the worker is registered and holds the coordinator's weights. */
export interface WorkerReadyInfo {
  id: string;
  coordinator: string;
  /** `http://host:port/metrics`. */
  metricsUrl: string;
}

/** Sessions in a row that end before an order is done (an unreachable coordinator has its own time limit) before the worker gives up. */
export const MAX_CONSECUTIVE_FAILURES = 5;

/**
 * A shardwise worker: registers with the coordinator, builds the job's model, loads the coordinator's
 * weights, then pulls assignments, computes gradient sums or evaluation counts on the samples they carry,
 * and sends them back, until the coordinator says STOP or the worker is drained. It survives a
 * coordinator restart (retries while it is unreachable, registers again when it forgets the worker).
 */
export class Worker {
  /** The worker's Prometheus registry (served on `/metrics`). */
  readonly registry = new Registry();
  private readonly options: CompiledWorkerOptions;
  private readonly metrics: WorkerMetrics;
  private readonly link: CoordinatorLink;
  private readonly configSync: ConfigSync;
  /** Aborts the waits of an idle worker (a WAIT, a registration retry) when a drain starts. */
  private readonly drainSignal = new AbortController();
  /** Aborts every call when the shutdown grace period is over. */
  private readonly stopSignal = new AbortController();
  private lifecycle: WorkerLifecycle = WorkerLifecycle.Starting;
  private session: Session | undefined;
  private runStarted = false;
  private drainReason = '';
  private graceTimer: NodeJS.Timeout | undefined;
  private metricsServer: MetricsServer | undefined;
  /** The allreduce data plane this worker's allreduces run on. */
  private dataPlane: DataPlane | undefined;
  /** Sums of the current step's shares, kept for its allreduce. */
  private readonly held = new HeldSums();
  /** The last allreduce's result, until its update is applied. */
  private reduced: ReducedSums | undefined;
  /** The key of the last allreduce that failed here: an order that applies its result is void. */
  private failedReduceKey = '';
  /** `step/key` of the last order dropped for following a failed allreduce (see turn). */
  private droppedOrder = '';
  /**
   * The planned allreduce (distributed.plannedExchange) started with the last push, until an order that
   * follows it (a REDUCE, or the next share applying its result) waits for it to end.
   */
  private plannedRun: { key: string; done: Promise<void> } | undefined;
  /**
   * Held shares pushed while the next order was already on its way, whose answers were not awaited: the
   * last one's, and the bookkeeping of all of them (see {@link train}).
   */
  private unanswered: { answer: PendingAnswer; handled: Promise<void> } | undefined;
  private needsJoin = false;
  private lastCompletedStep = 0;
  private lastWaitReason = '';
  private leakReported = false;
  private readonly counts = { trainShares: 0, evalShares: 0 };
  /** The progress line of a worker that does not log every step. */
  private readonly progress = new StepProgress();
  /** Threads computing the micro-batches when the worker has more than one; started by the first share. */
  private shareThreads: ShareThreads | undefined;

  constructor(options: WorkerOptions, private readonly hooks: { onReady?: (info: WorkerReadyInfo) => void } = {}) {
    this.options = compileWorkerOptions(options);
    this.metrics = createWorkerMetrics(this.registry);
    countTlsReloads(this.registry, this.options.tls, 'shardwise_worker_tls_reloads_total');
    this.configSync = new ConfigSync((line) => this.log(line));
    this.link = new CoordinatorLink({
      target: this.options.coordinator,
      maxMessageBytes: this.options.maxMessageBytes,
      rpcDeadlineMs: this.options.rpcDeadlineMs,
      transferDeadlineMs: this.options.transferDeadlineMs,
      tls: this.options.tls,
      onSentBytes: (n) => this.metrics.sentBytes.inc(n),
      onReceivedBytes: (n) => this.metrics.receivedBytes.inc(n),
    });
  }

  /** Where the worker is in its lifecycle. */
  get state(): WorkerLifecycle {
    return this.lifecycle;
  }

  /** The id the coordinator knows this worker by (the requested one until registered). */
  get id(): string {
    return this.session?.id ?? this.options.id;
  }

  /**
   * Runs the worker to the end: resolves when the job finished or a drain completed (the worker has
   * left), rejects when it failed (coordinator unreachable past the retry limit, refused as
   * incompatible, repeated failures). Call once.
   */
  async run(): Promise<WorkerOutcome> {
    if (this.runStarted) throw new WorkerError('Worker.run() may be called once');
    this.runStarted = true;
    try {
      const backend = await initBackend({ prefer: this.options.backend, log: (line) => this.log(line) });
      this.shareThreads = shareThreadsFor(this.options.threads, backend.name);
      this.log(`compute: ${this.shareThreads?.count ?? 1} thread${this.shareThreads ? 's' : ''} per share`);
      this.metricsServer = await serveMetrics(this.registry, {
        host: this.options.metricsHost,
        port: this.options.metricsPort,
        isHealthy: () => this.lifecycle !== WorkerLifecycle.Failed,
      });
      const o = this.options;
      this.dataPlane = await DataPlane.listen({ host: o.dataHost, port: o.dataPort, advertiseHost: o.advertiseHost, tls: o.tls, onRefused: (why) => this.log(why) });
      this.session = new Session({
        options: this.options,
        link: this.link,
        metrics: this.metrics,
        configSync: this.configSync,
        backend: backend.name,
        log: (line) => this.log(line),
        heartbeatState: () => ({
          state: this.lifecycle,
          lastCompletedStep: this.lastCompletedStep,
          configVersion: Math.max(0, this.configSync.version),
        }),
        onDrainRequested: (reason) => this.drain(reason),
        // Acts only while that attempt runs here: its part fails as an aborted one, and the step goes on.
        onAllreduceVoided: (key) => this.dataPlane?.abort(key, 'the coordinator failed this attempt (heartbeat)'),
        dataAddress: this.dataPlane.address,
      });
      // Past the grace period the wait for an order is cut too: ending the session ends that wait.
      this.stopSignal.signal.addEventListener('abort', () => this.session?.endSession(), { once: true });
      await this.session.join(AbortSignal.any([this.drainSignal.signal, this.stopSignal.signal]));
      if (this.lifecycle === WorkerLifecycle.Starting) {
        this.move(WorkerLifecycle.Running);
        this.hooks.onReady?.({ id: this.id, coordinator: this.options.coordinator, metricsUrl: `${this.metricsServer.url}/metrics` });
      }
      const reason = await this.loop(this.session);
      return { reason, ...this.counts };
    } catch (err) {
      if (this.stopping && !(err instanceof WorkerError)) {
        // Cancelled by the drain or the grace period while starting: nothing was computed yet.
        await this.session?.leave(this.drainReason);
        return { reason: this.stopSignal.signal.aborted ? 'grace-expired' : 'drained', ...this.counts };
      }
      if (!isFinal(this.lifecycle)) this.move(WorkerLifecycle.Failed);
      await this.session?.leave(`failed: ${err instanceof Error ? err.message : String(err)}`);
      throw err;
    } finally {
      if (!isFinal(this.lifecycle)) this.move(WorkerLifecycle.Stopped);
      clearTimeout(this.graceTimer);
      await this.session?.close();
      this.link.close();
      await this.dataPlane?.close();
      await this.metricsServer?.close();
      await this.shareThreads?.close();
    }
  }

  /**
   * Finishes the share in progress (its result is still sent), then leaves. Waits not longer than
   * the shutdown grace period; after it, whatever is left is cancelled. Idempotent.
   */
  drain(reason: string): void {
    if (this.lifecycle === WorkerLifecycle.Draining || isFinal(this.lifecycle)) return;
    this.drainReason = reason;
    // While starting, the aborted join ends in a plain Leave; there is no share to finish.
    const started = this.lifecycle === WorkerLifecycle.Running;
    this.move(WorkerLifecycle.Draining);
    this.log(`draining (${reason}): finishing the current share, then leaving`);
    this.drainSignal.abort();
    if (started) this.session?.announceDrain(reason);
    this.graceTimer = setTimeout(() => {
      this.log(`shutdown grace period of ${this.options.shutdownGraceMs} ms is over; cancelling what is left`);
      this.stopSignal.abort();
    }, this.options.shutdownGraceMs);
    this.graceTimer.unref();
  }

  private get stopping(): boolean {
    return this.drainSignal.signal.aborted || this.stopSignal.signal.aborted;
  }

  /**
   * The step loop: one order per turn. An error that ends the session (it is known to be transient: the
   * coordinator is unreachable, restarted, forgot this worker, or an answer was lost or late) drops what
   * the worker holds, as the coordinator drops it for the same session, and registers again; any other
   * error is a bug or a refusal for good and fails the worker at once.
   */
  private async loop(session: Session): Promise<WorkerExitReason> {
    let losses = 0;
    for (;;) {
      if (this.stopSignal.signal.aborted) {
        await session.leave(`${this.drainReason}; grace period expired`);
        return 'grace-expired';
      }
      // A worker holding sums for an allreduce stays for it: leaving would lose them and stall the step.
      if (this.drainSignal.signal.aborted && !this.holdsUnapplied(session)) {
        await session.leave(this.drainReason);
        return 'drained';
      }
      try {
        if (this.needsJoin) await session.join(this.drainSignal.signal);
        this.needsJoin = false;
        const stopped = await this.turn(session);
        losses = 0;
        if (stopped) {
          // A draining worker is answered STOP once its last share is in.
          const draining = this.drainSignal.signal.aborted;
          await session.leave(draining ? this.drainReason : 'job finished');
          return draining ? 'drained' : 'job-finished';
        }
      } catch (err) {
        if (this.stopping) continue;
        if (!endsSession(err)) throw err;
        if (++losses > MAX_CONSECUTIVE_FAILURES) {
          throw new WorkerError(`giving up after ${losses - 1} sessions in a row ended before an order was done; the last: ${messageOf(err)}`, { cause: err });
        }
        this.log(`session ended (${messageOf(err)}); dropping the sums it held and registering again`);
        // The coordinator takes back what this incarnation held when its session ends: kept, the sums
        // would be added to the same step's new share.
        session.endSession();
        this.held.clear();
        this.reduced = undefined;
        this.unanswered = undefined; // their answers went with the session
        // So did its planned exchange: still waiting here (for a peer's ready, say), it would hold up the next
        // session's first one, which waits for it to end, until its handshake timed out.
        this.voidPlanned(`the session it was planned in ended (${messageOf(err)})`);
        this.needsJoin = true;
      }
    }
  }

  /**
   * Asks for the next order and carries it out; true when the coordinator said STOP. The wait is not cut
   * short by a drain: a share handed out meanwhile is computed and pushed rather than left for a redo.
   */
  private async turn(session: Session): Promise<boolean> {
    const { replica } = session;
    const t0 = performance.now();
    const timeline = processTimeline();
    let pullStart = timeline.now();
    const { assignment: a } = await session.nextOrder(this.readyState(session));
    const t1 = performance.now();
    this.metrics.sharePhaseDuration.observe({ phase: 'wait' }, (t1 - t0) / 1000);
    if (a.kind === AssignmentKind.Stop) {
      this.log(`the coordinator says stop${a.waitReason ? ` (${a.waitReason})` : ''}; leaving`);
      return true;
    }
    const planned = this.plannedRun;
    if (planned && a.update.kind === UpdateKind.Apply && a.update.apply?.key === planned.key) {
      // The share of the next step, handed out as this worker pushed its share of a step with a planned
      // allreduce (or while it computed it): it follows that exchange, which may still run. The answer to
      // that push may still be on its way: it is not waited for.
      this.plannedRun = undefined;
      await planned.done;
      pullStart = timeline.now(); // the wait was the exchange's, recorded as its 'reduce'
    } else {
      await this.settleUnanswered(session);
    }
    if (a.update.kind === UpdateKind.Apply && a.update.apply?.key === this.failedReduceKey) {
      const order = `${a.globalStep}/${this.failedReduceKey}`;
      if (this.droppedOrder !== order) {
        // Handed out on the ready sent as the allreduce began: its part failed here, so the order is void,
        // and so is its update. The coordinator's attempt failed too (its next order is a new REDUCE), or
        // it committed without this member, which then gets the same share again.
        this.log(`step ${a.globalStep}: not computing it, allreduce ${this.failedReduceKey} that it follows failed here`);
        this.droppedOrder = order;
        this.refusePlanned(a);
        return false;
      }
      // The same order again: the coordinator committed that attempt, its own part having every member's
      // input, though this member's part failed (a peer died after sending the coordinator its part). The
      // replica holds no result to apply, so catchUp fetches the committed weights in full.
      this.log(`step ${a.globalStep}: the coordinator committed allreduce ${this.failedReduceKey}, whose part failed here; catching up from its weights`);
      this.failedReduceKey = '';
    }
    const pulled = a.kind !== AssignmentKind.Wait;
    if (pulled) timeline.phase('pull', a.globalStep, pullStart);
    const catchUpStart = timeline.now();
    const current = await this.catchUp(session, a);
    if (pulled) timeline.phase('apply update', a.globalStep, catchUpStart);
    if (a.kind === AssignmentKind.Wait) {
      if (a.waitReason !== this.lastWaitReason) this.log(`waiting: ${a.waitReason || 'no share for this worker now'}`);
      this.lastWaitReason = a.waitReason;
      return false;
    }
    this.lastWaitReason = '';
    if (a.kind === AssignmentKind.Reduce) {
      const endReduce = timeline.begin('reduce', a.globalStep);
      await this.reduce(a);
      endReduce();
      return false;
    }
    if (!current) {
      this.log(`step ${a.globalStep}: the replica is at weights v${replica.weightsVersion} after GetWeights, the share needs ` +
        `v${a.weightsVersion}; skipping it (the coordinator redoes it elsewhere)`);
      this.refusePlanned(a);
      return false;
    }
    await session.syncConfig(a.configVersion, this.stopSignal.signal);
    if (a.kind === AssignmentKind.Train) await this.train(session, a, t1);
    else {
      const endEvaluate = timeline.begin('evaluate', a.globalStep);
      await this.evaluate(session, a);
      endEvaluate();
    }
    this.checkTensorCount(session);
    return false;
  }

  /** Whether the worker holds sums of a step whose update its replica has not applied yet (an allreduce still needs them). */
  private holdsUnapplied(session: Session): boolean {
    return this.held.step >= 0 && session.replica.weightsVersion <= this.held.step;
  }

  /**
   * What the next SessionReady says: the replica's weights version, how long the worker will wait, and the
   * allreduce result it holds, so the coordinator can hand it the next step while that step commits.
   */
  private readyState(session: Session): ReadyProgress {
    return {
      lastCompletedStep: this.lastCompletedStep,
      weightsVersion: session.replica.weightsVersion,
      maxWaitMs: this.options.pullWaitMs,
      reducedKey: this.plannedRun?.key ?? this.reduced?.key ?? '',
    };
  }

  /** Brings the replica to the assignment's weights version; false when even a full copy is not at it. */
  private async catchUp(session: Session, a: Assignment): Promise<boolean> {
    const replica = session.replica;
    const t0 = performance.now();
    if (a.update.kind === UpdateKind.Apply && a.update.apply && replica.canApplyUpdate(a.weightsVersion)) {
      const reduced = this.reduced;
      try {
        // A worker that was no member of the allreduce gets its reduced sums with the order.
        if (a.update.tensors.size > 0) replica.applySentSums(a.update.tensors, a.update.apply, a.weightsVersion);
        else if (!reduced) throw new ReplicaUpdateError('', `it holds no result of allreduce ${a.update.apply.key}`);
        else replica.applyReduced(reduced, a.update.apply, a.weightsVersion);
        // The held sums stay until a later share replaces them: an order handed out while the step was
        // still committing (see ReadyState.reducedKey) may be followed by a new attempt that needs them.
        this.reduced = undefined;
      } catch (err) {
        if (!(err instanceof ReplicaUpdateError)) throw err;
        this.log(`cannot apply the update to weights v${a.weightsVersion} itself (${err.message}); fetching a full copy`);
        await session.loadWeights(this.stopSignal.signal);
      }
    } else if (a.update.kind === UpdateKind.Weights && replica.canApplyUpdate(a.weightsVersion)) {
      try {
        replica.applyUpdate(a.update.tensors, a.weightsVersion);
      } catch (err) {
        if (!(err instanceof ReplicaUpdateError)) throw err;
        this.log(`the update to weights v${a.weightsVersion} does not fit the replica (${err.message}); fetching a full copy`);
        await session.loadWeights(this.stopSignal.signal);
      }
    } else if (a.update.kind !== UpdateKind.None || replica.weightsVersion !== a.weightsVersion) {
      await session.loadWeights(this.stopSignal.signal);
    }
    this.metrics.sharePhaseDuration.observe({ phase: 'transfer' }, (performance.now() - t0) / 1000);
    // Replaying an update may create optimizer slots (the first step, an unfreeze): count from here.
    if (a.update.kind !== UpdateKind.None) session.tensorBaseline = tf.memory().numTensors;
    return replica.weightsVersion === a.weightsVersion;
  }

  private async train(session: Session, a: Assignment, receivedAt: number): Promise<void> {
    const { registration: reg, replica } = session;
    const config = this.configSync.config as WorkerConfig;
    const samples = localSamples(a.globalStep, a.microBatches, a.samples, reg.spec.model.numClasses);
    this.logStep(`step ${a.globalStep}: computing micro-batches [${a.microBatches.map((mb) => mb.id).join(', ')}]`);
    killAtFailpoint(a.globalStep);
    // A share handed out with its step's planned allreduce starts that exchange now, and hands it its sums
    // once computed (the exchange before it has ended by now).
    const planned = session.joinsAllreduce && !this.drainSignal.signal.aborted && a.reduce ? await this.startPlanned(a, a.reduce) : undefined;
    if (!planned) this.refusePlanned(a); // draining: its share goes to the coordinator whole
    const endCompute = processTimeline().begin('compute', a.globalStep, { microBatches: a.microBatches.length });
    const share = await this.options.computeShare(replica.parts, {
      samples,
      augmenter: session.augmenter,
      jobSeed: reg.spec.seed,
      epoch: a.epoch,
      globalStep: a.globalStep,
      configVersion: a.configVersion,
      backboneFrozen: config.frozen.backbone,
      weightsVersion: replica.weightsVersion,
      weightsHash: a.reportWeightsHash ? replica.hash() : undefined,
      threads: this.shareThreads,
      sumsBuffer: (floats) => this.held.sumsBuffer(floats),
    }).catch((err: unknown) => {
      planned?.(err instanceof Error ? err : new Error(String(err)));
      throw err;
    });
    endCompute();
    stopBeforePushFailpoint(a.globalStep, (line) => this.log(line));
    this.metrics.sharePhaseDuration.observe({ phase: 'compute' }, share.computeSeconds);
    const t0 = performance.now();
    const endPush = processTimeline().begin('push', a.globalStep);
    // A draining worker hands its sums over rather than keep them for an allreduce it may not see.
    const hold = session.joinsAllreduce && !this.drainSignal.signal.aborted;
    // The planned exchange goes on as the share is pushed (its sums are held once accepted, as any share's).
    planned?.(hold ? [...share.grads, ...share.statDeltas] : new WorkerError('draining: its share goes to the coordinator whole'));
    // Its part leaves before the push: the peers wait for the part, while the coordinator's next order for
    // this worker may already be here (see below).
    if (planned) await nextTurn();
    if (hold && session.orderComing) {
      // The TRAIN stood for the next SessionReady: the next order is decided (usually sent) while this share
      // was computed, so the worker goes on to it without waiting for this push's answer, which the stream's
      // reader settles as it comes. The sums are held once the answer says so, as below: answers come in push order,
      // and before any REDUCE of this step (an order other than the next share waits for them).
      const answer = await session.sendHeld(share, this.readyState(session));
      const handled = this.submit(a, () => answer.promise).then((accepted) => {
        if (accepted) this.shareAccepted(a, share, receivedAt, true);
        else this.abandonPlanned(a);
      });
      const before = this.unanswered?.handled;
      const all = before ? Promise.all([before, handled]).then(() => undefined) : handled;
      // Awaited by settleUnanswered; a session that ends first drops it, and its failure with it.
      all.catch(() => undefined);
      this.unanswered = { answer, handled: all };
      endPush();
      return;
    }
    // A held header goes on the session stream with the next SessionReady in the same message (no round trip).
    const accepted = await this.submit(a, () => hold
      ? session.pushHeld(share, this.readyState(session))
      : this.link.pushGradients(reg.workerId, share, reg.maxMessageBytes, this.stopSignal.signal));
    endPush();
    this.metrics.sharePhaseDuration.observe({ phase: 'transfer' }, (performance.now() - t0) / 1000);
    if (accepted) this.shareAccepted(a, share, receivedAt, hold);
    else this.abandonPlanned(a);
  }

  /**
   * Reads on until every held push whose answer was not awaited is answered, and their bookkeeping done:
   * before any order but the share that follows their planned allreduce.
   */
  private async settleUnanswered(session: Session): Promise<void> {
    const pending = this.unanswered;
    if (!pending) return;
    this.unanswered = undefined;
    await session.settle(pending.answer).catch((err: unknown) => {
      if (!(err instanceof RpcError)) throw err; // the stream failed: the session ends
    }); // a refusal is handled by `handled`
    await pending.handled;
  }

  /** A share the coordinator accepted: its sums kept when it was held, and the share counted, measured and logged. */
  private shareAccepted(a: Assignment, share: ComputedShare, receivedAt: number, held: boolean): void {
    if (held) this.held.add(a.globalStep, share.microBatchIds, [...share.grads, ...share.statDeltas]);
    this.lastCompletedStep = Math.max(this.lastCompletedStep, a.globalStep);
    this.counts.trainShares++;
    const shareSeconds = (performance.now() - receivedAt) / 1000;
    // The answer may have come with the REDUCE (the share completed the step): the worker's part of the
    // allreduce starts first, and the metrics and the log line follow while it waits for its peers.
    setImmediate(() => {
      const m = this.metrics;
      m.shares.inc();
      m.samples.inc(share.sampleCount);
      m.samplesPerSecond.set(share.sampleCount / Math.max(share.computeSeconds, 1e-9));
      m.trainLoss.set(share.lossSum / share.sampleCount);
      m.shareDuration.observe(shareSeconds);
      if (this.options.logSteps) {
        this.log(`step ${a.globalStep} (epoch ${a.epoch}): ${share.microBatchIds.length}/${a.stepMicroBatchCount} micro-batches, ` +
          `${share.sampleCount} samples, loss ${(share.lossSum / share.sampleCount).toFixed(4)}, ${share.computeSeconds.toFixed(2)} s compute`);
      } else {
        const line = this.progress.add({ ...share, globalStep: a.globalStep, epoch: a.epoch });
        if (line !== undefined) this.log(line);
      }
    });
  }

  /**
   * Drops `a`'s planned allreduce, if it has one, for a share this worker will not hold: the members ready
   * to receive from it fail at once (DataPlane.refuse), as when its part fails, rather than at their timeout.
   */
  private refusePlanned(a: Assignment): void {
    const key = plannedKeyOf(a);
    if (key !== undefined) this.dataPlane?.refuse(key);
  }

  /**
   * Ends `a`'s planned allreduce if it still runs here, for a share the coordinator refused (stale or
   * malformed): no attempt it adopts counts that share, so the run would only wait for the coordinator's
   * part until its timeout, holding up every exchange after it (the data plane runs one at a time).
   */
  private abandonPlanned(a: Assignment): void {
    const key = plannedKeyOf(a);
    if (key !== undefined) this.dataPlane?.abort(key, `the coordinator refused the share of step ${a.globalStep}`);
  }

  /**
   * Starts `a`'s planned allreduce before its share is computed (DataPlane.allreduce with a pending input):
   * it connects and says it is ready to the members it receives from while the share computes, so that no
   * member waits for a ready once the sums are in. Returns what hands the run the share's sums, or the
   * error that fails it (the compute failed, or the worker drains and pushes its share whole).
   */
  private async startPlanned(a: Assignment, order: ReduceOrder): Promise<(sums: readonly WireTensor[] | Error) => void> {
    await this.plannedRun?.done;
    const buffer = this.held.shareBuffer(order.tensors);
    let give!: (sums: readonly WireTensor[] | Error) => void;
    const input = new Promise<void>((resolve, reject) => {
      give = (sums) => {
        if (sums instanceof Error) return reject(sums);
        try {
          if (this.held.shareVector(a.globalStep, order.tensors, sums) !== buffer) {
            throw new HeldSumsError(`allreduce of step ${a.globalStep}: the share's sums were laid out outside the buffer its planned exchange started on`);
          }
          resolve();
        } catch (err) {
          reject(err);
          throw err;
        }
      };
    });
    let saidReady!: () => void;
    const readies = new Promise<void>((resolve) => (saidReady = resolve));
    const done = this.runReduce(a, order, () => buffer, input, saidReady);
    this.plannedRun = { key: order.key, done };
    // A peer sends its part here only once this member said it is ready: the readies leave before the
    // compute holds the event loop for the length of the share.
    await Promise.race([readies, done]);
    return give;
  }

  /**
   * Voids the planned exchange still running here, if one is: waiting on a member frozen, lost or gone with
   * the session, it ends now rather than at its timeout, and its failure closes its links, which ends its
   * peers' at once. It stays `plannedRun` until an order that follows it has waited for its end (the data
   * plane runs one exchange at a time, on one input buffer).
   */
  private voidPlanned(why: string): { key: string; done: Promise<void> } | undefined {
    const planned = this.plannedRun;
    if (planned) this.dataPlane?.abort(planned.key, why);
    return planned;
  }

  /**
   * A REDUCE: takes part in the step's allreduce with the sums it holds, once a planned exchange still
   * running here has ended (the data plane runs one at a time, on one input buffer).
   */
  private async reduce(a: Assignment): Promise<void> {
    // A REDUCE means the coordinator voided the plan (its attempt, and any step prepared with it).
    const planned = this.voidPlanned(`voided: the coordinator reduces step ${a.globalStep} by ${a.reduce?.key ?? 'another attempt'}`);
    this.plannedRun = undefined;
    await planned?.done;
    const order = a.reduce;
    if (order) await this.runReduce(a, order, () => this.held.vector(a.globalStep, order.tensors, order.members[order.rank]?.parts ?? []));
  }

  /**
   * Runs the allreduce `order` of `a`'s step on the vector `input` lays out. A failure is only logged: the
   * coordinator notices it too, re-plans the step, and sends a new REDUCE (the held sums are untouched).
   */
  private async runReduce(a: Assignment, order: ReduceOrder, input: () => Float32Array, inputReady?: Promise<void>, saidReady?: () => void): Promise<void> {
    const plane = this.dataPlane;
    if (!plane) return;
    // Said before the exchange starts, so a test can fault a member inside the allreduce itself (a planned
    // one starts before the share is computed, so its line comes first).
    this.logStep(`step ${a.globalStep}: reducing with members ${order.members.map((m) => m.id).join(', ')} (allreduce ${order.key})`);
    // The REDUCE stood for the ready for the next order, naming the result this allreduce will leave here:
    // the coordinator sent the next step's share (PreparedStep) right behind it, so it is here when the
    // exchange ends. Should the exchange fail, that order is void (turn).
    this.failedReduceKey = '';
    try {
      const vector = input();
      const compression = this.session && allreduceCompression(this.session.registration.spec.distributed);
      const reduction = { key: order.key, members: order.members, rank: order.rank, timeoutMs: order.timeoutMs, compression, tensors: order.tensors };
      const stats = await plane.allreduce(reduction, vector, inputReady, saidReady);
      const sum = vector.subarray(0, vector.length / Math.max(1, order.members[order.rank]?.parts?.length ?? 1));
      this.reduced = { key: order.key, step: a.globalStep, tensors: order.tensors, gradientTensorCount: order.gradientTensorCount, vector: sum };
      this.metrics.sentBytes.inc(stats.bytesSent);
      this.metrics.receivedBytes.inc(stats.bytesReceived);
      this.metrics.sharePhaseDuration.observe({ phase: 'reduce' }, stats.ms / 1000);
      // A REDUCE's phase is recorded around the whole order (turn); a planned one's from its input's arrival.
      if (inputReady) processTimeline().phase('reduce', a.globalStep, processTimeline().now() - Math.round(stats.ms * 1000));
    } catch (err) {
      // Held sums that do not match the order are a bug on one side (the session protocol keeps them in
      // step): that fails the worker. A failed exchange is the coordinator's to re-plan.
      if (!(err instanceof AllreduceError)) throw err;
      this.failedReduceKey = order.key;
      this.log(`step ${a.globalStep}: allreduce ${order.key} failed (${err.message}); the coordinator re-plans the step`);
    }
  }

  private async evaluate(session: Session, a: Assignment): Promise<void> {
    const { registration: reg, replica } = session;
    const numClasses = reg.spec.model.numClasses;
    const samples = localSamples(a.globalStep, a.microBatches, a.samples, numClasses);
    const share = await runEvalShare(replica.parts, samples, numClasses);
    const accepted = await this.submit(a, () => this.link.submitEval(reg.workerId, a.globalStep, a.epoch, share, this.stopSignal.signal));
    if (!accepted) return;
    this.counts.evalShares++;
    this.log(`evaluation after epoch ${a.epoch}: ${share.microBatchIds.length}/${a.stepMicroBatchCount} micro-batches, ` +
      `${share.metrics.count} samples, ${share.computeSeconds.toFixed(2)} s`);
  }

  /**
   * Sends a result, once: a result is not repeated blindly. A refusal that concerns only this result
   * (stale: the share was redone elsewhere or the step moved on; malformed) is logged and the worker goes
   * on with its next assignment. Any other failure leaves it unknown whether the coordinator counted the
   * result, so it ends the session (loop): the coordinator drops what this incarnation held when it sees
   * the session end, and the worker drops the same, so a result is never counted by one and void for the other.
   */
  private async submit(a: Assignment, send: () => Promise<unknown>): Promise<boolean> {
    try {
      await send();
      return true;
    } catch (err) {
      if (!(err instanceof RpcError)) throw err;
      if (err.code === GrpcStatus.FAILED_PRECONDITION) {
        this.log(`step ${a.globalStep}: result not counted, the coordinator has moved on (${err.details})`);
        return false;
      }
      if (err.code === GrpcStatus.INVALID_ARGUMENT) {
        this.log(`step ${a.globalStep}: the coordinator refused the result as malformed (${err.details})`);
        return false;
      }
      throw err;
    }
  }

  /** The tensor count must not grow from share to share; a leak is reported once. */
  private checkTensorCount(session: Session): void {
    const n = tf.memory().numTensors;
    if (session.tensorBaseline !== undefined && n !== session.tensorBaseline && !this.leakReported) {
      this.leakReported = true;
      this.log(`warning: ${n} tensors after a share, ${session.tensorBaseline} after loading the model (a tensor leak)`);
    }
  }

  private move(to: WorkerLifecycle): void {
    this.lifecycle = nextLifecycle(this.lifecycle, to);
  }

  private log(line: string): void {
    this.options.log(`worker ${this.id}: ${line}`);
  }

  /** A line about one step's routine work, logged only with `logSteps` (see StepProgress). */
  private logStep(line: string): void {
    if (this.options.logSteps) this.log(line);
  }
}

/** The key of the planned allreduce a TRAIN carries, if it carries one. */
function plannedKeyOf(a: Assignment): string | undefined {
  return a.kind === AssignmentKind.Train ? a.reduce?.key : undefined;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
