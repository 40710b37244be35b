import { type ModelParts, namedVariables, type TrainerState, type WireTensor } from '../common';

/** How a worker's replica is brought to the coordinator's weights before it computes. */
export const UpdateKind = {
  /** Its weights are current. */
  None: 'none',
  /** It is one update behind: the new values of what the last update changed follow. */
  Weights: 'weights',
  /** It is further behind (or its hash disagreed): it must call GetWeights. */
  WeightsRef: 'weights-ref',
} as const;
export type UpdateKind = (typeof UpdateKind)[keyof typeof UpdateKind];

/** The update part of an assignment. */
export interface UpdatePayload {
  kind: UpdateKind;
  /** The global step whose update `tensors` hold (weightsVersion - 1); 0 when none follow. */
  updateStep: number;
  tensors: WireTensor[];
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

/** Prefix of optimizer slots in GetWeights and checkpoints: `optimizer/<slot>/<variable>`. */
export const OPTIMIZER_PREFIX = 'optimizer/';

/** The optimizer's slots as tensors named `optimizer/<slot>/<variable>`, and its iteration count. */
export function optimizerTensors(trainer: TrainerState): { iterations: number; tensors: WireTensor[] } {
  const state = trainer.optimizer.getState();
  const tensors: WireTensor[] = [];
  for (const [name, v] of state.variables) {
    for (const [slot, data] of Object.entries(v.slots)) {
      tensors.push({ name: `${OPTIMIZER_PREFIX}${slot}/${name}`, dtype: 'float32', shape: [...v.shape], data });
    }
  }
  return { iterations: state.step, tensors };
}

/**
 * The values the last update changed, captured once right after it (every worker one version behind
 * gets the same arrays), and the choice between sending them, nothing, or a reference to GetWeights.
 */
export class UpdateLog {
  private version = -1;
  private tensors: WireTensor[] = [];

  /** Records that update `weightsVersion` changed the variables `names` (by `originalName`). */
  record(weightsVersion: number, parts: ModelParts, names: ReadonlySet<string>): void {
    this.version = weightsVersion;
    this.tensors = modelTensors(parts).filter((t) => names.has(t.name));
  }

  /** Forgets the captured update (after a resume the previous update is unknown). */
  clear(): void {
    this.version = -1;
    this.tensors = [];
  }

  /**
   * What a worker whose replica is at `workerVersion` needs to reach `currentVersion`; `forceFull` sends
   * it to GetWeights whatever its version (its hash disagreed).
   */
  payloadFor(workerVersion: number, currentVersion: number, forceFull = false): UpdatePayload {
    if (!forceFull && workerVersion === currentVersion) return { kind: UpdateKind.None, updateStep: 0, tensors: [] };
    if (!forceFull && workerVersion === currentVersion - 1 && this.version === currentVersion) {
      return { kind: UpdateKind.Weights, updateStep: currentVersion - 1, tensors: this.tensors };
    }
    return { kind: UpdateKind.WeightsRef, updateStep: 0, tensors: [] };
  }
}

/** Payload bytes of tensors, for the sent-bytes counter. */
export function tensorBytes(tensors: readonly WireTensor[]): number {
  return tensors.reduce((n, t) => n + t.data.byteLength, 0);
}
