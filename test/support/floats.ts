/** Float fixtures and comparisons for wire and kernel tests. */
import { Rng } from '../../common/random';

/** Float32 values that a careless codec (a JSON detour, float64 rounding, sign loss) would change. */
export function trickyFloats(n: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.uniform(-1e3, 1e3);
  const specials = [-0, 1.4e-45, -1.4e-45, 1.1754942e-38, 3.4028235e38, -3.4028235e38, 0.1, 1 / 3];
  specials.forEach((v, i) => (out[(i * 7919) % n] = v));
  return out;
}

/** Whether two views hold the same bytes (NaN payloads and -0 included). */
export function bitsEqual(a: ArrayBufferView, b: ArrayBufferView): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** max|actual - expected| / max|expected|: an error relative to the reference's scale. */
export function maxRelativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) throw new RangeError(`expected ${expected.length} values, got ${actual.length}`);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs(actual[i] - expected[i]));
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  return diff / Math.max(scale, 1e-30);
}
