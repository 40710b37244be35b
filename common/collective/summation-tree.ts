/**
 * The fixed pairwise summation tree over a step's micro-batches, which makes a step's sum independent of
 * who computed what. Float addition is not associative, so a sum's bytes depend on how its terms are
 * grouped; here the grouping is fixed by micro-batch index alone: the sum of micro-batches [start, end) is
 * the sum of [start, mid) plus the sum of [mid, end), with `mid = start + ceil(n / 2)`, down to single
 * micro-batches. The single-process trainer, a worker summing its share, the segment owners of the
 * allreduce and the parameter server all evaluate this one tree, each over the nodes it was given, so
 * every split of a step (any worker count, any redo after a fault) gives the same bytes. Pairwise
 * summation is also more accurate than a left fold (error growing with log n instead of n).
 *
 * A worker is handed whole nodes of the tree (`nodePrefix`), so an aligned split sends one vector per
 * worker, as a left fold did; an unaligned one is handed out, and sent, as a few nodes.
 */

/** Micro-batches [start, end) of one step: a node of the summation tree when `isTreeNode` says so. */
export interface MicroBatchRun {
  readonly start: number;
  readonly end: number;
}

/** Where the tree splits the micro-batches [start, end) (end - start >= 2): the left half is the larger. */
export function splitPoint(start: number, end: number): number {
  return start + Math.ceil((end - start) / 2);
}

/** The node's parent in the tree over `leaves` micro-batches; undefined for the root; throws when `run` is no node. */
export function parentNode(run: MicroBatchRun, leaves: number): MicroBatchRun | undefined {
  let lo = 0;
  let hi = leaves;
  let parent: MicroBatchRun | undefined;
  while (lo !== run.start || hi !== run.end) {
    const mid = hi - lo >= 2 ? splitPoint(lo, hi) : -1;
    if (mid < 0 || !(run.end <= mid || run.start >= mid)) {
      throw new RangeError(`expected a node of the summation tree over ${leaves} micro-batches, got [${run.start}, ${run.end})`);
    }
    parent = { start: lo, end: hi };
    if (run.end <= mid) hi = mid;
    else lo = mid;
  }
  return parent;
}

/** Whether [start, end) is a node of the tree over `leaves` micro-batches. */
export function isTreeNode(run: MicroBatchRun, leaves: number): boolean {
  if (!(Number.isInteger(run.start) && Number.isInteger(run.end) && run.start >= 0 && run.end <= leaves && run.start < run.end)) return false;
  try {
    parentNode(run, leaves);
    return true;
  } catch {
    return false;
  }
}

/**
 * Length of the largest tree node that starts at `start`, ends by `end` and holds at most `limit`
 * micro-batches (at least 1): how much of a contiguous run to hand out at once so that every hand-out is
 * a node.
 */
export function nodePrefix(start: number, end: number, leaves: number, limit = Infinity): number {
  let lo = 0;
  let hi = leaves;
  for (;;) {
    if (lo === start && hi <= end && hi - lo <= limit) return hi - lo;
    if (hi - lo < 2) return 1;
    const mid = splitPoint(lo, hi);
    if (start < mid) hi = mid;
    else lo = mid;
  }
}

/** The runs of consecutive ids in ascending `ids`, as [start, end) pairs. */
export function contiguousRuns(ids: readonly number[]): MicroBatchRun[] {
  const runs: { start: number; end: number }[] = [];
  for (const id of [...ids].sort((a, b) => a - b)) {
    const last = runs[runs.length - 1];
    if (last && last.end === id) last.end++;
    else runs.push({ start: id, end: id + 1 });
  }
  return runs;
}

/**
 * Adds node sums into the tree's sum as they come, in any order: a node whose sibling is already in is
 * added to it (left + right) and the pair becomes their parent, up the tree. Once every micro-batch is in,
 * one node is left, the root, holding the step's sum, bit for bit the same for any partition of the
 * micro-batches into nodes and any arrival order.
 */
export class TreeSum<T> {
  /** Nodes held now, disjoint, by start. */
  private readonly held = new Map<number, { end: number; value: T }>();

  /**
   * @param leaves micro-batches in the step
   * @param add `left + right` of two sibling nodes; it may reuse either argument's memory for the result
   */
  constructor(readonly leaves: number, private readonly add: (left: T, right: T) => T) {
    if (!Number.isInteger(leaves) || leaves < 1) throw new RangeError(`expected at least one micro-batch, got ${leaves}`);
  }

  /** Every micro-batch is in: `result` holds the step's sum. */
  get complete(): boolean {
    return this.held.get(0)?.end === this.leaves;
  }

  /** Nodes held now, ascending: what is left to add. */
  nodes(): MicroBatchRun[] {
    return [...this.held].map(([start, { end }]) => ({ start, end })).sort((a, b) => a.start - b.start);
  }

  /**
   * Adds the sum of the node `run` (merging it with siblings already in).
   * @throws RangeError when `run` is not a node of the tree or overlaps micro-batches already in.
   */
  put(run: MicroBatchRun, value: T): void {
    let node = { start: run.start, end: run.end };
    let sum = value;
    if (!isTreeNode(node, this.leaves)) {
      throw new RangeError(`expected a node of the summation tree over ${this.leaves} micro-batches, got [${run.start}, ${run.end})`);
    }
    for (const [start, { end }] of this.held) {
      if (start < node.end && node.start < end) {
        throw new RangeError(`micro-batches [${node.start}, ${node.end}) overlap [${start}, ${end}), which are already in the sum`);
      }
    }
    for (let parent = parentNode(node, this.leaves); parent; parent = parentNode(node, this.leaves)) {
      const left = parent.start === node.start;
      const sibling = left ? { start: node.end, end: parent.end } : { start: parent.start, end: node.start };
      const other = this.held.get(sibling.start);
      if (other?.end !== sibling.end) break;
      this.held.delete(sibling.start);
      sum = left ? this.add(sum, other.value) : this.add(other.value, sum);
      node = parent;
    }
    this.held.set(node.start, { end: node.end, value: sum });
  }

  /** The values of the nodes held now (to release them after a failure). */
  values(): T[] {
    return [...this.held.values()].map((n) => n.value);
  }

  /** The step's sum. @throws RangeError before every micro-batch is in. */
  result(): T {
    const root = this.held.get(0);
    if (root?.end !== this.leaves) {
      const have = this.nodes().map((n) => `[${n.start}, ${n.end})`).join(' ');
      throw new RangeError(`expected all ${this.leaves} micro-batches in the sum, have ${have || 'none'}`);
    }
    return root.value;
  }
}
