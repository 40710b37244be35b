import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../common/compute';
import { Augmenter, subset } from '../common/data';
import { parseJobSpec } from '../common/job';
import { buildModel, disposeModelParts, type ModelParts } from '../common/models';
import { computeShare, cutMicroBatches, evaluateDataset, type ShareResult } from '../common/training';
import { COORDINATOR_SERVICE, TensorAssembler, specFromProto } from '../common/wire';
import type { GradientHeader, PushGradientsRequest } from '../proto';
import { computeShareStepwise, evalRequest, gradientMessages, localSamples, runEvalShare, runTrainShare } from '../worker';
import { randomImages } from './support/images';

const SPEC = parseJobSpec(
  'model: {architecture: small_cnn, head: seed, headUnits: 8, dropout: 0.3}\ntraining: {epochs: 1, batchSize: 12, microBatchSize: 4}\noptimizer: {learningRate: 0.1}',
);


function dispose(r: ShareResult): void {
  tf.dispose([...r.grads.values(), ...r.movingStatDeltas.values()]);
}

function values(tensors: ReadonlyMap<string, tf.Tensor>): Map<string, Float32Array> {
  return new Map([...tensors].map(([k, t]) => [k, t.dataSync() as Float32Array]));
}

describe('worker share runner: a received share computes what the local trainer computes', function () {
  let parts: ModelParts;
  const split = randomImages(40, 5);
  const augmenter = new Augmenter(SPEC.data.augment);
  // Micro-batches 2 and 3 of a step over the split, as sample ids.
  const stepIds = Uint32Array.of(31, 4, 17, 22, 9, 0, 38, 12, 25, 3, 14, 7);
  const assigned = cutMicroBatches(stepIds, 4).filter((mb) => mb.id >= 1);

  before(async () => {
    await initBackend({ prefer: 'wasm' });
    parts = await buildModel(SPEC.model, 3);
  });
  after(() => disposeModelParts(parts));

  function received() {
    const ids = assigned.flatMap((mb) => [...mb.sampleIndices]);
    const chunk = subset(split, ids);
    return localSamples(8, assigned.map((mb) => ({ id: mb.id, sampleIds: mb.sampleIndices })),
      { sampleIds: Uint32Array.from(ids), images: chunk.images, labels: chunk.labels }, 10);
  }

  for (const backboneFrozen of [false, true]) {
    it(`computing micro-batch by micro-batch is bit-identical to one computeShare (backbone ${backboneFrozen ? 'frozen' : 'training'})`, async () => {
      const input = { data: split, microBatches: assigned, augmenter, jobSeed: 4, epoch: 2, globalStep: 8, backboneFrozen };
      const whole = computeShare(parts, input);
      let yields = 0;
      const stepwise = await computeShareStepwise(parts, input, async () => void yields++);
      assert.equal(yields, assigned.length, 'yields after every micro-batch');
      assert.deepEqual(values(stepwise.grads), values(whole.grads));
      assert.deepEqual(values(stepwise.movingStatDeltas), values(whole.movingStatDeltas));
      assert.deepEqual([stepwise.lossSum, stepwise.correctTop1, stepwise.count, stepwise.microBatches],
        [whole.lossSum, whole.correctTop1, whole.count, whole.microBatches]);
      dispose(whole);
      dispose(stepwise);
    });
  }

  it('runTrainShare on the received pixels equals computeShare on the whole split, and keeps the tensor count flat', async () => {
    const reference = computeShare(parts, { data: split, microBatches: assigned, augmenter, jobSeed: 4, epoch: 2, globalStep: 8, backboneFrozen: false });
    const input = { samples: received(), augmenter, jobSeed: 4, epoch: 2, globalStep: 8, configVersion: 1, backboneFrozen: false, weightsVersion: 8 };
    const before = tf.memory().numTensors;
    const share = await runTrainShare(parts, input);
    assert.equal(tf.memory().numTensors, before);
    assert.deepEqual(new Map(share.grads.map((t) => [t.name, t.data])), values(reference.grads));
    assert.deepEqual(new Map(share.statDeltas.map((t) => [t.name, t.data])), values(reference.movingStatDeltas));
    assert.deepEqual([share.sampleCount, share.lossSum, share.correctTop1, share.microBatchIds], [8, reference.lossSum, reference.correctTop1, [1, 2]]);
    dispose(reference);
  });

  it('PushGradients stream: header, gradient chunks, then statistic chunks, each within the message limit', async () => {
    const maxMessageBytes = 4096;
    const share = await runTrainShare(parts, {
      samples: received(), augmenter, jobSeed: 4, epoch: 2, globalStep: 8, configVersion: 3, backboneFrozen: false, weightsVersion: 8, weightsHash: 'sha256:abc',
    });
    const messages = [...gradientMessages('w-1', share, maxMessageBytes)()];
    const serialize = COORDINATOR_SERVICE.pushGradients.requestSerialize as (m: PushGradientsRequest) => Buffer;
    for (const m of messages) assert.ok(serialize(m).length <= maxMessageBytes, `message of ${serialize(m).length} bytes`);
    const [first, ...rest] = messages;
    assert.equal(first.payload?.$case, 'header');
    const header = (first.payload as { header: GradientHeader }).header;
    assert.deepEqual(
      [header.workerId, header.globalStep, header.configVersion, header.sampleCount, header.microBatchIds, header.weightsHash, header.weightsVersion],
      ['w-1', 8, 3, 8, [1, 2], 'sha256:abc', 8],
    );
    assert.equal(header.lossSum, share.lossSum);
    const grads = new TensorAssembler({ expected: header.tensors.map(specFromProto) });
    const stats = new TensorAssembler({ expected: header.statDeltas.map(specFromProto) });
    const gradNames = new Set(header.tensors.map((t) => t.name));
    let inStats = false;
    for (const m of rest) {
      assert.equal(m.payload?.$case, 'chunk');
      const chunk = (m.payload as { chunk: Parameters<TensorAssembler['add']>[0] }).chunk;
      if (gradNames.has(chunk.name)) {
        assert.ok(!inStats, `gradient chunk ${chunk.name} after a statistic chunk`);
        grads.add(chunk);
      } else {
        inStats = true;
        stats.add(chunk);
      }
    }
    assert.ok(rest.length > header.tensors.length + header.statDeltas.length, 'large tensors were cut into several chunks');
    assert.deepEqual(new Map([...grads.finish()].map(([k, t]) => [k, t.data])), new Map(share.grads.map((t) => [t.name, t.data])));
    assert.deepEqual(new Map([...stats.finish()].map(([k, t]) => [k, t.data])), new Map(share.statDeltas.map((t) => [t.name, t.data])));
  });

  it('a frozen backbone pushes head gradients only', async () => {
    const share = await runTrainShare(parts, {
      samples: received(), augmenter, jobSeed: 4, epoch: 0, globalStep: 0, configVersion: 1, backboneFrozen: true, weightsVersion: 0,
    });
    assert.ok(share.grads.length > 0 && share.grads.every((t) => t.name.startsWith('head_')), share.grads.map((t) => t.name).join(', '));
  });

  it('runEvalShare counts what evaluateDataset counts on the same samples', async () => {
    const val = randomImages(10, 9);
    const ids = Array.from({ length: 10 }, (_, i) => i);
    const samples = localSamples(30, [{ id: 0, sampleIds: Uint32Array.from(ids.slice(0, 4)) }, { id: 1, sampleIds: Uint32Array.from(ids.slice(4, 8)) },
      { id: 2, sampleIds: Uint32Array.from(ids.slice(8)) }], { sampleIds: Uint32Array.from(ids), images: val.images, labels: val.labels }, 10);
    const before = tf.memory().numTensors;
    const share = await runEvalShare(parts, samples, 10);
    assert.equal(tf.memory().numTensors, before);
    const reference = evaluateDataset(parts, val, 4, 10);
    assert.deepEqual([share.metrics.count, share.metrics.lossSum, share.metrics.correctTop1, share.metrics.correctTop5],
      [reference.count, reference.lossSum, reference.correctTop1, reference.correctTop5]);
    const request = evalRequest('w-2', 30, 1, share);
    assert.deepEqual([request.sampleCount, request.microBatchIds, request.confusionMatrix.length], [10, [0, 1, 2], 100]);
    assert.deepEqual(request.confusionMatrix, Array.from(reference.confusion));
  });
});
