import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../common/compute';
import { Augmenter, type Cifar10Images, makeBatch } from '../common/data';
import { type JobSpec, parseJobSpec } from '../common/job';
import { disposeModelParts, type ModelParts, namedVariables } from '../common/models';
import { Rng } from '../common/random';
import {
  applyGradientSums,
  beginEpoch,
  ClassificationMetrics,
  computeGradients,
  createTrainerState,
  disposeTrainerState,
  type EpochEvent,
  LocalTrainer,
  localTrainStep,
  runLocalTraining,
  type StepEvent,
  type TrainerEvent,
} from '../common/training';
import { signalImages } from './support/images';

const NO_AUGMENT = '{ cropPadding: 0, horizontalFlip: false, brightness: 0, contrast: 0, saturation: 0, hue: 0, rotationDeg: 0 }';

function jobSpec(yaml: string, augment = NO_AUGMENT): JobSpec {
  return parseJobSpec(`
name: local
model: { architecture: small_cnn, numClasses: 10 }
data: { augment: ${augment} }
${yaml}`);
}


/** Hand-built tiny parts (pooling, dense, optional BN and dropout: layers whose gradients wasm has). */
function tinyParts(spec: JobSpec, seed: number, opts: { bn?: boolean; dropout?: number } = {}): ModelParts {
  const rng = new Rng(seed);
  const init = () => tf.initializers.glorotUniform({ seed: rng.uint32() });
  const backbone = tf.sequential({ name: 'backbone' });
  backbone.add(tf.layers.averagePooling2d({ inputShape: [32, 32, 3], poolSize: 8, name: 'bb_pool' }));
  backbone.add(tf.layers.flatten({ name: 'bb_flat' }));
  backbone.add(tf.layers.dense({ units: 24, activation: 'tanh', kernelInitializer: init(), name: 'bb_dense' }));
  if (opts.bn) backbone.add(tf.layers.batchNormalization({ name: 'bb_bn' }));
  const head = tf.sequential({ name: 'head' });
  if (opts.dropout) head.add(tf.layers.dropout({ inputShape: [24], rate: opts.dropout, name: 'head_dropout' }));
  head.add(tf.layers.dense({ inputShape: [24], units: 10, kernelInitializer: init(), name: 'head_logits' }));
  return { spec: spec.model, backbone, head, preprocess: { scale: 1 / 127.5, offset: -1, upsample: 1 }, inputSize: 32 };
}

function snapshot(vars: tf.LayerVariable[]): Float32Array[] {
  return vars.map((v) => Float32Array.from(v.read().dataSync() as Float32Array));
}

function ofType<T extends TrainerEvent['type']>(events: TrainerEvent[], type: T): Extract<TrainerEvent, { type: T }>[] {
  return events.filter((e): e is Extract<TrainerEvent, { type: T }> => e.type === type);
}

