import { ConfigError } from '../errors';
import type { AugmentSpec } from '../job';
import { Rng } from '../random';
import { CIFAR10_CHANNELS, CIFAR10_IMAGE_BYTES, CIFAR10_IMAGE_SIZE } from './cifar10-reader';

// Local copies: imported bindings compile to getter calls under CommonJS, too slow for pixel loops.
const SIZE = CIFAR10_IMAGE_SIZE;
const CHANNELS = CIFAR10_CHANNELS;
const IMAGE_BYTES = CIFAR10_IMAGE_BYTES;
const PIXELS = SIZE * SIZE;
/** Rotation centre in pixel-index coordinates: the middle of the image, between pixels 15 and 16. */
const CENTER = (SIZE - 1) / 2;
/** ITU-R 601-2 luma weights, as torchvision's rgb_to_grayscale. */
const LUMA_R = 0.2989;
const LUMA_G = 0.587;
const LUMA_B = 0.114;

/** An AugmentSpec with every operation disabled: the augmenter then returns its input unchanged. */
export const NO_AUGMENT: Readonly<AugmentSpec> = Object.freeze({
  cropPadding: 0,
  horizontalFlip: false,
  brightness: 0,
  contrast: 0,
  saturation: 0,
  hue: 0,
  rotationDeg: 0,
});

function mix32(h: number): number {
  // murmur3 finaliser: every input bit flips about half of the output bits.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function absorb(h: number, value: number, name: string): number {
  if (!Number.isSafeInteger(value)) throw new RangeError(`sampleSeed: ${name} must be a safe integer, got ${value}`);
  const lo = value >>> 0;
  const hi = Math.floor(value / 0x100000000) >>> 0;
  h = mix32((h ^ lo) + 0x9e3779b9);
  return mix32((h ^ hi) + 0x7f4a7c15);
}

/**
 * The augmentation seed of one sample in one epoch. It depends only on (job seed, epoch, sample index),
 * never on which worker or batch the sample lands in, so a distributed run augments every sample exactly
 * as a single-process run would. Returns an unsigned 32-bit integer.
 */
export function sampleSeed(jobSeed: number, epoch: number, sampleIndex: number): number {
  let h = 0x6a09e667;
  h = absorb(h, jobSeed, 'jobSeed');
  h = absorb(h, epoch, 'epoch');
  h = absorb(h, sampleIndex, 'sampleIndex');
  return h;
}

/** The random decisions for one image; drawn in a fixed order so disabling one op leaves the others' draws alone. */
export interface AugmentParams {
  /** Crop offset into the zero-padded image, in 0..2*cropPadding. */
  cropTop: number;
  cropLeft: number;
  flip: boolean;
  /** Order of the colour ops: 0 brightness, 1 contrast, 2 saturation, 3 hue (torchvision draws it too). */
  colourOrder: Uint32Array;
  brightnessFactor: number;
  contrastFactor: number;
  saturationFactor: number;
  hueShift: number;
  angleDeg: number;
}

function checkSpec(spec: AugmentSpec): void {
  const nonNegative = ['brightness', 'contrast', 'saturation', 'rotationDeg'] as const;
  if (!Number.isInteger(spec.cropPadding) || spec.cropPadding < 0 || spec.cropPadding > SIZE) {
    throw new ConfigError('data.augment.cropPadding', `expected an integer in 0..${SIZE}, got ${spec.cropPadding}`);
  }
  for (const key of nonNegative) {
    if (!(spec[key] >= 0) || !Number.isFinite(spec[key])) {
      throw new ConfigError(`data.augment.${key}`, `expected a finite number >= 0, got ${spec[key]}`);
    }
  }
  if (!(spec.hue >= 0 && spec.hue <= 0.5)) {
    throw new ConfigError('data.augment.hue', `expected a number in [0, 0.5], got ${spec.hue}`);
  }
}

/**
 * Training-time augmentation of 32x32x3 uint8 HWC images in plain JS, with torchvision semantics:
 * RandomCrop(32, padding, zero fill), RandomHorizontalFlip(0.5), ColorJitter(brightness, contrast,
 * saturation, hue) in a random order, RandomRotation(deg, bilinear, zero fill). It runs off the tensor
 * backend so it gives identical bytes on every worker whatever backend that worker uses.
 *
 * Colour and rotation work in float on the 0..255 scale and round once at the end (torchvision's uint8
 * path truncates after every op; float tensors do not, and that is the better-defined of the two).
 */
export class Augmenter {
  readonly spec: Readonly<AugmentSpec>;
  /** True when every op is disabled, so callers can skip the copy. */
  readonly isIdentity: boolean;
  private readonly work = new Float32Array(IMAGE_BYTES);
  private readonly rotated = new Float32Array(IMAGE_BYTES);

