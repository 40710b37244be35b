import assert from 'node:assert/strict';
import { Augmenter, NO_AUGMENT, sampleSeed } from '../common/data';
import { ConfigError } from '../common/errors';
import type { AugmentSpec } from '../common/job';
import { Rng } from '../common/random';

const FULL: AugmentSpec = {
  cropPadding: 4,
  horizontalFlip: true,
  brightness: 0.2,
  contrast: 0.2,
  saturation: 0.2,
  hue: 0.05,
  rotationDeg: 15,
};

function only(partial: Partial<AugmentSpec>): AugmentSpec {
  return { ...NO_AUGMENT, ...partial };
}

function randomImage(seed: number): Uint8Array {
  const rng = new Rng(seed);
  return Uint8Array.from({ length: 3072 }, () => rng.int(256));
}

function at(image: Uint8Array, y: number, x: number, c: number): number {
  return image[(y * 32 + x) * 3 + c];
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

describe('augment', () => {
  describe('sampleSeed', () => {
    it('is a deterministic unsigned 32-bit integer', () => {
      const s = sampleSeed(42, 3, 1234);
      assert.equal(s, sampleSeed(42, 3, 1234));
      assert.ok(Number.isInteger(s) && s >= 0 && s < 2 ** 32);
    });

    it('changes with each argument and rarely collides', () => {
      const seen = new Set<number>();
      for (let job = 0; job < 3; job++)
        for (let epoch = 0; epoch < 5; epoch++)
          for (let i = 0; i < 2000; i++) seen.add(sampleSeed(job, epoch, i));
      // 30,000 seeds in 2^32 values: a good hash collides about 0.1 times on average.
      assert.ok(seen.size >= 29_998, `only ${seen.size} distinct seeds of 30000`);
      assert.notEqual(sampleSeed(1, 0, 0), sampleSeed(0, 1, 0));
      assert.notEqual(sampleSeed(0, 1, 0), sampleSeed(0, 0, 1));
      assert.notEqual(sampleSeed(2 ** 32, 0, 0), sampleSeed(0, 0, 0), 'high bits of the job seed count');
    });

    it('has balanced output bits', () => {
      const ones = new Array<number>(32).fill(0);
      const n = 4000;
      for (let i = 0; i < n; i++) {
        const s = sampleSeed(7, 0, i);
        for (let b = 0; b < 32; b++) ones[b] += (s >>> b) & 1;
      }
      for (const count of ones) assert.ok(Math.abs(count / n - 0.5) < 0.05, `bit frequencies ${ones.join(',')}`);
    });

    it('rejects non-integers', () => {
      assert.throws(() => sampleSeed(0.5, 0, 0), /jobSeed must be a safe integer/);
    });
  });

  describe('Augmenter', () => {
    const image = randomImage(1);

    it('gives identical bytes for equal seeds, across instances', () => {
      const a = new Augmenter(FULL).apply(image, 99);
      const b = new Augmenter({ ...FULL }).apply(image, 99);
      assert.deepEqual(a, b);
    });

    it('gives different results for different seeds', () => {
      const aug = new Augmenter(FULL);
      const outputs = Array.from({ length: 20 }, (_, s) => aug.apply(image, s));
      for (let i = 0; i < outputs.length; i++)
        for (let j = i + 1; j < outputs.length; j++) assert.ok(!equalBytes(outputs[i], outputs[j]), `seeds ${i}, ${j}`);
    });

    it('returns a fresh 3072-byte image and leaves the input alone', () => {
      const copy = image.slice();
      const aug = new Augmenter(FULL);
      const out = aug.apply(image, 5);
      assert.ok(out instanceof Uint8Array);
      assert.equal(out.length, 3072);
      assert.deepEqual(image, copy);
      const target = new Uint8Array(3072);
      assert.equal(aug.apply(image, 5, target), target);
      assert.deepEqual(target, out);
    });

    it('is the identity when every op is disabled', () => {
      const aug = new Augmenter(NO_AUGMENT);
      assert.equal(aug.isIdentity, true);
      const out = aug.apply(image, 3);
      assert.notEqual(out, image);
      assert.deepEqual(out, image);
      assert.equal(new Augmenter(FULL).isIdentity, false);
    });

    it('flips by mirroring columns exactly, about half the time', () => {
      const aug = new Augmenter(only({ horizontalFlip: true }));
      const mirrored = new Uint8Array(3072);
      for (let y = 0; y < 32; y++)
        for (let x = 0; x < 32; x++)
          for (let c = 0; c < 3; c++) mirrored[(y * 32 + x) * 3 + c] = at(image, y, 31 - x, c);
      let flips = 0;
      for (let s = 0; s < 200; s++) {
        const out = aug.apply(image, s);
        if (aug.params(s).flip) {
          assert.deepEqual(out, mirrored);
          flips++;
        } else {
          assert.deepEqual(out, image);
        }
      }
      assert.ok(flips > 70 && flips < 130, `${flips} flips in 200`);
    });

    it('crops a shifted window of the zero-padded image, reaching every offset', () => {
      const aug = new Augmenter(only({ cropPadding: 4 }));
      const offsets = new Set<string>();
      for (let s = 0; s < 1000; s++) {
        const { cropTop, cropLeft } = aug.params(s);
        offsets.add(`${cropTop},${cropLeft}`);
        if (s % 40 !== 0) continue;
        const out = aug.apply(image, s);
        for (let y = 0; y < 32; y++) {
          for (let x = 0; x < 32; x++) {
            const sy = y + cropTop - 4;
            const sx = x + cropLeft - 4;
            const inside = sy >= 0 && sy < 32 && sx >= 0 && sx < 32;
            for (let c = 0; c < 3; c++) assert.equal(at(out, y, x, c), inside ? at(image, sy, sx, c) : 0);
          }
        }
      }
      assert.equal(offsets.size, 81, 'all 9x9 offsets occur');
    });

    it('scales pixels for brightness within [1-b, 1+b]', () => {
      const aug = new Augmenter(only({ brightness: 0.4 }));
      for (let s = 0; s < 10; s++) {
        const f = aug.params(s).brightnessFactor;
        assert.ok(f >= 0.6 && f <= 1.4);
        const out = aug.apply(image, s);
        for (let i = 0; i < 3072; i += 7) assert.ok(Math.abs(out[i] - Math.min(255, image[i] * f)) <= 0.5 + 1e-3);
      }
    });

    it('blends with the mean grey for contrast', () => {
      const aug = new Augmenter(only({ contrast: 0.5 }));
      let grey = 0;
      for (let p = 0; p < 1024; p++) grey += 0.2989 * image[p * 3] + 0.587 * image[p * 3 + 1] + 0.114 * image[p * 3 + 2];
      grey /= 1024;
      const s = 4;
      const f = aug.params(s).contrastFactor;
      const out = aug.apply(image, s);
      for (let i = 0; i < 3072; i += 5) {
        const expected = Math.min(255, Math.max(0, f * image[i] + (1 - f) * grey));
        assert.ok(Math.abs(out[i] - expected) <= 0.5 + 1e-3, `byte ${i}: ${out[i]} vs ${expected}`);
      }
    });

    it('leaves grey pixels alone under saturation and hue, and keeps each pixel max and min under hue', () => {
      const greyImage = new Uint8Array(3072);
      for (let p = 0; p < 1024; p++) greyImage.fill(p % 256, p * 3, p * 3 + 3);
      const colour = new Augmenter(only({ saturation: 0.9, hue: 0.5 }));
      for (let s = 0; s < 5; s++) assert.deepEqual(colour.apply(greyImage, s), greyImage);

      const hue = new Augmenter(only({ hue: 0.5 }));
      const out = hue.apply(image, 11);
      assert.ok(Math.abs(hue.params(11).hueShift) > 0.01);
      assert.ok(!equalBytes(out, image));
      for (let p = 0; p < 1024; p++) {
        const before = image.subarray(p * 3, p * 3 + 3);
        const after = out.subarray(p * 3, p * 3 + 3);
        // A hue rotation keeps value (max) and saturation, hence also the min channel.
        assert.ok(Math.abs(Math.max(...after) - Math.max(...before)) <= 1, `pixel ${p} max`);
        assert.ok(Math.abs(Math.min(...after) - Math.min(...before)) <= 1, `pixel ${p} min`);
      }
    });

    it('shifts pure red towards yellow for a positive hue shift', () => {
      const red = new Uint8Array(3072);
      for (let p = 0; p < 1024; p++) red[p * 3] = 255;
      const aug = new Augmenter(only({ hue: 0.1 }));
      const seed = Array.from({ length: 50 }, (_, s) => s).find((s) => aug.params(s).hueShift > 0.05);
      assert.ok(seed !== undefined);
      const shift = aug.params(seed).hueShift;
      const out = aug.apply(red, seed);
      assert.deepEqual([...out.subarray(0, 3)], [255, Math.round(255 * 6 * shift), 0]);
    });

    it('rotates counter-clockwise for positive angles with zero fill, angles within the limit', () => {
      const aug = new Augmenter(only({ rotationDeg: 15 }));
      // A bright bar right of centre: a counter-clockwise turn lifts it, a clockwise one lowers it.
      const bar = new Uint8Array(3072);
      for (let y = 14; y < 18; y++) for (let x = 24; x < 30; x++) bar.fill(200, (y * 32 + x) * 3, (y * 32 + x) * 3 + 3);
      let checked = 0;
      for (let s = 0; s < 40; s++) {
        const angle = aug.params(s).angleDeg;
        assert.ok(angle >= -15 && angle <= 15);
        if (Math.abs(angle) < 3) continue;
        const out = aug.apply(bar, s);
        let mass = 0;
        let ySum = 0;
        for (let y = 0; y < 32; y++)
          for (let x = 0; x < 32; x++) {
            mass += at(out, y, x, 0);
            ySum += y * at(out, y, x, 0);
          }
        const centroidY = ySum / mass;
        // The bar's centre sits 11 px right of the image centre, so it moves up by 11*sin(angle).
        const expected = 15.5 - 11 * Math.sin((angle * Math.PI) / 180);
        assert.ok(Math.abs(centroidY - expected) < 0.25, `angle ${angle}: centroid ${centroidY}, expected ${expected}`);
        checked++;
      }
      assert.ok(checked > 10);

      // A constant image stays constant where the rotated source covers it, corners fill with zero.
      const flat = new Uint8Array(3072).fill(100);
      const seed = Array.from({ length: 50 }, (_, s) => s).find((s) => Math.abs(aug.params(s).angleDeg) > 10)!;
      const out = aug.apply(flat, seed);
      assert.equal(at(out, 16, 16, 1), 100);
      assert.equal(at(out, 8, 20, 2), 100);
      assert.equal(at(out, 0, 0, 0), 0);
      assert.equal(at(out, 31, 31, 0), 0);
    });

    it('keeps unaffected draws when an op is switched off', () => {
      const a = new Augmenter(FULL).params(17);
      const b = new Augmenter({ ...FULL, horizontalFlip: false, hue: 0 }).params(17);
      assert.equal(a.cropTop, b.cropTop);
      assert.equal(a.cropLeft, b.cropLeft);
      assert.equal(a.angleDeg, b.angleDeg);
      assert.equal(b.flip, false);
    });

    it('rejects a wrong image size and invalid specs', () => {
      const aug = new Augmenter(FULL);
      assert.throws(() => aug.apply(new Uint8Array(100), 0), /expected 3072 bytes \(32x32x3 HWC\), got 100/);
      assert.throws(() => new Augmenter({ ...FULL, hue: 0.7 }), (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.equal(err.field, 'data.augment.hue');
        return true;
      });
      assert.throws(() => new Augmenter({ ...FULL, cropPadding: 1.5 }), ConfigError);
      assert.throws(() => new Augmenter({ ...FULL, brightness: -1 }), ConfigError);
    });
  });
});
