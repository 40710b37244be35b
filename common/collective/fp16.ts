import { decodeFp16Simd, encodeFp16Simd } from '../compute';

/**
 * IEEE 754 half precision (binary16) conversion for the data plane's `fp16` compression. Node 20 has no
 * Float16Array, so `encodeFp16` and `decodeFp16` run a WebAssembly SIMD kernel (common/compute's
 * fp16-wasm-kernel.ts: 8 values a step). The scalar loops here over the float32 bit patterns are the
 * definition: the kernel matches them bit for bit (test/fp16-wasm-kernel.test.ts), and bench/fp16-convert.ts
 * times both.
 *
 * Rounding is round to nearest, ties to even, as IEEE 754 and every hardware conversion do, subnormals
 * included. A value beyond the half range (|x| >= 65520 rounds to infinity) becomes ±Infinity and NaN stays
 * NaN: the encoder reports the first such index, and the decoder reports the first non-finite half it reads,
 * so the caller can name the tensor instead of training on an Inf.
 */

/** Largest finite half: 65504. */
export const FP16_MAX = 65504;

/** float32 bit patterns: |x| from which a half rounds to infinity (65520), and the half range's edges. */
const F32_HALF_OVERFLOW = 0x477ff000;
const F32_HALF_MIN_NORMAL = 0x38800000; // 2^-14
const F32_HALF_SUBNORMAL_TIE = 0x33000000; // 2^-25: half the smallest subnormal
const F32_INFINITY = 0x7f800000;
/** (127 - 15) << 23: the exponent bias difference, in float32 exponent bits. */
const REBIAS = 0x38000000;

/** The half bit pattern of the float32 with bit pattern `bits`, rounded to nearest even. */
function halfBits(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const abs = bits & 0x7fffffff;
  if (abs >= F32_HALF_MIN_NORMAL) {
    if (abs >= F32_HALF_OVERFLOW) return abs > F32_INFINITY ? sign | 0x7e00 : sign | 0x7c00;
    // Add just under half an ulp of the half mantissa, plus its lowest kept bit: ties go to even. A carry
    // out of the mantissa moves into the exponent, which is the right result.
    return sign | ((abs - REBIAS + 0xfff + ((abs >>> 13) & 1)) >>> 13);
  }
  if (abs <= F32_HALF_SUBNORMAL_TIE) return sign; // at most half the smallest subnormal: rounds (ties to even) to 0
  // Subnormal half: the value in units of 2^-24 is the 24-bit significand shifted right by 126 - exponent.
  const exponent = abs >>> 23;
  const significand = (abs & 0x7fffff) | 0x800000;
  const shift = 126 - exponent;
  const q = significand >>> shift;
  const rest = significand & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  return sign | (q + (rest > half || (rest === half && (q & 1) === 1) ? 1 : 0));
}

let decodeTable: Float32Array | undefined;

/** Every half's float32 value (65536 entries, 256 KiB), built on first use: decoding is then one load. */
function table(): Float32Array {
  if (decodeTable) return decodeTable;
  decodeTable = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exponent = (h >>> 10) & 0x1f;
    const mantissa = h & 0x3ff;
    let value: number;
    if (exponent === 0) value = mantissa * 2 ** -24;
    else if (exponent === 31) value = mantissa === 0 ? Infinity : NaN;
    else value = (1 + mantissa / 1024) * 2 ** (exponent - 15);
    decodeTable[h] = sign * value;
  }
  return decodeTable;
}

const scaled = new Float32Array(1);
const scaledBits = new Uint32Array(scaled.buffer);

/**
 * Writes `src[i] * scale` (rounded to float32, then to half, nearest even) into `dst` (as long as `src`).
 * Returns the index of the first value that is not a finite half (beyond ±65504 after scaling, or NaN),
 * or -1. The whole of `src` is converted either way; such values become ±Infinity or NaN.
 */
export function encodeFp16(src: Float32Array, dst: Uint16Array, scale = 1): number {
  checkLengths('encodeFp16', src.length, dst.length, 'halves');
  return encodeFp16Simd(src, dst, scale);
}

/**
 * Writes the float32 value of each half in `src`, times `scale`, into `dst` (as long as `src`). Returns
 * the index of the first half that is ±Infinity or NaN, or -1.
 */
export function decodeFp16(src: Uint16Array, dst: Float32Array, scale = 1): number {
  checkLengths('decodeFp16', src.length, dst.length, 'floats');
  return decodeFp16Simd(src, dst, scale);
}

function checkLengths(fn: string, n: number, got: number, unit: string): void {
  if (got !== n) throw new RangeError(`${fn}: expected a destination of ${n} ${unit}, got ${got}`);
}

/** {@link encodeFp16} as scalar JavaScript: the definition the kernel matches bit for bit. */
export function encodeFp16Scalar(src: Float32Array, dst: Uint16Array, scale = 1): number {
  const n = src.length;
  checkLengths('encodeFp16Scalar', n, dst.length, 'halves');
  let bad = -1;
  if (scale === 1) {
    const bits = new Uint32Array(src.buffer, src.byteOffset, n);
    for (let i = 0; i < n; i++) {
      const h = halfBits(bits[i]);
      dst[i] = h;
      if ((h & 0x7c00) === 0x7c00 && bad < 0) bad = i;
    }
    return bad;
  }
  for (let i = 0; i < n; i++) {
    scaled[0] = src[i] * scale;
    const h = halfBits(scaledBits[0]);
    dst[i] = h;
    if ((h & 0x7c00) === 0x7c00 && bad < 0) bad = i;
  }
  return bad;
}

/** {@link decodeFp16} as scalar JavaScript: the definition the kernel matches bit for bit. */
export function decodeFp16Scalar(src: Uint16Array, dst: Float32Array, scale = 1): number {
  const n = src.length;
  checkLengths('decodeFp16Scalar', n, dst.length, 'floats');
  const values = table();
  let bad = -1;
  if (scale === 1) {
    for (let i = 0; i < n; i++) {
      const h = src[i];
      dst[i] = values[h];
      if ((h & 0x7c00) === 0x7c00 && bad < 0) bad = i;
    }
    return bad;
  }
  for (let i = 0; i < n; i++) {
    const h = src[i];
    dst[i] = values[h] * scale;
    if ((h & 0x7c00) === 0x7c00 && bad < 0) bad = i;
  }
  return bad;
}
