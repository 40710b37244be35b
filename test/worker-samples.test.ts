import assert from 'node:assert/strict';
import { Augmenter, type Cifar10Images, makeBatch, subset } from '../common/data';
import { parseJobSpec } from '../common/job';
import { Rng } from '../common/random';
import { StepAssignment, StepKind, UpdateKind as ProtoUpdateKind } from '../proto';
import { UpdateKind } from '../common/training';
import { AssignmentError, AssignmentKind, assignmentFromProto, localSamples } from '../worker';

const SPEC = parseJobSpec('model: {architecture: small_cnn}\ntraining: {epochs: 1}\noptimizer: {learningRate: 0.1}');

function randomImages(count: number, seed: number): Cifar10Images {
  const rng = new Rng(seed);
  const images = Uint8Array.from({ length: count * 3072 }, () => rng.int(256));
  const labels = Uint8Array.from({ length: count }, () => rng.int(10));
  return { images, labels, count };
}

/** A TRAIN assignment as a coordinator builds it (pixels of the split's samples in micro-batch order), through the wire. */
function wireAssignment(split: Cifar10Images, microBatches: number[][], order?: number[]): StepAssignment {
  const ids = order ?? microBatches.flat();
  const chunk = subset(split, ids);
  const message = StepAssignment.fromPartial({
    kind: StepKind.TRAIN,
    globalStep: 41,
    epoch: 3,
    configVersion: 2,
    microBatches: microBatches.map((sampleIndices, k) => ({ id: 5 + k, sampleIndices })),
    samples: { sampleIndices: ids, labels: Buffer.from(chunk.labels), images: Buffer.from(chunk.images) },
    updateKind: ProtoUpdateKind.NONE,
    weightsVersion: 41,
  });
  return StepAssignment.decode(StepAssignment.encode(message).finish());
}

describe('worker samples: a DataChunk becomes the batches the local trainer would make', () => {
  const split = randomImages(30, 11);
  const augmenter = new Augmenter(SPEC.data.augment);
  const microBatches = [[17, 3, 25, 8], [0, 29, 12, 21], [6, 14]];

  for (const [what, order] of [['in micro-batch order', undefined], ['in any order', [14, 0, 29, 6, 12, 21, 17, 3, 25, 8]]] as const) {
    it(`each micro-batch equals makeBatch on the whole split, augmentation included (samples ${what})`, () => {
      const a = assignmentFromProto(wireAssignment(split, microBatches, order ? [...order] : undefined), new Map());
      const local = localSamples(a.globalStep, a.microBatches, a.samples, 10);
      assert.deepEqual(local.microBatches.map((mb) => mb.id), [5, 6, 7]);
      assert.equal(local.data.count, 10);
      for (const [k, mb] of local.microBatches.entries()) {
        const ids = Array.from(mb.sampleIndices, (i) => local.sampleIds[i]);
        assert.deepEqual(ids, microBatches[k], 'local indices point at the assigned samples');
        const mine = makeBatch(local.data, mb.sampleIndices, { augmenter, jobSeed: 9, epoch: a.epoch, sampleIds: ids });
        const reference = makeBatch(split, microBatches[k], { augmenter, jobSeed: 9, epoch: a.epoch });
        assert.deepEqual(mine.x, reference.x, `pixels of micro-batch ${mb.id}`);
        assert.deepEqual(mine.y, reference.y, `labels of micro-batch ${mb.id}`);
      }
    });
  }

  it('converts the rest of the assignment: kind, versions, update', () => {
    const a = assignmentFromProto(wireAssignment(split, microBatches), new Map());
    assert.equal(a.kind, AssignmentKind.Train);
    assert.deepEqual([a.globalStep, a.epoch, a.configVersion, a.weightsVersion], [41, 3, 2, 41]);
    assert.equal(a.update.kind, UpdateKind.None);
    const wait = assignmentFromProto(StepAssignment.fromPartial({ kind: StepKind.WAIT, retryAfterMs: 250, waitReason: 'below minWorkers' }), new Map());
    assert.deepEqual([wait.kind, wait.update.kind, wait.retryAfterMs, wait.waitReason], ['wait', 'none', 250, 'below minWorkers']);
  });

  it('refuses an unspecified kind and update tensors without a WEIGHTS update', () => {
    assert.throws(() => assignmentFromProto(StepAssignment.fromPartial({ globalStep: 4 }), new Map()),
      (e: unknown) => e instanceof AssignmentError && e.field === 'kind' && /step 4/.test(e.message));
    const stray = new Map([['conv1/kernel', { name: 'conv1/kernel', dtype: 'float32' as const, shape: [1], data: new Float32Array(1) }]]);
    assert.throws(() => assignmentFromProto(StepAssignment.fromPartial({ kind: StepKind.TRAIN, updateKind: ProtoUpdateKind.NONE }), stray),
      (e: unknown) => e instanceof AssignmentError && e.field === 'update_tensors');
  });

  it('refuses chunks that do not match their micro-batches, naming the field', () => {
    const a = assignmentFromProto(wireAssignment(split, microBatches), new Map());
    const s = a.samples as NonNullable<typeof a.samples>;
    const cases: Array<[string, () => unknown, string, RegExp]> = [
      ['short images', () => localSamples(1, a.microBatches, { ...s, images: s.images.subarray(1) }, 10), 'samples.images', /expected 30720 bytes for 10 samples/],
      ['missing labels', () => localSamples(1, a.microBatches, { ...s, labels: s.labels.subarray(1) }, 10), 'samples.labels', /expected 10 labels/],
      ['a label past numClasses', () => localSamples(1, a.microBatches, s, 2), 'samples.labels', /expected labels 0..1/],
      ['an id the chunk lacks', () => localSamples(1, [...a.microBatches, { id: 9, sampleIds: Uint32Array.of(2) }], s, 10), 'micro_batches', /names sample 2/],
      ['an empty micro-batch', () => localSamples(1, [{ id: 0, sampleIds: new Uint32Array(0) }], s, 10), 'micro_batches', /micro-batch 0/],
      ['no samples', () => localSamples(1, a.microBatches, undefined, 10), 'samples', /expected the pixels/],
      ['a repeated id', () => localSamples(1, a.microBatches, { ...s, sampleIds: Uint32Array.from(s.sampleIds, (id, i) => (i === 1 ? s.sampleIds[0] : id)) }, 10),
        'samples.sample_indices', /17 occurs twice/],
    ];
    for (const [what, run, field, message] of cases) {
      assert.throws(run, (e: unknown) => e instanceof AssignmentError && e.field === field && message.test(e.message), what);
    }
  });
});
