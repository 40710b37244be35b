import * as tf from '@tensorflow/tfjs';
import { batchNormTraining } from './wasm-batch-norm-training';

/**
 * Routes tfjs-layers' BatchNormalization in training mode through the one-kernel batch norm
 * (wasm-batch-norm-training.ts) where the backend has it; everything else (inference mode, other backends,
 * a normalised axis other than the last, a layer without scale or offset) runs the stock code. The moving
 * statistics are updated with the stock layer's own ops (`m - (m - batch)·(1 - momentum)`), so only the
 * normalisation and its gradient change: the same maths, fewer passes.
 */

/** The fields of tfjs-layers' BatchNormalization that training mode reads (public in its JavaScript). */
interface BatchNormLayer {
  axis: number;
  momentum: number;
  epsilon: number;
  gamma: tf.LayerVariable | null;
  beta: tf.LayerVariable | null;
  movingMean: tf.LayerVariable;
  movingVariance: tf.LayerVariable;
}

type LayerCall = (this: BatchNormLayer, inputs: tf.Tensor | tf.Tensor[], kwargs: { training?: boolean }) => tf.Tensor | tf.Tensor[];

// Marks our wrapper, so patching twice never wraps it again.
const OURS = Symbol('shardwise.compute.batchNormLayer');

/** The stock layer's moving average: `variable -= (variable - value)·(1 - momentum)`. */
function movingAverage(variable: tf.LayerVariable, value: tf.Tensor, momentum: number): void {
  tf.tidy(() => {
    const current = variable.read();
    variable.write(tf.sub(current, tf.mul(tf.sub(current, value), 1 - momentum)));
  });
}

/** Patches BatchNormalization's `call` (every instance, present and future). Idempotent. */
export function routeBatchNormTraining(): void {
  const proto = Object.getPrototypeOf(tf.layers.batchNormalization({})) as { call: LayerCall & { [OURS]?: boolean } };
  if (proto.call[OURS]) return;
  const stock = proto.call;
  const call: LayerCall = function (this: BatchNormLayer, inputs, kwargs) {
    const input = Array.isArray(inputs) && inputs.length === 1 ? inputs[0] : inputs;
    const { gamma, beta } = this;
    if (kwargs?.training !== true || Array.isArray(input) || !gamma || !beta || input.dtype !== 'float32' || input.rank < 2 ||
      (this.axis !== -1 && this.axis !== input.rank - 1)) {
      return stock.call(this, inputs, kwargs);
    }
    return tf.tidy(() => {
      const out = batchNormTraining(input, gamma.read(), beta.read(), this.epsilon);
      if (!out) return stock.call(this, inputs, kwargs) as tf.Tensor;
      const [y, mean, variance] = out;
      movingAverage(this.movingMean, mean, this.momentum);
      movingAverage(this.movingVariance, variance, this.momentum);
      return y;
    });
  };
  (call as { [OURS]?: boolean })[OURS] = true;
  proto.call = call;
}
