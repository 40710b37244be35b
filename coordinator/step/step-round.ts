import { addFloatsInto, type AllreduceStats, type ApplyOrder, elementCount, type MicroBatchRun, totalElementCount, TreeSum, type WireTensorSpec } from '../../common';
import { PlanningError } from '../errors';
import type { ShareTiming } from '../coordinator-telemetry';
import type { ReduceOrder, Reduction } from './reduction';
import { nextPhase, type StepPhase } from './step-phase';
import { type Handout, HandoutTracker } from './handout-tracker';
import type { StepPlan } from './step-planner';

/**
 * One accepted share of a training step: gradient and BatchNorm-delta sums over its micro-batches. A
 * held share's sums stay with its worker (empty maps here) until the step's allreduce.
 */
export interface ShareSums extends StepSums {
  worker: string;
  microBatchIds: number[];
  held: boolean;
}

/** A whole step's sums, added by the summation tree over its micro-batches. */
export interface StepSums {
  grads: Map<string, Float32Array>;
  deltas: Map<string, Float32Array>;
  lossSum: number;
  correctTop1: number;
  correctTop5: number;
  count: number;
}

/**
 * The next step, handed out while this one commits, as a Horovod or DDP worker goes from its allreduce
 * straight into its next batch. Once a step's allreduce starts, the job plans the step after it; a
 * member that takes part in that allreduce (its REDUCE order stands for a SessionReady naming the
 * attempt: `reducedKey`) gets its share of the next step at once, with the allreduce's result as the
 * update to apply and the learning rates and counts the commit will use, instead of waiting for the
 * commit and the hand-out: it reads that order as soon as its part is done.
 *
 * The round opens for pushes only when the step commits (a share of it that arrives earlier waits
 * for that), so nothing in it is counted before then and exactly-once holds as for any round. A failed
 * attempt discards it with its reduction: the shares computed from it are refused as stale, the workers
 * keep their held sums for the next attempt, and a replica that went ahead is copied back with
 * GetWeights by its next order. A change of membership before the commit discards it too.
 */
export interface PreparedStep {
  round: StepRound;
  /** How the members apply the step being reduced: the order its commit gives. */
  apply: ApplyOrder;
  /** The active workers the round was cut over. */
  workers: readonly string[];
}

/** What a step round is created with. */
export interface StepRoundOptions {
  plan: StepPlan;
  configVersion: number;
  /** The weights the step is computed on: the coordinator's weightsVersion when it opened. */
  weightsVersion: number;
  workers: readonly string[];
  stepDeadlineMs: number;
  /** Manifests a push must carry: the unfrozen trainable variables and the moving statistics that train. */
  gradientSpecs: readonly WireTensorSpec[];
  statSpecs: readonly WireTensorSpec[];
  /**
   * When replicas report their weights hash this step: how to hash the coordinator's replica at
   * `weightsVersion`. Called once, at the first read of `coordinatorHash` (see there), not when the
   * round opens: the hash then stays off the path from the previous commit to this step's hand-out.
   */
  hashReplica?: () => string;
  /** The job's clock. */
  now: () => number;
  /** Forced micro-batches per worker (CoordinatorOptions.split). @default an even cut */
  split?: readonly number[];
}

/** Rounds created in this process, for {@link StepRound.serial}. */
let roundsCreated = 0;

/** A planned attempt's order as every member's share carries it, but the member's rank. */
export type PlanOrder = Omit<ReduceOrder, 'rank'>;

/** A step's attempt planned when it opened (distributed.plannedExchange; see coordinator/step/planned-attempt.ts). */
export interface PlannedAttempt {
  /**
   * What each member's TRAIN carries, but its rank. Its key is `<job>/<instance>/step-<N>/planned-<round>`,
   * never an attempt number, so a voided plan and the attempt 1 after it differ; and `<round>` (the round's
   * serial) tells apart two rounds of one step, as when a step prepared ahead is dropped at the commit and the
   * step is planned again: members still running the first plan never meet the second.
   */
  order: PlanOrder;
  /** The coordinator's part, started when the step opened, and the vector it reads the sum into. */
  exchange: Promise<AllreduceStats>;
  vector: Float32Array;
  /** Set once the coordinator's part failed: a share handed out after that no longer carries the plan. */
  failed: boolean;
}

