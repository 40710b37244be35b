import * as tf from '@tensorflow/tfjs';
import type { OptimizerName } from '../job';
import { OptimizerStateError, TrainingShapeError } from './errors';

/**
 * Everything an optimizer remembers about one variable. Kept as plain arrays so a coordinator can
 * ship it to a worker that joins late, or write it into a checkpoint.
 */
export interface VariableOptimizerState {
  /** Updates this variable has received; Adam's bias correction counts these, not global steps. */
  step: number;
  /** Shape of the variable (and of every slot). */
  shape: number[];
  /** Slot values by slot name (`momentum`; `m`, `v`), each as long as the variable. */
  slots: Record<string, Float32Array>;
}

/** The serialisable state of an optimizer. Variables never updated (frozen so far) have no entry. */
export interface OptimizerState {
  type: OptimizerName;
  /** `apply` calls so far (global optimizer steps). */
  step: number;
  variables: Map<string, VariableOptimizerState>;
}

/**
 * Our own optimizer contract. Unlike `tf.train.*` it takes the learning rate per variable on every
 * call (parameter groups, schedules and warm-up are decided by the caller), applies weight decay the
 * way the spec asks, and exposes its state as plain arrays.
 */
export interface Optimizer {
  readonly type: OptimizerName;
  /**
   * One update. `grads` holds, keyed by variable name, the gradient of the loss SUMMED over
   * `gradDivisor` samples; the update uses the mean, `grad / gradDivisor` in float32 (1: the gradients
   * are means already). A variable in `params` without a gradient (frozen) is left untouched, and so is
   * its optimizer state. Every gradient must name a variable in `params`.
   */
  apply(
    params: ReadonlyMap<string, tf.Variable>,
    grads: ReadonlyMap<string, tf.Tensor>,
    lrByVar: (name: string) => number,
    gradDivisor?: number,
  ): void;
  /** A deep copy of the state; safe to keep after further `apply` calls. */
  getState(): OptimizerState;
  /** Replaces the whole state (e.g. from a checkpoint or the coordinator). */
  setState(state: OptimizerState): void;
  /** Frees the slot tensors. */
  dispose(): void;
}

/** Result of one per-variable update rule: the new value of the variable and of each slot. */
export interface UpdateResult {
  value: tf.Tensor;
  slots: tf.Tensor[];
}

interface LiveVariableState {
  step: number;
  shape: number[];
  slots: tf.Variable[];
}

/**
 * Shared mechanics of slot-based optimizers: validation, lazy slot creation, tidy scoping, state
 * (de)serialisation. Subclasses only write the update rule for one variable.
 */
export abstract class SlotOptimizer implements Optimizer {
  abstract readonly type: OptimizerName;
  /** Names of the per-variable slots, in the order `update` receives and returns them. */
  protected abstract readonly slotNames: readonly string[];
  private readonly live = new Map<string, LiveVariableState>();
  private steps = 0;

  /**
   * The update rule, from the gradient summed over `gradDivisor` samples (a fused kernel divides as it
   * reads; composed ops start with {@link meanGradient}). `t` is the 1-based update count of this
   * variable. Runs inside `tf.tidy`; the returned tensors are assigned by the caller.
   */
  protected abstract update(value: tf.Tensor, grad: tf.Tensor, slots: tf.Tensor[], lr: number, t: number, gradDivisor: number): UpdateResult;

