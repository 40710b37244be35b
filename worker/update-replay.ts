import * as tf from '@tensorflow/tfjs';
import {
  applyGradientMeans,
  applyMovingStatDeltas,
  type ApplyOrder,
  createOptimizer,
  elementCount,
  type ModelParts,
  type OptimizerSpec,
  type OptimizerState,
  OPTIMIZER_PREFIX,
  type UpdateTarget,
  type WireTensor,
  trainableVariables,
} from '../common';
import type { ReducedSums } from './held-sums';
import { ReplicaUpdateError } from './errors';

/**
 * The worker's copy of the coordinator's optimizer, so an allreduce member applies each update itself (as
 * DDP replicas do) instead of receiving the new weights: the same `applyGradientMeans` and
 * `applyMovingStatDeltas` on the same reduced bytes. Its state is only trusted at the weights version it
 * was loaded or last advanced at; a replica moved any other way (a WEIGHTS copy) needs a fresh load.
 */
export class UpdateReplay {
  private readonly target: UpdateTarget;
  private version = -1;

  constructor(private readonly parts: ModelParts, spec: OptimizerSpec) {
    const vars = trainableVariables(parts);
    this.target = {
      optimizer: createOptimizer(spec),
      params: new Map(vars.map((v) => [v.key, v.variable])),
      groupOf: new Map(vars.map((v) => [v.key, v.group])),
    };
  }

  /** Whether the state is the coordinator's at `weightsVersion`. */
  currentAt(weightsVersion: number): boolean {
    return this.version === weightsVersion;
  }

  /** Loads the coordinator's state (GetWeights with optimizer state) for weights version `weightsVersion`. */
  load(tensors: ReadonlyMap<string, WireTensor>, info: { iterations: number; variableSteps: Record<string, number> }, weightsVersion: number): void {
    const variables: OptimizerState['variables'] = new Map();
    for (const [name, t] of tensors) {
      const rest = name.slice(OPTIMIZER_PREFIX.length);
      const slash = rest.indexOf('/');
      const slot = rest.slice(0, slash);
      const variable = rest.slice(slash + 1);
      const entry = variables.get(variable) ?? { step: Number(info.variableSteps[variable] ?? 0), shape: [...t.shape], slots: {} };
      entry.slots[slot] = Float32Array.from(t.data as Float32Array);
      variables.set(variable, entry);
    }
    const type = this.target.optimizer.type;
    this.target.optimizer.setState({ type, step: Number(info.iterations), variables });
    this.version = weightsVersion;
  }

  /**
   * The reduced sums of allreduce `key` (update `step`) as the coordinator sent them to a worker that was
   * no member of it, laid out as a member holds them: the gradient sums (the tensors named after a
   * trainable variable), then the statistic deltas.
   * @throws ReplicaUpdateError when a tensor is not float32.
   */
  reducedFrom(key: string, step: number, sums: ReadonlyMap<string, WireTensor>): ReducedSums {
    const all = [...sums.values()];
    for (const t of all) {
      if (t.dtype !== 'float32') throw new ReplicaUpdateError(t.name, `reduced sums of '${t.name}': expected float32, got ${t.dtype}`);
    }
    const grads = all.filter((t) => this.target.params.has(t.name));
    const ordered = [...grads, ...all.filter((t) => !this.target.params.has(t.name))];
    const vector = new Float32Array(ordered.reduce((n, t) => n + t.data.length, 0));
    let at = 0;
    for (const t of ordered) {
      vector.set(t.data as Float32Array, at);
      at += t.data.length;
    }
    const tensors = ordered.map((t) => ({ name: t.name, dtype: 'float32' as const, shape: [...t.shape] }));
    return { key, step, tensors, gradientTensorCount: grads.length, vector };
  }

  /** Marks the state stale (the weights moved without it). */
  invalidate(): void {
    this.version = -1;
  }

  /**
   * Applies the reduced sums as the coordinator did, moving the weights from `fromVersion` to the next.
   * @throws ReplicaUpdateError when the state is not current or the sums are not the instruction's.
   */
  apply(reduced: ReducedSums, order: ApplyOrder, fromVersion: number): void {
    if (this.version !== fromVersion) {
      throw new ReplicaUpdateError('', `the optimizer state is at weights v${this.version}, the update starts at v${fromVersion}`);
    }
    if (reduced.key !== order.key) {
      throw new ReplicaUpdateError('', `the update applies allreduce ${order.key}, this worker holds ${reduced.key}`);
    }
    const grads = new Map<string, tf.Tensor>();
    const deltas = new Map<string, tf.Tensor>();
    let at = 0;
    try {
      reduced.tensors.forEach((spec, i) => {
        const n = elementCount(spec.shape);
        const t = tf.tensor(reduced.vector.subarray(at, at + n), [...spec.shape], 'float32');
        (i < reduced.gradientTensorCount ? grads : deltas).set(spec.name, t);
        at += n;
      });
      applyGradientMeans(this.target, grads, order.sampleCount, order.learningRates);
      applyMovingStatDeltas(this.parts, deltas, order.microBatchCount);
    } finally {
      tf.dispose([...grads.values(), ...deltas.values()]);
    }
    this.version = fromVersion + 1;
  }

  dispose(): void {
    this.target.optimizer.dispose();
  }
}