/** A contributor to a step's allreduce: a worker holding sums, or the coordinator with the shares pushed to it. */
export interface AllreduceContributor {
  id: string;
  /** The nodes of the summation tree it brings: its accepted shares, ascending. */
  parts: MicroBatchRun[];
}

/** The run of micro-batches a share covers: one node of the summation tree, as every handout is. */
export function runOf(share: { microBatchIds: readonly number[] }): MicroBatchRun {
  return { start: share.microBatchIds[0], end: share.microBatchIds[share.microBatchIds.length - 1] + 1 };
}

/**
 * The shares' tensors added by the summation tree over `leaves` micro-batches (each share a node of it),
 * into new arrays: the same bytes for any split of the step, and the bytes the single-process trainer adds.
 */
function treeSumMaps(shares: readonly ShareSums[], leaves: number, pick: (s: ShareSums) => Map<string, Float32Array>): Map<string, Float32Array> {
  const tree = new TreeSum<Map<string, Float32Array>>(leaves, (left, right) => {
    for (const [name, values] of right) {
      const acc = left.get(name);
      if (acc === undefined) left.set(name, values);
      else addFloatsInto(acc, values);
    }
    return left;
  });
  for (const share of shares) tree.put(runOf(share), new Map([...pick(share)].map(([name, v]) => [name, Float32Array.from(v)])));
  return tree.result();
}

/**
 * One global training step between its plan and its update: who computes which micro-batches
 * ({@link HandoutTracker}), the accepted share sums, the replica hashes reported, and a promise that
 * settles when every micro-batch is in (or the job fails).
 */
export class StepRound {
  readonly kind = 'train' as const;
  readonly plan: StepPlan;
  readonly configVersion: number;
  readonly weightsVersion: number;
  readonly collector: HandoutTracker;
  readonly gradientSpecs: readonly WireTensorSpec[];
  readonly statSpecs: readonly WireTensorSpec[];
  readonly openedAtMs: number;
  private readonly hashReplica?: () => string;
  private hashValue?: string;
  private hashScheduled = false;
  /** Settles when the step is complete; rejects when the job fails during it. Re-armed by `revokeHeld`. */
  completed: Promise<void>;
  private readonly hashes = new Map<string, string>();
  /** Timing of each accepted share, by worker (a worker with two shares keeps the sum of both). */
  readonly timings: ShareTiming[] = [];
  readonly workerSeconds = new Map<string, number>();
  private readonly shares = new Map<number, ShareSums>();
  private current: StepPhase = { name: 'collecting' };
  /** Shares of this step handed out before the step it follows committed (see PreparedStep). */
  handedAhead = 0;
  /** This round's number in this process: two rounds of one step (planned again) have different ones. */
  readonly serial = ++roundsCreated;
  /** The step's planned attempt (distributed.plannedExchange) from its opening until it is adopted or voided. */
  private plannedAttempt?: PlannedAttempt;
  /** The planned attempt as the shares carry it, decided at the first share handed out (null: none). */
  private planOrder?: PlanOrder | null;
  /** Workers whose share carried the planned attempt: only then is it theirs to run. */
  readonly planHandedTo = new Set<string>();
  /** The next step prepared while this one reduces (with the attempt it follows), until the attempt fails. */
  private prepared?: PreparedStep;
  private settle!: { resolve: () => void; reject: (err: unknown) => void };
  private settled = false;
  private failedWith: unknown;

  constructor(options: StepRoundOptions) {
    this.plan = options.plan;
    this.configVersion = options.configVersion;
    this.weightsVersion = options.weightsVersion;
    this.gradientSpecs = options.gradientSpecs;
    this.statSpecs = options.statSpecs;
    this.hashReplica = options.hashReplica;
    this.openedAtMs = options.now();
    this.collector = new HandoutTracker(options.plan.microBatches.length, options.workers, { deadlineMs: options.stepDeadlineMs, now: options.now, split: options.split });
    this.completed = this.arm();
  }

