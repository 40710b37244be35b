import * as tf from '@tensorflow/tfjs';
import type { ConvGeometry } from './conv-geometry';
import {
  assembleModule, type Code, f32, f32x4, i32, i32x4, ifElse, ifInRange, local, memory, ValueType, type WasmFunction, whileBelow,
} from './wasm-assembler';
import { WasmHeap } from './wasm-heap';

/**
 * A depthwise convolution with channel multiplier 1 and both its gradients, each as one SIMD pass over
 * the (output pixel, filter tap) pairs, taps outside the input skipped (zero padding). With
 * `ih = oh·sh + i - padTop`, `iw = ow·sw + j - padLeft`:
 * - forward: `y[n, oh, ow, c]  = Σ_{i, j} x[n, ih, iw, c] · w[i, j, c]`
 * - filter:  `dW[i, j, c]      = Σ_{n, oh, ow} x[n, ih, iw, c] · dy[n, oh, ow, c]`
 * - input:   `dx[n, ih, iw, c] = Σ_{oh, ow, i, j} w[i, j, c] · dy[n, oh, ow, c]`
 * Channels are contiguous in NHWC, so each pair is one multiply-add of two rows into a row of the
 * result, four channels per step; each result element adds its terms to 0 in the fixed loop order
 * (n, oh, ow, i, j), the same in every thread and process. Padding is a parameter, so a 'same', 'valid'
 * or explicitly padded convolution costs the same. The filter gradient replaces ~55 tfjs ops per layer
 * (a slice, a product and a sum per tap); the input gradient a reverse, a dilation, a pad and a
 * depthwise convolution; the forward XNNPACK's operator, which tfjs rebuilds (repacking the filter)
 * whenever the filter changes, i.e. every training step.
 */

// Parameters, then locals, by index. The input side is x (forward, filter gradient) or dx; the output
// side y (forward) or dy; the filter side w (forward, input gradient) or dW.
const [INPUT, OUTPUT, FILTER, BATCH, IN_H, IN_W, CHANNELS, OUT_H, OUT_W, K_H, K_W, STRIDE_H, STRIDE_W, PAD_TOP, PAD_LEFT] =
  [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14];
const [N, OH, OW, I, J, IH, IW, OUT_ROW, IN_ROW, TAP_ROW, P, ROW_BYTES, VECTOR_BYTES, COLUMN, TAP_BYTES] =
  [15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29];

const get = local.get;

/** `acc row += a row · b row` over the channels: SIMD steps, then the scalar tail. */
function multiplyAddRow(acc: number, a: number, b: number): Code {
  const at = (row: number) => i32.add(get(row), get(P));
  return [
    ...local.set(P, i32.const(0)),
    ...whileBelow(P, get(VECTOR_BYTES), 16,
      f32x4.store(at(acc), f32x4.add(f32x4.load(at(acc)), f32x4.mul(f32x4.load(at(a)), f32x4.load(at(b)))))),
    ...whileBelow(P, get(ROW_BYTES), 4,
      f32.store(at(acc), f32.add(f32.load(at(acc)), f32.mul(f32.load(at(a)), f32.load(at(b)))))),
  ];
}

/**
 * Every tap (i, j) of output pixel (n, oh, ow) that reads inside the input: `body` runs with IN_ROW at
 * the input pixel's row (of x or dx) and TAP_ROW at the tap's row (of w or dW).
 */
const taps = (body: Code): Code => [
  ...local.set(I, i32.const(0)),
  ...whileBelow(I, get(K_H), 1, [
    ...local.set(IH, i32.sub(i32.add(i32.mul(get(OH), get(STRIDE_H)), get(I)), get(PAD_TOP))),
    ...ifInRange(get(IH), get(IN_H), [
      ...local.set(J, i32.const(0)),
      ...whileBelow(J, get(K_W), 1, [
        ...local.set(IW, i32.sub(i32.add(i32.mul(get(OW), get(STRIDE_W)), get(J)), get(PAD_LEFT))),
        ...ifInRange(get(IW), get(IN_W), [
          ...local.set(IN_ROW, i32.add(get(INPUT), i32.mul(
            i32.add(i32.mul(i32.add(i32.mul(get(N), get(IN_H)), get(IH)), get(IN_W)), get(IW)), get(ROW_BYTES)))),
          ...local.set(TAP_ROW, i32.add(get(FILTER), i32.mul(i32.add(i32.mul(get(I), get(K_W)), get(J)), get(ROW_BYTES)))),
          ...body,
        ]),
      ]),
    ]),
  ]),
];

