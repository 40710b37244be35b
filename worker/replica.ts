import * as tf from '@tensorflow/tfjs';
import {
  type ApplyOrder,
  type JobSpec,
  type ModelParts,
  type OptimizerSpec,
  type WireTensor,
  buildModel,
  disposeModelParts,
  modelFingerprint,
  namedVariables,
  OPTIMIZER_PREFIX,
  weightsHash,
} from '../common';
import { ReplicaUpdateError } from './errors';
import type { ReducedSums } from './held-sums';
import { UpdateReplay } from './update-replay';

/** Weights version of a replica that has not loaded the coordinator's weights yet. */
export const NOT_LOADED = -1;

/**
 * The worker's copy of the model. It never trains on its own: it holds exactly the coordinator's
 * weights at `weightsVersion` (the number of updates applied), loaded in full by GetWeights and then
 * moved forward one update at a time: under the allreduce by applying the reduced sums with its own
 * optimizer copy as the coordinator did (`applyReduced`, an APPLY update), under the parameter server by
 * the WEIGHTS values that come with assignments (`applyUpdate`). Variables are
 * addressed by `originalName`, the one name that is the same in every process.
 */
export class Replica {
  /** modelFingerprint() of the parts: what GetWeights must match. */
  readonly fingerprint: string;
  private readonly variables: ReadonlyMap<string, tf.LayerVariable>;
  private version = NOT_LOADED;
  private disposed = false;
  /** The optimizer copy allreduce members apply updates with; absent without an optimizer spec. */
  private readonly replay: UpdateReplay | undefined;

  constructor(readonly parts: ModelParts, optimizer?: OptimizerSpec) {
    const named = namedVariables(parts);
    this.variables = new Map([...named.backbone, ...named.head].map((v) => [v.originalName, v]));
    this.fingerprint = modelFingerprint(parts);
    this.replay = optimizer && new UpdateReplay(parts, optimizer);
  }

  /** Builds the model the job spec describes (its initial values are replaced by GetWeights). */
  static async build(spec: JobSpec): Promise<Replica> {
    return new Replica(await buildModel(spec.model, spec.seed), spec.optimizer);
  }

  /** Updates applied to these weights, as the coordinator counts them; NOT_LOADED before the first load. */
  get weightsVersion(): number {
    return this.version;
  }

  /** Whether a full copy was loaded. */
  get loaded(): boolean {
    return this.version !== NOT_LOADED;
  }

  /** Names of every variable (trainable and BatchNorm statistics), in model order. */
  get variableNames(): string[] {
    return [...this.variables.keys()];
  }

  /**
   * Replaces every variable with the coordinator's values (GetWeights): the copy must name each
   * variable of the model exactly once with its shape. Nothing is written unless all of it fits.
   */
  loadFull(all: ReadonlyMap<string, WireTensor>, globalStep: number, optimizer?: { iterations: number; variableSteps: Record<string, number> }): void {
    const tensors = new Map([...all].filter(([name]) => !name.startsWith(OPTIMIZER_PREFIX)));
    const missing = [...this.variables.keys()].filter((name) => !tensors.has(name));
    if (missing.length > 0) {
      throw new ReplicaUpdateError(missing[0], `expected a value for each of the model's ${this.variables.size} variables, ` +
        `the coordinator's copy lacks ${missing.length}: '${missing.slice(0, 5).join("', '")}'${missing.length > 5 ? ', …' : ''}`);
    }
    this.write(tensors);
    this.version = globalStep;
    if (optimizer && this.replay) {
      this.replay.load(new Map([...all].filter(([name]) => name.startsWith(OPTIMIZER_PREFIX))), optimizer, globalStep);
    } else {
      this.replay?.invalidate();
    }
  }

  /** Whether this replica can apply the update after its current version itself (its optimizer state is current). */
  get canReplay(): boolean {
    return this.loaded && this.replay !== undefined && this.replay.currentAt(this.version);
  }

  /**
   * Applies an allreduce's sums with its own optimizer, as the coordinator did: the replica moves to the
   * next version. @throws ReplicaUpdateError when it cannot (stale optimizer state, other sums).
   */
  applyReduced(reduced: ReducedSums, order: ApplyOrder, newVersion: number): void {
    if (!this.replay || !this.canApplyUpdate(newVersion)) {
      throw new ReplicaUpdateError('', `expected an update to version ${this.version + 1} with an optimizer, got one to version ${newVersion}`);
    }
    this.replay.apply(reduced, order, this.version);
    this.version = newVersion;
  }

  /**
   * Applies an allreduce's update from the reduced sums the coordinator sent (this worker was no member
   * of it), as a member applies its own: the replica moves to the next version with its optimizer state.
   * @throws ReplicaUpdateError when it cannot (stale optimizer state, sums of other shapes).
   */
  applySentSums(sums: ReadonlyMap<string, WireTensor>, order: ApplyOrder, newVersion: number): void {
    if (!this.replay) throw new ReplicaUpdateError('', `expected an optimizer to apply the update to version ${newVersion} with, the job has none`);
    this.applyReduced(this.replay.reducedFrom(order.key, newVersion - 1, sums), order, newVersion);
  }

  /**
   * Applies one update (the WEIGHTS tensors of an assignment): the new values of the variables that
   * update changed. Only valid on the version just before it; the caller fetches a full copy otherwise.
   */
  applyUpdate(tensors: ReadonlyMap<string, WireTensor>, newVersion: number): void {
    if (!this.canApplyUpdate(newVersion)) {
      throw new ReplicaUpdateError('', `expected an update to version ${this.version + 1}, got one to version ${newVersion}`);
    }
    this.write(tensors);
    this.version = newVersion;
    this.replay?.invalidate();
  }

  /** Whether the update that produces `newVersion` applies to these weights (they are one behind it). */
  canApplyUpdate(newVersion: number): boolean {
    return this.loaded && newVersion === this.version + 1;
  }

  /** weightsHash() of the replica: equal to the coordinator's exactly when the bytes are identical. */
  hash(): string {
    return weightsHash(this.parts);
  }

  /** Frees the model; the replica is unusable afterwards. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.replay?.dispose();
    disposeModelParts(this.parts);
  }

  /** Checks every tensor against its variable, then writes them all (all or nothing). */
  private write(tensors: ReadonlyMap<string, WireTensor>): void {
    for (const [name, t] of tensors) {
      const v = this.variables.get(name);
      if (!v) {
        throw new ReplicaUpdateError(name, `the coordinator sent a value for '${name}', which this model does not have ` +
          '(expected only variables of the model the job spec describes)');
      }
      if (t.dtype !== 'float32' || !sameShape(t.shape, v.shape)) {
        throw new ReplicaUpdateError(name, `variable '${name}': expected float32 [${v.shape.join(',')}], ` +
          `got ${t.dtype} [${t.shape.join(',')}]`);
      }
    }
    tf.tidy(() => {
      for (const [name, t] of tensors) {
        (this.variables.get(name) as tf.LayerVariable).write(tf.tensor(t.data as Float32Array, [...t.shape], 'float32'));
      }
    });
  }
}

function sameShape(a: readonly number[], b: readonly (number | null)[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