  private arm(): Promise<void> {
    const p = new Promise<void>((resolve, reject) => (this.settle = { resolve, reject }));
    // The job loop may be waiting on something else when a failure arrives; it reads the outcome later.
    p.catch(() => undefined);
    return p;
  }

  /** Hashes the workers reported for `weightsVersion`, by worker. */
  get workerHashes(): ReadonlyMap<string, string> {
    return this.hashes;
  }

  /** A worker reported its replica's weights hash with its share. */
  reportHash(workerId: string, hash: string): void {
    this.hashes.set(workerId, hash);
  }

  /** Where the step is: collecting, reducing, reduce-failed or committed (see {@link StepPhase}). */
  get phase(): StepPhase {
    return this.current;
  }

  /** collecting -> reducing: every micro-batch is in and `reduction` allreduces the held sums. */
  startReduction(reduction: Reduction): void {
    this.current = nextPhase(this.globalStep, this.current, { name: 'reducing', reduction });
  }

  /** The next step, prepared during this step's allreduce attempt `prepared.apply.key` (see {@link PreparedStep}). */
  prepareNext(prepared: PreparedStep): void {
    const phase = this.current;
    if (phase.name !== 'reducing' || phase.reduction.key !== prepared.apply.key) {
      throw new PlanningError(`step ${this.globalStep}: the next step prepared for allreduce ${prepared.apply.key} in phase '${phase.name}'`);
    }
    this.prepared = prepared;
  }

  /** The planned attempt's order, decided once by `decide` (the first share handed out, or the opening). */
  plannedOrder(decide: () => PlanOrder | undefined): PlanOrder | undefined {
    if (this.planOrder === undefined) this.planOrder = decide() ?? null;
    return this.planOrder ?? undefined;
  }

  /** The planned attempt, while the step is collected (see coordinator/step/planned-attempt.ts). */
  get planned(): PlannedAttempt | undefined {
    return this.plannedAttempt;
  }

  /** The step opens with a planned attempt, and the step after it prepared to follow that attempt. */
  openPlanned(attempt: PlannedAttempt, prepared?: PreparedStep): void {
    if (this.current.name !== 'collecting' || this.plannedAttempt) {
      throw new PlanningError(`step ${this.globalStep}: a planned attempt opened in phase '${this.current.name}'${this.plannedAttempt ? ' twice' : ''}`);
    }
    this.plannedAttempt = attempt;
    this.prepared = prepared;
  }

  /**
   * Hands the planned attempt over to be adopted or voided (once); voided, the step prepared to follow it
   * goes with it (its shares are refused as stale).
   */
  takePlanned(adopted: boolean): PlannedAttempt | undefined {
    const attempt = this.plannedAttempt;
    this.plannedAttempt = undefined;
    if (attempt && !adopted && this.prepared?.apply.key === attempt.order.key) this.prepared = undefined;
    return attempt;
  }

  /** The next step prepared for the allreduce attempt in progress, if any: handed out to its members ahead of the commit. */
  get next(): PreparedStep | undefined {
    const phase = this.current;
    if (phase.name === 'collecting' && this.plannedAttempt && this.prepared?.apply.key === this.plannedAttempt.order.key) return this.prepared;
    return phase.name === 'reducing' && phase.reduction.key === this.prepared?.apply.key ? this.prepared : undefined;
  }

  /** reducing -> reduce-failed: the attempt failed; its members are awaited before the step is collected again. */
  reductionFailed(): void {
    if (this.current.name !== 'reducing') throw new PlanningError(`step ${this.globalStep}: an allreduce failed in phase '${this.current.name}'`);
    // The step prepared for this attempt goes with it: its shares are refused as stale.
    this.prepared = undefined;
    this.current = nextPhase(this.globalStep, this.current, { name: 'reduce-failed', reduction: this.current.reduction });
  }

  /** reduce-failed -> collecting: the lost members' micro-batches were reopened; the step is collected again. */
  collectAgain(): void {
    this.current = nextPhase(this.globalStep, this.current, { name: 'collecting' });
  }

  /** collecting or reducing -> committed: the step's sums are known and applied. */
  commit(): void {
    this.current = nextPhase(this.globalStep, this.current, { name: 'committed' });
  }