describe('local trainer', () => {
  const train = signalImages(90, 1);
  const val = signalImages(40, 2);

  before(async () => {
    await initBackend({ prefer: 'wasm' });
  });

  it('learns a learnable signal: loss falls, accuracy far above chance; batches of 32, 32, 26', async () => {
    const spec = jobSpec('training: { epochs: 5, batchSize: 32, evalBatchSize: 16 }\noptimizer: { type: sgd, learningRate: 0.05, momentum: 0.9 }');
    const parts = tinyParts(spec, 3);
    const events: TrainerEvent[] = [];
    const result = await runLocalTraining(spec, { train, val, parts, onEvent: (e) => events.push(e) });
    const epochs = ofType(events, 'epoch');
    assert.equal(epochs.length, 5);
    assert.deepEqual(result.epochs, epochs);
    assert.deepEqual(ofType(events, 'step').filter((s) => s.epoch === 0).map((s) => s.count), [32, 32, 26]);
    assert.deepEqual(ofType(events, 'step').map((s) => s.globalStep), Array.from({ length: 15 }, (_, i) => i));
    assert.ok(epochs[4].train.loss < 0.5 * epochs[0].train.loss, `train loss ${epochs[0].train.loss} -> ${epochs[4].train.loss}`);
    assert.ok((result.final.val?.loss ?? Infinity) < epochs[0].val!.loss, 'validation loss fell');
    assert.ok((result.final.val?.top1 ?? 0) >= 0.8, `val top-1 ${result.final.val?.top1}`);
    assert.equal(result.final.val?.count, 40);
    assert.equal(result.final.val?.perClass.length, 10);
    assert.equal(result.globalSteps, 15);
    disposeModelParts(parts);
  });

  it('keeps the backbone bit-identical while frozen (BN statistics included) and trains it after unfreeze', async () => {
    const spec = jobSpec(`training: { epochs: 3, batchSize: 32 }
optimizer: { type: adamw, learningRate: 0.01 }
freeze: { backboneEpochs: 2, unfreezeLearningRate: 0.002 }`);
    const parts = tinyParts(spec, 4, { bn: true });
    const { backbone, head } = namedVariables(parts);
    const start = { backbone: snapshot(backbone), head: snapshot(head) };
    const events: TrainerEvent[] = [];
    const atEpochEnd: { backbone: Float32Array[]; head: Float32Array[] }[] = [];
    await runLocalTraining(spec, {
      train, val, parts,
      onEvent: (e) => {
        events.push(e);
        if (e.type === 'epoch') atEpochEnd.push({ backbone: snapshot(backbone), head: snapshot(head) });
      },
    });
    assert.deepEqual(atEpochEnd[0].backbone, start.backbone, 'epoch 0');
    assert.deepEqual(atEpochEnd[1].backbone, start.backbone, 'epoch 1');
    assert.notDeepEqual(atEpochEnd[0].head, start.head, 'the head trains while the backbone is frozen');
    atEpochEnd[2].backbone.forEach((v, i) => assert.notDeepEqual(v, start.backbone[i], `${backbone[i].originalName} after unfreeze`));
    assert.deepEqual(ofType(events, 'epoch').map((e) => e.frozen), [true, true, false]);
    // Schedule events come before the first step of their epoch.
    const order = events.filter((e) => e.type !== 'step' || e.step === 0).map((e) => `${e.type}@${e.epoch}`);
    assert.deepEqual(order, ['freeze@0', 'step@0', 'epoch@0', 'step@1', 'epoch@1', 'unfreeze@2', 'lr-change@2', 'step@2', 'epoch@2']);
    const steps = ofType(events, 'step');
    assert.deepEqual(steps.find((s) => s.epoch === 1)?.lr, { backbone: 0.01, head: 0.1 });
    assert.deepEqual(steps.find((s) => s.epoch === 2)?.lr, { backbone: 0.002, head: 0.02 });
    disposeModelParts(parts);
  });

  it('emits lr-change at the step-decay epochs and after a plateau, with the rates the steps then use', async () => {
    const stepSpec = jobSpec(`training: { epochs: 3, batchSize: 45 }
optimizer: { type: sgd, learningRate: 0.04 }
schedule: { type: step, stepEpochs: 1, gamma: 0.5 }`);
    const parts = tinyParts(stepSpec, 5);
    const events: TrainerEvent[] = [];
    await runLocalTraining(stepSpec, { train, val, parts, onEvent: (e) => events.push(e) });
    const changes = ofType(events, 'lr-change');
    assert.deepEqual(changes.map((c) => [c.epoch, c.reason, c.from, c.to]), [[1, 'step-decay', 0.04, 0.02], [2, 'step-decay', 0.02, 0.01]]);
    assert.deepEqual(ofType(events, 'step').map((s) => s.lr.backbone), [0.04, 0.04, 0.02, 0.02, 0.01, 0.01]);
    disposeModelParts(parts);

    // minDelta larger than any possible improvement: every epoch after the first is a bad one.
    const plateauSpec = jobSpec(`training: { epochs: 3, batchSize: 45 }
optimizer: { type: sgd, learningRate: 0.04 }
schedule: { type: plateau, plateau: { factor: 0.5, patience: 1, minDelta: 100 } }`);
    const parts2 = tinyParts(plateauSpec, 5);
    const events2: TrainerEvent[] = [];
    await runLocalTraining(plateauSpec, { train, val, parts: parts2, onEvent: (e) => events2.push(e) });
    const plateau = ofType(events2, 'lr-change');
    assert.deepEqual(plateau.map((c) => [c.epoch, c.reason, c.from, c.to]), [[2, 'plateau', 0.04, 0.02]]);
    const idx = events2.indexOf(plateau[0]);
    assert.deepEqual([events2[idx - 1].type, events2[idx - 1].epoch], ['epoch', 1], 'announced right after epoch 1 ends');
    assert.deepEqual(ofType(events2, 'step').map((s) => s.lr.head), [0.4, 0.4, 0.4, 0.4, 0.2, 0.2]);
    disposeModelParts(parts2);
  });

  it('keeps the tensor count flat across steps and epochs (validation included)', async () => {
    const spec = jobSpec('training: { epochs: 3, batchSize: 16 }\noptimizer: { type: adam, learningRate: 0.01 }');
    const parts = tinyParts(spec, 6, { bn: true, dropout: 0.3 });
    const counts: number[] = [];
    await runLocalTraining(spec, { train, val, parts, onEvent: (e) => { if (e.type === 'step') counts.push(tf.memory().numTensors); } });
    // The first step creates the optimizer slots; nothing may accumulate after it.
    assert.ok(counts.length === 18 && counts.slice(1).every((c) => c === counts[1]), `tensor counts: ${counts.join(',')}`);
    const before = tf.memory().numTensors;
    disposeModelParts(parts);
    assert.ok(tf.memory().numTensors < before);
  });

  it('is reproducible from the seed: augmentation, order and dropout give identical runs', async () => {
    const augment = '{ cropPadding: 2, horizontalFlip: true, brightness: 0.2, contrast: 0.2, saturation: 0.2, hue: 0.05, rotationDeg: 10 }';
    const spec = jobSpec('seed: 7\ntraining: { epochs: 2, batchSize: 30 }\noptimizer: { type: sgd, learningRate: 0.02 }', augment);
    const run = async () => {
      const parts = tinyParts(spec, 8, { dropout: 0.5 });
      const losses: number[] = [];
      const r = await runLocalTraining(spec, { train, val, parts, onEvent: (e) => { if (e.type === 'step') losses.push(e.loss); } });
      disposeModelParts(parts);
      return { losses, val: r.final.val };
    };
    const [a, b] = [await run(), await run()];
    assert.deepEqual(a, b);
    const other = jobSpec('seed: 8\ntraining: { epochs: 2, batchSize: 30 }\noptimizer: { type: sgd, learningRate: 0.02 }', augment);
    const parts = tinyParts(other, 8, { dropout: 0.5 });
    const losses: number[] = [];
    await runLocalTraining(other, { train, val, parts, onEvent: (e) => { if (e.type === 'step') losses.push(e.loss); } });
    assert.notDeepEqual(losses, a.losses);
    disposeModelParts(parts);
  });

  it('one step equals the distributed split: shard gradient sums added, applied by applyGradientSums', () => {
    const spec = jobSpec('training: { epochs: 1, batchSize: 8 }\noptimizer: { type: sgd, learningRate: 0.1, momentum: 0.9 }',
      '{ cropPadding: 4, horizontalFlip: true, brightness: 0, contrast: 0, saturation: 0, hue: 0, rotationDeg: 0 }');
    const [local, dist] = [tinyParts(spec, 9), tinyParts(spec, 9)];
    const [ls, ds] = [createTrainerState(spec, local, 1), createTrainerState(spec, dist, 1)];
    beginEpoch(ls, 0);
    beginEpoch(ds, 0);
    const augmenter = new Augmenter(spec.data.augment);
    const indices = Uint32Array.from([5, 17, 3, 60, 44, 8, 71, 29]);
    const step: StepEvent = localTrainStep(ls, train, indices, augmenter, new ClassificationMetrics(10));
    // Two "workers" each build their shard with the same per-sample augmentation seeds.
    const shards = [indices.subarray(0, 3), indices.subarray(3)].map((idx) => {
      const b = makeBatch(train, idx, { augmenter, jobSeed: spec.seed, epoch: 0 });
      const x = tf.tensor4d(b.x, [idx.length, 32, 32, 3]);
      const y = tf.tensor1d(b.y, 'int32');
      try {
        return computeGradients(dist, { x, y }, { backboneFrozen: false });
      } finally {
        tf.dispose([x, y]);
      }
    });
    const summed = new Map([...shards[0].grads].map(([k, g]) => [k, tf.add(g, shards[1].grads.get(k) as tf.Tensor)]));
    const lr = applyGradientSums(ds, summed, shards[0].count + shards[1].count);
    assert.deepEqual(lr, step.lr);
    assert.ok(Math.abs((shards[0].lossSum + shards[1].lossSum) / 8 - step.loss) < 1e-5);
    const [lv, dv] = [namedVariables(local), namedVariables(dist)];
    [...lv.backbone, ...lv.head].forEach((v, i) => {
      const a = v.read().dataSync();
      const b = [...dv.backbone, ...dv.head][i].read().dataSync();
      let worst = 0;
      for (let j = 0; j < a.length; j++) worst = Math.max(worst, Math.abs(a[j] - b[j]) / Math.max(1e-3, Math.abs(a[j])));
      assert.ok(worst <= 1e-5, `${v.originalName}: relative difference ${worst}`);
    });
    tf.dispose([...summed.values(), ...shards.flatMap((s) => [...s.grads.values()])]);
    [ls, ds].forEach(disposeTrainerState);
    [local, dist].forEach(disposeModelParts);
  });

  it('stops between steps when aborted and rejects a gradient for a frozen variable', async () => {
    const spec = jobSpec('training: { epochs: 2, batchSize: 10 }\noptimizer: { type: sgd, learningRate: 0.01 }\nfreeze: { backboneEpochs: 1 }');
    const parts = tinyParts(spec, 10);
    const controller = new AbortController();
    const steps: StepEvent[] = [];
    const trainer = new LocalTrainer(spec, {
      train, val, parts, signal: controller.signal,
      onEvent: (e) => {
        if (e.type === 'step') steps.push(e);
        if (steps.length === 2) controller.abort(new Error('stop requested'));
      },
    });
    await assert.rejects(trainer.run(), /stop requested/);
    assert.equal(steps.length, 2);
    assert.equal(trainer.state.frozen, true);
    const g = new Map([['bb_dense/kernel', tf.zeros([48, 24])]]);
    assert.throws(() => applyGradientSums(trainer.state, g, 1), /backbone variable bb_dense\/kernel while the backbone is frozen/);
    tf.dispose([...g.values()]);
    trainer.dispose();
    disposeModelParts(parts);
  });

  it('reports a validation-less run with val null', async () => {
    const spec = jobSpec('training: { epochs: 1, batchSize: 45 }\noptimizer: { type: sgd, learningRate: 0.01 }\nschedule: { type: plateau }');
    const parts = tinyParts(spec, 11);
    const empty: Cifar10Images = { images: new Uint8Array(0), labels: new Uint8Array(0), count: 0 };
    const epochs: EpochEvent[] = [];
    await runLocalTraining(spec, { train, val: empty, parts, onEvent: (e) => { if (e.type === 'epoch') epochs.push(e); } });
    assert.equal(epochs[0].val, null);
    assert.equal(epochs[0].train.count, 90);
    disposeModelParts(parts);
  });
});
