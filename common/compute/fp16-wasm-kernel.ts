import {
  assembleModule, type Code, f32x4, f64x2, i16x8, i32, i32x4, instantiate, local, v128, ValueType, type WasmFunction,
  type WasmMemory, whileBelow,
} from './wasm-assembler';

/**
 * float32 <-> IEEE half (binary16) conversion as WebAssembly SIMD, eight values per step, for the data
 * plane's fp16 compression (common/collective/fp16.ts). It computes exactly what the scalar definition there
 * computes, bit for bit (test/fp16-wasm-kernel.test.ts checks every half and 1M random floats):
 * - encode: round to nearest, ties to even. Normal halves by the integer rounding of the scalar code (add
 *   just under half an ulp plus the lowest kept bit); subnormal halves by one float32 addition of 0.5,
 *   whose ulp (2^-24) is the smallest subnormal's, so the FPU rounds them to nearest even for us. From
 *   65520 up ±Infinity; a NaN becomes the quiet half NaN with its sign (0x7e00).
 * - decode: exact; a NaN half becomes the float32 NaN 0x7fc00000, as JS's NaN does.
 * - the scale multiplies as JS's `x * scale` stored into a Float32Array: one float32 multiplication when
 *   the scale is a float32 (the double product of two float32s is exact, so rounding it once is the same),
 *   otherwise in float64 and then rounded to float32, as JS does.
 * Plain typed arrays cannot be handed to WebAssembly, so the values are copied through a small memory this
 * module owns, in blocks that stay in cache.
 */

/** Elements per block copied through the kernel's memory (a multiple of 8, the step). */
const BLOCK = 16384;
/** Memory layout: the 16-byte "some value is not finite" flag, then the input and output blocks. */
const FLAG = 0;
const IN = 16;
const OUT = IN + 4 * BLOCK;
const PAGE_BYTES = 65536;

/** float32 bit patterns: |x| from which a half rounds to infinity (65520), 2^-14, infinity. */
const F32_HALF_OVERFLOW = 0x477ff000;
const F32_HALF_MIN_NORMAL = 0x38800000;
const F32_INFINITY = 0x7f800000;
/** (127 - 15) << 23: the exponent bias difference, in float32 exponent bits. */
const REBIAS = 0x38000000;
/** 0.5 as float32 bits: adding it puts a subnormal half's units (2^-24) in the lowest mantissa bits. */
const HALF = 0x3f000000;
/** A half's exponent field, shifted into float32's position. */
const HALF_EXPONENT = 0x7c00 << 13;
/** The float32 NaN JS stores for NaN. */
const JS_NAN = 0x7fc00000;

/** How the scale is applied: not at all (1), as a float32 multiplication, or in float64 then rounded. */
type ScaleMode = 'none' | 'f32' | 'f64';

// Parameters: (src, dst, srcEnd, flag[, scale]); then the v128 locals.
const [SRC, DST, END, FLAG_AT, SCALE] = [0, 1, 2, 3, 4];
const localsAfter = (mode: ScaleMode) => (mode === 'none' ? 4 : 5);
const LOCAL_NAMES = ['x', 'abs', 'over', 'bad', 'h0', 'h1', 'scale'] as const;
type LocalName = (typeof LOCAL_NAMES)[number];

const c = i32x4.const;
const HIGH_PAIR = [8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15];
const LOW_PAIRS = [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23];

/** A conversion function: `name(src, dst, srcEnd, flag[, scale])` over whole steps of 8 values. */
function conversion(name: string, mode: ScaleMode, stepBytes: number, body: (v: (n: LocalName) => number) => Code): WasmFunction {
  const first = localsAfter(mode);
  const v = (n: LocalName) => first + LOCAL_NAMES.indexOf(n);
  const scaleType = mode === 'f64' ? [ValueType.f64] : mode === 'f32' ? [ValueType.f32] : [];
  const splat = mode === 'none' ? [] : local.set(v('scale'), (mode === 'f64' ? f64x2.splat : f32x4.splat)(local.get(SCALE)));
  return {
    name,
    params: [ValueType.i32, ValueType.i32, ValueType.i32, ValueType.i32, ...scaleType],
    locals: LOCAL_NAMES.map(() => ValueType.v128),
    body: [...splat, ...whileBelow(SRC, local.get(END), stepBytes, body(v)), ...v128.store(local.get(FLAG_AT), local.get(v('bad')))],
  };
}