  /**
   * The REDUCE order for `workerId`'s `incarnation` while an allreduce runs (once per attempt), or
   * undefined. After a failed attempt, a member that asks for work is alive: it is marked back, and the
   * caller wakes the job.
   */
  reduceOrderFor(workerId: string, incarnation: number): ReduceOrder | undefined {
    const phase = this.current;
    if (phase.name === 'reducing') return phase.reduction.orderFor(workerId, incarnation);
    if (phase.name === 'reduce-failed') phase.reduction.markBack(workerId, incarnation);
    return undefined;
  }

  /** The global step this round computes. */
  get globalStep(): number {
    return this.plan.globalStep;
  }

  /** Whether the replicas report their weights hash in this step. */
  get reportsHash(): boolean {
    return this.hashReplica !== undefined;
  }

  /**
   * The coordinator's weightsHash at `weightsVersion` when replicas report theirs this step, computed at
   * the first read: the first share's check, the background turn after the hand-out (`hashSoon`), or at
   * the latest the commit, which reads it before it defers this step's own update (so the replica is
   * still at `weightsVersion` then).
   */
  get coordinatorHash(): string | undefined {
    this.hashReplicaNow();
    return this.hashValue;
  }

  /** Takes the replica's hash now if this step reports hashes and it was not taken yet (see {@link coordinatorHash}). */
  hashReplicaNow(): void {
    if (this.hashReplica && this.hashValue === undefined) this.hashValue = this.hashReplica();
  }

  /** Hashes the replica on a later turn of the event loop, after the shares went out (a no-op when the step reports none, or once scheduled). */
  hashSoon(): void {
    if (!this.hashReplica || this.hashScheduled) return;
    this.hashScheduled = true;
    setImmediate(() => {
      try {
        this.hashReplicaNow();
      } catch {
        // Not memoised: the read that needs the hash (a share's check, the commit) computes it again and fails there.
      }
    });
  }

  /** Samples in the given micro-batches of the plan. */
  sampleCount(ids: readonly number[]): number {
    return ids.reduce((n, id) => n + (this.plan.microBatches[id]?.sampleIndices.length ?? 0), 0);
  }

  /** Stores an accepted share (the caller checked it against the handout) and settles when the step is full. */
  accept(handout: Handout, sums: ShareSums, headerAtMs: number, doneAtMs: number): void {
    this.collector.accept(sums.worker, sums.microBatchIds);
    this.shares.set(sums.microBatchIds[0], sums);
    this.timings.push({ worker: sums.worker, samples: sums.count, handedAtMs: handout.handedAtMs, headerAtMs, doneAtMs });
    this.workerSeconds.set(sums.worker, (this.workerSeconds.get(sums.worker) ?? 0) + (doneAtMs - handout.handedAtMs) / 1000);
    if (this.collector.complete && !this.settled) {
      this.settled = true;
      this.settle.resolve();
    }
  }

  /** Ends the round with a job failure (the model diverged). */
  fail(err: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.failedWith = err;
    this.settle.reject(err);
  }

  /** Workers holding accepted sums for the allreduce, in the order of their first micro-batch. */
  heldWorkers(): string[] {
    return [...new Set(this.acceptedShares().filter((sh) => sh.held).map((sh) => sh.worker))];
  }

  /** Shares accepted so far, in micro-batch order. */
  acceptedShares(): ShareSums[] {
    return [...this.shares.entries()].sort(([a], [b]) => a - b).map(([, sh]) => sh);
  }

  /**
   * The sums `worker` held are lost (it died before the allreduce): its accepted micro-batches go back
   * to `survivors` and the step waits for them again. Returns the reopened micro-batch ids.
   */
  revokeHeld(worker: string, survivors: readonly string[]): number[] {
    const ids: number[] = [];
    for (const [first, sh] of [...this.shares]) {
      if (sh.held && sh.worker === worker) {
        this.shares.delete(first);
        ids.push(...sh.microBatchIds);
      }
    }
    if (ids.length === 0) return ids;
    this.collector.reopen(worker, ids, survivors);
    if (this.settled && !this.failedWith) {
      this.settled = false;
      this.completed = this.arm();
    }
    return ids;
  }