const PARAMS = Array.from({ length: 15 }, () => ValueType.i32);
const LOCALS = Array.from({ length: 15 }, () => ValueType.i32);

/**
 * A function that zeroes the `bytes` of its result at `result`, then runs `tapBody` for every pair;
 * output pixels are `outPixelBytes` apart (one row of channels, or of im2col columns).
 */
function overPixelsAndTaps(name: string, result: number, bytes: Code, tapBody: Code, outPixelBytes: Code = get(ROW_BYTES)): WasmFunction {
  const loop = (counter: number, end: number, body: Code): Code => [...local.set(counter, i32.const(0)), ...whileBelow(counter, get(end), 1, body)];
  return {
    name,
    params: PARAMS,
    locals: LOCALS,
    body: [
      ...local.set(ROW_BYTES, i32.shl(get(CHANNELS), i32.const(2))),
      ...local.set(VECTOR_BYTES, i32.shl(i32.and(get(CHANNELS), i32.const(-4)), i32.const(2))),
      ...memory.fill(get(result), i32.const(0), bytes),
      ...local.set(OUT_ROW, get(OUTPUT)),
      ...loop(N, BATCH, loop(OH, OUT_H, loop(OW, OUT_W, [
        ...taps(tapBody),
        ...local.set(OUT_ROW, i32.add(get(OUT_ROW), outPixelBytes)),
      ]))),
    ],
  };
}

/**
 * im2col's columns of one tap: column `c·taps + t` of an output pixel is channel c of the input pixel tap
 * t reads. `toColumns` copies the input row into them; otherwise they are added into the input row (col2im,
 * the input gradient of im2col). Scalar: these serve convolution stems with a few input channels.
 */
function tapColumns(toColumns: boolean): Code {
  const inputAt = i32.add(get(IN_ROW), get(P));
  return [
    ...local.set(TAP_BYTES, i32.shl(i32.mul(get(K_H), get(K_W)), i32.const(2))),
    ...local.set(COLUMN, i32.add(get(OUT_ROW), i32.shl(i32.add(i32.mul(get(I), get(K_W)), get(J)), i32.const(2)))),
    ...local.set(P, i32.const(0)),
    ...whileBelow(P, get(ROW_BYTES), 4, [
      ...(toColumns ? f32.store(get(COLUMN), f32.load(inputAt)) : f32.store(inputAt, f32.add(f32.load(inputAt), f32.load(get(COLUMN))))),
      ...local.set(COLUMN, i32.add(get(COLUMN), get(TAP_BYTES))),
    ]),
  ];
}

/**
 * The module exporting `forward`, `filter_grad`, `input_grad`, `image_to_columns` and `columns_to_image`,
 * all taking
 * `(x or dx, y or dy, w or dW, batch, inH, inW, channels, outH, outW, kH, kW, sH, sW, padTop, padLeft)`.
 */
export function depthwiseModule(): Uint8Array {
  const filterBytes = i32.mul(i32.mul(get(K_H), get(K_W)), get(ROW_BYTES));
  const inputBytes = i32.mul(i32.mul(i32.mul(get(BATCH), get(IN_H)), get(IN_W)), get(ROW_BYTES));
  const outputBytes = i32.mul(i32.mul(i32.mul(get(BATCH), get(OUT_H)), get(OUT_W)), get(ROW_BYTES));
  const columnBytes = i32.mul(i32.mul(get(K_H), get(K_W)), get(ROW_BYTES));
  const columnsBytes = i32.mul(i32.mul(i32.mul(get(BATCH), get(OUT_H)), get(OUT_W)), columnBytes);
  return assembleModule([
    overPixelsAndTaps('image_to_columns', OUTPUT, columnsBytes, tapColumns(true), columnBytes),
    overPixelsAndTaps('columns_to_image', INPUT, inputBytes, tapColumns(false), columnBytes),
    overPixelsAndTaps('forward', OUTPUT, outputBytes, multiplyAddRow(OUT_ROW, IN_ROW, TAP_ROW)),
    overPixelsAndTaps('filter_grad', FILTER, filterBytes, multiplyAddRow(TAP_ROW, IN_ROW, OUT_ROW)),
    overPixelsAndTaps('input_grad', INPUT, inputBytes, multiplyAddRow(IN_ROW, TAP_ROW, OUT_ROW)),
  ]);
}

