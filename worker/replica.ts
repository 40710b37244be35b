import * as tf from '@tensorflow/tfjs';
import {
  type JobSpec,
  type ModelParts,
  type WireTensor,
  buildModel,
  disposeModelParts,
  modelFingerprint,
  namedVariables,
  weightsHash,
} from '../common';
import { ReplicaUpdateError } from './errors';

/** Weights version of a replica that has not loaded the coordinator's weights yet. */
export const NOT_LOADED = -1;

/**
 * The worker's copy of the model. It never trains on its own: it holds exactly the coordinator's
 * weights at `weightsVersion` (the number of updates applied), loaded in full by GetWeights and then
 * moved forward one update at a time by the WEIGHTS deltas that come with assignments. Variables are
 * addressed by `originalName`, the one name that is the same in every process.
 */
export class Replica {
  /** modelFingerprint() of the parts: what GetWeights must match. */
  readonly fingerprint: string;
  private readonly variables: ReadonlyMap<string, tf.LayerVariable>;
  private version = NOT_LOADED;
  private disposed = false;

  constructor(readonly parts: ModelParts) {
    const named = namedVariables(parts);
    this.variables = new Map([...named.backbone, ...named.head].map((v) => [v.originalName, v]));
    this.fingerprint = modelFingerprint(parts);
  }

  /** Builds the model the job spec describes (its initial values are replaced by GetWeights). */
  static async build(spec: JobSpec): Promise<Replica> {
    return new Replica(await buildModel(spec.model, spec.seed));
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
  loadFull(tensors: ReadonlyMap<string, WireTensor>, globalStep: number): void {
    const missing = [...this.variables.keys()].filter((name) => !tensors.has(name));
    if (missing.length > 0) {
      throw new ReplicaUpdateError(missing[0], `expected a value for each of the model's ${this.variables.size} variables, ` +
        `the coordinator's copy lacks ${missing.length}: '${missing.slice(0, 5).join("', '")}'${missing.length > 5 ? ', …' : ''}`);
    }
    this.write(tensors);
    this.version = globalStep;
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