  /**
   * Who contributes to the allreduce, in the order of their first accepted micro-batch, with the tree
   * nodes each brings: each holder, and `coordinatorId` where shares were pushed to the coordinator (a
   * draining worker's). The sum does not depend on this order: the segment owners add by the tree.
   */
  contributors(coordinatorId: string): AllreduceContributor[] {
    const byId = new Map<string, MicroBatchRun[]>();
    for (const sh of this.acceptedShares()) {
      const id = sh.held ? sh.worker : coordinatorId;
      byId.set(id, [...(byId.get(id) ?? []), runOf(sh)]);
    }
    return [...byId].map(([id, parts]) => ({ id, parts }));
  }

  /** Floats in the allreduce vector: every gradient, then every statistic delta. */
  get vectorLength(): number {
    return totalElementCount(this.gradientSpecs) + totalElementCount(this.statSpecs);
  }

  /**
   * The coordinator's input to the allreduce: the shares pushed to it over gRPC (a draining worker's, or
   * one without a data plane), one vector per share (a node of the summation tree, in the order of
   * `contributors`), back to back and laid out as the reduction's vector; one vector of zeros if none.
   * Written into `buffer(floats)` (a recycled vector: zeroed first).
   */
  allreduceInput(buffer: (floats: number) => Float32Array = (floats) => new Float32Array(floats)): Float32Array {
    const n = this.vectorLength;
    const pushed = this.acceptedShares().filter((sh) => !sh.held);
    const out = buffer(Math.max(1, pushed.length) * n).fill(0);
    pushed.forEach((sh, k) => {
      let at = k * n;
      for (const spec of [...this.gradientSpecs, ...this.statSpecs]) {
        const values = sh.grads.get(spec.name) ?? sh.deltas.get(spec.name);
        if (values) out.set(values, at);
        at += elementCount(spec.shape);
      }
    });
    return out;
  }

  /** The step's sums from the allreduced vector (tensors) and every accepted share (counts). */
  sumsFromVector(vector: Float32Array): StepSums {
    const slice = (specs: readonly WireTensorSpec[], start: number): [Map<string, Float32Array>, number] => {
      const m = new Map<string, Float32Array>();
      let at = start;
      for (const spec of specs) {
        const n = elementCount(spec.shape);
        m.set(spec.name, vector.subarray(at, at + n));
        at += n;
      }
      return [m, at];
    };
    const [grads, end] = slice(this.gradientSpecs, 0);
    const [deltas] = slice(this.statSpecs, end);
    return { ...this.counts(), grads, deltas };
  }

  /** Workers whose results this step holds so far. */
  workersReported(): number {
    return new Set([...this.shares.values()].map((s) => s.worker)).size;
  }

  /**
   * The step's sums: the shares (nodes of the summation tree) added by the tree, which is what makes every
   * split of the step agree with the local trainer bit for bit.
   * @throws PlanningError when called before the step is complete.
   */
  sum(): StepSums {
    if (!this.collector.complete) {
      throw new PlanningError(`step ${this.globalStep}: summed with ${this.collector.acceptedCount} of ` +
        `${this.collector.microBatchCount} micro-batches in`);
    }
    const ordered = this.acceptedShares();
    if (ordered.some((sh) => sh.held)) {
      throw new PlanningError(`step ${this.globalStep}: summed on the coordinator while workers hold sums for an allreduce`);
    }
    return {
      ...this.counts(),
      grads: treeSumMaps(ordered, this.plan.microBatches.length, (s) => s.grads),
      deltas: treeSumMaps(ordered, this.plan.microBatches.length, (s) => s.deltas),
    };
  }

  /** Loss, hits and samples over every accepted share, in micro-batch order. */
  private counts(): Omit<StepSums, 'grads' | 'deltas'> {
    let lossSum = 0;
    let correctTop1 = 0;
    let correctTop5 = 0;
    let count = 0;
    for (const s of this.acceptedShares()) {
      lossSum += s.lossSum;
      correctTop1 += s.correctTop1;
      correctTop5 += s.correctTop5;
      count += s.count;
    }
    return { lossSum, correctTop1, correctTop5, count };
  }
}
