import assert from 'node:assert/strict';
import { HeldSumsError } from '../worker/errors';
import { HeldSums } from '../worker/held-sums';
import { RecycledBuffers } from '../common';

const SPECS = [
  { name: 'w', dtype: 'float32' as const, shape: [2, 2] },
  { name: 'b', dtype: 'float32' as const, shape: [2] },
];

/** A share's sums written into `buffer` as the share runner writes them: views on one buffer, in spec order. */
function sums(buffer: Float32Array, base: number) {
  buffer.forEach((_, i) => (buffer[i] = base + i));
  return [
    { name: 'w', dtype: 'float32' as const, shape: [2, 2], data: buffer.subarray(0, 4) },
    { name: 'b', dtype: 'float32' as const, shape: [2], data: buffer.subarray(4, 6) },
  ];
}

describe('recycled buffers', () => {
  it('hands a given-back buffer out again for the same size, and only its own', () => {
    const pool = new RecycledBuffers(1);
    const a = pool.take(6);
    assert.equal(a.length, 6);
    assert.notEqual(pool.take(6).buffer, a.buffer, 'a held buffer was handed out twice');
    pool.give(a.buffer);
    assert.equal(pool.take(8).length, 8, 'another size comes from elsewhere');
    assert.equal(pool.take(6).buffer, a.buffer);
    const foreign = new Float32Array(6);
    pool.give(foreign.buffer);
    assert.notEqual(pool.take(6).buffer, foreign.buffer, 'a buffer it did not hand out was taken back');
  });

  it('keeps at most perSize free buffers of a size', () => {
    const pool = new RecycledBuffers(1);
    const [a, b] = [pool.take(3), pool.take(3)];
    pool.give(a.buffer);
    pool.give(b.buffer);
    assert.equal(pool.take(3).buffer, a.buffer);
    const c = pool.take(3);
    assert.notEqual(c.buffer, b.buffer);
    assert.notEqual(c.buffer, a.buffer);
  });
});

describe('held sums: recycled buffers, unchanged contents', () => {
  it('lays out the held sums as the allreduce input, in one buffer rewritten by every call', () => {
    const held = new HeldSums();
    held.add(4, [0, 1], sums(held.sumsBuffer(6), 10));
    const first = held.vector(4, SPECS, [{ start: 0, end: 2 }]);
    assert.deepEqual([...first], [10, 11, 12, 13, 14, 15]);
    first.fill(0); // the allreduce writes its result there
    const again = held.vector(4, SPECS, [{ start: 0, end: 2 }]);
    assert.equal(again.buffer, first.buffer);
    assert.deepEqual([...again], [10, 11, 12, 13, 14, 15], 'a new attempt must start from the held sums');
  });

  it('hands a dropped share\'s buffer out for a later share, never one still held', () => {
    const held = new HeldSums();
    const a = held.sumsBuffer(6);
    held.add(1, [0], sums(a, 1));
    const b = held.sumsBuffer(6);
    assert.notEqual(b.buffer, a.buffer, 'the held share\'s buffer was handed out again');
    held.add(2, [0], sums(b, 2)); // another step: step 1's share is dropped
    assert.deepEqual([...held.vector(2, SPECS, [{ start: 0, end: 1 }])], [2, 3, 4, 5, 6, 7]);
    assert.equal(held.sumsBuffer(6).buffer, a.buffer);
    held.clear();
    assert.equal(held.sumsBuffer(6).buffer, b.buffer);
    assert.throws(() => held.vector(2, SPECS, [{ start: 0, end: 1 }]), HeldSumsError);
  });
});
