import assert from 'node:assert/strict';
import { GetWeightsResponse, HeldResult, PushGradientsRequest, SessionOrder, TensorChunk, TensorDtype } from '../proto';
import { Rng } from '../common/random';
import {
  COORDINATOR_SERVICE,
  MessageTooLargeError,
  NonFiniteValueError,
  TensorAssembler,
  TensorCodecError,
  WireTensor,
  encodeTensor,
  encodeTensors,
  specOf,
} from '../common/wire';
import { assertFinite, byteSwapInPlace } from '../common/wire/tensor-codec';
import { bitsEqual, trickyFloats } from './support/floats';


function shuffled<T>(items: T[], seed: number): T[] {
  const perm = new Rng(seed).permutation(items.length);
  return Array.from(perm, (i) => items[i]);
}

const weight: WireTensor = { name: 'conv1/kernel', dtype: 'float32', shape: [3, 3, 3, 32], data: trickyFloats(864, 1) };

describe('tensor-codec', () => {
  describe('encode and reassemble', () => {
    it('round-trips float32, int32 and uint8 tensors bit-exactly, chunks in any order', () => {
      const tensors: WireTensor[] = [
        { name: 'dense/kernel', dtype: 'float32', shape: [100, 70], data: trickyFloats(7000, 2) },
        { name: 'step', dtype: 'int32', shape: [], data: Int32Array.of(-2147483648) },
        { name: 'labels', dtype: 'uint8', shape: [1001], data: Uint8Array.from({ length: 1001 }, (_, i) => i % 251) },
        { name: 'empty', dtype: 'float32', shape: [0, 4], data: new Float32Array(0) },
      ];
      const chunks = [...encodeTensors(tensors, { chunkBytes: 1000 })];
      assert.ok(chunks.length > 30, `expected many chunks, got ${chunks.length}`);
      const asm = new TensorAssembler({ expected: tensors.map(specOf) });
      for (const c of shuffled(chunks, 3)) asm.add(c);
      assert.ok(asm.complete);
      const out = asm.finish();
      assert.deepEqual([...out.keys()], tensors.map((t) => t.name));
      for (const t of tensors) {
        const got = out.get(t.name) as WireTensor;
        assert.equal(got.dtype, t.dtype);
        assert.deepEqual(got.shape, t.shape);
        assert.equal(got.data.constructor, t.data.constructor);
        assert.ok(bitsEqual(got.data, t.data), `${t.name} differs`);
      }
      assert.ok(Object.is(out.get('dense/kernel')?.data[0 * 7919 % 7000], -0), '-0 kept its sign');
    });

    it('cuts at element boundaries, stays under the message limit and sends views, not copies', () => {
      const limit = 1000;
      const chunks = [...encodeTensor(weight, { maxMessageBytes: limit, chunkBytes: 1 << 20 })];
      assert.equal(chunks.length, Math.ceil(864 * 4 / (Math.floor((limit - 64 - 12 - 4 * 5) / 4) * 4)));
      let expectedOffset = 0;
      for (const c of chunks) {
        assert.equal(c.offsetBytes, expectedOffset);
        assert.equal(c.totalBytes, 864 * 4);
        assert.equal(c.data.length % 4, 0);
        const wire = COORDINATOR_SERVICE.pushGradients.requestSerialize({ payload: { $case: 'chunk', chunk: c } });
        assert.ok(wire.length <= limit, `message of ${wire.length} bytes over the ${limit}-byte limit`);
        assert.equal(c.data.buffer, weight.data.buffer, 'chunk data should be a view of the tensor');
        expectedOffset += c.data.length;
      }
      assert.equal(expectedOffset, 864 * 4);
    });

    it('refuses to encode a tensor whose data does not match its shape or dtype, or cannot fit a message', () => {
      assert.throws(() => [...encodeTensor({ ...weight, shape: [3, 3, 3, 31] })],
        (e: unknown) => e instanceof TensorCodecError && /shape \[3,3,3,31\] has 837 elements, data has 864/.test(e.message));
      assert.throws(() => [...encodeTensor({ ...weight, dtype: 'int32' })], /expected a int32 array, got float32/);
      assert.throws(() => [...encodeTensor(weight, { maxMessageBytes: 80 })],
        (e: unknown) => e instanceof MessageTooLargeError && e.limitBytes === 80);
    });

    it('assembles into memory the caller provides, and refuses memory of the wrong size or type', () => {
      const target = new Float32Array(864);
      const asm = new TensorAssembler({ expected: [specOf(weight)], into: () => target });
      for (const c of encodeTensor(weight, { chunkBytes: 1000 })) asm.add(c);
      const got = asm.finish().get('conv1/kernel') as WireTensor;
      assert.equal(got.data.buffer, target.buffer, 'expected the provided buffer, not a copy');
      assert.ok(bitsEqual(target, weight.data));
      const chunk = [...encodeTensor(weight)][0];
      assert.throws(() => new TensorAssembler({ into: () => new Float32Array(863) }).add(chunk),
        /buffer to assemble into must be a float32 array of 864 elements, got Float32Array of 863/);
      assert.throws(() => new TensorAssembler({ into: () => new Int32Array(864) }).add(chunk), /got Int32Array of 864/);
    });

    it('byte-swaps elements for big-endian hosts', () => {
      const le = Buffer.from(Float32Array.of(1, -2).buffer); // 00 00 80 3f 00 00 00 c0
      const bytes = Uint8Array.from(le);
      byteSwapInPlace(bytes, 4);
      assert.deepEqual([...bytes], [0x3f, 0x80, 0, 0, 0xc0, 0, 0, 0]);
      assert.equal(Buffer.from(bytes).readFloatBE(0), 1);
      byteSwapInPlace(bytes, 4);
      assert.ok(le.equals(bytes));
    });
  });

  describe('validation while reassembling', () => {
    const chunks = (): TensorChunk[] => [...encodeTensor(weight, { chunkBytes: 1024 })];
    const expected = [specOf(weight)];

    it('rejects a wrong total size', () => {
      const asm = new TensorAssembler();
      assert.throws(() => asm.add({ ...chunks()[0], totalBytes: 4000 }),
        (e: unknown) => e instanceof TensorCodecError && e.tensorName === 'conv1/kernel' &&
          /is 3456 bytes, chunk says total_bytes 4000/.test(e.message));
    });

    it('rejects a missing chunk when finishing, naming the gap', () => {
      const asm = new TensorAssembler({ expected });
      const all = chunks();
      all.filter((_, i) => i !== 1).forEach((c) => asm.add(c));
      assert.equal(asm.complete, false);
      assert.throws(() => asm.finish(), /tensor 'conv1\/kernel' is incomplete: 3 chunks cover 2432 of 3456 bytes, first gap at byte 1024/);
    });

    it('rejects a tensor of the manifest that never arrives', () => {
      const asm = new TensorAssembler({ expected: [...expected, { name: 'conv1/bias', dtype: 'float32', shape: [32] }] });
      chunks().forEach((c) => asm.add(c));
      assert.throws(() => asm.finish(), /expected 2 tensors, no chunk arrived for 1: 'conv1\/bias'/);
    });

    it('rejects overlapping and duplicated chunks', () => {
      const asm = new TensorAssembler({ expected });
      const all = chunks();
      asm.add(all[0]);
      asm.add(all[2]);
      const overlap = { ...all[1], offsetBytes: 1020 };
      assert.throws(() => asm.add(overlap), /slice \[1020, 2044\) overlaps bytes \[0, 1024\)/);
      asm.add(all[1]);
      assert.throws(() => asm.add(all[2]), /overlaps bytes \[0, 3072\) already received/);
    });

    it('rejects a name the manifest does not list and a shape or dtype that differs from it', () => {
      const asm = new TensorAssembler({ expected });
      assert.throws(() => asm.add({ ...chunks()[0], name: 'conv9/kernel' }),
        (e: unknown) => e instanceof TensorCodecError && e.tensorName === 'conv9/kernel' &&
          /which the manifest does not list \(expected one of 'conv1\/kernel'\)/.test(e.message));
      assert.throws(() => asm.add({ ...chunks()[0], shape: [3, 3, 32, 3] }),
        /expected shape \[3,3,3,32\] float32, chunk has shape \[3,3,32,3\] float32/);
      assert.throws(() => asm.add({ ...chunks()[0], dtype: TensorDtype.INT32 }), /chunk has shape \[3,3,3,32\] int32/);
      assert.throws(() => asm.add({ ...chunks()[0], dtype: 9 as TensorDtype }), /expected dtype float32, int32 or uint8, got enum value 9/);
    });

    it('rejects slices that are misaligned or reach past the end', () => {
      const asm = new TensorAssembler();
      const c = chunks()[3];
      assert.throws(() => asm.add({ ...c, offsetBytes: 3074 }), /expected slices aligned to 4-byte elements/);
      assert.throws(() => asm.add({ ...c, offsetBytes: 3072 + 4 }), /slice \[3076, 3460\) reaches past its 3456 bytes/);
    });

    it('rejects NaN and Infinity naming the tensor and the index of the first bad value', () => {
      const bad = new Float32Array(weight.data);
      bad[700] = Number.POSITIVE_INFINITY;
      bad[701] = Number.NaN;
      const asm = new TensorAssembler({ expected });
      const all = [...encodeTensor({ ...weight, data: bad }, { chunkBytes: 1024 })];
      asm.add(all[0]);
      asm.add(all[1]);
      assert.throws(() => asm.add(all[2]), (e: unknown) => {
        assert.ok(e instanceof NonFiniteValueError);
        assert.equal(e.tensorName, 'conv1/kernel');
        assert.equal(e.index, 700);
        assert.equal(e.value, Number.POSITIVE_INFINITY);
        assert.match(e.message, /tensor 'conv1\/kernel' has Infinity at element 700 of 864/);
        return true;
      });
      const nan = new Float32Array(4);
      nan[2] = Number.NaN;
      assert.throws(() => new TensorAssembler().add([...encodeTensor({ name: 'g', dtype: 'float32', shape: [4], data: nan })][0]),
        /tensor 'g' has NaN at element 2 of 4/);
      // Checking can be switched off for tensors that may legitimately hold them.
      const lax = new TensorAssembler({ checkFinite: false });
      lax.add([...encodeTensor({ name: 'g', dtype: 'float32', shape: [4], data: nan })][0]);
      assert.ok(Number.isNaN(lax.finish().get('g')?.data[2]));
    });

    it('finds a NaN or an Infinity at any place of a vector of any length, the remainder after groups of four included', () => {
      for (let n = 0; n <= 9; n++) {
        assert.doesNotThrow(() => assertFinite('v', new Float32Array(n).fill(-3.5)), `${n} finite values`);
        for (let at = 0; at < n; at++) {
          for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
            const values = new Float32Array(n).fill(1e30);
            values[at] = bad;
            assert.throws(() => assertFinite('v', values), (e: unknown) => e instanceof NonFiniteValueError && e.index === at,
              `${bad} at ${at} of ${n}`);
          }
        }
      }
    });

    it('rejects a chunk over the message limit and a tensor over the allocation limit', () => {
      assert.throws(() => new TensorAssembler({ maxMessageBytes: 1000 }).add(chunks()[0]),
        (e: unknown) => e instanceof MessageTooLargeError && e.sizeBytes === 1024 && e.limitBytes === 1000);
      assert.throws(() => new TensorAssembler({ maxTensorBytes: 3000 }).add(chunks()[0]),
        /tensor 'conv1\/kernel' is 3456 bytes, over the 3000-byte message limit/);
    });
  });

  describe('one-copy serializers of COORDINATOR_SERVICE', () => {
    const sample: TensorChunk[] = [
      { ...[...encodeTensor(weight, { chunkBytes: 512 })][1] },
      { name: 'x'.repeat(300), dtype: TensorDtype.UINT8, shape: [2 ** 20, 70000], offsetBytes: 2 ** 40 + 3, totalBytes: 2 ** 52, data: Buffer.from([1, 2, 3]) },
      { name: '', dtype: TensorDtype.UNSPECIFIED, shape: [], offsetBytes: 0, totalBytes: 0, data: Buffer.alloc(0) },
      { name: 'big', dtype: TensorDtype.FLOAT32, shape: [40000], offsetBytes: 0, totalBytes: 160000, data: Buffer.alloc(160000, 7) },
    ];
    const kinds = [
      { label: 'PushGradientsRequest', codec: PushGradientsRequest, ser: COORDINATOR_SERVICE.pushGradients.requestSerialize, de: COORDINATOR_SERVICE.pushGradients.requestDeserialize },
      { label: 'SessionOrder', codec: SessionOrder, ser: COORDINATOR_SERVICE.session.responseSerialize, de: COORDINATOR_SERVICE.session.responseDeserialize },
      { label: 'GetWeightsResponse', codec: GetWeightsResponse, ser: COORDINATOR_SERVICE.getWeights.responseSerialize, de: COORDINATOR_SERVICE.getWeights.responseDeserialize },
    ] as const;

    for (const k of kinds) {
      it(`writes the same bytes as the generated encoder and reads them back (${k.label})`, () => {
        const codec = k.codec as { encode(m: unknown): { finish(): Uint8Array }; decode(b: Uint8Array): unknown };
        const ser = k.ser as (m: unknown) => Buffer;
        const de = k.de as (b: Buffer) => unknown;
        for (const chunk of sample) {
          const msg = { payload: { $case: 'chunk', chunk } };
          const generated = Buffer.from(codec.encode(msg).finish());
          const fast = ser(msg);
          assert.ok(fast.equals(generated), `${k.label} bytes differ for chunk '${chunk.name.slice(0, 10)}'`);
          assert.deepEqual(de(fast), codec.decode(generated));
        }
        // Messages that are not chunks take the generated path both ways.
        const other = k.label === 'PushGradientsRequest'
          ? { payload: { $case: 'header', header: { workerId: 'w1', globalStep: 5, configVersion: 2, sampleCount: 16, lossSum: 1.5, correctCount: 9, correctTop5: 12, microBatchIds: [0], tensors: [], statDeltas: [], weightsHash: '', weightsVersion: 0 } } }
          : { payload: undefined };
        const bytes = ser(other);
        assert.ok(bytes.equals(Buffer.from(codec.encode(other).finish())));
        assert.deepEqual(de(bytes), codec.decode(bytes));
      });
    }

    it('writes a chunk beside another field through the generated encoder, losing neither (SessionOrder.heldAnswer)', () => {
      const msg: SessionOrder = { payload: { $case: 'chunk', chunk: sample[0] }, heldAnswer: HeldResult.fromPartial({ globalStep: 7, code: 9, details: 'stale' }) };
      const wire = COORDINATOR_SERVICE.session.responseSerialize(msg);
      assert.ok(wire.equals(Buffer.from(SessionOrder.encode(msg).finish())));
      assert.deepEqual(COORDINATOR_SERVICE.session.responseDeserialize(wire), SessionOrder.decode(wire));
      assert.notEqual(COORDINATOR_SERVICE.session.responseDeserialize(wire).heldAnswer, undefined);
    });

    it('keeps each message it wrote intact across later ones, and writes on correctly after a message that failed to encode', () => {
      const ser = COORDINATOR_SERVICE.session.responseSerialize;
      const order = (globalStep: number, details: string, code = 0): SessionOrder => ({ payload: undefined, heldAnswer: HeldResult.fromPartial({ globalStep, code, details }) });
      const first = order(3, 'x'.repeat(5000));
      const firstWire = ser(first);
      const secondWire = ser(order(4, 'short'));
      assert.ok(firstWire.equals(Buffer.from(SessionOrder.encode(first).finish())), 'a later message overwrote an earlier one');
      assert.ok(secondWire.equals(Buffer.from(SessionOrder.encode(order(4, 'short')).finish())));
      assert.throws(() => ser(order(6, 'y'.repeat(300), -1)), /uint32/);
      const after = order(5, 'z'.repeat(200));
      assert.ok(ser(after).equals(Buffer.from(SessionOrder.encode(after).finish())), 'the failed message left bytes behind');
    });

    it('reads chunk data as a view of the received buffer', () => {
      const wire = COORDINATOR_SERVICE.pushGradients.requestSerialize({ payload: { $case: 'chunk', chunk: sample[3] } });
      const msg = COORDINATOR_SERVICE.pushGradients.requestDeserialize(wire);
      assert.equal(msg.payload?.$case, 'chunk');
      if (msg.payload?.$case === 'chunk') assert.equal(msg.payload.chunk.data.buffer, wire.buffer);
    });
  });
});
