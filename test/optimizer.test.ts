import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../common/compute';
import { ConfigError } from '../common/errors';
import type { OptimizerSpec } from '../common/job';
import { createOptimizer, type Optimizer, OptimizerStateError, TrainingShapeError } from '../common/training';

const BASE: OptimizerSpec = {
  type: 'sgd',
  learningRate: 0.1,
  momentum: 0,
  nesterov: false,
  weightDecay: 0,
  beta1: 0.9,
  beta2: 0.999,
  epsilon: 1e-7,
};

function spec(over: Partial<OptimizerSpec>): OptimizerSpec {
  return { ...BASE, ...over };
}

/** Variables in a map, as the trainer hands them to an optimizer. */
function params(values: Record<string, number[]>): Map<string, tf.Variable> {
  return new Map(Object.entries(values).map(([k, v]) => [k, tf.variable(tf.tensor1d(v), true, `${k}_${Math.random()}`)]));
}

function grads(values: Record<string, number[]>): Map<string, tf.Tensor> {
  return new Map(Object.entries(values).map(([k, v]) => [k, tf.tensor1d(v)]));
}

function read(p: Map<string, tf.Variable>, key: string): number[] {
  return Array.from((p.get(key) as tf.Variable).dataSync());
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    assert.ok(Math.abs(actual[i] - expected[i]) <= tol * Math.max(1, Math.abs(expected[i])),
      `${what}[${i}]: expected ${expected[i]}, got ${actual[i]}`);
  }
}

/** Random-ish but fixed gradients for step `t`. */
function gradAt(t: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) => Math.sin(7 * t + 3 * i) * (i + 1) * 0.3);
}

/** Runs `steps` updates with our optimizer and with a tf.train one, from the same start, and compares. */
function compareWithTf(ours: Optimizer, theirs: tf.Optimizer, steps: number, tol: number): void {
  const init = [0.5, -1.5, 2, 0.01, -0.3];
  const mine = params({ w: init });
  const ref = tf.variable(tf.tensor1d(init), true, `ref_${Math.random()}`);
  for (let t = 0; t < steps; t++) {
    const g = tf.tensor1d(gradAt(t, init.length));
    ours.apply(mine, new Map([['w', g]]), () => 0.1);
    theirs.applyGradients({ [ref.name]: g });
    g.dispose();
    assertClose(read(mine, 'w'), ref.dataSync(), tol, `step ${t}`);
  }
  tf.dispose([...mine.values(), ref]);
  ours.dispose();
  theirs.dispose();
}

