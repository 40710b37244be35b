import * as tf from '@tensorflow/tfjs';
import { ComputeError } from './errors';
import { asTensor, KernelArgs, registerWasmKernel, requireStock, tidyKernel } from './wasm-kernel-registry';
import { gemmApplies, type GemmShape, wasmGemm } from './wasm-gemm';
import { swapLastTwo } from './wasm-transpose';

/**
 * Matrix products on wasm, fixed for speed and for two stock bugs.
 *
 * Speed: the stock BatchMatMul/_FusedMatMul hand transposeA/transposeB to a slow generic loop,
 * measured at 1-3 GFLOP/s against 30-40 GFLOP/s for the same product without transposes, which
 * goes to XNNPACK. Every dense-layer gradient asks for a transposed operand (dy·Wᵀ, xᵀ·dy), and
 * so do our convolution gradients, so we transpose explicitly (our fast Transpose) first.
 *
 * Correctness: XNNPACK packs the right operand once and tfjs caches the packed operator by the
 * operand's data id alone. Reshape shares data ids, so a product with b = reshape(t, [32, 64])
 * after one with b = t of shape [64, 32] silently reuses the wrong packing (garbage results,
 * or a wasm out-of-bounds abort). We remember the shape each data id was last packed with and
 * hand a fresh copy to the stock kernel when it differs. And the stock _FusedMatMul adds the
 * bias wrongly when there is more than one matrix in the batch (measured: off by up to 0.9 on
 * a [2, 5, 24]·[2, 24, 7] product); there the bias and activation are applied as separate ops.
 */

const packedShape = new WeakMap<tf.DataId, string>();

/** `b`, or a copy of it with its own data id when its data was packed under another shape. */
function withConsistentPacking(b: tf.Tensor): tf.Tensor {
  const shape = b.shape.join('x');
  const previous = packedShape.get(b.dataId);
  if (previous !== undefined && previous !== shape) return tf.mul(b, tf.scalar(1));
  packedShape.set(b.dataId, shape);
  return b;
}

/** tfjs's fused activations, applied as ops (same names as FusedBatchMatMulAttrs.activation). */
function activate(x: tf.Tensor, attrs: tf._FusedMatMulAttrs, preluWeights: tf.Tensor | undefined): tf.Tensor {
  switch (attrs.activation) {
    case 'linear':
      return x;
    case 'relu':
      return tf.relu(x);
    case 'relu6':
      return tf.relu6(x);
    case 'elu':
      return tf.elu(x);
    case 'sigmoid':
      return tf.sigmoid(x);
    case 'leakyrelu':
      return tf.leakyRelu(x, attrs.leakyreluAlpha);
    case 'prelu':
      if (!preluWeights) throw new ComputeError("_FusedMatMul: expected preluActivationWeights for activation 'prelu', found none");
      return tf.prelu(x, preluWeights);
    default:
      throw new ComputeError(`_FusedMatMul: expected a tfjs fused activation, got '${String(attrs.activation)}'`);
  }
}

/**
 * The product's shape when our SIMD module computes it (wasm-gemm.ts): one matrix on each side (leading
 * axes all 1), no bias or activation, C tiled exactly. There it reads A in place, transposed or not, and
 * packs B itself, reading it in place too, transposed or not (no transposed copy). XNNPACK packs B too, but
 * tfjs gives it no transposed A, and on MobileNet's 512x512 layers it ran at 30-35 GFLOP/s in situ against
 * 43-48 for ours (bench/gemm-kernel.ts).
 */
function directShape(kernelName: string, args: KernelArgs, attrs: tf.BatchMatMulAttrs): GemmShape | undefined {
  const { a, b, bias, preluActivationWeights } = args.inputs as Record<string, tf.TensorInfo | undefined>;
  if (!a || !b || a.dtype !== 'float32' || b.dtype !== 'float32') return undefined;
  if (kernelName === tf._FusedMatMul) {
    const activation = (attrs as unknown as tf._FusedMatMulAttrs).activation;
    if (bias || preluActivationWeights || (activation !== undefined && activation !== 'linear')) return undefined;
  }
  if (a.shape.length < 2 || b.shape.length < 2) return undefined;
  if ([...a.shape.slice(0, -2), ...b.shape.slice(0, -2)].some((d) => d !== 1)) return undefined;
  const [ar, ac] = a.shape.slice(-2);
  const [br, bc] = b.shape.slice(-2);
  const shape: GemmShape = {
    m: attrs.transposeA ? ac : ar, k: attrs.transposeA ? ar : ac, n: attrs.transposeB ? br : bc,
    transposeA: attrs.transposeA, transposeB: attrs.transposeB,
  };
  return shape.k === (attrs.transposeB ? bc : br) && gemmApplies(shape) ? shape : undefined;
}

/** The product of `shape` on our module, shaped as the stock kernel shapes its output. */
function directProduct(args: KernelArgs, shape: GemmShape): tf.TensorInfo {
  const { a, b } = args.inputs as Record<string, tf.TensorInfo>;
  const lead = (a.shape.length >= b.shape.length ? a.shape : b.shape).slice(0, -2);
  const c = wasmGemm(args.backend, a, b, shape);
  return { dataId: c.dataId, shape: [...lead, shape.m, shape.n], dtype: 'float32' };
}

function registerPlainProduct(kernelName: string): void {
  registerWasmKernel(kernelName, (stockFunc) => {
    const stock = requireStock(kernelName, stockFunc);
    return (args: KernelArgs) => {
      const attrs = args.attrs as unknown as tf.BatchMatMulAttrs;
      const direct = directShape(kernelName, args, attrs);
      if (direct) return directProduct(args, direct);
      return tidyKernel(() => {
        const a = asTensor(args.inputs.a, 'a');
        const b = asTensor(args.inputs.b, 'b');
        const plain = {
          a: attrs.transposeA ? swapLastTwo(a) : a,
          b: withConsistentPacking(attrs.transposeB ? swapLastTwo(b) : b),
        };
        const plainAttrs = { ...attrs, transposeA: false, transposeB: false };
        const batched = plain.a.shape.slice(0, -2).some((d) => d > 1) || plain.b.shape.slice(0, -2).some((d) => d > 1);
        const { bias, preluActivationWeights } = args.inputs;
        if (kernelName !== tf._FusedMatMul || !batched || !bias) {
          return stock({ inputs: { ...args.inputs, ...plain }, backend: args.backend, attrs: plainAttrs }) as tf.TensorInfo;
        }
        const product = stock({ inputs: plain, backend: args.backend, attrs: { ...plainAttrs, activation: 'linear' } }) as tf.TensorInfo;
        // Adopt the stock output (its one reference becomes this tracked tensor's) so tidy frees it.
        const biased = tf.add(tf.engine().makeTensorFromTensorInfo(product), asTensor(bias, 'bias'));
        return activate(biased, attrs as unknown as tf._FusedMatMulAttrs, preluActivationWeights && asTensor(preluActivationWeights, 'prelu'));
      });
    };
  });
}

/** Registers the transpose-free, packing-safe BatchMatMul and _FusedMatMul for wasm. */
export function registerWasmBatchMatMul(): void {
  registerPlainProduct(tf.BatchMatMul);
  registerPlainProduct(tf._FusedMatMul);
}
