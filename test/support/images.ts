/** Generated CIFAR-shaped image sets for tests that need data without the real dataset. */
import type { Cifar10Images } from '../../common/data';
import { Rng } from '../../common/random';

/**
 * Images whose class is drawn into them (class c brightens the c-th 8x8 cell of a 4x4 grid) over uniform
 * noise, labels cycling through the 10 classes: a tiny model can learn them in a few epochs.
 */
export function signalImages(count: number, seed: number): Cifar10Images {
  const rng = new Rng(seed);
  const images = new Uint8Array(count * 3072);
  const labels = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    const c = i % 10;
    labels[i] = c;
    const [cy, cx] = [Math.floor(c / 4), c % 4];
    for (let y = 0; y < 32; y++) {
      for (let x = 0; x < 32; x++) {
        const lit = Math.floor(y / 8) === cy && Math.floor(x / 8) === cx;
        for (let ch = 0; ch < 3; ch++) images[i * 3072 + (y * 32 + x) * 3 + ch] = (lit ? 120 : 0) + rng.int(120);
      }
    }
  }
  return { images, labels, count };
}

/** Uniform noise images with random labels. */
export function randomImages(count: number, seed: number): Cifar10Images {
  const rng = new Rng(seed);
  const images = Uint8Array.from({ length: count * 3072 }, () => rng.int(256));
  const labels = Uint8Array.from({ length: count }, () => rng.int(10));
  return { images, labels, count };
}
