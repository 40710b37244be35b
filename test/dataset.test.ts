import assert from 'node:assert/strict';
import { existsSync, promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  Augmenter,
  type Cifar10Images,
  NO_AUGMENT,
  applyLimit,
  classCounts,
  encodeCifar10Records,
  epochPermutation,
  loadCifar10,
  loadTrainVal,
  makeBatch,
  sampleSeed,
  trainValSplit,
} from '../common/data';
import { ConfigError } from '../common/errors';
import type { DataSpec } from '../common/job';

const SHARED_DIR = path.resolve(__dirname, '../../shared/data/cifar10-subset');

const AUGMENT = {
  cropPadding: 4,
  horizontalFlip: true,
  brightness: 0.2,
  contrast: 0.2,
  saturation: 0.2,
  hue: 0.05,
  rotationDeg: 15,
};

/**
 * Unbalanced generated data (class c has 20 + 7c images, labels shuffled by a fixed stride) whose
 * pixels spell out the image index, so every image can be traced after splitting and batching.
 */
function traceable(): Cifar10Images {
  const labels: number[] = [];
  for (let c = 0; c < 10; c++) for (let k = 0; k < 20 + 7 * c; k++) labels.push(c);
  const count = labels.length;
  const order = Array.from({ length: count }, (_, i) => (i * 37) % count);
  const images = new Uint8Array(count * 3072);
  for (let i = 0; i < count; i++) {
    for (let b = 0; b < 3072; b++) images[i * 3072 + b] = (i * 13 + b * 7 + (i >> 8) * 101) & 255;
    images[i * 3072] = i & 255;
    images[i * 3072 + 1] = i >> 8;
  }
  return { images, labels: Uint8Array.from(order, (j) => labels[j]), count };
}

function idOf(data: Cifar10Images, k: number): number {
  return data.images[k * 3072] + 256 * data.images[k * 3072 + 1];
}

