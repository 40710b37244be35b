import * as tf from '@tensorflow/tfjs';
import { GEMM_TILE_COLUMNS, GEMM_TILE_ROWS, gemmModule } from './gemm-wasm-module';
import { WasmHeap } from './wasm-heap';

/**
 * 2-D products on our SIMD module (gemm-wasm-module.ts) for the shapes it tiles exactly: C = A·B or
 * C = Aᵀ·B with B not transposed, C's rows a multiple of 4 and its columns of 8 (every MobileNet
 * channel count). Long sums run in blocks of k so that a block of A and of B stays in cache while every
 * tile of C passes over it; each block adds onto C in order, so the result does not depend on anything
 * but the shapes.
 */

/** Floats of A and B together that a block of k aims to keep in cache (256 KiB). */
const BLOCK_FLOATS = 65536;
const MIN_BLOCK_K = 16;
const MAX_BLOCK_K = 512;

/** The product's dimensions: C is [m, n], the sum runs over k. */
export interface GemmShape {
  m: number;
  n: number;
  k: number;
  /** A is stored [k, m] (the product is Aᵀ·B) rather than [m, k]. */
  transposeA: boolean;
}

/** True when our module computes a product of this shape (it tiles C exactly). */
export function gemmApplies(shape: GemmShape): boolean {
  return shape.m > 0 && shape.n > 0 && shape.k > 0 && shape.m % GEMM_TILE_ROWS === 0 && shape.n % GEMM_TILE_COLUMNS === 0;
}

/** k per block for a product of `shape`. */
function blockK(shape: GemmShape): number {
  return Math.max(MIN_BLOCK_K, Math.min(MAX_BLOCK_K, Math.floor(BLOCK_FLOATS / (shape.m + shape.n))));
}

/**
 * C [m, n] = A·B (A [m, k]) or Aᵀ·B (A [k, m]), B [k, n], all float32 on the wasm backend `backend`;
 * returns C, a new tensor of the backend. Call only where {@link gemmApplies}.
 */
export function wasmGemm(backend: unknown, a: tf.TensorInfo, b: tf.TensorInfo, shape: GemmShape): tf.TensorInfo {
  const heap = new WasmHeap(backend);
  const { m, n, k, transposeA } = shape;
  const c = heap.allocate([m, n]);
  const fn = heap.module('gemm', gemmModule)[transposeA ? 'gemm_at' : 'gemm'];
  const [aBase, bBase, cBase] = [heap.offset(a), heap.offset(b), heap.offset(c)];
  const aRowStride = transposeA ? 4 : 4 * k;
  const aKStride = transposeA ? 4 * m : 4;
  const step = blockK(shape);
  for (let k0 = 0; k0 < k; k0 += step) {
    const rows = Math.min(step, k - k0);
    fn(aBase + k0 * aKStride, bBase + k0 * 4 * n, cBase, m, n, rows, aRowStride, aKStride, 4 * n, k0 > 0 ? 1 : 0);
  }
  return c;
}
