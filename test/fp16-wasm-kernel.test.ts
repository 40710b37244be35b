/**
 * The fp16 SIMD kernel (common/compute/fp16-wasm-kernel.ts, behind collective's encodeFp16/decodeFp16)
 * against the scalar definition (encodeFp16Scalar/decodeFp16Scalar), bit for bit: every half, every rounding
 * boundary between halves, 1M random float32 bit patterns, with and without a scale (a float32 scale and one
 * that is not), at lengths that are not whole SIMD steps or blocks, and the first non-finite index returned.
 * test/fp16.test.ts checks what the rounding is (nearest even, the range's edge) on the same functions.
 */
import assert from 'node:assert/strict';
import { decodeFp16, decodeFp16Scalar, encodeFp16, encodeFp16Scalar } from '../common/collective';
import { Rng } from '../common';

/** Scales: none, a float32 (one float32 product), and two that are not (a float64 product rounded once). */
const SCALES = [1, 4, 0.1, 1 / 3];
/** Elements per block the kernel copies through its memory (fp16-wasm-kernel.ts's BLOCK). */
const BLOCK = 16384;

const floatsOf = (bits: Uint32Array): Float32Array => new Float32Array(bits.buffer, bits.byteOffset, bits.length);
const hex = (x: number): string => `0x${x.toString(16)}`;

/** Asserts the kernel's halves and return value equal the scalar definition's for `values`. */
function assertEncodesAlike(values: Float32Array, scale: number, what: string): void {
  const [want, got] = [new Uint16Array(values.length), new Uint16Array(values.length)];
  const wantBad = encodeFp16Scalar(values, want, scale);
  const gotBad = encodeFp16(values, got, scale);
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  for (let i = 0; i < values.length; i++) {
    if (got[i] !== want[i]) assert.fail(`${what}, scale ${scale}: float32 ${hex(bits[i])} at ${i} encodes to ${hex(got[i])}, expected ${hex(want[i])}`);
  }
  assert.equal(gotBad, wantBad, `${what}, scale ${scale}: first non-finite index`);
}

/** Asserts the kernel's float32 bits and return value equal the scalar definition's for `halves`. */
function assertDecodesAlike(halves: Uint16Array, scale: number, what: string): void {
  const [want, got] = [new Float32Array(halves.length), new Float32Array(halves.length)];
  const wantBad = decodeFp16Scalar(halves, want, scale);
  const gotBad = decodeFp16(halves, got, scale);
  const [wantBits, gotBits] = [new Uint32Array(want.buffer), new Uint32Array(got.buffer)];
  for (let i = 0; i < halves.length; i++) {
    if (gotBits[i] !== wantBits[i]) assert.fail(`${what}, scale ${scale}: half ${hex(halves[i])} decodes to ${hex(gotBits[i])}, expected ${hex(wantBits[i])}`);
  }
  assert.equal(gotBad, wantBad, `${what}, scale ${scale}: first non-finite index`);
}

/**
 * float32 bit patterns at every rounding boundary of the half range, both signs: each finite half's value,
 * the tie with its successor (65520 after 65504: the overflow), and one float32 ulp either side of each.
 */
function boundaryBits(): Uint32Array {
  const halves = Uint16Array.from({ length: 0x7c00 }, (_, h) => h);
  const values = new Float32Array(0x7c00);
  decodeFp16Scalar(halves, values);
  const out: number[] = [];
  const bitsOf = (x: number) => new Uint32Array(Float32Array.of(x).buffer)[0];
  for (let h = 0; h < 0x7c00; h++) {
    const next = h === 0x7bff ? 65536 : values[h + 1];
    const v = bitsOf(values[h]);
    const tie = bitsOf((values[h] + next) / 2);
    for (const b of [v - 1, v, v + 1, tie - 1, tie, tie + 1]) if (b >= 0) out.push(b, (b | 0x80000000) >>> 0);
  }
  const named = [
    0x00000001, 0x007fffff, 0x00800000, // float32 subnormals and its smallest normal: all round to ±0
    0x33000000, 0x33000001, 0x337fffff, 0x33800000, // 2^-25 (a tie, to 0), just above, 2^-24
    0x387fc000, 0x387fe000, 0x38800000, // the largest subnormal, the tie with 2^-14, 2^-14
    0x477fe000, 0x477fefff, 0x477ff000, 0x477ff001, 0x7f7fffff, // 65504, just under 65520, 65520 (Inf), the largest float32
    0x7f800000, 0x7f800001, 0x7fa00000, 0x7fc00000, 0x7fffffff, // Inf, signalling and quiet NaNs
  ];
  for (const b of named) out.push(b, (b | 0x80000000) >>> 0);
  return Uint32Array.from(out);
}

