import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../common/compute';
import { parseJobSpec } from '../common/job';
import { namedVariables } from '../common/models';
import { movingStatistics, trainableVariables } from '../common/training';
import type { WireTensor } from '../common/wire';
import { NOT_LOADED, Replica, ReplicaUpdateError } from '../worker';

const SPEC = parseJobSpec('model: {architecture: small_cnn, head: seed, headUnits: 8}\ntraining: {epochs: 1}\noptimizer: {learningRate: 0.1}');

/** Every variable of a replica as wire tensors (what GetWeights sends), optionally only some names. */
function snapshot(replica: Replica, only?: (name: string) => boolean): Map<string, WireTensor> {
  const named = namedVariables(replica.parts);
  const out = new Map<string, WireTensor>();
  for (const v of [...named.backbone, ...named.head]) {
    if (only && !only(v.originalName)) continue;
    out.set(v.originalName, { name: v.originalName, dtype: 'float32', shape: [...v.shape] as number[], data: v.read().dataSync() as Float32Array });
  }
  return out;
}

/** Moves some variables of `replica` the way an optimizer step would (new values, same shapes). */
function perturb(replica: Replica, names: string[]): void {
  const named = namedVariables(replica.parts);
  tf.tidy(() => {
    for (const v of [...named.backbone, ...named.head]) {
      if (names.includes(v.originalName)) v.write(tf.add(v.read(), tf.scalar(0.125)));
    }
  });
}

