import assert from 'node:assert/strict';
import { existsSync, promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  CIFAR10_CLASSES,
  CIFAR10_RECORD_BYTES,
  type Cifar10Images,
  DatasetError,
  classCounts,
  concat,
  decodeCifar10Records,
  encodeCifar10Records,
  loadCifar10,
  readCifar10File,
  subset,
} from '../common/data';
import { Rng } from '../common/random';

const SHARED_DIR = path.resolve(__dirname, '../../shared/data/cifar10-subset');

/** Random images with labels cycling through the classes. */
function generated(count: number, seed: number): Cifar10Images {
  const rng = new Rng(seed);
  const images = new Uint8Array(count * 3072);
  for (let i = 0; i < images.length; i++) images[i] = rng.int(256);
  const labels = Uint8Array.from({ length: count }, (_, i) => (i + seed) % 10);
  return { images, labels, count };
}

/** Asserts that `promise` rejects with a DatasetError naming `file` whose message matches `pattern`. */
async function rejectsWith(promise: Promise<unknown>, file: string, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof DatasetError, `expected DatasetError, got ${String(err)}`);
    assert.equal(err.name, 'DatasetError');
    assert.equal(err.path, file);
    assert.match(err.message, pattern);
    return true;
  });
}

describe('cifar10-reader', () => {
  let tmp: string;
  beforeEach(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'shardwise-cifar-reader-'));
  });
  afterEach(async () => {
    await fs.rm(tmp, { recursive: true, force: true });
  });

  it('decodes the planar record layout into HWC pixels', () => {
    const record = new Uint8Array(CIFAR10_RECORD_BYTES);
    record[0] = 7;
    for (let p = 0; p < 1024; p++) {
      record[1 + p] = p % 256; // R plane
      record[1 + 1024 + p] = (p * 3) % 256; // G plane
      record[1 + 2048 + p] = 255 - (p % 256); // B plane
    }
    const data = decodeCifar10Records(record);
    assert.equal(data.count, 1);
    assert.deepEqual([...data.labels], [7]);
    for (const p of [0, 1, 31, 32, 500, 1023]) {
      assert.deepEqual([...data.images.subarray(p * 3, p * 3 + 3)], [p % 256, (p * 3) % 256, 255 - (p % 256)], `pixel ${p}`);
    }
  });

  it('round-trips through encode and decode', () => {
    const data = generated(13, 1);
    const decoded = decodeCifar10Records(encodeCifar10Records(data));
    assert.deepEqual(decoded.labels, data.labels);
    assert.deepEqual(decoded.images, data.images);
  });

  it('reads a batch file', async () => {
    const data = generated(5, 2);
    const file = path.join(tmp, 'data_batch_1.bin');
    await fs.writeFile(file, encodeCifar10Records(data));
    const read = await readCifar10File(file);
    assert.equal(read.count, 5);
    assert.deepEqual(read.images, data.images);
    assert.deepEqual(read.labels, data.labels);
  });

  it('rejects a missing file', async () => {
    const file = path.join(tmp, 'nope.bin');
    await rejectsWith(readCifar10File(file), file, /file not found/);
  });

  it('rejects a file whose size is not a multiple of the record size', async () => {
    const file = path.join(tmp, 'short.bin');
    await fs.writeFile(file, new Uint8Array(1000));
    await rejectsWith(readCifar10File(file), file, /expected 3073-byte records, file has 1000 bytes/);
  });

  it('rejects an empty file', async () => {
    const file = path.join(tmp, 'empty.bin');
    await fs.writeFile(file, new Uint8Array(0));
    await rejectsWith(readCifar10File(file), file, /empty file/);
  });

  it('rejects a label above 9 and says which record', async () => {
    const bytes = encodeCifar10Records(generated(3, 3));
    bytes[2 * CIFAR10_RECORD_BYTES] = 12;
    const file = path.join(tmp, 'bad-label.bin');
    await fs.writeFile(file, bytes);
    await rejectsWith(readCifar10File(file), file, /record 2 .*label 12, expected 0\.\.9/);
  });

  it('loads the train batches that are present, in order', async () => {
    const first = generated(4, 10);
    const third = generated(6, 30);
    await fs.writeFile(path.join(tmp, 'data_batch_1.bin'), encodeCifar10Records(first));
    await fs.writeFile(path.join(tmp, 'data_batch_3.bin'), encodeCifar10Records(third));
    await fs.writeFile(path.join(tmp, 'test_batch.bin'), encodeCifar10Records(generated(2, 99)));
    const train = await loadCifar10(tmp, 'train');
    assert.equal(train.count, 10);
    assert.deepEqual(train.images, concat([first, third]).images);
    assert.deepEqual([...train.labels], [...first.labels, ...third.labels]);
    const test = await loadCifar10(tmp, 'test');
    assert.equal(test.count, 2);
  });

  it('names the files it looked for when a split is absent', async () => {
    await fs.writeFile(path.join(tmp, 'readme.txt'), 'not data');
    await rejectsWith(loadCifar10(tmp, 'train'), tmp, /looked for data_batch_1\.bin, .*data_batch_5\.bin, found readme\.txt/);
    await rejectsWith(loadCifar10(tmp, 'test'), tmp, /looked for test_batch\.bin/);
    const missing = path.join(tmp, 'absent');
    await rejectsWith(loadCifar10(missing, 'train'), missing, /cannot be read/);
  });

  it('propagates a corrupt batch with its path', async () => {
    await fs.writeFile(path.join(tmp, 'data_batch_1.bin'), encodeCifar10Records(generated(2, 4)));
    await fs.writeFile(path.join(tmp, 'data_batch_2.bin'), new Uint8Array(CIFAR10_RECORD_BYTES + 5));
    await rejectsWith(loadCifar10(tmp, 'train'), path.join(tmp, 'data_batch_2.bin'), /file has 3078 bytes/);
  });

  it('subsets and counts classes', () => {
    const data = generated(20, 0);
    const picked = subset(data, [19, 0, 5]);
    assert.equal(picked.count, 3);
    assert.deepEqual([...picked.labels], [9, 0, 5]);
    assert.deepEqual(picked.images.subarray(0, 3072), data.images.subarray(19 * 3072, 20 * 3072));
    assert.deepEqual(classCounts(data), new Array(10).fill(2));
    assert.throws(() => subset(data, [20]), /index 20 at position 0 is outside 0\.\.19/);
  });

  it('lists the ten class names in label order', () => {
    assert.equal(CIFAR10_CLASSES.length, 10);
    assert.equal(CIFAR10_CLASSES[0], 'airplane');
    assert.equal(CIFAR10_CLASSES[6], 'frog');
    assert.equal(CIFAR10_CLASSES[9], 'truck');
  });

  it('reads the shared real subset', async function () {
    if (!existsSync(SHARED_DIR)) this.skip(); // ../shared is optional: the project works without it
    const train = await loadCifar10(SHARED_DIR, 'train');
    assert.equal(train.count, 5 * 1017);
    assert.equal(train.images.length, 5 * 1017 * 3072);
    // The official data_batch_1 starts with a frog, two trucks, a deer, two automobiles.
    assert.deepEqual([...train.labels.subarray(0, 6)], [6, 9, 9, 4, 1, 1]);
    const counts = classCounts(train);
    assert.equal(counts.reduce((a, b) => a + b, 0), train.count);
    for (const c of counts) assert.ok(c > 400 && c < 600, `class counts ${counts.join(',')}`);
    // Natural images: pixel values spread over the whole range, mean near the known CIFAR mean (~120).
    let sum = 0;
    for (let i = 0; i < train.images.length; i += 97) sum += train.images[i];
    const mean = sum / Math.ceil(train.images.length / 97);
    assert.ok(mean > 100 && mean < 140, `mean pixel ${mean}`);
  });
});
