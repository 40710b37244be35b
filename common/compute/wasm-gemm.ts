import * as tf from '@tensorflow/tfjs';
import { ComputeError } from './errors';
import { GEMM_TILE_COLUMNS, GEMM_TILE_ROWS, gemmModule } from './gemm-wasm-module';
import { WasmHeap } from './wasm-heap';

/**
 * 2-D products on our SIMD module (gemm-wasm-module.ts): C = A·B or C = Aᵀ·B, B stored as is or transposed, and
 * C's columns a multiple of 8 (every MobileNet channel count). Blocked as BLIS blocks: per block of k,
 * B's rows are packed into strips (one scratch buffer), and C is computed in blocks of rows so that the
 * block of A it reads stays in L2 while every strip passes over it. Rows past the last multiple of 4 (the
 * 27 = 3x3x3 patch columns of an RGB stem's filter gradient) are one more tile, computed from a zero-padded
 * copy of those rows of A into a scratch tile of C. Each block of k adds onto C in order, so every element
 * is the sequential sum over k whatever the blocking: the result depends on nothing but the operands.
 */

/** k per block: a packed strip (k x 8 floats, 8 KiB) stays in L1 while the row tiles pass. */
const BLOCK_K = 256;
/** Rows of C per block: the block of A (256 x 256 floats, 256 KiB) stays in L2 while the strips pass. */
const BLOCK_ROWS = 256;

/** The product's dimensions: C is [m, n], the sum runs over k. */
export interface GemmShape {
  m: number;
  n: number;
  k: number;
  /** A is stored [k, m] (the product is Aᵀ·B) rather than [m, k]. */
  transposeA: boolean;
  /** B is stored [n, k] (the product is A·Bᵀ) rather than [k, n]; packing reads it in place. @default false */
  transposeB?: boolean;
}

/** True when our module computes a product of this shape (its strips tile C's columns exactly). */
export function gemmApplies(shape: GemmShape): boolean {
  return shape.m > 0 && shape.n > 0 && shape.k > 0 && shape.n % GEMM_TILE_COLUMNS === 0;
}

/**
 * The rows of A past the last whole tile, copied as a transposed tile (A(r, k) at 16k + 4r bytes, rows
 * beyond m zero) so that `gemm_at` reads them like any other tile. Call it after the product's last
 * allocation: its memory views detach when the memory grows.
 */
function padTailRows(heap: WasmHeap, a: tf.TensorInfo, tile: tf.TensorInfo, shape: GemmShape, firstRow: number): void {
  const { m, k, transposeA } = shape;
  const [from, to] = [heap.floats(a), heap.floats(tile)];
  to.fill(0);
  for (let r = firstRow; r < m; r++) {
    const j = r - firstRow;
    if (transposeA) for (let kk = 0; kk < k; kk++) to[kk * GEMM_TILE_ROWS + j] = from[kk * m + r];
    else for (let kk = 0; kk < k; kk++) to[kk * GEMM_TILE_ROWS + j] = from[r * k + kk];
  }
}

/**
 * C [m, n] = A·B (A [m, k]) or Aᵀ·B (A [k, m]), B [k, n] or (`transposeB`) stored as Bᵀ [n, k], all float32
 * on the wasm backend `backend`;
 * returns C, a new tensor of the backend. Call only where {@link gemmApplies}.
 */
export function wasmGemm(backend: unknown, a: tf.TensorInfo, b: tf.TensorInfo, shape: GemmShape): tf.TensorInfo {
  const heap = new WasmHeap(backend);
  const { m, n, k, transposeA } = shape;
  const tiledRows = m - (m % GEMM_TILE_ROWS);
  const c = heap.allocate([m, n]);
  const strips = heap.allocate([Math.min(k, BLOCK_K) * n]);
  const tail = tiledRows < m ? { a: heap.allocate([k, GEMM_TILE_ROWS]), c: heap.allocate([GEMM_TILE_ROWS, n]) } : undefined;
  if (tail) padTailRows(heap, a, tail.a, shape, tiledRows);
  const module = heap.module('gemm', gemmModule);
  const product = module[transposeA ? 'gemm_at' : 'gemm'];
  const [aBase, bBase, cBase, stripBase] = [heap.offset(a), heap.offset(b), heap.offset(c), heap.offset(strips)];
  // gemm takes A's row stride, gemm_at its k stride; the other one is 4 bytes.
  const aStride = transposeA ? 4 * m : 4 * k;
  const [aRowBytes, aKBytes] = transposeA ? [4, aStride] : [aStride, 4];
  for (let k0 = 0; k0 < k; k0 += BLOCK_K) {
    const rows = Math.min(BLOCK_K, k - k0);
    const accumulate = k0 > 0 ? 1 : 0;
    if (shape.transposeB) module.pack_bt(bBase + 4 * k0, stripBase, rows, n, 4 * k);
    else module.pack_b(bBase + 4 * k0 * n, stripBase, rows, n);
    for (let r0 = 0; r0 < tiledRows; r0 += BLOCK_ROWS) {
      const aBlock = aBase + k0 * aKBytes + r0 * aRowBytes;
      product(aBlock, stripBase, cBase + 4 * r0 * n, Math.min(BLOCK_ROWS, tiledRows - r0), n, rows, aStride, accumulate);
    }
    if (tail) {
      const tileKBytes = 4 * GEMM_TILE_ROWS;
      module.gemm_at(heap.offset(tail.a) + k0 * tileKBytes, stripBase, heap.offset(tail.c), GEMM_TILE_ROWS, n, rows, tileKBytes, accumulate);
    }
  }
  if (tail) {
    heap.floats(c).set(heap.floats(tail.c).subarray(0, (m - tiledRows) * n), tiledRows * n);
    heap.release(tail.a);
    heap.release(tail.c);
  }
  heap.release(strips);
  return c;
}

/**
 * {@link wasmGemm} on tensors that hold the operands' data under other shapes (an NHWC activation is a
 * [pixels, channels] matrix, a 1x1 filter an [in, out] one): the kernels of pointwise convolutions call it
 * with no Reshape to dispatch. Returns C shaped `outShape`, or undefined where our module does not apply
 * (not float32, C's columns not whole strips): the caller then composes tfjs ops.
 */
export function gemmOfViews(backend: unknown, a: tf.TensorInfo, b: tf.TensorInfo, shape: GemmShape, outShape: number[]): tf.TensorInfo | undefined {
  if (a.dtype !== 'float32' || b.dtype !== 'float32' || !gemmApplies(shape)) return undefined;
  const { m, n, k, transposeA, transposeB } = shape;
  const sizes = [[a, m * k], [b, k * n]] as const;
  for (const [t, size] of sizes) {
    if (tf.util.sizeFromShape(t.shape) !== size) throw new ComputeError(`gemm: expected an operand of ${size} floats for ${JSON.stringify(shape)}, got shape [${t.shape}]`);
  }
  if (tf.util.sizeFromShape(outShape) !== m * n) throw new ComputeError(`gemm: expected an output shape of ${m * n} floats, got [${outShape}]`);
  const view = (t: tf.TensorInfo, rows: number, columns: number): tf.TensorInfo => ({ dataId: t.dataId, shape: [rows, columns], dtype: 'float32' });
  const c = wasmGemm(backend, view(a, transposeA ? k : m, transposeA ? m : k), view(b, transposeB ? n : k, transposeB ? k : n), shape);
  return { dataId: c.dataId, shape: outShape, dtype: 'float32' };
}