describe('worker replica: the coordinator\'s weights, one update at a time', function () {
  let master: Replica;
  let replica: Replica;

  before(async () => {
    await initBackend({ prefer: 'cpu' });
    master = new Replica((await Replica.build({ ...SPEC, seed: 1 })).parts);
    replica = await Replica.build({ ...SPEC, seed: 2 });
  });
  after(() => {
    master?.dispose();
    replica?.dispose();
  });

  it('has the same fingerprint as any build of the same spec, and differs in values before loading', () => {
    assert.equal(replica.fingerprint, master.fingerprint);
    assert.equal(replica.weightsVersion, NOT_LOADED);
    assert.notEqual(replica.hash(), master.hash());
  });

  it('loadFull makes it bit-identical to the master at the manifest\'s version', () => {
    const before = tf.memory().numTensors;
    replica.loadFull(snapshot(master), 7);
    assert.equal(replica.hash(), master.hash());
    assert.equal(replica.weightsVersion, 7);
    assert.equal(tf.memory().numTensors, before, 'writing variables keeps the tensor count');
  });

  it('applyUpdate writes only the changed variables and moves to the next version', () => {
    const changed = replica.variableNames.filter((n) => n.endsWith('/kernel')).slice(0, 2).concat(
      replica.variableNames.filter((n) => n.endsWith('moving_mean')).slice(0, 1));
    assert.equal(changed.length, 3);
    perturb(master, changed);
    assert.notEqual(replica.hash(), master.hash());
    assert.ok(replica.canApplyUpdate(8) && !replica.canApplyUpdate(9) && !replica.canApplyUpdate(7));
    const before = tf.memory().numTensors;
    replica.applyUpdate(snapshot(master, (n) => changed.includes(n)), 8);
    assert.equal(replica.hash(), master.hash());
    assert.equal(replica.weightsVersion, 8);
    assert.equal(tf.memory().numTensors, before);
  });

  it('refuses an update that skips a version, and writes nothing', () => {
    perturb(master, [replica.variableNames[0]]);
    const hash = replica.hash();
    assert.throws(() => replica.applyUpdate(snapshot(master, (n) => n === replica.variableNames[0]), 10),
      (e: unknown) => e instanceof ReplicaUpdateError && /expected an update to version 9, got one to version 10/.test(e.message));
    assert.equal(replica.hash(), hash);
    assert.equal(replica.weightsVersion, 8);
  });

  it('refuses unknown names and wrong shapes before writing anything (all or nothing)', () => {
    const hash = replica.hash();
    const good = snapshot(master, (n) => n === replica.variableNames[0]);
    const [name, t] = [...snapshot(master, (n) => n === replica.variableNames[1])][0];
    const badShape = new Map([...good, [name, { ...t, shape: [1, t.data.length] }]]);
    assert.throws(() => replica.applyUpdate(badShape, 9),
      (e: unknown) => e instanceof ReplicaUpdateError && e.variable === name && /expected float32 \[/.test(e.message));
    const unknown = new Map([...good, ['no_such_layer/kernel', { ...t, name: 'no_such_layer/kernel' }]]);
    assert.throws(() => replica.applyUpdate(unknown, 9),
      (e: unknown) => e instanceof ReplicaUpdateError && e.variable === 'no_such_layer/kernel');
    assert.equal(replica.hash(), hash, 'the valid tensor of a refused update was not written');
    assert.equal(replica.weightsVersion, 8);
  });

  it('refuses a full copy that lacks variables', () => {
    const partial = snapshot(master, (n) => n !== replica.variableNames[2]);
    assert.throws(() => replica.loadFull(partial, 12),
      (e: unknown) => e instanceof ReplicaUpdateError && e.variable === replica.variableNames[2] && /lacks 1/.test(e.message));
    replica.loadFull(snapshot(master), 12);
    assert.equal(replica.hash(), master.hash());
  });
});

// A worker that had no share of a step (no member of its allreduce) gets the reduced sums with its APPLY
// order and must end where the members end, optimizer state included, so it can replay the next update too.
describe('worker replica: an allreduce update from the sums sent equals the one from the sums held', function () {
  let member: Replica;
  let other: Replica;

  before(async () => {
    await initBackend({ prefer: 'cpu' });
    member = await Replica.build({ ...SPEC, seed: 1 });
    other = await Replica.build({ ...SPEC, seed: 1 });
    const start = snapshot(member);
    for (const r of [member, other]) r.loadFull(start, 4, { iterations: 0, variableSteps: {} });
  });
  after(() => {
    member?.dispose();
    other?.dispose();
  });

  /** Reduced sums for update `step`: a gradient for each trainable variable, then a delta for each statistic. */
  function sums(step: number): { key: string; tensors: WireTensor[]; gradientTensorCount: number } {
    const gradients = trainableVariables(member.parts).map((v, i) => ({
      name: v.key, dtype: 'float32' as const, shape: [...v.variable.shape],
      data: Float32Array.from({ length: v.variable.size }, (_, j) => ((i * 7 + j * 3 + step) % 11 - 5) / 64),
    }));
    const deltas = [...movingStatistics(member.parts, { backboneFrozen: false })].map(([name, v]) => ({
      name, dtype: 'float32' as const, shape: [...v.shape] as number[], data: new Float32Array(v.read().size).fill(1 / 128),
    }));
    return { key: `job/step-${step}/attempt-1`, tensors: [...gradients, ...deltas], gradientTensorCount: gradients.length };
  }

  it('moves to the same bytes and stays able to replay the next update', () => {
    for (const step of [4, 5]) {
      const { key, tensors, gradientTensorCount } = sums(step);
      const order = { key, learningRates: { backbone: 0.01, head: 0.1 }, sampleCount: 32, microBatchCount: 4 };
      const vector = new Float32Array(tensors.reduce((n, t) => n + t.data.length, 0));
      tensors.reduce((at, t) => (vector.set(t.data as Float32Array, at), at + t.data.length), 0);
      const specs = tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape }));
      member.applyReduced({ key, step, tensors: specs, gradientTensorCount, vector }, order, step + 1);
      // Sent in any order (statistics first here): the replica lays them out as a member holds them.
      other.applySentSums(new Map([...tensors].reverse().map((t) => [t.name, t])), order, step + 1);
      assert.equal(other.weightsVersion, step + 1);
      assert.ok(other.canReplay, `after update ${step}: the optimizer state is current`);
      assert.equal(other.hash(), member.hash(), `after update ${step}`);
    }
  });

  it('refuses sums for a version it is not one behind, and writes nothing', () => {
    const { key, tensors } = sums(9);
    const before = other.hash();
    const order = { key, learningRates: { backbone: 0.01, head: 0.1 }, sampleCount: 32, microBatchCount: 4 };
    assert.throws(() => other.applySentSums(new Map(tensors.map((t) => [t.name, t])), order, 9), ReplicaUpdateError);
    assert.equal(other.hash(), before);
  });
});
