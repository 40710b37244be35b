import * as tf from '@tensorflow/tfjs';
import { gemmApplies } from './wasm-gemm';

/**
 * Rows per partial product in {@link sumOverPixels}. XNNPACK packs the right operand of a
 * product before using it, and packing a [K, N] operand slows down once K is large (measured
 * 2.6 ns per element for K = 8192, 6.5 ns for K = 32768, where the packed panels stop fitting
 * in cache). A filter gradient sums over every pixel of the batch, so K is the pixel count.
 */
const ROWS_PER_PRODUCT = 4096;

/** Pixel counts above which the product is split into partial products. */
const SPLIT_ABOVE_ROWS = 8192;

/**
 * aᵀ·b for a [pixels, m] and b [pixels, n]: Σ over pixels of the outer products, the core of
 * every filter gradient. Large pixel counts are summed in row blocks of ROWS_PER_PRODUCT (block
 * slices are contiguous copies) so each packed block stays cache-sized: 17 ms → 10 ms for
 * MobileNet's first pointwise layer at 64x64 input.
 */
export function sumOverPixels(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  const pixels = a.shape[0];
  // Our own product packs B per block of k and blocks the sum itself: nothing to split.
  const direct = gemmApplies({ m: a.shape[1], n: b.shape[1], k: pixels, transposeA: true });
  if (direct || pixels <= SPLIT_ABOVE_ROWS) return tf.matMul(a, b, true, false);
  const partials: tf.Tensor2D[] = [];
  for (let start = 0; start < pixels; start += ROWS_PER_PRODUCT) {
    const rows = Math.min(ROWS_PER_PRODUCT, pixels - start);
    const aBlock = tf.slice(a, [start, 0], [rows, a.shape[1]]);
    const bBlock = tf.slice(b, [start, 0], [rows, b.shape[1]]);
    partials.push(tf.matMul(aBlock, bBlock, true, false));
  }
  return tf.addN(partials);
}
