import { SimdScratch } from './simd-scratch';

/**
 * The owner's side of one segment in the reduce-scatter: C parts in contributor order, the owner's own
 * given (a slice of the caller's data), the others arriving in any order, each into its slot of the scratch.
 * The result is the left fold ((p0 + p1) + p2) + … bit for bit, whatever the arrival order, because the
 * single-process trainer sums micro-batches in exactly that order and the replicas must match it. Each
 * part is added as soon as every earlier one is in, so adding overlaps receiving the rest; the fold runs
 * in the scratch (SIMD) and is copied back into the owner's slice at the end.
 */
export class OrderedFold {
  private readonly arrived: boolean[];
  private readonly slots: Float32Array[];
  /** Parts folded so far: slot 0 holds the fold of parts [0, next). */
  private next = 0;

  /** @param own the owner's part (index `ownIndex`), which ends holding the result */
  constructor(private readonly own: Float32Array, ownIndex: number, parts: number, private readonly scratch: SimdScratch) {
    this.slots = parts > 1 ? scratch.slots(parts, own.length) : [own];
    if (parts > 1) this.slots[ownIndex].set(own);
    this.arrived = Array.from({ length: parts }, (_, k) => k === ownIndex);
    this.advance();
  }

  /** Every part is in and folded: `own` holds the result. */
  get done(): boolean {
    return this.next === this.arrived.length;
  }

  /** Where part `k` (not the owner's) is to be received. */
  slot(k: number): Float32Array {
    return this.slots[k];
  }

  /** Part `k` has arrived in `slot(k)`: folds every part that can be folded now; returns `done`. */
  arrive(k: number): boolean {
    if (this.arrived[k]) throw new RangeError(`part ${k} arrived twice or is the owner's own`);
    this.arrived[k] = true;
    this.advance();
    return this.done;
  }

  private advance(): void {
    const before = this.next;
    for (; this.next < this.arrived.length && this.arrived[this.next]; this.next++) {
      if (this.next > 0) this.scratch.add(this.slots[0], this.slots[this.next]);
    }
    if (this.done && before < this.next && this.slots.length > 1) this.own.set(this.slots[0]);
  }
}