describe('dataset', () => {
  const data = traceable();

  describe('trainValSplit', () => {
    it('is stratified, disjoint and covers every image', () => {
      const split = trainValSplit(data, 0.2, 5);
      const all = [...split.trainIndices, ...split.valIndices].sort((a, b) => a - b);
      assert.deepEqual(all, Array.from({ length: data.count }, (_, i) => i));
      const totals = classCounts(data);
      const val = classCounts(split.val);
      for (let c = 0; c < 10; c++) assert.equal(val[c], Math.round(totals[c] * 0.2), `class ${c}`);
      assert.equal(split.train.count + split.val.count, data.count);
      // Each part holds the images its indices name.
      split.valIndices.forEach((orig, k) => assert.equal(idOf(split.val, k), orig));
      split.trainIndices.forEach((orig, k) => {
        assert.equal(idOf(split.train, k), orig);
        assert.equal(split.train.labels[k], data.labels[orig]);
      });
    });

    it('is deterministic in the seed and changes with it', () => {
      const a = trainValSplit(data, 0.2, 5);
      const b = trainValSplit(data, 0.2, 5);
      const c = trainValSplit(data, 0.2, 6);
      assert.deepEqual(a.valIndices, b.valIndices);
      assert.notDeepEqual(a.valIndices, c.valIndices);
    });

    it('holds out nothing for fraction 0 and rejects fractions outside [0, 1)', () => {
      const split = trainValSplit(data, 0, 1);
      assert.equal(split.val.count, 0);
      assert.equal(split.train.count, data.count);
      assert.throws(() => trainValSplit(data, 1, 0), ConfigError);
      assert.throws(() => trainValSplit(data, -0.1, 0), /data.valFraction: expected a number in \[0, 1\), got -0.1/);
    });
  });

  describe('epochPermutation', () => {
    it('is a seeded permutation that changes per epoch and seed', () => {
      const p = epochPermutation(1000, 3, 0);
      assert.deepEqual([...p].sort((a, b) => a - b), Array.from({ length: 1000 }, (_, i) => i));
      assert.deepEqual(epochPermutation(1000, 3, 0), p);
      assert.notDeepEqual(epochPermutation(1000, 3, 1), p);
      assert.notDeepEqual(epochPermutation(1000, 4, 0), p);
      assert.equal(epochPermutation(0, 3, 0).length, 0);
    });
  });

  describe('makeBatch', () => {
    it('gathers raw pixel values and labels without an augmenter', () => {
      const batch = makeBatch(data, [4, 0, 9]);
      assert.equal(batch.x.length, 3 * 3072);
      assert.ok(batch.x instanceof Float32Array);
      assert.deepEqual([...batch.y], [data.labels[4], data.labels[0], data.labels[9]]);
      assert.deepEqual([...batch.indices], [4, 0, 9]);
      assert.deepEqual(batch.x.subarray(3072, 6144), Float32Array.from(data.images.subarray(0, 3072)));
      assert.deepEqual(batch.x.subarray(0, 3072), Float32Array.from(data.images.subarray(4 * 3072, 5 * 3072)));
    });

    it('augments each sample by its own seed, whatever batch it lands in', () => {
      const augmenter = new Augmenter(AUGMENT);
      const options = { augmenter, jobSeed: 11, epoch: 2 };
      const first = makeBatch(data, [7, 3], options);
      const second = makeBatch(data, [1, 5, 7], options);
      assert.deepEqual(first.x.subarray(0, 3072), second.x.subarray(2 * 3072));
      const expected = augmenter.apply(data.images.subarray(7 * 3072, 8 * 3072), sampleSeed(11, 2, 7));
      assert.deepEqual(first.x.subarray(0, 3072), Float32Array.from(expected));
      const nextEpoch = makeBatch(data, [7], { ...options, epoch: 3 });
      assert.notDeepEqual(nextEpoch.x, first.x.subarray(0, 3072));
      const identity = makeBatch(data, [7], { augmenter: new Augmenter(NO_AUGMENT) });
      assert.deepEqual(identity.x, Float32Array.from(data.images.subarray(7 * 3072, 8 * 3072)));
    });

    it('rejects indices outside the data', () => {
      assert.throws(() => makeBatch(data, [0, data.count]), new RegExp(`index ${data.count} at position 1 is outside`));
    });
  });

  describe('applyLimit and loadTrainVal', () => {
    it('keeps the first N images, 0 keeping all', () => {
      const limited = applyLimit(data, 30);
      assert.equal(limited.count, 30);
      assert.equal(idOf(limited, 29), 29);
      assert.equal(applyLimit(data, 0), data);
      assert.equal(applyLimit(data, data.count + 5).count, data.count);
      assert.throws(() => applyLimit(data, -1), ConfigError);
    });

    it('loads, limits and splits a folder named in the spec', async () => {
      const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'shardwise-dataset-'));
      try {
        const half = Math.floor(data.count / 2);
        await fs.writeFile(path.join(dir, 'data_batch_1.bin'), encodeCifar10Records(applyLimit(data, half)));
        await fs.writeFile(path.join(dir, 'data_batch_2.bin'), encodeCifar10Records(data));
        const spec: DataSpec = { dataset: 'cifar10', dir, valFraction: 0.25, testSet: false, limit: half + 40, augment: AUGMENT };
        const loaded = await loadTrainVal(spec, 9, { download: false });
        assert.equal(loaded.dir, dir);
        assert.equal(loaded.train.count + loaded.val.count, half + 40);
        const ids = [...loaded.trainIndices, ...loaded.valIndices].sort((a, b) => a - b);
        assert.deepEqual(ids, Array.from({ length: half + 40 }, (_, i) => i));
        // The limit cuts across files: the first 40 images of data_batch_2 follow all of data_batch_1.
        const merged = await loadCifar10(dir, 'train');
        assert.equal(merged.count, half + data.count);
        assert.deepEqual(loaded.valIndices, trainValSplit(applyLimit(merged, half + 40), 0.25, 9).valIndices);
        const last = loaded.trainIndices[loaded.trainIndices.length - 1];
        assert.ok(last >= half, 'images from the second file are included');
      } finally {
        await fs.rm(dir, { recursive: true, force: true });
      }
    });

    it('splits the shared real subset with balanced classes', async function () {
      if (!existsSync(SHARED_DIR)) this.skip(); // ../shared is optional: the project works without it
      const spec: DataSpec = { dataset: 'cifar10', dir: SHARED_DIR, valFraction: 0.1, testSet: false, limit: 0, augment: AUGMENT };
      const loaded = await loadTrainVal(spec, 0, { download: false });
      assert.equal(loaded.train.count + loaded.val.count, 5085);
      const val = classCounts(loaded.val);
      for (const c of val) assert.ok(c >= 45 && c <= 56, `validation class counts ${val.join(',')}`);
    });
  });
});
