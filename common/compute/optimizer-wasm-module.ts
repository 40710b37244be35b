import {
  assembleModule, type Code, f32, f32x4, i32, local, ValueType, type WasmFunction, whileBelow,
} from './wasm-assembler';

/**
 * The optimizer update rules as WebAssembly functions over float32 arrays in one memory: each reads
 * the variable, its gradient and its slots once and writes the new variable and slots once, where the
 * same rule as tfjs ops makes ~12 passes over memory and ~12 kernel calls per variable. The arithmetic is
 * the same sequence of float32 operations the ops perform (same operands, same order), so the results
 * are the same bits. Four elements per SIMD step, then a scalar loop for the last `count % 4`.
 */

/** The arithmetic a rule is written in; implemented once for f32x4 lanes and once for scalars. */
export interface Arith {
  /** Element of the array at pointer parameter `pointer`. */
  load(pointer: string): Code;
  store(pointer: string, value: Code): Code;
  /** A float32 scalar parameter (splatted to all lanes in the SIMD loop). */
  scalar(name: string): Code;
  /** Temporaries, so a value used twice is computed once. */
  set(temp: string, value: Code): Code;
  get(temp: string): Code;
  add(a: Code, b: Code): Code;
  sub(a: Code, b: Code): Code;
  mul(a: Code, b: Code): Code;
  div(a: Code, b: Code): Code;
  sqrt(a: Code): Code;
}

/** An element-wise rule: its array parameters, scalar parameters, temporaries and per-element body. */
export interface ElementwiseRule {
  pointers: readonly string[];
  scalars: readonly string[];
  temps: readonly string[];
  body(a: Arith): Code;
}

/**
 * The function `name(…pointers (byte offsets), count, …scalars)` applying `rule` to elements
 * 0..count-1. Parameters come in the order of the rule's lists.
 */
export function elementwiseFunction(name: string, rule: ElementwiseRule): WasmFunction {
  const { pointers, scalars, temps } = rule;
  const countParam = pointers.length;
  const scalarParam = (s: string) => countParam + 1 + scalars.indexOf(s);
  const params = [...pointers.map(() => ValueType.i32), ValueType.i32, ...scalars.map(() => ValueType.f32)];
  // Locals after the parameters: byte counter, SIMD end, end, the splats, SIMD temps, scalar temps.
  const [byte, vectorEnd, end] = [params.length, params.length + 1, params.length + 2];
  const splat = (s: string) => end + 1 + scalars.indexOf(s);
  const vectorTemp = (t: string) => end + 1 + scalars.length + temps.indexOf(t);
  const scalarTemp = (t: string) => end + 1 + scalars.length + temps.length + temps.indexOf(t);
  const locals = [
    ValueType.i32, ValueType.i32, ValueType.i32,
    ...scalars.map(() => ValueType.v128), ...temps.map(() => ValueType.v128), ...temps.map(() => ValueType.f32),
  ];
  const address = (p: string) => {
    const index = pointers.indexOf(p);
    if (index < 0) throw new RangeError(`rule ${name}: no pointer parameter '${p}'`);
    return i32.add(local.get(index), local.get(byte));
  };
  const lanes = (ops: typeof f32 | typeof f32x4, scalar: (s: string) => number, temp: (t: string) => number): Arith => ({
    load: (p) => ops.load(address(p)),
    store: (p, v) => ops.store(address(p), v),
    scalar: (s) => local.get(scalar(s)),
    set: (t, v) => local.set(temp(t), v),
    get: (t) => local.get(temp(t)),
    add: ops.add,
    sub: ops.sub,
    mul: ops.mul,
    div: ops.div,
    sqrt: ops.sqrt,
  });
  const body: Code = [
    ...scalars.flatMap((s) => local.set(splat(s), f32x4.splat(local.get(scalarParam(s))))),
    ...local.set(end, i32.shl(local.get(countParam), i32.const(2))),
    ...local.set(vectorEnd, i32.shl(i32.and(local.get(countParam), i32.const(-4)), i32.const(2))),
    ...whileBelow(byte, local.get(vectorEnd), 16, rule.body(lanes(f32x4, splat, vectorTemp))),
    ...whileBelow(byte, local.get(end), 4, rule.body(lanes(f32, scalarParam, scalarTemp))),
  ];
  return { name, params, locals, body };
}

/** Which Adam variant: weight decay as L2 on the gradient, decoupled (AdamW), or none. */
export type AdamDecay = 'none' | 'l2' | 'decoupled';

/**
 * The gradient a rule starts from: the summed gradient divided by `divisor` (the sample count, so the mean;
 * 1 for a gradient that is a mean already, which divides exactly), as `tf.div(sum, count)` did before the
 * update in a separate pass over memory.
 */
const meanGradient = (a: Arith): Code => a.div(a.load('g'), a.scalar('divisor'));

