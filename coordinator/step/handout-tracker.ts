import { nodePrefix } from '../../common';
import { PlanningError } from '../errors';
import { assignMicroBatches, reassign, type Share } from './step-planner';

/** Micro-batches handed to one worker in one assignment, awaiting its result. */
export interface Handout {
  worker: string;
  /** Ascending and contiguous. */
  microBatchIds: number[];
  handedAtMs: number;
  /** Past this the worker is dropped and the micro-batches are redone by others. */
  deadlineMs: number;
}

/** A worker that missed a deadline: it did not return its handout, or did not come for its queued work. */
export interface Overdue {
  worker: string;
  /** `returned`: a handout was not pushed back in time; `taken`: queued work was never pulled. */
  missed: 'returned' | 'taken';
  microBatchIds: number[];
}

/** How a collector times its deadlines. */
export interface HandoutTrackerOptions {
  /** A handout not returned, or queued work not taken, this long is overdue. */
  deadlineMs: number;
  /** Clock in milliseconds. @default Date.now */
  now?: () => number;
  /** Micro-batches per worker, in the order of `workers`, instead of an even cut (see CoordinatorOptions.split). */
  split?: readonly number[];
}

/** Why a result does not match what the collector expects from its sender. */
export type HandoutMismatch =
  | { kind: 'none-held'; message: string }
  | { kind: 'different'; held: readonly number[]; message: string };

function sameIds(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((id, k) => id === b[k]);
}

function describe(ids: readonly number[]): string {
  return `[${ids.join(', ')}]`;
}

/** `ids` cut into runs of `counts[k]` for `workers[k]`, in order, until they run out; the rest to the last worker. */
function splitAs(ids: readonly number[], workers: readonly string[], counts: readonly number[]): Share[] {
  const shares: Share[] = [];
  let next = 0;
  workers.forEach((worker, k) => {
    const take = k === workers.length - 1 ? ids.length - next : Math.min(counts[k] ?? 0, ids.length - next);
    if (take > 0) shares.push({ worker, microBatchIds: ids.slice(next, next + take) });
    next += take;
  });
  return shares;
}

/**
 * Who computes which micro-batches of one round (a training step or an evaluation pass) and which are
 * done. Each worker has a queue of contiguous runs and holds at most one handout at a time; asking again
 * for work while holding one returns the same handout (asking again is idempotent). A dropped worker's
 * unfinished micro-batches go to the survivors (`reassign`), or wait as orphans for the next worker
 * when there is none. A worker that neither returns its handout nor comes for its queued work within the
 * deadline is reported by `overdue()`. Pure bookkeeping with an injected clock; nothing is counted twice.
 */
export class HandoutTracker {
  readonly microBatchCount: number;
  private readonly queues = new Map<string, number[][]>();
  private readonly handouts = new Map<string, Handout>();
  private readonly accepted = new Set<number>();
  /** When each worker without a handout got queued work it has not come for yet. */
  private readonly queuedSince = new Map<string, number>();
  private orphans: number[] = [];
  /** The cut at creation, one run per worker: what a planned attempt plans (coordinator/step/planned-attempt.ts). */
  readonly initialShares: Share[] = [];
  private readonly deadlineMs: number;
  private readonly now: () => number;

  /** Cuts micro-batches 0..count-1 over `workers` (in that order); with no workers they all wait as orphans. */
  constructor(microBatchCount: number, workers: readonly string[], options: HandoutTrackerOptions) {
    this.deadlineMs = options.deadlineMs;
    this.now = options.now ?? Date.now;
    if (!Number.isInteger(microBatchCount) || microBatchCount < 1) {
      throw new PlanningError(`expected at least one micro-batch in a round, got ${microBatchCount}`);
    }
    this.microBatchCount = microBatchCount;
    const ids = Array.from({ length: microBatchCount }, (_, id) => id);
    if (workers.length === 0) this.orphans = ids;
    for (const share of options.split ? splitAs(ids, workers, options.split) : assignMicroBatches(ids, workers)) {
      this.enqueue(share.worker, share.microBatchIds);
      this.initialShares.push(share);
    }
  }

  /** Every micro-batch has an accepted result. */
  get complete(): boolean {
    return this.accepted.size === this.microBatchCount;
  }

  /** Micro-batches accepted so far. */
  get acceptedCount(): number {
    return this.accepted.size;
  }

  /** Every micro-batch went out: none is queued for a worker or waits as an orphan. */
  get allHandedOut(): boolean {
    return this.orphans.length === 0 && [...this.queues.values()].every((q) => q.length === 0);
  }

  /** Micro-batches that have no worker (every worker that held them is gone). */
  get orphanCount(): number {
    return this.orphans.length;
  }

  /** Whether `worker` holds a handout or has runs queued. */
  holds(worker: string): boolean {
    return this.handouts.has(worker) || (this.queues.get(worker)?.length ?? 0) > 0;
  }

  /** The handout `worker` holds, if any. */
  handout(worker: string): Handout | undefined {
    return this.handouts.get(worker);
  }

  /**
   * The work to give `worker` now: the handout it already holds (sent again), else the head of its next
   * queued run, at most `limit` micro-batches (what fits in one message), cut to the largest node of the
   * summation tree there (a run [1, 4) of 4 micro-batches goes out as [1] then [2, 3]). Undefined when it
   * has nothing.
   */
  take(worker: string, limit: number): Handout | undefined {
    const held = this.handouts.get(worker);
    if (held) return held;
    const queue = this.queues.get(worker);
    if (!queue || queue.length === 0) return undefined;
    const run = queue[0];
    // Only whole nodes of the step's summation tree are handed out, so every share's sum is one node's.
    const ids = run.splice(0, nodePrefix(run[0], run[run.length - 1] + 1, this.microBatchCount, Math.max(1, limit)));
    if (run.length === 0) queue.shift();
    const nowMs = this.now();
    const handout: Handout = { worker, microBatchIds: ids, handedAtMs: nowMs, deadlineMs: nowMs + this.deadlineMs };
    this.handouts.set(worker, handout);
    this.queuedSince.delete(worker);
    return handout;
  }

