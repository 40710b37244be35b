import * as tf from '@tensorflow/tfjs';
import { type AdamDecay, fusedAdamUpdate } from '../compute';
import { meanGradient, SlotOptimizer, type UpdateResult } from './optimizer-base';

/** Hyper-parameters of {@link AdamOptimizer}. */
export interface AdamOptions {
  beta1: number;
  beta2: number;
  epsilon: number;
  weightDecay: number;
  /**
   * false: Adam with L2 (`wd * w` added to the gradient, so it is rescaled by the adaptive step).
   * true: AdamW, decay decoupled from the gradient: `w -= lr * wd * w` before the Adam step.
   */
  decoupledWeightDecay: boolean;
}

/**
 * Adam / AdamW with PyTorch semantics, which tf.train.adam shares:
 * `m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2; w -= lr * (m/(1-b1^t)) / (sqrt(v/(1-b2^t)) + eps)`.
 * Epsilon is added to the square root of the BIAS-CORRECTED second moment (PyTorch, tfjs), not to
 * `sqrt(v)` as Keras/TF2 do; the two differ only while `sqrt(v)` is comparable to `eps`.
 * `t` counts the updates of each variable, so a backbone unfrozen at epoch 3 starts its bias
 * correction at t=1 instead of inheriting the head's step count.
 */
export class AdamOptimizer extends SlotOptimizer {
  readonly type: 'adam' | 'adamw';
  protected readonly slotNames = ['m', 'v'] as const;

  constructor(private readonly options: AdamOptions) {
    super();
    this.type = options.decoupledWeightDecay ? 'adamw' : 'adam';
  }

  protected update(value: tf.Tensor, gradSum: tf.Tensor, slots: tf.Tensor[], lr: number, t: number, gradDivisor: number): UpdateResult {
    const { beta1, beta2, epsilon, weightDecay, decoupledWeightDecay } = this.options;
    const decayMode: AdamDecay = weightDecay > 0 ? (decoupledWeightDecay ? 'decoupled' : 'l2') : 'none';
    // One kernel (the same float32 operations, so the same bits) where the backend has it: wasm.
    const fused = fusedAdamUpdate(value, gradSum, slots[0], slots[1], { decayMode, beta1, beta2, epsilon, lr, weightDecay, t, gradDivisor });
    if (fused) return { value: fused[0], slots: [fused[1], fused[2]] };
    const grad = meanGradient(gradSum, gradDivisor);
    const g = weightDecay > 0 && !decoupledWeightDecay ? tf.add(grad, tf.mul(value, weightDecay)) : grad;
    const m = tf.add(tf.mul(slots[0], beta1), tf.mul(g, 1 - beta1));
    const v = tf.add(tf.mul(slots[1], beta2), tf.mul(tf.square(g), 1 - beta2));
    const mHat = tf.div(m, 1 - Math.pow(beta1, t));
    const vHat = tf.div(v, 1 - Math.pow(beta2, t));
    const decayed = weightDecay > 0 && decoupledWeightDecay ? tf.mul(value, 1 - lr * weightDecay) : value;
    const next = tf.sub(decayed, tf.mul(tf.div(mHat, tf.add(tf.sqrt(vHat), epsilon)), lr));
    return { value: next, slots: [m, v] };
  }
}