// Locals of the 3x3 forward beyond the shared ones: the first input row a pixel reads, the three rows'
// addresses plus P, the filter's address plus P, and the input's row stride in bytes.
const [X0, A0, A1, A2, F, ROW_STRIDE] = [30, 31, 32, 33, 34, 35];

/**
 * The forward of a 3x3 depthwise convolution over `channels` channels. A pixel whose nine taps all read
 * inside the input (every pixel of MobileNet's explicitly padded 'valid' layers) keeps its sum in a
 * register: nine products per four channels, one store, the tap offsets constant in the instructions (the
 * reason for one module per channel count). Other pixels take the shared per-tap path. Both add the
 * products to 0 in the same (i, j) order, so the result does not depend on which path a pixel took.
 */
function forward3x3(channels: number): WasmFunction {
  const rowBytes = channels * 4;
  const vectorBytes = (channels & ~3) * 4;
  const rows = [A0, A1, A2];
  let vectorSum: Code = i32x4.const(0);
  let scalarSum: Code = f32.const(0);
  for (let i = 0; i < 3; i++) {
    for (let j = 0; j < 3; j++) {
      const [xOffset, wOffset] = [j * rowBytes, (i * 3 + j) * rowBytes];
      vectorSum = f32x4.add(vectorSum, f32x4.mul(f32x4.loadAt(get(rows[i]), xOffset), f32x4.loadAt(get(F), wOffset)));
      scalarSum = f32.add(scalarSum, f32.mul(f32.loadAt(get(rows[i]), xOffset), f32.loadAt(get(F), wOffset)));
    }
  }
  const addresses: Code = [
    ...local.set(A0, i32.add(get(X0), get(P))),
    ...local.set(A1, i32.add(get(A0), get(ROW_STRIDE))),
    ...local.set(A2, i32.add(get(A1), get(ROW_STRIDE))),
    ...local.set(F, i32.add(get(FILTER), get(P))),
  ];
  const inside = (start: number, length: number): Code =>
    i32.and(i32.geS(get(start), i32.const(0)), i32.leS(i32.add(get(start), i32.const(3)), get(length)));
  const registerPath: Code = [
    ...local.set(X0, i32.add(get(INPUT), i32.mul(
      i32.add(i32.mul(i32.add(i32.mul(get(N), get(IN_H)), get(IH)), get(IN_W)), get(IW)), i32.const(rowBytes)))),
    ...local.set(P, i32.const(0)),
    ...whileBelow(P, i32.const(vectorBytes), 16, [...addresses, ...f32x4.store(i32.add(get(OUT_ROW), get(P)), vectorSum)]),
    ...whileBelow(P, i32.const(rowBytes), 4, [...addresses, ...f32.store(i32.add(get(OUT_ROW), get(P)), scalarSum)]),
  ];
  const tapPath: Code = [...memory.fill(get(OUT_ROW), i32.const(0), i32.const(rowBytes)), ...taps(multiplyAddRow(OUT_ROW, IN_ROW, TAP_ROW))];
  const loop = (counter: number, end: number, body: Code): Code => [...local.set(counter, i32.const(0)), ...whileBelow(counter, get(end), 1, body)];
  return {
    name: 'forward_3x3',
    params: PARAMS,
    locals: [...LOCALS, ...Array.from({ length: 6 }, () => ValueType.i32)],
    body: [
      ...local.set(ROW_BYTES, i32.const(rowBytes)),
      ...local.set(VECTOR_BYTES, i32.const(vectorBytes)),
      ...local.set(ROW_STRIDE, i32.mul(get(IN_W), i32.const(rowBytes))),
      ...local.set(OUT_ROW, get(OUTPUT)),
      ...loop(N, BATCH, loop(OH, OUT_H, [
        ...loop(OW, OUT_W, [
          // Set per pixel: the tap path reuses IH and IW as its own counters.
          ...local.set(IH, i32.sub(i32.mul(get(OH), get(STRIDE_H)), get(PAD_TOP))),
          ...local.set(IW, i32.sub(i32.mul(get(OW), get(STRIDE_W)), get(PAD_LEFT))),
          ...ifElse(i32.and(inside(IH, IN_H), inside(IW, IN_W)), registerPath, tapPath),
          ...local.set(OUT_ROW, i32.add(get(OUT_ROW), get(ROW_BYTES))),
        ]),
      ])),
    ],
  };
}