/**
 * Adam, as common/training/adam.ts composes it from ops:
 * `g = sum / divisor`; `g' = g + w·wd` (L2 only); `m = m·b1 + g'·(1-b1)`; `v = v·b2 + (g'·g')·(1-b2)`;
 * `w' = (w·decay) - ((m / c1) / (sqrt(v / c2) + eps))·lr`, with `w·decay` for AdamW only,
 * `c1 = 1 - b1^t`, `c2 = 1 - b2^t`, `decay = 1 - lr·wd`.
 */
export function adamRule(decay: AdamDecay): ElementwiseRule {
  return {
    pointers: ['w', 'g', 'm', 'v', 'outW', 'outM', 'outV'],
    scalars: ['b1', 'oneMinusB1', 'b2', 'oneMinusB2', 'c1', 'c2', 'eps', 'lr', 'wd', 'decay', 'divisor'],
    temps: ['g', 'm', 'v'],
    body: (a) => [
      ...a.set('g', decay === 'l2' ? a.add(meanGradient(a), a.mul(a.load('w'), a.scalar('wd'))) : meanGradient(a)),
      ...a.set('m', a.add(a.mul(a.load('m'), a.scalar('b1')), a.mul(a.get('g'), a.scalar('oneMinusB1')))),
      ...a.set('v', a.add(a.mul(a.load('v'), a.scalar('b2')), a.mul(a.mul(a.get('g'), a.get('g')), a.scalar('oneMinusB2')))),
      ...a.store('outM', a.get('m')),
      ...a.store('outV', a.get('v')),
      ...a.store('outW', a.sub(
        decay === 'decoupled' ? a.mul(a.load('w'), a.scalar('decay')) : a.load('w'),
        a.mul(
          a.div(a.div(a.get('m'), a.scalar('c1')), a.add(a.sqrt(a.div(a.get('v'), a.scalar('c2'))), a.scalar('eps'))),
          a.scalar('lr'),
        ),
      )),
    ],
  };
}

/** Which SGD variant (all with optional L2 weight decay). */
export interface SgdVariant {
  l2: boolean;
  momentum: boolean;
  nesterov: boolean;
}

/**
 * SGD, as common/training/sgd.ts composes it from ops: `g = sum / divisor`; `g' = g + w·wd` (L2 only); without momentum
 * `w' = w - g'·lr`; with it `buf = buf·mu + g'`, `w' = w - (nesterov ? g' + buf·mu : buf)·lr`.
 */
export function sgdRule(variant: SgdVariant): ElementwiseRule {
  const grad = (a: Arith) => (variant.l2 ? a.add(meanGradient(a), a.mul(a.load('w'), a.scalar('wd'))) : meanGradient(a));
  return {
    // Plain SGD has no buffer, and so no buffer pointers.
    pointers: variant.momentum ? ['w', 'g', 'buf', 'outW', 'outBuf'] : ['w', 'g', 'outW'],
    scalars: ['mu', 'lr', 'wd', 'divisor'],
    temps: ['g', 'buf'],
    body: (a) => {
      if (!variant.momentum) return a.store('outW', a.sub(a.load('w'), a.mul(grad(a), a.scalar('lr'))));
      const direction = variant.nesterov ? a.add(a.get('g'), a.mul(a.get('buf'), a.scalar('mu'))) : a.get('buf');
      return [
        ...a.set('g', grad(a)),
        ...a.set('buf', a.add(a.mul(a.load('buf'), a.scalar('mu')), a.get('g'))),
        ...a.store('outBuf', a.get('buf')),
        ...a.store('outW', a.sub(a.load('w'), a.mul(direction, a.scalar('lr')))),
      ];
    },
  };
}

const ADAM_DECAYS: readonly AdamDecay[] = ['none', 'l2', 'decoupled'];

/** Exported name of the Adam function for `decay`. */
export const adamFunctionName = (decay: AdamDecay): string => `adam_${decay}`;

/** Exported name of the SGD function for `variant`. */
export const sgdFunctionName = (v: SgdVariant): string =>
  `sgd${v.l2 ? '_l2' : ''}${v.momentum ? '_momentum' : ''}${v.nesterov ? '_nesterov' : ''}`;

const SGD_VARIANTS: readonly SgdVariant[] = [false, true].flatMap((l2) => [
  { l2, momentum: false, nesterov: false },
  { l2, momentum: true, nesterov: false },
  { l2, momentum: true, nesterov: true },
]);

/** The module with every optimizer variant, each under its function name. */
export function optimizerModule(): Uint8Array {
  return assembleModule([
    ...ADAM_DECAYS.map((d) => elementwiseFunction(adamFunctionName(d), adamRule(d))),
    ...SGD_VARIANTS.map((v) => elementwiseFunction(sgdFunctionName(v), sgdRule(v))),
  ]);
}
