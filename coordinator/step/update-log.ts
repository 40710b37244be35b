import { type ApplyOrder, type ModelParts, namedVariables, OPTIMIZER_PREFIX, RecycledBuffers, type TrainerState, UpdateKind, type WireTensor } from '../../common';

/** The update part of an assignment. */
export interface UpdatePayload {
  kind: UpdateKind;
  /** The global step whose update `tensors` hold (weightsVersion - 1); 0 when none follow. */
  updateStep: number;
  tensors: WireTensor[];
  /** Present with kind `apply`. */
  apply?: ApplyOrder;
}

/** An update that came from an allreduce: its order, the workers that hold its sums, and the sums. */
export interface ReducedUpdate {
  order: ApplyOrder;
  members: ReadonlySet<string>;
  /**
   * The reduced sums the update applied (the gradient sums, then the BatchNorm statistic deltas), sent to
   * a worker that replays updates but was no member: it applies them as the members did. Views on the
   * allreduce's vector (from {@link UpdateLog.vector}).
   */
  sums: WireTensor[];
}

/** Every variable of the model (trainable and BatchNorm statistics) by `originalName`, in model order. */
export function modelTensors(parts: ModelParts): WireTensor[] {
  const named = namedVariables(parts);
  return [...named.backbone, ...named.head].map((v) => ({
    name: v.originalName,
    dtype: 'float32' as const,
    shape: [...v.shape] as number[],
    data: v.read().dataSync() as Float32Array,
  }));
}

/** The optimizer's slots as tensors named `optimizer/<slot>/<variable>`, its iteration count and each variable's. */
export function optimizerTensors(trainer: TrainerState): { iterations: number; tensors: WireTensor[]; variableSteps: Record<string, number> } {
  const state = trainer.optimizer.getState();
  const tensors: WireTensor[] = [];
  const variableSteps: Record<string, number> = {};
  for (const [name, v] of state.variables) {
    variableSteps[name] = v.step;
    for (const [slot, data] of Object.entries(v.slots)) {
      tensors.push({ name: `${OPTIMIZER_PREFIX}${slot}/${name}`, dtype: 'float32', shape: [...v.shape], data });
    }
  }
  return { iterations: state.step, tensors, variableSteps };
}

/**
 * The values the last update changed, captured once, when the first worker one version behind needs them
 * (every such worker gets the same arrays; after an allreduce usually none does), and the choice between
 * sending them, nothing, or a reference to GetWeights.
 *
 * It also hands out the allreduce vectors, since it is their last reader: a reduced update's vector is
 * handed out again once a later update replaces it, unless its sums were sent to a worker (a message may
 * still be reading them).
 */
export class UpdateLog {
  private version = -1;
  private capture: (() => WireTensor[]) | undefined;
  private captured: WireTensor[] | undefined;
  private reduced: ReducedUpdate | undefined;
  /** The reduced update's sums went out in a message: its vector is not handed out again. */
  private reducedSent = false;
  private readonly vectors = new RecycledBuffers();

  /**
   * A vector of `floats` for an allreduce: one a replaced update's sums were in (its old values still in
   * it), or a new one.
   */
  vector(floats: number): Float32Array {
    return this.vectors.take(floats);
  }

  /**
   * Records update `weightsVersion`: `capture` reads the values it changed (called at most once, before
   * the next `record`), and, when it came from an allreduce, how it was applied: its members then replay
   * it instead of copying weights.
   */
  record(weightsVersion: number, capture: () => WireTensor[], reduced?: ReducedUpdate): void {
    this.release();
    this.version = weightsVersion;
    this.capture = capture;
    this.captured = undefined;
    this.reduced = reduced;
  }

  /** Forgets the captured update (after a resume the previous update is unknown). */
  clear(): void {
    this.release();
    this.version = -1;
    this.capture = undefined;
    this.captured = undefined;
    this.reduced = undefined;
  }

  /** The reduced update is dropped: its vector may be handed out again unless its sums were sent. */
  private release(): void {
    const buffer = this.reduced?.sums[0]?.data.buffer;
    if (buffer && !this.reducedSent) this.vectors.give(buffer);
    this.reducedSent = false;
  }

  /**
   * What a worker whose replica is at `workerVersion` needs to reach `currentVersion`; `forceFull` sends
   * it to GetWeights whatever its version (its hash disagreed). An update from an allreduce is replayed
   * (APPLY) by its members on the sums they hold, and by any other worker that `replays` (it keeps the
   * optimizer state: it has a data plane) on the sums sent with it: a copy of the new values would leave
   * that worker's optimizer state behind, and its next APPLY would then need a full GetWeights.
   */
  payloadFor(workerVersion: number, currentVersion: number, forceFull = false, workerId = '', replays = false): UpdatePayload {
    if (!forceFull && workerVersion === currentVersion) return { kind: UpdateKind.None, updateStep: 0, tensors: [] };
    if (!forceFull && workerVersion === currentVersion - 1 && this.version === currentVersion) {
      const reduced = this.reduced;
      if (reduced && (reduced.members.has(workerId) || replays)) {
        const tensors = reduced.members.has(workerId) ? [] : reduced.sums;
        if (tensors.length > 0) this.reducedSent = true;
        return { kind: UpdateKind.Apply, updateStep: currentVersion - 1, tensors, apply: reduced.order };
      }
      this.captured ??= this.capture?.() ?? [];
      return { kind: UpdateKind.Weights, updateStep: currentVersion - 1, tensors: this.captured };
    }
    return { kind: UpdateKind.WeightsRef, updateStep: 0, tensors: [] };
  }
}

/** Payload bytes of tensors, for the sent-bytes counter. */
export function tensorBytes(tensors: readonly WireTensor[]): number {
  return tensors.reduce((n, t) => n + t.data.byteLength, 0);
}