  constructor(spec: AugmentSpec) {
    checkSpec(spec);
    this.spec = Object.freeze({ ...spec });
    this.isIdentity =
      spec.cropPadding === 0 &&
      !spec.horizontalFlip &&
      spec.brightness === 0 &&
      spec.contrast === 0 &&
      spec.saturation === 0 &&
      spec.hue === 0 &&
      spec.rotationDeg === 0;
  }

  /** The random decisions `apply` makes for this seed; exposed so tests and logs can see them. */
  params(seed: number): AugmentParams {
    const s = this.spec;
    // The prefix matters: seedrandom cycles short keys, so Rng(1) and Rng(11) would be the same stream.
    const rng = new Rng(`aug:${seed}`);
    const span = 2 * s.cropPadding + 1;
    return {
      cropTop: rng.int(span),
      cropLeft: rng.int(span),
      flip: rng.next() < 0.5 && s.horizontalFlip,
      colourOrder: rng.permutation(4),
      brightnessFactor: rng.uniform(Math.max(0, 1 - s.brightness), 1 + s.brightness),
      contrastFactor: rng.uniform(Math.max(0, 1 - s.contrast), 1 + s.contrast),
      saturationFactor: rng.uniform(Math.max(0, 1 - s.saturation), 1 + s.saturation),
      hueShift: rng.uniform(-s.hue, s.hue),
      angleDeg: rng.uniform(-s.rotationDeg, s.rotationDeg),
    };
  }

  /**
   * Augments one image. The result depends only on `image`, `seed` and the spec; derive `seed` with
   * {@link sampleSeed}. Writes into `out` when given (it must not alias `image`), else a new array.
   */
  apply(image: Uint8Array, seed: number, out?: Uint8Array): Uint8Array {
    if (image.length !== IMAGE_BYTES) {
      throw new RangeError(`Augmenter.apply: expected ${IMAGE_BYTES} bytes (32x32x3 HWC), got ${image.length}`);
    }
    const dst = out ?? new Uint8Array(IMAGE_BYTES);
    if (dst.length !== IMAGE_BYTES) {
      throw new RangeError(`Augmenter.apply: expected an output of ${IMAGE_BYTES} bytes, got ${dst.length}`);
    }
    if (this.isIdentity) {
      dst.set(image);
      return dst;
    }
    const p = this.params(seed);
    const s = this.spec;
    const buf = this.work;
    cropFlip(image, buf, p.cropTop - s.cropPadding, p.cropLeft - s.cropPadding, p.flip);
    for (const op of p.colourOrder) {
      if (op === 0 && s.brightness > 0) brightness(buf, p.brightnessFactor);
      else if (op === 1 && s.contrast > 0) contrast(buf, p.contrastFactor);
      else if (op === 2 && s.saturation > 0) saturation(buf, p.saturationFactor);
      else if (op === 3 && s.hue > 0) hue(buf, p.hueShift);
    }
    let result = buf;
    if (s.rotationDeg > 0 && p.angleDeg !== 0) {
      rotate(buf, this.rotated, p.angleDeg);
      result = this.rotated;
    }
    // A clamped view rounds (half to even) and saturates to 0..255 in one native copy.
    new Uint8ClampedArray(dst.buffer, dst.byteOffset, IMAGE_BYTES).set(result);
    return dst;
  }
}

/** Crop a 32x32 window at (dy, dx) from the zero-padded image, mirroring columns when `flip`. */
function cropFlip(src: Uint8Array, dst: Float32Array, dy: number, dx: number, flip: boolean): void {
  for (let y = 0; y < SIZE; y++) {
    const sy = y + dy;
    const rowOut = y * SIZE * CHANNELS;
    if (sy < 0 || sy >= SIZE) {
      dst.fill(0, rowOut, rowOut + SIZE * CHANNELS);
      continue;
    }
    for (let x = 0; x < SIZE; x++) {
      const sx = (flip ? SIZE - 1 - x : x) + dx;
      const o = rowOut + x * 3;
      if (sx < 0 || sx >= SIZE) {
        dst[o] = 0;
        dst[o + 1] = 0;
        dst[o + 2] = 0;
      } else {
        const i = (sy * SIZE + sx) * 3;
        dst[o] = src[i];
        dst[o + 1] = src[i + 1];
        dst[o + 2] = src[i + 2];
      }
    }
  }
}

