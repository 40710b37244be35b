/**
 * The fp16 conversion kernels (round to nearest even, subnormals, the range's edge) and the data plane's fp16
 * compression among DataPlanes of one process over real loopback sockets: identical bytes at every member,
 * half the payload, and a value beyond the range failing every member with the tensor's name.
 */
import assert from 'node:assert/strict';
import { DataPlane, decodeFp16, encodeFp16, FP16_MAX, AllreduceError, type AllreduceMember, type AllreduceStats } from '../common/collective';
import { Rng } from '../common';

const half = (x: number, scale = 1): number => {
  const out = new Uint16Array(1);
  encodeFp16(Float32Array.of(x), out, scale);
  return out[0];
};
const valueOf = (h: number): number => {
  const out = new Float32Array(1);
  decodeFp16(Uint16Array.of(h), out);
  return out[0];
};

describe('fp16 conversion', () => {
  it('decodes every half as IEEE binary16 and encodes it back to the same bits', () => {
    const all = Uint16Array.from({ length: 65536 }, (_, h) => h);
    const values = new Float32Array(65536);
    decodeFp16(all, values);
    assert.equal(values[0x3c00], 1);
    assert.equal(values[0xc000], -2);
    assert.equal(values[0x7bff], FP16_MAX);
    assert.equal(values[0x0001], 2 ** -24, 'smallest subnormal');
    assert.equal(values[0x03ff], 1023 * 2 ** -24, 'largest subnormal');
    assert.equal(values[0x0400], 2 ** -14, 'smallest normal');
    assert.ok(Object.is(values[0x8000], -0));
    assert.equal(values[0x7c00], Infinity);
    assert.ok(Number.isNaN(values[0x7e00]));
    const back = new Uint16Array(65536);
    encodeFp16(values, back);
    for (let h = 0; h < 65536; h++) {
      const isNaN = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
      if (isNaN) assert.ok((back[h] & 0x7c00) === 0x7c00 && (back[h] & 0x3ff) !== 0, `NaN 0x${h.toString(16)} stays NaN`);
      else assert.equal(back[h], h, `0x${h.toString(16)} round-trips`);
    }
  });

  it('rounds a tie to the even neighbour, and anything past the tie away from it, subnormals included', () => {
    // Halfway between consecutive halves a (even) and a + 1: exactly representable in float32.
    for (const a of [0x0000, 0x0002, 0x03fe, 0x0400, 0x3c00, 0x3c02, 0x7bfc]) {
      for (const base of [a, a + 1]) {
        const mid = (valueOf(base) + valueOf(base + 1)) / 2;
        assert.equal(Math.fround(mid), mid);
        assert.equal(half(mid), base % 2 === 0 ? base : base + 1, `tie between 0x${base.toString(16)} and its successor goes to the even one`);
        const above = new Float32Array(Uint32Array.of(new Uint32Array(Float32Array.of(mid).buffer)[0] + 1).buffer)[0];
        assert.equal(half(above), base + 1, `just above the tie after 0x${base.toString(16)} rounds up`);
        assert.equal(half(-mid), 0x8000 | (base % 2 === 0 ? base : base + 1), 'negative ties alike');
      }
    }
    assert.equal(half(2 ** -25), 0x0000, 'half the smallest subnormal is a tie, to the even 0');
    assert.equal(half(2 ** -25 * 1.0000001), 0x0001);
    assert.equal(half(3 * 2 ** -25), 0x0002, 'tie between subnormals 1 and 2 goes to 2');
    assert.equal(half(1e-10), 0x0000);
    assert.equal(half((1023.5) * 2 ** -24), 0x0400, 'the largest subnormal rounds up into the smallest normal');
  });

  it('is the nearest half for random floats over the whole range (checked against its neighbours)', () => {
    const rng = new Rng('fp16-random');
    for (let n = 0; n < 20_000; n++) {
      const x = Math.fround((rng.next() * 2 - 1) * 2 ** (rng.int(44) - 28));
      const h = half(x);
      const v = valueOf(h);
      const err = Math.abs(v - x);
      for (const neighbour of [h - 1, h + 1]) {
        if (neighbour < 0 || (neighbour & 0x7fff) >= 0x7c00 || (neighbour ^ h) & 0x8000) continue;
        assert.ok(err <= Math.abs(valueOf(neighbour) - x), `${x} -> 0x${h.toString(16)} (${v}) is not the nearest half`);
      }
    }
  });

  it('reports the first value beyond the range (65520 and up round to Inf, 65519 to 65504), NaN too', () => {
    assert.equal(half(65519), 0x7bff);
    assert.equal(half(65520), 0x7c00);
    assert.equal(half(-1e6), 0xfc00);
    const out = new Uint16Array(4);
    assert.equal(encodeFp16(Float32Array.of(1, 65504, 70000, NaN), out), 2);
    assert.equal(encodeFp16(Float32Array.of(1, 2, NaN), new Uint16Array(3)), 2);
    assert.equal(encodeFp16(Float32Array.of(1, 2, 3), new Uint16Array(3)), -1);
    assert.equal(encodeFp16(Float32Array.of(1, 1000), new Uint16Array(2), 100), 1, 'prescaling by 100 puts 1000 out of range');
    assert.equal(half(3, 0.5), 0x3e00, 'prescale 0.5: 1.5');
    assert.equal(decodeFp16(Uint16Array.of(0x3c00, 0x7c00), new Float32Array(2), 2), 1);
    assert.throws(() => encodeFp16(new Float32Array(3), new Uint16Array(2)), /expected a destination of 3 halves, got 2/);
  });
});

