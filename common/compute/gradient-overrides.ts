import * as tf from '@tensorflow/tfjs';
import { BROADCAST_MIDDLE_KERNEL, type BroadcastMiddleAttrs } from './wasm-axis-sum';
import { poolableReduction } from './wasm-reductions';

/**
 * Gradients that tfjs computes with boolean tensors or tf.ones. On wasm the comparison ops and
 * the bool-to-float cast run a generic loop (~1.7 ms each for a 2 MB activation) and tf.ones
 * builds its values in JS and uploads them (~1.5 ms); Step, Sub, Mul and Fill produce the same
 * numbers at ~0.05-0.15 ms. These replace the stock gradients for every backend: same maths.
 */

/** Sums `grad` over the axes along which `input` was broadcast, back to `input`'s shape. */
function unbroadcast(grad: tf.Tensor, input: tf.Tensor): tf.Tensor {
  const axes = tf.broadcast_util.getReductionAxes(input.shape, grad.shape);
  return tf.reshape(axes.length > 0 ? tf.sum(grad, axes) : grad, input.shape);
}

/** 1 where a > b, else 0 (NaN where either is NaN), as float32, broadcast. */
function greaterMask(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  return tf.step(tf.sub(a, b));
}

/** Relu6: dy where 0 < x <= 6 (step(x) - step(x - 6)), else 0. */
export const relu6GradConfig: tf.GradConfig = {
  kernelName: tf.Relu6,
  inputsToSave: ['x'],
  gradFunc: (dy, saved) => {
    const [x] = saved;
    return { x: () => tf.mul(dy as tf.Tensor, tf.sub(tf.step(x), greaterMask(x, tf.scalar(6)))) };
  },
};

/**
 * Minimum: dy flows to a where a <= b, else to b (tfjs's tie rule). tfjs-layers' 'relu6'
 * activation is minimum(6, relu(x)), so this runs once per MobileNet layer.
 */
export const minimumGradConfig: tf.GradConfig = {
  kernelName: tf.Minimum,
  inputsToSave: ['a', 'b'],
  gradFunc: (dy, saved) => {
    const [a, b] = saved;
    return {
      a: () => unbroadcast(tf.mul(dy as tf.Tensor, tf.sub(tf.scalar(1), greaterMask(a, b))), a),
      b: () => unbroadcast(tf.mul(dy as tf.Tensor, greaterMask(a, b)), b),
    };
  },
};

/** Maximum: dy flows to a where a >= b, else to b (tfjs's tie rule). */
export const maximumGradConfig: tf.GradConfig = {
  kernelName: tf.Maximum,
  inputsToSave: ['a', 'b'],
  gradFunc: (dy, saved) => {
    const [a, b] = saved;
    return {
      a: () => unbroadcast(tf.mul(dy as tf.Tensor, tf.sub(tf.scalar(1), greaterMask(b, a))), a),
      b: () => unbroadcast(tf.mul(dy as tf.Tensor, greaterMask(b, a)), b),
    };
  },
};

/** Mean: dy / n broadcast back to the input's shape, as one Fill and one broadcasting Mul. */
export const meanGradConfig: tf.GradConfig = {
  kernelName: tf.Mean,
  inputsToSave: ['x'],
  gradFunc: (dy, saved, attrs) => {
    const [x] = saved;
    const { axis } = attrs as unknown as tf.MeanAttrs;
    const axes = tf.util.parseAxisParam(axis, x.shape);
    const keptShape = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
    const count = axes.reduce((n, a) => n * x.shape[a], 1);
    // On wasm, leading or middle axes (BatchNorm statistics): one SIMD pass writes dy / n everywhere.
    const plan = poolableReduction(x.shape, axes);
    if (plan && x.dtype === 'float32' && tf.getKernel(BROADCAST_MIDDLE_KERNEL, tf.getBackend())) {
      const attrs: BroadcastMiddleAttrs = { shape: x.shape, ...plan, scale: 1 / count };
      return { x: () => tf.engine().runKernel(BROADCAST_MIDDLE_KERNEL, { x: dy as tf.Tensor }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor };
    }
    return { x: () => tf.mul(tf.reshape(dy as tf.Tensor, keptShape), tf.fill(x.shape, 1 / count, 'float32')) };
  },
};

/** Every gradient this file replaces. */
export const ELEMENTWISE_GRADIENT_OVERRIDES: readonly tf.GradConfig[] = [
  relu6GradConfig,
  minimumGradConfig,
  maximumGradConfig,
  meanGradConfig,
];