  /** Spreads the orphans over `workers` (available again), the least loaded first. Returns how many moved. */
  adoptOrphans(workers: readonly string[]): number {
    if (this.orphans.length === 0 || workers.length === 0) return 0;
    const ids = this.orphans;
    this.orphans = [];
    this.place('(no worker)', ids, workers);
    return ids.length;
  }

  /** Whether a result from `worker` for `ids` is the one expected: undefined if so, else why not. */
  mismatch(worker: string, ids: readonly number[]): HandoutMismatch | undefined {
    const held = this.handouts.get(worker);
    if (!held) {
      return {
        kind: 'none-held',
        message: `micro-batches ${describe(ids)} are not assigned to worker '${worker}' (it holds no assignment now; ` +
          'they were redone elsewhere or already counted)',
      };
    }
    if (!sameIds(held.microBatchIds, ids)) {
      return {
        kind: 'different',
        held: held.microBatchIds,
        message: `micro-batches ${describe(ids)} are not assigned to worker '${worker}': it holds ${describe(held.microBatchIds)}`,
      };
    }
    return undefined;
  }

  /** Records the result of the handout `worker` holds. @throws PlanningError when it holds another one. */
  accept(worker: string, ids: readonly number[]): Handout {
    const wrong = this.mismatch(worker, ids);
    if (wrong) throw new PlanningError(wrong.message);
    const held = this.handouts.get(worker) as Handout;
    this.handouts.delete(worker);
    for (const id of ids) this.accepted.add(id);
    if ((this.queues.get(worker)?.length ?? 0) > 0) this.queuedSince.set(worker, this.now());
    return held;
  }

  /**
   * Takes back accepted micro-batches whose result was lost (held by a worker that died before the
   * allreduce) and spreads them over `survivors` like a dropped worker's work.
   */
  reopen(from: string, ids: readonly number[], survivors: readonly string[]): void {
    for (const id of ids) this.accepted.delete(id);
    this.place(from, [...ids].sort((a, b) => a - b), survivors.filter((w) => w !== from));
  }

  /** Whether micro-batch `id` has an accepted result. */
  isAccepted(id: number): boolean {
    return this.accepted.has(id);
  }

  /**
   * Takes everything `worker` holds or has queued (it failed or left) and spreads what is unfinished
   * over `survivors`, the least loaded first; with no survivor it waits for the next worker. Returns the
   * micro-batch ids that moved (empty if it held nothing).
   */
  drop(worker: string, survivors: readonly string[]): number[] {
    const held = this.handouts.get(worker)?.microBatchIds ?? [];
    const queued = (this.queues.get(worker) ?? []).flat();
    this.handouts.delete(worker);
    this.queues.delete(worker);
    this.queuedSince.delete(worker);
    const moved = [...held, ...queued].filter((id) => !this.accepted.has(id)).sort((a, b) => a - b);
    this.place(worker, moved, survivors.filter((w) => w !== worker));
    return moved;
  }

  /** A draining worker keeps its handout but its queued runs go to `survivors`. Returns the ids that moved. */
  release(worker: string, survivors: readonly string[]): number[] {
    const queued = (this.queues.get(worker) ?? []).flat().sort((a, b) => a - b);
    this.queues.delete(worker);
    this.queuedSince.delete(worker);
    this.place(worker, queued, survivors.filter((w) => w !== worker));
    return queued;
  }

  /** Workers past a deadline: handouts not returned, or queued work not taken, for `deadlineMs`. */
  overdue(): Overdue[] {
    const nowMs = this.now();
    const out: Overdue[] = [...this.handouts.values()]
      .filter((h) => h.deadlineMs < nowMs)
      .map((h) => ({ worker: h.worker, missed: 'returned' as const, microBatchIds: h.microBatchIds }));
    for (const [worker, since] of this.queuedSince) {
      if (since + this.deadlineMs < nowMs) out.push({ worker, missed: 'taken', microBatchIds: (this.queues.get(worker) ?? []).flat() });
    }
    return out;
  }

  private place(from: string, ids: number[], survivors: readonly string[]): void {
    if (ids.length === 0) return;
    if (survivors.length === 0) {
      this.orphans = [...this.orphans, ...ids].sort((a, b) => a - b);
      return;
    }
    const pending: Share[] = survivors.map((w) => ({ worker: w, microBatchIds: this.pendingOf(w) }));
    const extra = reassign(from, [{ worker: from, microBatchIds: ids }, ...pending], this.accepted, survivors);
    for (const share of extra) this.enqueue(share.worker, share.microBatchIds);
  }

  private pendingOf(worker: string): number[] {
    return [...(this.handouts.get(worker)?.microBatchIds ?? []), ...(this.queues.get(worker) ?? []).flat()];
  }

  private enqueue(worker: string, ids: number[]): void {
    const queue = this.queues.get(worker) ?? [];
    // Keep runs contiguous: a gap (ids of two failed workers) starts a new run.
    let run: number[] = [];
    for (const id of ids) {
      if (run.length > 0 && id !== run[run.length - 1] + 1) {
        queue.push(run);
        run = [];
      }
      run.push(id);
    }
    if (run.length > 0) queue.push(run);
    this.queues.set(worker, queue);
    if (!this.handouts.has(worker) && !this.queuedSince.has(worker)) this.queuedSince.set(worker, this.now());
  }
}
