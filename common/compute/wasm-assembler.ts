/**
 * A small WebAssembly assembler for hand-written SIMD kernels: named instructions that emit their
 * binary encoding, and a module builder for functions that work on an imported memory. Kernels are
 * written as expression trees (`f32x4.add(a, b)` emits a, then b, then the opcode), so the source
 * reads like the formula it computes. Only the instructions our kernels use are defined; the
 * opcodes are those of the WebAssembly 2.0 core and fixed-width SIMD specifications.
 */

/** Bytes of code: one instruction, or an expression whose value ends up on the stack. */
export type Code = readonly number[];

/** Value types of parameters and locals. */
export const ValueType = { i32: 0x7f, f32: 0x7d, f64: 0x7c, v128: 0x7b } as const;
/** A value type's byte. */
export type ValueType = (typeof ValueType)[keyof typeof ValueType];

/** Unsigned LEB128, the encoding of indices, counts and memory offsets. */
export function uleb128(value: number): number[] {
  const out: number[] = [];
  let v = value >>> 0;
  do {
    const byte = v & 0x7f;
    v >>>= 7;
    out.push(v !== 0 ? byte | 0x80 : byte);
  } while (v !== 0);
  return out;
}

/** Signed LEB128, the encoding of i32.const immediates. */
export function sleb128(value: number): number[] {
  const out: number[] = [];
  let v = value | 0;
  for (;;) {
    const byte = v & 0x7f;
    v >>= 7;
    const done = (v === 0 && (byte & 0x40) === 0) || (v === -1 && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

const cat = (...parts: Code[]): Code => parts.flat();
/** A SIMD instruction: the 0xfd prefix and its LEB128 sub-opcode. */
const simd = (subOpcode: number): Code => [0xfd, ...uleb128(subOpcode)];
/** memarg: alignment exponent 0 (no alignment promised, so any tensor offset is valid), offset 0. */
const MEMARG: Code = [0x00, 0x00];
/** memarg with a constant byte offset added to the address (free in the addressing mode). */
const memargAt = (offset: number): Code => [0x00, ...uleb128(offset)];

/** Locals and constants. */
export const local = {
  get: (index: number): Code => [0x20, ...uleb128(index)],
  set: (index: number, value: Code): Code => cat(value, [0x21, ...uleb128(index)]),
};

/** 32-bit integer instructions (addresses and counters). */
export const i32 = {
  const: (value: number): Code => [0x41, ...sleb128(value)],
  add: (a: Code, b: Code): Code => cat(a, b, [0x6a]),
  sub: (a: Code, b: Code): Code => cat(a, b, [0x6b]),
  mul: (a: Code, b: Code): Code => cat(a, b, [0x6c]),
  and: (a: Code, b: Code): Code => cat(a, b, [0x71]),
  shl: (a: Code, b: Code): Code => cat(a, b, [0x74]),
  geU: (a: Code, b: Code): Code => cat(a, b, [0x4f]),
  /** Signed comparisons: i32 1 where true, else 0. */
  geS: (a: Code, b: Code): Code => cat(a, b, [0x4e]),
  leS: (a: Code, b: Code): Code => cat(a, b, [0x4c]),
};

/** Scalar float32 instructions; each rounds exactly as a float32 operation in tfjs does. */
export const f32 = {
  const: (value: number): Code => [0x43, ...new Uint8Array(Float32Array.of(value).buffer)],
  load: (address: Code): Code => cat(address, [0x2a, 0x02, 0x00]),
  /** The float at `address + offset` (a constant byte offset). */
  loadAt: (address: Code, offset: number): Code => cat(address, [0x2a, 0x02], uleb128(offset)),
  store: (address: Code, value: Code): Code => cat(address, value, [0x38, 0x02, 0x00]),
  add: (a: Code, b: Code): Code => cat(a, b, [0x92]),
  sub: (a: Code, b: Code): Code => cat(a, b, [0x93]),
  mul: (a: Code, b: Code): Code => cat(a, b, [0x94]),
  div: (a: Code, b: Code): Code => cat(a, b, [0x95]),
  sqrt: (a: Code): Code => cat(a, [0x91]),
  min: (a: Code, b: Code): Code => cat(a, b, [0x96]),
  max: (a: Code, b: Code): Code => cat(a, b, [0x97]),
  /** i32 1 where a < b, else 0 (0 when either is NaN). */
  lt: (a: Code, b: Code): Code => cat(a, b, [0x5d]),
  gt: (a: Code, b: Code): Code => cat(a, b, [0x5e]),
};

/** Four-lane float32 SIMD instructions: lane for lane the same roundings as {@link f32}. */
export const f32x4 = {
  load: (address: Code): Code => cat(address, simd(0x00), MEMARG),
  /** Four floats at `address + offset` (a constant byte offset). */
  loadAt: (address: Code, offset: number): Code => cat(address, simd(0x00), memargAt(offset)),
  /** The float at `address + offset` in all four lanes (v128.load32_splat). */
  loadSplatAt: (address: Code, offset: number): Code => cat(address, simd(0x09), memargAt(offset)),
  store: (address: Code, value: Code): Code => cat(address, value, simd(0x0b), MEMARG),
  /** Stores four floats at `address + offset` (a constant byte offset). */
  storeAt: (address: Code, offset: number, value: Code): Code => cat(address, value, simd(0x0b), memargAt(offset)),
  splat: (a: Code): Code => cat(a, simd(0x13)),
  add: (a: Code, b: Code): Code => cat(a, b, simd(0xe4)),
  sub: (a: Code, b: Code): Code => cat(a, b, simd(0xe5)),
  mul: (a: Code, b: Code): Code => cat(a, b, simd(0xe6)),
  div: (a: Code, b: Code): Code => cat(a, b, simd(0xe7)),
  sqrt: (a: Code): Code => cat(a, simd(0xe3)),
  min: (a: Code, b: Code): Code => cat(a, b, simd(0xe8)),
  max: (a: Code, b: Code): Code => cat(a, b, simd(0xe9)),
  /** All-ones lanes where a < b, all-zero lanes elsewhere (and where either is NaN). */
  lt: (a: Code, b: Code): Code => cat(a, b, simd(0x43)),
  gt: (a: Code, b: Code): Code => cat(a, b, simd(0x44)),
  /** Lanes 0-1 of two f64x2 rounded to float32 (nearest even), lanes 2-3 zero (f32x4.demote_f64x2_zero). */
  demoteZero: (a: Code): Code => cat(a, simd(0x5e)),
};

/** Two-lane float64 SIMD instructions (products that must round once, as JS's double arithmetic does). */
export const f64x2 = {
  splat: (a: Code): Code => cat(a, simd(0x14)),
  mul: (a: Code, b: Code): Code => cat(a, b, simd(0xf2)),
  /** Float32 lanes 0-1 widened exactly to float64 (f64x2.promote_low_f32x4). */
  promoteLow: (a: Code): Code => cat(a, simd(0x5f)),
};

/** Four-lane 32-bit integer SIMD instructions (bit patterns of floats). Shift counts are i32 expressions. */
export const i32x4 = {
  /** The same 32-bit constant in all four lanes (v128.const). */
  const: (value: number): Code => cat(simd(0x0c), [...new Uint8Array(Uint32Array.of(value, value, value, value).buffer)]),
  splat: (a: Code): Code => cat(a, simd(0x11)),
  add: (a: Code, b: Code): Code => cat(a, b, simd(0xae)),
  sub: (a: Code, b: Code): Code => cat(a, b, simd(0xb1)),
  shl: (a: Code, count: Code): Code => cat(a, count, simd(0xab)),
  shrU: (a: Code, count: Code): Code => cat(a, count, simd(0xad)),
  /** All-ones lanes where a == b. */
  eq: (a: Code, b: Code): Code => cat(a, b, simd(0x37)),
  /** All-ones lanes where a > b, signed. */
  gtS: (a: Code, b: Code): Code => cat(a, b, simd(0x3b)),
  /** All-ones lanes where a >= b, signed. */
  geS: (a: Code, b: Code): Code => cat(a, b, simd(0x3f)),
  /** The low (lanes 0-3) or high (lanes 4-7) 16-bit lanes of an i16x8, zero-extended. */
  extendLowU16: (a: Code): Code => cat(a, simd(0xa9)),
  extendHighU16: (a: Code): Code => cat(a, simd(0xaa)),
};

/** Eight-lane 16-bit integer SIMD instructions. */
export const i16x8 = {
  /** The lanes of a then b, each signed i32 saturated to 0..65535 (i16x8.narrow_i32x4_u). */
  narrowU: (a: Code, b: Code): Code => cat(a, b, simd(0x86)),
};

/** Bitwise operations on whole 128-bit vectors. */
export const v128 = {
  load: (address: Code): Code => cat(address, simd(0x00), MEMARG),
  store: (address: Code, value: Code): Code => cat(address, value, simd(0x0b), MEMARG),
  and: (a: Code, b: Code): Code => cat(a, b, simd(0x4e)),
  or: (a: Code, b: Code): Code => cat(a, b, simd(0x50)),
  /** Bits of a where `mask` is 1, of b where it is 0. */
  bitselect: (a: Code, b: Code, mask: Code): Code => cat(a, b, mask, simd(0x52)),
  /** Bytes picked from a (0-15) and b (16-31) by 16 constant indices (i8x16.shuffle). */
  shuffle: (a: Code, b: Code, lanes: readonly number[]): Code => cat(a, b, simd(0x0d), lanes),
};

/** Bulk memory operations (WebAssembly 2.0): native speed, no loop in the module. */
export const memory = {
  /** Sets `bytes` bytes from `address` to the low byte of `value` (memory.fill). */
  fill: (address: Code, value: Code, bytes: Code): Code => cat(address, value, bytes, [0xfc, 0x0b, 0x00]),
};

/** `condition ? a : b` for an i32 condition (both operands are evaluated). */
export function select(a: Code, b: Code, condition: Code): Code {
  return cat(a, b, condition, [0x1b]);
}

/**
 * `while (counter < end) { body; counter += step }` on an i32 byte counter. Written as
 * block { loop { br_if exit (counter >= end); body; counter += step; br loop } }.
 */
export function whileBelow(counter: number, end: Code, step: number, body: Code): Code {
  return cat(
    [0x02, 0x40, 0x03, 0x40], // block, loop (no result)
    i32.geU(local.get(counter), end), [0x0d, 0x01], // br_if 1: leave the block
    body,
    local.set(counter, i32.add(local.get(counter), i32.const(step))),
    [0x0c, 0x00, 0x0b, 0x0b], // br 0: next iteration; end loop; end block
  );
}

/** `if (condition) then else otherwise` on an i32 condition, as statements (no result). */
export function ifElse(condition: Code, then: Code, otherwise: Code): Code {
  return cat(condition, [0x04, 0x40], then, [0x05], otherwise, [0x0b]);
}

/**
 * `if (index < bound) body` for an i32 index that may be negative: compared unsigned, a negative
 * index is huge, so one comparison checks both ends. block { br_if exit (index >= bound); body }.
 */
export function ifInRange(index: Code, bound: Code, body: Code): Code {
  return cat([0x02, 0x40], i32.geU(index, bound), [0x0d, 0x00], body, [0x0b]);
}

/** One exported function of a module. */
export interface WasmFunction {
  name: string;
  params: readonly ValueType[];
  /** Extra locals, numbered after the parameters. */
  locals: readonly ValueType[];
  body: Code;
}

const section = (id: number, content: Code): Code => [id, ...uleb128(content.length), ...content];
const vector = (items: Code[]): Code => [...uleb128(items.length), ...items.flat()];
const name = (text: string): Code => vector([...Buffer.from(text, 'utf8')].map((b) => [b]));

/**
 * A module that imports its memory as `env.memory` (any size) and exports `functions`, none of which
 * returns a value. Each function gets its own type.
 */
export function assembleModule(functions: readonly WasmFunction[]): Uint8Array {
  const types = functions.map((f) => cat([0x60], vector(f.params.map((p) => [p])), [0x00]));
  const memoryImport = cat(name('env'), name('memory'), [0x02, 0x00, 0x00]); // memory, limits: min 0, no max
  const exports = functions.map((f, i) => cat(name(f.name), [0x00], uleb128(i)));
  const bodies = functions.map((f) => {
    const locals = vector(f.locals.map((t) => [0x01, t])); // one entry per local: count 1, type
    const code = cat(locals, f.body, [0x0b]);
    return cat(uleb128(code.length), code);
  });
  return Uint8Array.from(cat(
    [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00], // "\0asm", version 1
    section(1, vector(types)),
    section(2, vector([memoryImport])),
    section(3, vector(functions.map((_, i) => uleb128(i)))),
    section(7, vector(exports)),
    section(10, vector(bodies)),
  ));
}

/** The part of the WebAssembly JS API used here: tsconfig's lib (ES2022, no DOM) does not declare it. */
export interface WasmMemory {
  readonly buffer: ArrayBuffer;
}
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { readonly exports: Record<string, unknown> };
};

/** Compiles `bytes` and instantiates it on `memory`; returns its exports. */
export function instantiate(bytes: Uint8Array, memory: WasmMemory): Record<string, unknown> {
  return new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } }).exports;
}
