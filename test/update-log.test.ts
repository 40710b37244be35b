import assert from 'node:assert/strict';
import { UpdateKind, type WireTensor } from '../common';
import { UpdateLog } from '../coordinator/step/update-log';

const ORDER = { key: 'job/step-1/attempt-0', learningRates: { backbone: 1e-3, head: 1e-2 }, sampleCount: 8, microBatchCount: 2 };

/** A reduced update whose sums are views on `vector`, as the commit makes them. */
function reduced(vector: Float32Array) {
  const sums: WireTensor[] = [
    { name: 'w', dtype: 'float32', shape: [2], data: vector.subarray(0, 2) },
    { name: 'b', dtype: 'float32', shape: [1], data: vector.subarray(2, 3) },
  ];
  return { order: ORDER, members: new Set(['worker-1', 'worker-2']), sums };
}

describe('update log: the allreduce vectors it hands out', () => {
  it('hands a replaced update\'s vector out again, never the one still held', () => {
    const log = new UpdateLog();
    const first = log.vector(3);
    log.record(1, () => [], reduced(first));
    const second = log.vector(3);
    assert.notEqual(second.buffer, first.buffer, 'the held update\'s vector was handed out');
    log.record(2, () => [], reduced(second));
    assert.equal(log.vector(3).buffer, first.buffer);
    log.clear();
    assert.equal(log.vector(3).buffer, second.buffer);
  });

  it('keeps a vector whose sums were sent to a worker out of reuse', () => {
    const log = new UpdateLog();
    const first = log.vector(3);
    log.record(1, () => [], reduced(first));
    // worker-3 was no member: it gets the sums themselves, and the message may still be reading them.
    const payload = log.payloadFor(0, 1, false, 'worker-3', true);
    assert.equal(payload.kind, UpdateKind.Apply);
    assert.equal(payload.tensors[0].data.buffer, first.buffer);
    log.record(2, () => [], reduced(log.vector(3)));
    assert.notEqual(log.vector(3).buffer, first.buffer);
    // A member gets no tensors: its vector goes back as usual.
    const member = new UpdateLog();
    const v = member.vector(3);
    member.record(1, () => [], reduced(v));
    assert.deepEqual(member.payloadFor(0, 1, false, 'worker-1', true).tensors, []);
    member.record(2, () => []);
    assert.equal(member.vector(3).buffer, v.buffer);
  });
});