type DepthwiseFunction = 'forward' | 'filter_grad' | 'input_grad' | 'image_to_columns' | 'columns_to_image';

/**
 * Runs `fn` of the module on (input-side tensor, output-side tensor, filter-side tensor or none) with
 * geometry `g`; batch and channels are the input side's.
 */
function run(backend: unknown, fn: DepthwiseFunction, inputSide: tf.TensorInfo, outputSide: tf.TensorInfo, filterSide: tf.TensorInfo | null, g: ConvGeometry): void {
  const heap = new WasmHeap(backend);
  const [batch, , , channels] = inputSide.shape;
  const exports = fn === 'forward' && g.filterHeight === 3 && g.filterWidth === 3
    ? { forward: heap.module(`depthwise-3x3-${channels}`, () => assembleModule([forward3x3(channels)])).forward_3x3 }
    : heap.module('depthwise', depthwiseModule);
  exports[fn](
    heap.offset(inputSide), heap.offset(outputSide), filterSide ? heap.offset(filterSide) : 0, batch, g.inHeight, g.inWidth, channels,
    g.outHeight, g.outWidth, g.filterHeight, g.filterWidth, g.strideHeight, g.strideWidth, g.padTop, g.padLeft,
  );
}

/** y of a depthwise convolution of float32 `x` by `w` ([kH, kW, channels, 1]), inside a wasm kernel on `backend`. */
export function depthwiseForward(backend: unknown, x: tf.TensorInfo, w: tf.TensorInfo, g: ConvGeometry): tf.TensorInfo {
  const y = new WasmHeap(backend).allocate([x.shape[0], g.outHeight, g.outWidth, x.shape[3]]);
  run(backend, 'forward', x, y, w, g);
  return y;
}

/** dW of `filterShape` ([kH, kW, channels, 1]) for float32 `x` and `dy`, inside a wasm kernel on `backend`. */
export function depthwiseFilterGrad(backend: unknown, x: tf.TensorInfo, dy: tf.TensorInfo, g: ConvGeometry, filterShape: number[]): tf.TensorInfo {
  const dw = new WasmHeap(backend).allocate(filterShape);
  run(backend, 'filter_grad', x, dy, dw, g);
  return dw;
}

/** dx of `inputShape` for float32 `dy` and filter `w` ([kH, kW, channels, 1]), inside a wasm kernel on `backend`. */
export function depthwiseInputGrad(backend: unknown, dy: tf.TensorInfo, w: tf.TensorInfo, g: ConvGeometry, inputShape: number[]): tf.TensorInfo {
  const dx = new WasmHeap(backend).allocate(inputShape);
  run(backend, 'input_grad', dx, dy, w, g);
  return dx;
}

/**
 * im2col of float32 `x` for a convolution of geometry `g`: [n, outH, outW, channels·taps], column
 * `c·taps + t` holding channel c of the pixel tap t reads (0 outside the input), inside a wasm kernel.
 */
export function imageToColumns(backend: unknown, x: tf.TensorInfo, g: ConvGeometry): tf.TensorInfo {
  const columns = new WasmHeap(backend).allocate([x.shape[0], g.outHeight, g.outWidth, x.shape[3] * g.filterHeight * g.filterWidth]);
  run(backend, 'image_to_columns', x, columns, null, g);
  return columns;
}

/** col2im: the input gradient of {@link imageToColumns}, dx of `inputShape` from float32 column gradients. */
export function columnsToImage(backend: unknown, columns: tf.TensorInfo, g: ConvGeometry, inputShape: number[]): tf.TensorInfo {
  const dx = new WasmHeap(backend).allocate(inputShape);
  run(backend, 'columns_to_image', dx, columns, null, g);
  return dx;
}
