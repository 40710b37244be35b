import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { FUSED_ADAM_KERNEL, FUSED_SGD_KERNEL, fusedAdamUpdate, initBackend, KernelShapeError } from '../common/compute';
import { optimizerModule } from '../common/compute/optimizer-wasm-module';
import { sleb128, uleb128 } from '../common/compute/wasm-assembler';
import type { OptimizerSpec } from '../common/job';
import { createOptimizer } from '../common/training';
import { Rng } from '../common/random';
import { maxRelativeError } from './support/floats';

// The fused optimizer kernels (one wasm SIMD pass per variable) against the optimizers' tfjs-op
// composition: bit for bit on wasm (same float32 operations), and to a relative 1e-5 against the
// plain-JS cpu backend.

const quiet = { log: (): void => undefined };
const BASE: OptimizerSpec = {
  type: 'adam', learningRate: 0.01, momentum: 0, nesterov: false, weightDecay: 0, beta1: 0.9, beta2: 0.999, epsilon: 1e-7,
};

/** Shapes with and without a scalar tail (size % 4), and one too small for a SIMD step. */
const SHAPES = [[3], [4], [5, 7], [2, 3, 4, 9]];
const STEPS = 3;

const VARIANTS: Record<string, Partial<OptimizerSpec>> = {
  'adam': {},
  'adam + L2': { weightDecay: 0.05 },
  'adamw': { type: 'adamw', weightDecay: 0.05 },
  'adamw without decay': { type: 'adamw', weightDecay: 0 },
  'sgd': { type: 'sgd' },
  'sgd + L2': { type: 'sgd', weightDecay: 0.05 },
  'sgd momentum': { type: 'sgd', momentum: 0.9 },
  'sgd momentum + L2': { type: 'sgd', momentum: 0.9, weightDecay: 0.05 },
  'sgd nesterov + L2': { type: 'sgd', momentum: 0.9, nesterov: true, weightDecay: 0.05 },
};

interface Run {
  values: Float32Array[];
  slots: Float32Array[];
}

/**
 * Sample counts the gradients of each step are sums over: the kernels divide as they read, the composed
 * ops with tf.div first. 1 is a mean already (divides exactly); 3 does not divide the values exactly.
 */
const DIVISORS = [1, 3, 32];

/** STEPS updates of one variable per shape from seeded values, gradient sums, per-step rates and divisors. */
function train(spec: OptimizerSpec): Run {
  const rng = new Rng(7);
  const random = (n: number) => Float32Array.from({ length: n }, () => rng.uniform(-2, 2));
  // tidy frees the initial-value tensors; the variables keep their data.
  const params = new Map(SHAPES.map((shape, i) => [`v${i}`, tf.tidy(() => tf.variable(tf.tensor(random(tf.util.sizeFromShape(shape)), shape)))]));
  const optimizer = createOptimizer(spec);
  try {
    for (let step = 0; step < STEPS; step++) {
      const grads = new Map([...params].map(([k, v]) => [k, tf.tensor(random(v.size), v.shape)]));
      optimizer.apply(params, grads, (name) => 0.01 * (step + 1) + Number(name.slice(1)) * 1e-3, DIVISORS[step % DIVISORS.length]);
      tf.dispose([...grads.values()]);
    }
    const state = optimizer.getState();
    return {
      values: [...params.values()].map((v) => v.dataSync() as Float32Array),
      slots: [...state.variables.values()].flatMap((s) => Object.values(s.slots)),
    };
  } finally {
    optimizer.dispose();
    tf.dispose([...params.values()]);
  }
}

/** Runs `fn` with the fused kernels unregistered from wasm, so the optimizers compose tfjs ops. */
function withoutFusedKernels<T>(fn: () => T): T {
  const configs = [FUSED_ADAM_KERNEL, FUSED_SGD_KERNEL].map((name) => tf.getKernel(name, 'wasm') as tf.KernelConfig);
  configs.forEach((c) => tf.unregisterKernel(c.kernelName, 'wasm'));
  try {
    return fn();
  } finally {
    configs.forEach((c) => tf.registerKernel(c));
  }
}

