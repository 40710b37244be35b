import { addFloatsInto, elementCount, type WireTensor, type WireTensorSpec } from '../common';
import { HeldSumsError } from './errors';

/** An allreduce's result: the step's whole sums, laid out as the coordinator's ReduceSpec said. */
export interface ReducedSums {
  key: string;
  step: number;
  tensors: readonly WireTensorSpec[];
  gradientTensorCount: number;
  vector: Float32Array;
}

/**
 * The sums of the shares this worker computed for the current step and kept for the allreduce (its
 * pushes carried only the header). A second share of the same step is added to the first; a share of
 * another step starts over. They stay untouched through an allreduce attempt (the ring works on a copy),
 * so a failed attempt can be run again with the same input.
 */
export class HeldSums {
  private heldStep = -1;
  private readonly sums = new Map<string, Float32Array>();

  /** The step whose sums are held; -1 when none. */
  get step(): number {
    return this.heldStep;
  }

  /** Keeps the sums of a share the coordinator accepted as held. */
  add(step: number, tensors: readonly WireTensor[]): void {
    if (step !== this.heldStep) this.clear();
    this.heldStep = step;
    for (const t of tensors) {
      const data = t.data as Float32Array;
      const acc = this.sums.get(t.name);
      if (acc === undefined) this.sums.set(t.name, Float32Array.from(data));
      else addFloatsInto(acc, data);
    }
  }

  /**
   * The allreduce input: the held sums laid out as `tensors`, in a new vector.
   * @throws HeldSumsError when another step's sums are held, or a tensor is missing or of another size.
   */
  vector(step: number, tensors: readonly WireTensorSpec[]): Float32Array {
    if (step !== this.heldStep) {
      throw new HeldSumsError(`allreduce of step ${step}: this worker holds ${this.heldStep < 0 ? 'no sums' : `the sums of step ${this.heldStep}`}`);
    }
    const out = new Float32Array(tensors.reduce((n, s) => n + elementCount(s.shape), 0));
    let at = 0;
    for (const spec of tensors) {
      const n = elementCount(spec.shape);
      const values = this.sums.get(spec.name);
      if (!values || values.length !== n) {
        throw new HeldSumsError(`allreduce of step ${step}: expected ${n} held values of '${spec.name}', ` +
          `found ${values ? values.length : 'none'}`);
      }
      out.set(values, at);
      at += n;
    }
    return out;
  }

  clear(): void {
    this.heldStep = -1;
    this.sums.clear();
  }
}