describe('collective allreduce with fp16 compression (one process)', () => {
  let planes: DataPlane[] = [];
  beforeEach(async () => {
    planes = await Promise.all([0, 1, 2].map(() => DataPlane.listen()));
  });
  afterEach(async () => {
    await Promise.all(planes.map((p) => p.close()));
  });

  const tensors = [{ name: 'conv/kernel', shape: [3, 100] }, { name: 'dense/bias', shape: [101] }];
  const FLOATS = 401;
  const members = (): AllreduceMember[] => [
    { id: 'w0', address: planes[0].address },
    { id: 'w1', address: planes[1].address },
    { id: 'coordinator', address: planes[2].address, role: 'observer' },
  ];
  function inputs(seed: string, ...big: { member: number; index: number; value: number }[]): Float32Array[] {
    const rng = new Rng(seed);
    return [0, 1, 2].map((m) => {
      const a = Float32Array.from({ length: FLOATS }, () => (rng.next() * 2 - 1) * 10 ** (rng.int(6) - 3));
      for (const b of big) if (b.member === m) a[b.index] = b.value;
      return a;
    });
  }
  async function reduce(data: Float32Array[], prescale: number, key: string, compressed = [true, true, true]): Promise<Array<AllreduceStats | AllreduceError>> {
    const list = members();
    const settled = await Promise.allSettled(planes.map((p, rank) => p.allreduce({
      key, members: list, rank, timeoutMs: 10_000, tensors, ...(compressed[rank] ? { compression: { type: 'fp16' as const, prescale } } : {}),
    }, data[rank])));
    return settled.map((s) => (s.status === 'fulfilled' ? s.value : s.reason as AllreduceError));
  }

  it('leaves every member, the observer included, with the same bytes, near the float32 sum, in half the payload', async () => {
    const data = inputs('fp16-sum');
    const exact = data[0].map((x, i) => x + data[1][i]);
    const copies = data.map((d) => Float32Array.from(d));
    const plain = await reduce(data.map((d) => Float32Array.from(d)), 1, 'plain', [false, false, false]);
    const stats = await reduce(data, 4, 'fp16');
    stats.forEach((s, m) => assert.ok(!(s instanceof Error), `member ${m}: ${String(s)}`));
    const bytes = (a: Float32Array): string => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('hex');
    assert.equal(bytes(data[1]), bytes(data[0]));
    assert.equal(bytes(data[2]), bytes(data[0]));
    for (let i = 0; i < FLOATS; i++) {
      // Each part rounded to fp16 (half an ulp: 2^-11 relative), then their sum once more, plus the subnormal floor.
      const bound = 2 ** -11 * (Math.abs(copies[0][i]) + Math.abs(copies[1][i]) + Math.abs(exact[i])) * (1 + 2 ** -9) + 2 ** -24;
      assert.ok(Math.abs(data[0][i] - exact[i]) <= bound,
        `element ${i}: ${data[0][i]} against the float32 sum ${exact[i]}`);
    }
    assert.equal((stats[0] as AllreduceStats).bytesSent * 2, (plain[0] as AllreduceStats).bytesSent, 'fp16 sends half the bytes');
  });

  it('fails every member with the tensor\'s name when a sum leaves the fp16 range, never training on an Inf', async () => {
    const out = await reduce(inputs('fp16-overflow', { member: 1, index: 350, value: 40_000 }), 2, 'overflow');
    out.forEach((e, m) => {
      assert.ok(e instanceof AllreduceError, `member ${m} should fail, got ${JSON.stringify(e)}`);
      assert.match(e.message, /tensor 'dense\/bias' at element 50 is beyond the fp16 range \(±65504\) after prescaling by 2/);
    });
    // Out of range with opposite signs: +Inf and -Inf meet as NaN in the sum, still reported as the range.
    const opposite = await reduce(inputs('fp16-opposite', { member: 0, index: 350, value: 40_000 }, { member: 1, index: 350, value: -40_000 }), 2, 'opposite');
    for (const e of opposite) assert.match(String(e), /tensor 'dense\/bias' at element 50 is beyond the fp16 range/);
    const nan = await reduce(inputs('fp16-nan', { member: 0, index: 3, value: NaN }), 1, 'nan');
    for (const e of nan) assert.match(String(e), /tensor 'conv\/kernel' at element 3 is NaN/);
  });

  it('fails every member at once when one of them does not compress', async () => {
    const out = await reduce(inputs('fp16-mixed'), 1, 'mixed', [true, false, true]);
    for (const e of out) assert.ok(e instanceof AllreduceError, `expected AllreduceError, got ${JSON.stringify(e)}`);
    assert.ok(out.some((e) => /fp16 prescaled by 1/.test(String(e))), out.map(String).join('\n'));
  });
});
