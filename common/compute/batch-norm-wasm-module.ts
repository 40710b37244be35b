import { assembleModule, type Code, f32, f32x4, i32, local, ValueType, type WasmFunction, whileBelow } from './wasm-assembler';

/**
 * BatchNorm in training mode as WebAssembly passes over a float32 array viewed as [rows, channels]
 * (NHWC flattened: a row is one pixel of one image, the statistics are per channel). Per-channel arrays
 * (sums, means, factors) stay in L1 while the rows stream past, four channels per SIMD step and a scalar
 * loop for the last `channels % 4`. Rows are added in order 0, 1, …, so every result is a fixed sequence
 * of float32 operations: the same bits in every thread and process. The per-channel arithmetic between
 * the passes (C values) is done by the caller.
 *
 * Forward: `sum_rows` (Σx), `sum_squared_deviation` (Σ(x - mean)²), `scale_shift` (y = (x - mean)·f + b).
 * Backward: `gradient_sums` (Σdy, Σdy·(x - mean)), `input_gradient` (dx = k·((dy - a) - (x - mean)·s)).
 */

/** How a pass addresses its arrays: `row` arrays are [rows, channels], `channel` arrays are [channels]. */
interface Pass {
  name: string;
  rowArrays: readonly string[];
  channelArrays: readonly string[];
  /** Per element; `at(name)` is the element's address in the named array, `ops` the lane width's ops. */
  body(at: (array: string) => Code, ops: typeof f32 | typeof f32x4, temp: (index: number) => number): Code;
  /** Temporaries the body uses (one f32 and one v128 local each). */
  temps: number;
}

/**
 * The function `name(…rowArrays, …channelArrays, rows, channels)` (byte offsets, then counts) that runs
 * `pass.body` on every element: for each row, SIMD steps over the channels, then the scalar tail.
 */
function passFunction(pass: Pass): WasmFunction {
  const arrays = [...pass.rowArrays, ...pass.channelArrays];
  const [rows, channels] = [arrays.length, arrays.length + 1];
  // Locals: byte offset of the row, byte offset in the row, row bytes, SIMD end in the row, end of all rows.
  const [rowOffset, p, rowBytes, vectorEnd, end] = [arrays.length + 2, arrays.length + 3, arrays.length + 4, arrays.length + 5, arrays.length + 6];
  const firstTemp = arrays.length + 7;
  const at = (name: string): Code => {
    const index = arrays.indexOf(name);
    if (index < 0) throw new RangeError(`batch-norm pass ${pass.name}: no array '${name}'`);
    const base = i32.add(local.get(index), local.get(p));
    return pass.rowArrays.includes(name) ? i32.add(base, local.get(rowOffset)) : base;
  };
  const vectorTemp = (t: number) => firstTemp + t;
  const scalarTemp = (t: number) => firstTemp + pass.temps + t;
  return {
    name: pass.name,
    params: [...arrays.map(() => ValueType.i32), ValueType.i32, ValueType.i32],
    locals: [
      ValueType.i32, ValueType.i32, ValueType.i32, ValueType.i32, ValueType.i32,
      ...Array.from({ length: pass.temps }, () => ValueType.v128),
      ...Array.from({ length: pass.temps }, () => ValueType.f32),
    ],
    body: [
      ...local.set(rowBytes, i32.shl(local.get(channels), i32.const(2))),
      ...local.set(vectorEnd, i32.shl(i32.and(local.get(channels), i32.const(-4)), i32.const(2))),
      ...local.set(end, i32.mul(local.get(rows), local.get(rowBytes))),
      ...local.set(rowOffset, i32.const(0)),
      // Step 0: the row offset advances by the row's bytes, a local, at the end of the body.
      ...whileBelow(rowOffset, local.get(end), 0, [
        ...local.set(p, i32.const(0)),
        ...whileBelow(p, local.get(vectorEnd), 16, pass.body(at, f32x4, vectorTemp)),
        ...whileBelow(p, local.get(rowBytes), 4, pass.body(at, f32, scalarTemp)),
        ...local.set(rowOffset, i32.add(local.get(rowOffset), local.get(rowBytes))),
      ]),
    ],
  };
}

/** acc[c] += x[r, c]. */
const sumRows: Pass = {
  name: 'sum_rows',
  rowArrays: ['x'],
  channelArrays: ['acc'],
  temps: 0,
  body: (at, ops) => ops.store(at('acc'), ops.add(ops.load(at('acc')), ops.load(at('x')))),
};

/** acc[c] += (x[r, c] - mean[c])². */
const sumSquaredDeviation: Pass = {
  name: 'sum_squared_deviation',
  rowArrays: ['x'],
  channelArrays: ['mean', 'acc'],
  temps: 1,
  body: (at, ops, temp) => [
    ...local.set(temp(0), ops.sub(ops.load(at('x')), ops.load(at('mean')))),
    ...ops.store(at('acc'), ops.add(ops.load(at('acc')), ops.mul(local.get(temp(0)), local.get(temp(0))))),
  ],
};

/** y[r, c] = (x[r, c] - mean[c]) · factor[c] + offset[c]. */
const scaleShift: Pass = {
  name: 'scale_shift',
  rowArrays: ['x', 'y'],
  channelArrays: ['mean', 'factor', 'offset'],
  temps: 0,
  body: (at, ops) => ops.store(at('y'), ops.add(ops.mul(ops.sub(ops.load(at('x')), ops.load(at('mean'))), ops.load(at('factor'))), ops.load(at('offset')))),
};

/** sumDy[c] += dy[r, c]; sumDyCentered[c] += dy[r, c] · (x[r, c] - mean[c]). */
const gradientSums: Pass = {
  name: 'gradient_sums',
  rowArrays: ['x', 'dy'],
  channelArrays: ['mean', 'sumDy', 'sumDyCentered'],
  temps: 1,
  body: (at, ops, temp) => [
    ...local.set(temp(0), ops.load(at('dy'))),
    ...ops.store(at('sumDy'), ops.add(ops.load(at('sumDy')), local.get(temp(0)))),
    ...ops.store(at('sumDyCentered'), ops.add(ops.load(at('sumDyCentered')),
      ops.mul(local.get(temp(0)), ops.sub(ops.load(at('x')), ops.load(at('mean')))))),
  ],
};

/** dx[r, c] = k[c] · ((dy[r, c] - a[c]) - (x[r, c] - mean[c]) · s[c]). */
const inputGradient: Pass = {
  name: 'input_gradient',
  rowArrays: ['x', 'dy', 'dx'],
  channelArrays: ['mean', 'k', 'a', 's'],
  temps: 0,
  body: (at, ops) => ops.store(at('dx'), ops.mul(ops.load(at('k')), ops.sub(
    ops.sub(ops.load(at('dy')), ops.load(at('a'))),
    ops.mul(ops.sub(ops.load(at('x')), ops.load(at('mean'))), ops.load(at('s'))),
  ))),
};

/** The passes, by export name, with their argument order (row arrays, channel arrays, rows, channels). */
export const BATCH_NORM_PASSES = { sumRows, sumSquaredDeviation, scaleShift, gradientSums, inputGradient } as const;

/** The module exporting every pass of {@link BATCH_NORM_PASSES}. */
export function batchNormModule(): Uint8Array {
  return assembleModule(Object.values(BATCH_NORM_PASSES).map(passFunction));
}
