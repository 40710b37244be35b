import { assembleModule, type Code, f32, f32x4, i32, ifElse, local, ValueType, type WasmFunction, whileBelow } from './wasm-assembler';

/**
 * Matrix products C[m, n] (+)= Σ_k A(r, k)·B[k, n] as WebAssembly SIMD, reading A in place in whichever
 * layout it is stored and B from a packed copy: strips of 8 columns, each strip's k rows of 8 floats
 * contiguous (`pack_b`). Read in place, B's rows lie 4n bytes apart; for n of 256 and more that is a
 * multiple of 1 KiB, so the k rows a strip needs fall into a few sets of the L1 cache and evict each other
 * (measured: 21-23 GFLOP/s for n = 1024 against 44-47 packed). Packed, a strip is one sequential stream.
 *
 * Tiles of 4 rows by 8 columns of C stay in eight v128 locals while k runs: per k, two loads of the
 * strip, four A values splatted to all lanes, eight multiplies and eight adds. The sum over k is in
 * order 0, 1, …, k-1 for every element, added onto C's tile when `accumulate` is set (the caller splits
 * long sums into blocks so each block's operands stay in cache): a fixed sequence of float32 operations,
 * the same bits in every thread and process, whatever the blocking.
 *
 * Why not a bigger tile: V8's TurboFan (Node 20) issues all of a loop iteration's loads before its
 * arithmetic, so every splat of an iteration is live at once: 8 accumulators + 2 B + 4 splats + one
 * product fill the 15 xmm registers it allocates. 6x8 tiles and k unrolled by two spilled (measured
 * 22-30 GFLOP/s against 46-49 for this tile, which reaches ~95% of the machine's 128-bit mul + add peak
 * on cache-resident operands).
 *
 * Exports, in bytes and counts, with m a multiple of 4 and n of 8 (C is [m, n], row stride 4n):
 * - `pack_b(src, dst, k, n)`: B [k, n] (row stride 4n) to strips at dst, strip s at `dst + 32·k·s`.
 * - `pack_bt(src, dst, k, n, srcRowStride)`: the same strips from B stored transposed, Bᵀ [n, ·] with rows
 *   `srcRowStride` bytes apart (B(k, j) at `src + j·srcRowStride + 4k`): the Wᵀ of dx = dy·Wᵀ read in place.
 * - `gemm(a, b, c, m, n, k, aRowStride, accumulate)`: A(r, k) at `a + r·aRowStride + 4k` (A [m, k]).
 * - `gemm_at(a, b, c, m, n, k, aKStride, accumulate)`: A(r, k) at `a + k·aKStride + 4r` (A stored [k, m],
 *   the transposed operand of xᵀ·dy).
 * b is the packed strips of B.
 */

/** Rows and columns of C per tile. */
export const GEMM_TILE_ROWS = 4;
export const GEMM_TILE_COLUMNS = 8;

/** Bytes of one packed row of a strip (GEMM_TILE_COLUMNS floats). */
const STRIP_ROW_BYTES = 4 * GEMM_TILE_COLUMNS;

// Parameters, then locals, by index.
const [A, B, C, M, N, K, A_STRIDE, ACCUMULATE] = [0, 1, 2, 3, 4, 5, 6, 7];
const [ROW_BYTES, COLUMN, ROW, A_PTR, B_PTR, B_END, C_PTR, STRIP, STRIP_BYTES, R1, R2, R3] = [8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19];
const ACC = 20; // eight v128 accumulators: row r, half h at ACC + 2r + h
const [B0, B1, S] = [28, 29, 30];

const get = local.get;

/** Address of A(r, k) for tile row r, given the variant's row addressing. */
interface RowAddressing {
  /** Bytes from one k to the next along a row of A. */
  kStride: Code;
  /** Bytes from one row of A to the next. */
  rowStride: Code;
  /** Where A(r, k) is, relative to A(0, k) at A_PTR. */
  at(r: number): { address: Code; offset: number };
}

function gemmFunction(name: string, rows: RowAddressing): WasmFunction {
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
      const { address, offset } = rows.at(r);
      return [...local.set(S, f32x4.loadSplatAt(address, offset)), ...multiplyAdd(ACC + 2 * r, B0), ...multiplyAdd(ACC + 2 * r + 1, B1)];
    }).flat(),
    ...local.set(A_PTR, i32.add(get(A_PTR), rows.kStride)),
    ...local.set(B_PTR, i32.add(get(B_PTR), i32.const(STRIP_ROW_BYTES))),
  ];
  return {
    name,
    params: Array.from({ length: 8 }, () => ValueType.i32),
    locals: [...Array.from({ length: 12 }, () => ValueType.i32), ...Array.from({ length: 11 }, () => ValueType.v128)],
    body: [
      ...local.set(ROW_BYTES, i32.shl(get(N), i32.const(2))),
      ...local.set(STRIP_BYTES, i32.mul(get(K), i32.const(STRIP_ROW_BYTES))),
      ...local.set(R1, get(A_STRIDE)),
      ...local.set(R2, i32.shl(get(A_STRIDE), i32.const(1))),
      ...local.set(R3, i32.add(get(R2), get(A_STRIDE))),
      // Strips outermost: a strip (k x 8 floats) stays in L1 while every row tile passes over it.
      ...local.set(STRIP, get(B)),
      ...local.set(COLUMN, i32.const(0)),
      ...whileBelow(COLUMN, get(ROW_BYTES), STRIP_ROW_BYTES, [
        ...local.set(ROW, i32.const(0)),
        ...whileBelow(ROW, get(M), GEMM_TILE_ROWS, [
          ...local.set(C_PTR, i32.add(i32.add(get(C), i32.mul(get(ROW), get(ROW_BYTES))), get(COLUMN))),
          ...ifElse(get(ACCUMULATE), loadTile, zeroTile),
          ...local.set(A_PTR, i32.add(get(A), i32.mul(get(ROW), rows.rowStride))),
          ...local.set(B_PTR, get(STRIP)),
          ...local.set(B_END, i32.add(get(STRIP), get(STRIP_BYTES))),
          ...whileBelow(B_PTR, get(B_END), 0, kStep),
          ...storeTile,
        ]),
        ...local.set(STRIP, i32.add(get(STRIP), get(STRIP_BYTES))),
      ]),
    ],
  };
}