  apply(
    params: ReadonlyMap<string, tf.Variable>,
    grads: ReadonlyMap<string, tf.Tensor>,
    lrByVar: (name: string) => number,
    gradDivisor = 1,
  ): void {
    if (!(Number.isInteger(gradDivisor) && gradDivisor >= 1)) {
      throw new OptimizerStateError(`expected a gradient divisor (sample count) that is an integer >= 1, got ${gradDivisor}`);
    }
    // Validate everything first so a bad message cannot leave the model half-updated.
    const lrs = new Map<string, number>();
    for (const [name, grad] of grads) {
      const param = params.get(name);
      if (param === undefined) {
        throw new OptimizerStateError(`gradient for ${name}, but the model has no such trainable variable`, {
          variable: name,
        });
      }
      if (!sameShape(param.shape, grad.shape)) {
        throw new TrainingShapeError(`grad ${name}`, `expected shape [${param.shape}], got [${grad.shape}]`);
      }
      const known = this.live.get(name);
      if (known !== undefined && !sameShape(known.shape, param.shape)) {
        throw new OptimizerStateError(
          `state of ${name} has shape [${known.shape}], variable has [${param.shape}]`, { variable: name });
      }
      const lr = lrByVar(name);
      if (!Number.isFinite(lr) || lr < 0) {
        throw new OptimizerStateError(`expected a finite learning rate >= 0 for ${name}, got ${lr}`, { variable: name });
      }
      lrs.set(name, lr);
    }
    tf.tidy(() => {
      for (const [name, grad] of grads) {
        const param = params.get(name) as tf.Variable;
        let state = this.live.get(name);
        if (state === undefined) {
          state = {
            step: 0,
            shape: [...param.shape],
            slots: this.slotNames.map((s) => tf.variable(tf.zerosLike(param), false, `${name}.${s}.${slotId++}`)),
          };
          this.live.set(name, state);
        }
        const t = state.step + 1;
        const g = grad.dtype === 'float32' ? grad : tf.cast(grad, 'float32');
        const out = this.update(param, g, state.slots, lrs.get(name) as number, t, gradDivisor);
        param.assign(out.value);
        out.slots.forEach((s, i) => state.slots[i].assign(s));
        state.step = t;
      }
    });
    this.steps++;
  }

  getState(): OptimizerState {
    const variables = new Map<string, VariableOptimizerState>();
    for (const [name, s] of this.live) {
      const slots: Record<string, Float32Array> = {};
      this.slotNames.forEach((slotName, i) => {
        slots[slotName] = Float32Array.from(s.slots[i].dataSync() as Float32Array);
      });
      variables.set(name, { step: s.step, shape: [...s.shape], slots });
    }
    return { type: this.type, step: this.steps, variables };
  }

  setState(state: OptimizerState): void {
    if (state.type !== this.type) {
      throw new OptimizerStateError(`expected state of a ${this.type} optimizer, got ${state.type}`);
    }
    // Build the new slots completely before dropping the old ones: a bad state changes nothing.
    const next = new Map<string, LiveVariableState>();
    try {
      for (const [name, v] of state.variables) {
        const size = v.shape.reduce((a, b) => a * b, 1);
        const slots: tf.Variable[] = [];
        next.set(name, { step: v.step, shape: [...v.shape], slots });
        for (const slotName of this.slotNames) {
          const values = v.slots[slotName];
          if (values === undefined) {
            throw new OptimizerStateError(`state of ${name} lacks slot ${slotName}`, { variable: name });
          }
          if (values.length !== size) {
            throw new TrainingShapeError(`slot ${name}.${slotName}`,
              `expected ${size} values for shape [${v.shape}], got ${values.length}`);
          }
          const slotVarName = `${name}.${slotName}.${slotId++}`;
          // tidy drops the temporary tensor; the variable keeps its own reference to the data.
          slots.push(tf.tidy(() => tf.variable(tf.tensor(Float32Array.from(values), v.shape, 'float32'), false, slotVarName)));
        }
      }
    } catch (err) {
      for (const s of next.values()) s.slots.forEach((t) => t.dispose());
      throw err;
    }
    this.disposeSlots();
    for (const [name, s] of next) this.live.set(name, s);
    this.steps = state.step;
  }

  dispose(): void {
    this.disposeSlots();
  }

  private disposeSlots(): void {
    for (const s of this.live.values()) s.slots.forEach((t) => t.dispose());
    this.live.clear();
  }
}

/**
 * The mean gradient the composed (unfused) update rules start from: `tf.div(sum, gradDivisor)`, the same
 * float32 division the fused kernels do as they read the sum. A divisor of 1 divides exactly, so it is skipped.
 */
export function meanGradient(grad: tf.Tensor, gradDivisor: number): tf.Tensor {
  return gradDivisor === 1 ? grad : tf.div(grad, gradDivisor);
}

// tfjs variable names are global; a counter keeps slot names unique across optimizers in a process.
let slotId = 0;

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
