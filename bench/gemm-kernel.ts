// GFLOP/s of our SIMD matrix product (common/compute/wasm-gemm.ts) alone, on each product of the unfrozen
// MobileNet step at 64x64 with a micro-batch of 32 (bench-tta's share): the stem's filter gradient, and per
// pointwise layer the forward x·W, the input gradient dy·Wᵀ (B already transposed, as the kernel receives
// it) and the filter gradient xᵀ·dy. Run two at once to see the contention of two workers on two cores.
// Usage: node --import tsx bench/gemm-kernel.ts [--reps 5] [--min-ms 40] [--against DIR | --xnnpack]
// Prints one `gemm-kernel` line per product (median of the repetitions) and a `gemm-kernel-total` line: the
// step's summed product time at the measured rates, and over the shapes this tree routes to XNNPACK. With
// --against, the same products on DIR's common/compute/wasm-gemm.ts (another checkout), batches of the two
// alternating, A/B in one process: `against_ms`, `against_gflop_s` and `speedup` join each line. With
// --xnnpack, the same against the stock XNNPACK product as the wasm backend would run it (see xnnpackGemm).
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { Command } from 'commander';
import { gemmApplies, type GemmShape, initBackend, wasmGemm } from '../common';

type Gemm = typeof wasmGemm;

/** Pointwise layers of MobileNet v1 up to conv_pw_12 at 64x64, micro-batch 32: [pixels, in, out]. */
const LAYERS: readonly [number, number, number][] = [
  [32768, 32, 64], [8192, 64, 128], [8192, 128, 128], [2048, 128, 256], [2048, 256, 256], [512, 256, 512],
  [512, 512, 512], [512, 512, 512], [512, 512, 512], [512, 512, 512], [512, 512, 512], [128, 512, 1024],
];

interface Product {
  label: string;
  shape: GemmShape;
}

function products(): Product[] {
  // The RGB stem's filter gradient: im2col patches (3x3x3 = 27 columns) of 32x32 output pixels, times dy.
  const stem = { label: 'conv1 dW', shape: { m: 27, n: 32, k: 32768, transposeA: true } };
  return [stem, ...LAYERS.flatMap(([pixels, inC, outC], i) => [
    { label: `pw${i + 1} forward`, shape: { m: pixels, n: outC, k: inC, transposeA: false } },
    { label: `pw${i + 1} dx`, shape: { m: pixels, n: inC, k: outC, transposeA: false } },
    { label: `pw${i + 1} dW`, shape: { m: inC, n: outC, k: pixels, transposeA: true } },
  ])];
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * Milliseconds per product of `shape` for each of `gemms`: calls are batched until a batch lasts `minMs`;
 * the gemms' batches alternate, `reps` rounds; medians.
 */
function timeProduct(backend: unknown, gemms: Gemm[], shape: GemmShape, reps: number, minMs: number): number[] {
  const { m, n, k, transposeA } = shape;
  const a = tf.randomUniform(transposeA ? [k, m] : [m, k], -1, 1);
  const b = tf.randomUniform([k, n], -1, 1);
  const calls = gemms.map((gemm) => (): void => void tf.backend().disposeData(gemm(backend, a, b, shape).dataId));
  const perBatch = calls.map((once) => {
    once();
    let count = 1;
    for (let t0 = performance.now(); performance.now() - t0 < minMs / 4; count++) once();
    return count * 4;
  });
  const times: number[][] = calls.map(() => []);
  for (let rep = 0; rep < reps; rep++) {
    calls.forEach((once, i) => {
      const t0 = performance.now();
      for (let j = 0; j < perBatch[i]; j++) once();
      times[i].push((performance.now() - t0) / perBatch[i]);
    });
  }
  tf.dispose([a, b]);
  return times.map(median);
}

/**
 * The product on XNNPACK (`stock`: the stock BatchMatMul, taken before initBackend replaces it), as the
 * wasm backend ran it before our module took it: A transposed first where it is stored [k, m] (the stock
 * kernel's own transposes are slow), and B copied first, since training multiplies by new tensors every
 * step while tfjs caches XNNPACK's packing of B by data id. The copy, one pass over B, is timed with it.
 */
function xnnpackGemm(stock: tf.KernelFunc): Gemm {
  return (backend, a, b, shape) => tf.tidy(() => {
    const left = shape.transposeA ? tf.transpose(a as tf.Tensor) : (a as tf.Tensor);
    const fresh = tf.mul(b as tf.Tensor, 1);
    const attrs = { transposeA: false, transposeB: false };
    return stock({ inputs: { a: left, b: fresh }, backend: backend as tf.KernelBackend, attrs }) as tf.TensorInfo as unknown as tf.Tensor;
  }) as tf.TensorInfo;
}

/**
 * `dir`'s wasmGemm. Its files resolve their own copy of tfjs (another node_modules path), which re-registers
 * every kernel into the shared registry with one warning each; the copies are the same code, so the warnings
 * are silenced. Its wasmGemm only needs our backend object, passed per call.
 */
async function importGemm(dir: string): Promise<Gemm> {
  const warn = console.warn;
  console.warn = () => undefined;
  try {
    return ((await import(path.resolve(dir, 'common/compute/wasm-gemm.ts'))) as { wasmGemm: Gemm }).wasmGemm;
  } finally {
    console.warn = warn;
  }
}

async function main(): Promise<void> {
  const opts = new Command()
    .option('--reps <n>', 'timed batches per product', (v) => Number.parseInt(v, 10), 5)
    .option('--min-ms <ms>', 'least duration of a batch of calls', (v) => Number.parseFloat(v), 40)
    .option('--against <dir>', 'another checkout whose wasmGemm to time alongside')
    .option('--xnnpack', 'time the stock XNNPACK product alongside')
    .parse()
    .opts<{ reps: number; minMs: number; against?: string; xnnpack?: boolean }>();
  const stock = tf.getKernel(tf.BatchMatMul, 'wasm')?.kernelFunc;
  const info = await initBackend({ prefer: 'wasm', log: () => undefined });
  const backend = tf.findBackend(info.name);
  const gemms: Gemm[] = [wasmGemm];
  if (opts.against) gemms.push(await importGemm(opts.against));
  else if (opts.xnnpack) {
    if (!stock) throw new Error('expected the stock wasm BatchMatMul before initBackend, found none');
    gemms.push(xnnpackGemm(stock));
  }
  const totals = gemms.map(() => 0);
  let routedAway = 0;
  for (const { label, shape } of products()) {
    const ms = timeProduct(backend, gemms, shape, opts.reps, opts.minMs);
    const gflops = ms.map((t) => (2 * shape.m * shape.n * shape.k) / t / 1e6);
    const direct = gemmApplies(shape);
    ms.forEach((t, i) => (totals[i] += t));
    if (!direct) routedAway += ms[0];
    const against = gemms.length > 1 ? ` against_ms=${ms[1].toFixed(3)} against_gflop_s=${gflops[1].toFixed(1)} speedup=${(ms[1] / ms[0]).toFixed(2)}` : '';
    console.log(`gemm-kernel ${label.padEnd(13)} m=${shape.m} n=${shape.n} k=${shape.k} transpose_a=${shape.transposeA} ` +
      `ms=${ms[0].toFixed(3)} gflop_s=${gflops[0].toFixed(1)} routed=${direct ? 'ours' : 'xnnpack'}${against}`);
  }
  const against = gemms.length > 1 ? ` against_ms=${totals[1].toFixed(1)}` : '';
  console.log(`gemm-kernel-total ms=${totals[0].toFixed(1)} xnnpack_shapes_ms=${routedAway.toFixed(1)}${against}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
