import * as tf from '@tensorflow/tfjs';
import { createOptimizer, crossEntropySum, type OptimizerSpec, Rng } from '../common';
import { loadBackbone, withClassifierHead, type BackboneSource } from './compute-mobilenet';

/** Number of classes of the benchmark's head (CIFAR-10 sized). */
export const BENCH_CLASSES = 10;

/** The demo's micro-batch: the span BatchNorm normalises over, and the unit a worker computes. */
export const BENCH_MICRO_BATCH = 16;

/** The demo's optimizer (examples/demo.yaml): Adam, PyTorch defaults. */
const BENCH_OPTIMIZER: OptimizerSpec = {
  type: 'adam', learningRate: 1e-4, momentum: 0, nesterov: false, weightDecay: 0, beta1: 0.9, beta2: 0.999, epsilon: 1e-7,
};

/** Milliseconds spent in each phase of {@link TrainingBench.trainStep}, summed over the calls so far. */
export interface StepPhases {
  /** Forward and backward passes of the micro-batches (tf.variableGrads, loss read back). */
  forwardBackwardMs: number;
  /** Adding the micro-batches' gradients and dividing by the sample count. */
  gradientSumMs: number;
  /** The optimizer's update of every variable. */
  optimizerMs: number;
}

/** A MobileNet + head with one fixed batch and the two things the benchmark times. */
export interface TrainingBench {
  source: BackboneSource;
  /** Where the training steps' time went. */
  readonly phases: StepPhases;
  /**
   * One training step as the trainers run it: forward + backward per micro-batch of
   * {@link BENCH_MICRO_BATCH} (BatchNorm in training mode), gradient sums added in micro-batch order,
   * then one update of shardwise's optimizer (common/training) with the mean. Returns the loss sum.
   */
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
  const y = tf.tensor1d(Int32Array.from({ length: batch }, () => rng.int(BENCH_CLASSES)), 'int32');
  const micro = Math.min(BENCH_MICRO_BATCH, batch);
  const parts = Array.from({ length: Math.ceil(batch / micro) }, (_, i) => {
    const n = Math.min(micro, batch - i * micro);
    return { x: tf.slice(x, [i * micro, 0, 0, 0], [n, size, size, 3]), y: tf.slice(y, [i * micro], [n]) };
  });
  const params = new Map(model.trainableWeights.map((w) => [w.originalName, w.read() as tf.Variable]));
  const optimizer = createOptimizer(BENCH_OPTIMIZER);
  const phases: StepPhases = { forwardBackwardMs: 0, gradientSumMs: 0, optimizerMs: 0 };
  let clock = 0;
  /** Milliseconds since the previous call. */
  const lap = (): number => {
    const now = performance.now();
    const ms = now - clock;
    clock = now;
    return ms;
  };
  const step = (): number => {
    let lossSum = 0;
    const sums = new Map<string, tf.Tensor>();
    try {
      for (const part of parts) {
        lap();
        const { value, grads } = tf.variableGrads(
          () => crossEntropySum(model.apply(part.x, { training: true }) as tf.Tensor2D, part.y as tf.Tensor1D),
          [...params.values()],
        );
        lossSum += value.dataSync()[0];
        value.dispose();
        phases.forwardBackwardMs += lap();
        for (const [key, v] of params) {
          const g = grads[v.name];
          const prev = sums.get(key);
          sums.set(key, prev ? tf.add(prev, g) : g);
          if (prev) tf.dispose([prev, g]);
        }
        phases.gradientSumMs += lap();
      }
      const means = new Map([...sums].map(([key, g]) => [key, tf.div(g, batch)]));
      phases.gradientSumMs += lap();
      try {
        optimizer.apply(params, means, () => BENCH_OPTIMIZER.learningRate);
        // Reading one value waits for the update (tfjs-wasm kernels are synchronous, so this costs ~0).
        (params.values().next().value as tf.Variable).dataSync();
      } finally {
        tf.dispose([...means.values()]);
      }
      phases.optimizerMs += lap();
      return lossSum;
    } finally {
      tf.dispose([...sums.values()]);
    }
  };
  return {
    source,
    phases,
    trainStep: step,
    forward: () => tf.tidy(() => void (model.predict(x) as tf.Tensor).dataSync()),
    dispose: () => {
      optimizer.dispose();
      model.dispose();
      tf.dispose([x, y, ...parts.flatMap((p) => [p.x, p.y])]);
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
