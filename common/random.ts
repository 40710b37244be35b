import seedrandom from 'seedrandom';

/**
 * A seeded pseudo-random source. Every random decision in shardwise (shuffling, augmentation, weight
 * initialisation seeds) draws from one of these so a run is reproducible from its seed.
 */
export class Rng {
  private readonly prng: seedrandom.PRNG;

  constructor(seed: number | string) {
    // seedrandom repeats a short key to fill its state, so seeds 1 and 11 would give one stream: a prefix
    // makes every seed's key distinct.
    this.prng = seedrandom(`rng:${seed}`);
  }

  /** Uniform float in [0, 1). */
  next(): number {
    return this.prng.quick();
  }

  /** Uniform float in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** A 32-bit unsigned integer, e.g. to seed a tfjs initializer. */
  uint32(): number {
    return this.prng.int32() >>> 0;
  }

  /** A Fisher–Yates permutation of 0..n-1. */
  permutation(n: number): Uint32Array {
    const out = new Uint32Array(n);
    for (let i = 0; i < n; i++) out[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = out[i];
      out[i] = out[j];
      out[j] = t;
    }
    return out;
  }
}