/** `x` (a local holding four floats, read twice in float64 mode) times the scale, rounded as JS rounds it. */
function scaled(mode: ScaleMode, x: Code, s: Code): Code {
  if (mode === 'none') return x;
  if (mode === 'f32') return f32x4.mul(x, s);
  const lo = f32x4.demoteZero(f64x2.mul(f64x2.promoteLow(x), s));
  const hi = f32x4.demoteZero(f64x2.mul(f64x2.promoteLow(v128.shuffle(x, x, HIGH_PAIR)), s));
  return v128.shuffle(lo, hi, LOW_PAIRS);
}

/** Statements: the four floats at `address` (scaled) as halves in local `into`, out-of-range lanes or-ed into `bad`. */
function encodeFour(mode: ScaleMode, v: (n: LocalName) => number, address: Code, into: LocalName): Code {
  const [x, abs, over] = [local.get(v('x')), local.get(v('abs')), local.get(v('over'))];
  const normal = i32x4.shrU(i32x4.add(i32x4.add(abs, c(0xfff - REBIAS)), v128.and(i32x4.shrU(abs, i32.const(13)), c(1))), i32.const(13));
  const subnormal = i32x4.sub(f32x4.add(abs, c(HALF)), c(HALF));
  const special = v128.bitselect(c(0x7e00), c(0x7c00), i32x4.gtS(abs, c(F32_INFINITY)));
  const magnitude = v128.bitselect(special, v128.bitselect(normal, subnormal, i32x4.geS(abs, c(F32_HALF_MIN_NORMAL))), over);
  return [
    ...local.set(v('x'), scaled(mode, v128.load(address), local.get(v('scale')))),
    ...local.set(v('abs'), v128.and(x, c(0x7fffffff))),
    ...local.set(v('over'), i32x4.geS(abs, c(F32_HALF_OVERFLOW))),
    ...local.set(v('bad'), v128.or(local.get(v('bad')), over)),
    ...local.set(v(into), v128.or(v128.and(i32x4.shrU(x, i32.const(16)), c(0x8000)), magnitude)),
  ];
}

/** Statements: four halves (i32 lanes, in local `h`) as floats (scaled) stored at `address`, non-finite lanes or-ed into `bad`. */
function decodeFour(mode: ScaleMode, v: (n: LocalName) => number, h: LocalName, address: Code): Code {
  const [x, exponent, special] = [local.get(v('x')), local.get(v('abs')), local.get(v('over'))];
  const magnitude = v128.and(local.get(v(h)), c(0x7fff));
  return [
    ...local.set(v('x'), i32x4.shl(magnitude, i32.const(13))),
    ...local.set(v('abs'), v128.and(x, c(HALF_EXPONENT))),
    ...local.set(v('over'), i32x4.eq(exponent, c(HALF_EXPONENT))),
    ...local.set(v('bad'), v128.or(local.get(v('bad')), special)),
    // Rebias; Inf and NaN twice, to float32's all-ones exponent.
    ...local.set(v('x'), i32x4.add(i32x4.add(x, c(REBIAS)), v128.and(special, c(REBIAS)))),
    // Zero and subnormals: give them the implicit 1 of 2^-14, then subtract 2^-14 (exact).
    ...local.set(v('x'), v128.bitselect(f32x4.sub(i32x4.add(x, c(1 << 23)), c(F32_HALF_MIN_NORMAL)), x, i32x4.eq(exponent, c(0)))),
    ...local.set(v('x'), v128.or(x, i32x4.shl(v128.and(local.get(v(h)), c(0x8000)), i32.const(16)))),
    ...local.set(v('x'), v128.bitselect(c(JS_NAN), x, i32x4.gtS(magnitude, c(0x7c00)))),
    ...v128.store(address, scaled(mode, x, local.get(v('scale')))),
  ];
}

/** The module: `encode`, `encode_f32`, `encode_f64`, `decode`, `decode_f32`, `decode_f64`. */
function fp16Module(): Uint8Array {
  const modes: ScaleMode[] = ['none', 'f32', 'f64'];
  const suffix = (mode: ScaleMode) => (mode === 'none' ? '' : `_${mode}`);
  const encoders = modes.map((mode) => conversion(`encode${suffix(mode)}`, mode, 32, (v) => [
    ...encodeFour(mode, v, local.get(SRC), 'h0'),
    ...encodeFour(mode, v, i32.add(local.get(SRC), i32.const(16)), 'h1'),
    ...v128.store(local.get(DST), i16x8.narrowU(local.get(v('h0')), local.get(v('h1')))),
    ...local.set(DST, i32.add(local.get(DST), i32.const(16))),
  ]));
  const decoders = modes.map((mode) => conversion(`decode${suffix(mode)}`, mode, 16, (v) => [
    ...local.set(v('h0'), i32x4.extendLowU16(v128.load(local.get(SRC)))),
    ...local.set(v('h1'), i32x4.extendHighU16(v128.load(local.get(SRC)))),
    ...decodeFour(mode, v, 'h0', local.get(DST)),
    ...decodeFour(mode, v, 'h1', i32.add(local.get(DST), i32.const(16))),
    ...local.set(DST, i32.add(local.get(DST), i32.const(32))),
  ]));
  return assembleModule([...encoders, ...decoders]);
}