describe('fused optimizer kernels', () => {
  before(async () => {
    await initBackend({ prefer: 'wasm', ...quiet });
  });

  it('encodes LEB128 as the WebAssembly spec does, and assembles a module the engine validates', () => {
    assert.deepEqual(uleb128(0), [0]);
    assert.deepEqual(uleb128(624485), [0xe5, 0x8e, 0x26]);
    assert.deepEqual(sleb128(-4), [0x7c]);
    assert.deepEqual(sleb128(-123456), [0xc0, 0xbb, 0x78]);
    assert.deepEqual(sleb128(64), [0xc0, 0x00]);
    const bytes = optimizerModule();
    assert.ok((globalThis as unknown as { WebAssembly: { validate(b: Uint8Array): boolean } }).WebAssembly.validate(bytes));
  });

  for (const [label, over] of Object.entries(VARIANTS)) {
    it(`${label}: same bits as the tfjs ops on wasm, within 1e-5 of the plain-JS backend`, async () => {
      const spec = { ...BASE, ...over };
      await initBackend({ prefer: 'wasm', ...quiet });
      const fused = train(spec);
      const composed = withoutFusedKernels(() => train(spec));
      await initBackend({ prefer: 'cpu', ...quiet });
      const plain = train(spec);
      await initBackend({ prefer: 'wasm', ...quiet });
      fused.values.forEach((v, i) => {
        assert.deepEqual(v, composed.values[i], `variable ${i} differs from the composed ops`);
        const err = maxRelativeError(v, plain.values[i]);
        assert.ok(err <= 1e-5, `variable ${i}: relative error ${err.toExponential(2)} against the cpu backend`);
      });
      assert.equal(fused.slots.length, composed.slots.length);
      fused.slots.forEach((s, i) => {
        assert.deepEqual(s, composed.slots[i], `slot ${i} differs from the composed ops`);
        assert.ok(maxRelativeError(s, plain.slots[i]) <= 1e-5, `slot ${i} against the cpu backend`);
      });
    });
  }

  it('rejects a slot of another shape, naming it', () => {
    tf.tidy(() => {
      const attrs = { decayMode: 'none' as const, beta1: 0.9, beta2: 0.999, epsilon: 1e-7, lr: 0.1, weightDecay: 0, t: 1, gradDivisor: 1 };
      assert.throws(() => fusedAdamUpdate(tf.zeros([4]), tf.zeros([4]), tf.zeros([4]), tf.zeros([5]), attrs),
        (err: unknown) => err instanceof KernelShapeError && /expected v of shape \[4\], got \[5\]/.test(err.message));
    });
  });

  it('divides the gradient sums as it reads them: the bits of tf.div by the count, then the update of the mean', () => {
    const spec = { ...BASE, weightDecay: 0.05 };
    const rng = new Rng(11);
    const sums = Float32Array.from({ length: 37 }, () => rng.uniform(-50, 50));
    const run = (grad: Float32Array, divisor: number) => tf.tidy(() => {
      const param = tf.variable(tf.tensor(Float32Array.from({ length: 37 }, (_, i) => Math.sin(i))));
      const optimizer = createOptimizer(spec);
      try {
        optimizer.apply(new Map([['w', param]]), new Map([['w', tf.tensor(grad)]]), () => 0.01, divisor);
        return param.dataSync() as Float32Array;
      } finally {
        optimizer.dispose();
        param.dispose();
      }
    });
    const means = tf.tidy(() => tf.div(tf.tensor(sums), 7).dataSync() as Float32Array);
    assert.deepEqual(run(sums, 7), run(means, 1));
    assert.notDeepEqual(run(sums, 7), run(sums, 1), 'the divisor must change the update');
  });

  it('rejects a divisor that is not a sample count, naming it', () => {
    const param = tf.variable(tf.zeros([4]));
    const optimizer = createOptimizer(BASE);
    try {
      for (const divisor of [0, 2.5, Number.NaN]) {
        assert.throws(() => optimizer.apply(new Map([['w', param]]), new Map([['w', tf.ones([4])]]), () => 0.1, divisor),
          (err: unknown) => err instanceof Error && err.message.includes(`integer >= 1, got ${divisor}`));
      }
      assert.deepEqual([...param.dataSync()], [0, 0, 0, 0], 'a rejected update changes nothing');
    } finally {
      optimizer.dispose();
      param.dispose();
    }
  });

  it('frees its outputs with the step: the tensor and wasm buffer counts stay flat', () => {
    const spec = { ...BASE, type: 'adamw' as const, weightDecay: 0.01 };
    train(spec);
    const before = tf.memory();
    train(spec);
    const after = tf.memory();
    assert.equal(after.numTensors, before.numTensors);
    assert.equal(after.numDataBuffers, before.numDataBuffers);
  });
});