/** `pack_b(src, dst, k, n)`: B's strips of 8 columns, each k x 8 floats contiguous, one after another. */
function packFunction(): WasmFunction {
  const [SRC, DST, KK, NN] = [0, 1, 2, 3];
  const [ROW_STRIDE, COLUMN_BYTE, FROM, END, TO] = [4, 5, 6, 7, 8];
  return {
    name: 'pack_b',
    params: Array.from({ length: 4 }, () => ValueType.i32),
    locals: Array.from({ length: 5 }, () => ValueType.i32),
    body: [
      ...local.set(ROW_STRIDE, i32.shl(get(NN), i32.const(2))),
      ...local.set(TO, get(DST)),
      ...local.set(COLUMN_BYTE, i32.const(0)),
      ...whileBelow(COLUMN_BYTE, get(ROW_STRIDE), STRIP_ROW_BYTES, [
        ...local.set(FROM, i32.add(get(SRC), get(COLUMN_BYTE))),
        ...local.set(END, i32.add(get(FROM), i32.mul(get(KK), get(ROW_STRIDE)))),
        ...whileBelow(FROM, get(END), 0, [
          ...f32x4.storeAt(get(TO), 0, f32x4.loadAt(get(FROM), 0)),
          ...f32x4.storeAt(get(TO), 16, f32x4.loadAt(get(FROM), 16)),
          ...local.set(TO, i32.add(get(TO), i32.const(STRIP_ROW_BYTES))),
          ...local.set(FROM, i32.add(get(FROM), get(ROW_STRIDE))),
        ]),
      ]),
    ],
  };
}

/**
 * `pack_bt(src, dst, k, n, srcRowStride)`: the strips of `pack_b` from Bᵀ. A strip's 8 columns of B are 8 rows
 * of Bᵀ; each packed row gathers one float from each, all 8 read streams advancing 4 bytes per row.
 */
function packTransposedFunction(): WasmFunction {
  const [SRC, DST, KK, NN, STRIDE] = [0, 1, 2, 3, 4];
  const [ROW, FROM, END, TO] = [5, 6, 7, 8];
  const OFFSET = 9; // local OFFSET + c: c·STRIDE, from Bᵀ's row 8s to its row 8s + c
  const columns = Array.from({ length: GEMM_TILE_COLUMNS }, (_, c) => c);
  return {
    name: 'pack_bt',
    params: Array.from({ length: 5 }, () => ValueType.i32),
    locals: Array.from({ length: 4 + GEMM_TILE_COLUMNS }, () => ValueType.i32),
    body: [
      ...columns.flatMap((c) => local.set(OFFSET + c, i32.mul(get(STRIDE), i32.const(c)))),
      ...local.set(TO, get(DST)),
      ...local.set(ROW, i32.const(0)),
      ...whileBelow(ROW, get(NN), GEMM_TILE_COLUMNS, [
        ...local.set(FROM, i32.add(get(SRC), i32.mul(get(ROW), get(STRIDE)))),
        ...local.set(END, i32.add(get(FROM), i32.shl(get(KK), i32.const(2)))),
        ...whileBelow(FROM, get(END), 4, [
          ...columns.flatMap((c) => f32.store(i32.add(get(TO), i32.const(4 * c)), f32.load(i32.add(get(FROM), get(OFFSET + c))))),
          ...local.set(TO, i32.add(get(TO), i32.const(STRIP_ROW_BYTES))),
        ]),
      ]),
    ],
  };
}

/** The module exporting `pack_b`, `pack_bt`, `gemm` and `gemm_at` (see above). */
export function gemmModule(): Uint8Array {
  const rowLocal = [A_PTR, R1, R2, R3];
  return assembleModule([
    packFunction(),
    packTransposedFunction(),
    gemmFunction('gemm', {
      kStride: i32.const(4),
      rowStride: get(A_STRIDE),
      at: (r) => ({ address: r === 0 ? get(A_PTR) : i32.add(get(A_PTR), get(rowLocal[r])), offset: 0 }),
    }),
    // Transposed A: the tile's four rows are adjacent floats, constant offsets from one pointer.
    gemmFunction('gemm_at', { kStride: get(A_STRIDE), rowStride: i32.const(4), at: (r) => ({ address: get(A_PTR), offset: 4 * r }) }),
  ]);
}