/** The part of the WebAssembly JS API used here: tsconfig's lib (ES2022, no DOM) does not declare it. */
declare const WebAssembly: { Memory: new (descriptor: { initial: number }) => WasmMemory };

type Conversion = (src: number, dst: number, srcEnd: number, flag: number, scale?: number) => void;

const modeOf = (scale: number): ScaleMode => (scale === 1 ? 'none' : Math.fround(scale) === scale ? 'f32' : 'f64');

/** The first index below `length` of a half that is ±Infinity or NaN, or -1. */
function firstNonFinite(halves: Uint16Array, length: number): number {
  for (let i = 0; i < length; i++) if ((halves[i] & 0x7c00) === 0x7c00) return i;
  return -1;
}

type Values = Float32Array | Uint16Array;

/** One direction's views of the kernel's blocks, and which of them holds the halves. */
interface Direction {
  input: Values;
  output: Values;
  halves: Uint16Array;
  inputBytes: number;
}

/** The module on its own memory, with views of the blocks (the memory never grows, so they stay valid). */
class Fp16Kernel {
  private readonly memory = new WebAssembly.Memory({ initial: Math.ceil((OUT + 4 * BLOCK) / PAGE_BYTES) });
  private readonly fns: Record<string, Conversion>;
  private readonly flag = new Uint32Array(this.memory.buffer, FLAG, 4);
  private readonly directions: Record<'encode' | 'decode', Direction>;

  constructor() {
    this.fns = instantiate(fp16Module(), this.memory) as Record<string, Conversion>;
    const buffer = this.memory.buffer;
    const halvesIn = new Uint16Array(buffer, IN, BLOCK);
    const halvesOut = new Uint16Array(buffer, OUT, BLOCK);
    this.directions = {
      encode: { input: new Float32Array(buffer, IN, BLOCK), output: halvesOut, halves: halvesOut, inputBytes: 4 },
      decode: { input: halvesIn, output: new Float32Array(buffer, OUT, BLOCK), halves: halvesIn, inputBytes: 2 },
    };
  }

  /**
   * Converts `src` into `dst` block by block: copied in with its padding to a whole step zeroed (a zero
   * converts to a finite zero, never flagged), converted, copied out; when the kernel flags a non-finite
   * value and none was found before, the block's halves are searched for the first.
   */
  run(name: 'encode' | 'decode', src: Values, dst: Values, scale: number): number {
    const { input, output, halves, inputBytes } = this.directions[name];
    const mode = modeOf(scale);
    const fn = this.fns[mode === 'none' ? name : `${name}_${mode}`];
    let bad = -1;
    for (let start = 0; start < src.length; start += BLOCK) {
      const length = Math.min(BLOCK, src.length - start);
      const padded = (length + 7) & ~7;
      input.set(src.subarray(start, start + length));
      input.fill(0, length, padded);
      fn(IN, OUT, IN + padded * inputBytes, FLAG, scale);
      dst.set(output.subarray(0, length), start);
      if (bad < 0 && (this.flag[0] | this.flag[1] | this.flag[2] | this.flag[3]) !== 0) bad = start + firstNonFinite(halves, length);
    }
    return bad;
  }
}

let kernel: Fp16Kernel | undefined;
const shared = (): Fp16Kernel => (kernel ??= new Fp16Kernel());

/**
 * `src[i] * scale` rounded to float32, then to the nearest half (ties to even), into `dst` (at least as long
 * as `src`). Returns the index of the first value that is not a finite half (±Infinity or NaN), or -1; the
 * whole of `src` is converted either way. collective's `encodeFp16` checks the arguments and calls this.
 */
export function encodeFp16Simd(src: Float32Array, dst: Uint16Array, scale = 1): number {
  return shared().run('encode', src, dst, scale);
}

/**
 * The float32 value of each half in `src`, times `scale` (rounded as JS rounds `x * scale` into a
 * Float32Array), into `dst`. Returns the index of the first half that is ±Infinity or NaN, or -1.
 */
export function decodeFp16Simd(src: Uint16Array, dst: Float32Array, scale = 1): number {
  return shared().run('decode', src, dst, scale);
}
