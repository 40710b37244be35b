import * as tf from '@tensorflow/tfjs';
import { fusedSgdUpdate } from '../compute';
import { meanGradient, SlotOptimizer, type UpdateResult } from './optimizer-base';

/** Hyper-parameters of {@link SgdOptimizer}. */
export interface SgdOptions {
  /** 0 disables the momentum buffer (plain SGD, no state). */
  momentum: number;
  nesterov: boolean;
  /** L2 penalty: `wd * w` is added to the gradient before momentum (PyTorch `SGD(weight_decay)`). */
  weightDecay: number;
}

/**
 * SGD with optional (Nesterov) momentum, PyTorch semantics, which tf.train.momentum shares:
 * `g' = g + wd*w; buf = momentum*buf + g'; w -= lr * (nesterov ? g' + momentum*buf : buf)`.
 * No dampening. The buffer starts at zero, so the first step is `buf = g'` as in PyTorch.
 */
export class SgdOptimizer extends SlotOptimizer {
  readonly type = 'sgd' as const;
  protected readonly slotNames: readonly string[];

  constructor(private readonly options: SgdOptions) {
    super();
    this.slotNames = options.momentum > 0 ? ['momentum'] : [];
  }

  protected update(value: tf.Tensor, gradSum: tf.Tensor, slots: tf.Tensor[], lr: number, _t: number, gradDivisor: number): UpdateResult {
    const { momentum, nesterov, weightDecay } = this.options;
    // One kernel (the same float32 operations, so the same bits) where the backend has it: wasm.
    const fused = fusedSgdUpdate(value, gradSum, slots[0], {
      l2: weightDecay > 0, momentum: momentum > 0, nesterov, momentumFactor: momentum, lr, weightDecay, gradDivisor,
    });
    if (fused) return { value: fused[0], slots: fused.slice(1) };
    const grad = meanGradient(gradSum, gradDivisor);
    const g = weightDecay > 0 ? tf.add(grad, tf.mul(value, weightDecay)) : grad;
    if (momentum <= 0) return { value: tf.sub(value, tf.mul(g, lr)), slots: [] };
    const buf = tf.add(tf.mul(slots[0], momentum), g);
    const direction = nesterov ? tf.add(g, tf.mul(buf, momentum)) : buf;
    return { value: tf.sub(value, tf.mul(direction, lr)), slots: [buf] };
  }
}
