import * as tf from '@tensorflow/tfjs';
import { batchNormTraining } from './wasm-batch-norm-training';
import { movingAverages } from './wasm-moving-average';

/**
 * Routes tfjs-layers' BatchNormalization in training mode through the one-kernel batch norm
 * (wasm-batch-norm-training.ts) where the backend has it; everything else (inference mode, other backends,
 * a normalised axis other than the last, a layer without scale or offset) runs the stock code. The moving
 * statistics are updated by the stock layer's formula (`m - (m - batch)·(1 - momentum)`), in one kernel for
 * both (wasm-moving-average.ts), so only the number of passes and dispatches changes: the same maths.
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

/** Writes both moving statistics of `layer` moved towards the batch's `mean` and `variance`. */
function updateMovingStatistics(layer: BatchNormLayer, mean: tf.Tensor, variance: tf.Tensor): void {
  tf.tidy(() => {
    const moving = { mean: layer.movingMean.read(), variance: layer.movingVariance.read() };
    const [nextMean, nextVariance] = movingAverages(moving, { mean, variance }, layer.momentum);
    layer.movingMean.write(nextMean);
    layer.movingVariance.write(nextVariance);
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
      updateMovingStatistics(this, mean, variance);
      return y;
    });
  };
  (call as { [OURS]?: boolean })[OURS] = true;
  proto.call = call;
}