describe('fp16 SIMD kernel against the scalar definition', () => {
  it('decodes all 65536 halves to the same float32 bits, with and without a scale', () => {
    const all = Uint16Array.from({ length: 65536 }, (_, h) => h);
    for (const scale of SCALES) assertDecodesAlike(all, scale, 'every half');
    const out = new Float32Array(2);
    decodeFp16(Uint16Array.of(0x3c00, 0x7e00), out, 0.25);
    assert.equal(out[0], 0.25, 'one prescaled by 0.25');
    assert.ok(Number.isNaN(out[1]), 'a NaN half stays NaN');
  });

  it('encodes every rounding boundary alike: ties to even both ways, subnormals, 65504, 65520 -> Inf, -0, NaN, Inf', () => {
    const bits = boundaryBits();
    for (const scale of SCALES) assertEncodesAlike(floatsOf(bits), scale, 'boundaries');
    const h = new Uint16Array(6);
    encodeFp16(Float32Array.of(-0, 2 ** -25, 3 * 2 ** -25, 65519, 65520, NaN), h);
    assert.deepEqual([...h], [0x8000, 0x0000, 0x0002, 0x7bff, 0x7c00, 0x7e00]);
  });

  it('encodes 1M random float32 bit patterns alike, with and without a scale', () => {
    const rng = new Rng('fp16-kernel-random');
    const bits = Uint32Array.from({ length: 1 << 20 }, () => Math.floor(rng.next() * 2 ** 32));
    for (const scale of SCALES) assertEncodesAlike(floatsOf(bits), scale, 'random bits');
  });

  it('converts lengths that are not whole SIMD steps or blocks, and views into larger buffers, alike', () => {
    const rng = new Rng('fp16-kernel-lengths');
    const lengths = [0, 1, 3, 7, 8, 9, 15, 17, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK + 5];
    for (const n of lengths) {
      const buffer = Float32Array.from({ length: n + 3 }, () => (rng.next() * 2 - 1) * 2 ** (rng.int(40) - 26));
      const values = buffer.subarray(3); // a byte offset of 12: not 16-byte aligned
      const halves = new Uint16Array(n);
      encodeFp16Scalar(values, halves);
      for (const scale of SCALES) {
        assertEncodesAlike(values, scale, `length ${n}`);
        assertDecodesAlike(halves, scale, `length ${n}`);
      }
    }
  });

  it('returns the first non-finite index wherever it falls, and nothing from an earlier call\'s values', () => {
    const n = 2 * BLOCK + 5;
    for (const at of [0, 6, 7, 8, BLOCK - 1, BLOCK, n - 1]) {
      for (const bad of [70_000, -Infinity, NaN]) {
        const values = Float32Array.from({ length: n }, (_, i) => (i % 97) - 48);
        values[at] = bad;
        if (at + 3 < n) values[at + 3] = Infinity; // a later one is not reported
        assertEncodesAlike(values, 1, `${bad} at ${at}`);
        assert.equal(encodeFp16(values, new Uint16Array(n)), at);
        const halves = new Uint16Array(n);
        encodeFp16Scalar(values, halves);
        assertDecodesAlike(halves, 0.5, `${bad} at ${at}`);
        assert.equal(decodeFp16(halves, new Float32Array(n)), at);
      }
    }
    // A NaN left in the kernel's block by a longer call lies beyond a shorter call's end: it is not reported.
    encodeFp16(Float32Array.of(1, 2, 3, 4, 5, 6, 7, NaN), new Uint16Array(8));
    assert.equal(encodeFp16(Float32Array.of(1, 2, 3), new Uint16Array(3)), -1);
    decodeFp16(Uint16Array.of(1, 2, 3, 4, 5, 6, 7, 0x7c00), new Float32Array(8));
    assert.equal(decodeFp16(Uint16Array.of(1, 2, 3), new Float32Array(3)), -1);
  });

  it('rejects a destination of the wrong length, naming both lengths', () => {
    assert.throws(() => encodeFp16(new Float32Array(9), new Uint16Array(8)), /encodeFp16: expected a destination of 9 halves, got 8/);
    assert.throws(() => decodeFp16(new Uint16Array(9), new Float32Array(10)), /decodeFp16: expected a destination of 9 floats, got 10/);
  });
});
