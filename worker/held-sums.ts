import { elementCount, type MicroBatchRun, RecycledBuffers, totalElementCount, type WireTensor, type WireTensorSpec } from '../common';
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
 * pushes carried only the header), one set per share: each share is a node of the step's summation tree,
 * and the segment owners add the nodes by the tree, so a second share of the same step is kept apart,
 * not added to the first. A share of another step starts over. They stay untouched through an allreduce
 * attempt (the collective works on a copy), so a failed attempt can be run again with the same input.
 *
 * The buffers are recycled: a share's sums are written into one {@link sumsBuffer} handed back when the share
 * is dropped, and the allreduce input is one buffer rewritten by every {@link vector} call.
 */
export class HeldSums {
  private heldStep = -1;
  /** By the first micro-batch of the share. */
  private readonly shares = new Map<number, { run: MicroBatchRun; sums: Map<string, Float32Array> }>();
  private readonly buffers = new RecycledBuffers();
  /** The allreduce input of the last {@link vector} call. */
  private input = new Float32Array(0);

  /** The step whose sums are held; -1 when none. */
  get step(): number {
    return this.heldStep;
  }

  /**
   * Keeps the sums of a share (micro-batches `microBatchIds`) the coordinator accepted as held. It keeps the
   * arrays themselves, not copies (a copy is a fresh gradient-sized buffer every step): the caller hands
   * them over and writes them no more (runTrainShare writes every share into a new {@link sumsBuffer}).
   */
  add(step: number, microBatchIds: readonly number[], tensors: readonly WireTensor[]): void {
    if (step !== this.heldStep) this.clear();
    this.heldStep = step;
    const run = { start: microBatchIds[0], end: microBatchIds[microBatchIds.length - 1] + 1 };
    this.shares.set(run.start, { run, sums: new Map(tensors.map((t) => [t.name, t.data as Float32Array])) });
  }

  /**
   * A buffer for the sums of the next share to be held: one a dropped share's sums were in (overwritten
   * whole by the caller), or a new one.
   */
  sumsBuffer(floats: number): Float32Array {
    return this.buffers.take(floats);
  }

  /**
   * The allreduce input: the held sums of each of `parts` (as the coordinator's ReduceSpec lists them for
   * this worker) laid out as `tensors`, back to back in one vector. It is the same buffer as the previous
   * call's when the size is the same: a view on an earlier call's vector (the last allreduce's result) is
   * overwritten, so that result must be applied or void by then. The worker applies a step's result before it
   * computes the next step's share, and a new attempt of the same step voids the one before.
   * @throws HeldSumsError when another step's sums are held, the parts are not the shares held, or a
   * tensor is missing or of another size.
   */
  vector(step: number, tensors: readonly WireTensorSpec[], parts: readonly MicroBatchRun[]): Float32Array {
    if (step !== this.heldStep) {
      throw new HeldSumsError(`allreduce of step ${step}: this worker holds ${this.heldStep < 0 ? 'no sums' : `the sums of step ${this.heldStep}`}`);
    }
    const text = (runs: readonly MicroBatchRun[]) => runs.map((r) => `[${r.start}, ${r.end})`).join(' ') || 'none';
    const held = [...this.shares.values()].map((s) => s.run).sort((a, b) => a.start - b.start);
    if (text(held) !== text(parts)) {
      throw new HeldSumsError(`allreduce of step ${step}: expected to hold micro-batches ${text(parts)}, this worker holds ${text(held)}`);
    }
    return this.layOut(step, tensors, parts.map((part) => this.shares.get(part.start)?.sums as Map<string, Float32Array>));
  }

  /**
   * The allreduce input of a share not held yet: its sums laid out as `tensors`, in the same recycled
   * buffer as {@link vector}'s (a planned attempt starts as the share is pushed, before it is accepted).
   * @throws HeldSumsError when a tensor is missing or of another size.
   */
  shareVector(step: number, tensors: readonly WireTensorSpec[], sums: readonly WireTensor[]): Float32Array {
    return this.layOut(step, tensors, [new Map(sums.map((t) => [t.name, t.data as Float32Array]))]);
  }

  /**
   * The buffer {@link shareVector} will lay a share's sums out in for `tensors`: a planned attempt starts
   * on it before the share is computed.
   */
  shareBuffer(tensors: readonly WireTensorSpec[]): Float32Array {
    return this.inputOf(totalElementCount(tensors));
  }

  /** The input buffer, `floats` long: the last one when it is, so a planned attempt's buffer is the one laid out in. */
  private inputOf(floats: number): Float32Array {
    if (this.input.length !== floats) this.input = new Float32Array(floats);
    return this.input;
  }

  /** `parts` (each a share's sums by tensor name) laid out as `tensors`, back to back in the input buffer. */
  private layOut(step: number, tensors: readonly WireTensorSpec[], parts: readonly Map<string, Float32Array>[]): Float32Array {
    const n = totalElementCount(tensors);
    const out = this.inputOf(parts.length * n);
    parts.forEach((sums, k) => {
      let at = k * n;
      for (const spec of tensors) {
        const size = elementCount(spec.shape);
        const values = sums.get(spec.name);
        if (!values || values.length !== size) {
          throw new HeldSumsError(`allreduce of step ${step}: expected ${size} held values of '${spec.name}', ` +
            `found ${values ? values.length : 'none'}`);
        }
        out.set(values, at);
        at += size;
      }
    });
    return out;
  }

  /** Drops every share held; their sums' buffers are handed out again by {@link sumsBuffer}. */
  clear(): void {
    for (const { sums } of this.shares.values()) for (const values of sums.values()) this.buffers.give(values.buffer);
    this.heldStep = -1;
    this.shares.clear();
  }
}
