import { SimdScratch } from './simd-scratch';
import { type MicroBatchRun, TreeSum } from './summation-tree';

/**
 * The owner's side of one segment in the reduce-scatter: every contributor's parts of the segment (each
 * the sum over a node of the step's summation tree), the owner's own given (slices of the caller's data),
 * the others arriving in any order, each into its slot of the scratch. The result is the tree's sum bit
 * for bit, whatever the arrival order and however the micro-batches were split among the contributors,
 * because the single-process trainer adds micro-batches by the same tree and the replicas must match it.
 * Two sibling nodes are added as soon as both are in, so adding overlaps receiving the rest; the adds run
 * in the scratch (SIMD) and the root is copied into the owner's segment at the end.
 */
export class TreeFold {
  /** Slot of each contributor's parts, by contributor index then part index. */
  private readonly slots: Float32Array[][];
  private readonly arrived: boolean[][];
  private readonly tree: TreeSum<Float32Array>;
  /** The owner's is the only part: it is added where it lies, without a slot. */
  private readonly single: boolean;

  /**
   * @param target where the result goes: the owner's segment of the reduced vector
   * @param own the owner's parts of the segment, in the order of `parts[ownIndex]`; undefined: given later
   *   ({@link putOwn}), while the others' parts may already arrive
   * @param ownIndex the owner's contributor index; -1 for an observer that adds the parts of a direct reduction
   * @param parts the tree nodes each contributor brings, by contributor index
   */
  constructor(private readonly target: Float32Array, own: readonly Float32Array[] | undefined, private readonly ownIndex: number,
    private readonly parts: readonly (readonly MicroBatchRun[])[], leaves: number, scratch: SimdScratch) {
    this.tree = new TreeSum<Float32Array>(leaves, (left, right) => {
      scratch.add(left, right);
      return left;
    });
    const count = parts.reduce((n, p) => n + p.length, 0);
    this.single = count === 1 && parts[ownIndex]?.length === 1;
    const flat = this.single ? [target] : scratch.slots(count, target.length);
    let at = 0;
    this.slots = parts.map((p) => p.map(() => flat[at++]));
    this.arrived = parts.map((p) => p.map(() => false));
    if (own) this.putOwn(own);
  }

  /** The owner's parts of the segment, in the order of `parts[ownIndex]`: added like any arrival. */
  putOwn(own: readonly Float32Array[]): void {
    own.forEach((values, i) => {
      if (this.single) this.slots[this.ownIndex][i] = values;
      else this.slots[this.ownIndex][i].set(values);
      this.arrive(this.ownIndex, i);
    });
  }

  /** Every part is in and added: `target` holds the result. */
  get done(): boolean {
    return this.tree.complete;
  }

  /** Where part `i` of contributor `k` (not the owner's) is to be received. */
  slot(k: number, i: number): Float32Array {
    return this.slots[k][i];
  }

  /** Part `i` of contributor `k` has arrived in `slot(k, i)`: adds what can be added now; returns `done`. */
  arrive(k: number, i: number): boolean {
    if (this.arrived[k][i]) throw new RangeError(`part ${i} of contributor ${k} arrived twice`);
    this.arrived[k][i] = true;
    this.tree.put(this.parts[k][i], this.slots[k][i]);
    if (this.done) {
      const sum = this.tree.result();
      if (sum !== this.target) this.target.set(sum);
    }
    return this.done;
  }
}
