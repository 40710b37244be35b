import { assembleModule, type Code, f32, f32x4, i32, ifElse, local, ValueType, type WasmFunction, whileBelow } from './wasm-assembler';

/**
 * Matrix products C[m, n] (+)= Σ_k A(r, k)·B[k, n] as WebAssembly SIMD, reading A in whichever layout it
 * is stored and B row by row, with no packed copy of either. XNNPACK packs the right operand of every
 * product before multiplying (as slow per element as a transpose), and tfjs gives it no transposed left
 * operand, so a filter gradient xᵀ·dy over every pixel of a batch paid for a transpose of x and a packing
 * of dy, two extra passes over the largest tensors of the step, before the product itself.
 *
 * Tiles of 4 rows by 8 columns of C stay in eight v128 locals while k runs: per k, two loads of B's row
 * segment, four A values splatted to all lanes, eight multiplies and eight adds. The sum over k is in
 * order 0, 1, …, k-1 for every element, added onto C's tile when `accumulate` is set (the caller splits
 * long sums into blocks so each block's operands stay in cache): a fixed sequence of float32 operations,
 * the same bits in every thread and process.
 *
 * Exports, each `(a, b, c, m, n, k, aRowStride, aKStride, bRowStride, accumulate)` in bytes and counts,
 * with m a multiple of 4 and n of 8 (C is [m, n], row stride 4n bytes):
 * - `gemm_at`: A stored transposed, A(r, k) at `a + k·aKStride + 4r` (aRowStride unused): xᵀ·dy.
 * - `gemm`: A(r, k) at `a + r·aRowStride + k·aKStride`.
 */

/** Rows and columns of C per tile. */
export const GEMM_TILE_ROWS = 4;
export const GEMM_TILE_COLUMNS = 8;

// Parameters, then locals, by index.
const [A, B, C, M, N, K, A_ROW_STRIDE, A_K_STRIDE, B_ROW_STRIDE, ACCUMULATE] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
const [ROW_BYTES, COLUMN, ROW, A_PTR, B_PTR, B_END, C_PTR, R1, R2, R3] = [10, 11, 12, 13, 14, 15, 16, 17, 18, 19];
const ACC = 20; // eight v128 accumulators: row r, half h at ACC + 2r + h
const [B0, B1, S] = [28, 29, 30];

const get = local.get;

/** Address of A(r, k) for tile row r, given the variant's row addressing. */
type RowAddress = (r: number) => { address: Code; offset: number };

function gemmFunction(name: string, rowAddress: RowAddress): WasmFunction {
  const tileRow = (r: number): Code => i32.add(get(C_PTR), i32.mul(get(ROW_BYTES), i32.const(r)));
  const loadTile: Code = Array.from({ length: GEMM_TILE_ROWS }, (_, r) => [
    ...local.set(ACC + 2 * r, f32x4.loadAt(tileRow(r), 0)),
    ...local.set(ACC + 2 * r + 1, f32x4.loadAt(tileRow(r), 16)),
  ]).flat();
  const zeroTile: Code = Array.from({ length: 2 * GEMM_TILE_ROWS }, (_, i) => local.set(ACC + i, f32x4.splat(f32.const(0)))).flat();
  const storeTile: Code = Array.from({ length: GEMM_TILE_ROWS }, (_, r) => [
    ...f32x4.storeAt(tileRow(r), 0, get(ACC + 2 * r)),
    ...f32x4.storeAt(tileRow(r), 16, get(ACC + 2 * r + 1)),
  ]).flat();
  const multiplyAdd = (acc: number, b: number): Code => local.set(acc, f32x4.add(get(acc), f32x4.mul(get(S), get(b))));
  const kStep: Code = [
    ...local.set(B0, f32x4.loadAt(get(B_PTR), 0)),
    ...local.set(B1, f32x4.loadAt(get(B_PTR), 16)),
    ...Array.from({ length: GEMM_TILE_ROWS }, (_, r) => {
      const { address, offset } = rowAddress(r);
      return [...local.set(S, f32x4.loadSplatAt(address, offset)), ...multiplyAdd(ACC + 2 * r, B0), ...multiplyAdd(ACC + 2 * r + 1, B1)];
    }).flat(),
    ...local.set(A_PTR, i32.add(get(A_PTR), get(A_K_STRIDE))),
    ...local.set(B_PTR, i32.add(get(B_PTR), get(B_ROW_STRIDE))),
  ];
  return {
    name,
    params: Array.from({ length: 10 }, () => ValueType.i32),
    locals: [...Array.from({ length: 10 }, () => ValueType.i32), ...Array.from({ length: 11 }, () => ValueType.v128)],
    body: [
      ...local.set(ROW_BYTES, i32.shl(get(N), i32.const(2))),
      ...local.set(R1, get(A_ROW_STRIDE)),
      ...local.set(R2, i32.shl(get(A_ROW_STRIDE), i32.const(1))),
      ...local.set(R3, i32.add(get(R2), get(A_ROW_STRIDE))),
      // Columns outermost: the k x 8 strip of B a column tile reads stays in cache across the row tiles.
      ...local.set(COLUMN, i32.const(0)),
      ...whileBelow(COLUMN, get(ROW_BYTES), 4 * GEMM_TILE_COLUMNS, [
        ...local.set(ROW, i32.const(0)),
        ...whileBelow(ROW, get(M), GEMM_TILE_ROWS, [
          ...local.set(C_PTR, i32.add(i32.add(get(C), i32.mul(get(ROW), get(ROW_BYTES))), get(COLUMN))),
          ...ifElse(get(ACCUMULATE), loadTile, zeroTile),
          ...local.set(A_PTR, i32.add(get(A), i32.mul(get(ROW), get(A_ROW_STRIDE)))),
          ...local.set(B_PTR, i32.add(get(B), get(COLUMN))),
          ...local.set(B_END, i32.add(get(B_PTR), i32.mul(get(K), get(B_ROW_STRIDE)))),
          ...whileBelow(B_PTR, get(B_END), 0, kStep),
          ...storeTile,
        ]),
      ]),
    ],
  };
}

/** The module exporting `gemm_at` and `gemm` (see above). */
export function gemmModule(): Uint8Array {
  const rowLocal = [A_PTR, R1, R2, R3];
  return assembleModule([
    // Transposed A: the tile's four rows are adjacent floats, constant offsets from one pointer.
    gemmFunction('gemm_at', (r) => ({ address: get(A_PTR), offset: 4 * r })),
    gemmFunction('gemm', (r) => ({ address: r === 0 ? get(A_PTR) : i32.add(get(A_PTR), get(rowLocal[r])), offset: 0 })),
  ]);
}
