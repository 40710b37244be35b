import { WireTensorSpec, WireTypedArray, elementBytes, elementCount } from '../wire';

/**
 * Reductions that may have frames waiting here before they start. A sender is at most one reduction ahead of
 * a contributor (it cannot finish a reduction without that contributor's segment), so one would do; two
 * leave room for an observer and for a retry that follows a failure closely.
 */
export const MAX_EARLY_KEYS = 2;

/** The least the early frames of one reduction may hold, however small the last reduction here was. */
export const EARLY_FLOOR_BYTES = 1024 * 1024;

/**
 * The early frames of one reduction may hold this many times the input of the last reduction here. Before a
 * contributor starts, a sender can only have sent it parts of its segment (its reduced segment needs this
 * member's parts first), which for an aligned split add up to less than one input vector.
 */
export const EARLY_INPUT_FACTOR = 2;

/**
 * Accounting for data frames that arrive for a reduction that has not started here yet: a sender sends its
 * parts the moment its reduction starts, without waiting to hear that the receiver's has. Each frame is read
 * into memory allocated here, within bounds, and the link that carried it keeps it until the reduction
 * takes the link up. Memory stays bounded against a buggy or hostile peer: at most `MAX_EARLY_KEYS`
 * reductions, each at most `bound` bytes; a frame beyond either is refused (the caller closes its link,
 * which fails the sender's reduction at once).
 */
export class EarlyFrames<L extends object> {
  /** Bytes held (or being read) per reduction key, per link. */
  private readonly held = new Map<string, Map<L, number>>();
  private inputBytes = 0;

  /** The most bytes one reduction's early frames may hold. */
  get bound(): number {
    return Math.max(EARLY_FLOOR_BYTES, EARLY_INPUT_FACTOR * this.inputBytes);
  }

  /** Bytes held (or being read) now, every reduction together. */
  get bytes(): number {
    let total = 0;
    for (const links of this.held.values()) for (const n of links.values()) total += n;
    return total;
  }

  /** The reductions that have frames waiting, oldest first. */
  get keys(): string[] {
    return [...this.held.keys()];
  }

  /** A reduction of `bytes` of input starts here: the next one's early frames are bounded by it. */
  expect(bytes: number): void {
    this.inputBytes = bytes;
  }

  /**
   * Memory for the tensor `spec` of a frame for reduction `key` arriving early on `link` from `peer`, counted
   * until `release` or `dropLink`; or, when it does not fit, why (naming the bound).
   */
  admit(link: L, key: string, spec: WireTensorSpec, peer: string): WireTypedArray | string {
    const bytes = elementCount(spec.shape) * elementBytes(spec.dtype);
    const links = this.held.get(key);
    if (!links && this.held.size >= MAX_EARLY_KEYS) {
      return `expected frames for at most ${MAX_EARLY_KEYS} reductions that have not started here ` +
        `(${this.keys.map((k) => `'${k}'`).join(', ')}), got '${spec.name}' from '${peer}' for another, '${key}'`;
    }
    const total = [...(links?.values() ?? [])].reduce((a, b) => a + b, 0) + bytes;
    if (total > this.bound) {
      return `expected at most ${this.bound} bytes of frames for reduction '${key}' before it starts here ` +
        `(${EARLY_INPUT_FACTOR} x the last input here, at least ${EARLY_FLOOR_BYTES}), '${peer}' sent '${spec.name}', ${total} bytes in all`;
    }
    const mine = links ?? new Map<L, number>();
    mine.set(link, (mine.get(link) ?? 0) + bytes);
    this.held.set(key, mine);
    const Ctor = spec.dtype === 'float32' ? Float32Array : spec.dtype === 'int32' ? Int32Array : Uint8Array;
    return new Ctor(elementCount(spec.shape));
  }

  /** `bytes` of `link`'s early frames for `key` were handed to the reduction. */
  release(link: L, key: string, bytes: number): void {
    const links = this.held.get(key);
    const left = (links?.get(link) ?? 0) - bytes;
    if (left > 0) links?.set(link, left);
    else links?.delete(link);
    if (links?.size === 0) this.held.delete(key);
  }

  /** `link` closed: the early frames it held go with it. */
  dropLink(link: L): void {
    for (const [key, links] of this.held) {
      links.delete(link);
      if (links.size === 0) this.held.delete(key);
    }
  }

  /** The links holding early frames of reductions other than `key` (which will not run here now that `key` starts). */
  holdersOtherThan(key: string): L[] {
    return [...this.held].filter(([k]) => k !== key).flatMap(([, links]) => [...links.keys()]);
  }
}
