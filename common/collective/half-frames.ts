import { AllreduceError } from './errors';
import { decodeFp16, encodeFp16, FP16_MAX } from './fp16';
import type { AllreduceCompression, AllreduceRequest } from './types';

/** Whether any of `values`, from index `from` on, is NaN (a half's NaN decodes to a float32 NaN). */
function hasNaN(values: Float32Array, from: number): boolean {
  for (let i = Math.max(0, from); i < values.length; i++) if (Number.isNaN(values[i])) return true;
  return false;
}

/** Reads `bytes` (a whole number of halves, host order) as halves. */
function halves(bytes: Uint8Array): Uint16Array {
  return new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2);
}

/**
 * The fp16 side of one reduction run (`AllreduceCompression`): what a member sends as halves and how what it
 * receives becomes float32 again. The contributors' parts are prescaled and rounded to fp16 (its own parts
 * too, in place, so the owner adds exactly what the others would have sent); the owner adds them in float32
 * by the summation tree, rounds the sum to fp16 once, and sends those halves to every member, itself
 * included, which divide the prescale out. So every member decodes the same halves: identical bytes.
 *
 * A value beyond the fp16 range becomes Infinity where it is converted and travels on as such (a sum with
 * an Infinity is one): every member then finds it when it decodes the result, and all fail alike with an
 * error naming the tensor, where failing at the first member would leave the others with a closed
 * connection and no reason. Two such values of opposite signs meet as NaN in the owner's sum: when no part
 * the owner folded was NaN, a NaN there can only be that, so the owner sends it as Infinity and every
 * member reports the range, not a NaN. Halves are sent in little-endian order (every platform Node runs on here).
 */
export class HalfFrames {
  private readonly postscale: number;
  /** The owner's rounded sum, as sent to every member. */
  private reduced?: Uint8Array;
  /** The first offset in the vector whose reduced value is not a finite half, and what it was. */
  private firstBad?: { offset: number; nan: boolean };
  /** Whether a part this member folds (its own or one received) held a NaN: see the class comment. */
  private nanInPart = false;

  constructor(private readonly reduction: AllreduceRequest, private readonly compression: AllreduceCompression) {
    this.postscale = 1 / compression.prescale;
  }

  /** Bytes a frame of `floats` values takes. */
  static bytes(floats: number): number {
    return 2 * floats;
  }

  /** A contributor's part: its values times the prescale, as halves. */
  encodePart(values: Float32Array): Uint8Array {
    const out = new Uint16Array(values.length);
    encodeFp16(values, out, this.compression.prescale);
    return new Uint8Array(out.buffer);
  }

  /** The owner's own part, in place: prescaled and rounded to fp16, as if it had been sent. */
  quantizeOwnPart(values: Float32Array): void {
    const out = new Uint16Array(values.length);
    const bad = encodeFp16(values, out, this.compression.prescale);
    decodeFp16(out, values);
    if (bad >= 0 && hasNaN(values, bad)) this.nanInPart = true;
  }

  /** A part that arrived in `bytes`, into the fold's slot, still prescaled (an Infinity is kept: see the class comment). */
  decodePart(bytes: Uint8Array, slot: Float32Array): void {
    const bad = decodeFp16(halves(bytes), slot);
    if (bad >= 0 && hasNaN(slot, bad)) this.nanInPart = true;
  }

  /**
   * The owner's folded (prescaled) sum of its segment at `offset` in the vector: rounded to fp16 once,
   * kept to send, and written back into `segment` as every other member will decode it.
   */
  finishOwnSegment(segment: Float32Array, offset: number): void {
    const out = new Uint16Array(segment.length);
    const bad = encodeFp16(segment, out);
    if (bad >= 0 && !this.nanInPart && hasNaN(segment, bad)) {
      for (let i = bad; i < segment.length; i++) if (Number.isNaN(segment[i])) segment[i] = Infinity;
      encodeFp16(segment, out);
    }
    this.reduced = new Uint8Array(out.buffer);
    this.decodeResult(this.reduced, segment, offset);
  }

  /** The owner's rounded sum as sent in the allgather (after `finishOwnSegment`). */
  get reducedSegment(): Uint8Array {
    if (!this.reduced) throw new RangeError('HalfFrames: the own segment is not reduced yet');
    return this.reduced;
  }

  /** A reduced segment that arrived, at `offset` in the vector, into `segment`, with the prescale divided out. */
  decodeResult(bytes: Uint8Array, segment: Float32Array, offset: number): void {
    const src = halves(bytes);
    const bad = decodeFp16(src, segment, this.postscale);
    if (bad >= 0 && (this.firstBad === undefined || offset + bad < this.firstBad.offset)) {
      this.firstBad = { offset: offset + bad, nan: (src[bad] & 0x3ff) !== 0 };
    }
  }

  /**
   * Throws AllreduceError naming the tensor of the first reduced value that was not a finite half. Every member
   * reads the same halves, so every member throws the same error.
   */
  assertFinite(): void {
    const bad = this.firstBad;
    if (!bad) return;
    const { name, index } = this.locate(bad.offset);
    const what = bad.nan
      ? 'is NaN'
      : `is beyond the fp16 range (±${FP16_MAX}) after prescaling by ${this.compression.prescale}: lower the prescale factor or use no compression`;
    throw new AllreduceError(this.reduction.key, 'allgather', `the reduced gradient of tensor '${name}' at element ${index} ${what}`);
  }

  /** The tensor holding vector offset `offset`, and the element's index within it. */
  private locate(offset: number): { name: string; index: number } {
    let start = 0;
    for (const t of this.reduction.tensors ?? []) {
      const size = t.shape.reduce((a, b) => a * b, 1);
      if (offset < start + size) return { name: t.name, index: offset - start };
      start += size;
    }
    return { name: '(unnamed: the reduction lists no tensors)', index: offset };
  }
}

/** The `AllreduceRequest.compression` of a job's `distributed.compression` and `prescaleFactor`. */
export function allreduceCompression(d: { readonly compression: 'none' | 'fp16'; readonly prescaleFactor: number }): AllreduceCompression | undefined {
  return d.compression === 'fp16' ? { type: 'fp16', prescale: d.prescaleFactor } : undefined;
}