function clamp255(v: number): number {
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** torchvision adjust_brightness: blend with black. */
function brightness(buf: Float32Array, f: number): void {
  for (let i = 0; i < buf.length; i++) buf[i] = clamp255(buf[i] * f);
}

/** torchvision adjust_contrast: blend with the mean grey level of the whole image. */
function contrast(buf: Float32Array, f: number): void {
  let sum = 0;
  for (let i = 0; i < buf.length; i += 3) sum += LUMA_R * buf[i] + LUMA_G * buf[i + 1] + LUMA_B * buf[i + 2];
  const mean = (1 - f) * (sum / PIXELS);
  for (let i = 0; i < buf.length; i++) buf[i] = clamp255(f * buf[i] + mean);
}

/** torchvision adjust_saturation: blend each pixel with its own grey level. */
function saturation(buf: Float32Array, f: number): void {
  for (let i = 0; i < buf.length; i += 3) {
    const g = (1 - f) * (LUMA_R * buf[i] + LUMA_G * buf[i + 1] + LUMA_B * buf[i + 2]);
    buf[i] = clamp255(f * buf[i] + g);
    buf[i + 1] = clamp255(f * buf[i + 1] + g);
    buf[i + 2] = clamp255(f * buf[i + 2] + g);
  }
}

/** torchvision adjust_hue: rotate the hue in HSV space by `shift` turns (same rgb<->hsv formulas). */
function hue(buf: Float32Array, shift: number): void {
  for (let i = 0; i < buf.length; i += 3) {
    const r = buf[i];
    const g = buf[i + 1];
    const b = buf[i + 2];
    const maxc = Math.max(r, g, b);
    const minc = Math.min(r, g, b);
    const cr = maxc - minc;
    if (cr === 0) continue; // grey: hue is undefined and the shift changes nothing
    const sat = cr / maxc;
    const rc = (maxc - r) / cr;
    const gc = (maxc - g) / cr;
    const bc = (maxc - b) / cr;
    let h = maxc === r ? bc - gc : maxc === g ? 2 + rc - bc : 4 + gc - rc;
    h = h / 6 + 1 + shift;
    h -= Math.floor(h);
    const h6 = h * 6;
    const sector = Math.floor(h6) % 6;
    const frac = h6 - Math.floor(h6);
    const v = maxc;
    const pp = v * (1 - sat);
    const q = v * (1 - sat * frac);
    const t = v * (1 - sat * (1 - frac));
    let nr: number, ng: number, nb: number;
    switch (sector) {
      case 0: nr = v; ng = t; nb = pp; break;
      case 1: nr = q; ng = v; nb = pp; break;
      case 2: nr = pp; ng = v; nb = t; break;
      case 3: nr = pp; ng = q; nb = v; break;
      case 4: nr = t; ng = pp; nb = v; break;
      default: nr = v; ng = pp; nb = q; break;
    }
    buf[i] = clamp255(nr);
    buf[i + 1] = clamp255(ng);
    buf[i + 2] = clamp255(nb);
  }
}

/**
 * torchvision rotate(angle, BILINEAR, fill 0): counter-clockwise for positive angles about the image
 * centre; each output pixel samples the source bilinearly and neighbours outside the image count as 0.
 */
function rotate(src: Float32Array, dst: Float32Array, angleDeg: number): void {
  const rad = (angleDeg * Math.PI) / 180;
  const cos = Math.cos(rad);
  const sin = Math.sin(rad);
  const last = SIZE - 1;
  let o = 0;
  for (let y = 0; y < SIZE; y++) {
    const dy = y - CENTER;
    // Source position of output (x, y) is rowX + x*cos, rowY + x*sin (inverse rotation about the centre).
    const rowX = -cos * CENTER - sin * dy + CENTER;
    const rowY = -sin * CENTER + cos * dy + CENTER;
    for (let x = 0; x < SIZE; x++, o += 3) {
      const sx = rowX + x * cos;
      const sy = rowY + x * sin;
      if (sx <= -1 || sy <= -1 || sx >= SIZE || sy >= SIZE) {
        dst[o] = 0;
        dst[o + 1] = 0;
        dst[o + 2] = 0;
        continue;
      }
      const x0 = Math.floor(sx);
      const y0 = Math.floor(sy);
      const fx = sx - x0;
      const fy = sy - y0;
      const w00 = (1 - fx) * (1 - fy);
      const w01 = fx * (1 - fy);
      const w10 = (1 - fx) * fy;
      const w11 = fx * fy;
      const i = (y0 * SIZE + x0) * 3;
      const j = i + SIZE * 3;
      if (x0 >= 0 && y0 >= 0 && x0 < last && y0 < last) {
        dst[o] = w00 * src[i] + w01 * src[i + 3] + w10 * src[j] + w11 * src[j + 3];
        dst[o + 1] = w00 * src[i + 1] + w01 * src[i + 4] + w10 * src[j + 1] + w11 * src[j + 4];
        dst[o + 2] = w00 * src[i + 2] + w01 * src[i + 5] + w10 * src[j + 2] + w11 * src[j + 5];
        continue;
      }
      // Border: neighbours outside the image contribute zero (the fill value).
      const inX0 = x0 >= 0;
      const inX1 = x0 < last;
      const inY0 = y0 >= 0;
      const inY1 = y0 < last;
      for (let c = 0; c < 3; c++) {
        let v = 0;
        if (inY0 && inX0) v += w00 * src[i + c];
        if (inY0 && inX1) v += w01 * src[i + 3 + c];
        if (inY1 && inX0) v += w10 * src[j + c];
        if (inY1 && inX1) v += w11 * src[j + 3 + c];
        dst[o + c] = v;
      }
    }
  }
}
