/**
 * The fp16 conversions alone on one MobileNet-sized gradient (2,162,880 floats), one thread: the SIMD kernel
 * that encodeFp16/decodeFp16 run (common/compute/fp16-wasm-kernel.ts) against the scalar definition
 * (encodeFp16Scalar/decodeFp16Scalar). Medians of 9 after 2 warm-ups. Fails when the two disagree on a bit.
 *
 *   node --import tsx bench/fp16-convert.ts [--floats 2162880]
 *
 * Prints `bench-fp16-convert floats=N encode_ms=.. decode_ms=.. js_encode_ms=.. js_decode_ms=..` (scale 1),
 * then a `#` line with prescales 4 (float32 products both ways), 0.1 and 3 (float64 products, encoding or
 * decoding).
 */
import { decodeFp16, decodeFp16Scalar, encodeFp16, encodeFp16Scalar } from '../common';
import { medianMs } from './compute-train-step';

const RUNS = 9;
const WARMUP = 2;

const floatsArg = process.argv.indexOf('--floats');
const FLOATS = floatsArg >= 0 ? Number(process.argv[floatsArg + 1]) : 2162880;
if (!Number.isInteger(FLOATS) || FLOATS <= 0) throw new Error(`--floats: expected a positive integer, got '${process.argv[floatsArg + 1]}'`);

// Gradient-like values over seven decades, as bench/exchange.ts's kernel line uses.
const values = Float32Array.from({ length: FLOATS }, (_, i) => Math.sin(i) * 10 ** ((i % 7) - 4));
const halves = new Uint16Array(FLOATS);
const decoded = new Float32Array(FLOATS);
const [jsHalves, jsDecoded] = [new Uint16Array(FLOATS), new Float32Array(FLOATS)];

/** Kernel and scalar times at `scale`, after checking they produce the same bits. */
function measure(scale: number): { encode: number; decode: number; jsEncode: number; jsDecode: number } {
  encodeFp16(values, halves, scale);
  encodeFp16Scalar(values, jsHalves, scale);
  decodeFp16(halves, decoded, 1 / scale);
  decodeFp16Scalar(halves, jsDecoded, 1 / scale);
  if (Buffer.compare(Buffer.from(halves.buffer), Buffer.from(jsHalves.buffer)) !== 0 ||
    Buffer.compare(Buffer.from(decoded.buffer), Buffer.from(jsDecoded.buffer)) !== 0) {
    throw new Error(`bench-fp16-convert: the kernel and the scalar definition disagree at scale ${scale}`);
  }
  return {
    encode: medianMs(() => encodeFp16(values, halves, scale), RUNS, WARMUP),
    decode: medianMs(() => decodeFp16(halves, decoded, 1 / scale), RUNS, WARMUP),
    jsEncode: medianMs(() => encodeFp16Scalar(values, jsHalves, scale), RUNS, WARMUP),
    jsDecode: medianMs(() => decodeFp16Scalar(halves, jsDecoded, 1 / scale), RUNS, WARMUP),
  };
}

const ms = (x: number): string => x.toFixed(2);
const plain = measure(1);
console.log(`bench-fp16-convert floats=${FLOATS} encode_ms=${ms(plain.encode)} decode_ms=${ms(plain.decode)} ` +
  `js_encode_ms=${ms(plain.jsEncode)} js_decode_ms=${ms(plain.jsDecode)}`);
const scaled = [4, 0.1, 3].map((s) => {
  const m = measure(s);
  return `prescale ${s}: encode ${ms(m.encode)} ms (js ${ms(m.jsEncode)}), decode by 1/${s} ${ms(m.decode)} ms (js ${ms(m.jsDecode)})`;
});
console.log(`#   ${scaled.join('; ')}`);
