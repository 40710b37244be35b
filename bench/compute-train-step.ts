import * as tf from '@tensorflow/tfjs';
import { Rng } from '../common';
import { loadBackbone, withClassifierHead, type BackboneSource } from './compute-mobilenet';

/** Number of classes of the benchmark's head (CIFAR-10 sized). */
export const BENCH_CLASSES = 10;

/** A MobileNet + head with one fixed batch and the two things the benchmark times. */
export interface TrainingBench {
  source: BackboneSource;
  /** Forward + backward + Adam update on the batch; returns the loss. */
  trainStep(): number;
  /** Inference forward pass on the batch (BatchNorm uses its moving statistics). */
  forward(): void;
  dispose(): void;
}

/** Builds the benchmark model and a seeded random batch of `batch` images of `size`x`size`. */
export async function createTrainingBench(size: number, batch: number, seed = 1): Promise<TrainingBench> {
  const { model: backbone, source } = await loadBackbone();
  const model = withClassifierHead(backbone, BENCH_CLASSES);
  const rng = new Rng(seed);
  const pixels = Float32Array.from({ length: batch * size * size * 3 }, () => rng.uniform(-1, 1));
  const x = tf.tensor4d(pixels, [batch, size, size, 3]);
  const labels = Int32Array.from({ length: batch }, () => rng.int(BENCH_CLASSES));
  const y = tf.tidy(() => tf.oneHot(tf.tensor1d(labels, 'int32'), BENCH_CLASSES));
  const optimizer = tf.train.adam(1e-3);
  const loss = () => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar;
  return {
    source,
    trainStep: () =>
      tf.tidy(() => {
        const cost = optimizer.minimize(loss, true);
        if (!cost) throw new Error('optimizer.minimize returned no cost');
        return cost.dataSync()[0];
      }),
    forward: () => tf.tidy(() => void (model.predict(x) as tf.Tensor).dataSync()),
    dispose: () => {
      optimizer.dispose();
      model.dispose();
      tf.dispose([x, y]);
    },
  };
}

/**
 * Median milliseconds per call of `fn` over `runs` calls, after `warmup` untimed calls. The
 * median, because the machines this runs on are shared: one step slowed by another process
 * should not move the figure.
 */
export function medianMs(fn: () => unknown, runs: number, warmup: number): number {
  for (let i = 0; i < warmup; i++) fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    fn();
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  const mid = times.length >> 1;
  return times.length % 2 === 1 ? times[mid] : (times[mid - 1] + times[mid]) / 2;
}