describe('optimizers', () => {
  before(async () => {
    await initBackend({ prefer: 'wasm' });
  });

  it('SGD: w -= lr * (g + wd * w), hand-computed', () => {
    const p = params({ a: [1, 2] });
    const plain = createOptimizer(spec({}));
    plain.apply(p, grads({ a: [0.5, -1] }), () => 0.1);
    assertClose(read(p, 'a'), [0.95, 2.1], 1e-6, 'plain');
    const decayed = createOptimizer(spec({ weightDecay: 0.1 }));
    decayed.apply(p, grads({ a: [0.5, -1] }), () => 0.1);
    // g' = [0.5 + 0.095, -1 + 0.21]
    assertClose(read(p, 'a'), [0.95 - 0.1 * 0.595, 2.1 - 0.1 * -0.79], 1e-6, 'L2');
    assert.deepEqual(plain.getState().variables.get('a')?.slots, {}, 'plain SGD keeps no slots, only a step count');
  });

  it('SGD with momentum: hand-computed two steps (buf = m*buf + g)', () => {
    const p = params({ a: [1] });
    const opt = createOptimizer(spec({ momentum: 0.9 }));
    opt.apply(p, grads({ a: [1] }), () => 0.1); // buf 1, w 0.9
    opt.apply(p, grads({ a: [1] }), () => 0.1); // buf 1.9, w 0.71
    assertClose(read(p, 'a'), [0.71], 1e-6, 'momentum');
    const nest = params({ a: [1] });
    const n = createOptimizer(spec({ momentum: 0.9, nesterov: true }));
    n.apply(nest, grads({ a: [1] }), () => 0.1); // buf 1, d = 1 + 0.9 = 1.9, w 0.81
    n.apply(nest, grads({ a: [1] }), () => 0.1); // buf 1.9, d = 1 + 1.71 = 2.71, w 0.539
    assertClose(read(nest, 'a'), [0.539], 1e-6, 'nesterov');
  });

  it('matches tf.train.sgd / momentum (incl. Nesterov) / adam over several steps', () => {
    compareWithTf(createOptimizer(spec({})), tf.train.sgd(0.1), 4, 1e-6);
    compareWithTf(createOptimizer(spec({ momentum: 0.9 })), tf.train.momentum(0.1, 0.9), 4, 1e-6);
    compareWithTf(createOptimizer(spec({ momentum: 0.8, nesterov: true })), tf.train.momentum(0.1, 0.8, true), 4, 1e-6);
    compareWithTf(createOptimizer(spec({ type: 'adam', epsilon: 1e-3 })), tf.train.adam(0.1, 0.9, 0.999, 1e-3), 6, 1e-5);
  });

  it('Adam adds epsilon to sqrt of the bias-corrected second moment (PyTorch/tfjs placement)', () => {
    // First step: mHat = g, vHat = g^2, so w -= lr * g / (|g| + eps). With a large eps the Keras
    // placement (eps added to the uncorrected sqrt(v)) would give w = 0.99694 instead.
    const p = params({ a: [1] });
    const opt = createOptimizer(spec({ type: 'adam', epsilon: 0.5 }));
    opt.apply(p, grads({ a: [0.5] }), () => 0.1);
    assertClose(read(p, 'a'), [1 - 0.1 * 0.5 / (0.5 + 0.5)], 1e-6, 'adam step 1');
  });

  it('AdamW decays decoupled from the gradient; Adam adds L2 to it', () => {
    const pw = params({ a: [1] });
    createOptimizer(spec({ type: 'adamw', weightDecay: 0.1, epsilon: 1e-8 })).apply(pw, grads({ a: [0.5] }), () => 0.1);
    // w * (1 - lr*wd) - lr * g/|g|
    assertClose(read(pw, 'a'), [1 * (1 - 0.01) - 0.1], 1e-6, 'adamw');
    const pl = params({ a: [1] });
    const l2 = createOptimizer(spec({ type: 'adam', weightDecay: 0.1, epsilon: 1e-8 }));
    l2.apply(pl, grads({ a: [0.5] }), () => 0.1);
    // g' = 0.5 + 0.1 = 0.6 and the first Adam step normalises it away: w -= lr * sign(g')
    assertClose(read(pl, 'a'), [0.9], 1e-6, 'adam L2');
    // Second step of Adam with L2, by hand.
    const g2 = 0.2 + 0.1 * 0.9;
    const m = 0.9 * 0.06 + 0.1 * g2;
    const v = 0.999 * 0.001 * 0.36 + 0.001 * g2 * g2;
    const expected = 0.9 - 0.1 * (m / (1 - 0.81)) / (Math.sqrt(v / (1 - 0.999 * 0.999)) + 1e-8);
    l2.apply(pl, grads({ a: [0.2] }), () => 0.1);
    assertClose(read(pl, 'a'), [expected], 1e-5, 'adam L2 step 2');
  });

  it('uses the learning rate given per variable', () => {
    const p = params({ backbone: [1], head: [1] });
    createOptimizer(spec({})).apply(p, grads({ backbone: [1], head: [1] }), (k) => (k === 'head' ? 1 : 0.01));
    assertClose(read(p, 'backbone'), [0.99], 1e-6, 'backbone');
    assertClose(read(p, 'head'), [0], 1e-6, 'head');
  });

  for (const type of ['sgd', 'adam', 'adamw'] as const) {
    it(`${type}: a variable without a gradient keeps its bits and gets no state; its step count starts at unfreeze`, () => {
      const p = params({ frozen: [0.1234567, -2.5], live: [1, 1] });
      const before = Float32Array.from(read(p, 'frozen'));
      const opt = createOptimizer(spec({ type, momentum: 0.9, weightDecay: 0.05 }));
      for (let t = 0; t < 3; t++) opt.apply(p, grads({ live: gradAt(t, 2) }), () => 0.1);
      assert.deepEqual(Float32Array.from(read(p, 'frozen')), before);
      const st = opt.getState();
      assert.equal(st.step, 3);
      assert.deepEqual([...st.variables.keys()], ['live']);
      assert.equal(st.variables.get('live')?.step, 3);
      opt.apply(p, grads({ live: [1, 1], frozen: [1, 1] }), () => 0.1);
      const after = opt.getState();
      assert.equal(after.variables.get('frozen')?.step, 1);
      assert.equal(after.variables.get('live')?.step, 4);
      assert.notDeepEqual(Float32Array.from(read(p, 'frozen')), before);
      opt.dispose();
    });
  }

  it('getState/setState round-trips: a restored optimizer continues exactly like the original', () => {
    for (const type of ['sgd', 'adam', 'adamw'] as const) {
      const s = spec({ type, momentum: 0.9, weightDecay: 0.01 });
      const a = createOptimizer(s);
      const pa = params({ w: [1, 2, 3] });
      for (let t = 0; t < 3; t++) a.apply(pa, grads({ w: gradAt(t, 3) }), () => 0.05);
      const b = createOptimizer(s);
      b.setState(a.getState());
      const pb = params({ w: read(pa, 'w') });
      a.apply(pa, grads({ w: gradAt(9, 3) }), () => 0.05);
      b.apply(pb, grads({ w: gradAt(9, 3) }), () => 0.05);
      assert.deepEqual(read(pb, 'w'), read(pa, 'w'), type);
      assert.equal(b.getState().step, 4);
      a.dispose();
      b.dispose();
    }
  });

  it('rejects a bad state without changing the current one', () => {
    const opt = createOptimizer(spec({ type: 'adam' }));
    const p = params({ w: [1, 2] });
    opt.apply(p, grads({ w: [1, 1] }), () => 0.1);
    const good = opt.getState();
    assert.throws(() => opt.setState({ ...good, type: 'sgd' }), OptimizerStateError);
    const short = { ...good, variables: new Map([['w', { step: 1, shape: [2], slots: { m: new Float32Array(1), v: new Float32Array(2) } }]]) };
    assert.throws(() => opt.setState(short), TrainingShapeError);
    const missing = { ...good, variables: new Map([['w', { step: 1, shape: [2], slots: { m: new Float32Array(2) } }]]) };
    assert.throws(() => opt.setState(missing), /lacks slot v/);
    assert.deepEqual(opt.getState(), good);
  });

  it('rejects unknown variables, mismatched shapes and bad rates before touching anything', () => {
    const opt = createOptimizer(spec({ momentum: 0.9 }));
    const p = params({ w: [1, 2] });
    assert.throws(() => opt.apply(p, grads({ w: [1, 1], ghost: [1] }), () => 0.1), OptimizerStateError);
    assert.throws(() => opt.apply(p, grads({ w: [1, 1, 1] }), () => 0.1), /expected shape \[2\], got \[3\]/);
    assert.throws(() => opt.apply(p, grads({ w: [1, 1] }), () => NaN), /finite learning rate/);
    assert.deepEqual(read(p, 'w'), [1, 2]);
    assert.equal(opt.getState().variables.size, 0);
  });

  it('keeps the tensor count flat across steps and frees its slots on dispose', () => {
    const p = params({ a: [1, 2, 3], b: [4, 5] });
    const g = grads({ a: [1, 1, 1], b: [2, 2] });
    const opt = createOptimizer(spec({ type: 'adamw', weightDecay: 0.01 }));
    const start = tf.memory().numTensors;
    opt.apply(p, g, () => 0.1);
    const afterFirst = tf.memory().numTensors;
    assert.equal(afterFirst, start + 4, 'two slots for each of two variables');
    for (let t = 0; t < 5; t++) opt.apply(p, g, () => 0.1);
    assert.equal(tf.memory().numTensors, afterFirst);
    opt.dispose();
    assert.equal(tf.memory().numTensors, start);
  });

  it('createOptimizer rejects inconsistent hyper-parameters with the field name', () => {
    assert.throws(() => createOptimizer(spec({ nesterov: true, momentum: 0 })),
      (e: unknown) => e instanceof ConfigError && e.field === 'optimizer.nesterov');
    assert.throws(() => createOptimizer(spec({ type: 'adam', beta2: 1 })),
      (e: unknown) => e instanceof ConfigError && e.field === 'optimizer.beta2');
  });
});
